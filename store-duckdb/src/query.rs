//! `acoupi query`: runs one read statement on a store and writes the result as an aligned
//! table (comfy-table), CSV (the `csv` crate) or a JSON array of objects, row by row as
//! DuckDB produces them.
//!
//! The SQL is a user's, so it runs in a sandbox that cannot touch the host: the store is
//! opened read-only with DuckDB's external access off (no file but the store itself: no
//! `COPY ... TO`, `EXPORT DATABASE`, `ATTACH`, `read_csv`, `read_text`, ...), no extension
//! installed or loaded (no `httpfs`, no network), no community extensions, and the
//! configuration locked (`SET` and `RESET` cannot undo any of it). On top, the SQL must be
//! exactly one read statement ([`ALLOWED`], decided by DuckDB's parser); anything else is
//! refused with a message saying what is allowed, before DuckDB runs any of it.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta};
use comfy_table::{Cell, CellAlignment, Column, ColumnConstraint, Table, Width};
use duckdb::Connection;
use duckdb::arrow::datatypes::DataType;
use duckdb::types::{TimeUnit, Value};

use super::{DuckDbStore, StoreError};

/// How [`query()`] writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryFormat {
    /// Columns aligned under a header, numbers right-aligned, NULL as `NULL`.
    #[default]
    Table,
    /// RFC 4180: a header line, fields quoted where needed, NULL as an empty field.
    Csv,
    /// An array of objects, one per row, keys in column order; NULL as `null`, bytes as
    /// arrays of integers, timestamps as RFC 3339 strings.
    Json,
}

/// Runs `sql` (one read statement, see the module docs) on the store at `path` opened
/// read-only in the query sandbox (a snapshot while another process writes it, see the
/// crate docs) and writes the result to `out` row by row. Returns the
/// number of rows. SQL that is not one read statement returns [`StoreError::Database`]
/// saying what is allowed; a statement DuckDB rejects, DuckDB's message.
pub fn query(
    path: &Path,
    sql: &str,
    format: QueryFormat,
    out: &mut dyn Write,
) -> Result<usize, StoreError> {
    let store = DuckDbStore::open_sandboxed(path)?;
    let conn = store.connection();
    run(&conn, sql, format, out)
}

impl DuckDbStore {
    /// `acoupi query` inside the station's process (the local API): the same check and
    /// writer as [`query()`], on a reader connection of this store, which must be sealed
    /// ([`DuckDbStore::seal`]: external access off for the whole instance, so the file
    /// sandbox holds as in `acoupi query`), in a `READ ONLY` transaction (the store is
    /// not written, as by a read-only open) rolled back at the end.
    pub fn query_sealed(
        &self,
        sql: &str,
        format: QueryFormat,
        out: &mut dyn Write,
    ) -> Result<usize, StoreError> {
        if self.sealed_scratch().is_none() {
            return Err(StoreError::Database(
                "query: the store is not sealed; user SQL is refused".into(),
            ));
        }
        let conn = self.reader()?;
        super::prepare_connection(&conn);
        conn.execute_batch("BEGIN TRANSACTION READ ONLY")
            .map_err(|e| StoreError::Database(format!("query: {e}")))?;
        let result = run(&conn, sql, format, out);
        if let Err(e) = conn.execute_batch("ROLLBACK") {
            tracing::debug!("query: rollback of the read-only transaction: {e}");
        }
        result
    }
}

/// The statements `acoupi query` runs, as a refusal names them.
const ALLOWED: &str =
    "SELECT, WITH, FROM, VALUES, TABLE, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE or PIVOT";

/// The first words of the read statements (for the refusal's wording only).
const READ_WORDS: [&str; 11] = [
    "select",
    "with",
    "from",
    "values",
    "table",
    "explain",
    "describe",
    "show",
    "summarize",
    "pivot",
    "unpivot",
];

/// Refuses SQL that is not exactly one read statement. DuckDB's own parser decides:
/// `json_serialize_sql` serialises SELECT statements only (DuckDB parses DESCRIBE,
/// SHOW, SUMMARIZE, PIVOT, VALUES, `FROM`-first and `TABLE t` into SELECT statements)
/// and lists every statement it found. `EXPLAIN [ANALYZE]` is allowed in front of one
/// such statement. The sandbox ([`DuckDbStore::open_sandboxed`]) holds either way; this
/// check keeps several statements from running one after the other and gives a clear
/// refusal.
fn check_read_only(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    let (word, rest) = first_word(sql);
    let checked = if word.eq_ignore_ascii_case("explain") {
        let (next, after) = first_word(rest);
        if next.eq_ignore_ascii_case("analyze") {
            after
        } else {
            rest
        }
    } else {
        sql
    };
    let serialized: String = conn
        .query_row("SELECT json_serialize_sql(?::VARCHAR)", [checked], |row| {
            row.get(0)
        })
        .map_err(|e| StoreError::Database(format!("query: cannot parse the SQL: {e}")))?;
    let parsed: serde_json::Value = serde_json::from_str(&serialized)
        .map_err(|e| StoreError::Database(format!("query: cannot parse the SQL: {e}")))?;
    let refuse = |what: String| {
        StoreError::Database(format!(
            "`acoupi query` is read-only: it runs one {ALLOWED} statement; {what}"
        ))
    };
    if parsed["error"].as_bool() != Some(false) {
        let kind = parsed["error_type"].as_str().unwrap_or_default();
        let message = parsed["error_message"].as_str().unwrap_or("unknown error");
        if kind == "parser" {
            return Err(StoreError::Database(format!(
                "query failed: Parser Error: {message}"
            )));
        }
        let (statement, _) = first_word(checked);
        return Err(refuse(if statement.is_empty() {
            format!("this is not one ({message})")
        } else if statement.eq_ignore_ascii_case("pivot") {
            // DuckDB turns a PIVOT without IN into statements that create types first.
            "a PIVOT needs its values listed: PIVOT t ON c IN ('a', 'b') USING ...".into()
        } else if READ_WORDS.iter().any(|w| statement.eq_ignore_ascii_case(w)) {
            "the SQL given holds more than one statement, one of them not a read".into()
        } else {
            format!("`{}` is not one of them", statement.to_ascii_uppercase())
        }));
    }
    match parsed["statements"].as_array().map_or(0, Vec::len) {
        1 => Ok(()),
        0 => Err(refuse("the SQL given holds no statement".into())),
        n => Err(refuse(format!(
            "the SQL given holds {n} statements (run them one at a time)"
        ))),
    }
}

/// The first word of `sql` (letters, digits, `_`) after white space and comments, and
/// what follows it. Only names the statement in a refusal and finds what `EXPLAIN`
/// explains; DuckDB's parser checks the rest.
fn first_word(sql: &str) -> (&str, &str) {
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start();
        if let Some(comment) = trimmed.strip_prefix("--") {
            rest = comment.find('\n').map_or("", |end| &comment[end..]);
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            rest = comment.find("*/").map_or("", |end| &comment[end + 2..]);
        } else {
            rest = trimmed;
            break;
        }
    }
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    rest.split_at(end)
}

/// Rows per block of the aligned table. comfy-table lays out a whole table at once, so
/// the table is drawn in blocks: the first block (with the header) sets each column's
/// width; every later block keeps at least those widths, so the output reads as one table,
/// and a wider cell widens its column for its own block only (a cell is never cut). A
/// result of any size is thus written in bounded memory; `--format csv` or `json` align
/// nothing.
const TABLE_BLOCK_ROWS: usize = 1000;

/// The table's look: psql's (no outer border, `|` between columns, a `-`/`+` rule under
/// the header), in the order of comfy-table's `TableComponent`s.
const TABLE_STYLE: &str = "     -+ |          ";

fn run(
    conn: &Connection,
    sql: &str,
    format: QueryFormat,
    out: &mut dyn Write,
) -> Result<usize, StoreError> {
    check_read_only(conn, sql)?;
    let failed = |e: duckdb::Error| StoreError::Database(format!("query failed: {e}"));
    let written =
        |e: std::io::Error| StoreError::Database(format!("writing the query result: {e}"));
    let mut statement = conn.prepare(sql).map_err(failed)?;
    // Executed as a stream: DuckDB hands the result over chunk by chunk, read here as
    // rows, so no more than a chunk is held at a time (plus a block of the table).
    drop(statement.stream_arrow([]).map_err(failed)?);
    let mut rows = statement.raw_query();
    let (names, types) = match rows.as_ref() {
        Some(statement) => {
            let count = statement.column_count();
            (
                statement.column_names(),
                (0..count).map(|i| statement.column_type(i)).collect(),
            )
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut out = std::io::BufWriter::new(out);
    let mut writer = match format {
        QueryFormat::Table => Writer::Table(TableWriter::new(names.clone()), &mut out),
        QueryFormat::Csv => Writer::Csv(Box::new(csv::Writer::from_writer(&mut out))),
        QueryFormat::Json => Writer::Json(
            names
                .iter()
                .map(|n| serde_json::Value::from(n.as_str()).to_string())
                .collect(),
            &mut out,
        ),
    };
    writer.start(&names).map_err(written)?;
    let mut count = 0;
    while let Some(row) = rows.next().map_err(failed)? {
        let values = (0..names.len())
            .map(|i| row.get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        writer.row(&values, &types, count).map_err(written)?;
        count += 1;
    }
    writer.finish(count).map_err(written)?;
    drop(writer);
    out.flush().map_err(written)?;
    Ok(count)
}

/// Writes rows in one of the [`QueryFormat`]s to its output as they arrive.
enum Writer<'o> {
    Table(TableWriter, &'o mut dyn Write),
    Csv(Box<csv::Writer<&'o mut dyn Write>>),
    /// The column names as JSON strings.
    Json(Vec<String>, &'o mut dyn Write),
}

impl Writer<'_> {
    fn start(&mut self, names: &[String]) -> std::io::Result<()> {
        match self {
            Writer::Table(..) => Ok(()),
            Writer::Csv(csv) => Ok(csv.write_record(names)?),
            Writer::Json(_, out) => write!(out, "["),
        }
    }

    fn row(&mut self, row: &[Value], types: &[DataType], index: usize) -> std::io::Result<()> {
        match self {
            Writer::Table(table, out) => table.row(row, types, *out),
            Writer::Csv(csv) => {
                let fields = row
                    .iter()
                    .zip(types)
                    .map(|(value, dtype)| text(value, Some(dtype)).unwrap_or_default());
                Ok(csv.write_record(fields)?)
            }
            Writer::Json(keys, out) => {
                let fields: Vec<String> = keys
                    .iter()
                    .zip(row.iter().zip(types))
                    .map(|(key, (value, dtype))| format!("{key}: {}", json(value, Some(dtype))))
                    .collect();
                write!(
                    out,
                    "{}\n  {{{}}}",
                    if index == 0 { "" } else { "," },
                    fields.join(", ")
                )
            }
        }
    }

    fn finish(&mut self, count: usize) -> std::io::Result<()> {
        match self {
            Writer::Table(table, out) => {
                table.flush(*out)?;
                writeln!(out, "({count} row{})", if count == 1 { "" } else { "s" })
            }
            Writer::Csv(csv) => csv.flush(),
            Writer::Json(_, out) => writeln!(out, "{}]", if count == 0 { "" } else { "\n" }),
        }
    }
}

/// The aligned table, drawn by comfy-table in blocks of [`TABLE_BLOCK_ROWS`] rows: cells
/// measured by their display width (a CJK character takes two columns), numbers
/// right-aligned, the rest left-aligned, NULL as `NULL`.
struct TableWriter {
    names: Vec<String>,
    /// The rows of the block being filled.
    held: Vec<Vec<Cell>>,
    /// Each column's width (padding included) in the first block, once it is written.
    widths: Option<Vec<u16>>,
}

impl TableWriter {
    fn new(names: Vec<String>) -> TableWriter {
        TableWriter {
            names,
            held: Vec::new(),
            widths: None,
        }
    }

    fn row(
        &mut self,
        row: &[Value],
        types: &[DataType],
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        let cells = row
            .iter()
            .zip(types)
            .map(|(value, dtype)| {
                let cell = Cell::new(
                    text(value, Some(dtype))
                        .map_or_else(|| "NULL".to_owned(), |s| s.replace('\n', "\\n")),
                );
                if is_number(value) {
                    cell.set_alignment(CellAlignment::Right)
                } else {
                    cell
                }
            })
            .collect();
        self.held.push(cells);
        if self.held.len() >= TABLE_BLOCK_ROWS {
            self.flush(out)?;
        }
        Ok(())
    }

    /// Draws the held rows as one block: the first with the header (also when there are
    /// no rows), later ones at least as wide as the first.
    fn flush(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.widths.is_some() && self.held.is_empty() {
            return Ok(());
        }
        let mut table = Table::new();
        table.load_preset(TABLE_STYLE);
        if self.widths.is_none() {
            table.set_header(&self.names);
        }
        table.add_rows(std::mem::take(&mut self.held));
        match &self.widths {
            Some(widths) => {
                table.set_constraints(
                    widths
                        .iter()
                        .map(|w| ColumnConstraint::LowerBoundary(Width::Fixed(*w))),
                );
            }
            None => {
                let padding: Vec<u16> = table.column_iter().map(Column::padding_width).collect();
                let content = table.column_max_content_widths();
                self.widths = Some(
                    content
                        .iter()
                        .zip(padding)
                        .map(|(w, p)| w.saturating_add(p))
                        .collect(),
                );
            }
        }
        for line in table.lines() {
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

fn is_number(value: &Value) -> bool {
    matches!(
        value,
        Value::TinyInt(_)
            | Value::SmallInt(_)
            | Value::Int(_)
            | Value::BigInt(_)
            | Value::HugeInt(_)
            | Value::UTinyInt(_)
            | Value::USmallInt(_)
            | Value::UInt(_)
            | Value::UBigInt(_)
            | Value::UHugeInt(_)
            | Value::Float(_)
            | Value::Double(_)
            | Value::Decimal(_)
    )
}

/// The value as text; `None` for NULL. `dtype` tells a `TIMESTAMPTZ` (shown in RFC 3339
/// with `+00:00`) from a plain `TIMESTAMP`; nested values have none.
fn text(value: &Value, dtype: Option<&DataType>) -> Option<String> {
    let nested = |v: &Value| text(v, None).unwrap_or_else(|| "NULL".to_owned());
    Some(match value {
        Value::Null => return None,
        Value::Boolean(b) => b.to_string(),
        Value::TinyInt(i) => i.to_string(),
        Value::SmallInt(i) => i.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::HugeInt(i) => i.to_string(),
        Value::UTinyInt(i) => i.to_string(),
        Value::USmallInt(i) => i.to_string(),
        Value::UInt(i) => i.to_string(),
        Value::UBigInt(i) => i.to_string(),
        Value::UHugeInt(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Timestamp(unit, amount) => timestamp(*unit, *amount, dtype),
        Value::Text(s) | Value::Enum(s) => s.clone(),
        Value::Blob(bytes) | Value::Geometry(bytes) => escape_bytes(bytes),
        Value::Date32(days) => NaiveDate::from_ymd_opt(1970, 1, 1)
            .and_then(|epoch| epoch.checked_add_signed(TimeDelta::days(i64::from(*days))))
            .map_or_else(
                || format!("{days} days since 1970-01-01"),
                |d| d.to_string(),
            ),
        Value::Time64(unit, amount) => {
            let micros = unit.to_micros(*amount);
            NaiveTime::from_num_seconds_from_midnight_opt(
                u32::try_from(micros.div_euclid(1_000_000)).unwrap_or(0),
                u32::try_from(micros.rem_euclid(1_000_000) * 1000).unwrap_or(0),
            )
            .map_or_else(|| format!("{micros} µs"), |t| t.to_string())
        }
        Value::Interval {
            months,
            days,
            nanos,
        } => {
            format!(
                "{months} months {days} days {}",
                TimeDelta::nanoseconds(*nanos)
            )
        }
        Value::List(items) | Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(nested).collect::<Vec<_>>().join(", ")
            )
        }
        Value::Struct(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("'{k}': {}", nested(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}={}", nested(k), nested(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Union(inner) => return text(inner, None),
        other => format!("{other:?}"),
    })
}

/// The value as JSON: numbers as numbers (NaN and infinities as `null`), bytes as
/// arrays of integers, nested values as arrays and objects, the rest as [`text`].
fn json(value: &Value, dtype: Option<&DataType>) -> serde_json::Value {
    use serde_json::Value as J;
    let float = |f: f64| serde_json::Number::from_f64(f).map_or(J::Null, J::Number);
    match value {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::TinyInt(i) => J::from(*i),
        Value::SmallInt(i) => J::from(*i),
        Value::Int(i) => J::from(*i),
        Value::BigInt(i) => J::from(*i),
        Value::UTinyInt(i) => J::from(*i),
        Value::USmallInt(i) => J::from(*i),
        Value::UInt(i) => J::from(*i),
        Value::UBigInt(i) => J::from(*i),
        Value::HugeInt(i) => i64::try_from(*i).map_or_else(|_| J::String(i.to_string()), J::from),
        Value::UHugeInt(i) => u64::try_from(*i).map_or_else(|_| J::String(i.to_string()), J::from),
        Value::Float(f) => float(f64::from(*f)),
        Value::Double(f) => float(*f),
        Value::Decimal(d) => d
            .to_string()
            .parse::<f64>()
            .map_or_else(|_| J::String(d.to_string()), float),
        Value::Blob(bytes) | Value::Geometry(bytes) => {
            J::Array(bytes.iter().map(|b| J::from(*b)).collect())
        }
        Value::List(items) | Value::Array(items) => {
            J::Array(items.iter().map(|v| json(v, None)).collect())
        }
        Value::Struct(fields) => J::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), json(v, None)))
                .collect(),
        ),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        text(k, None).unwrap_or_else(|| "NULL".into()),
                        json(v, None),
                    )
                })
                .collect(),
        ),
        Value::Union(inner) => json(inner, None),
        other => text(other, dtype).map_or(J::Null, J::String),
    }
}

fn timestamp(unit: TimeUnit, amount: i64, dtype: Option<&DataType>) -> String {
    let micros = unit.to_micros(amount);
    let Some(utc) = DateTime::from_timestamp_micros(micros) else {
        return format!("{micros} µs since 1970-01-01");
    };
    match dtype {
        Some(DataType::Timestamp(_, Some(_))) => utc.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        _ => NaiveDateTime::to_string(&utc.naive_utc()),
    }
}

/// Printable ASCII as is, other bytes as `\xNN` (DuckDB's own notation).
fn escape_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b' '..=b'~' if *b != b'\\' => char::from(*b).to_string(),
            _ => format!("\\x{b:02X}"),
        })
        .collect()
}

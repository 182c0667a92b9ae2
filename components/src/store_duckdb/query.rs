//! `acoupi query`: runs one SQL statement on a store opened for reading and writes the
//! result as an aligned table, CSV or a JSON array of objects.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta};
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

/// Runs `sql` (one statement) on the store at `path` opened read-only (a snapshot while
/// another process writes it, see the module docs) and writes the result to `out`.
/// Returns the number of rows. A statement DuckDB rejects returns
/// [`StoreError::Database`] with DuckDB's message.
pub fn query(
    path: &Path,
    sql: &str,
    format: QueryFormat,
    out: &mut dyn Write,
) -> Result<usize, StoreError> {
    let store = DuckDbStore::open_for_reading(path)?;
    let conn = store.connection();
    run(&conn, sql, format, out)
}

/// A result: column names, their Arrow types and the rows.
struct Table {
    names: Vec<String>,
    types: Vec<DataType>,
    rows: Vec<Vec<Value>>,
}

fn run(
    conn: &Connection,
    sql: &str,
    format: QueryFormat,
    out: &mut dyn Write,
) -> Result<usize, StoreError> {
    let table = fetch(conn, sql)?;
    let written = match format {
        QueryFormat::Table => write_table(&table, out),
        QueryFormat::Csv => write_csv(&table, out),
        QueryFormat::Json => write_json(&table, out),
    };
    written.map_err(|e| StoreError::Database(format!("writing the query result: {e}")))?;
    Ok(table.rows.len())
}

fn fetch(conn: &Connection, sql: &str) -> Result<Table, StoreError> {
    let failed = |e: duckdb::Error| StoreError::Database(format!("query failed: {e}"));
    let mut statement = conn.prepare(sql).map_err(failed)?;
    let mut rows = statement.query([]).map_err(failed)?;
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
    let mut values = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let row = (0..names.len())
            .map(|i| row.get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>();
        values.push(row.map_err(failed)?);
    }
    Ok(Table {
        names,
        types,
        rows: values,
    })
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

fn write_table(table: &Table, out: &mut dyn Write) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&table.types)
                .map(|(value, dtype)| {
                    text(value, Some(dtype))
                        .map_or_else(|| "NULL".to_owned(), |s| s.replace('\n', "\\n"))
                })
                .collect()
        })
        .collect();
    let width = |s: &str| s.chars().count();
    let widths: Vec<usize> = table
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            cells
                .iter()
                .map(|row| width(&row[i]))
                .chain([width(name)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |fields: Vec<String>| format!(" {} ", fields.join(" | ")).trim_end().to_owned();
    let header = table
        .names
        .iter()
        .zip(&widths)
        .map(|(name, w)| format!("{name:<w$}"))
        .collect();
    writeln!(out, "{}", line(header))?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    writeln!(out, "{}", rule.join("+"))?;
    for (row, values) in cells.iter().zip(&table.rows) {
        let fields = row
            .iter()
            .zip(values)
            .zip(&widths)
            .map(|((cell, value), w)| {
                let pad = w.saturating_sub(width(cell));
                if is_number(value) {
                    format!("{}{cell}", " ".repeat(pad))
                } else {
                    format!("{cell}{}", " ".repeat(pad))
                }
            })
            .collect();
        writeln!(out, "{}", line(fields))?;
    }
    let n = table.rows.len();
    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn write_csv(table: &Table, out: &mut dyn Write) -> std::io::Result<()> {
    let header: Vec<String> = table.names.iter().map(|n| csv_field(n)).collect();
    writeln!(out, "{}", header.join(","))?;
    for row in &table.rows {
        let fields: Vec<String> = row
            .iter()
            .zip(&table.types)
            .map(|(value, dtype)| {
                text(value, Some(dtype))
                    .map(|s| csv_field(&s))
                    .unwrap_or_default()
            })
            .collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

fn write_json(table: &Table, out: &mut dyn Write) -> std::io::Result<()> {
    let keys: Vec<String> = table
        .names
        .iter()
        .map(|n| serde_json::Value::from(n.as_str()).to_string())
        .collect();
    write!(out, "[")?;
    for (r, row) in table.rows.iter().enumerate() {
        let fields: Vec<String> = keys
            .iter()
            .zip(row.iter().zip(&table.types))
            .map(|(key, (value, dtype))| format!("{key}: {}", json(value, Some(dtype))))
            .collect();
        write!(
            out,
            "{}\n  {{{}}}",
            if r == 0 { "" } else { "," },
            fields.join(", ")
        )?;
    }
    writeln!(out, "{}]", if table.rows.is_empty() { "" } else { "\n" })
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

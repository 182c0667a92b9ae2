//! `acoupi export`: detections, recordings or messages of a store, as Parquet or CSV
//! (written by DuckDB's `COPY ... TO`) or, for detections, as a Raven Pro selection
//! table.
//!
//! Rows are selected by time: detections and recordings by the recording's
//! `created_on`, messages by their `created_on`; `since` is included, `until` is not.
//! The queries read the base tables, so files of every schema version export alike.
//!
//! Also the plan files of `acoupi reprocess --plan` ([`write_plan`], [`read_plan`]):
//! Parquet written and read through an in-memory DuckDB.

use std::io::Write;
use std::path::Path;

use acoupi_engine::reprocess::PlanEntry;
use chrono::{DateTime, Utc};
use duckdb::{Connection, params};

use super::rows::{SqlUuid, timestamp_literal};
use super::schema::detections_flat_select;
use super::{DuckDbStore, StoreError, database};

/// What [`export()`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportWhat {
    /// One row per detection × tag: the columns of the `detections_flat` view.
    Detections,
    /// One row per recording, with its deployment's id, name and location.
    Recordings,
    /// One row per message, with its delivery status (the `message_status` columns).
    Messages,
}

/// The file format of [`export()`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Parquet,
    /// With a header line; timestamps in UTC (`2026-05-01 06:00:00+00`).
    Csv,
    /// A Raven Pro selection table (detections only): tab-separated, one row per
    /// detection, all recordings in one table with a `Begin File` column.
    Raven,
}

/// Writes the selected rows of the store at `path` to `output` (its folder is created
/// if missing) and returns how many rows it wrote. The store is opened read-only, or as
/// a snapshot while another process writes it.
pub fn export(
    path: &Path,
    what: ExportWhat,
    format: ExportFormat,
    output: &Path,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<usize, StoreError> {
    check_what(what, format)?;
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| write_error(output, e))?;
    }
    let store = DuckDbStore::open_for_reading(path)?;
    let conn = store.connection();
    export_on(&conn, what, format, output, since, until)
}

impl DuckDbStore {
    /// [`export()`] inside the station's process (the local API): on a reader connection
    /// of this sealed store ([`DuckDbStore::seal`]), into a file named `name` (a plain
    /// file name) in the scratch folder, whose path it returns with the row count. The
    /// caller streams the file back and removes it.
    pub fn export_sealed(
        &self,
        what: ExportWhat,
        format: ExportFormat,
        name: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<(std::path::PathBuf, usize), StoreError> {
        check_what(what, format)?;
        let scratch = self.sealed_scratch().ok_or_else(|| {
            StoreError::Database("export: the store is not sealed (no scratch folder)".into())
        })?;
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(StoreError::Database(format!(
                "export: `{name}` is not a plain file name"
            )));
        }
        let output = scratch.join(name);
        let conn = self.reader()?;
        super::prepare_connection(&conn);
        let rows = export_on(&conn, what, format, &output, since, until)?;
        Ok((output, rows))
    }
}

fn check_what(what: ExportWhat, format: ExportFormat) -> Result<(), StoreError> {
    if format == ExportFormat::Raven && what != ExportWhat::Detections {
        return Err(StoreError::Database(format!(
            "a Raven selection table holds detections only; export {} as parquet or csv",
            match what {
                ExportWhat::Recordings => "recordings",
                _ => "messages",
            }
        )));
    }
    Ok(())
}

fn export_on(
    conn: &Connection,
    what: ExportWhat,
    format: ExportFormat,
    output: &Path,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<usize, StoreError> {
    let time_column = match what {
        ExportWhat::Detections | ExportWhat::Recordings => "r.created_on",
        ExportWhat::Messages => "m.created_on",
    };
    let condition = time_condition(time_column, since, until);
    match format {
        ExportFormat::Raven => raven(conn, &condition, output),
        ExportFormat::Parquet => copy(conn, &select(what, &condition), output, "FORMAT parquet"),
        ExportFormat::Csv => copy(
            conn,
            &select(what, &condition),
            output,
            "FORMAT csv, HEADER",
        ),
    }
}

fn write_error(output: &Path, e: std::io::Error) -> StoreError {
    StoreError::Database(format!("export: cannot write `{}`: {e}", output.display()))
}

/// `column >= since AND column < until`, with the bounds given.
fn time_condition(
    column: &str,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> String {
    let mut parts = vec!["TRUE".to_owned()];
    if let Some(since) = since {
        parts.push(format!(
            "{column} >= TIMESTAMPTZ '{}'",
            timestamp_literal(&since)
        ));
    }
    if let Some(until) = until {
        parts.push(format!(
            "{column} < TIMESTAMPTZ '{}'",
            timestamp_literal(&until)
        ));
    }
    parts.join(" AND ")
}

fn select(what: ExportWhat, condition: &str) -> String {
    match what {
        ExportWhat::Detections => format!(
            "{} WHERE {condition} ORDER BY r.created_on, r.id, det.rowid, t.rowid",
            detections_flat_select!()
        ),
        ExportWhat::Recordings => format!(
            "SELECT r.id, r.created_on, r.duration, r.samplerate, r.audio_channels, \
             r.time_expansion, r.path, d.id AS deployment_id, d.name AS deployment_name, \
             d.latitude, d.longitude \
             FROM recordings r JOIN deployments d ON d.id = r.deployment_id \
             WHERE {condition} ORDER BY r.created_on, r.id"
        ),
        ExportWhat::Messages => format!(
            "SELECT m.id, m.created_on, m.message_type, m.content, m.content_bytes, \
             count(s.id) AS attempts, \
             arg_max(s.status, s.received_on) AS latest_status, \
             max(s.received_on) AS latest_received_on, \
             coalesce(bool_or(s.status = 0), false) AS sent \
             FROM messages m LEFT JOIN responses s ON s.message_id = m.id \
             WHERE {condition} \
             GROUP BY m.id, m.created_on, m.message_type, m.content, m.content_bytes \
             ORDER BY m.created_on, m.id"
        ),
    }
}

/// `COPY (select) TO output (options)`; returns the rows written.
fn copy(
    conn: &Connection,
    select: &str,
    output: &Path,
    options: &str,
) -> Result<usize, StoreError> {
    let target = super::rows::sql_path(output).ok_or_else(|| {
        StoreError::Database(format!(
            "export: the output path `{}` is not valid UTF-8",
            output.display()
        ))
    })?;
    let sql = format!("COPY ({select}) TO {target} ({options})");
    conn.execute(&sql, [])
        .map_err(|e| StoreError::Database(format!("export to `{}`: {e}", output.display())))
}

/// One detection with what a selection table needs.
struct Selection {
    file: String,
    begin: f64,
    end: f64,
    low: f64,
    high: f64,
    score: f64,
    /// `(is a species tag, confidence, value)` of the best tag so far.
    species: Option<(bool, f64, String)>,
}

const RAVEN_HEADER: &str = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin File\tSpecies\tScore";

/// The Raven table: `Species` is the value of the detection's most confident tag with
/// key `species`, else of its most confident tag, else empty; a detection without a
/// location spans the whole recording (0 to its duration, 0 Hz to half the sample
/// rate); `Begin File` is the recording's file name, or its id once the file is gone.
fn raven(conn: &Connection, condition: &str, output: &Path) -> Result<usize, StoreError> {
    let sql = format!(
        "SELECT det.id, r.id, r.path, r.duration, r.samplerate, det.start_time, det.low_freq, \
         det.end_time, det.high_freq, det.detection_score, t.key, t.value, t.confidence_score \
         FROM detections det \
         JOIN model_outputs mo ON mo.id = det.model_output_id \
         JOIN recordings r ON r.id = mo.recording_id \
         LEFT JOIN detection_tags t ON t.detection_id = det.id \
         WHERE {condition} \
         ORDER BY r.created_on, r.id, coalesce(det.start_time, 0), det.rowid, t.rowid"
    );
    let mut statement = conn.prepare(&sql).map_err(database)?;
    let mut rows = statement.query([]).map_err(database)?;
    let mut selections: Vec<(SqlUuid, Selection)> = Vec::new();
    while let Some(row) = rows.next().map_err(database)? {
        let detection: SqlUuid = row.get(0).map_err(database)?;
        if selections.last().is_none_or(|(id, _)| *id != detection) {
            let recording: SqlUuid = row.get(1).map_err(database)?;
            let path: Option<String> = row.get(2).map_err(database)?;
            let duration: f64 = row.get(3).map_err(database)?;
            let samplerate: u32 = row.get(4).map_err(database)?;
            let location: [Option<f64>; 4] = [
                row.get(5).map_err(database)?,
                row.get(6).map_err(database)?,
                row.get(7).map_err(database)?,
                row.get(8).map_err(database)?,
            ];
            let [begin, low, end, high] = match location {
                [Some(begin), Some(low), Some(end), Some(high)] => [begin, low, end, high],
                _ => [0.0, 0.0, duration, f64::from(samplerate) / 2.0],
            };
            let file = path
                .as_deref()
                .and_then(|p| Path::new(p).file_name())
                .map_or_else(
                    || recording.0.to_string(),
                    |name| name.to_string_lossy().into_owned(),
                );
            let score = row.get(9).map_err(database)?;
            selections.push((
                detection,
                Selection {
                    file,
                    begin,
                    end,
                    low,
                    high,
                    score,
                    species: None,
                },
            ));
        }
        let key: Option<String> = row.get(10).map_err(database)?;
        if let (Some(key), Some((_, selection))) = (key, selections.last_mut()) {
            let value: String = row.get(11).map_err(database)?;
            let confidence: f64 = row.get(12).map_err(database)?;
            let candidate = (key == "species", confidence, value);
            let better = selection
                .species
                .as_ref()
                .is_none_or(|best| (candidate.0, candidate.1) > (best.0, best.1));
            if better {
                selection.species = Some(candidate);
            }
        }
    }
    let file = std::fs::File::create(output).map_err(|e| write_error(output, e))?;
    let mut out = std::io::BufWriter::new(file);
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    let written: std::io::Result<()> = (|| {
        writeln!(out, "{RAVEN_HEADER}")?;
        for (n, (_, s)) in selections.iter().enumerate() {
            let species = s
                .species
                .as_ref()
                .map_or(String::new(), |(_, _, value)| clean(value));
            writeln!(
                out,
                "{}\tSpectrogram 1\t1\t{}\t{}\t{}\t{}\t{}\t{species}\t{}",
                n + 1,
                s.begin,
                s.end,
                s.low,
                s.high,
                clean(&s.file),
                s.score
            )?;
        }
        out.flush()
    })();
    written.map_err(|e| write_error(output, e))?;
    Ok(selections.len())
}

/// Writes a plan (see `docs/reprocess.md`): one row per file, sorted by path, columns
/// `path` (relative to the archive root, `/`-separated), `size` (bytes), `mtime_ns`
/// (nanoseconds since the Unix epoch) and `duration` (seconds; NULL when the header
/// could not be read). The file is written beside its name and renamed into place.
pub fn write_plan(output: &Path, entries: &[PlanEntry]) -> Result<(), StoreError> {
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Database(format!("plan: cannot write `{}`: {e}", output.display()))
    };
    let name = output
        .file_name()
        .ok_or_else(|| fail(&"not a file name"))?
        .to_string_lossy()
        .into_owned();
    let partial = output.with_file_name(format!(".{name}.partial"));
    let target = super::rows::sql_path(&partial).ok_or_else(|| fail(&"not valid UTF-8"))?;
    let conn = Connection::open_in_memory().map_err(|e| fail(&e))?;
    conn.execute_batch(
        "CREATE TABLE plan (path VARCHAR NOT NULL, size UBIGINT NOT NULL, \
         mtime_ns BIGINT NOT NULL, duration DOUBLE)",
    )
    .map_err(|e| fail(&e))?;
    {
        let mut appender = conn.appender("plan").map_err(|e| fail(&e))?;
        for entry in entries {
            appender
                .append_row(params![
                    entry.relative,
                    entry.size,
                    entry.mtime_ns,
                    entry.duration
                ])
                .map_err(|e| fail(&e))?;
        }
        appender.flush().map_err(|e| fail(&e))?;
    }
    conn.execute_batch(&format!(
        "COPY (SELECT * FROM plan ORDER BY path) TO {target} (FORMAT parquet)"
    ))
    .map_err(|e| fail(&e))?;
    std::fs::rename(&partial, output).map_err(|e| fail(&e))
}

/// Reads a plan [`write_plan`] wrote (or any Parquet file with its columns).
pub fn read_plan(plan: &Path) -> Result<Vec<PlanEntry>, StoreError> {
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Database(format!("plan: cannot read `{}`: {e}", plan.display()))
    };
    // read_parquet expands glob patterns: such a name would read other files.
    if plan.to_string_lossy().contains(['*', '?', '[']) {
        return Err(fail(
            &"the path holds `*`, `?` or `[`, which DuckDB takes for a pattern; rename the file",
        ));
    }
    if !plan.is_file() {
        return Err(fail(&"no such file"));
    }
    let source = super::rows::sql_path(plan).ok_or_else(|| fail(&"not valid UTF-8"))?;
    let conn = Connection::open_in_memory().map_err(|e| fail(&e))?;
    let mut statement = conn
        .prepare(&format!(
            "SELECT CAST(path AS VARCHAR), CAST(size AS UBIGINT), CAST(mtime_ns AS BIGINT), \
             CAST(duration AS DOUBLE) FROM read_parquet({source}) ORDER BY path"
        ))
        .map_err(|e| fail(&e))?;
    let rows = statement
        .query_map([], |row| {
            Ok(PlanEntry {
                relative: row.get(0)?,
                size: row.get(1)?,
                mtime_ns: row.get(2)?,
                duration: row.get(3)?,
            })
        })
        .map_err(|e| fail(&e))?;
    rows.collect::<Result<Vec<_>, _>>().map_err(|e| fail(&e))
}

/// The hive-partitioned layout of `acoupi reprocess --format parquet`: the store's
/// detections (the `detections_flat` columns) and recordings as
/// `<root>/<table>/deployment=<name>/date=<YYYY-MM-DD>/part-<part>.parquet`, one file
/// per deployment name and recording day (UTC), so a season's shards can be queried in place
/// (`read_parquet('<root>/detections/**/*.parquet', hive_partitioning = true)`).
///
/// Each file holds every row of its partition the store has, and is written beside its
/// name and renamed into place: a rerun of the same shard (`part`) replaces its files
/// and never duplicates a row; other parts' files are never touched. In a deployment
/// name, bytes other than ASCII letters, digits, `-` and `_` (and a `.` after the first
/// character) are written as `%XX`. Returns the number of files written.
pub fn export_partitioned(
    store: &DuckDbStore,
    root: &Path,
    part: &str,
) -> Result<usize, StoreError> {
    let fail = |path: &Path, e: &dyn std::fmt::Display| {
        StoreError::Database(format!("Parquet: cannot write `{}`: {e}", path.display()))
    };
    if part.is_empty() || part.contains(['/', '\\']) || part.starts_with('.') {
        return Err(fail(root, &format!("`{part}` is not a part name")));
    }
    let conn = store.connection();
    let mut statement = conn
        .prepare(
            "SELECT DISTINCT d.name, strftime(CAST(r.created_on AS DATE), '%Y-%m-%d') \
             FROM recordings r JOIN deployments d ON d.id = r.deployment_id ORDER BY 1, 2",
        )
        .map_err(database)?;
    let partitions = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(database)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(database)?;
    let tables = [
        (
            "detections",
            format!(
                "{} WHERE d.name = {{deployment}} AND CAST(r.created_on AS DATE) = {{date}}::DATE \
                 ORDER BY r.created_on, r.id, det.rowid, t.rowid",
                detections_flat_select!()
            ),
        ),
        (
            "recordings",
            "SELECT r.id, r.created_on, r.duration, r.samplerate, r.audio_channels, \
             r.time_expansion, r.path, d.id AS deployment_id, d.name AS deployment_name \
             FROM recordings r JOIN deployments d ON d.id = r.deployment_id \
             WHERE d.name = {deployment} AND CAST(r.created_on AS DATE) = {date}::DATE ORDER BY r.created_on, r.id"
                .to_owned(),
        ),
    ];
    let mut written = 0;
    for (name, date) in &partitions {
        for (table, select) in &tables {
            let folder = root
                .join(table)
                .join(format!("deployment={}", partition_value(name)))
                .join(format!("date={date}"));
            std::fs::create_dir_all(&folder).map_err(|e| fail(&folder, &e))?;
            let file = folder.join(format!("part-{part}.parquet"));
            let partial = folder.join(format!(".part-{part}.parquet.partial"));
            let target = super::rows::sql_path(&partial)
                .ok_or_else(|| fail(&partial, &"not valid UTF-8"))?;
            // COPY takes no parameters: the values go in as literals, the name last (it
            // may hold anything, `{date}` included).
            let literal = |text: &str| format!("'{}'", text.replace('\'', "''"));
            let select = select
                .replace("{date}", &literal(date))
                .replace("{deployment}", &literal(name));
            conn.execute(&format!("COPY ({select}) TO {target} (FORMAT parquet)"), [])
                .map_err(|e| fail(&file, &e))?;
            std::fs::rename(&partial, &file).map_err(|e| fail(&file, &e))?;
            written += 1;
        }
    }
    Ok(written)
}

/// A deployment name as a partition folder's value (see [`export_partitioned`]).
fn partition_value(name: &str) -> String {
    let mut value = String::new();
    for (i, byte) in name.bytes().enumerate() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0) {
            value.push(char::from(byte));
        } else {
            value.push_str(&format!("%{byte:02X}"));
        }
    }
    if value.is_empty() {
        value.push_str("%00");
    }
    value
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    #[test]
    fn a_plan_round_trips_through_parquet_sorted_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("season.plan.parquet");
        let entries = vec![
            PlanEntry {
                relative: "site-b/20260601_000000.wav".into(),
                size: 9_600_044,
                mtime_ns: 1_780_000_000_123_456_789,
                duration: Some(100.0),
            },
            PlanEntry {
                relative: "site-a/bad.wav".into(),
                size: 0,
                mtime_ns: -5,
                duration: None,
            },
        ];
        write_plan(&file, &entries).unwrap();
        let read = read_plan(&file).unwrap();
        assert_eq!(read, [entries[1].clone(), entries[0].clone()]);
        // Readable without acoupi: plain Parquet with the documented columns.
        let conn = Connection::open_in_memory().unwrap();
        let columns: String = conn
            .query_row(
                &format!(
                    "SELECT string_agg(name || ' ' || type, ', ') FROM parquet_schema('{}') WHERE num_children IS NULL",
                    file.display()
                ),
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(
            columns,
            "path BYTE_ARRAY, size INT64, mtime_ns INT64, duration DOUBLE"
        );
        // No partial file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let missing = read_plan(&dir.path().join("none.parquet")).unwrap_err();
        assert!(missing.to_string().contains("none.parquet"), "{missing}");
        std::fs::write(dir.path().join("junk.parquet"), b"not parquet").unwrap();
        assert!(read_plan(&dir.path().join("junk.parquet")).is_err());
    }
}

#[cfg(test)]
mod partitioned_tests {
    use super::*;
    use crate::reprocessed::tests::file;
    use acoupi_engine::reprocess::ArchiveStore;

    fn rows(sql: &str) -> Vec<(String, String, i64)> {
        let conn = Connection::open_in_memory().unwrap();
        let mut statement = conn.prepare(sql).unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn shards_write_their_own_part_of_each_partition_and_a_rerun_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("parquet");
        let one = DuckDbStore::open(&dir.path().join("one.duckdb")).unwrap();
        let two = DuckDbStore::open(&dir.path().join("two.duckdb")).unwrap();
        one.store_reprocessed(&[file("/a/1.wav", true)]).unwrap();
        two.store_reprocessed(&[file("/a/2.wav", true), file("/a/3.wav", true)])
            .unwrap();
        assert_eq!(export_partitioned(&one, &root, "shard-1-of-2").unwrap(), 2);
        assert_eq!(export_partitioned(&two, &root, "shard-2-of-2").unwrap(), 2);
        // Again, after more rows: replaced, not appended.
        two.store_reprocessed(&[file("/a/4.wav", true)]).unwrap();
        export_partitioned(&two, &root, "shard-2-of-2").unwrap();
        let glob = |table: &str| format!("{}/{table}/**/*.parquet", root.display());
        let detections = rows(&format!(
            "SELECT deployment, date::VARCHAR, count(*) FROM read_parquet('{}', hive_partitioning = true) GROUP BY ALL",
            glob("detections")
        ));
        // Each file's output holds 2 detections (one tag each at most): 4 files, 8 rows.
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        assert_eq!(detections, [("test site".to_string(), today.clone(), 8)]);
        let recordings = rows(&format!(
            "SELECT deployment_name, filename.split('/')[-1], count(*) FROM read_parquet('{}', filename = true) GROUP BY ALL ORDER BY 2",
            glob("recordings")
        ));
        assert_eq!(
            recordings,
            [
                (
                    "test site".to_string(),
                    "part-shard-1-of-2.parquet".to_string(),
                    1
                ),
                (
                    "test site".to_string(),
                    "part-shard-2-of-2.parquet".to_string(),
                    3
                )
            ]
        );
        assert!(export_partitioned(&one, &root, "../x").is_err());
    }

    #[test]
    fn deployment_names_become_safe_folder_names() {
        assert_eq!(partition_value("north-field_2"), "north-field_2");
        assert_eq!(partition_value("a/b=c d"), "a%2Fb%3Dc%20d");
        assert_eq!(partition_value(".."), "%2E.");
        assert_eq!(partition_value("v1.2"), "v1.2");
        assert_eq!(partition_value("é"), "%C3%A9");
        assert_eq!(partition_value(""), "%00");
    }
}

//! `acoupi export`: detections, recordings or messages of a store, as Parquet or CSV
//! (written by DuckDB's `COPY ... TO`) or, for detections, as a Raven Pro selection
//! table.
//!
//! Rows are selected by time: detections and recordings by the recording's
//! `created_on`, messages by their `created_on`; `since` is included, `until` is not.
//! The queries read the base tables, so files of every schema version export alike.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use duckdb::Connection;

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
    if format == ExportFormat::Raven && what != ExportWhat::Detections {
        return Err(StoreError::Database(format!(
            "a Raven selection table holds detections only; export {} as parquet or csv",
            match what {
                ExportWhat::Recordings => "recordings",
                _ => "messages",
            }
        )));
    }
    if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| write_error(output, e))?;
    }
    let store = DuckDbStore::open_for_reading(path)?;
    let conn = store.connection();
    let time_column = match what {
        ExportWhat::Detections | ExportWhat::Recordings => "r.created_on",
        ExportWhat::Messages => "m.created_on",
    };
    let condition = time_condition(time_column, since, until);
    match format {
        ExportFormat::Raven => raven(&conn, &condition, output),
        ExportFormat::Parquet => copy(&conn, &select(what, &condition), output, "FORMAT parquet"),
        ExportFormat::Csv => copy(
            &conn,
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

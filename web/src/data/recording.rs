//! One Recording as the media endpoints, the recording page and `GET
//! /api/v1/recordings/{id}` show it: its row (with the deployment's name and `kept` when
//! the store has that column), its model outputs with their detections and tags, and the
//! count of its detections (part of a spectrogram's cache key).
//!
//! Ids are parsed [`Uuid`]s written into the SQL as literals (DuckDB 1.5 seeks an index
//! only for `column = constant`; a parsed UUID cannot carry anything else).

use chrono::{DateTime, Utc};
use duckdb::Connection;
use serde::Serialize;
use uuid::Uuid;

use crate::WebError;

/// A `recordings` row and its deployment's name.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RecordingRow {
    pub id: Uuid,
    pub deployment_name: Option<String>,
    pub created_on: DateTime<Utc>,
    /// Seconds.
    pub duration: f64,
    pub samplerate: u32,
    pub audio_channels: u32,
    pub time_expansion: f64,
    /// `None` once retention deleted the file.
    pub path: Option<String>,
    pub gaps: u32,
    pub lost_frames: u64,
    /// "Keep" (protected from retention); `None` when the store has no such column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<bool>,
}

/// A model output of a recording and its detections.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OutputRow {
    pub id: Uuid,
    pub name_model: String,
    pub created_on: DateTime<Utc>,
    pub detections: Vec<DetectionRow>,
}

/// A detection with its tags; the location is in seconds from the recording's start and
/// Hz, all `None` for a presence-only detection.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DetectionRow {
    pub id: Uuid,
    pub prediction_type: String,
    pub detection_score: f64,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    pub low_freq: Option<f64>,
    pub high_freq: Option<f64>,
    pub tags: Vec<TagRow>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TagRow {
    pub key: String,
    pub value: String,
    pub confidence: f64,
}

impl DetectionRow {
    /// `key=value` of the tag with the highest confidence (a box's label).
    pub(crate) fn label(&self) -> String {
        self.tags
            .iter()
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
            .map_or_else(
                || self.prediction_type.clone(),
                |t| format!("{} {:.2}", t.value, t.confidence),
            )
    }
}

fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn uuid(text: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(text).map_err(|e| WebError::Store(format!("a stored id `{text}`: {e}")))
}

/// Whether `recordings` has a `kept` column (added by the review work).
fn has_kept(conn: &Connection) -> Result<bool, WebError> {
    let mut statement = conn.prepare(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'recordings' AND column_name = 'kept'",
    )?;
    let n: i64 = statement.query_row([], |row| row.get(0))?;
    Ok(n > 0)
}

/// The recording `id`, or `None`.
pub(crate) fn recording(conn: &Connection, id: Uuid) -> Result<Option<RecordingRow>, WebError> {
    let kept = if has_kept(conn)? {
        "CAST(r.kept AS BOOLEAN)"
    } else {
        "NULL::BOOLEAN"
    };
    let mut statement = conn.prepare(&format!(
        "SELECT CAST(r.id AS VARCHAR), d.name, epoch_us(r.created_on), r.duration, \
         r.samplerate, r.audio_channels, r.time_expansion, r.path, r.gaps, r.lost_frames, {kept} \
         FROM recordings r LEFT JOIN deployments d ON d.id = r.deployment_id \
         WHERE r.id = '{id}'"
    ))?;
    let mut rows = statement.query([])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let id_text: String = row.get(0)?;
    Ok(Some(RecordingRow {
        id: uuid(&id_text)?,
        deployment_name: row.get(1)?,
        created_on: time(row.get(2)?),
        duration: row.get(3)?,
        samplerate: row.get(4)?,
        audio_channels: row.get(5)?,
        time_expansion: row.get(6)?,
        path: row.get(7)?,
        gaps: row.get(8)?,
        lost_frames: row.get(9)?,
        kept: row.get(10)?,
    }))
}

/// The recording's model outputs (oldest first), each with its detections (by start time)
/// and their tags.
pub(crate) fn outputs(conn: &Connection, id: Uuid) -> Result<Vec<OutputRow>, WebError> {
    let mut statement = conn.prepare(&format!(
        "SELECT CAST(mo.id AS VARCHAR), mo.name_model, epoch_us(mo.created_on), \
         CAST(d.id AS VARCHAR), CAST(d.prediction_type AS VARCHAR), d.detection_score, \
         d.start_time, d.end_time, d.low_freq, d.high_freq, t.key, t.value, t.confidence_score \
         FROM model_outputs mo \
         LEFT JOIN detections d ON d.model_output_id = mo.id \
         LEFT JOIN detection_tags t ON t.detection_id = d.id \
         WHERE mo.recording_id = '{id}' \
         ORDER BY mo.created_on, mo.id, d.start_time NULLS FIRST, d.id, t.confidence_score DESC, t.key"
    ))?;
    let mut rows = statement.query([])?;
    let mut outputs: Vec<OutputRow> = Vec::new();
    while let Some(row) = rows.next()? {
        let output_id = uuid(&row.get::<_, String>(0)?)?;
        if outputs.last().is_none_or(|o| o.id != output_id) {
            outputs.push(OutputRow {
                id: output_id,
                name_model: row.get(1)?,
                created_on: time(row.get(2)?),
                detections: Vec::new(),
            });
        }
        let Some(output) = outputs.last_mut() else {
            continue;
        };
        let Some(detection_id) = row.get::<_, Option<String>>(3)? else {
            continue;
        };
        let detection_id = uuid(&detection_id)?;
        if output
            .detections
            .last()
            .is_none_or(|d| d.id != detection_id)
        {
            output.detections.push(DetectionRow {
                id: detection_id,
                prediction_type: row.get(4)?,
                detection_score: row.get(5)?,
                start_time: row.get(6)?,
                end_time: row.get(7)?,
                low_freq: row.get(8)?,
                high_freq: row.get(9)?,
                tags: Vec::new(),
            });
        }
        if let (Some(detection), Some(key)) = (
            output.detections.last_mut(),
            row.get::<_, Option<String>>(10)?,
        ) {
            detection.tags.push(TagRow {
                key,
                value: row.get(11)?,
                confidence: row.get(12)?,
            });
        }
    }
    Ok(outputs)
}

/// How many detections the recording has (all model outputs).
pub(crate) fn detection_count(conn: &Connection, id: Uuid) -> Result<u64, WebError> {
    let mut statement = conn.prepare(&format!(
        "SELECT count(*) FROM detections d JOIN model_outputs mo ON mo.id = d.model_output_id \
         WHERE mo.recording_id = '{id}'"
    ))?;
    let n: i64 = statement.query_row([], |row| row.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

//! Conversions between table rows and the data model: how ids, timestamps, enums and
//! paths are written to and read from DuckDB, and the SELECTs that read recordings,
//! model outputs and messages back.
//!
//! Ids are bound as text and cast by DuckDB to `UUID` (they come back as text);
//! timestamps are bound as RFC 3339 text with `+00:00` and stored as `TIMESTAMPTZ`
//! (microseconds since the epoch, UTC), so they are kept to the microsecond.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use acoupi_engine::data::{
    BoundingBox, Content, Deployment, Detection, Message, MessageType, ModelOutput,
    ModelOutputInfo, PredictedTag, PredictionType, Recording, Tag,
};
use chrono::{DateTime, Utc};
use duckdb::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, Value, ValueRef};
use duckdb::{Connection, Row};
use uuid::Uuid;

use super::{StoreError, database};

/// A [`Uuid`] as a DuckDB parameter or column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SqlUuid(pub Uuid);

impl ToSql for SqlUuid {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(Value::Text(self.0.to_string())))
    }
}

impl FromSql for SqlUuid {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        // DuckDB hands `UUID` columns to the Rust API as text.
        let ValueRef::Text(text) = value else {
            return Err(FromSqlError::InvalidType);
        };
        std::str::from_utf8(text)
            .ok()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(SqlUuid)
            .ok_or_else(|| FromSqlError::Other("not a UUID".into()))
    }
}

/// A UTC timestamp as a DuckDB parameter (RFC 3339 text) or `TIMESTAMPTZ` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SqlTime(pub DateTime<Utc>);

impl ToSql for SqlTime {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(Value::Text(timestamp_literal(&self.0))))
    }
}

impl FromSql for SqlTime {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Timestamp(unit, amount) => {
                DateTime::from_timestamp_micros(unit.to_micros(amount))
                    .map(SqlTime)
                    .ok_or(FromSqlError::OutOfRange(i128::from(amount)))
            }
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

/// `2026-05-01 06:00:00.123456+00:00`: what DuckDB casts to `TIMESTAMPTZ` exactly.
pub(super) fn timestamp_literal(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
}

/// The time as stored: truncated to the microsecond.
pub fn stored_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

pub(super) fn prediction_type_name(t: PredictionType) -> &'static str {
    match t {
        PredictionType::Presence => "presence",
        PredictionType::Sequence => "sequence",
        PredictionType::Event => "event",
    }
}

fn prediction_type(name: &str) -> Result<PredictionType, StoreError> {
    match name {
        "presence" => Ok(PredictionType::Presence),
        "sequence" => Ok(PredictionType::Sequence),
        "event" => Ok(PredictionType::Event),
        other => Err(StoreError::Invalid(format!(
            "detections.prediction_type `{other}`: expected presence, sequence or event"
        ))),
    }
}

pub(super) fn message_type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Deployment => "deployment",
        MessageType::Heartbeat => "heartbeat",
        MessageType::Recording => "recording",
        MessageType::Summary => "summary",
        MessageType::Detection => "detection",
    }
}

fn message_type(name: &str) -> Result<MessageType, StoreError> {
    match name {
        "deployment" => Ok(MessageType::Deployment),
        "heartbeat" => Ok(MessageType::Heartbeat),
        "recording" => Ok(MessageType::Recording),
        "summary" => Ok(MessageType::Summary),
        "detection" => Ok(MessageType::Detection),
        other => Err(StoreError::Invalid(format!(
            "messages.message_type `{other}`: expected deployment, heartbeat, recording, summary or detection"
        ))),
    }
}

/// A path as stored: UTF-8 text. Other paths are refused rather than altered.
pub(super) fn path_text(path: &Path) -> Result<&str, StoreError> {
    path.to_str()
        .ok_or_else(|| StoreError::Invalid(format!("path `{}` is not valid UTF-8", path.display())))
}

/// A path as an SQL string literal (quotes doubled), for the statements that name a file
/// and cannot bind it as a parameter (`COPY … TO`, `ATTACH`, `EXPORT`/`IMPORT DATABASE`);
/// `None` for a path that is not UTF-8.
pub(super) fn sql_path(path: &Path) -> Option<String> {
    path.to_str()
        .map(|text| format!("'{}'", text.replace('\'', "''")))
}

/// An id as an SQL literal (`'…'`, hex and dashes only). Look-ups name their key as a
/// literal, not a parameter: DuckDB seeks through an ART index only for a constant it
/// sees when it plans (see "Prepared statements and speed" in the module docs).
pub(super) fn uuid_literal(id: Uuid) -> String {
    format!("'{id}'")
}

/// Binds `&[&dyn ToSql]` from owned parameters.
pub(super) fn refs(params: &[Box<dyn ToSql>]) -> Vec<&dyn ToSql> {
    params.iter().map(|p| p.as_ref() as &dyn ToSql).collect()
}

/// `deployments` parameters, in column order.
pub(super) fn deployment_params(d: &Deployment) -> [Box<dyn ToSql>; 6] {
    [
        Box::new(SqlUuid(d.id)),
        Box::new(d.name.clone()),
        Box::new(d.latitude),
        Box::new(d.longitude),
        Box::new(SqlTime(d.started_on)),
        Box::new(d.ended_on.map(SqlTime)),
    ]
}

/// `recordings` parameters, in column order.
pub(super) fn recording_params(r: &Recording) -> Result<[Box<dyn ToSql>; 10], StoreError> {
    let path = r
        .path
        .as_deref()
        .map(path_text)
        .transpose()?
        .map(str::to_owned);
    Ok([
        Box::new(SqlUuid(r.id)),
        Box::new(SqlUuid(r.deployment.id)),
        Box::new(SqlTime(r.created_on)),
        Box::new(r.duration),
        Box::new(r.samplerate),
        Box::new(r.audio_channels),
        Box::new(r.time_expansion),
        Box::new(path),
        Box::new(r.gaps),
        Box::new(r.lost_frames),
    ])
}

/// The columns [`recording_at`] reads, from `recordings r JOIN deployments d`.
pub(super) const RECORDING_COLUMNS: &str = "r.id, r.created_on, r.duration, r.samplerate, \
    r.audio_channels, r.time_expansion, r.path, coalesce(r.gaps, 0), coalesce(r.lost_frames, 0), \
    d.id, d.name, d.latitude, d.longitude, d.started_on, d.ended_on";

/// The FROM clause every read of outputs shares; conditions may use `mo`, `r` and `d`.
const OUTPUTS_FROM: &str = "model_outputs mo \
    JOIN recordings r ON r.id = mo.recording_id \
    JOIN deployments d ON d.id = r.deployment_id";

/// The recording (with its deployment) in the [`RECORDING_COLUMNS`] starting at `at`.
pub(super) fn recording_at(row: &Row<'_>, at: usize) -> duckdb::Result<Recording> {
    Ok(Recording {
        id: row.get::<_, SqlUuid>(at)?.0,
        created_on: row.get::<_, SqlTime>(at + 1)?.0,
        duration: row.get(at + 2)?,
        samplerate: row.get(at + 3)?,
        audio_channels: row.get(at + 4)?,
        time_expansion: row.get(at + 5)?,
        path: row.get::<_, Option<String>>(at + 6)?.map(PathBuf::from),
        gaps: row.get(at + 7)?,
        lost_frames: row.get(at + 8)?,
        deployment: deployment_at(row, at + 9)?,
    })
}

/// The deployment in the columns `id, name, latitude, longitude, started_on, ended_on`
/// starting at `at`.
pub(super) fn deployment_at(row: &Row<'_>, at: usize) -> duckdb::Result<Deployment> {
    Ok(Deployment {
        id: row.get::<_, SqlUuid>(at)?.0,
        name: row.get(at + 1)?,
        latitude: row.get(at + 2)?,
        longitude: row.get(at + 3)?,
        started_on: row.get::<_, SqlTime>(at + 4)?.0,
        ended_on: row.get::<_, Option<SqlTime>>(at + 5)?.map(|t| t.0),
    })
}

/// Prepares and runs `sql` and maps every row; errors become [`StoreError::Database`].
/// Never cached: see "Prepared statements" in the module docs.
pub(super) fn select<T>(
    conn: &Connection,
    sql: &str,
    params: &[&dyn duckdb::ToSql],
    map: impl FnMut(&Row<'_>) -> duckdb::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare(sql).map_err(database)?;
    let rows = statement.query_map(params, map).map_err(database)?;
    rows.collect::<duckdb::Result<Vec<T>>>().map_err(database)
}

/// `r.path = '…'`: a look-up by path, the path as a literal (see [`uuid_literal`]).
pub(super) fn path_condition(path: &Path) -> Result<String, StoreError> {
    let text = path_text(path)?;
    Ok(format!("r.path = '{}'", text.replace('\'', "''")))
}

/// The recordings matching `condition` (on `r` and `d`), oldest first.
pub(super) fn recordings_where(
    conn: &Connection,
    condition: &str,
    params: &[&dyn duckdb::ToSql],
) -> Result<Vec<Recording>, StoreError> {
    let sql = format!(
        "SELECT {RECORDING_COLUMNS} FROM recordings r JOIN deployments d ON d.id = r.deployment_id \
         WHERE {condition} ORDER BY r.created_on, r.id"
    );
    select(conn, &sql, params, |row| recording_at(row, 0))
}

/// The full model outputs matching `condition` (on `mo`, `r` and `d`), oldest first,
/// each with its detections and tags in the order they were stored. Two queries whose
/// joins scan the tables: for ranges of time; one recording's outputs are read through
/// the indexes by [`outputs_of_recording`].
pub(super) fn outputs_where(
    conn: &Connection,
    condition: &str,
    params: &[&dyn duckdb::ToSql],
) -> Result<Vec<ModelOutput>, StoreError> {
    let sql = format!(
        "SELECT mo.id, mo.name_model, mo.created_on, {RECORDING_COLUMNS} FROM {OUTPUTS_FROM} \
         WHERE {condition} ORDER BY mo.created_on, mo.id"
    );
    let mut outputs = select(conn, &sql, params, |row| {
        Ok(ModelOutput {
            id: row.get::<_, SqlUuid>(0)?.0,
            name_model: row.get(1)?,
            created_on: row.get::<_, SqlTime>(2)?.0,
            recording: recording_at(row, 3)?,
            detections: Vec::new(),
        })
    })?;
    if outputs.is_empty() {
        return Ok(outputs);
    }
    let sql = format!(
        "SELECT {DETECTION_COLUMNS} FROM {OUTPUTS_FROM} \
         JOIN detections det ON det.model_output_id = mo.id {DETECTIONS_JOIN} \
         WHERE {condition} ORDER BY det.rowid, t.rowid"
    );
    let mut detections = group_detections(select(conn, &sql, params, DetectionRow::read)?)?;
    for output in &mut outputs {
        output.detections = detections.remove(&output.id).unwrap_or_default();
    }
    Ok(outputs)
}

/// The full model outputs of one recording, oldest first: a query on
/// `model_outputs.recording_id`, then one per output on `detections.model_output_id`,
/// so the cost does not grow with the store.
pub(super) fn outputs_of_recording(
    conn: &Connection,
    recording: &Recording,
) -> Result<Vec<ModelOutput>, StoreError> {
    let infos = output_infos_of_recording(conn, recording.id)?;
    let mut outputs = Vec::with_capacity(infos.len());
    for info in infos {
        let sql = format!(
            "SELECT {DETECTION_COLUMNS} FROM detections det {DETECTIONS_JOIN} \
             WHERE det.model_output_id = {} ORDER BY det.rowid, t.rowid",
            uuid_literal(info.id)
        );
        let rows = select(conn, &sql, &[], DetectionRow::read)?;
        let detections = group_detections(rows)?.remove(&info.id).unwrap_or_default();
        outputs.push(ModelOutput {
            id: info.id,
            name_model: info.name_model,
            recording: recording.clone(),
            detections,
            created_on: info.created_on,
        });
    }
    Ok(outputs)
}

/// The light form of one recording's outputs, oldest first.
pub(super) fn output_infos_of_recording(
    conn: &Connection,
    recording_id: Uuid,
) -> Result<Vec<ModelOutputInfo>, StoreError> {
    select(
        conn,
        &format!(
            "SELECT id, name_model, created_on FROM model_outputs WHERE recording_id = {} \
             ORDER BY created_on, id",
            uuid_literal(recording_id)
        ),
        &[],
        |row| {
            Ok(ModelOutputInfo {
                id: row.get::<_, SqlUuid>(0)?.0,
                name_model: row.get(1)?,
                created_on: row.get::<_, SqlTime>(2)?.0,
            })
        },
    )
}

/// The columns [`DetectionRow::read`] reads, from `detections det` [`DETECTIONS_JOIN`].
const DETECTION_COLUMNS: &str = "det.model_output_id, det.id, det.prediction_type, \
    det.start_time, det.low_freq, det.end_time, det.high_freq, det.detection_score, \
    t.key, t.value, t.confidence_score";
const DETECTIONS_JOIN: &str = "LEFT JOIN detection_tags t ON t.detection_id = det.id";

/// Detections by model output id, from rows ordered by detection: a detection's rows
/// (one per tag) follow each other.
fn group_detections(rows: Vec<DetectionRow>) -> Result<HashMap<Uuid, Vec<Detection>>, StoreError> {
    let mut detections: HashMap<Uuid, Vec<Detection>> = HashMap::new();
    for row in rows {
        let list = detections.entry(row.model_output_id).or_default();
        let tag = row.tag();
        match list.last_mut() {
            Some(last) if last.id == row.id => last.tags.extend(tag),
            _ => {
                let mut detection = row.detection()?;
                detection.tags.extend(tag);
                list.push(detection);
            }
        }
    }
    Ok(detections)
}

/// One row of detections ⟕ detection_tags, before validation.
struct DetectionRow {
    model_output_id: Uuid,
    id: Uuid,
    prediction_type: String,
    location: [Option<f64>; 4],
    detection_score: f64,
    tag: Option<(String, String, f64)>,
}

impl DetectionRow {
    fn read(row: &Row<'_>) -> duckdb::Result<Self> {
        let key: Option<String> = row.get(8)?;
        let tag = match key {
            Some(key) => Some((key, row.get(9)?, row.get(10)?)),
            None => None,
        };
        Ok(DetectionRow {
            model_output_id: row.get::<_, SqlUuid>(0)?.0,
            id: row.get::<_, SqlUuid>(1)?.0,
            prediction_type: row.get(2)?,
            location: [row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?],
            detection_score: row.get(7)?,
            tag,
        })
    }

    fn detection(&self) -> Result<Detection, StoreError> {
        let invalid = |e: acoupi_engine::data::DataError| {
            StoreError::Invalid(format!("detection {}: {e}", self.id))
        };
        let location = match self.location {
            [Some(start), Some(low), Some(end), Some(high)] => {
                Some(BoundingBox::new(start, low, end, high).map_err(invalid)?)
            }
            [None, None, None, None] => None,
            partial => {
                return Err(StoreError::Invalid(format!(
                    "detection {}: location has only some of its four values: {partial:?}",
                    self.id
                )));
            }
        };
        Ok(Detection {
            id: self.id,
            prediction_type: prediction_type(&self.prediction_type)?,
            location,
            detection_score: self.detection_score,
            tags: Vec::new(),
        })
    }

    /// The row's tag, if it has one; its score as stored (the data model's fields are
    /// public, so a stored value is not re-validated).
    fn tag(&self) -> Option<PredictedTag> {
        let (key, value, confidence) = self.tag.as_ref()?;
        Some(PredictedTag {
            tag: Tag::new(key.clone(), value.clone()),
            confidence_score: *confidence,
        })
    }
}

/// The columns [`message_at`] reads from `messages m`.
pub(super) const MESSAGE_COLUMNS: &str =
    "m.id, m.content, m.content_bytes, m.created_on, m.message_type";

/// One `messages` row, before its type is checked.
pub(super) struct MessageRow {
    id: Uuid,
    text: Option<String>,
    bytes: Option<Vec<u8>>,
    created_on: DateTime<Utc>,
    message_type: Option<String>,
}

pub(super) fn message_at(row: &Row<'_>) -> duckdb::Result<MessageRow> {
    Ok(MessageRow {
        id: row.get::<_, SqlUuid>(0)?.0,
        text: row.get(1)?,
        bytes: row.get(2)?,
        created_on: row.get::<_, SqlTime>(3)?.0,
        message_type: row.get(4)?,
    })
}

impl TryFrom<MessageRow> for Message {
    type Error = StoreError;

    fn try_from(row: MessageRow) -> Result<Message, StoreError> {
        let content = match (row.text, row.bytes) {
            (Some(text), None) => Content::Text(text),
            (None, Some(bytes)) => Content::Bytes(bytes),
            _ => {
                return Err(StoreError::Invalid(format!(
                    "message {}: exactly one of content and content_bytes must be set",
                    row.id
                )));
            }
        };
        Ok(Message {
            id: row.id,
            content,
            created_on: row.created_on,
            message_type: row.message_type.as_deref().map(message_type).transpose()?,
        })
    }
}

/// `messages` parameters, in column order.
pub(super) fn message_params(m: &Message) -> [Box<dyn ToSql>; 5] {
    let (text, bytes) = match &m.content {
        Content::Text(text) => (Some(text.clone()), None),
        Content::Bytes(bytes) => (None, Some(bytes.clone())),
    };
    [
        Box::new(SqlUuid(m.id)),
        Box::new(text),
        Box::new(bytes),
        Box::new(SqlTime(m.created_on)),
        Box::new(m.message_type.map(|t| message_type_name(t).to_owned())),
    ]
}

//! [`Store`] and [`MessageStore`] for [`DuckDbStore`]: every write in one transaction
//! under the connection's lock, every read through [`super::rows`].
//!
//! Single rows are added and updated by statements prepared once per connection
//! (`INSERT ... ON CONFLICT DO NOTHING`, so "add unless stored" is one statement); a
//! model output's detections and tags, and batches, go through Appenders; reads are
//! prepared for the call that runs them (see "Prepared statements and speed" in the
//! module docs).
//!
//! Writes that need a parent row (a model output's recording and deployment, a
//! response's message) add the parent when it is missing and leave it alone when it is
//! there, so a path or an end date set meanwhile is not overwritten by an older copy.

use std::path::{Path, PathBuf};

use acoupi_engine::config::pipeline::MessageOrder;
use acoupi_engine::data::{
    Deployment, Message, Metric, ModelOutput, ModelOutputInfo, Recording, Response, ResponseStatus,
};
use std::collections::HashMap;

use acoupi_engine::store::{
    Activity, KeptFile, MessageStore, Rejection, StageRunRecord, Store, StoreResult, TagScore,
};
use chrono::{DateTime, Utc};
use duckdb::types::ToSql;
use duckdb::{Appender, Connection, params};
use uuid::Uuid;

use super::rows::{
    self, MESSAGE_COLUMNS, SqlTime, SqlUuid, deployment_params, message_params, path_text,
    recording_params, refs,
};
use super::{DuckDbStore, StoreError, database};

const UPDATE_DEPLOYMENT: &str = "UPDATE deployments SET \
    name = ?2, latitude = ?3, longitude = ?4, started_on = ?5, ended_on = ?6 WHERE id = ?1";
const UPDATE_RECORDING: &str = "UPDATE recordings SET deployment_id = ?2, created_on = ?3, \
    duration = ?4, samplerate = ?5, audio_channels = ?6, time_expansion = ?7, path = ?8, \
    gaps = ?9, lost_frames = ?10 WHERE id = ?1";
/// Adds a deployment unless its id is stored (then changes nothing).
const INSERT_DEPLOYMENT: &str = "INSERT INTO deployments \
    (id, name, latitude, longitude, started_on, ended_on) VALUES (?, ?, ?, ?, ?, ?) \
    ON CONFLICT DO NOTHING";
/// Adds a recording unless its id is stored.
const INSERT_RECORDING: &str = "INSERT INTO recordings (id, deployment_id, created_on, \
    duration, samplerate, audio_channels, time_expansion, path, gaps, lost_frames) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";
/// Adds a message unless its id is stored.
const INSERT_MESSAGE: &str = "INSERT INTO messages \
    (id, content, content_bytes, created_on, message_type) VALUES (?, ?, ?, ?, ?) \
    ON CONFLICT DO NOTHING";
const INSERT_MODEL_OUTPUT: &str =
    "INSERT INTO model_outputs (id, recording_id, name_model, created_on) VALUES (?, ?, ?, ?)";
const INSERT_RESPONSE: &str = "INSERT INTO responses \
    (id, message_id, status, content, received_on) VALUES (?, ?, ?, ?, ?)";

/// Runs `write` in a transaction: committed when it returns `Ok`, rolled back otherwise.
pub(super) fn in_transaction<T>(
    conn: &mut Connection,
    write: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let tx = conn.transaction().map_err(database)?;
    let value = write(&tx)?;
    tx.commit().map_err(database)?;
    Ok(value)
}

/// Runs a statement prepared once per connection (DuckDB's plan of a write with
/// parameters does not depend on the data; reads are prepared afresh, see the module
/// docs); returns the number of rows changed.
pub(super) fn execute_cached(
    conn: &Connection,
    sql: &str,
    params: &[&dyn duckdb::ToSql],
) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(database)
}

/// Appends rows to `columns` of `table` (the others get their defaults) through an
/// Appender, inside the caller's transaction. Flushed before returning, so constraint
/// errors surface here.
pub(super) fn append(
    conn: &Connection,
    table: &str,
    columns: &[&str],
    rows: impl FnOnce(&mut Appender<'_>) -> duckdb::Result<()>,
) -> StoreResult<()> {
    let mut appender = conn
        .appender_with_columns(table, columns)
        .map_err(database)?;
    rows(&mut appender).map_err(database)?;
    appender.flush().map_err(database)
}

/// What [`put_recording`] does with a recording that is stored already.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum IfStored {
    /// Overwrite it with the given one (`store_recording`).
    Update,
    /// Leave it (a model output's copy of its recording may be older).
    Keep,
}

/// Adds the recording, and its deployment if missing (a stored deployment is left
/// alone): two cached INSERTs that do nothing where the row is stored, then an UPDATE
/// where `if_stored` asks for one.
pub(super) fn put_recording(
    conn: &Connection,
    recording: &Recording,
    if_stored: IfStored,
) -> StoreResult<()> {
    let params = recording_params(recording)?;
    execute_cached(
        conn,
        INSERT_DEPLOYMENT,
        &refs(&deployment_params(&recording.deployment)),
    )?;
    let added = execute_cached(conn, INSERT_RECORDING, &refs(&params))?;
    if added == 0 && if_stored == IfStored::Update {
        execute_cached(conn, UPDATE_RECORDING, &refs(&params))?;
    }
    Ok(())
}

/// The output, its detections and their tags. The output's id must be new.
pub(super) fn insert_model_output(conn: &Connection, output: &ModelOutput) -> StoreResult<()> {
    execute_cached(
        conn,
        INSERT_MODEL_OUTPUT,
        params![
            SqlUuid(output.id),
            SqlUuid(output.recording.id),
            output.name_model,
            SqlTime(output.created_on)
        ],
    )?;
    let columns = [
        "id",
        "model_output_id",
        "prediction_type",
        "start_time",
        "low_freq",
        "end_time",
        "high_freq",
        "detection_score",
    ];
    append(conn, "detections", &columns, |appender| {
        for detection in &output.detections {
            let [start, low, end, high] = match detection.location {
                Some(b) => b.coordinates().map(Some),
                None => [None; 4],
            };
            appender.append_row(params![
                SqlUuid(detection.id),
                SqlUuid(output.id),
                rows::prediction_type_name(detection.prediction_type),
                start,
                low,
                end,
                high,
                detection.detection_score,
            ])?;
        }
        Ok(())
    })?;
    append(
        conn,
        "detection_tags",
        &["detection_id", "key", "value", "confidence_score"],
        |appender| {
            for detection in &output.detections {
                for tag in &detection.tags {
                    appender.append_row(params![
                        SqlUuid(detection.id),
                        tag.tag.key,
                        tag.tag.value,
                        tag.confidence_score
                    ])?;
                }
            }
            Ok(())
        },
    )
}

/// The message unless it is stored.
pub(super) fn add_message_if_missing(conn: &Connection, message: &Message) -> StoreResult<()> {
    execute_cached(conn, INSERT_MESSAGE, &refs(&message_params(message))).map(drop)
}

fn unsent_sql(order: MessageOrder) -> String {
    let direction = match order {
        MessageOrder::OldestFirst => "ASC",
        MessageOrder::NewestFirst => "DESC",
    };
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m \
         WHERE NOT EXISTS (SELECT 1 FROM responses r WHERE r.message_id = m.id AND r.status = {success}) \
         ORDER BY m.created_on {direction}, m.id {direction} LIMIT ?",
        success = ResponseStatus::Success.as_i32(),
    )
}

impl Store for DuckDbStore {
    /// Adds the deployment, or updates it if its id is stored.
    fn store_deployment(&self, deployment: &Deployment) -> StoreResult<()> {
        let params = deployment_params(deployment);
        in_transaction(&mut self.connection(), |conn| {
            if execute_cached(conn, INSERT_DEPLOYMENT, &refs(&params))? == 0 {
                execute_cached(conn, UPDATE_DEPLOYMENT, &refs(&params))?;
            }
            Ok(())
        })
    }

    fn get_current_deployment(&self) -> StoreResult<Option<Deployment>> {
        let conn = self.connection();
        let mut found = rows::select(
            &conn,
            "SELECT id, name, latitude, longitude, started_on, ended_on FROM deployments \
             ORDER BY started_on DESC, id DESC LIMIT 1",
            &[],
            |row| rows::deployment_at(row, 0),
        )?;
        Ok(found.pop())
    }

    /// Errors with [`StoreError::Database`] when the deployment is not stored.
    fn update_deployment(&self, deployment: &Deployment) -> StoreResult<()> {
        let params = deployment_params(deployment);
        in_transaction(&mut self.connection(), |conn| {
            match execute_cached(conn, UPDATE_DEPLOYMENT, &refs(&params))? {
                0 => Err(StoreError::Database(format!(
                    "cannot update deployment {} (`{}`): it is not in the store",
                    deployment.id, deployment.name
                ))),
                _ => Ok(()),
            }
        })
    }

    /// Adds the recording (and its deployment if missing), or updates a stored one.
    fn store_recording(&self, recording: &Recording) -> StoreResult<()> {
        in_transaction(&mut self.connection(), |conn| {
            put_recording(conn, recording, IfStored::Update)
        })
    }

    /// Also adds the recording and its deployment if they are missing.
    fn store_model_output(&self, output: &ModelOutput) -> StoreResult<()> {
        in_transaction(&mut self.connection(), |conn| {
            put_recording(conn, &output.recording, IfStored::Keep)?;
            insert_model_output(conn, output)
        })
    }

    /// One transaction when `message_store` is this store (the station's case).
    fn store_model_output_with_messages(
        &self,
        output: &ModelOutput,
        messages: &[Message],
        message_store: &dyn MessageStore,
    ) -> StoreResult<()> {
        if !std::ptr::addr_eq(
            message_store as *const dyn MessageStore,
            self as *const Self,
        ) {
            self.store_model_output(output)?;
            return messages
                .iter()
                .try_for_each(|message| message_store.store_message(message));
        }
        in_transaction(&mut self.connection(), |conn| {
            put_recording(conn, &output.recording, IfStored::Keep)?;
            insert_model_output(conn, output)?;
            messages
                .iter()
                .try_for_each(|message| add_message_if_missing(conn, message))
        })
    }

    fn get_recordings(&self, ids: &[Uuid]) -> StoreResult<Vec<Recording>> {
        let conn = self.connection();
        let mut found = Vec::with_capacity(ids.len());
        for id in dedup(ids) {
            let condition = format!("r.id = {}", rows::uuid_literal(*id));
            found.extend(rows::recordings_where(&conn, &condition, &[])?);
        }
        Ok(found)
    }

    /// In the order of `paths`; several recordings on one path all come back.
    fn get_recordings_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutput>)>> {
        self.by_path(paths, rows::outputs_of_recording)
    }

    fn get_recordings_info_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutputInfo>)>> {
        self.by_path(paths, |conn, recording| {
            rows::output_infos_of_recording(conn, recording.id)
        })
    }

    fn get_recording_model_outputs(&self, recording_id: Uuid) -> StoreResult<Vec<ModelOutput>> {
        let conn = self.connection();
        let condition = format!("r.id = {}", rows::uuid_literal(recording_id));
        match rows::recordings_where(&conn, &condition, &[])?.first() {
            Some(recording) => rows::outputs_of_recording(&conn, recording),
            None => Ok(Vec::new()),
        }
    }

    /// Adds the recording (with the new path) if it is not stored.
    fn update_recording_path(
        &self,
        recording: &Recording,
        path: Option<&Path>,
    ) -> StoreResult<Recording> {
        let mut updated = recording.clone();
        updated.path = path.map(Path::to_path_buf);
        let text = path.map(path_text).transpose()?;
        in_transaction(&mut self.connection(), |conn| {
            let changed = execute_cached(
                conn,
                "UPDATE recordings SET path = ? WHERE id = ?",
                params![text, SqlUuid(recording.id)],
            )?;
            if changed == 0 {
                put_recording(conn, &updated, IfStored::Keep)?;
            }
            Ok(())
        })?;
        Ok(updated)
    }

    fn get_model_outputs_between(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<Vec<ModelOutput>> {
        rows::outputs_where(
            &self.connection(),
            "mo.created_on > ? AND mo.created_on <= ?",
            params![SqlTime(start), SqlTime(end)],
        )
    }

    fn store_metrics(&self, metrics: &[Metric]) -> StoreResult<()> {
        if metrics.is_empty() {
            return Ok(());
        }
        in_transaction(&mut self.connection(), |conn| {
            append(
                conn,
                "metrics",
                &["name", "value", "unit", "captured_on"],
                |appender| {
                    for metric in metrics {
                        appender.append_row(params![
                            metric.name,
                            metric.value,
                            metric.unit,
                            SqlTime(metric.captured_on)
                        ])?;
                    }
                    Ok(())
                },
            )
        })
    }

    fn store_stage_run(&self, run: &StageRunRecord) -> StoreResult<()> {
        in_transaction(&mut self.connection(), |conn| {
            append(
                conn,
                "stage_runs",
                &["stage", "kind", "started_on", "finished_on", "outcome"],
                |appender| {
                    appender.append_row(params![
                        run.stage,
                        run.kind,
                        SqlTime(run.started_on),
                        SqlTime(run.finished_on),
                        run.outcome
                    ])?;
                    Ok(())
                },
            )
        })
    }

    fn activity_since(&self, since: DateTime<Utc>) -> StoreResult<Activity> {
        let conn = self.connection();
        let count = |sql: &str, with_since: bool| -> StoreResult<u64> {
            let since = SqlTime(since);
            let params: &[&dyn ToSql] = if with_since { &[&since] } else { &[] };
            let n: i64 = conn
                .query_row(sql, params, |row| row.get(0))
                .map_err(|e| StoreError::Database(e.to_string()))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(Activity {
            recordings: count("SELECT count(*) FROM recordings WHERE created_on > ?", true)?,
            model_outputs: count(
                "SELECT count(*) FROM model_outputs WHERE created_on > ?",
                true,
            )?,
            detections: count(
                "SELECT count(*) FROM detections d JOIN model_outputs mo ON d.model_output_id = mo.id WHERE mo.created_on > ?",
                true,
            )?,
            messages: count("SELECT count(*) FROM messages WHERE created_on > ?", true)?,
            unsent_messages: count("SELECT count(*) FROM message_status WHERE NOT sent", false)?,
        })
    }

    /// One row per tag (or per recording without one), folded per recording in Rust;
    /// the SQL prefix test is confirmed with `Path::starts_with`, so `/rec` does not
    /// match `/records`.
    fn get_kept_files(&self, root: &Path) -> StoreResult<Vec<KeptFile>> {
        let prefix = path_text(root)?;
        let conn = self.connection();
        let rows = rows::select(
            &conn,
            "SELECT r.id, r.path, r.created_on, det.detection_score, t.key, t.value, t.confidence_score, \
             coalesce(r.kept, false) \
             FROM recordings r \
             LEFT JOIN model_outputs mo ON mo.recording_id = r.id \
             LEFT JOIN detections det ON det.model_output_id = mo.id \
             LEFT JOIN detection_tags t ON t.detection_id = det.id \
             WHERE r.path IS NOT NULL AND starts_with(r.path, ?) \
             ORDER BY r.created_on, r.id",
            &[&prefix],
            |row| {
                Ok((
                    row.get::<_, SqlUuid>(0)?.0,
                    row.get::<_, String>(1)?,
                    row.get::<_, SqlTime>(2)?.0,
                    row.get::<_, Option<f64>>(3)?,
                    row.get::<_, Option<String>>(4)?,
                    row.get::<_, Option<String>>(5)?,
                    row.get::<_, Option<f64>>(6)?,
                    row.get::<_, bool>(7)?,
                ))
            },
        )?;
        let mut kept: Vec<KeptFile> = Vec::new();
        for (id, path, created_on, detection, key, value, confidence, kept_mark) in rows {
            let path = PathBuf::from(path);
            if !path.starts_with(root) {
                continue;
            }
            if kept.last().is_none_or(|k| k.recording_id != id) {
                kept.push(KeptFile {
                    recording_id: id,
                    path,
                    created_on,
                    best_score: None,
                    kept: kept_mark,
                    tags: Vec::new(),
                });
            }
            let Some(file) = kept.last_mut() else {
                continue;
            };
            let Some(detection) = detection else { continue };
            file.best_score = Some(file.best_score.map_or(detection, |b| b.max(detection)));
            if let (Some(key), Some(value), Some(confidence)) = (key, value, confidence) {
                if key == acoupi_engine::data::PRIVACY_TAG_KEY {
                    continue;
                }
                let score = detection.min(confidence);
                match file
                    .tags
                    .iter_mut()
                    .find(|t| t.key == key && t.value == value)
                {
                    Some(tag) => tag.score = tag.score.max(score),
                    None => file.tags.push(TagScore { key, value, score }),
                }
            }
        }
        Ok(kept)
    }
}

impl DuckDbStore {
    /// For each distinct path in order, the recordings on it, each with what `read`
    /// reads for it.
    fn by_path<T>(
        &self,
        paths: &[PathBuf],
        read: impl Fn(&Connection, &Recording) -> StoreResult<T>,
    ) -> StoreResult<Vec<(Recording, T)>> {
        let conn = self.connection();
        let mut found = Vec::new();
        for path in dedup(paths) {
            for recording in rows::recordings_where(&conn, &rows::path_condition(path)?, &[])? {
                let read = read(&conn, &recording)?;
                found.push((recording, read));
            }
        }
        Ok(found)
    }
}

impl MessageStore for DuckDbStore {
    /// Storing a message again (same id) changes nothing.
    fn store_message(&self, message: &Message) -> StoreResult<()> {
        // One statement: its own transaction, committed (and synced) before it returns.
        add_message_if_missing(&self.connection(), message)
    }

    /// Also adds the message if it is missing.
    fn store_response(&self, response: &Response) -> StoreResult<()> {
        in_transaction(&mut self.connection(), |conn| {
            add_message_if_missing(conn, &response.message)?;
            execute_cached(
                conn,
                INSERT_RESPONSE,
                params![
                    SqlUuid(Uuid::new_v4()),
                    SqlUuid(response.message.id),
                    response.status.as_i32(),
                    response.content,
                    SqlTime(response.received_on)
                ],
            )
            .map(drop)
        })
    }

    /// Newest first is the exact reverse of oldest first: `created_on` then `id`, both
    /// descending.
    fn get_unsent_messages(&self, limit: usize, order: MessageOrder) -> StoreResult<Vec<Message>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = rows::select(
            &self.connection(),
            &unsent_sql(order),
            &[&limit],
            rows::message_at,
        )?;
        rows.into_iter().map(Message::try_from).collect()
    }

    fn get_rejections(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Rejection>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        // Uuids print as hex and dashes only: safe to inline.
        let list = ids
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT message_id::VARCHAR, count(*) FILTER (WHERE status = {failed}), max(received_on) \
             FROM responses WHERE message_id IN ({list}) \
             GROUP BY message_id HAVING arg_max(status, received_on) = {failed}",
            failed = ResponseStatus::Failed.as_i32(),
        );
        let conn = self.connection();
        let mut statement = conn.prepare(&sql).map_err(database)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, SqlTime>(2)?,
                ))
            })
            .map_err(database)?;
        let mut rejections = HashMap::new();
        for row in rows {
            let (id, count, last) = row.map_err(database)?;
            let id = Uuid::parse_str(&id)
                .map_err(|e| StoreError::Invalid(format!("message id `{id}`: {e}")))?;
            rejections.insert(
                id,
                Rejection {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    last: last.0,
                },
            );
        }
        Ok(rejections)
    }
}

/// The distinct items, first occurrence kept.
fn dedup<T: Eq + std::hash::Hash>(items: &[T]) -> Vec<&T> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items.iter().filter(|item| seen.insert(*item)).collect()
}

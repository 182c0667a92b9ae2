//! [`Store`] and [`MessageStore`] for [`DuckDbStore`]: every write in one transaction
//! under the connection's lock, every read through [`super::rows`].
//!
//! Writes that need a parent row (a model output's recording and deployment, a
//! response's message) add the parent when it is missing and leave it alone when it is
//! there, so a path or an end date set meanwhile is not overwritten by an older copy.

use std::path::{Path, PathBuf};

use acoupi_engine::config::pipeline::MessageOrder;
use acoupi_engine::data::{
    Deployment, Message, Metric, ModelOutput, ModelOutputInfo, Recording, Response,
    ResponseStatus,
};
use acoupi_engine::store::{MessageStore, Store, StoreResult};
use chrono::{DateTime, Utc};
use duckdb::{Connection, params};
use uuid::Uuid;

use super::rows::{
    self, MESSAGE_COLUMNS, SqlTime, SqlUuid, deployment_params, message_params, path_text,
    recording_params, refs,
};
use super::{DuckDbStore, StoreError, database};

const INSERT_DEPLOYMENT: &str = "INSERT INTO deployments \
    (id, name, latitude, longitude, started_on, ended_on) VALUES (?, ?, ?, ?, ?, ?)";
const UPDATE_DEPLOYMENT: &str = "UPDATE deployments SET \
    name = ?2, latitude = ?3, longitude = ?4, started_on = ?5, ended_on = ?6 WHERE id = ?1";
const INSERT_RECORDING: &str = "INSERT INTO recordings \
    (id, deployment_id, created_on, duration, samplerate, audio_channels, time_expansion, path) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const UPDATE_RECORDING: &str = "UPDATE recordings SET deployment_id = ?2, created_on = ?3, \
    duration = ?4, samplerate = ?5, audio_channels = ?6, time_expansion = ?7, path = ?8 \
    WHERE id = ?1";
const INSERT_MESSAGE: &str = "INSERT INTO messages \
    (id, content, content_bytes, created_on, message_type) VALUES (?, ?, ?, ?, ?)";

/// Runs `write` in a transaction: committed when it returns `Ok`, rolled back otherwise.
fn in_transaction<T>(
    conn: &mut Connection,
    write: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let tx = conn.transaction().map_err(database)?;
    let value = write(&tx)?;
    tx.commit().map_err(database)?;
    Ok(value)
}

/// Runs a cached statement; returns the number of rows changed.
fn execute(conn: &Connection, sql: &str, params: &[&dyn duckdb::ToSql]) -> StoreResult<usize> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(params))
        .map_err(database)
}

fn exists(conn: &Connection, table: &str, id: Uuid) -> StoreResult<bool> {
    let sql = format!("SELECT count(*) FROM {table} WHERE id = ?");
    let count: i64 = conn
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.query_row([SqlUuid(id)], |row| row.get(0)))
        .map_err(database)?;
    Ok(count > 0)
}

/// Inserts the row unless one with its id is there.
fn insert_if_missing(
    conn: &Connection,
    table: &str,
    id: Uuid,
    insert: &str,
    params: &[&dyn duckdb::ToSql],
) -> StoreResult<()> {
    if !exists(conn, table, id)? {
        execute(conn, insert, params)?;
    }
    Ok(())
}

/// Updates the row with the parameters' id (`?1`), or inserts it.
fn upsert(conn: &Connection, update: &str, insert: &str, params: &[&dyn duckdb::ToSql]) -> StoreResult<()> {
    if execute(conn, update, params)? == 0 {
        execute(conn, insert, params)?;
    }
    Ok(())
}

/// The recording and its deployment, each added only if missing.
fn add_recording_if_missing(conn: &Connection, recording: &Recording) -> StoreResult<()> {
    let deployment = deployment_params(&recording.deployment);
    insert_if_missing(conn, "deployments", recording.deployment.id, INSERT_DEPLOYMENT, &refs(&deployment))?;
    let params = recording_params(recording)?;
    insert_if_missing(conn, "recordings", recording.id, INSERT_RECORDING, &refs(&params))
}

/// The output, its detections and their tags. The output's id must be new.
fn insert_model_output(conn: &Connection, output: &ModelOutput) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO model_outputs (id, recording_id, name_model, created_on) VALUES (?, ?, ?, ?)",
        params![SqlUuid(output.id), SqlUuid(output.recording.id), output.name_model, SqlTime(output.created_on)],
    )?;
    let mut detections = conn
        .prepare_cached(
            "INSERT INTO detections (id, model_output_id, prediction_type, start_time, low_freq, \
             end_time, high_freq, detection_score) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .map_err(database)?;
    let mut tags = conn
        .prepare_cached(
            "INSERT INTO detection_tags (detection_id, key, value, confidence_score) VALUES (?, ?, ?, ?)",
        )
        .map_err(database)?;
    for detection in &output.detections {
        let [start, low, end, high] = match detection.location {
            Some(b) => b.coordinates().map(Some),
            None => [None; 4],
        };
        detections
            .execute(params![
                SqlUuid(detection.id),
                SqlUuid(output.id),
                rows::prediction_type_name(detection.prediction_type),
                start,
                low,
                end,
                high,
                detection.detection_score,
            ])
            .map_err(database)?;
        for tag in &detection.tags {
            tags.execute(params![SqlUuid(detection.id), tag.tag.key, tag.tag.value, tag.confidence_score])
                .map_err(database)?;
        }
    }
    Ok(())
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
            upsert(conn, UPDATE_DEPLOYMENT, INSERT_DEPLOYMENT, &refs(&params))
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
            match execute(conn, UPDATE_DEPLOYMENT, &refs(&params))? {
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
        let deployment = deployment_params(&recording.deployment);
        let params = recording_params(recording)?;
        in_transaction(&mut self.connection(), |conn| {
            insert_if_missing(conn, "deployments", recording.deployment.id, INSERT_DEPLOYMENT, &refs(&deployment))?;
            upsert(conn, UPDATE_RECORDING, INSERT_RECORDING, &refs(&params))
        })
    }

    /// Also adds the recording and its deployment if they are missing.
    fn store_model_output(&self, output: &ModelOutput) -> StoreResult<()> {
        in_transaction(&mut self.connection(), |conn| {
            add_recording_if_missing(conn, &output.recording)?;
            insert_model_output(conn, output)
        })
    }

    fn get_recordings(&self, ids: &[Uuid]) -> StoreResult<Vec<Recording>> {
        let conn = self.connection();
        let mut found = Vec::with_capacity(ids.len());
        for id in dedup(ids) {
            found.extend(rows::recordings_where(&conn, "r.id = ?", &[&SqlUuid(*id)])?);
        }
        Ok(found)
    }

    /// In the order of `paths`; several recordings on one path all come back.
    fn get_recordings_by_path(&self, paths: &[PathBuf]) -> StoreResult<Vec<(Recording, Vec<ModelOutput>)>> {
        let conn = self.connection();
        let mut found = Vec::new();
        for path in dedup(paths) {
            let text = path_text(path)?;
            let recordings = rows::recordings_where(&conn, "r.path = ?", &[&text])?;
            if recordings.is_empty() {
                continue;
            }
            let mut outputs = rows::outputs_where(&conn, "r.path = ?", &[&text])?;
            for recording in recordings {
                let (own, rest) = outputs.into_iter().partition(|o| o.recording.id == recording.id);
                outputs = rest;
                found.push((recording, own));
            }
        }
        Ok(found)
    }

    fn get_recordings_info_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutputInfo>)>> {
        let conn = self.connection();
        let mut found = Vec::new();
        for path in dedup(paths) {
            let text = path_text(path)?;
            let recordings = rows::recordings_where(&conn, "r.path = ?", &[&text])?;
            if recordings.is_empty() {
                continue;
            }
            let mut infos = rows::output_infos_where(&conn, "r.path = ?", &[&text])?;
            for recording in recordings {
                let (own, rest): (Vec<_>, Vec<_>) = infos.into_iter().partition(|(id, _)| *id == recording.id);
                infos = rest;
                found.push((recording, own.into_iter().map(|(_, info)| info).collect()));
            }
        }
        Ok(found)
    }

    fn get_recording_model_outputs(&self, recording_id: Uuid) -> StoreResult<Vec<ModelOutput>> {
        rows::outputs_where(&self.connection(), "mo.recording_id = ?", &[&SqlUuid(recording_id)])
    }

    /// Adds the recording (with the new path) if it is not stored.
    fn update_recording_path(&self, recording: &Recording, path: Option<&Path>) -> StoreResult<Recording> {
        let mut updated = recording.clone();
        updated.path = path.map(Path::to_path_buf);
        let text = path.map(path_text).transpose()?;
        in_transaction(&mut self.connection(), |conn| {
            let changed = execute(
                conn,
                "UPDATE recordings SET path = ? WHERE id = ?",
                params![text, SqlUuid(recording.id)],
            )?;
            if changed == 0 {
                add_recording_if_missing(conn, &updated)?;
            }
            Ok(())
        })?;
        Ok(updated)
    }

    fn get_model_outputs_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> StoreResult<Vec<ModelOutput>> {
        rows::outputs_where(
            &self.connection(),
            "mo.created_on > ? AND mo.created_on <= ?",
            params![SqlTime(start), SqlTime(end)],
        )
    }

    fn store_metrics(&self, metrics: &[Metric]) -> StoreResult<()> {
        in_transaction(&mut self.connection(), |conn| {
            for metric in metrics {
                execute(
                    conn,
                    "INSERT INTO metrics (name, value, unit, captured_on) VALUES (?, ?, ?, ?)",
                    params![metric.name, metric.value, metric.unit, SqlTime(metric.captured_on)],
                )?;
            }
            Ok(())
        })
    }
}

impl MessageStore for DuckDbStore {
    /// Storing a message again (same id) changes nothing.
    fn store_message(&self, message: &Message) -> StoreResult<()> {
        let params = message_params(message);
        in_transaction(&mut self.connection(), |conn| {
            insert_if_missing(conn, "messages", message.id, INSERT_MESSAGE, &refs(&params))
        })
    }

    /// Also adds the message if it is missing.
    fn store_response(&self, response: &Response) -> StoreResult<()> {
        let message = message_params(&response.message);
        in_transaction(&mut self.connection(), |conn| {
            insert_if_missing(conn, "messages", response.message.id, INSERT_MESSAGE, &refs(&message))?;
            execute(
                conn,
                "INSERT INTO responses (message_id, status, content, received_on) VALUES (?, ?, ?, ?)",
                params![
                    SqlUuid(response.message.id),
                    response.status.as_i32(),
                    response.content,
                    SqlTime(response.received_on)
                ],
            )?;
            Ok(())
        })
    }

    /// Newest first is the exact reverse of oldest first: `created_on` then `id`, both
    /// descending.
    fn get_unsent_messages(&self, limit: usize, order: MessageOrder) -> StoreResult<Vec<Message>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = rows::select(&self.connection(), &unsent_sql(order), &[&limit], rows::message_at)?;
        rows.into_iter().map(Message::try_from).collect()
    }
}

/// The distinct items, first occurrence kept.
fn dedup<T: Eq + std::hash::Hash>(items: &[T]) -> Vec<&T> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items.iter().filter(|item| seen.insert(*item)).collect()
}

//! The station's health as the store knows it: stage runs (for `acoupi serve`, which has
//! no live telemetry), detections by model, the outbox backlog, the current deployment
//! and the heartbeat metrics over time; plus disk use per folder, walked on a blocking
//! thread and cached (see [`disk_usage`]).
//!
//! Outbox backlog: responses do not record which messenger answered them (the
//! `responses` table has a message id, a status and a time), so the backlog is counted
//! by message type: a message is *pending* until some response says SUCCESS, and
//! *failing* when it is pending and its latest response was FAILED, ERROR or TIMEOUT.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use duckdb::Connection;
use serde::Serialize;

use crate::WebError;

/// A time read from the store as microseconds since the epoch.
fn micros(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::from_timestamp_micros)
}

/// One stage as the `stage_runs` table tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct StoredStage {
    pub name: String,
    pub kind: String,
    pub runs: u64,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
}

/// Every stage that ever ran, by the time of its first run.
pub(crate) fn stored_stages(conn: &Connection) -> Result<Vec<StoredStage>, WebError> {
    let mut stmt = conn.prepare(
        "SELECT stage, arg_max(kind, finished_on), count(*), \
                epoch_us(max(started_on)), epoch_us(max(finished_on)), \
                arg_max(outcome, finished_on) \
         FROM stage_runs GROUP BY stage ORDER BY min(started_on), stage",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(StoredStage {
            name: row.get(0)?,
            kind: row.get(1)?,
            runs: row.get::<_, i64>(2)?.max(0) as u64,
            last_started: micros(row.get(3)?),
            last_finished: micros(row.get(4)?),
            last_outcome: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Detections stored per model (`model_outputs.name_model`).
pub(crate) fn detections_by_model(conn: &Connection) -> Result<BTreeMap<String, u64>, WebError> {
    let mut stmt = conn.prepare(
        "SELECT mo.name_model, count(d.id) FROM model_outputs mo \
         LEFT JOIN detections d ON d.model_output_id = mo.id GROUP BY mo.name_model",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?.max(0) as u64,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The outbox backlog of one message type (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Backlog {
    /// `deployment`, `heartbeat`, ...; `unknown` for messages without a type.
    pub message_type: String,
    pub pending: u64,
    pub failing: u64,
    pub oldest_pending: Option<DateTime<Utc>>,
}

pub(crate) fn outbox(conn: &Connection) -> Result<Vec<Backlog>, WebError> {
    let mut stmt = conn.prepare(
        "SELECT coalesce(message_type, 'unknown'), \
                count(*) FILTER (WHERE NOT sent), \
                count(*) FILTER (WHERE NOT sent AND latest_status IN (1, 2, 3)), \
                epoch_us(min(created_on) FILTER (WHERE NOT sent)) \
         FROM message_status GROUP BY 1 ORDER BY 1",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(Backlog {
            message_type: row.get(0)?,
            pending: row.get::<_, i64>(1)?.max(0) as u64,
            failing: row.get::<_, i64>(2)?.max(0) as u64,
            oldest_pending: micros(row.get(3)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The deployment the store is on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CurrentDeployment {
    pub id: String,
    pub name: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub started_on: Option<DateTime<Utc>>,
}

/// The latest deployment not ended (else the latest one).
pub(crate) fn deployment(conn: &Connection) -> Result<Option<CurrentDeployment>, WebError> {
    let mut stmt = conn.prepare(
        "SELECT id::VARCHAR, name, latitude, longitude, epoch_us(started_on) FROM deployments \
         ORDER BY ended_on IS NULL DESC, started_on DESC LIMIT 1",
    )?;
    let mut rows = stmt.query_map([], |row| {
        Ok(CurrentDeployment {
            id: row.get(0)?,
            name: row.get(1)?,
            latitude: row.get(2)?,
            longitude: row.get(3)?,
            started_on: micros(row.get(4)?),
        })
    })?;
    Ok(rows.next().transpose()?)
}

/// One heartbeat metric's values since a time, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Series {
    pub name: String,
    pub unit: String,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// Every metric captured since `since`, by name (at most `max_points` per name: the
/// newest).
pub(crate) fn metric_series(
    conn: &Connection,
    since: DateTime<Utc>,
    max_points: usize,
) -> Result<Vec<Series>, WebError> {
    let mut stmt = conn.prepare(
        "SELECT name, unit, epoch_us(captured_on), value FROM ( \
            SELECT *, row_number() OVER (PARTITION BY name ORDER BY captured_on DESC) AS n \
            FROM metrics WHERE captured_on >= to_timestamp(?::DOUBLE / 1000000.0)) \
         WHERE n <= ? ORDER BY name, captured_on",
    )?;
    let rows = stmt.query_map(
        duckdb::params![since.timestamp_micros(), max_points as i64],
        |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, f64>(3)?,
            ))
        },
    )?;
    let mut series: Vec<Series> = Vec::new();
    for row in rows {
        let (name, unit, at, value) = row?;
        let Some(at) = DateTime::from_timestamp_micros(at) else {
            continue;
        };
        match series.last_mut() {
            Some(last) if last.name == name => last.points.push((at, value)),
            _ => series.push(Series {
                name,
                unit,
                points: vec![(at, value)],
            }),
        }
    }
    Ok(series)
}

/// What a folder holds, as of the last walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FolderUsage {
    /// `temp`, `recordings` or `store`.
    pub name: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub files: u64,
    /// Links met and not followed.
    pub links: u64,
    /// Bytes free on its filesystem, and its size (measured per request: cheap).
    pub free_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    /// When the folder was last walked.
    pub walked_on: DateTime<Utc>,
}

/// A folder is walked again at most this often.
pub(crate) const WALK_EVERY: Duration = Duration::from_secs(60);

struct Walk {
    at: Instant,
    on: DateTime<Utc>,
    bytes: u64,
    files: u64,
    links: u64,
}

/// The last walk of each folder, by path. Process-wide on purpose: it caches facts about
/// the filesystem, not about a station (two servers on the same folder share a walk).
static WALKS: Mutex<BTreeMap<PathBuf, Walk>> = Mutex::new(BTreeMap::new());

/// Disk use of each `(name, folder)`: a folder is walked (never following links, see
/// `acoupi_engine::folders::walk`) when its last walk is older than [`WALK_EVERY`];
/// free space is measured each call. Blocking: call it on a blocking thread.
pub(crate) fn disk_usage(folders: &[(&str, &Path)]) -> Vec<FolderUsage> {
    use acoupi_engine::disk::{DiskSpace, SystemDisk};
    folders
        .iter()
        .map(|(name, path)| {
            let cached = {
                let walks = WALKS.lock().unwrap_or_else(|p| p.into_inner());
                walks
                    .get(*path)
                    .filter(|w| w.at.elapsed() < WALK_EVERY)
                    .map(|w| (w.on, w.bytes, w.files, w.links))
            };
            let (on, bytes, files, links) = cached.unwrap_or_else(|| {
                let walked = acoupi_engine::folders::walk(path);
                let walk = Walk {
                    at: Instant::now(),
                    on: Utc::now(),
                    bytes: walked.bytes(),
                    files: walked.files.len() as u64,
                    links: walked.links.len() as u64,
                };
                let seen = (walk.on, walk.bytes, walk.files, walk.links);
                WALKS
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(path.to_path_buf(), walk);
                seen
            });
            let space = SystemDisk.space(path).ok();
            FolderUsage {
                name: (*name).to_string(),
                path: path.to_path_buf(),
                bytes,
                files,
                links,
                free_bytes: space.map(|s| s.available),
                total_bytes: space.map(|s| s.total),
                walked_on: on,
            }
        })
        .collect()
}

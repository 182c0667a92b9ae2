//! `GET /api/v1/status`: the station's health in one JSON object (the Station page renders
//! the same [`Status`]).
//!
//! - `stages`: from the live telemetry when a station serves the pages (every stage of
//!   the pipeline, in pipeline order, with its state, queue and lag — see
//!   `acoupi_engine::telemetry` for the definitions); for `acoupi serve`, from the store's
//!   `stage_runs` table (`state`, `errors`, queues and lag unknown: `null`, except `lag`,
//!   the time since the stage's last run finished). `stages_source` says which.
//! - `disk`: the temp, recordings and store folders when the pipeline's settings are
//!   known (the store's folder only otherwise); walked at most once a minute.
//! - `outbox`: the backlog by message type (responses do not name their messenger).
//! - `uptime_seconds`: since the station started (its telemetry), else since this server
//!   started.

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::data::status::{self as data, Backlog, CurrentDeployment, FolderUsage};
use crate::{AppState, Served, WebError};

/// When this process first built a router (the uptime of `acoupi serve`).
static SERVER_START: OnceLock<DateTime<Utc>> = OnceLock::new();

pub(crate) fn routes() -> Router<AppState> {
    SERVER_START.get_or_init(Utc::now);
    Router::new().route("/api/v1/status", get(get_status))
}

async fn get_status(State(state): State<AppState>) -> Result<Json<Status>, WebError> {
    Ok(Json(status(&state).await?))
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    /// The deployment's name from the pipeline, else the store's current deployment.
    pub station: Option<String>,
    pub device_id: Option<String>,
    pub deployment: Option<CurrentDeployment>,
    pub version: &'static str,
    pub uptime_seconds: i64,
    /// `station` (`acoupi run` with `[web]`) or `file` (`acoupi serve`).
    pub served: &'static str,
    pub read_only: bool,
    /// `telemetry` or `stage_runs`.
    pub stages_source: &'static str,
    pub stages: Vec<Stage>,
    pub models: Vec<Model>,
    pub disk: Vec<FolderUsage>,
    pub outbox: Vec<Backlog>,
    pub errors: Errors,
    pub store: StoreFile,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stage {
    pub name: String,
    pub kind: String,
    pub trigger: Option<String>,
    /// `idle`, `queued`, `running`; `null` when only the store was read.
    pub state: Option<&'static str>,
    pub runs: u64,
    pub errors: Option<u64>,
    pub queue_depth: Option<u64>,
    pub queue_capacity: Option<u64>,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub lag_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Model {
    pub name: String,
    pub stage: Option<String>,
    /// Detections the store holds from this model.
    pub detections: u64,
    /// Model runs (one per recording) since the station started; `null` without
    /// telemetry, like the timings.
    pub chunks: Option<u64>,
    pub last_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub inference_seconds: Option<f64>,
    pub real_time_factor: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Errors {
    /// Errors logged since the station started (`null` without telemetry).
    pub total: Option<u64>,
    pub last: Vec<LastError>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct LastError {
    pub at: DateTime<Utc>,
    pub message: String,
    pub stage: Option<String>,
    pub component: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoreFile {
    pub path: PathBuf,
    /// The file and its write-ahead log, in bytes.
    pub bytes: u64,
}

/// Everything the status shows, read now.
pub(crate) async fn status(state: &AppState) -> Result<Status, WebError> {
    let (stored, by_model, outbox, deployment) = state
        .read(|conn| {
            Ok((
                data::stored_stages(conn)?,
                data::detections_by_model(conn)?,
                data::outbox(conn)?,
                data::deployment(conn)?,
            ))
        })
        .await?;
    let options = state.options();
    let now = Utc::now();
    let telemetry = options.telemetry.as_ref();
    let settings = options.settings.clone();
    let store_path = state.store().path().to_path_buf();

    let stages = match telemetry {
        Some(t) => t
            .stages(now)
            .into_iter()
            .map(|s| Stage {
                name: s.name,
                kind: s.kind,
                trigger: Some(s.trigger),
                state: Some(s.state.as_str()),
                runs: s.runs,
                errors: Some(s.errors),
                queue_depth: Some(s.queue_depth),
                queue_capacity: Some(s.queue_capacity),
                last_started: s.last_started,
                last_finished: s.last_finished,
                last_outcome: s.last_outcome,
                lag_seconds: s.lag.map(|lag| lag.as_secs_f64()),
            })
            .collect(),
        None => stored
            .into_iter()
            .map(|s| Stage {
                lag_seconds: s
                    .last_finished
                    .map(|f| (now - f).num_milliseconds().max(0) as f64 / 1000.0),
                name: s.name,
                kind: s.kind,
                trigger: None,
                state: None,
                runs: s.runs,
                errors: None,
                queue_depth: None,
                queue_capacity: None,
                last_started: s.last_started,
                last_finished: s.last_finished,
                last_outcome: s.last_outcome,
            })
            .collect(),
    };

    let timed = telemetry.map(|t| t.models()).unwrap_or_default();
    let mut names: Vec<String> = by_model.keys().cloned().collect();
    names.extend(timed.keys().filter(|m| !by_model.contains_key(*m)).cloned());
    names.sort();
    let models = names
        .into_iter()
        .map(|name| {
            let stats = timed.get(&name);
            Model {
                detections: by_model.get(&name).copied().unwrap_or(0),
                stage: stats.map(|s| s.stage.clone()),
                chunks: stats.map(|s| s.chunks),
                last_ms: stats.map(|s| s.last.as_secs_f64() * 1000.0),
                mean_ms: stats.and_then(|s| s.mean_ms()),
                inference_seconds: stats.map(|s| s.compute_seconds),
                real_time_factor: stats.and_then(|s| s.real_time_factor()),
                name,
            }
        })
        .collect();

    let errors = Errors {
        total: telemetry.map(|t| t.errors()),
        last: telemetry
            .map(|t| t.recent_errors())
            .unwrap_or_default()
            .into_iter()
            .map(|e| LastError {
                at: e.at,
                message: e.message,
                stage: e.source.stage,
                component: e.source.component,
            })
            .collect(),
    };

    let walk_settings = settings.clone();
    let walk_store = store_path.clone();
    let (disk, store_bytes) = tokio::task::spawn_blocking(move || {
        let store_dir = walk_store
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let mut folders = Vec::new();
        if let Some(s) = &walk_settings {
            folders.push(("temp", s.temp_dir.clone()));
            folders.push(("recordings", s.recordings_dir.clone()));
        }
        folders.push(("store", store_dir));
        let named: Vec<(&str, &std::path::Path)> =
            folders.iter().map(|(n, p)| (*n, p.as_path())).collect();
        let size = |p: &std::path::Path| std::fs::symlink_metadata(p).map_or(0, |m| m.len());
        let mut wal = walk_store.clone().into_os_string();
        wal.push(".wal");
        (
            data::disk_usage(&named),
            size(&walk_store) + size(std::path::Path::new(&wal)),
        )
    })
    .await
    .map_err(|e| WebError::Internal(format!("the disk walk stopped: {e}")))?;

    let started = telemetry
        .map(|t| t.started_on())
        .or_else(|| SERVER_START.get().copied())
        .unwrap_or(now);
    let (served, read_only) = match options.served {
        Served::Station => ("station", false),
        Served::File { read_only } => ("file", read_only),
    };
    Ok(Status {
        station: settings
            .as_ref()
            .map(|s| s.deployment.name.clone())
            .or_else(|| deployment.as_ref().map(|d| d.name.clone())),
        device_id: settings.as_ref().and_then(|s| s.device_id.clone()),
        deployment,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: (now - started).num_seconds().max(0),
        served,
        read_only,
        stages_source: if telemetry.is_some() {
            "telemetry"
        } else {
            "stage_runs"
        },
        stages,
        models,
        disk,
        outbox,
        errors,
        store: StoreFile {
            path: store_path,
            bytes: store_bytes,
        },
    })
}

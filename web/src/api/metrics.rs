//! `GET /metrics`: Prometheus text format 0.0.4, every name prefixed `acoupi_`, built from
//! the same [`Status`] as `/api/v1/status` (so both agree). Stage counts come from the
//! live telemetry, or from `stage_runs` for `acoupi serve` (runs only: errors and queue
//! depths are not in the store, so those families are left out). Inference time is a
//! summary per model (`_sum` seconds, `_count` chunks = model runs).

use std::fmt::Write;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::status::{Status, status};
use crate::{AppState, WebError};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(get_metrics))
}

async fn get_metrics(State(state): State<AppState>) -> Result<impl IntoResponse, WebError> {
    let status = status(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&status),
    ))
}

/// A label value, escaped as the text format wants (`\\`, `\"`, `\n`).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family: HELP, TYPE and a sample per `(labels, value)`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP acoupi_{name} {help}");
    let _ = writeln!(out, "# TYPE acoupi_{name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "acoupi_{name}{labels} {value}");
    }
}

fn one(key: &str, value: &str) -> String {
    format!("{{{key}=\"{}\"}}", label(value))
}

/// The text exposition of `status`.
pub(crate) fn render(status: &Status) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "uptime_seconds",
        "gauge",
        "Seconds since the station (or this server) started.",
        &[(String::new(), status.uptime_seconds as f64)],
    );
    let by_stage = |f: &dyn Fn(&super::status::Stage) -> Option<f64>| -> Vec<(String, f64)> {
        status
            .stages
            .iter()
            .filter_map(|s| f(s).map(|v| (one("stage", &s.name), v)))
            .collect()
    };
    family(
        &mut out,
        "stage_runs_total",
        "counter",
        "Runs of each stage.",
        &by_stage(&|s| Some(s.runs as f64)),
    );
    let errors = by_stage(&|s| s.errors.map(|e| e as f64));
    if !errors.is_empty() {
        family(
            &mut out,
            "stage_errors_total",
            "counter",
            "Stage runs whose task reported a failure.",
            &errors,
        );
    }
    let depth = by_stage(&|s| s.queue_depth.map(|d| d as f64));
    if !depth.is_empty() {
        family(
            &mut out,
            "queue_depth",
            "gauge",
            "Inputs waiting in each stage's queue.",
            &depth,
        );
    }
    family(
        &mut out,
        "detections_total",
        "counter",
        "Detections the store holds, by model.",
        &status
            .models
            .iter()
            .map(|m| (one("model", &m.name), m.detections as f64))
            .collect::<Vec<_>>(),
    );
    let timed: Vec<_> = status
        .models
        .iter()
        .filter_map(|m| Some((m, m.inference_seconds?, m.chunks?)))
        .collect();
    if !timed.is_empty() {
        let _ = writeln!(
            out,
            "# HELP acoupi_inference_seconds Time each model spent in inference (count: model runs)."
        );
        let _ = writeln!(out, "# TYPE acoupi_inference_seconds summary");
        for (m, seconds, chunks) in timed {
            let labels = one("model", &m.name);
            let _ = writeln!(out, "acoupi_inference_seconds_sum{labels} {seconds}");
            let _ = writeln!(out, "acoupi_inference_seconds_count{labels} {chunks}");
        }
    }
    family(
        &mut out,
        "outbox_pending",
        "gauge",
        "Messages not yet delivered, by message type.",
        &status
            .outbox
            .iter()
            .map(|b| (one("message_type", &b.message_type), b.pending as f64))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "disk_free_bytes",
        "gauge",
        "Bytes free on the filesystem of each folder.",
        &status
            .disk
            .iter()
            .filter_map(|d| Some((one("folder", &d.name), d.free_bytes? as f64)))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "disk_used_bytes",
        "gauge",
        "Bytes in the plain files under each folder (links not followed).",
        &status
            .disk
            .iter()
            .map(|d| (one("folder", &d.name), d.bytes as f64))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "store_bytes",
        "gauge",
        "Size of the store file and its write-ahead log.",
        &[(String::new(), status.store.bytes as f64)],
    );
    if let Some(total) = status.errors.total {
        family(
            &mut out,
            "errors_total",
            "counter",
            "Errors the station logged since it started.",
            &[(String::new(), total as f64)],
        );
    }
    out
}

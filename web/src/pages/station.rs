//! The Station page (`/station`): the station's health from the same [`Status`] as
//! `/api/v1/status` — stages (every stage of the pipeline by name, state, last run, lag,
//! errors), queues, models (ms per chunk, real-time factor), disk per folder and free,
//! outbox by message type, last errors — and the heartbeat metrics over time (the
//! `metrics` table) as one small server-side SVG line per metric name, over the last
//! 24 h (default) or 7 d (`?window=7d`). No inline style or script (CSP): the SVG uses
//! presentation attributes and classes only.

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::page;
use crate::api::status::{Status, status};
use crate::data::status::{Series, metric_series};
use crate::{AppState, WebError};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/station", get(station_page))
}

#[derive(Debug, Deserialize)]
struct Params {
    window: Option<String>,
}

/// Points kept per metric in a chart (the newest).
const MAX_POINTS: usize = 2000;

async fn station_page(
    State(state): State<AppState>,
    Query(params): Query<Params>,
) -> Result<Markup, WebError> {
    let (window, label) = match params.window.as_deref() {
        None | Some("24h") => (Duration::hours(24), "24h"),
        Some("7d") => (Duration::days(7), "7d"),
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "window `{other}`: use 24h or 7d"
            )));
        }
    };
    let status = status(&state).await?;
    let now = Utc::now();
    let since = now - window;
    let series = state
        .read(move |conn| metric_series(conn, since, MAX_POINTS))
        .await?;
    Ok(page(
        "Station",
        "/station",
        body(&status, &series, since, now, label),
    ))
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "—".to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

fn seconds(s: Option<f64>) -> String {
    match s {
        None => "—".into(),
        Some(s) if s < 60.0 => format!("{s:.1} s"),
        Some(s) if s < 3600.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

fn bytes(b: Option<u64>) -> String {
    let Some(b) = b else { return "—".into() };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = b as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "—".into(), |v| v.to_string())
}

fn body(
    status: &Status,
    series: &[Series],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    window: &str,
) -> Markup {
    html! {
        h1 { "Station" @if let Some(name) = &status.station { " · " (name) } }
        p.summary {
            "acoupi " (status.version) " · served from " (status.served)
            @if status.read_only { " (read-only)" }
            " · up " (seconds(Some(status.uptime_seconds as f64)))
            @if let Some(d) = &status.deployment { " · deployment " (d.name) " since " (when(d.started_on)) }
            " · store " (bytes(Some(status.store.bytes)))
        }
        section #stages {
            h2 { "Stages" }
            @if status.stages_source == "stage_runs" {
                p.note { "From the store's stage runs (no live station): state and errors unknown; lag is the time since the last run." }
            }
            div.scroll { table.stages {
                thead { tr { th { "Stage" } th { "Kind" } th { "Trigger" } th { "State" } th { "Runs" } th { "Errors" } th { "Last run" } th { "Outcome" } th { "Lag" } } }
                tbody {
                    @for s in &status.stages {
                        tr.stage data-stage=(s.name) {
                            td.stage-name { (s.name) } td { (s.kind) } td { (opt(s.trigger.as_deref())) }
                            td class=(format!("state {}", s.state.unwrap_or("unknown"))) { (s.state.unwrap_or("—")) }
                            td.num { (s.runs) } td.num { (opt(s.errors)) }
                            td { (when(s.last_started)) } td { (opt(s.last_outcome.as_deref())) }
                            td.num { (seconds(s.lag_seconds)) }
                        }
                    }
                }
            } }
        }
        @if status.stages.iter().any(|s| s.queue_capacity.is_some()) {
            section #queues {
                h2 { "Queues" }
                table {
                    thead { tr { th { "Stage" } th { "Waiting" } th { "Holds" } } }
                    tbody { @for s in &status.stages { tr { td { (s.name) } td.num { (opt(s.queue_depth)) } td.num { (opt(s.queue_capacity)) } } } }
                }
            }
        }
        section #models {
            h2 { "Models" }
            table {
                thead { tr { th { "Model" } th { "Stage" } th { "Detections" } th { "Runs" } th { "ms per chunk (mean)" } th { "last" } th { "Real-time factor" } } }
                tbody {
                    @for m in &status.models {
                        tr {
                            td { (m.name) } td { (opt(m.stage.as_deref())) } td.num { (m.detections) } td.num { (opt(m.chunks)) }
                            td.num { (opt(m.mean_ms.map(|v| format!("{v:.1}")))) }
                            td.num { (opt(m.last_ms.map(|v| format!("{v:.1}")))) }
                            td.num { (opt(m.real_time_factor.map(|v| format!("{v:.1}×")))) }
                        }
                    }
                }
            }
        }
        section #disk {
            h2 { "Disk" }
            table {
                thead { tr { th { "Folder" } th { "Path" } th { "Used" } th { "Files" } th { "Free" } th { "Size" } } }
                tbody {
                    @for d in &status.disk {
                        tr {
                            td { (d.name) } td.path { (d.path.display()) } td.num { (bytes(Some(d.bytes))) }
                            td.num { (d.files) } td.num { (bytes(d.free_bytes)) } td.num { (bytes(d.total_bytes)) }
                        }
                    }
                }
            }
        }
        section #outbox {
            h2 { "Outbox" }
            p.note { "By message type (responses do not name their messenger)." }
            table {
                thead { tr { th { "Message type" } th { "Pending" } th { "Failing" } th { "Oldest pending" } } }
                tbody {
                    @for b in &status.outbox {
                        tr { td { (b.message_type) } td.num { (b.pending) } td.num { (b.failing) } td { (when(b.oldest_pending)) } }
                    }
                }
            }
        }
        section #errors {
            h2 { "Last errors" }
            @if status.errors.last.is_empty() {
                p { (match status.errors.total { Some(_) => "None since the station started.", None => "Not known without a running station." }) }
            } @else {
                table {
                    thead { tr { th { "When" } th { "Stage" } th { "Component" } th { "Error" } } }
                    tbody {
                        @for e in &status.errors.last {
                            tr { td { (when(Some(e.at))) } td { (opt(e.stage.as_deref())) } td { (opt(e.component.as_deref())) } td { (e.message) } }
                        }
                    }
                }
            }
        }
        section #heartbeat {
            h2 { "Heartbeat metrics" }
            p.window {
                a href="/station?window=24h" class=[(window == "24h").then_some("active")] { "24 h" }
                " · "
                a href="/station?window=7d" class=[(window == "7d").then_some("active")] { "7 d" }
            }
            @if series.is_empty() {
                p { "No metrics in this window." }
            }
            div.charts {
                @for s in series {
                    figure.metric data-metric=(s.name) {
                        figcaption { (s.name) @if !s.unit.is_empty() { " (" (s.unit) ")" } }
                        (chart(s, since, now))
                    }
                }
            }
        }
    }
}

/// Chart size (SVG user units; the SVG scales to its container).
const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 80.0;

/// A line of `series` over `since..now`, with its minimum and maximum labelled.
fn chart(series: &Series, since: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let span = (now - since).num_milliseconds().max(1) as f64;
    let (min, max) = series
        .points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v)| {
            (lo.min(*v), hi.max(*v))
        });
    let range = if max > min { max - min } else { 1.0 };
    let points: Vec<String> = series
        .points
        .iter()
        .map(|(t, v)| {
            let x = (*t - since).num_milliseconds() as f64 / span * WIDTH;
            let y = HEIGHT - 10.0 - (v - min) / range * (HEIGHT - 20.0);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let last = series.points.last().map(|(_, v)| *v);
    html! {
        svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) preserveAspectRatio="none" role="img"
            aria-label=(format!("{} over time", series.name)) {
            polyline points=(points.join(" ")) fill="none" stroke="currentColor" stroke-width="1.5" {}
            @if series.points.len() == 1 {
                circle cx=(points[0].split(',').next().unwrap_or("0")) cy=(points[0].split(',').nth(1).unwrap_or("0")) r="2" fill="currentColor" {}
            }
            text x="2" y="9" font-size="9" { "max " (format!("{max:.4}").trim_end_matches('0').trim_end_matches('.')) }
            text x="2" y=(HEIGHT - 1.0) font-size="9" { "min " (format!("{min:.4}").trim_end_matches('0').trim_end_matches('.')) }
            @if let Some(last) = last {
                text x=(WIDTH - 2.0) y="9" font-size="9" text-anchor="end" { "now " (format!("{last:.4}").trim_end_matches('0').trim_end_matches('.')) }
            }
        }
    }
}

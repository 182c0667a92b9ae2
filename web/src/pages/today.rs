//! Today (`/`): detections and species heard today (local day, see `data/species.rs`),
//! the species × hour grid (each count links to those detections on Detections), the
//! latest ten detections with their clips, the live feed (`/assets/live.js` on
//! `/api/v1/events`) and "new this season" badges.
//!
//! "New this season": first heard in the last [`NEW_DAYS`] days (today included) and
//! never before in the season, the meteorological season holding today (Mar–May,
//! Jun–Aug, Sep–Nov, Dec–Feb; the same months north and south).

use std::collections::HashSet;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use maud::{Markup, html};

use crate::data::species::{self, Clip, NEW_DAYS, SpeciesDay};
use crate::pages::clips::{clip, encode, species_href};
use crate::pages::layout::page;
use crate::{AppState, WebError};

/// Detections listed under "Latest".
const LATEST: usize = 10;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(today))
        .route("/assets/live.js", get(live_js))
}

async fn live_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../assets/live.js"),
    )
}

struct Today {
    days: Vec<SpeciesDay>,
    latest: Vec<Clip>,
    new: HashSet<String>,
}

async fn today(State(state): State<AppState>) -> Result<Markup, WebError> {
    let tz = species::time_zone(&state);
    let date = species::today(tz);
    let configured = state.options().species_key.clone();
    let data = state
        .read(move |conn| {
            let Some(key) = crate::data::species_key::species_key(conn, configured.as_deref())?
            else {
                return Ok(Today {
                    days: Vec::new(),
                    latest: Vec::new(),
                    new: HashSet::new(),
                });
            };
            let (season, since) = species::new_window(tz, date);
            Ok(Today {
                days: species::daily(conn, &key, tz, date, 0.0)?,
                latest: species::clips(conn, &key, None, false, LATEST)?,
                new: species::new_since(conn, &key, season, since)?
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect(),
            })
        })
        .await?;
    let total: u64 = data.days.iter().map(|d| d.count).sum();
    let day = date.format("%Y-%m-%d").to_string();
    let body = html! {
        h1 { "Today " time datetime=(day) { (day) } }
        p class="summary" {
            span id="today-detections" { (total) } " detections, "
            span id="today-species" { (data.days.len()) } " species"
            " (" (tz.name()) ")"
        }
        section {
            h2 { "Species by hour" }
            @if data.days.is_empty() {
                p { "Nothing heard yet today." }
            } @else {
                div class="scroll" {
                    table id="grid" class="grid" {
                        thead { tr {
                            th { "Species" } th { "Total" }
                            @for hour in 0..24 { th { (format!("{hour:02}")) } }
                        } }
                        tbody {
                            @for d in &data.days {
                                tr data-species=(d.scientific_name) {
                                    th {
                                        a href=(species_href(&d.scientific_name)) { (d.common_name) }
                                        @if d.common_name != d.scientific_name {
                                            " " i { (d.scientific_name) }
                                        }
                                        @if data.new.contains(&d.scientific_name) {
                                            " " span class="badge new"
                                                title=(format!("first heard this season in the last {NEW_DAYS} days")) { "new" }
                                        }
                                    }
                                    td class="total" { (d.count) }
                                    @for (hour, count) in d.hourly_counts.iter().enumerate() {
                                        td data-hour=(hour) {
                                            @if *count > 0 {
                                                a href=(format!("/detections?from={day}&to={day}&species={}&hour={hour}", encode(&d.scientific_name))) { (count) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Live" }
            ul id="live" class="live" {}
            p id="live-empty" { "New detections appear here as they are stored." }
        }
        section {
            h2 { "Latest detections" }
            @if data.latest.is_empty() {
                p { "No detections yet." }
            } @else {
                ul class="clips" {
                    @for c in &data.latest { (clip(c, tz)) }
                }
            }
        }
        script src="/assets/live.js" defer {}
    };
    Ok(page("Today", "/", body))
}

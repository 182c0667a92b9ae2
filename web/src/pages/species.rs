//! Species (`/species/{scientific_name}`): first and last heard, detections per hour of
//! day and per day (the [`DAYS`] days ending on the last day heard), the best-scored
//! clips and review counts. A species never heard answers 404.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Duration;
use maud::html;

use crate::data::species::{self, Clip, SpeciesActivity, local};
use crate::pages::charts::bars;
use crate::pages::clips::clip;
use crate::pages::layout::page;
use crate::{AppState, WebError};

/// Days the daily activity shows.
const DAYS: i64 = 60;
/// Best-scored clips listed.
const BEST: usize = 5;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/species/{scientific_name}", get(species_page))
}

struct SpeciesPage {
    activity: Option<SpeciesActivity>,
    best: Vec<Clip>,
    reviews: Vec<(String, u64)>,
}

async fn species_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    let tz = species::time_zone(&state);
    let configured = state.options().species_key.clone();
    let wanted = name.clone();
    let data = state
        .read(move |conn| {
            let Some(key) = crate::data::species_key::species_key(conn, configured.as_deref())?
            else {
                return Ok(SpeciesPage {
                    activity: None,
                    best: Vec::new(),
                    reviews: Vec::new(),
                });
            };
            let activity = species::activity(conn, &key, tz, &wanted)?;
            if activity.is_none() {
                return Ok(SpeciesPage {
                    activity,
                    best: Vec::new(),
                    reviews: Vec::new(),
                });
            }
            Ok(SpeciesPage {
                activity,
                best: species::clips(conn, &key, Some(&wanted), true, BEST)?,
                reviews: species::review_counts(conn, &key, &wanted)?,
            })
        })
        .await?;
    let Some(activity) = data.activity else {
        let body = html! {
            h1 { (name) }
            p { "This station has not heard " (name) "." }
        };
        return Ok((StatusCode::NOT_FOUND, page(&name, "", body)).into_response());
    };
    let first = local(tz, activity.first_us);
    let last = local(tz, activity.last_us);
    let hour_labels: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
    let last_day = last.date_naive();
    let days: Vec<_> = (0..DAYS)
        .rev()
        .map(|back| last_day - Duration::days(back))
        .collect();
    let day_values: Vec<u64> = days
        .iter()
        .map(|d| activity.by_day.get(d).map_or(0, |h| h.iter().sum()))
        .collect();
    let day_labels: Vec<String> = days.iter().map(|d| d.format("%m-%d").to_string()).collect();
    let common = activity.common_name.clone().unwrap_or_else(|| name.clone());
    let body = html! {
        h1 { (common) @if common != name { " " i { (name) } } }
        dl class="facts" {
            dt { "Detections" } dd id="species-count" { (activity.count) }
            dt { "First heard" } dd id="first-heard" { time datetime=(first.to_rfc3339()) { (first.format("%Y-%m-%d %H:%M")) } }
            dt { "Last heard" } dd id="last-heard" { time datetime=(last.to_rfc3339()) { (last.format("%Y-%m-%d %H:%M")) } }
        }
        section {
            h2 { "By hour of day (" (tz.name()) ")" }
            (bars(&activity.hourly, &hour_labels, 3))
        }
        section {
            h2 { "By day (" (DAYS) " days to " (last_day) ")" }
            (bars(&day_values, &day_labels, 10))
        }
        section {
            h2 { "Best-scored clips" }
            ul class="clips" { @for c in &data.best { (clip(c, tz)) } }
        }
        section {
            h2 { "Reviews" }
            @if data.reviews.is_empty() {
                p { "No reviews in this store." }
            } @else {
                table id="reviews" {
                    @for (verdict, count) in &data.reviews {
                        tr { th { (verdict) } td { (count) } }
                    }
                }
            }
        }
    };
    Ok(page(&common, "", body).into_response())
}

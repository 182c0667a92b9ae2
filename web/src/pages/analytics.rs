//! Analytics (`/analytics?species=`): for one species (a select, the most detected by
//! default) a date × hour heatmap of the [`DAYS`] days ending on the last day heard, and
//! the species accumulation curve (distinct species heard up to each day, over the whole
//! store).

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use chrono::Duration;
use maud::{Markup, html};
use serde::Deserialize;

use crate::data::species::{self, SpeciesActivity, local};
use crate::pages::charts::{heatmap, line};
use crate::pages::layout::page;
use crate::{AppState, WebError};

/// Days the heatmap shows.
const DAYS: i64 = 90;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/analytics", get(analytics))
}

#[derive(Debug, Deserialize)]
struct AnalyticsQuery {
    species: Option<String>,
}

struct Analytics {
    species: Vec<(String, u64)>,
    chosen: Option<String>,
    activity: Option<SpeciesActivity>,
    curve: Vec<(chrono::NaiveDate, u64)>,
}

async fn analytics(
    State(state): State<AppState>,
    Query(query): Query<AnalyticsQuery>,
) -> Result<Markup, WebError> {
    let tz = species::time_zone(&state);
    let configured = state.options().species_key.clone();
    let data = state
        .read(move |conn| {
            let Some(key) = crate::data::species_key::species_key(conn, configured.as_deref())?
            else {
                return Ok(Analytics {
                    species: Vec::new(),
                    chosen: None,
                    activity: None,
                    curve: Vec::new(),
                });
            };
            let all = species::species_counts(conn, &key)?;
            let chosen = query
                .species
                .filter(|s| !s.is_empty())
                .or_else(|| all.first().map(|(name, _)| name.clone()));
            let activity = match &chosen {
                Some(name) => species::activity(conn, &key, tz, name)?,
                None => None,
            };
            Ok(Analytics {
                species: all,
                chosen,
                activity,
                curve: species::accumulation(conn, &key, tz)?,
            })
        })
        .await?;
    let rows: Vec<(String, [u64; 24])> = match &data.activity {
        Some(activity) => {
            let last = local(tz, activity.last_us).date_naive();
            (0..DAYS)
                .rev()
                .map(|back| last - Duration::days(back))
                .map(|d| {
                    (
                        d.format("%Y-%m-%d").to_string(),
                        activity.by_day.get(&d).copied().unwrap_or([0; 24]),
                    )
                })
                .collect()
        }
        None => Vec::new(),
    };
    let curve: Vec<(String, u64)> = data
        .curve
        .iter()
        .map(|(d, n)| (d.format("%Y-%m-%d").to_string(), *n))
        .collect();
    let body = html! {
        h1 { "Analytics" }
        form method="get" action="/analytics" {
            label for="species" { "Species " }
            select id="species" name="species" {
                @for (name, count) in &data.species {
                    option value=(name) selected[data.chosen.as_deref() == Some(name.as_str())] {
                        (name) " (" (count) ")"
                    }
                }
            }
            " " button type="submit" { "Show" }
        }
        section {
            h2 { "Date × hour (" (tz.name()) ")" }
            @match (&data.chosen, &data.activity) {
                (Some(name), Some(activity)) => {
                    p { (name) ": " span id="analytics-count" { (activity.count) } " detections" }
                    (heatmap(&rows))
                }
                (Some(name), None) => { p { "No detections of " (name) "." } }
                _ => { p { "No detections yet." } }
            }
        }
        section {
            h2 { "Species accumulation" }
            @if curve.is_empty() {
                p { "No species yet." }
            } @else {
                p { span id="species-total" { (curve.last().map_or(0, |(_, n)| *n)) } " species since " (curve[0].0) }
                (line(&curve))
            }
        }
    };
    Ok(page("Analytics", "/analytics", body))
}

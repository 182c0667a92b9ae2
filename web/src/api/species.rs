//! `GET /api/v1/species/daily?date=YYYY-MM-DD&min_confidence=`: each species heard on
//! a local day with its hourly counts (BirdNET-Go's dashboard shape; the SQL and the
//! choices are in `data/species.rs`). `date` defaults to today in the deployment's time
//! zone, `min_confidence` to 0.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;

use crate::data::species::{self, SpeciesDay};
use crate::{AppState, WebError};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/species/daily", get(daily))
}

#[derive(Debug, Deserialize)]
struct DailyQuery {
    date: Option<String>,
    min_confidence: Option<String>,
}

/// Parses `date` (`YYYY-MM-DD`).
pub(crate) fn parse_date(text: &str) -> Result<NaiveDate, WebError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| WebError::BadRequest(format!("date `{text}` is not YYYY-MM-DD")))
}

async fn daily(
    State(state): State<AppState>,
    Query(query): Query<DailyQuery>,
) -> Result<Json<Vec<SpeciesDay>>, WebError> {
    let tz = species::time_zone(&state);
    let date = match query.date.as_deref().filter(|d| !d.is_empty()) {
        Some(text) => parse_date(text)?,
        None => species::today(tz),
    };
    let min_confidence = match query.min_confidence.as_deref().filter(|c| !c.is_empty()) {
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|c| c.is_finite())
            .ok_or_else(|| {
                WebError::BadRequest(format!("min_confidence `{text}` is not a number"))
            })?,
        None => 0.0,
    };
    let configured = state.options().species_key.clone();
    let days = state
        .read(move |conn| {
            let Some(key) = crate::data::species_key::species_key(conn, configured.as_deref())?
            else {
                return Ok(Vec::new());
            };
            species::daily(conn, &key, tz, date, min_confidence)
        })
        .await?;
    Ok(Json(days))
}

//! `GET /api/v1/detections` (filtered, paged), `GET /api/v1/detections/{id}`,
//! `POST /api/v1/detections/{id}/review` and `POST /api/v1/recordings/{id}/keep`.
//!
//! Parameters are checked here and a bad one answers 400 naming it. Dates are
//! `YYYY-MM-DD` in the deployment's time zone (`from` is the start of its day, `to` the
//! end of its day) or RFC 3339 instants (`from` inclusive, `to` exclusive). The two
//! POSTs take JSON or form-encoded bodies (htmx sends forms); with `HX-Request` they
//! answer the fragment that replaces the controls (pages/review.rs), JSON otherwise. On
//! a store served read-only they answer 409.

use std::collections::HashMap;

use acoupi_engine::store::StoreError;
use acoupi_store_duckdb::{Review, Verdict};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::data::detections::{self, DetectionRow, Filter, ReviewFilter};
use crate::data::reviews::latest_reviews;
use crate::data::species_key::species_key;
use crate::pages::review::{keep_control, review_controls};
use crate::{AppState, Served, WebError};

/// The most rows one page may ask for, and the default.
pub(crate) const MAX_LIMIT: u32 = 500;
pub(crate) const DEFAULT_LIMIT: u32 = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/detections", get(list))
        .route("/api/v1/detections/{id}", get(one))
        .route("/api/v1/detections/{id}/review", post(review))
        .route("/api/v1/recordings/{id}/keep", post(keep))
}

/// A page of detections with their latest reviews, ready to answer or render.
pub(crate) struct Page {
    pub rows: Vec<(DetectionRow, Option<Review>)>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    /// The species key used; `None` while the store has no tag.
    pub key: Option<String>,
}

/// The deployment's time zone name (IANA) and the filters, limit and offset from query
/// parameters (see the module docs).
pub(crate) fn parse_params(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<(Filter, u32, u64), WebError> {
    let get = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let bad = |name: &str, value: &str, want: &str| {
        WebError::BadRequest(format!("parameter `{name}`: `{value}` is not {want}"))
    };
    let mut filter = Filter::default();
    if let Some(v) = get("from") {
        filter.from = Some(instant(state, v, false).ok_or_else(|| bad("from", v, DATE))?);
    }
    if let Some(v) = get("to") {
        filter.to = Some(instant(state, v, true).ok_or_else(|| bad("to", v, DATE))?);
    }
    filter.species = get("species").map(str::to_owned);
    if let Some(v) = get("min_confidence") {
        let min = v
            .parse::<f64>()
            .ok()
            .filter(|m| (0.0..=1.0).contains(m))
            .ok_or_else(|| bad("min_confidence", v, "a number from 0 to 1"))?;
        filter.min_confidence = Some(min);
    }
    filter.model = get("model").map(str::to_owned);
    if let Some(v) = get("review") {
        filter.review =
            Some(match v {
                "none" => ReviewFilter::None,
                other => ReviewFilter::Verdict(other.parse::<Verdict>().map_err(|_| {
                    bad("review", v, "one of correct, false_positive, unsure, none")
                })?),
            });
    }
    if let Some(v) = get("hour") {
        let hour = v
            .parse::<u32>()
            .ok()
            .filter(|h| *h < 24)
            .ok_or_else(|| bad("hour", v, "an hour from 0 to 23"))?;
        filter.hour = Some(hour);
    }
    if let Some(v) = get("recording") {
        filter.recording = Some(Uuid::parse_str(v).map_err(|_| bad("recording", v, "a UUID"))?);
    }
    let limit = match get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| bad("limit", v, "a number from 1 to 500"))?,
    };
    let offset = match get("offset") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| bad("offset", v, "a whole number ≥ 0"))?,
    };
    Ok((filter, limit, offset))
}

const DATE: &str = "a date (YYYY-MM-DD) or an RFC 3339 time";

/// The deployment's time zone: the pipeline's when a pipeline is served, else UTC.
pub(crate) fn zone_name(state: &AppState) -> String {
    state.options().settings.as_ref().map_or_else(
        || "UTC".to_owned(),
        |s| s.deployment.timezone.name().to_owned(),
    )
}

/// `YYYY-MM-DD` (its day's start, or with `end` the next day's start, in the deployment's
/// zone) or an RFC 3339 instant.
fn instant(state: &AppState, text: &str, end: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let date = if end { date.succ_opt()? } else { date };
    let midnight = date.and_hms_opt(0, 0, 0)?;
    match state.options().settings.as_ref() {
        Some(s) => s
            .deployment
            .timezone
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
        None => Some(Utc.from_utc_datetime(&midnight)),
    }
}

/// Reads one page (the query runs on a reader connection, off the executor).
pub(crate) async fn read_page(
    state: &AppState,
    filter: Filter,
    limit: u32,
    offset: u64,
) -> Result<Page, WebError> {
    let configured = state.options().species_key.clone();
    let zone = zone_name(state);
    state
        .read(move |conn| {
            let Some(key) = species_key(conn, configured.as_deref())? else {
                return Ok(Page {
                    rows: Vec::new(),
                    total: 0,
                    limit,
                    offset,
                    key: None,
                });
            };
            let (rows, total) = detections::list(conn, &key, &zone, &filter, limit, offset)?;
            let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
            let mut reviews = latest_reviews(conn, &ids)?;
            let rows = rows
                .into_iter()
                .map(|r| {
                    let review = reviews.remove(&r.id);
                    (r, review)
                })
                .collect();
            Ok(Page {
                rows,
                total,
                limit,
                offset,
                key: Some(key),
            })
        })
        .await
}

async fn list(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let (filter, limit, offset) = parse_params(&state, &params)?;
    let page = read_page(&state, filter, limit, offset).await?;
    let data: Vec<Value> = page
        .rows
        .iter()
        .map(|(row, review)| detection_json(row, review.as_ref()))
        .collect();
    Ok(axum::Json(json!({
        "data": data,
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }))
    .into_response())
}

/// A detection as the API gives it.
pub(crate) fn detection_json(row: &DetectionRow, review: Option<&Review>) -> Value {
    json!({
        "id": row.id,
        "recording_id": row.recording_id,
        "start_time": row.start_time,
        "end_time": row.end_time,
        "low_freq": row.low_freq,
        "high_freq": row.high_freq,
        "tag_key": row.tag_key,
        "tag_value": row.tag_value,
        "confidence": row.confidence,
        "detection_score": row.detection_score,
        "model": row.model,
        "recorded_on": row.recorded_on.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "review": review.map(review_json),
    })
}

pub(crate) fn review_json(review: &Review) -> Value {
    json!({
        "verdict": review.verdict.as_str(),
        "comment": review.comment,
        "reviewer": review.reviewer,
        "reviewed_on": review.reviewed_on.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
}

/// An id from the path: a UUID, anything else (a path) is a 400.
pub(crate) fn path_id(what: &str, text: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(text)
        .map_err(|_| WebError::BadRequest(format!("{what} id `{text}` is not a UUID")))
}

async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, WebError> {
    let id = path_id("detection", &id)?;
    let configured = state.options().species_key.clone();
    let found = state
        .read(move |conn| {
            let key = species_key(conn, configured.as_deref())?;
            let Some(row) = detections::one(conn, key.as_deref(), id)? else {
                return Ok(None);
            };
            let review = latest_reviews(conn, &[id])?.remove(&id);
            Ok(Some((row, review)))
        })
        .await?;
    let (row, review) = found.ok_or_else(|| WebError::NotFound(format!("detection {id}")))?;
    Ok(axum::Json(detection_json(&row, review.as_ref())).into_response())
}

/// A body's fields, from JSON or a form (values as text; JSON booleans and numbers too).
async fn fields(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, WebError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| WebError::BadRequest(format!("body: not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(WebError::BadRequest("body: not a JSON object".into()));
        };
        Ok(map
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Null => None,
                other => Some((k, other.to_string())),
            })
            .collect())
    } else {
        form_pairs(body).await
    }
}

/// A form body's pairs (`application/x-www-form-urlencoded`), through axum's own form
/// decoding.
async fn form_pairs(body: &Bytes) -> Result<HashMap<String, String>, WebError> {
    use axum::extract::FromRequest;
    let request = axum::http::Request::builder()
        .method("POST")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(body.clone()))
        .map_err(|e| WebError::Internal(e.to_string()))?;
    axum::Form::<HashMap<String, String>>::from_request(request, &())
        .await
        .map(|form| form.0)
        .map_err(|e| WebError::BadRequest(format!("body: not a form: {e}")))
}

fn writable(state: &AppState) -> Result<(), WebError> {
    match state.options().served {
        Served::File { read_only: true } => Err(WebError::Conflict(
            "this store is served read-only: reviews and keep are off".into(),
        )),
        _ => Ok(()),
    }
}

fn store_error(error: StoreError) -> WebError {
    match error {
        StoreError::NotFound { what, id } => WebError::NotFound(format!("{what} {id}")),
        other => WebError::Store(other.to_string()),
    }
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

async fn review(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let id = path_id("detection", &id)?;
    writable(&state)?;
    let fields = fields(&headers, &body).await?;
    let text = |name: &str| {
        fields
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let verdict = text("verdict")
        .ok_or_else(|| WebError::BadRequest("field `verdict` is missing".into()))?
        .parse::<Verdict>()
        .map_err(|e| WebError::BadRequest(format!("field `verdict`: {e}")))?;
    let comment = text("comment");
    if comment.as_ref().is_some_and(|c| c.chars().count() > 1000) {
        return Err(WebError::BadRequest(
            "field `comment`: longer than 1000 characters".into(),
        ));
    }
    let review = Review::new(id, verdict, comment, text("reviewer"));
    let store = state.store().clone();
    let stored = review.clone();
    tokio::task::spawn_blocking(move || store.add_review(&stored))
        .await
        .map_err(|e| WebError::Internal(format!("storing a review stopped: {e}")))?
        .map_err(store_error)?;
    if is_htmx(&headers) {
        return Ok(review_controls(id, Some(&review)).into_response());
    }
    Ok(axum::Json(json!({ "detection_id": id, "review": review_json(&review) })).into_response())
}

async fn keep(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let id = path_id("recording", &id)?;
    writable(&state)?;
    let fields = fields(&headers, &body).await?;
    let kept = match fields.get("keep").map(|v| v.trim()) {
        Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "field `keep`: `{other}` is not true or false"
            )));
        }
        None => return Err(WebError::BadRequest("field `keep` is missing".into())),
    };
    let store = state.store().clone();
    tokio::task::spawn_blocking(move || store.set_kept(id, kept))
        .await
        .map_err(|e| WebError::Internal(format!("keeping a recording stopped: {e}")))?
        .map_err(store_error)?;
    if is_htmx(&headers) {
        return Ok(keep_control(id, kept).into_response());
    }
    Ok(axum::Json(json!({ "recording_id": id, "kept": kept })).into_response())
}

#[cfg(test)]
mod tests;

//! The detections list behind `GET /api/v1/detections` and the `/detections` page.
//!
//! A listed detection is one `detections_flat` row whose tag has the species key (see
//! `species_key.rs`): its `tag_value` is the species, `confidence` the tag's confidence;
//! detections without such a tag (privacy markers, untagged detections) are not listed.
//! Times are the detection's own: `recorded_on` = the recording's `created_on` plus the
//! detection's `start_time` (0 without a location), and the date range and `hour`
//! filters apply to it in the deployment's time zone (the pipeline's
//! `[deployment] timezone`; UTC for a bare store file, whose tables hold no zone).
//! Newest first, ties by detection id.

use acoupi_store_duckdb::Verdict;
use chrono::{DateTime, Utc};
use duckdb::Connection;
use duckdb::types::ToSql;
use uuid::Uuid;

use crate::WebError;

/// Which review state to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReviewFilter {
    /// The latest review has this verdict.
    Verdict(Verdict),
    /// Never reviewed.
    None,
}

/// The filters of a detections list; `None` leaves a filter out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// From this instant (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    pub species: Option<String>,
    pub min_confidence: Option<f64>,
    pub model: Option<String>,
    pub review: Option<ReviewFilter>,
    /// The local hour (0–23) of `recorded_on`.
    pub hour: Option<u32>,
    pub recording: Option<Uuid>,
}

/// One listed detection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DetectionRow {
    pub id: Uuid,
    pub recording_id: Uuid,
    pub start_time: Option<f64>,
    pub end_time: Option<f64>,
    pub low_freq: Option<f64>,
    pub high_freq: Option<f64>,
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
    pub confidence: Option<f64>,
    pub detection_score: f64,
    pub model: String,
    pub recorded_on: DateTime<Utc>,
}

/// `recorded_on` in SQL.
const RECORDED_ON: &str = "(f.recording_created_on + to_microseconds(CAST(round(coalesce(f.start_time, 0) * 1e6) AS BIGINT)))";

const COLUMNS: &str = "f.detection_id::VARCHAR, f.recording_id::VARCHAR, f.start_time, \
    f.end_time, f.low_freq, f.high_freq, f.tag_key, f.tag_value, f.tag_confidence, \
    f.detection_score, f.model_name";

/// The WHERE clause and its parameters.
fn condition(key: &str, zone: &str, filter: &Filter) -> (String, Vec<Box<dyn ToSql>>) {
    let mut parts = vec!["f.tag_key = ?".to_owned()];
    let mut params: Vec<Box<dyn ToSql>> = vec![Box::new(key.to_owned())];
    if let Some(from) = filter.from {
        parts.push(format!("{RECORDED_ON} >= ?::TIMESTAMPTZ"));
        params.push(Box::new(from.to_rfc3339()));
    }
    if let Some(to) = filter.to {
        parts.push(format!("{RECORDED_ON} < ?::TIMESTAMPTZ"));
        params.push(Box::new(to.to_rfc3339()));
    }
    if let Some(species) = &filter.species {
        parts.push("f.tag_value = ?".into());
        params.push(Box::new(species.clone()));
    }
    if let Some(min) = filter.min_confidence {
        parts.push("f.tag_confidence >= ?".into());
        params.push(Box::new(min));
    }
    if let Some(model) = &filter.model {
        parts.push("f.model_name = ?".into());
        params.push(Box::new(model.clone()));
    }
    match filter.review {
        Some(ReviewFilter::Verdict(v)) => {
            parts.push("f.review_verdict = ?".into());
            params.push(Box::new(v.as_str()));
        }
        Some(ReviewFilter::None) => parts.push("f.review_verdict IS NULL".into()),
        None => {}
    }
    if let Some(hour) = filter.hour {
        parts.push(format!("hour(timezone(?, {RECORDED_ON})) = ?"));
        params.push(Box::new(zone.to_owned()));
        params.push(Box::new(hour));
    }
    if let Some(recording) = filter.recording {
        // A Uuid prints as hex and dashes only: safe to inline (and an index seek).
        parts.push(format!("f.recording_id = '{recording}'"));
    }
    (parts.join(" AND "), params)
}

/// One page of the list, and how many rows the filter matches in all.
pub(crate) fn list(
    conn: &Connection,
    key: &str,
    zone: &str,
    filter: &Filter,
    limit: u32,
    offset: u64,
) -> Result<(Vec<DetectionRow>, u64), WebError> {
    let (condition, mut params) = condition(key, zone, filter);
    let total: i64 = {
        let refs: Vec<&dyn ToSql> = params.iter().map(|p| p.as_ref()).collect();
        conn.prepare(&format!(
            "SELECT count(*) FROM detections_flat f WHERE {condition}"
        ))?
        .query_row(refs.as_slice(), |row| row.get(0))?
    };
    params.push(Box::new(i64::from(limit)));
    params.push(Box::new(i64::try_from(offset).unwrap_or(i64::MAX)));
    let refs: Vec<&dyn ToSql> = params.iter().map(|p| p.as_ref()).collect();
    let sql = format!(
        "SELECT {COLUMNS}, epoch_us({RECORDED_ON}) FROM detections_flat f WHERE {condition} \
         ORDER BY {RECORDED_ON} DESC, f.detection_id LIMIT ? OFFSET ?"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(refs.as_slice(), row_at)?;
    let mut found = Vec::new();
    for row in rows {
        found.push(checked(row?)?);
    }
    Ok((found, u64::try_from(total).unwrap_or(0)))
}

/// One detection, with its species tag when it has one (else its first tag, or none).
pub(crate) fn one(
    conn: &Connection,
    key: Option<&str>,
    id: Uuid,
) -> Result<Option<DetectionRow>, WebError> {
    let sql = format!(
        "SELECT {COLUMNS}, epoch_us({RECORDED_ON}) FROM detections_flat f \
         WHERE f.detection_id = '{id}' \
         ORDER BY (f.tag_key IS NOT DISTINCT FROM ?) DESC, f.tag_key, f.tag_value LIMIT 1"
    );
    let mut statement = conn.prepare(&sql)?;
    let mut rows = statement.query_map([key], row_at)?;
    rows.next().transpose()?.map(checked).transpose()
}

/// The species values and model names the filter form offers.
pub(crate) fn choices(
    conn: &Connection,
    key: &str,
) -> Result<(Vec<String>, Vec<String>), WebError> {
    let strings = |sql: &str, params: &[&dyn ToSql]| -> Result<Vec<String>, WebError> {
        let mut statement = conn.prepare(sql)?;
        let rows = statement.query_map(params, |row| row.get::<_, String>(0))?;
        Ok(rows.collect::<duckdb::Result<Vec<_>>>()?)
    };
    Ok((
        strings(
            "SELECT DISTINCT value FROM detection_tags WHERE key = ? ORDER BY 1",
            &[&key],
        )?,
        strings(
            "SELECT DISTINCT name_model FROM model_outputs ORDER BY 1",
            &[],
        )?,
    ))
}

type RawRow = (
    String,
    String,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<String>,
    Option<String>,
    Option<f64>,
    f64,
    String,
    i64,
);

fn row_at(row: &duckdb::Row<'_>) -> duckdb::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
        row.get(11)?,
    ))
}

fn checked(raw: RawRow) -> Result<DetectionRow, WebError> {
    let uuid = |text: &str| {
        Uuid::parse_str(text).map_err(|e| WebError::Store(format!("id `{text}`: {e}")))
    };
    Ok(DetectionRow {
        id: uuid(&raw.0)?,
        recording_id: uuid(&raw.1)?,
        start_time: raw.2,
        end_time: raw.3,
        low_freq: raw.4,
        high_freq: raw.5,
        tag_key: raw.6,
        tag_value: raw.7,
        confidence: raw.8,
        detection_score: raw.9,
        model: raw.10,
        recorded_on: DateTime::from_timestamp_micros(raw.11)
            .ok_or_else(|| WebError::Store(format!("time {} out of range", raw.11)))?,
    })
}

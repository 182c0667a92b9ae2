//! Reading reviews back: each detection's latest review (the `latest_reviews` view of
//! schema version 6), for the detections list, the review controls and the API.
//! Writing goes through `DuckDbStore::add_review` (its writing connection).

use std::collections::HashMap;

use acoupi_store_duckdb::{Review, Verdict};
use chrono::DateTime;
use duckdb::Connection;
use uuid::Uuid;

use crate::WebError;

/// The columns [`review_at`] reads, from `latest_reviews` or `reviews`.
const COLUMNS: &str =
    "id::VARCHAR, detection_id::VARCHAR, verdict, comment, reviewer, epoch_us(reviewed_on)";

/// The latest review of each of `ids` that has one.
pub(crate) fn latest_reviews(
    conn: &Connection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Review>, WebError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // Uuids print as hex and dashes only: safe to inline.
    let list = ids
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // `latest_reviews` is a window over all reviews; filtering `reviews` first keeps it
    // to the rows asked for.
    let sql = format!(
        "SELECT {COLUMNS} FROM reviews WHERE detection_id IN ({list}) \
         QUALIFY row_number() OVER (PARTITION BY detection_id ORDER BY reviewed_on DESC, id DESC) = 1"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map([], raw_at)?;
    let mut found = HashMap::new();
    for row in rows {
        let review = review_from(row?)?;
        found.insert(review.detection_id, review);
    }
    Ok(found)
}

/// The latest review of one detection.
#[allow(dead_code)] // For the recording page.
pub(crate) fn latest_review(conn: &Connection, id: Uuid) -> Result<Option<Review>, WebError> {
    Ok(latest_reviews(conn, &[id])?.remove(&id))
}

/// A review's columns as read, before they are checked.
pub(crate) type RawReview = (String, String, String, Option<String>, Option<String>, i64);

/// The [`COLUMNS`] of a row, starting at column 0.
pub(crate) fn raw_at(row: &duckdb::Row<'_>) -> duckdb::Result<RawReview> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

/// Checks a row read by [`raw_at`].
pub(crate) fn review_from(raw: RawReview) -> Result<Review, WebError> {
    let (id, detection_id, verdict, comment, reviewer, micros) = raw;
    let uuid = |text: &str| {
        Uuid::parse_str(text).map_err(|e| WebError::Store(format!("review id `{text}`: {e}")))
    };
    Ok(Review {
        id: uuid(&id)?,
        detection_id: uuid(&detection_id)?,
        verdict: verdict.parse::<Verdict>().map_err(WebError::Store)?,
        comment,
        reviewer,
        reviewed_on: DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| WebError::Store(format!("review time {micros} out of range")))?,
    })
}

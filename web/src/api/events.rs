//! `GET /api/v1/events`: Server-Sent Events, an event `detection` for each detection
//! stored after the client connected (JSON: `id`, `recording_id`, `start_time`,
//! `end_time`, `low_freq`, `high_freq`, `tag_key`, `tag_value`, `confidence`, `model`,
//! `time`), with keep-alive comments.
//!
//! One poller per router serves every client: it starts with the first client, reads
//! the store through [`AppState::read`] every [`POLL`] (so it works for `acoupi serve`
//! as well as on a station) and stops when the last client has gone. It sends through a
//! bounded `tokio::sync::broadcast` channel; a client too slow to keep up skips what it
//! missed. "New" means the detection's model output was stored (`created_on`) after the
//! poller started; outputs stamped up to [`SLACK`] before the newest one seen are still
//! picked up (an output is stamped before it is written), each detection once. Only
//! tags of the species key are sent (see `data/species.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::{AppState, WebError};

/// How often the poller reads the store.
pub(crate) const POLL: Duration = Duration::from_secs(1);
/// How far before the newest output seen the poller still looks.
const SLACK: Duration = Duration::from_secs(60);
const SLACK_US: i64 = SLACK.as_micros() as i64;
/// Events kept for a slow client.
const CAPACITY: usize = 256;
/// Detections read per poll at most.
const BATCH: usize = 500;

pub(crate) fn routes() -> Router<AppState> {
    let feed = Feed::default();
    Router::new().route(
        "/api/v1/events",
        get(move |State(state): State<AppState>| {
            let feed = feed.clone();
            async move { events(state, feed) }
        }),
    )
}

/// The poller's channel while it runs.
#[derive(Clone, Default)]
struct Feed {
    sender: Arc<Mutex<Option<broadcast::Sender<Arc<str>>>>>,
}

impl Feed {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<Arc<str>>>> {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver of the poller's events; starts the poller when none runs.
    fn subscribe(&self, state: &AppState) -> broadcast::Receiver<Arc<str>> {
        let mut slot = self.slot();
        if let Some(sender) = slot.as_ref() {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(CAPACITY);
        *slot = Some(sender.clone());
        tokio::spawn(poll(state.clone(), sender, self.clone()));
        receiver
    }
}

fn events(state: AppState, feed: Feed) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = feed.subscribe(&state);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(json) => {
                    let event = Event::default().event("detection").data(&*json);
                    return Some((Ok(event), receiver));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// A detection as the feed sends it.
#[derive(Debug, Serialize)]
struct FeedDetection {
    id: String,
    recording_id: String,
    start_time: Option<f64>,
    end_time: Option<f64>,
    low_freq: Option<f64>,
    high_freq: Option<f64>,
    tag_key: String,
    tag_value: String,
    confidence: f64,
    model: String,
    /// RFC 3339, UTC: the recording's start plus `start_time`.
    time: String,
    /// When its model output was stored (microseconds since the epoch; not sent).
    #[serde(skip)]
    stored_us: i64,
}

async fn poll(state: AppState, sender: broadcast::Sender<Arc<str>>, feed: Feed) {
    let floor = chrono::Utc::now().timestamp_micros();
    let mut newest = floor;
    let mut seen: HashMap<String, i64> = HashMap::new();
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if sender.receiver_count() == 0 {
            let mut slot = feed.slot();
            if sender.receiver_count() == 0 {
                *slot = None;
                return;
            }
        }
        let from = floor.max(newest - SLACK_US);
        let configured = state.options().species_key.clone();
        let read = state
            .read(move |conn| {
                let Some(key) = crate::data::species_key::species_key(conn, configured.as_deref())?
                else {
                    return Ok(Vec::new());
                };
                stored_since(conn, &key, from)
            })
            .await;
        let detections = match read {
            Ok(detections) => detections,
            Err(error) => {
                tracing::warn!(%error, "the live feed could not read the store");
                continue;
            }
        };
        for detection in detections {
            if seen.contains_key(&detection.id) {
                continue;
            }
            newest = newest.max(detection.stored_us);
            seen.insert(detection.id.clone(), detection.stored_us);
            if let Ok(json) = serde_json::to_string(&detection) {
                // No receiver right now is fine: the next tick decides whether to stop.
                let _ = sender.send(Arc::from(json));
            }
        }
        let keep_from = floor.max(newest - SLACK_US);
        seen.retain(|_, stored| *stored >= keep_from);
    }
}

/// Detections of `key` whose model output was stored at or after `from_us`, oldest
/// first, [`BATCH`] at most.
fn stored_since(
    conn: &duckdb::Connection,
    key: &str,
    from_us: i64,
) -> Result<Vec<FeedDetection>, WebError> {
    let sql = format!(
        "SELECT CAST(f.detection_id AS VARCHAR), CAST(f.recording_id AS VARCHAR), \
                f.start_time, f.end_time, f.low_freq, f.high_freq, f.tag_key, f.tag_value, \
                coalesce(f.tag_confidence, f.detection_score), f.model_name, \
                epoch_us(f.recording_created_on) \
                  + CAST(round(coalesce(f.start_time, 0) * 1000000) AS BIGINT), \
                epoch_us(f.model_output_created_on) AS stored \
         FROM detections_flat f \
         WHERE f.tag_key = ? AND f.model_output_created_on >= to_timestamp(?::DOUBLE) \
         ORDER BY stored, f.detection_id LIMIT {BATCH}"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(duckdb::params![key, from_us as f64 / 1e6], |row| {
        let time_us: i64 = row.get(10)?;
        Ok(FeedDetection {
            id: row.get(0)?,
            recording_id: row.get(1)?,
            start_time: row.get(2)?,
            end_time: row.get(3)?,
            low_freq: row.get(4)?,
            high_freq: row.get(5)?,
            tag_key: row.get(6)?,
            tag_value: row.get(7)?,
            confidence: row.get(8)?,
            model: row.get(9)?,
            time: chrono::DateTime::<chrono::Utc>::from_timestamp_micros(time_us)
                .unwrap_or_default()
                .to_rfc3339(),
            stored_us: row.get(11)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

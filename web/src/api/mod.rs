//! The JSON API under `/api/v1` (documented in docs/dashboard.md) and `/metrics`.

pub(crate) mod detections;
mod events;
pub(crate) mod media;
mod metrics;
pub(crate) mod recording;
mod species;
pub(crate) mod status;
#[cfg(test)]
mod status_tests;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(detections::routes())
        .merge(events::routes())
        .merge(media::routes())
        .merge(metrics::routes())
        .merge(recording::routes())
        .merge(species::routes())
        .merge(status::routes())
}

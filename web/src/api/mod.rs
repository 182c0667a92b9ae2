//! The JSON API under `/api/v1` (documented in docs/dashboard.md) and `/metrics`.

pub(crate) mod detections;
mod events;
pub(crate) mod media;
pub(crate) mod recording;
mod species;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(detections::routes())
        .merge(events::routes())
        .merge(media::routes())
        .merge(recording::routes())
        .merge(species::routes())
}

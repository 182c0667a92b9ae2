//! The JSON API under `/api/v1` (documented in docs/dashboard.md) and `/metrics`.

pub(crate) mod media;
pub(crate) mod recording;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(media::routes())
        .merge(recording::routes())
}

//! The JSON API under `/api/v1` (documented in docs/dashboard.md) and `/metrics`.

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}

//! The JSON API under `/api/v1` (documented in docs/dashboard.md) and `/metrics`.

mod metrics;
pub(crate) mod status;
#[cfg(test)]
mod status_tests;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(metrics::routes())
        .merge(status::routes())
}

//! The server-rendered pages (maud), one file each, and their shared layout.

mod analytics;
mod charts;
mod clips;
mod detections;
pub(crate) mod layout;
mod recording;
pub(crate) mod review;
mod species;
mod station;
mod today;
#[cfg(test)]
mod today_tests;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(analytics::routes())
        .merge(detections::routes())
        .merge(recording::routes())
        .merge(species::routes())
        .merge(station::routes())
        .merge(today::routes())
}

//! The server-rendered pages (maud), one file each, and their shared layout.

mod detections;
pub(crate) mod layout;
pub(crate) mod review;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().merge(detections::routes())
}

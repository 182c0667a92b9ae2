//! The server-rendered pages (maud), one file each, and their shared layout.

pub(crate) mod layout;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}

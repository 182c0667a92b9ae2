//! The server-rendered pages (maud), one file each, and their shared layout.

mod layout;
mod station;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().merge(station::routes())
}

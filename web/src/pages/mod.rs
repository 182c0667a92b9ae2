//! The server-rendered pages (maud), one file each, and their shared layout.

mod layout;
mod recording;

use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().merge(recording::routes())
}

//! The dashboard's static files (web/assets/: vendored htmx, our CSS and script),
//! compiled into the binary and served at `/assets/<name>` with their content type and a
//! long cache lifetime (a new binary brings new files; the frame links them with the
//! crate's version in the query string, so a browser never keeps an old one).

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// Name, content type and bytes of each file.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "acoupi.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/acoupi.js"),
    ),
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/htmx.min.js"),
    ),
    (
        "htmx.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/htmx.LICENSE"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/style.css"),
    ),
];

/// The query string the frame appends to asset URLs (a new version, a new URL).
pub(crate) const VERSION_QUERY: &str = concat!("?v=", env!("CARGO_PKG_VERSION"));

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/assets/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *bytes,
        )
            .into_response(),
        None => crate::WebError::NotFound(format!("asset `{name}`")).into_response(),
    }
}

#[cfg(test)]
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _, _)| *name)
}

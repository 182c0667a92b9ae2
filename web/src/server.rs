//! The router (every module's routes, the security layers) and serving it on a TCP
//! listener until shutdown.

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

use crate::{AppState, api, assets, pages, security};

/// Every page and endpoint, with the security layers, on `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages::routes())
        .merge(api::routes())
        .merge(assets::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes (in-flight requests finish;
/// open event streams are closed).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found(uri: axum::http::Uri) -> crate::WebError {
    crate::WebError::NotFound(format!("`{}`", uri.path()))
}

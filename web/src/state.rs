//! What every handler reads through: the store (its writing handle, for reviews), a small
//! pool of reader connections on the same DuckDB instance, the station's telemetry and
//! settings when a station serves the pages, and the server's options.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use acoupi_engine::config::Settings;
use acoupi_engine::telemetry::Telemetry;
use acoupi_store_duckdb::DuckDbStore;
use duckdb::Connection;

use crate::WebError;

/// Who serves the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// `acoupi run` with `[web]`: the station's own store connection, live telemetry.
    Station,
    /// `acoupi serve`: a store no station holds.
    File {
        /// Reviews and "keep" are refused (the store was opened read-only).
        read_only: bool,
    },
}

/// Everything [`AppState::new`] needs.
pub struct StateOptions {
    pub store: DuckDbStore,
    pub served: Served,
    /// The station's telemetry (`Served::Station` only).
    pub telemetry: Option<Telemetry>,
    /// The pipeline's settings, when the pages serve a pipeline's store.
    pub settings: Option<Arc<Settings>>,
    /// `[web] species_key`; `None`: the first tag key the store's models emit.
    pub species_key: Option<String>,
    /// Where rendered spectrograms are cached (bounded; see `api/media.rs`).
    pub cache_dir: PathBuf,
    /// The token every mutation (and every read unless `public`) must carry; `None` on a
    /// loopback bind without one.
    pub token: Option<String>,
    /// Reads need no token.
    pub public: bool,
}

/// A cheap handle (clones share everything) that axum hands to each handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    options: StateOptions,
    /// Reader connections not in use; a request takes one (or clones a new one from the
    /// store) and gives it back.
    readers: Mutex<Vec<Connection>>,
}

/// Reader connections kept for later requests; more are opened under load and closed.
const IDLE_READERS: usize = 4;

impl AppState {
    pub fn new(options: StateOptions) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                options,
                readers: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn options(&self) -> &StateOptions {
        &self.inner.options
    }

    pub fn store(&self) -> &DuckDbStore {
        &self.inner.options.store
    }

    /// Runs `query` with a reader connection on a blocking thread (queries are CPU work:
    /// never on the async executor).
    pub async fn read<T, F>(&self, query: F) -> Result<T, WebError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, WebError> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = state.take_reader()?;
            let result = query(&conn);
            state.give_back(conn);
            result
        })
        .await
        .map_err(|e| WebError::Internal(format!("a dashboard query stopped: {e}")))?
    }

    fn take_reader(&self) -> Result<Connection, WebError> {
        let idle = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self
                .store()
                .reader()
                .map_err(|e| WebError::Store(e.to_string())),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut readers = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if readers.len() < IDLE_READERS {
            readers.push(conn);
        }
    }
}

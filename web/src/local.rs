//! The local API: while `acoupi run` holds a store, `acoupi query`, `status` and `export`
//! ask the station over a Unix socket next to the store (`<store>.sock`) instead of
//! copying the whole file (the snapshot). Routes under `/local/v1`:
//!
//! - `GET /local/v1/ping` → `acoupi <version>` (the CLI checks the socket answers);
//! - `POST /local/v1/query` `{"sql": ..., "format": "table"|"csv"|"json"}` → the result
//!   as `acoupi query` writes it, streamed as DuckDB produces it; a refused or failed
//!   statement → 400 `{"error": ...}`;
//! - `POST /local/v1/export` `{"what": "detections"|"recordings"|"messages", "format":
//!   "parquet"|"csv"|"raven", "since"?, "until"?}` (RFC 3339) → the file's bytes, its row
//!   count in the `x-acoupi-rows` header.
//!
//! The sandbox: the station's DuckDB instance is sealed when the socket opens
//! ([`DuckDbStore::seal`]: external access off for the whole process, only the scratch
//! folder `<store>.export/` allowed besides DuckDB's own files; DuckDB refuses to undo
//! it), the statement check of `acoupi query` holds, and each query runs in a read-only
//! transaction on its own reader connection. Exports are written into the scratch folder
//! under a fresh name, opened, unlinked and streamed back; the CLI writes the file where
//! the user asked, so the station writes nothing outside its folders.
//!
//! Who may connect: the socket is created in a private (0700) folder with mode 0600 and
//! then renamed into place, so only the station's own user (and root) can connect: the
//! file mode is the access control, as for the store file itself. A socket left by a
//! crashed run is replaced only when nothing answers on it; a live one is an error. The
//! socket is removed when the station stops ([`LocalApi::stop`], or on drop).
//!
//! A failure after the first bytes of a result went out ends the response without its
//! last chunk; the client reports it as an error (see `local_client.rs`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use acoupi_store_duckdb::{DuckDbStore, ExportFormat, ExportWhat, QueryFormat};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

/// The socket of the station holding `store`: `<store file>.sock`.
pub fn socket_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".sock");
    PathBuf::from(name)
}

/// The station's scratch folder for exports: `<store file>.export/`.
pub fn scratch_dir(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".export");
    PathBuf::from(name)
}

/// What can keep the local API from starting.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("local API: `{0}` answers: another station serves this store")]
    InUse(PathBuf),
    #[error("local API: `{path}`: {reason}")]
    Socket { path: PathBuf, reason: String },
    #[error("local API: {0}")]
    Store(#[from] acoupi_engine::store::StoreError),
}

/// The running local API of a station; [`LocalApi::stop`] ends it and removes the socket.
pub struct LocalApi {
    path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LocalApi {
    /// Seals `store` (see the module docs), binds its socket and serves the local API on
    /// `runtime` until [`LocalApi::stop`].
    pub fn start(
        runtime: &tokio::runtime::Handle,
        store: &DuckDbStore,
    ) -> Result<LocalApi, LocalError> {
        store.seal(&scratch_dir(store.path()))?;
        clear_scratch(&scratch_dir(store.path()));
        let path = socket_path(store.path());
        let listener = bind(&path)?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::UnixListener::from_std(listener).map_err(|e| LocalError::Socket {
                path: path.clone(),
                reason: e.to_string(),
            })?
        };
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(store.clone());
        let task = runtime.spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                tracing::error!(%error, "local API stopped");
            }
        });
        tracing::debug!(socket = %path.display(), "local API listening");
        Ok(LocalApi {
            path,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving (requests under way get two seconds to finish) and removes the
    /// socket.
    pub fn stop(mut self, runtime: &tokio::runtime::Runtime) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            // The timer is made inside the runtime (it needs its reactor).
            let waited = runtime
                .block_on(async move { tokio::time::timeout(Duration::from_secs(2), task).await });
            if waited.is_err() {
                abort.abort();
            }
        }
        self.remove();
    }

    fn remove(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("local API: cannot remove `{}`: {e}", self.path.display()),
        }
    }
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.remove();
    }
}

/// Binds `path` with mode 0600: in a private folder beside it, then renamed into place
/// (no moment where another user could connect). A socket already there is replaced
/// only when nothing answers on it.
fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, LocalError> {
    let fail = |reason: String| LocalError::Socket {
        path: path.to_owned(),
        reason,
    };
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(LocalError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(|e| fail(format!("removing a stale socket: {e}")))?;
        tracing::info!(socket = %path.display(), "replaced the stale socket of an earlier run");
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    let private = tempfile::Builder::new()
        .prefix(".acoupi-sock-")
        .tempdir_in(folder.unwrap_or(Path::new(".")))
        .map_err(|e| fail(format!("creating a private folder: {e}")))?;
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| fail(e.to_string()))?;
    let inner = private.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&inner).map_err(|e| {
        fail(format!(
            "binding (a socket path holds at most 107 bytes): {e}"
        ))
    })?;
    std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail(e.to_string()))?;
    std::fs::rename(&inner, path).map_err(|e| fail(format!("moving the socket in place: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| fail(e.to_string()))?;
    Ok(listener)
}

/// Removes exports left by an earlier run (a crash between writing and unlinking).
fn clear_scratch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
}

/// The local API's routes on `store` (sealed by [`LocalApi::start`]).
pub fn router(store: DuckDbStore) -> Router {
    Router::new()
        .route("/local/v1/ping", get(ping))
        .route("/local/v1/query", post(query))
        .route("/local/v1/export", post(export))
        .with_state(store)
}

async fn ping() -> String {
    format!("acoupi {}", env!("CARGO_PKG_VERSION"))
}

#[derive(Deserialize)]
struct QueryRequest {
    sql: String,
    #[serde(default)]
    format: Option<String>,
}

async fn query(State(store): State<DuckDbStore>, Json(request): Json<QueryRequest>) -> Response {
    let format = match request.format.as_deref().unwrap_or("table") {
        "table" => QueryFormat::Table,
        "csv" => QueryFormat::Csv,
        "json" => QueryFormat::Json,
        other => return refuse(format!("unknown format `{other}` (table, csv or json)")),
    };
    let content_type = match format {
        QueryFormat::Json => "application/json",
        QueryFormat::Csv => "text/csv; charset=utf-8",
        QueryFormat::Table => "text/plain; charset=utf-8",
    };
    stream(content_type, move |out| {
        store
            .query_sealed(&request.sql, format, out)
            .map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
}

#[derive(Deserialize)]
struct ExportRequest {
    what: String,
    format: String,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
}

async fn export(State(store): State<DuckDbStore>, Json(request): Json<ExportRequest>) -> Response {
    let what = match request.what.as_str() {
        "detections" => ExportWhat::Detections,
        "recordings" => ExportWhat::Recordings,
        "messages" => ExportWhat::Messages,
        other => return refuse(format!("unknown `what` `{other}`")),
    };
    let (format, extension) = match request.format.as_str() {
        "parquet" => (ExportFormat::Parquet, "parquet"),
        "csv" => (ExportFormat::Csv, "csv"),
        "raven" => (ExportFormat::Raven, "txt"),
        other => return refuse(format!("unknown format `{other}`")),
    };
    let time = |text: &Option<String>| match text {
        Some(t) => acoupi_engine::data::parse_timestamp(t)
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    };
    let (since, until) = match (time(&request.since), time(&request.until)) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(e), _) | (_, Err(e)) => return refuse(e),
    };
    stream("application/octet-stream", move |out| {
        let name = format!("{}.{extension}", uuid::Uuid::new_v4());
        let (file, rows) = store
            .export_sealed(what, format, &name, since, until)
            .map_err(|e| e.to_string())?;
        let opened = std::fs::File::open(&file);
        // Unlinked at once: the open file is read to its end, nothing stays behind.
        if let Err(e) = std::fs::remove_file(&file) {
            tracing::warn!("local API: cannot remove `{}`: {e}", file.display());
        }
        let mut opened = opened.map_err(|e| format!("export: reading the file: {e}"))?;
        out.rows(rows);
        std::io::copy(&mut opened, out).map_err(|e| format!("export: {e}"))?;
        Ok(())
    })
    .await
}

fn refuse(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// What the blocking side of a response sends.
enum Piece {
    Rows(usize),
    Data(Vec<u8>),
    Failed(String),
}

/// A [`Write`] sending its bytes in pieces to the response.
pub(crate) struct PieceWriter {
    tx: mpsc::Sender<Piece>,
    held: Vec<u8>,
}

/// Bytes per piece of a streamed response.
const PIECE: usize = 64 * 1024;

impl PieceWriter {
    fn rows(&mut self, rows: usize) {
        let _ = self.tx.blocking_send(Piece::Rows(rows));
    }

    fn send(&mut self) -> std::io::Result<()> {
        let piece = std::mem::take(&mut self.held);
        self.tx
            .blocking_send(Piece::Data(piece))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for PieceWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.held.extend_from_slice(buf);
        if self.held.len() >= PIECE {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `produce` on a blocking thread, streaming what it writes as the response body.
/// A failure before any byte went out is a 400 with its message; one after ends the
/// body without its last chunk.
async fn stream(
    content_type: &'static str,
    produce: impl FnOnce(&mut PieceWriter) -> Result<(), String> + Send + 'static,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Piece>(4);
    tokio::task::spawn_blocking(move || {
        let mut writer = PieceWriter {
            tx: tx.clone(),
            held: Vec::new(),
        };
        match produce(&mut writer) {
            Ok(()) => {
                // The last piece, maybe empty: the body starts even for an empty result.
                let _ = writer.send();
            }
            Err(message) => {
                let _ = tx.blocking_send(Piece::Failed(message));
            }
        }
    });
    let mut rows = None;
    let first = loop {
        match rx.recv().await {
            Some(Piece::Rows(n)) => rows = Some(n),
            Some(Piece::Data(data)) => break data,
            Some(Piece::Failed(message)) => return refuse(message),
            None => return refuse("the request ended without an answer".into()),
        }
    };
    let rest = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Some(Piece::Data(data)) => Some((Ok(data), rx)),
            Some(Piece::Failed(message)) => {
                tracing::warn!("local API: failed while streaming: {message}");
                Some((Err(std::io::Error::other(message)), rx))
            }
            Some(Piece::Rows(_)) => Some((Ok(Vec::new()), rx)),
            None => None,
        }
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) }),
        rest,
    );
    let mut response = Response::new(Body::from_stream(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(rows) = rows {
        response
            .headers_mut()
            .insert("x-acoupi-rows", HeaderValue::from(rows));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local_client::{ClientError, LocalClient};

    fn started() -> (
        tempfile::TempDir,
        tokio::runtime::Runtime,
        DuckDbStore,
        LocalApi,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let api = LocalApi::start(runtime.handle(), &store).unwrap();
        (dir, runtime, store, api)
    }

    #[test]
    fn a_query_answers_over_the_socket_as_acoupi_query_writes_it() {
        let (dir, runtime, store, api) = started();
        let mode = std::fs::metadata(api.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let client = LocalClient::find(store.path()).unwrap();
        let sql = "SELECT range AS i, 'x' || range AS s FROM range(100000)";
        let mut through = Vec::new();
        client.query(sql, "csv", &mut through).unwrap();
        let mut direct = Vec::new();
        store
            .query_sealed(sql, QueryFormat::Csv, &mut direct)
            .unwrap();
        assert_eq!(through, direct);
        assert_eq!(String::from_utf8(through).unwrap().lines().count(), 100_001);
        let refused = client.query(
            "SELECT * FROM read_csv('/etc/passwd')",
            "csv",
            &mut Vec::new(),
        );
        assert!(matches!(refused, Err(ClientError::Refused(m)) if m.contains("Permission Error")));
        let refused = client.query("DELETE FROM recordings", "csv", &mut Vec::new());
        assert!(matches!(refused, Err(ClientError::Refused(m)) if m.contains("read-only")));
        let mut rows = Vec::new();
        let n = client
            .export("recordings", "csv", None, None, &mut rows)
            .unwrap();
        assert_eq!(n, 0);
        assert!(String::from_utf8(rows).unwrap().starts_with("id,"));
        assert_eq!(
            std::fs::read_dir(scratch_dir(store.path()))
                .unwrap()
                .count(),
            0
        );
        let socket = api.path().to_owned();
        api.stop(&runtime);
        assert!(!socket.exists());
        assert!(LocalClient::find(store.path()).is_none());
        drop(dir);
    }

    #[test]
    fn a_live_socket_is_not_replaced() {
        let (_dir, runtime, store, api) = started();
        assert!(matches!(bind(api.path()), Err(LocalError::InUse(_))));
        api.stop(&runtime);
        drop(store);
    }
}

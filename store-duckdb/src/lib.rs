//! The DuckDB store (`store.duckdb`): one DuckDB file that keeps deployments, recordings,
//! model outputs and messages ([`DuckDbStore`] implements both [`Store`] and
//! [`MessageStore`]), plus the functions `acoupi query`, `acoupi export` and `acoupi merge`
//! call ([`query()`], [`export()`], [`merge()`]).
//!
//! This file owns opening: the in-process registry of open files, locks, snapshots and
//! error mapping. [`schema`] holds the DDL and migrations, [`rows`] the row ↔ data model
//! conversions, `store.rs` the trait implementations.
//!
//! # Tables (names users can rely on)
//!
//! | table | columns |
//! |---|---|
//! | `deployments` | `id` UUID, `name`, `latitude` DOUBLE?, `longitude` DOUBLE?, `started_on` TIMESTAMPTZ, `ended_on` TIMESTAMPTZ? |
//! | `recordings` | `id` UUID, `deployment_id`, `created_on`, `duration` DOUBLE (s), `samplerate` UINTEGER (Hz), `audio_channels` UINTEGER, `time_expansion` DOUBLE, `path` VARCHAR? (NULL once the file is deleted; the row stays), `gaps` UINTEGER and `lost_frames` UBIGINT (audio lost inside or just before the recording; 0 when gapless), `kept` BOOLEAN ("keep" from the dashboard: retention never deletes the file) |
//! | `model_outputs` | `id`, `recording_id`, `name_model`, `created_on` |
//! | `detections` | `id`, `model_output_id`, `prediction_type` (`presence`/`sequence`/`event`), `start_time`?, `low_freq`?, `end_time`?, `high_freq`? (DOUBLE; all four NULL without a location), `detection_score` |
//! | `detection_tags` | `detection_id`, `key`, `value`, `confidence_score` |
//! | `messages` | `id`, `content` VARCHAR (text bodies), `content_bytes` BLOB (byte bodies; exactly one of the two is set), `created_on`, `message_type` VARCHAR? (`deployment`, `heartbeat`, `recording`, `summary`, `detection`) |
//! | `responses` | `id`, `message_id`, `status` INTEGER (0 SUCCESS, 1 FAILED, 2 ERROR, 3 TIMEOUT), `content` VARCHAR?, `received_on` |
//! | `metrics` | `name`, `value` DOUBLE, `unit`, `captured_on` |
//! | `stage_runs` | `stage`, `kind`, `started_on`, `finished_on`, `outcome` (what the run did): one row per stage run |
//! | `reprocessed_files` | `path` (absolute), `size`, `mtime_ns`, `fingerprint`, `recording_id` UUID?, `status` (`done`/`filtered`/`error`), `error`?, `time_source`? (`time_format`, `audiomoth_comment`, `file_name`, `mtime`), `processed_on`: one row per archive file per fingerprint (`acoupi reprocess`) |
//! | `reviews` | `id` UUID, `detection_id`, `verdict` (`correct`/`false_positive`/`unsure`), `comment` VARCHAR?, `reviewer` VARCHAR?, `reviewed_on` TIMESTAMPTZ: every review of a detection is kept (its history); the latest (by `reviewed_on`, then `id`) wins |
//! | `schema_version` | `version`, `applied_on`: one row per applied migration |
//!
//! Ids are `UUID`, times `TIMESTAMPTZ` in UTC kept to the microsecond (a stored value
//! reads back truncated to whole microseconds; see [`stored_precision`]). Indexes:
//! `recordings.path`, `model_outputs.recording_id`, `detections.model_output_id`,
//! `detection_tags.detection_id`, `responses.message_id`, `responses.status`,
//! `reviews.detection_id`.
//!
//! Views: `detections_flat` (one row per detection × tag, detections without tags
//! once with NULL tag columns: `detection_id`, `model_output_id`, `recording_id`,
//! `recording_created_on`, `recording_path`, `deployment_name`, `model_name`,
//! `model_output_created_on`, `prediction_type`, `detection_score`, `start_time`,
//! `low_freq`, `end_time`, `high_freq`, `tag_key`, `tag_value`, `tag_confidence`, then the
//! latest review's `review_verdict`, `review_comment`, `reviewed_on`, NULL when never
//! reviewed), `latest_reviews` (one row per reviewed detection: `detection_id`,
//! `verdict`, `comment`, `reviewer`, `reviewed_on`) and
//! `message_status` (one row per message: `message_id`, `created_on`, `message_type`,
//! `attempts` (responses so far), `latest_status`, `latest_status_name`,
//! `latest_received_on`, `sent`).
//!
//! # Schema versions
//!
//! The current version is [`CURRENT_VERSION`] (6). [`DuckDbStore::open`] upgrades an older
//! file in place, one migration per transaction; a file from a newer acoupi is refused
//! with [`StoreError::NewerSchema`]; read-only opens never migrate.
//!
//! # Concurrency (measured with DuckDB 1.5.6, the library this crate links)
//!
//! DuckDB takes an exclusive `fcntl` lock on the file when it opens it for writing and a
//! shared one when it opens it read-only. So while `acoupi run` holds the store:
//! - a second writer process fails: [`StoreError::Locked`], whose reason names the
//!   program and PID holding the lock ("lock held by /usr/bin/acoupi (PID 1234)");
//! - a read-only open by another process **fails the same way** (DuckDB 1.5 has no
//!   read-while-writing across processes); [`DuckDbStore::open_read_only`] reports it
//!   as [`StoreError::Locked`] too;
//! - what does work is reading a copy: [`DuckDbStore::open_snapshot`] copies the file and
//!   its write-ahead log (`<file>.wal`) into a temporary folder and opens the copy
//!   read-only; DuckDB replays the copied log, so the snapshot includes every committed
//!   write. The copy is retried when the main file changed while it was copied (a
//!   checkpoint). [`query()`] and [`export()`] fall back to a snapshot when the file is
//!   locked; `query`'s snapshot is opened in the same sandbox as the file itself
//!   (`query.rs`: the copy is the connection's own main file, which the sandbox allows).
//!   Within a process a read-only handle is shared only with a request of the same kind
//!   (sandboxed or not).
//! - several read-only processes can share the file while nobody writes; a writer then
//!   fails until they close it.
//!
//! # Prepared statements and speed
//!
//! DuckDB 1.5.6 plans a prepared statement with the table statistics of the moment and
//! does not re-plan when the data changes: an `ORDER BY ... LIMIT` prepared on an empty
//! table and run again after rows arrived reads garbage strings (pinned by a test). So
//! reads are prepared for the call that runs them, while writes (`INSERT ... ON CONFLICT
//! DO NOTHING`, `UPDATE ... WHERE id = ?`), whose plans do not depend on the data, are
//! prepared once per connection (`prepare_cached`). The writing connection runs on one
//! thread (DuckDB's pool woke and parked its workers for every tiny transaction). A
//! single-statement write is its own transaction; every write is committed, its
//! write-ahead log synced, before the call returns: the price of every stored output
//! surviving a power cut, and most of a write's time on a slow disk.
//!
//! DuckDB 1.5 decides on an index scan when a table scan starts, for a scan with one
//! filter, `column = constant`: look-ups name their key (a path, an id) as a literal,
//! and the writing connection turns off join filter pushdown, whose extra filter on
//! `recordings` would otherwise turn the path look-up into a full scan. A look-up by
//! path seeks through `recordings_path` (EXPLAIN ANALYZE shows an index scan; pinned by
//! a test on 100,000 recordings). `get_unsent_messages` and
//! `get_model_outputs_between` scan (fine for tens of thousands of rows).
//!
//! # Within one process
//!
//! Within one process, locks do not separate two DuckDB instances (POSIX locks are per
//! process, and closing any descriptor of the file drops them), so opening a file twice
//! must not create two instances: the store keeps a registry of open files, and a second
//! [`DuckDbStore::open`] of the same file returns a handle on the same connection. A
//! read-only or snapshot open of a file this process has open for writing is refused
//! with [`StoreError::Locked`] (read through the writing handle instead).

mod export;
mod merge;
mod query;
mod reprocessed;
mod reviews;
mod rows;
mod schema;
mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

pub use acoupi_engine::store::StoreError;
use acoupi_engine::store::{MessageStore, Store};
use duckdb::{AccessMode, Config, Connection};

pub use export::{ExportFormat, ExportWhat, export, export_partitioned, read_plan, write_plan};
pub use merge::{MergeReport, export_parquet, merge};
pub use query::{QueryFormat, query};
pub use reviews::{Review, Verdict};
pub use rows::stored_precision;
pub use schema::CURRENT_VERSION;

/// A DuckDB store file. Cloning gives another handle on the same connection; every
/// call takes the connection's lock, so writes are serialised.
#[derive(Clone)]
pub struct DuckDbStore {
    shared: Arc<Shared>,
}

/// How a store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write; migrated to the current schema.
    Write,
    /// Read-only on the file itself.
    ReadOnly,
    /// Read-only on a copy taken when it was opened.
    Snapshot,
}

struct Shared {
    // Declared before `snapshot`, so the connection closes before the copy is removed.
    conn: Mutex<Connection>,
    path: PathBuf,
    access: Access,
    /// Opened with [`Reading::Sandboxed`] (a read-only handle is shared only with a
    /// request for the same kind).
    sandboxed: bool,
    snapshot: Option<SnapshotDir>,
    /// The station's scratch folder once [`DuckDbStore::seal`] turned external access
    /// off on this instance (the local API's queries and exports need it).
    sealed: Mutex<Option<PathBuf>>,
}

/// How a read-only connection is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Every DuckDB feature the store's own code uses (`acoupi export` writes its file
    /// with `COPY ... TO`).
    Plain,
    /// For SQL a user typed (`acoupi query`): no files but the store's own, no network,
    /// no extensions installed or loaded, and the configuration locked so that `SET`
    /// cannot undo it (see [`sandbox`]).
    Sandboxed,
}

/// The files this process has open, by canonical path (see the module docs).
static OPEN: Mutex<BTreeMap<PathBuf, Weak<Shared>>> = Mutex::new(BTreeMap::new());

fn open_files() -> MutexGuard<'static, BTreeMap<PathBuf, Weak<Shared>>> {
    // A panic elsewhere while holding this lock leaves the map consistent.
    OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DuckDbStore {
    /// Opens (creating the file and its folder if missing) for reading and writing, and
    /// migrates the schema to [`CURRENT_VERSION`].
    ///
    /// Errors: [`StoreError::Locked`] when another process has the file open,
    /// [`StoreError::NewerSchema`] for a file from a newer acoupi,
    /// [`StoreError::Open`] otherwise.
    pub fn open(path: &Path) -> Result<DuckDbStore, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.to_owned(),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                open_error(format!("cannot create folder `{}`: {e}", parent.display()))
            })?;
        }
        let key = canonical(path)?;
        let mut open = open_files();
        if let Some(shared) = open.get(&key).and_then(Weak::upgrade) {
            return match shared.access {
                Access::Write => Ok(DuckDbStore { shared }),
                _ => Err(locked_here(path, "it is open read-only in this process")),
            };
        }
        let mut conn = Connection::open(path).map_err(|e| connect_error(path, e))?;
        prepare_connection(&conn);
        prepare_writer(&conn);
        let found = schema::migrate(&mut conn, path)?;
        if (1..CURRENT_VERSION).contains(&found) {
            tracing::info!(
                store = %path.display(),
                "store schema upgraded from version {found} to {CURRENT_VERSION}"
            );
        }
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            access: Access::Write,
            sandboxed: false,
            snapshot: None,
            sealed: Mutex::new(None),
        });
        open.retain(|_, handle| handle.strong_count() > 0);
        open.insert(key, Arc::downgrade(&shared));
        Ok(DuckDbStore { shared })
    }

    /// Opens an existing file read-only, without migrating. Refused with
    /// [`StoreError::Locked`] while another process (or this one) has it open for
    /// writing: DuckDB 1.5 does not let a second process read a file being written
    /// (see the module docs; [`DuckDbStore::open_snapshot`] is the alternative).
    pub fn open_read_only(path: &Path) -> Result<DuckDbStore, StoreError> {
        DuckDbStore::open_reading(path, Reading::Plain)
    }

    fn open_reading(path: &Path, reading: Reading) -> Result<DuckDbStore, StoreError> {
        let sandboxed = reading == Reading::Sandboxed;
        let key = existing(path)?;
        let mut open = open_files();
        if let Some(shared) = open.get(&key).and_then(Weak::upgrade) {
            return match shared.access {
                Access::ReadOnly if shared.sandboxed == sandboxed => Ok(DuckDbStore { shared }),
                Access::ReadOnly => Err(locked_here(
                    path,
                    "it is open read-only in this process with other settings",
                )),
                _ => Err(locked_here(path, "it is open for writing in this process")),
            };
        }
        let conn = open_read_only_connection(path, reading)?;
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            access: Access::ReadOnly,
            sandboxed,
            snapshot: None,
            sealed: Mutex::new(None),
        });
        open.insert(key, Arc::downgrade(&shared));
        Ok(DuckDbStore { shared })
    }

    /// Opens a read-only copy of the file and its write-ahead log, taken now: works while
    /// another process writes the file. The copy lives in the system's temporary folder
    /// and is removed when the last handle is dropped. Refused for a file this process
    /// has open for writing (copying it would drop this process's lock); where this
    /// process reads the file already, returns that handle.
    pub fn open_snapshot(path: &Path) -> Result<DuckDbStore, StoreError> {
        DuckDbStore::open_snapshot_with(path, Reading::Plain)
    }

    fn open_snapshot_with(path: &Path, reading: Reading) -> Result<DuckDbStore, StoreError> {
        let sandboxed = reading == Reading::Sandboxed;
        let key = existing(path)?;
        if let Some(shared) = open_files().get(&key).and_then(Weak::upgrade) {
            return match shared.access {
                Access::Write => Err(locked_here(path, "it is open for writing in this process")),
                _ if shared.sandboxed != sandboxed => Err(locked_here(
                    path,
                    "it is open read-only in this process with other settings",
                )),
                _ => Ok(DuckDbStore { shared }),
            };
        }
        let mut last_error = None;
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let dir = SnapshotDir::copy_of(path)?;
            match open_read_only_connection(&dir.file, reading) {
                Ok(conn) => {
                    return Ok(DuckDbStore {
                        shared: Arc::new(Shared {
                            conn: Mutex::new(conn),
                            path: path.to_owned(),
                            access: Access::Snapshot,
                            sandboxed,
                            snapshot: Some(dir),
                            sealed: Mutex::new(None),
                        }),
                    });
                }
                Err(e @ StoreError::NewerSchema { .. }) => return Err(e),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| StoreError::Open {
            path: path.to_owned(),
            reason: "could not take a consistent snapshot".into(),
        }))
    }

    /// Read-only if possible, else a snapshot (when another process writes the file).
    pub fn open_for_reading(path: &Path) -> Result<DuckDbStore, StoreError> {
        match DuckDbStore::open_read_only(path) {
            Err(StoreError::Locked { .. }) => DuckDbStore::open_snapshot(path),
            other => other,
        }
    }

    /// Like [`DuckDbStore::open_for_reading`], sandboxed for SQL a user typed
    /// (`acoupi query`, see [`sandbox`]). The snapshot is the connection's own main
    /// file, so it needs no access outside the sandbox either.
    pub(crate) fn open_sandboxed(path: &Path) -> Result<DuckDbStore, StoreError> {
        match DuckDbStore::open_reading(path, Reading::Sandboxed) {
            Err(StoreError::Locked { .. }) => {
                DuckDbStore::open_snapshot_with(path, Reading::Sandboxed)
            }
            other => other,
        }
    }

    /// Caps the memory DuckDB may use for this file at `mib` MiB (`SET memory_limit`):
    /// its buffer pool of cached blocks, indexes and query state. DuckDB's default is 80 %
    /// of the machine's RAM; a station's tiny transactions need a few MiB, and a cap
    /// keeps the cache from growing with the store over months. (The station's
    /// `memory_limit` only; DuckDB's `threads` is set elsewhere.)
    pub fn limit_memory(&self, mib: u64) -> Result<(), StoreError> {
        self.connection()
            .execute_batch(&format!("SET memory_limit = '{mib}MiB'"))
            .map_err(|e| StoreError::Database(format!("cannot set memory_limit: {e}")))
    }

    /// Another connection on this store's database (the same DuckDB instance, with its
    /// own transactions), for readers that must not wait on the writer's lock: the
    /// dashboard's queries while the station writes. Reads are prepared for the call
    /// that runs them, as everywhere in this crate (see the crate docs). A reader of a
    /// store opened for writing can write too; only the dashboard's reviews do.
    pub fn reader(&self) -> Result<Connection, StoreError> {
        self.connection().try_clone().map_err(database)
    }

    /// Seals a station's instance for SQL a user sends over the local API (`local.rs` in
    /// acoupi-web): DuckDB's external access goes off for the rest of the process, so no
    /// statement on any connection of this instance reads or writes a file but the
    /// database's own (its file, write-ahead log and `<store>.tmp/` spill folder, which
    /// DuckDB keeps allowing) and `scratch` (created here, mode 0700), where
    /// [`DuckDbStore::export_sealed`] writes; no extension is installed, loaded or
    /// autoloaded. DuckDB refuses to turn external access back on or to change the
    /// allowed folders while the database runs (`SET` fails), so this cannot be undone;
    /// measured with DuckDB 1.5.6 that the station still records, checkpoints and spills
    /// (tests: `sealed_*`). Only for a store opened for writing; idempotent.
    pub fn seal(&self, scratch: &Path) -> Result<(), StoreError> {
        if self.shared.access != Access::Write {
            return Err(StoreError::Database(
                "only a store opened for writing is sealed".into(),
            ));
        }
        let mut sealed = self
            .shared
            .sealed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sealed.is_some() {
            return Ok(());
        }
        let fail = |what: String| StoreError::Database(format!("cannot seal the store: {what}"));
        create_private_dir(scratch)
            .map_err(|e| fail(format!("creating `{}`: {e}", scratch.display())))?;
        let scratch = std::fs::canonicalize(scratch)
            .map_err(|e| fail(format!("`{}`: {e}", scratch.display())))?;
        let mut folder = rows::sql_path(&scratch)
            .ok_or_else(|| fail(format!("`{}` is not valid UTF-8", scratch.display())))?;
        // A folder is allowed with a trailing `/` (else `<scratch>-x` would match too).
        folder.insert(folder.len() - 1, '/');
        let conn = self.connection();
        for setting in [
            format!("SET allowed_directories = [{folder}]"),
            "SET autoinstall_known_extensions = false".to_owned(),
            "SET autoload_known_extensions = false".to_owned(),
            "SET allow_community_extensions = false".to_owned(),
            "SET enable_external_access = false".to_owned(),
        ] {
            conn.execute_batch(&setting)
                .map_err(|e| fail(format!("`{setting}`: {e}")))?;
        }
        *sealed = Some(scratch);
        Ok(())
    }

    /// The scratch folder [`DuckDbStore::seal`] allowed; `None` while not sealed.
    pub fn sealed_scratch(&self) -> Option<PathBuf> {
        self.shared
            .sealed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The file as given to `open` (for a snapshot: the original file).
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    pub fn access(&self) -> Access {
        self.shared.access
    }

    /// The file's schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::version(&self.connection()).map_err(StoreError::Database)
    }

    /// The connection, locked. A panic in another holder leaves DuckDB consistent (an
    /// open transaction is rolled back when dropped), so a poisoned lock is taken over.
    fn connection(&self) -> MutexGuard<'_, Connection> {
        self.shared
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for DuckDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckDbStore")
            .field("path", &self.shared.path)
            .field("access", &self.shared.access)
            .field("snapshot", &self.shared.snapshot.as_ref().map(|s| &s.file))
            .finish()
    }
}

// Both traits are implemented in store.rs; this keeps the requirement visible here.
const _: fn() = || {
    fn implements<T: Store + MessageStore>() {}
    implements::<DuckDbStore>();
};

/// Session settings every connection gets: timestamps shown and cast in UTC.
fn prepare_connection(conn: &Connection) {
    // Only fails where DuckDB was built without ICU, whose time zone is always UTC.
    if let Err(e) = conn.execute_batch("SET TimeZone = 'UTC'") {
        tracing::debug!("store: cannot set the time zone to UTC: {e}");
    }
}

/// Settings of the writing connection, chosen for many small transactions (see "Speed"
/// in the module docs): one thread (DuckDB's pool would wake and park its workers for
/// every statement of a few rows); no join filter pushdown (its filter on the join key
/// joins the look-up's own in the scan of `recordings`, and DuckDB 1.5 seeks through
/// an index only for a scan with one filter); room in the statement cache for every
/// write.
fn prepare_writer(conn: &Connection) {
    for setting in [
        "SET threads = 1",
        "SET disabled_optimizers = 'join_filter_pushdown'",
    ] {
        if let Err(e) = conn.execute_batch(setting) {
            tracing::debug!("store: cannot `{setting}`: {e}");
        }
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
}

/// Prepared statements kept per writing connection: the store's writes, with room.
const STATEMENT_CACHE: usize = 64;

fn open_read_only_connection(path: &Path, reading: Reading) -> Result<Connection, StoreError> {
    let mut config = Config::default()
        .access_mode(AccessMode::ReadOnly)
        .map_err(|e| connect_error(path, e))?;
    if reading == Reading::Sandboxed {
        config = sandbox(config).map_err(|e| connect_error(path, e))?;
    }
    let conn = Connection::open_with_flags(path, config).map_err(|e| connect_error(path, e))?;
    prepare_connection(&conn);
    let found = schema::version(&conn).map_err(|reason| StoreError::Open {
        path: path.to_owned(),
        reason,
    })?;
    schema::check_not_newer(found, path)?;
    schema::read_older(&conn, found).map_err(|reason| StoreError::Open {
        path: path.to_owned(),
        reason,
    })?;
    if reading == Reading::Sandboxed {
        // Last, after the session settings above: from here on no `SET` or `RESET`
        // changes any setting of this database instance.
        conn.execute_batch("SET lock_configuration = true")
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: format!("cannot lock the query sandbox's configuration: {e}"),
            })?;
    }
    Ok(conn)
}

/// The query sandbox's settings (DuckDB's own "securing DuckDB" settings): no file
/// but the database's own (`COPY`, `EXPORT`, `ATTACH`, `read_csv`, `read_text`, ... are
/// refused by DuckDB), no extension installed or loaded (so no `httpfs`, no network),
/// no community extensions. [`open_read_only_connection`] locks the configuration
/// after its session settings.
fn sandbox(config: Config) -> duckdb::Result<Config> {
    config
        .enable_external_access(false)?
        .enable_autoload_extension(false)?
        .with("allow_community_extensions", "false")
}

/// Creates `dir` (and its parents) with mode 0700 for the folder itself.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The canonical form of a path whose folder exists (the file itself may not).
fn canonical(path: &Path) -> Result<PathBuf, StoreError> {
    let open_error = |e: std::io::Error| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(_) => {
            let parent = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => std::fs::canonicalize(parent).map_err(open_error)?,
                None => std::env::current_dir().map_err(open_error)?,
            };
            Ok(parent.join(path.file_name().unwrap_or(path.as_os_str())))
        }
    }
}

/// The canonical path of a store file that must exist.
fn existing(path: &Path) -> Result<PathBuf, StoreError> {
    std::fs::canonicalize(path).map_err(|e| StoreError::Open {
        path: path.to_owned(),
        reason: format!("{e} (a store file is created by `acoupi run`)"),
    })
}

/// Maps DuckDB's open errors: its lock conflict becomes [`StoreError::Locked`] with the
/// lock holder it names.
fn connect_error(path: &Path, error: duckdb::Error) -> StoreError {
    let message = error.to_string();
    const HELD: &str = "Conflicting lock is held in ";
    if let Some(start) = message.find(HELD) {
        let holder = &message[start + HELD.len()..];
        let holder = holder.find(')').map_or(holder, |end| &holder[..=end]);
        return StoreError::Locked {
            path: path.to_owned(),
            reason: format!("lock held by {holder}"),
        };
    }
    if message.contains("Could not set lock") {
        return StoreError::Locked {
            path: path.to_owned(),
            reason: message,
        };
    }
    StoreError::Open {
        path: path.to_owned(),
        reason: message,
    }
}

fn locked_here(path: &Path, why: &str) -> StoreError {
    StoreError::Locked {
        path: path.to_owned(),
        reason: format!("{why} (PID {})", std::process::id()),
    }
}

/// Any other DuckDB error.
fn database(error: duckdb::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

const SNAPSHOT_ATTEMPTS: usize = 5;

/// A temporary folder holding a copy of a store file; removed on drop.
struct SnapshotDir {
    dir: PathBuf,
    file: PathBuf,
}

impl SnapshotDir {
    /// Copies `path` and `path.wal`, retrying while the main file changes under the copy
    /// (a checkpoint by the writer): a main file unchanged across both copies is a
    /// checkpoint, and the log copied after it only adds committed entries (a torn last
    /// entry is dropped by DuckDB's replay, as after a crash).
    fn copy_of(path: &Path) -> Result<SnapshotDir, StoreError> {
        let io_error = |what: &str, e: std::io::Error| StoreError::Open {
            path: path.to_owned(),
            reason: format!("taking a snapshot: {what}: {e}"),
        };
        let dir = std::env::temp_dir().join(format!("acoupi-snapshot-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).map_err(|e| io_error("creating a temporary folder", e))?;
        let name = path
            .file_name()
            .unwrap_or(std::ffi::OsStr::new("store.duckdb"));
        let snapshot = SnapshotDir {
            file: dir.join(name),
            dir,
        };
        let mut wal_name = name.to_owned();
        wal_name.push(".wal");
        let wal = path.with_file_name(&wal_name);
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let before = stamp(path).map_err(|e| io_error("reading the store file", e))?;
            std::fs::copy(path, &snapshot.file)
                .map_err(|e| io_error("copying the store file", e))?;
            let _ = std::fs::remove_file(snapshot.dir.join(&wal_name));
            match std::fs::copy(&wal, snapshot.dir.join(&wal_name)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("copying the write-ahead log", e)),
            }
            if stamp(path).map_err(|e| io_error("reading the store file", e))? == before {
                return Ok(snapshot);
            }
        }
        Err(StoreError::Open {
            path: path.to_owned(),
            reason: "taking a snapshot: the file kept changing while it was copied; try again"
                .into(),
        })
    }
}

/// What changes when DuckDB writes the main file.
fn stamp(path: &Path) -> std::io::Result<(u64, Option<SystemTime>)> {
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.len(), metadata.modified().ok()))
}

impl Drop for SnapshotDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(
                "store: cannot remove snapshot folder `{}`: {e}",
                self.dir.display()
            );
        }
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn the_memory_limit_is_set_on_the_stations_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap();
        store.limit_memory(48).unwrap();
        let limit: String = store
            .connection()
            .query_row("SELECT current_setting('memory_limit')", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(limit, "48.0 MiB");
    }
}

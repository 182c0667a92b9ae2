//! `acoupi merge OUT INPUT...`: combines store files (the shards of
//! `acoupi reprocess --shard`) into one. Each input is upgraded to the current schema
//! if older, then attached read-only and copied table by table with
//! `INSERT INTO t BY NAME SELECT ...`, in one transaction per input. Rows already in
//! OUT are skipped: tables with an `id` by id; `detection_tags` by their detection
//! (tags of a detection OUT has are not copied); `reprocessed_files` by path and
//! fingerprint; `metrics` and `stage_runs` as whole rows. So merging the same file twice,
//! or shards that share their deployment, adds nothing twice.
//!
//! An input may also be a Parquet folder written by `acoupi reprocess --format parquet`
//! ([`export_parquet`]: one `<table>.parquet` per table plus DuckDB's `schema.sql` and
//! `load.sql`, readable as they are by pandas, polars, R's arrow or Spark, and the marker
//! file [`MARKER`]). Its SQL files are never run (a shard folder could hold any SQL): a
//! scratch store file beside the output gets the current schema from acoupi itself, each
//! known table is filled with `INSERT INTO t (columns) SELECT columns FROM
//! read_parquet('<folder>/t.parquet')` over the columns of acoupi's own table (a file
//! missing, with a column the table lacks, or whose rows the table's types and checks
//! refuse is an error naming the file; a column the file lacks, as in a shard of an
//! older schema, takes its default), and the scratch store is merged like a store file
//! and removed. A folder needs no marker to be merged (older acoupis wrote none).
//!
//! A recording's `path` is what retention deletes, so a merged one must be absolute and
//! hold no `..` component: an input with any other path is refused, naming the input
//! and the recording, before anything of it is copied. (Retention further refuses to
//! delete outside the recordings root; merging knows no root.)
//!
//! [`export_parquet`] writes its folder beside the final name and renames it into
//! place; it replaces only a folder holding its [`MARKER`], so a folder of the user's
//! that happens to have the name is never deleted.

use std::path::{Path, PathBuf};

use super::{DuckDbStore, StoreError, database};

/// The alias inputs are attached under.
const INPUT: &str = "acoupi_merge_input";

/// `(table, statement)` in the order they run (tags before their detections, so the
/// "detection already in OUT" test sees OUT as it was).
const COPIES: [(&str, &str); 10] = [
    (
        "deployments",
        "INSERT INTO deployments BY NAME SELECT * FROM acoupi_merge_input.deployments WHERE id NOT IN (SELECT id FROM deployments)",
    ),
    (
        "recordings",
        "INSERT INTO recordings BY NAME SELECT * FROM acoupi_merge_input.recordings WHERE id NOT IN (SELECT id FROM recordings)",
    ),
    (
        "model_outputs",
        "INSERT INTO model_outputs BY NAME SELECT * FROM acoupi_merge_input.model_outputs WHERE id NOT IN (SELECT id FROM model_outputs)",
    ),
    (
        "detection_tags",
        "INSERT INTO detection_tags BY NAME SELECT * FROM acoupi_merge_input.detection_tags WHERE detection_id NOT IN (SELECT id FROM detections)",
    ),
    (
        "detections",
        "INSERT INTO detections BY NAME SELECT * FROM acoupi_merge_input.detections WHERE id NOT IN (SELECT id FROM detections)",
    ),
    (
        "messages",
        "INSERT INTO messages BY NAME SELECT * FROM acoupi_merge_input.messages WHERE id NOT IN (SELECT id FROM messages)",
    ),
    (
        "responses",
        "INSERT INTO responses BY NAME SELECT * FROM acoupi_merge_input.responses WHERE id NOT IN (SELECT id FROM responses)",
    ),
    (
        "metrics",
        "INSERT INTO metrics BY NAME (SELECT * FROM acoupi_merge_input.metrics EXCEPT SELECT * FROM metrics)",
    ),
    (
        "stage_runs",
        "INSERT INTO stage_runs BY NAME (SELECT * FROM acoupi_merge_input.stage_runs EXCEPT SELECT * FROM stage_runs)",
    ),
    (
        "reprocessed_files",
        "INSERT INTO reprocessed_files BY NAME SELECT * FROM acoupi_merge_input.reprocessed_files s \
         WHERE NOT EXISTS (SELECT 1 FROM reprocessed_files m WHERE m.path = s.path AND m.fingerprint = s.fingerprint)",
    ),
];

/// Rows copied per table, summed over the inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    pub inputs: usize,
    /// `(table, rows added)`, in copy order.
    pub rows: Vec<(String, u64)>,
}

/// The file [`export_parquet`] leaves in every folder it writes: its leave to replace
/// the folder on the next export.
const MARKER: &str = ".acoupi-parquet";

fn refuse(path: &Path, reason: &str) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// A path as an SQL string literal; refused when it is not UTF-8.
fn quoted(path: &Path) -> Result<String, StoreError> {
    super::rows::sql_path(path).ok_or_else(|| refuse(path, "the path is not valid UTF-8"))
}

/// Writes every table of `store` into the folder `dir` as Parquet (see the module docs),
/// replacing what an earlier export left there. The folder is written beside its final
/// name and renamed into place, so a crash leaves the old export or the new one. A
/// folder (final or partial) without the [`MARKER`] is the user's: refused, untouched.
pub fn export_parquet(store: &DuckDbStore, dir: &Path) -> Result<(), StoreError> {
    let fail = |e: &dyn std::fmt::Display| refuse(dir, &format!("cannot export as Parquet: {e}"));
    let name = dir
        .file_name()
        .ok_or_else(|| refuse(dir, "not a folder name"))?;
    let partial = dir.with_file_name(format!("{}.partial", name.to_string_lossy()));
    // Both checked before anything is written.
    ours(dir)?;
    if ours(&partial)? {
        std::fs::remove_dir_all(&partial).map_err(|e| fail(&e))?;
    }
    std::fs::create_dir(&partial).map_err(|e| fail(&e))?;
    // The marker goes in first: a partial folder a crash leaves behind is ours too.
    std::fs::write(
        partial.join(MARKER),
        "written by acoupi reprocess --format parquet; replaced by the next export\n",
    )
    .map_err(|e| fail(&e))?;
    store
        .connection()
        .execute_batch(&format!(
            "EXPORT DATABASE {} (FORMAT parquet)",
            quoted(&partial)?
        ))
        .map_err(|e| fail(&e))?;
    if ours(dir)? {
        std::fs::remove_dir_all(dir).map_err(|e| {
            refuse(
                dir,
                &format!("cannot remove the earlier Parquet export: {e}"),
            )
        })?;
    }
    std::fs::rename(&partial, dir).map_err(|e| fail(&e))
}

/// Whether `path` is a folder [`export_parquet`] wrote (it holds the [`MARKER`]), false
/// when nothing is there; anything else (a folder of the user's, a file, a link) is
/// refused.
fn ours(path: &Path) -> Result<bool, StoreError> {
    let Ok(found) = std::fs::symlink_metadata(path) else {
        return Ok(false);
    };
    if found.is_dir() && std::fs::symlink_metadata(path.join(MARKER)).is_ok_and(|m| m.is_file()) {
        return Ok(true);
    }
    Err(refuse(
        path,
        &format!(
            "it exists and was not written by acoupi (no `{MARKER}` file in it), so it is not replaced; move it away or remove it"
        ),
    ))
}

/// A Parquet folder imported into a scratch store file, removed when dropped.
struct Imported {
    dir: tempfile::TempDir,
}

impl Imported {
    /// Fills a scratch store beside `beside` from the Parquet files of `folder` (see the
    /// module docs); runs none of the folder's SQL.
    fn new(folder: &Path, beside: &Path) -> Result<Imported, StoreError> {
        let parent = beside
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = tempfile::Builder::new()
            .prefix(".acoupi-merge-")
            .tempdir_in(parent)
            .map_err(|e| refuse(parent, &format!("cannot make a scratch folder: {e}")))?;
        let imported = Imported { dir };
        let literal = |file: &Path| -> Result<String, StoreError> {
            // read_parquet expands glob patterns: such a name would read other files.
            if file.to_string_lossy().contains(['*', '?', '[']) {
                return Err(refuse(
                    file,
                    "the path holds `*`, `?` or `[`, which DuckDB's read_parquet takes for a pattern; rename the folder",
                ));
            }
            quoted(file)
        };
        let file = |table: &str| -> Result<(PathBuf, String), StoreError> {
            let file = folder.join(format!("{table}.parquet"));
            if !file.is_file() {
                return Err(refuse(
                    &file,
                    &format!(
                        "missing: a Parquet shard folder holds one `<table>.parquet` for each of acoupi's tables (`{table}` here)"
                    ),
                ));
            }
            let literal = literal(&file)?;
            Ok((file, literal))
        };
        let store = DuckDbStore::open(&imported.path())?;
        let conn = store.connection();
        let (version_file, version_literal) = file("schema_version")?;
        let version: Option<i64> = conn
            .query_row(
                &format!("SELECT max(version) FROM read_parquet({version_literal})"),
                [],
                |row| row.get(0),
            )
            .map_err(|e| {
                refuse(
                    &version_file,
                    &format!("cannot read the schema version: {e}"),
                )
            })?;
        super::schema::check_not_newer(version.unwrap_or(0), folder)?;
        for (table, _) in COPIES {
            let (file, literal) = file(table)?;
            let known =
                column_names(&conn, &format!("SELECT * FROM {table} LIMIT 0")).map_err(|e| {
                    refuse(&file, &format!("cannot list the columns of `{table}`: {e}"))
                })?;
            let found = column_names(
                &conn,
                &format!("SELECT * FROM read_parquet({literal}) LIMIT 0"),
            )
            .map_err(|e| refuse(&file, &format!("cannot read the Parquet file: {e}")))?;
            if let Some(unknown) = found.iter().find(|c| !known.contains(c)) {
                return Err(refuse(
                    &file,
                    &format!(
                        "its column `{unknown}` is not a column of acoupi's `{table}` table ({})",
                        known.join(", ")
                    ),
                ));
            }
            let columns = known
                .iter()
                .filter(|c| found.contains(c))
                .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(", ");
            conn.execute(
                &format!(
                    "INSERT INTO {table} ({columns}) SELECT {columns} FROM read_parquet({literal})"
                ),
                [],
            )
            .map_err(|e| refuse(&file, &format!("cannot read its rows into `{table}`: {e}")))?;
        }
        Ok(imported)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("imported.duckdb")
    }
}

/// The column names of a query's result, in order.
fn column_names(conn: &duckdb::Connection, sql: &str) -> duckdb::Result<Vec<String>> {
    let mut statement = conn.prepare(sql)?;
    statement
        .query([])?
        .as_ref()
        .map_or_else(|| Ok(Vec::new()), |s| Ok(s.column_names()))
}

/// Refuses an input holding a recording whose path is not absolute or has a `..`
/// component (see the module docs).
fn check_paths(conn: &duckdb::Connection, given: &Path) -> Result<(), StoreError> {
    let failed = |e: duckdb::Error| refuse(given, &format!("cannot read its recordings: {e}"));
    let mut statement = conn
        .prepare(&format!(
            "SELECT id::VARCHAR, path FROM {INPUT}.recordings WHERE path IS NOT NULL"
        ))
        .map_err(failed)?;
    let mut rows = statement.query([]).map_err(failed)?;
    while let Some(row) = rows.next().map_err(failed)? {
        let (id, path): (String, String) =
            (row.get(0).map_err(failed)?, row.get(1).map_err(failed)?);
        let stored = Path::new(&path);
        if !stored.is_absolute()
            || stored
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(refuse(
                given,
                &format!(
                    "recording {id} has the path {path:?}: a merged recording's path must be absolute and hold no `..`; nothing of this input was merged"
                ),
            ));
        }
    }
    Ok(())
}

/// Merges `inputs` (store files or Parquet folders) into `out` (created if missing).
/// Refuses an input that is `out` itself or does not exist, naming it.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<MergeReport, StoreError> {
    for input in inputs {
        if !input.is_file() && !input.is_dir() {
            return Err(refuse(input, "no such store file or Parquet folder"));
        }
    }
    let target = DuckDbStore::open(out)?;
    let out_canonical = std::fs::canonicalize(out).map_err(|e| refuse(out, &e.to_string()))?;
    let mut report = MergeReport {
        inputs: 0,
        rows: COPIES.iter().map(|(t, _)| (t.to_string(), 0)).collect(),
    };
    for given in inputs {
        if std::fs::canonicalize(given).ok().as_deref() == Some(out_canonical.as_path()) {
            return Err(refuse(given, "it is the merge's output file"));
        }
        let imported = if given.is_dir() {
            Some(Imported::new(given, out)?)
        } else {
            None
        };
        let scratch = imported.as_ref().map(Imported::path);
        let input = scratch.as_deref().unwrap_or(given);
        // Upgrades an older shard in place; refuses a newer one or a non-store file.
        drop(DuckDbStore::open(input)?);
        let mut conn = target.connection();
        conn.execute_batch(&format!("ATTACH {} AS {INPUT} (READ_ONLY)", quoted(input)?))
            .map_err(|e| refuse(given, &format!("cannot attach: {e}")))?;
        let copied = (|| {
            check_paths(&conn, given)?;
            let tx = conn.transaction().map_err(database)?;
            let mut counts = Vec::new();
            for (table, sql) in COPIES {
                let added = tx.execute(sql, []).map_err(|e| {
                    StoreError::Database(format!(
                        "merging `{table}` from `{}`: {e}",
                        given.display()
                    ))
                })?;
                counts.push(added as u64);
            }
            tx.commit().map_err(database)?;
            Ok::<_, StoreError>(counts)
        })();
        let detached = conn
            .execute_batch(&format!("DETACH {INPUT}"))
            .map_err(database);
        let counts = copied?;
        detached?;
        for ((_, total), added) in report.rows.iter_mut().zip(counts) {
            *total += added;
        }
        report.inputs += 1;
        tracing::info!(input = %given.display(), "merged");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use acoupi_engine::reprocess::ArchiveStore;
    use acoupi_engine::store::Store;

    use super::*;
    use crate::reprocessed::tests::file;

    fn count(path: &Path, table: &str) -> i64 {
        let store = DuckDbStore::open(path).unwrap();
        let conn = store.connection();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    }

    #[test]
    fn merges_shards_once_and_refuses_itself_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let shard = |name: &str, paths: &[&str]| {
            let path = dir.path().join(name);
            let store = DuckDbStore::open(&path).unwrap();
            let files: Vec<_> = paths.iter().map(|p| file(p, !p.contains("bad"))).collect();
            store.store_reprocessed(&files).unwrap();
            // Both shards hold the same deployment (a copy of it per shard).
            let mut deployment = files
                .iter()
                .find_map(|f| f.recording.clone())
                .unwrap()
                .deployment;
            deployment.id = uuid::Uuid::nil();
            store.store_deployment(&deployment).unwrap();
            path
        };
        let a = shard("a.duckdb", &["/x/1.wav", "/x/bad.wav"]);
        let b = shard("b.duckdb", &["/x/2.wav", "/x/3.wav"]);
        let out = dir.path().join("all.duckdb");
        let report = merge(&out, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(report.inputs, 2);
        let added = |table: &str| {
            report
                .rows
                .iter()
                .find(|(t, _)| t == table)
                .map(|(_, n)| *n)
        };
        assert_eq!(
            (
                added("recordings"),
                added("detections"),
                added("detection_tags"),
                added("reprocessed_files")
            ),
            (Some(3), Some(6), Some(3), Some(4))
        );
        let counts = |path: &Path| {
            [
                "deployments",
                "recordings",
                "model_outputs",
                "detections",
                "detection_tags",
                "messages",
                "reprocessed_files",
            ]
            .map(|t| count(path, t))
        };
        // Each recording has its own test deployment, plus the shared nil one.
        assert_eq!(counts(&out), [4, 3, 3, 6, 3, 3, 4]);
        let again = merge(&out, &[a.clone(), b]).unwrap();
        assert!(again.rows.iter().all(|(_, n)| *n == 0), "{again:?}");
        assert_eq!(counts(&out), [4, 3, 3, 6, 3, 3, 4]);
        assert!(
            merge(&out, std::slice::from_ref(&out))
                .unwrap_err()
                .to_string()
                .contains("merge's output")
        );
        assert!(
            merge(&out, &[dir.path().join("none.duckdb")])
                .unwrap_err()
                .to_string()
                .contains("no such store file")
        );
    }

    /// A shard store holding `paths` (good files), as in a reprocess run.
    fn shard(path: &Path, paths: &[&str]) -> DuckDbStore {
        let store = DuckDbStore::open(path).unwrap();
        let files: Vec<_> = paths.iter().map(|p| file(p, true)).collect();
        store.store_reprocessed(&files).unwrap();
        store
    }

    const TABLES: [&str; 7] = [
        "deployments",
        "recordings",
        "model_outputs",
        "detections",
        "detection_tags",
        "messages",
        "reprocessed_files",
    ];

    #[test]
    fn a_parquet_folder_is_merged_without_running_its_sql() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("shard.parquet");
        let store = shard(&dir.path().join("shard.duckdb"), &["/x/1.wav", "/x/2.wav"]);
        export_parquet(&store, &folder).unwrap();
        drop(store);
        assert!(folder.join(MARKER).is_file());
        // A hostile folder: its SQL files write a file and another database.
        let pwned = dir.path().join("pwned.csv");
        let evil = dir.path().join("evil.duckdb");
        let payload = format!(
            "\nCOPY (SELECT 1) TO {};\nATTACH {} AS evil;\nCREATE TABLE evil.t AS SELECT 1;\n",
            quoted(&pwned).unwrap(),
            quoted(&evil).unwrap()
        );
        for name in ["schema.sql", "load.sql"] {
            let sql = std::fs::read_to_string(folder.join(name)).unwrap();
            std::fs::write(folder.join(name), format!("{payload}{sql}{payload}")).unwrap();
        }
        let out = dir.path().join("all.duckdb");
        let report = merge(&out, std::slice::from_ref(&folder)).unwrap();
        assert_eq!(report.inputs, 1);
        assert_eq!(
            TABLES.map(|t| count(&out, t)),
            TABLES.map(|t| count(&dir.path().join("shard.duckdb"), t))
        );
        assert_eq!(count(&out, "recordings"), 2);
        assert!(!pwned.exists() && !evil.exists(), "the folder's SQL ran");
        // Nothing of the scratch store is left beside the output.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(".acoupi-merge-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_parquet_folder_with_a_missing_or_foreign_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("shard.parquet");
        let store = shard(&dir.path().join("shard.duckdb"), &["/x/1.wav"]);
        export_parquet(&store, &folder).unwrap();
        drop(store);
        let out = dir.path().join("all.duckdb");
        let metrics = folder.join("metrics.parquet");
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "COPY (SELECT 1 AS nonsense) TO {} (FORMAT parquet)",
            quoted(&metrics).unwrap()
        ))
        .unwrap();
        let err = merge(&out, std::slice::from_ref(&folder))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metrics.parquet") && err.contains("`nonsense` is not a column"),
            "{err}"
        );
        std::fs::remove_file(folder.join("detections.parquet")).unwrap();
        let err = merge(&out, std::slice::from_ref(&folder))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("detections.parquet") && err.contains("missing"),
            "{err}"
        );
        assert_eq!(count(&out, "recordings"), 0);
    }

    #[test]
    fn a_shard_with_a_relative_or_dotdot_recording_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bad) in [
            ("up.duckdb", "/data/recordings/../../victim.txt"),
            ("rel.duckdb", "recordings/a.wav"),
        ] {
            let path = dir.path().join(name);
            let store = shard(&path, &["/data/recordings/ok.wav", bad]);
            let id: String = store
                .connection()
                .query_row(
                    "SELECT id::VARCHAR FROM recordings WHERE path = ?",
                    [bad],
                    |r| r.get(0),
                )
                .unwrap();
            drop(store);
            let out = dir.path().join("all.duckdb");
            let err = merge(&out, &[path]).unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains(&id) && err.contains(bad),
                "{err}"
            );
            assert_eq!(
                count(&out, "recordings"),
                0,
                "nothing of the shard was merged"
            );
        }
    }

    #[test]
    fn export_parquet_replaces_only_a_folder_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = shard(&dir.path().join("shard.duckdb"), &["/x/1.wav"]);
        let folder = dir.path().join("shard.parquet");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("notes.txt"), "my field notes").unwrap();
        let err = export_parquet(&store, &folder).unwrap_err().to_string();
        assert!(
            err.contains("shard.parquet") && err.contains("not written by acoupi"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(folder.join("notes.txt")).unwrap(),
            "my field notes"
        );
        assert!(!dir.path().join("shard.parquet.partial").exists());
        // A folder acoupi wrote is replaced, run after run.
        let ours = dir.path().join("ours.parquet");
        export_parquet(&store, &ours).unwrap();
        export_parquet(&store, &ours).unwrap();
        assert!(ours.join(MARKER).is_file() && ours.join("recordings.parquet").is_file());
        // A stale partial folder without the marker is the user's too.
        let partial = dir.path().join("ours.parquet.partial");
        std::fs::create_dir(&partial).unwrap();
        assert!(
            export_parquet(&store, &ours)
                .unwrap_err()
                .to_string()
                .contains("ours.parquet.partial")
        );
        assert!(partial.is_dir() && ours.join(MARKER).is_file());
    }
}

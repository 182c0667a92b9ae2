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
//! `load.sql`, readable as they are by pandas, polars, R's arrow or Spark). It is imported
//! into a scratch store file beside the output (removed afterwards) and merged like a
//! store file.

use std::path::{Path, PathBuf};

use super::{DuckDbStore, StoreError, database};

/// The alias inputs are attached under.
const INPUT: &str = "acoupi_merge_input";

/// `(table, statement)` in the order they run (tags before their detections, so the
/// "detection already in OUT" test sees OUT as it was).
const COPIES: [(&str, &str); 10] = [
    ("deployments", "INSERT INTO deployments BY NAME SELECT * FROM acoupi_merge_input.deployments WHERE id NOT IN (SELECT id FROM deployments)"),
    ("recordings", "INSERT INTO recordings BY NAME SELECT * FROM acoupi_merge_input.recordings WHERE id NOT IN (SELECT id FROM recordings)"),
    ("model_outputs", "INSERT INTO model_outputs BY NAME SELECT * FROM acoupi_merge_input.model_outputs WHERE id NOT IN (SELECT id FROM model_outputs)"),
    ("detection_tags", "INSERT INTO detection_tags BY NAME SELECT * FROM acoupi_merge_input.detection_tags WHERE detection_id NOT IN (SELECT id FROM detections)"),
    ("detections", "INSERT INTO detections BY NAME SELECT * FROM acoupi_merge_input.detections WHERE id NOT IN (SELECT id FROM detections)"),
    ("messages", "INSERT INTO messages BY NAME SELECT * FROM acoupi_merge_input.messages WHERE id NOT IN (SELECT id FROM messages)"),
    ("responses", "INSERT INTO responses BY NAME SELECT * FROM acoupi_merge_input.responses WHERE id NOT IN (SELECT id FROM responses)"),
    ("metrics", "INSERT INTO metrics BY NAME (SELECT * FROM acoupi_merge_input.metrics EXCEPT SELECT * FROM metrics)"),
    ("stage_runs", "INSERT INTO stage_runs BY NAME (SELECT * FROM acoupi_merge_input.stage_runs EXCEPT SELECT * FROM stage_runs)"),
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

/// The file DuckDB's `EXPORT DATABASE` writes into a folder, by which a Parquet shard is
/// told from any other folder.
const LOAD_SQL: &str = "load.sql";

fn refuse(path: &Path, reason: &str) -> StoreError {
    StoreError::Open { path: path.to_owned(), reason: reason.into() }
}

/// A path as an SQL string literal; refused when it is not UTF-8.
fn quoted(path: &Path) -> Result<String, StoreError> {
    super::rows::sql_path(path).ok_or_else(|| refuse(path, "the path is not valid UTF-8"))
}

/// Writes every table of `store` into the folder `dir` as Parquet (see the module docs),
/// replacing what an earlier export left there. The folder is written beside its final
/// name and renamed into place, so a crash leaves the old export or the new one.
pub fn export_parquet(store: &DuckDbStore, dir: &Path) -> Result<(), StoreError> {
    let fail = |e: &dyn std::fmt::Display| refuse(dir, &format!("cannot export as Parquet: {e}"));
    let name = dir.file_name().ok_or_else(|| refuse(dir, "not a folder name"))?;
    let partial = dir.with_file_name(format!("{}.partial", name.to_string_lossy()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| fail(&e))?;
    }
    store.connection().execute_batch(&format!("EXPORT DATABASE {} (FORMAT parquet)", quoted(&partial)?)).map_err(|e| fail(&e))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| fail(&e))?;
    }
    std::fs::rename(&partial, dir).map_err(|e| fail(&e))
}

/// A Parquet folder imported into a scratch store file, removed when dropped.
struct Imported {
    dir: tempfile::TempDir,
}

impl Imported {
    fn new(folder: &Path, beside: &Path) -> Result<Imported, StoreError> {
        let parent = beside.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = tempfile::Builder::new().prefix(".acoupi-merge-").tempdir_in(parent).map_err(|e| refuse(parent, &format!("cannot make a scratch folder: {e}")))?;
        let imported = Imported { dir };
        let conn = duckdb::Connection::open(imported.path()).map_err(|e| refuse(folder, &format!("cannot make a scratch store: {e}")))?;
        conn.execute_batch(&format!("IMPORT DATABASE {}", quoted(folder)?)).map_err(|e| refuse(folder, &format!("cannot import the Parquet folder: {e}")))?;
        Ok(imported)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("imported.duckdb")
    }
}

/// Merges `inputs` (store files or Parquet folders) into `out` (created if missing).
/// Refuses an input that is `out` itself or does not exist, naming it.
pub fn merge(out: &Path, inputs: &[PathBuf]) -> Result<MergeReport, StoreError> {
    for input in inputs {
        if !input.is_file() && !input.join(LOAD_SQL).is_file() {
            return Err(refuse(input, "no such store file or Parquet folder"));
        }
    }
    let target = DuckDbStore::open(out)?;
    let out_canonical = std::fs::canonicalize(out).map_err(|e| refuse(out, &e.to_string()))?;
    let mut report = MergeReport { inputs: 0, rows: COPIES.iter().map(|(t, _)| (t.to_string(), 0)).collect() };
    for given in inputs {
        if std::fs::canonicalize(given).ok().as_deref() == Some(out_canonical.as_path()) {
            return Err(refuse(given, "it is the merge's output file"));
        }
        let imported = if given.is_dir() { Some(Imported::new(given, out)?) } else { None };
        let scratch = imported.as_ref().map(Imported::path);
        let input = scratch.as_deref().unwrap_or(given);
        // Upgrades an older shard in place; refuses a newer one or a non-store file.
        drop(DuckDbStore::open(input)?);
        let mut conn = target.connection();
        conn.execute_batch(&format!("ATTACH {} AS {INPUT} (READ_ONLY)", quoted(input)?)).map_err(|e| refuse(given, &format!("cannot attach: {e}")))?;
        let copied = (|| {
            let tx = conn.transaction().map_err(database)?;
            let mut counts = Vec::new();
            for (table, sql) in COPIES {
                let added = tx.execute(sql, []).map_err(|e| StoreError::Database(format!("merging `{table}` from `{}`: {e}", given.display())))?;
                counts.push(added as u64);
            }
            tx.commit().map_err(database)?;
            Ok::<_, StoreError>(counts)
        })();
        let detached = conn.execute_batch(&format!("DETACH {INPUT}")).map_err(database);
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
    use crate::store_duckdb::reprocessed::tests::file;

    fn count(path: &Path, table: &str) -> i64 {
        let store = DuckDbStore::open(path).unwrap();
        let conn = store.connection();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0)).unwrap()
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
            let mut deployment = files.iter().find_map(|f| f.recording.clone()).unwrap().deployment;
            deployment.id = uuid::Uuid::nil();
            store.store_deployment(&deployment).unwrap();
            path
        };
        let a = shard("a.duckdb", &["/x/1.wav", "/x/bad.wav"]);
        let b = shard("b.duckdb", &["/x/2.wav", "/x/3.wav"]);
        let out = dir.path().join("all.duckdb");
        let report = merge(&out, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(report.inputs, 2);
        let added = |table: &str| report.rows.iter().find(|(t, _)| t == table).map(|(_, n)| *n);
        assert_eq!((added("recordings"), added("detections"), added("detection_tags"), added("reprocessed_files")), (Some(3), Some(6), Some(3), Some(4)));
        let counts = |path: &Path| ["deployments", "recordings", "model_outputs", "detections", "detection_tags", "messages", "reprocessed_files"].map(|t| count(path, t));
        // Each recording has its own test deployment, plus the shared nil one.
        assert_eq!(counts(&out), [4, 3, 3, 6, 3, 3, 4]);
        let again = merge(&out, &[a.clone(), b]).unwrap();
        assert!(again.rows.iter().all(|(_, n)| *n == 0), "{again:?}");
        assert_eq!(counts(&out), [4, 3, 3, 6, 3, 3, 4]);
        assert!(merge(&out, &[out.clone()]).unwrap_err().to_string().contains("merge's output"));
        assert!(merge(&out, &[dir.path().join("none.duckdb")]).unwrap_err().to_string().contains("no such store file"));
    }
}

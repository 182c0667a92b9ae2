//! `[retention]` end to end on the real binary: `acoupi retention --dry-run` and its
//! application on an aged store, and `acoupi run` keeping a tiny disk from filling.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::run::demo_in;
use crate::wavs_under;

fn acoupi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .output()
        .unwrap()
}

/// The demo pipeline in `dir` with a `[retention]` table.
fn with_retention(dir: &Path, retention: &str) -> String {
    let path = demo_in(dir);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n[retention]\n{retention}\n")).unwrap();
    path.to_str().unwrap().to_string()
}

fn run_once(pipeline: &str) {
    let output = acoupi(&["run", pipeline, "--once"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn kept_paths(db: &Path) -> Vec<Option<String>> {
    let db = duckdb::Connection::open(db).unwrap();
    let mut statement = db
        .prepare("SELECT path FROM recordings ORDER BY created_on")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn dry_run_reports_the_aged_recording_and_the_real_run_deletes_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = with_retention(dir.path(), "max_age = \"365d\"");
    run_once(&pipeline);
    run_once(&pipeline);
    let db = dir.path().join("station.duckdb");
    let paths = kept_paths(&db);
    assert_eq!(paths.len(), 2);
    let old = paths[0].clone().expect("the demo keeps its recordings");
    duckdb::Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "UPDATE recordings SET created_on = created_on - INTERVAL 400 DAY WHERE path = '{old}'"
        ))
        .unwrap();

    let dry = acoupi(&["retention", &pipeline, "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        text.contains(&old) && text.contains("older than max_age 365d"),
        "{text}"
    );
    assert!(
        text.contains("would delete 1 of 2 kept recordings"),
        "{text}"
    );
    assert!(Path::new(&old).exists(), "a dry run deletes nothing");

    let real = acoupi(&["retention", &pipeline]);
    assert!(
        real.status.success(),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    assert!(String::from_utf8_lossy(&real.stdout).contains("deleted 1"));
    assert!(!Path::new(&old).exists());
    let after = kept_paths(&db);
    assert_eq!(after.len(), 2, "the row stays");
    assert_eq!(after[0], None, "with no path");
    assert_eq!(after[1], paths[1]);
}

#[test]
fn without_a_retention_table_nothing_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let output = acoupi(&["retention", pipeline.to_str().unwrap()]);
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("no [retention] table; nothing is ever deleted")
    );
}

/// A test that cannot mount a tmpfs says it is skipped, or fails where
/// `ACOUPI_REQUIRE_ROOT=1` (CI sets it: a runner without root must not pass by skipping).
pub fn skip_without_root() {
    crate::skip_unless_required("ACOUPI_REQUIRE_ROOT", "cannot mount a tmpfs (needs root)");
}

/// A 1 MiB tmpfs at `at`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_station_on_a_tiny_disk_keeps_min_free_by_deleting_its_oldest_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = with_retention(dir.path(), "min_free = \"600 KiB\"");
    let Some(_disk) = Tmpfs::mount(&dir.path().join("recordings")) else {
        skip_without_root();
        return;
    };
    // Each run keeps one 129 KiB recording; 1 MiB would fill after 7. Before each
    // recording, retention brings the free space back to 600 KiB: at most 3 files stay,
    // plus the one just made.
    for _ in 0..9 {
        run_once(&pipeline);
    }
    let paths = kept_paths(&dir.path().join("station.duckdb"));
    assert_eq!(paths.len(), 9, "every recording keeps its row");
    let on_disk = wavs_under(&dir.path().join("recordings"));
    assert!(
        (3..=4).contains(&on_disk.len()),
        "min_free holds: {} files left",
        on_disk.len()
    );
    let stored: Vec<PathBuf> = paths.iter().flatten().map(PathBuf::from).collect();
    assert_eq!(
        stored.len(),
        on_disk.len(),
        "the store knows exactly the files left"
    );
    assert!(
        paths[0].is_none() && paths[8].is_some(),
        "the oldest went first: {paths:?}"
    );
    let space = acoupi(&["retention", &pipeline, "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&space.stdout).contains("would delete 0"),
        "{}",
        String::from_utf8_lossy(&space.stdout)
    );
}

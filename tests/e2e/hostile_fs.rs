//! A hostile or careless hand in the station's folders, on the real binary: link loops
//! neither hang `acoupi run` nor `acoupi status` (nor change the size it reports),
//! start-up recovery deletes nothing through a linked folder, and retention deletes
//! nothing outside the recordings tree whatever path a row holds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::run::demo_in;

/// The binary's output, or a failed test when it runs past a generous limit (a hang
/// must fail, not stall the suite).
struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

fn acoupi_within(args: &[&str], dir: &Path) -> Finished {
    const LIMIT: Duration = Duration::from_secs(60);
    let (out, err) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`acoupi {}` still running after {LIMIT:?}: it hangs",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Finished {
        success: status.success(),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    }
}

/// Bytes in the plain files under `dir`, never following a link.
fn true_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata().unwrap().len();
            }
        }
    }
    total
}

/// `bytes` as `acoupi status` writes sizes ("129.2 KiB").
fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut value, mut unit) = (bytes as f64, 0);
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

fn link(target: impl AsRef<Path>, at: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, at).unwrap();
}

#[test]
fn two_link_loops_neither_hang_run_nor_status_and_the_size_is_true() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let pipeline = pipeline.to_str().unwrap();
    let recordings = dir.path().join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    link(".", recordings.join("loopA"));
    link(".", recordings.join("loopB"));

    let run = acoupi_within(&["run", pipeline, "--once"], dir.path());
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains("loopA") && run.stderr.contains("is not followed"),
        "the links are named: {}",
        run.stderr
    );
    let status = acoupi_within(&["status", pipeline], dir.path());
    assert!(status.success, "{}", status.stderr);
    let size = true_size(&recordings);
    assert!(size > 0, "the demo kept a recording");
    let line = status
        .stdout
        .lines()
        .find(|l| l.starts_with("disk:"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("recordings {} in", human(size))),
        "true size {size}: {}",
        status.stdout
    );
    assert!(
        status.stderr.contains("loopB") && status.stderr.contains("not followed"),
        "{}",
        status.stderr
    );
}

#[test]
fn recovery_removes_no_partial_file_through_a_linked_folder() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let (recordings, temp, outside) = (
        dir.path().join("recordings"),
        dir.path().join("tmp"),
        dir.path().join("outside"),
    );
    for folder in [&recordings, &temp, &outside] {
        std::fs::create_dir_all(folder).unwrap();
    }
    let foreign = ["x.partial", "y.guano-partial", "z.wav.acoupi-partial"];
    for name in foreign {
        std::fs::write(outside.join(name), "not acoupi's").unwrap();
    }
    link(&outside, recordings.join("linked"));
    link(&outside, temp.join("scratch"));
    // In the tree itself: a leftover of acoupi's goes, a file of someone else's stays.
    std::fs::write(recordings.join("left.wav.acoupi-partial"), "half a copy").unwrap();
    std::fs::write(recordings.join("notes.partial"), "mine").unwrap();

    let run = acoupi_within(&["run", pipeline.to_str().unwrap(), "--once"], dir.path());
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains("1 partial files removed"),
        "{}",
        run.stderr
    );
    for name in foreign {
        assert_eq!(
            std::fs::read_to_string(outside.join(name)).unwrap(),
            "not acoupi's",
            "{name} survives"
        );
    }
    assert!(!recordings.join("left.wav.acoupi-partial").exists());
    assert!(recordings.join("notes.partial").exists());
}

/// The demo with `[retention]`, run once in `dir`; the kept recording's path.
fn station_with_one_recording(dir: &Path, retention: &str) -> (String, PathBuf) {
    let pipeline = demo_in(dir);
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, format!("{text}\n[retention]\n{retention}\n")).unwrap();
    let pipeline = pipeline.to_str().unwrap().to_string();
    let run = acoupi_within(&["run", &pipeline, "--once"], dir);
    assert!(run.success, "{}", run.stderr);
    let path: String = store(dir)
        .query_row("SELECT path FROM recordings", [], |row| row.get(0))
        .unwrap();
    (pipeline, PathBuf::from(path))
}

fn store(dir: &Path) -> duckdb::Connection {
    duckdb::Connection::open(dir.join("station.duckdb")).unwrap()
}

/// Makes every recording 400 days old and, when given, sets its path.
fn age(dir: &Path, path: Option<&Path>) {
    let set_path = path
        .map(|p| format!(", path = '{}'", p.display()))
        .unwrap_or_default();
    store(dir)
        .execute_batch(&format!(
            "UPDATE recordings SET created_on = created_on - INTERVAL 400 DAY{set_path}"
        ))
        .unwrap();
}

fn stored_paths(dir: &Path) -> Vec<Option<String>> {
    let db = store(dir);
    let mut statement = db.prepare("SELECT path FROM recordings").unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn retention_deletes_nothing_a_stored_path_points_to_outside_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let station = dir.path().join("station");
    std::fs::create_dir_all(&station).unwrap();
    let (pipeline, _) = station_with_one_recording(&station, "max_age = \"365d\"");
    std::fs::write(dir.path().join("victim.txt"), "mine").unwrap();
    // As a merged shard could hold it: `<recordings>/../../victim.txt`.
    let hostile = station.join("recordings/../../victim.txt");
    age(&station, Some(&hostile));

    let dry = acoupi_within(&["retention", &pipeline, "--dry-run"], dir.path());
    assert!(
        dry.stdout.contains("refused: ") && dry.stdout.contains("has a `..` component"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("would delete 0"), "{}", dry.stdout);
    let real = acoupi_within(&["retention", &pipeline], dir.path());
    assert!(real.success, "{}{}", real.stdout, real.stderr);
    // The station applies retention itself too.
    let run = acoupi_within(&["run", &pipeline, "--once"], &station);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains("refusing a kept recording's path"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("victim.txt")).unwrap(),
        "mine"
    );
    assert!(
        stored_paths(&station).contains(&Some(hostile.display().to_string())),
        "the row keeps its path"
    );
}

#[test]
fn retention_deletes_nothing_through_a_day_folder_replaced_by_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, kept) = station_with_one_recording(dir.path(), "max_age = \"365d\"");
    age(dir.path(), None);
    // The day folder moved away and a link put in its place.
    let day = kept.parent().unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::rename(day, &elsewhere).unwrap();
    link(&elsewhere, day);

    let real = acoupi_within(&["retention", &pipeline], dir.path());
    assert!(real.success, "{}{}", real.stdout, real.stderr);
    assert!(
        real.stdout.contains("goes through the symbolic link") && real.stdout.contains("deleted 0"),
        "{}",
        real.stdout
    );
    assert!(
        elsewhere.join(kept.file_name().unwrap()).exists(),
        "the file behind the link survives"
    );
    assert_eq!(
        stored_paths(dir.path()),
        [Some(kept.display().to_string())],
        "the row keeps its path"
    );
}

#[test]
fn a_protected_folder_named_through_a_link_is_protected() {
    let dir = tempfile::tempdir().unwrap();
    link(dir.path(), dir.path().join("alias"));
    let protect = dir.path().join("alias/recordings");
    let (pipeline, kept) = station_with_one_recording(
        dir.path(),
        &format!(
            "max_age = \"365d\"\nprotect_folders = [\"{}\"]",
            protect.display()
        ),
    );
    age(dir.path(), None);

    let real = acoupi_within(&["retention", &pipeline], dir.path());
    assert!(real.success, "{}{}", real.stdout, real.stderr);
    assert!(
        real.stdout.contains("deleting 0 of 1 kept recordings")
            && real.stdout.contains("1 protected"),
        "{}",
        real.stdout
    );
    assert!(kept.exists());
    assert_eq!(stored_paths(dir.path()), [Some(kept.display().to_string())]);
}

//! `acoupi status`, `query` and `export` on a store the demo filled, including a query
//! while a station is writing the store; the query sandbox against the attacks of issue
//! 16, and `merge` of a hostile Parquet folder.

use std::path::Path;
use std::process::{Command, Output};

use crate::run::{RunningStation, demo_in};

fn acoupi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .output()
        .unwrap()
}

fn filled(dir: &Path) -> String {
    let pipeline = demo_in(dir);
    let pipeline = pipeline.to_str().unwrap().to_string();
    assert!(acoupi(&["run", &pipeline, "--once"]).status.success());
    pipeline
}

#[test]
fn status_reports_stage_runs_counts_and_disk_use() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = filled(dir.path());
    let output = acoupi(&["status", &pipeline]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("station `demo`"), "{text}");
    for stage in ["record", "detect", "manage", "summary"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(stage))
            .unwrap_or_else(|| panic!("no {stage} in {text}"));
        assert!(
            line.contains("last run") && line.contains("(1 runs)"),
            "{line}"
        );
    }
    assert!(text.contains("recordings: 1 (0 deleted"), "{text}");
    assert!(text.contains("detections: 3"), "{text}");
    assert!(text.contains("messages: 2 (2 unsent)"), "{text}");
}

#[test]
fn query_prints_csv_and_json_and_rejects_bad_sql() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = filled(dir.path());
    let csv = acoupi(&[
        "query",
        &pipeline,
        "SELECT tag_value, count(*) AS n FROM detections_flat GROUP BY 1",
        "--format",
        "csv",
    ]);
    assert!(csv.status.success());
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        "tag_value,n\nchirp,3\n"
    );
    let db = dir.path().join("station.duckdb");
    let json = acoupi(&[
        "query",
        db.to_str().unwrap(),
        "SELECT count(*) AS n FROM recordings",
        "--format",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value, serde_json::json!([{ "n": 1 }]));
    let bad = acoupi(&["query", &pipeline, "SELEC 1"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("syntax error"));
}

#[test]
fn exports_are_read_back_by_duckdb_with_the_same_row_counts() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = filled(dir.path());
    for (what, format, file) in [
        ("detections", "parquet", "d.parquet"),
        ("recordings", "csv", "r.csv"),
        ("messages", "parquet", "m.parquet"),
    ] {
        let out = dir.path().join(file);
        let output = acoupi(&[
            "export",
            &pipeline,
            "--what",
            what,
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let db = duckdb::Connection::open_in_memory().unwrap();
        let reader = if format == "csv" {
            "read_csv_auto"
        } else {
            "read_parquet"
        };
        let n: i64 = db
            .query_row(
                &format!("SELECT count(*) FROM {reader}('{}')", out.display()),
                [],
                |r| r.get(0),
            )
            .unwrap();
        let expected = match what {
            "detections" => 3,
            "recordings" => 1,
            _ => 2,
        };
        assert_eq!(n, expected, "{what}");
    }
    let raven = dir.path().join("selections.txt");
    assert!(
        acoupi(&[
            "export",
            &pipeline,
            "--what",
            "detections",
            "--format",
            "raven",
            "-o",
            raven.to_str().unwrap()
        ])
        .status
        .success()
    );
    let text = std::fs::read_to_string(raven).unwrap();
    assert!(text.starts_with("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin File"));
    assert_eq!(text.lines().count(), 4);
}

#[test]
fn query_works_while_a_station_writes_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let mut station = RunningStation::start(&pipeline);
    assert_eq!(
        station.wait_for(" analysed ", 1),
        1,
        "the station analysed nothing"
    );
    let output = acoupi(&[
        "query",
        pipeline.to_str().unwrap(),
        "SELECT count(*) AS n FROM model_outputs",
        "--format",
        "csv",
    ]);
    station.terminate();
    let _ = station.child.wait();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let n: i64 = text
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(
        n >= 1,
        "the running station's committed outputs are visible: {text}"
    );
}

#[test]
fn a_second_station_on_the_same_store_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let mut station = RunningStation::start(&pipeline);
    assert_eq!(
        station.wait_for(" recorded ", 1),
        1,
        "the first station did not record"
    );
    let second = acoupi(&["run", pipeline.to_str().unwrap(), "--once"]);
    station.terminate();
    let _ = station.child.wait();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another process") && stderr.contains("PID"),
        "{stderr}"
    );
}

/// The attacks of issue 16 on `acoupi query`, with the real binary on the demo's store:
/// each exits 1 saying what is allowed (or with DuckDB's refusal), writes nothing, reads
/// nothing outside the store, and the store keeps its rows.
#[test]
fn query_cannot_write_read_or_change_anything_outside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = filled(dir.path());
    let store = dir.path().join("station.duckdb");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let quoted = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', "''"));
    let attacks = [
        format!("COPY (select 1) TO {}", quoted(&scratch.join("x.csv"))),
        format!("EXPORT DATABASE {}", quoted(&scratch.join("d"))),
        format!("ATTACH {} (READ_WRITE)", quoted(&scratch.join("x.duckdb"))),
        "select * from read_csv('/etc/passwd')".to_owned(),
        "select * from read_text('/etc/passwd')".to_owned(),
        "INSTALL httpfs".to_owned(),
        "LOAD httpfs".to_owned(),
        format!(
            "ATTACH {} AS w (READ_WRITE); USE w; DELETE FROM w.recordings",
            quoted(&store)
        ),
        "SET enable_external_access=true".to_owned(),
        "select 1; select 2".to_owned(),
    ];
    for sql in &attacks {
        let output = acoupi(&["query", &pipeline, sql]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{sql}: {stderr}");
        // A statement that is not a read is refused by acoupi; a read of a file outside
        // the store by DuckDB's sandbox.
        let refused = stderr
            .contains("`acoupi query` is read-only: it runs one SELECT, WITH, FROM")
            || stderr.contains("Permission Error");
        assert!(refused, "{sql}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&output.stdout).contains("root:"),
            "{sql}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "a query wrote into the scratch folder"
    );
    let count = acoupi(&[
        "query",
        &pipeline,
        "SELECT count(*) AS n FROM recordings",
        "--format",
        "csv",
    ]);
    assert_eq!(String::from_utf8_lossy(&count.stdout), "n\n1\n");
    // Reads still work, views included.
    let describe = acoupi(&[
        "query",
        &pipeline,
        "DESCRIBE detections_flat",
        "--format",
        "csv",
    ]);
    assert!(
        describe.status.success()
            && String::from_utf8_lossy(&describe.stdout).contains("tag_value")
    );
}

/// `acoupi merge` of a Parquet shard never runs the folder's SQL, and
/// `acoupi reprocess --format parquet` never replaces a folder it did not write.
#[test]
fn a_parquet_shard_is_merged_without_its_sql_and_a_users_folder_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let archive = dir.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    let song = crate::root().join("pipelines/audio/03_song.wav");
    std::fs::copy(&song, archive.join("20260601_060000.WAV")).unwrap();
    let reprocess = |store: &Path| {
        let args = [
            "reprocess",
            pipeline.to_str().unwrap(),
            archive.to_str().unwrap(),
            "--progress",
            "off",
            "--format",
            "parquet",
            "--store",
            store.to_str().unwrap(),
        ];
        acoupi(&args)
    };
    // A folder of the user's at the Parquet folder's name is left as it is.
    let users = dir.path().join("mine.parquet");
    std::fs::create_dir(&users).unwrap();
    std::fs::write(users.join("notes.txt"), "my notes").unwrap();
    let refused = reprocess(&dir.path().join("mine.duckdb"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("mine.parquet") && stderr.contains("not written by acoupi"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(users.join("notes.txt")).unwrap(),
        "my notes"
    );
    assert_eq!(std::fs::read_dir(&users).unwrap().count(), 1);

    let shard = dir.path().join("shard.duckdb");
    let output = reprocess(&shard);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let folder = dir.path().join("shard.parquet");
    let pwned = dir.path().join("pwned.csv");
    let attached = dir.path().join("attached.duckdb");
    let payload = format!(
        "\nCOPY (SELECT 1) TO '{}';\nATTACH '{}' AS evil;\nCREATE TABLE evil.t AS SELECT 1;\n",
        pwned.display(),
        attached.display()
    );
    for name in ["schema.sql", "load.sql"] {
        let sql = std::fs::read_to_string(folder.join(name)).unwrap();
        std::fs::write(folder.join(name), format!("{payload}{sql}{payload}")).unwrap();
    }
    let merged = dir.path().join("merged.duckdb");
    let output = acoupi(&["merge", merged.to_str().unwrap(), folder.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !pwned.exists() && !attached.exists(),
        "merge ran the folder's SQL"
    );
    let count = |db: &Path, table: &str| -> i64 {
        let conn = duckdb::Connection::open(db).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    for table in [
        "recordings",
        "detections",
        "detection_tags",
        "reprocessed_files",
    ] {
        assert_eq!(count(&merged, table), count(&shard, table), "{table}");
    }
    assert_eq!(count(&merged, "recordings"), 1);
}

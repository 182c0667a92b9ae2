//! `acoupi status`, `query` and `export` on a store the demo filled, including a query
//! while a station is writing the store.

use std::path::Path;
use std::process::{Command, Output};

use crate::run::{RunningStation, demo_in};

fn acoupi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acoupi")).args(args).output().unwrap()
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
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("station `demo`"), "{text}");
    for stage in ["record", "detect", "manage", "summary"] {
        let line = text.lines().find(|l| l.trim_start().starts_with(stage)).unwrap_or_else(|| panic!("no {stage} in {text}"));
        assert!(line.contains("last run") && line.contains("(1 runs)"), "{line}");
    }
    assert!(text.contains("recordings: 1 (0 deleted"), "{text}");
    assert!(text.contains("detections: 3"), "{text}");
    assert!(text.contains("messages: 2 (2 unsent)"), "{text}");
}

#[test]
fn query_prints_csv_and_json_and_rejects_bad_sql() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = filled(dir.path());
    let csv = acoupi(&["query", &pipeline, "SELECT tag_value, count(*) AS n FROM detections_flat GROUP BY 1", "--format", "csv"]);
    assert!(csv.status.success());
    assert_eq!(String::from_utf8_lossy(&csv.stdout), "tag_value,n\nchirp,3\n");
    let db = dir.path().join("station.duckdb");
    let json = acoupi(&["query", db.to_str().unwrap(), "SELECT count(*) AS n FROM recordings", "--format", "json"]);
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
    for (what, format, file) in [("detections", "parquet", "d.parquet"), ("recordings", "csv", "r.csv"), ("messages", "parquet", "m.parquet")] {
        let out = dir.path().join(file);
        let output = acoupi(&["export", &pipeline, "--what", what, "--format", format, "-o", out.to_str().unwrap()]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let db = duckdb::Connection::open_in_memory().unwrap();
        let reader = if format == "csv" { "read_csv_auto" } else { "read_parquet" };
        let n: i64 = db.query_row(&format!("SELECT count(*) FROM {reader}('{}')", out.display()), [], |r| r.get(0)).unwrap();
        let expected = match what { "detections" => 3, "recordings" => 1, _ => 2 };
        assert_eq!(n, expected, "{what}");
    }
    let raven = dir.path().join("selections.txt");
    assert!(acoupi(&["export", &pipeline, "--what", "detections", "--format", "raven", "-o", raven.to_str().unwrap()]).status.success());
    let text = std::fs::read_to_string(raven).unwrap();
    assert!(text.starts_with("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin File"));
    assert_eq!(text.lines().count(), 4);
}

#[test]
fn query_works_while_a_station_writes_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let mut station = RunningStation::start(&pipeline);
    assert_eq!(station.wait_for(" analysed ", 1), 1, "the station analysed nothing");
    let output = acoupi(&["query", pipeline.to_str().unwrap(), "SELECT count(*) AS n FROM model_outputs", "--format", "csv"]);
    station.terminate();
    let _ = station.child.wait();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    let n: i64 = text.lines().nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
    assert!(n >= 1, "the running station's committed outputs are visible: {text}");
}

#[test]
fn a_second_station_on_the_same_store_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let mut station = RunningStation::start(&pipeline);
    assert_eq!(station.wait_for(" recorded ", 1), 1, "the first station did not record");
    let second = acoupi(&["run", pipeline.to_str().unwrap(), "--once"]);
    station.terminate();
    let _ = station.child.wait();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another process") && stderr.contains("PID"), "{stderr}");
}

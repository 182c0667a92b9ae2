//! `acoupi bench memory` runs a real station for a few seconds and reports sane figures;
//! `acoupi bench serve` fills a small store, serves it and reports every URL.

use std::process::Command;

/// The number after `label` in `text` (e.g. "steady (median) 93.1 MiB").
fn figure(text: &str, label: &str) -> f64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no `{label}` in:\n{text}"));
    text[at + label.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no number after `{label}` in:\n{text}"))
}

#[test]
fn bench_memory_samples_a_birdnet_station_that_analysed_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["bench", "memory", "--model", "birdnet", "--minutes", "0.5"])
        .args(["--interval", "1", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Samples every second over 30 s, warm-up 6 s.
    let samples = text
        .lines()
        .filter(|l| {
            l.split_whitespace().count() == 5 && l.trim_start().starts_with(char::is_numeric)
        })
        .count();
    assert!(samples >= 20, "{samples} samples:\n{text}");
    let outputs = figure(&text, "recordings, ");
    assert!(outputs >= 1.0, "{text}");
    let (start, steady, peak, end) = (
        figure(&text[text.find("start (after").unwrap_or(0)..], "s) "),
        figure(&text, "steady (median) "),
        figure(&text, "peak (VmHWM) "),
        figure(&text, "end "),
    );
    // BirdNET's weights alone are 50 MiB; a station is well under a gigabyte.
    for rss in [start, steady, end] {
        assert!((50.0..1024.0).contains(&rss), "{rss} MiB:\n{text}");
        assert!(peak >= rss, "peak {peak} below {rss}:\n{text}");
    }
    assert!(text.contains("growth "), "{text}");
    assert!(dir.path().join("station.duckdb").exists());
}

#[test]
fn bench_memory_refuses_an_invalid_pipeline_before_starting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[deployment]\nname = 1\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["bench", "memory", "--minutes", "0.1", "--pipeline"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing measured: {output:?}");
}

/// The URLs `acoupi bench serve` times, by the labels of its table.
const SERVE_LABELS: [&str; 15] = [
    "today",
    "detections",
    "detections (species)",
    "species",
    "recording",
    "station",
    "analytics",
    "api species/daily",
    "api detections",
    "api detection",
    "api recording",
    "api audio (Range)",
    "api spectrogram 10 s",
    "api status",
    "metrics",
];

#[test]
fn bench_serve_fills_a_store_and_reports_every_url() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    let small = ["bench", "serve", "--detections", "20000", "--requests", "3"];
    let table = crate::acoupi_ok(&[&small[..], &["--dir", folder]].concat());
    for label in SERVE_LABELS {
        assert!(
            table.lines().any(|l| l.contains(&format!(" {label} "))),
            "no row `{label}`:\n{table}"
        );
    }
    assert!(table.contains("RSS before the server "), "{table}");

    // Again on the same folder: the store is reused, the report comes as JSON.
    let json = crate::acoupi_ok(&[&small[..], &["--dir", folder, "--json"]].concat());
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let store = dir.path().join("bench-serve.duckdb");
    let sql = |query: &str| -> i64 {
        let out = crate::acoupi_ok(&["query", store.to_str().unwrap(), query, "--format", "csv"]);
        out.lines().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(report["detections"], sql("SELECT count(*) FROM detections"));
    assert_eq!(report["detections"], 20000);
    assert_eq!(report["recordings"], sql("SELECT count(*) FROM recordings"));
    let urls = report["urls"].as_array().unwrap();
    let labels: Vec<&str> = urls.iter().map(|u| u["label"].as_str().unwrap()).collect();
    assert_eq!(labels, SERVE_LABELS);
    for url in urls {
        let statuses: Vec<u64> = url["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        let expected: &[u64] = if url["label"] == "api audio (Range)" {
            &[206]
        } else {
            &[200]
        };
        assert!(
            statuses == expected || statuses == [404],
            "{} answered {statuses:?}:\n{json}",
            url["label"]
        );
        let verdict = url["verdict"].as_str().unwrap();
        if statuses == [404] {
            assert_eq!(verdict, "not built (404)");
        } else {
            assert!(["met", "MISSED", "-"].contains(&verdict), "{url}");
            let (p50, p95) = (
                url["p50_ms"].as_f64().unwrap(),
                url["p95_ms"].as_f64().unwrap(),
            );
            assert!(p50 > 0.0 && p95 >= p50, "{url}");
        }
    }
    assert!(report["rss_before_mib"].as_f64().unwrap() > 1.0, "{json}");
    assert!(report["rss_peak_mib"].as_f64().unwrap() >= report["rss_after_mib"].as_f64().unwrap());

    // Another size in the same folder is refused, not silently refilled.
    let other = std::process::Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["bench", "serve", "--detections", "100", "--dir", folder])
        .output()
        .unwrap();
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("holds 20000 detections"));
}

//! `acoupi bench memory` runs a real station for a few seconds and reports sane figures.

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

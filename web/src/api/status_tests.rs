//! HTTP tests of `/api/v1/status`, `/metrics` and `/station` against a store filled with
//! stage runs, metrics, detections and messages: every number shown equals SQL over the
//! same store.

use std::time::Duration;

use acoupi_engine::telemetry::{ErrorSource, Telemetry};
use acoupi_store_duckdb::DuckDbStore;

use crate::state::StateOptions;
use crate::{AppState, Served};

const FILL: &str = "
INSERT INTO deployments (id, name, latitude, longitude, started_on, ended_on) VALUES ('00000000-0000-0000-0000-0000000000d1', 'meadow', 51.5, -0.1, now() - INTERVAL 2 DAY, NULL);
INSERT INTO recordings (id, deployment_id, created_on, duration, samplerate, audio_channels, time_expansion, path) VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000d1', now() - INTERVAL 1 HOUR, 10, 48000, 1, 1, NULL);
INSERT INTO model_outputs (id, recording_id, name_model, created_on) VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'birdnet', now());
INSERT INTO model_outputs (id, recording_id, name_model, created_on) VALUES ('00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-0000000000a1', 'chirp', now());
INSERT INTO detections (id, model_output_id, prediction_type, start_time, low_freq, end_time, high_freq, detection_score) SELECT gen_random_uuid(), '00000000-0000-0000-0000-0000000000b1', 'event', 0, 100, 3, 9000, 0.9 FROM range(5);
INSERT INTO detections (id, model_output_id, prediction_type, start_time, low_freq, end_time, high_freq, detection_score) SELECT gen_random_uuid(), '00000000-0000-0000-0000-0000000000b2', 'presence', NULL, NULL, NULL, NULL, 0.5 FROM range(2);
INSERT INTO stage_runs (stage, kind, started_on, finished_on, outcome) SELECT 'record', 'recording', now() - to_seconds(i * 10), now() - to_seconds(i * 10 - 1), 'recorded ' || i FROM range(1, 8) t(i);
INSERT INTO stage_runs (stage, kind, started_on, finished_on, outcome) SELECT 'detect', 'detection', now() - to_seconds(i * 10), now() - to_seconds(i * 10 - 2), 'analysed ' || i FROM range(1, 5) t(i);
INSERT INTO metrics (name, value, unit, captured_on) SELECT 'cpu_temperature', 40 + i, 'C', now() - to_hours(i) FROM range(0, 30) t(i);
INSERT INTO metrics (name, value, unit, captured_on) SELECT 'free_space', 1000 - i, 'MB', now() - to_hours(i) FROM range(0, 3) t(i);
INSERT INTO messages (id, content, content_bytes, created_on, message_type) VALUES ('00000000-0000-0000-0000-0000000000e1', 'a', NULL, now(), 'detection');
INSERT INTO messages (id, content, content_bytes, created_on, message_type) VALUES ('00000000-0000-0000-0000-0000000000e2', 'b', NULL, now(), 'detection');
INSERT INTO messages (id, content, content_bytes, created_on, message_type) VALUES ('00000000-0000-0000-0000-0000000000e3', 'c', NULL, now(), 'heartbeat');
INSERT INTO responses (id, message_id, status, content, received_on) VALUES (gen_random_uuid(), '00000000-0000-0000-0000-0000000000e1', 1, NULL, now());
INSERT INTO responses (id, message_id, status, content, received_on) VALUES (gen_random_uuid(), '00000000-0000-0000-0000-0000000000e3', 0, NULL, now());
";

struct Fixture {
    base: String,
    store: DuckDbStore,
    _dir: tempfile::TempDir,
}

async fn serve(telemetry: Option<Telemetry>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap();
    store.reader().unwrap().execute_batch(FILL).unwrap();
    let served = if telemetry.is_some() {
        Served::Station
    } else {
        Served::File { read_only: false }
    };
    let state = AppState::new(StateOptions {
        store: store.clone(),
        served,
        telemetry,
        settings: None,
        species_key: None,
        cache_dir: dir.path().join("cache"),
        token: None,
        public: false,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, crate::router(state)).await;
    });
    Fixture {
        base,
        store,
        _dir: dir,
    }
}

async fn get(url: String) -> (u16, String, String) {
    tokio::task::spawn_blocking(move || {
        let response = reqwest::blocking::get(&url).unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, kind, response.text().unwrap())
    })
    .await
    .unwrap()
}

fn sql_i64(store: &DuckDbStore, sql: &str) -> i64 {
    store
        .reader()
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_from_the_store_equals_sql() {
    let served = serve(None).await;
    let (code, _, text) = get(format!("{}/api/v1/status", served.base)).await;
    assert_eq!(code, 200, "{text}");
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["served"], "file");
    assert_eq!(status["stages_source"], "stage_runs");
    assert_eq!(status["station"], "meadow");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let stages = status["stages"].as_array().unwrap();
    for stage in stages {
        let name = stage["name"].as_str().unwrap();
        let runs = sql_i64(
            &served.store,
            &format!("SELECT count(*) FROM stage_runs WHERE stage = '{name}'"),
        );
        assert_eq!(stage["runs"].as_i64(), Some(runs), "{name}");
        assert!(stage["state"].is_null());
    }
    assert_eq!(
        stages.len() as i64,
        sql_i64(
            &served.store,
            "SELECT count(DISTINCT stage) FROM stage_runs"
        )
    );
    // The first run wins the order: `record` ran first.
    assert_eq!(stages[0]["name"], "record");
    assert_eq!(stages[0]["last_outcome"], "recorded 1");
    for model in status["models"].as_array().unwrap() {
        let name = model["name"].as_str().unwrap();
        let count = sql_i64(
            &served.store,
            &format!(
                "SELECT count(*) FROM detections d JOIN model_outputs m ON d.model_output_id = m.id WHERE m.name_model = '{name}'"
            ),
        );
        assert_eq!(model["detections"].as_i64(), Some(count), "{name}");
    }
    let outbox = status["outbox"].as_array().unwrap();
    let pending = |t: &str| {
        outbox
            .iter()
            .find(|b| b["message_type"] == t)
            .map(|b| b["pending"].as_i64().unwrap())
    };
    for t in ["detection", "heartbeat"] {
        let sql = sql_i64(
            &served.store,
            &format!("SELECT count(*) FROM message_status WHERE message_type = '{t}' AND NOT sent"),
        );
        assert_eq!(pending(t), Some(sql), "{t}");
    }
    let store_folder = &status["disk"][0];
    assert_eq!(store_folder["name"], "store");
    assert!(store_folder["free_bytes"].as_u64().unwrap() > 0);
    assert!(status["store"]["bytes"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_a_station_shows_its_telemetry() {
    let telemetry = Telemetry::new();
    let record = telemetry.register_stage("record", "recording", "every 10s", true, 1);
    telemetry.register_stage("detect", "detection", "after record", false, 4);
    record.queued(Some(chrono::Utc::now()));
    record.started(chrono::Utc::now());
    record.finished(chrono::Utc::now(), "recorded x", true);
    telemetry.record_inference("birdnet", "detect", Duration::from_millis(250), 10.0);
    telemetry.record_error(
        "model failed",
        ErrorSource {
            stage: Some("detect".into()),
            component: Some("birdnet".into()),
        },
    );
    let served = serve(Some(telemetry)).await;
    let (_, _, text) = get(format!("{}/api/v1/status", served.base)).await;
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status["stages_source"], "telemetry");
    let stages = status["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0]["name"], "record");
    assert_eq!(stages[0]["runs"], 1);
    assert_eq!(stages[0]["errors"], 1);
    assert_eq!(stages[0]["state"], "idle");
    assert_eq!(stages[0]["last_outcome"], "recorded x");
    assert_eq!(stages[1]["queue_capacity"], 4);
    let birdnet = status["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "birdnet")
        .unwrap();
    assert_eq!(birdnet["chunks"], 1);
    assert!((birdnet["real_time_factor"].as_f64().unwrap() - 40.0).abs() < 1e-6);
    assert_eq!(status["errors"]["total"], 1);
    assert_eq!(status["errors"]["last"][0]["component"], "birdnet");
}

/// Parses the text format: `(name, labels, value)` per sample; checks that every sample
/// follows a TYPE line of its family and that names are prefixed.
fn parse(text: &str) -> Vec<(String, String, f64)> {
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        assert!(name.starts_with("acoupi_"), "{line}");
        let family = name
            .strip_suffix("_sum")
            .or_else(|| name.strip_suffix("_count"))
            .filter(|f| typed.contains(*f))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE before {line}");
        samples.push((name.to_string(), labels.to_string(), value.parse().unwrap()));
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_equal_sql() {
    let telemetry = Telemetry::new();
    let probe = telemetry.register_stage("detect", "detection", "after record", false, 4);
    probe.queued(None);
    probe.queued(None);
    telemetry.record_inference("birdnet", "detect", Duration::from_millis(500), 3.0);
    let served = serve(Some(telemetry)).await;
    let (code, kind, text) = get(format!("{}/metrics", served.base)).await;
    assert_eq!(code, 200);
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let samples = parse(&text);
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|(_, _, v)| *v)
    };
    for model in ["birdnet", "chirp"] {
        let sql = sql_i64(
            &served.store,
            &format!(
                "SELECT count(*) FROM detections d JOIN model_outputs m ON d.model_output_id = m.id WHERE m.name_model = '{model}'"
            ),
        );
        assert_eq!(
            value("acoupi_detections_total", &format!("model=\"{model}\"")),
            Some(sql as f64)
        );
    }
    assert_eq!(value("acoupi_queue_depth", "stage=\"detect\""), Some(2.0));
    assert_eq!(
        value("acoupi_stage_runs_total", "stage=\"detect\""),
        Some(0.0)
    );
    assert_eq!(
        value("acoupi_inference_seconds_count", "model=\"birdnet\""),
        Some(1.0)
    );
    assert_eq!(
        value("acoupi_inference_seconds_sum", "model=\"birdnet\""),
        Some(0.5)
    );
    let pending = sql_i64(
        &served.store,
        "SELECT count(*) FROM message_status WHERE message_type = 'detection' AND NOT sent",
    );
    assert_eq!(
        value("acoupi_outbox_pending", "message_type=\"detection\""),
        Some(pending as f64)
    );
    assert!(value("acoupi_disk_free_bytes", "folder=\"store\"").unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_station_page_lists_every_stage_and_charts_each_metric() {
    let served = serve(None).await;
    let (code, kind, html) = get(format!("{}/station", served.base)).await;
    assert_eq!(code, 200, "{html}");
    assert!(kind.starts_with("text/html"), "{kind}");
    for stage in ["record", "detect"] {
        assert!(html.contains(&format!("data-stage=\"{stage}\"")), "{stage}");
    }
    // 24 h: both metrics have points in the last day; each gets one line.
    for metric in ["cpu_temperature", "free_space"] {
        assert!(
            html.contains(&format!("data-metric=\"{metric}\"")),
            "{metric}"
        );
    }
    assert_eq!(html.matches("<polyline").count(), 2);
    assert!(!html.contains("style="), "no inline style (CSP)");
    assert!(!html.contains("<script>"), "no inline script (CSP)");
    let (code, _, _) = get(format!("{}/station?window=7d", served.base)).await;
    assert_eq!(code, 200);
    let (code, _, _) = get(format!("{}/station?window=1y", served.base)).await;
    assert_eq!(code, 400);
}

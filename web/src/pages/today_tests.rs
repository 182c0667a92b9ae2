//! HTTP tests of Today, Species, Analytics, `/api/v1/species/daily` and the live feed:
//! a store filled with engine data types at known local hours (UTC and Asia/Kolkata,
//! +05:30, whose half-hour offset puts some detections in another local hour and day
//! than in UTC), the router served on 127.0.0.1:0, every number compared with SQL over
//! the same store.

use std::sync::Arc;
use std::time::Duration;

use acoupi_engine::config::{DeploymentSettings, Settings};
use acoupi_engine::data::{
    BoundingBox, Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi_engine::store::Store;
use acoupi_store_duckdb::DuckDbStore;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::state::StateOptions;
use crate::{AppState, Served};

/// The day the tests look at (local), and detections around it: (UTC time of the
/// recording, start_time in it, species, confidence).
const DAY: &str = "2026-07-14";
const DETECTIONS: &[(&str, f64, &str, f64)] = &[
    ("2026-07-13T18:10:00Z", 5.0, "Parus major", 0.91), // 23:40 IST on the 13th
    ("2026-07-13T18:40:00Z", 1.0, "Parus major", 0.55), // 00:10 IST on the 14th, 18 UTC 13th
    ("2026-07-14T00:20:00Z", 2.5, "Parus major", 0.80), // 05:50 IST
    ("2026-07-14T00:45:00Z", 0.0, "Parus major", 0.30), // 06:15 IST
    ("2026-07-14T00:45:00Z", 3.0, "Erithacus rubecula", 0.70),
    ("2026-07-14T09:59:00Z", 70.0, "Erithacus rubecula", 0.99), // 10:00:10 UTC, 15:30 IST
    ("2026-07-14T18:29:00Z", 30.0, "Turdus merula", 0.60),      // 23:59:30 IST
    ("2026-07-14T18:31:00Z", 0.0, "Turdus merula", 0.65),       // 00:01 IST on the 15th
    ("2026-07-14T23:50:00Z", 1.0, "Turdus merula", 0.40),       // 23:50 UTC
    ("2026-07-15T03:00:00Z", 1.0, "Sitta europaea", 0.75),
];

fn store(dir: &std::path::Path) -> (DuckDbStore, Deployment) {
    let store = DuckDbStore::open(&dir.join("store.duckdb")).unwrap();
    let deployment = Deployment::new("test");
    store.store_deployment(&deployment).unwrap();
    for (time, start, species, confidence) in DETECTIONS {
        store_detection(
            &store,
            &deployment,
            time.parse().unwrap(),
            *start,
            species,
            *confidence,
        );
    }
    (store, deployment)
}

fn store_detection(
    store: &DuckDbStore,
    deployment: &Deployment,
    created: DateTime<Utc>,
    start: f64,
    species: &str,
    confidence: f64,
) -> ModelOutput {
    let mut recording = Recording::new(deployment.clone(), 120.0, 48_000).unwrap();
    recording.created_on = created;
    let common = format!("common {species}");
    let detection = Detection::new(PredictionType::Event)
        .with_location(BoundingBox::new(start, 1000.0, start + 3.0, 8000.0).unwrap())
        .with_score(confidence)
        .unwrap()
        .with_tag(PredictedTag::new(Tag::new("species", species), confidence).unwrap())
        .with_tag(PredictedTag::new(Tag::new("common_name", common), confidence).unwrap());
    let output = ModelOutput::new("test-model", recording, vec![detection]);
    store.store_model_output(&output).unwrap();
    output
}

fn settings(timezone: chrono_tz::Tz, dir: &std::path::Path) -> Arc<Settings> {
    Arc::new(Settings {
        base_dir: dir.to_owned(),
        deployment: DeploymentSettings {
            name: "test".into(),
            latitude: None,
            longitude: None,
            timezone,
        },
        store_path: dir.join("store.duckdb"),
        temp_dir: dir.join("tmp"),
        recordings_dir: dir.join("recordings"),
        device_id: None,
        retention: None,
        web: None,
    })
}

/// Serves the router on 127.0.0.1:0; returns its base URL.
async fn serve(
    store: DuckDbStore,
    settings: Option<Arc<Settings>>,
    dir: &std::path::Path,
) -> String {
    let state = AppState::new(StateOptions {
        store,
        served: Served::File { read_only: false },
        telemetry: None,
        settings,
        species_key: None,
        cache_dir: dir.join("cache"),
        token: None,
        public: true,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, crate::router(state)).await.unwrap();
    });
    format!("http://{address}")
}

async fn get(url: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let response = reqwest::blocking::get(&url).unwrap();
        (response.status().as_u16(), response.text().unwrap())
    })
    .await
    .unwrap()
}

/// Expected per species on local `DAY` with a fixed `offset_min` from UTC, from SQL:
/// (species, count, hourly counts, max confidence).
fn expected(
    store: &DuckDbStore,
    offset_min: i64,
    min_confidence: f64,
) -> Vec<(String, u64, [u64; 24], f64)> {
    let conn = store.reader().unwrap();
    let sql = format!(
        "WITH d AS (SELECT tag_value, coalesce(tag_confidence, detection_score) AS c, \
             CAST(recording_created_on AS TIMESTAMP) \
               + to_microseconds(CAST(round(start_time * 1000000) AS BIGINT)) \
               + INTERVAL ({offset_min}) MINUTE AS t \
           FROM detections_flat WHERE tag_key = 'species') \
         SELECT tag_value, hour(t), count(*), max(c) FROM d \
         WHERE strftime(t, '%Y-%m-%d') = '{DAY}' AND c >= {min_confidence} \
         GROUP BY ALL ORDER BY ALL"
    );
    let mut statement = conn.prepare(&sql).unwrap();
    let rows: Vec<(String, i64, i64, f64)> = statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out: Vec<(String, u64, [u64; 24], f64)> = Vec::new();
    for (species, hour, count, max) in rows {
        if out.last().is_none_or(|(s, ..)| *s != species) {
            out.push((species.clone(), 0, [0; 24], f64::MIN));
        }
        let last = out.last_mut().unwrap();
        last.1 += count as u64;
        last.2[hour as usize] += count as u64;
        last.3 = last.3.max(max);
    }
    out
}

fn check_daily(body: &str, expected: &[(String, u64, [u64; 24], f64)]) {
    let json: Value = serde_json::from_str(body).unwrap();
    let mut got: Vec<(String, u64, [u64; 24], f64)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut hourly = [0u64; 24];
            let counts = d["hourly_counts"].as_array().unwrap();
            assert_eq!(counts.len(), 24);
            for (i, c) in counts.iter().enumerate() {
                hourly[i] = c.as_u64().unwrap();
            }
            assert_eq!(
                d["common_name"],
                format!("common {}", d["scientific_name"].as_str().unwrap())
            );
            (
                d["scientific_name"].as_str().unwrap().to_owned(),
                d["count"].as_u64().unwrap(),
                hourly,
                d["max_confidence"].as_f64().unwrap(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!expected.is_empty());
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    for (g, e) in got.iter().zip(expected) {
        assert_eq!((&g.0, g.1, g.2), (&e.0, e.1, e.2));
        assert!((g.3 - e.3).abs() < 1e-9, "{g:?} vs {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn species_daily_counts_hours_and_confidence_equal_sql_in_utc_and_kolkata() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = store(dir.path());
    let utc = serve(store.clone(), None, dir.path()).await;
    let (status, body) = get(format!("{utc}/api/v1/species/daily?date={DAY}")).await;
    assert_eq!(status, 200, "{body}");
    check_daily(&body, &expected(&store, 0, 0.0));

    let kolkata = serve(
        store.clone(),
        Some(settings(chrono_tz::Asia::Kolkata, dir.path())),
        dir.path(),
    )
    .await;
    let (status, body) = get(format!("{kolkata}/api/v1/species/daily?date={DAY}")).await;
    assert_eq!(status, 200, "{body}");
    let ist = expected(&store, 330, 0.0);
    check_daily(&body, &ist);
    // The two zones disagree (the half-hour offset moves detections across hours).
    assert_ne!(ist, expected(&store, 0, 0.0));

    let (status, body) = get(format!(
        "{kolkata}/api/v1/species/daily?date={DAY}&min_confidence=0.6"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    check_daily(&body, &expected(&store, 330, 0.6));

    let (status, _) = get(format!("{utc}/api/v1/species/daily?date=14-07-2026")).await;
    assert_eq!(status, 400);
    let (status, _) = get(format!("{utc}/api/v1/species/daily?min_confidence=high")).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn today_species_and_analytics_pages_show_the_numbers_from_sql() {
    let dir = tempfile::tempdir().unwrap();
    let (store, deployment) = store(dir.path());
    // Two detections now, so Today has something.
    let now = Utc::now();
    store_detection(&store, &deployment, now, 0.0, "Parus major", 0.9);
    store_detection(&store, &deployment, now, 4.0, "Corvus corax", 0.8);
    let base = serve(store.clone(), None, dir.path()).await;
    let conn = store.reader().unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };

    let (status, today) = get(format!("{base}/")).await;
    assert_eq!(status, 200, "{today}");
    let today_count = count(&format!(
        "SELECT count(*) FROM detections_flat WHERE tag_key = 'species' \
         AND strftime(CAST(recording_created_on AS TIMESTAMP) + to_microseconds(CAST(round(start_time * 1000000) AS BIGINT)), '%Y-%m-%d') = '{}'",
        now.format("%Y-%m-%d")
    ));
    assert!(
        today.contains(&format!(
            "<span id=\"today-detections\">{today_count}</span>"
        )),
        "{today}"
    );
    assert!(today.contains("id=\"grid\""));
    assert!(today.contains("data-species=\"Corvus corax\""));
    // Corvus corax was never heard before this season: new.
    assert!(today.contains("class=\"badge new\""));
    assert!(today.contains("/api/v1/recordings/"));
    assert!(today.contains("<audio controls preload=\"none\""));
    assert!(today.contains("src=\"/assets/live.js\""));

    let (status, page) = get(format!("{base}/species/Parus%20major")).await;
    assert_eq!(status, 200, "{page}");
    let parus = count(
        "SELECT count(*) FROM detections_flat WHERE tag_key = 'species' AND tag_value = 'Parus major'",
    );
    assert!(
        page.contains(&format!("<dd id=\"species-count\">{parus}</dd>")),
        "{page}"
    );
    assert!(page.contains("<svg"));
    let (status, _) = get(format!("{base}/species/Nobody%20here")).await;
    assert_eq!(status, 404);

    let (status, page) = get(format!("{base}/analytics?species=Turdus%20merula")).await;
    assert_eq!(status, 200, "{page}");
    let turdus = count(
        "SELECT count(*) FROM detections_flat WHERE tag_key = 'species' AND tag_value = 'Turdus merula'",
    );
    assert!(
        page.contains(&format!("<span id=\"analytics-count\">{turdus}</span>")),
        "{page}"
    );
    let distinct =
        count("SELECT count(DISTINCT tag_value) FROM detections_flat WHERE tag_key = 'species'");
    assert!(
        page.contains(&format!("<span id=\"species-total\">{distinct}</span>")),
        "{page}"
    );
    assert!(page.contains("<polyline"));

    let (status, js) = get(format!("{base}/assets/live.js")).await;
    assert_eq!(status, 200);
    assert!(js.contains("EventSource"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_stream_delivers_a_detection_stored_after_the_client_connected() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let (store, deployment) = store(dir.path());
    let base = serve(store.clone(), None, dir.path()).await;
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let url = format!("{base}/api/v1/events");
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let response = client.get(&url).send().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        for line in BufReader::new(response).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    // Let the client connect and the poller take its starting point.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let output = store_detection(&store, &deployment, Utc::now(), 2.0, "Sitta europaea", 0.77);
    let wanted = output.detections[0].id.to_string();
    let found = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let mut event = String::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = lines_rx.recv_timeout(left) else {
                break;
            };
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                let json: Value = serde_json::from_str(data.trim()).unwrap();
                assert_eq!(event, "detection");
                // Only detections stored after the client connected.
                assert_eq!(json["id"], wanted.as_str(), "{json}");
                return Some(json);
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("no detection event within 15 s");
    assert_eq!(found["tag_value"], "Sitta europaea");
    assert_eq!(found["recording_id"], output.recording.id.to_string());
    assert!((found["confidence"].as_f64().unwrap() - 0.77).abs() < 1e-9);
}

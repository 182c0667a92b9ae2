//! HTTP tests of the detections API, the review and keep endpoints and the detections
//! page, on a store filled with the engine's types; every expected number is SQL over
//! the same store.

use std::path::Path;

use acoupi_engine::data::{
    BoundingBox, Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi_engine::store::Store;
use acoupi_store_duckdb::DuckDbStore;
use serde_json::Value;

use crate::state::StateOptions;
use crate::{AppState, Served};

struct Server {
    base: String,
    store: DuckDbStore,
    _dir: tempfile::TempDir,
}

fn fill(store: &DuckDbStore) {
    let deployment = Deployment::new("garden");
    let species = ["Parus major", "Turdus merula", "Erithacus rubecula"];
    for i in 0..6 {
        let mut r = Recording::new(deployment.clone(), 10.0, 48_000)
            .unwrap()
            .with_path(format!("/rec/{i}.wav"));
        r.created_on = acoupi_engine::data::parse_timestamp("2026-05-01T04:00:00Z").unwrap()
            + chrono::TimeDelta::hours(i);
        let mut detections = Vec::new();
        for j in 0..3 {
            let confidence = 0.3 + 0.1 * j as f64 + 0.05 * i as f64;
            detections.push(
                Detection::new(PredictionType::Event)
                    .with_location(
                        BoundingBox::new(j as f64, 1_000.0, j as f64 + 1.5, 8_000.0).unwrap(),
                    )
                    .with_score(confidence)
                    .unwrap()
                    .with_tag(
                        PredictedTag::new(
                            Tag::new("species", species[(i as usize + j) % 3]),
                            confidence,
                        )
                        .unwrap(),
                    ),
            );
        }
        detections.push(
            Detection::new(PredictionType::Presence)
                .with_score(0.99)
                .unwrap()
                .with_tag(PredictedTag::new(Tag::new("privacy", "human"), 0.99).unwrap()),
        );
        let model = if i % 2 == 0 { "birdnet" } else { "batdetect2" };
        store
            .store_model_output(&ModelOutput::new(model, r, detections))
            .unwrap();
    }
}

fn server(served: Served) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap();
    fill(&store);
    let state = AppState::new(StateOptions {
        store: store.clone(),
        served,
        telemetry: None,
        settings: None,
        species_key: None,
        cache_dir: dir.path().join("cache"),
        token: None,
        public: false,
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, crate::router(state)).await.unwrap();
        });
    });
    let addr = rx.recv().unwrap();
    Server {
        base: format!("http://{addr}"),
        store,
        _dir: dir,
    }
}

impl Server {
    fn sql_i64(&self, sql: &str) -> i64 {
        self.store
            .reader()
            .unwrap()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }

    fn sql_strings(&self, sql: &str) -> Vec<String> {
        let conn = self.store.reader().unwrap();
        let mut statement = conn.prepare(sql).unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::blocking::get(format!("{}{path}", self.base)).unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn post(&self, path: &str, content_type: &str, body: &str, htmx: bool) -> (u16, String) {
        let mut request = reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned());
        if htmx {
            request = request.header("HX-Request", "true");
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

const ORDER: &str = "ORDER BY recording_created_on + to_microseconds(CAST(round(coalesce(start_time, 0) * 1e6) AS BIGINT)) DESC, detection_id";

#[test]
fn the_list_and_its_filters_equal_sql_and_pages_follow_its_order() {
    let s = server(Served::Station);
    let all = s.json("/api/v1/detections?limit=500");
    let expected = s.sql_i64("SELECT count(*) FROM detections_flat WHERE tag_key = 'species'");
    assert_eq!(all["total"].as_i64(), Some(expected));
    assert_eq!(all["data"].as_array().unwrap().len() as i64, expected);
    assert_eq!(
        ids(&all),
        s.sql_strings(&format!(
            "SELECT detection_id::VARCHAR FROM detections_flat WHERE tag_key = 'species' {ORDER}"
        ))
    );
    let first = &all["data"][0];
    for field in [
        "recording_id",
        "start_time",
        "end_time",
        "low_freq",
        "high_freq",
        "tag_key",
        "tag_value",
        "confidence",
        "model",
        "recorded_on",
        "review",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }

    let cases = [
        ("species=Parus%20major", "tag_value = 'Parus major'"),
        ("min_confidence=0.5", "tag_confidence >= 0.5"),
        ("model=batdetect2", "model_name = 'batdetect2'"),
        (
            "from=2026-05-01T06:00:00Z&to=2026-05-01T08:00:00Z",
            "recording_created_on + to_microseconds(CAST(round(start_time * 1e6) AS BIGINT)) >= TIMESTAMPTZ '2026-05-01 06:00:00+00' \
          AND recording_created_on + to_microseconds(CAST(round(start_time * 1e6) AS BIGINT)) < TIMESTAMPTZ '2026-05-01 08:00:00+00'",
        ),
        ("from=2026-05-01&to=2026-05-01", "true"),
        ("from=2026-05-02", "false"),
        (
            "hour=5",
            "hour(recording_created_on + to_microseconds(CAST(round(start_time * 1e6) AS BIGINT))) = 5",
        ),
        ("review=none", "review_verdict IS NULL"),
        ("review=correct", "review_verdict = 'correct'"),
    ];
    for (query, condition) in cases {
        let page = s.json(&format!("/api/v1/detections?limit=500&{query}"));
        let expected = s.sql_strings(&format!(
            "SELECT detection_id::VARCHAR FROM detections_flat WHERE tag_key = 'species' AND {condition} {ORDER}"
        ));
        assert_eq!(
            page["total"].as_u64(),
            Some(expected.len() as u64),
            "{query}"
        );
        assert_eq!(ids(&page), expected, "{query}");
    }
    let recording = s
        .sql_strings("SELECT id::VARCHAR FROM recordings ORDER BY created_on LIMIT 1")
        .remove(0);
    let page = s.json(&format!("/api/v1/detections?recording={recording}"));
    assert_eq!(
        page["total"].as_i64(),
        Some(s.sql_i64(&format!(
            "SELECT count(*) FROM detections_flat WHERE tag_key = 'species' AND recording_id = '{recording}'"
        )))
    );

    // Paging: consecutive pages are consecutive slices of the whole list.
    let whole = ids(&all);
    let mut paged = Vec::new();
    for offset in (0..whole.len()).step_by(4) {
        let page = s.json(&format!("/api/v1/detections?limit=4&offset={offset}"));
        assert_eq!(page["limit"].as_u64(), Some(4));
        assert_eq!(page["offset"].as_u64(), Some(offset as u64));
        paged.extend(ids(&page));
    }
    assert_eq!(paged, whole);
    assert_eq!(s.json("/api/v1/detections")["limit"].as_u64(), Some(50));
}

#[test]
fn bad_parameters_and_path_ids_are_400s_naming_them() {
    let s = server(Served::Station);
    for (query, name) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("min_confidence=high", "min_confidence"),
        ("min_confidence=2", "min_confidence"),
        ("review=maybe", "review"),
        ("hour=24", "hour"),
        ("recording=..%2Fetc%2Fpasswd", "recording"),
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (status, body) = s.get(&format!("/api/v1/detections?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(&format!("`{name}`")), "{query}: {body}");
    }
    for path in [
        "/api/v1/detections/..%2F..%2Fstore.duckdb",
        "/api/v1/detections/etc",
    ] {
        assert_eq!(s.get(path).0, 400, "{path}");
    }
    let (status, _) = s.post(
        "/api/v1/detections/..%2Fx/review",
        "application/json",
        r#"{"verdict":"correct"}"#,
        false,
    );
    assert_eq!(status, 400);
    let (status, _) = s.post(
        "/api/v1/recordings/..%2Fx/keep",
        "application/x-www-form-urlencoded",
        "keep=true",
        false,
    );
    assert_eq!(status, 400);
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(s.get(&format!("/api/v1/detections/{unknown}")).0, 404);
    let (status, body) = s.post(
        &format!("/api/v1/detections/{unknown}/review"),
        "application/json",
        r#"{"verdict":"correct"}"#,
        false,
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(s.get("/detections?hour=x").0, 400);
}

#[test]
fn a_review_round_trip_shows_in_the_api_the_page_and_detections_flat() {
    let s = server(Served::Station);
    let id = s.sql_strings(&format!(
        "SELECT detection_id::VARCHAR FROM detections_flat WHERE tag_key = 'species' {ORDER} LIMIT 1"
    ))
    .remove(0);
    let url = format!("/api/v1/detections/{id}/review");
    let (status, body) = s.post(
        &url,
        "application/json",
        r#"{"verdict":"false_positive","comment":"a door","reviewer":"ana"}"#,
        false,
    );
    assert_eq!(status, 200, "{body}");
    let one = s.json(&format!("/api/v1/detections/{id}"));
    assert_eq!(one["review"]["verdict"], "false_positive");
    assert_eq!(one["review"]["comment"], "a door");
    assert_eq!(one["review"]["reviewer"], "ana");
    // htmx posts a form and gets the controls back, the new verdict marked.
    let (status, html) = s.post(
        &url,
        "application/x-www-form-urlencoded",
        "verdict=correct&comment=song+after+all",
        true,
    );
    assert_eq!(status, 200, "{html}");
    assert!(html.starts_with("<form class=\"review\""), "{html}");
    assert!(
        html.contains(r#"class="active" aria-pressed="true">correct"#),
        "{html}"
    );
    assert_eq!(
        s.sql_strings(&format!(
            "SELECT review_verdict || '|' || review_comment FROM detections_flat WHERE detection_id = '{id}'"
        )),
        ["correct|song after all"]
    );
    assert_eq!(
        s.sql_i64(&format!(
            "SELECT count(*) FROM reviews WHERE detection_id = '{id}'"
        )),
        2,
        "the history is kept"
    );
    let page = s.json("/api/v1/detections?review=correct");
    assert_eq!(ids(&page), std::slice::from_ref(&id));
    assert_eq!(page["data"][0]["review"]["comment"], "song after all");
    let (status, html) = s.get("/detections?review=correct");
    assert_eq!(status, 200);
    assert!(
        html.contains(&id) && html.contains("1 detections"),
        "{html}"
    );
    assert!(html.contains("preload=\"none\""), "{html}");

    let (status, body) = s.post(&url, "application/json", r#"{"verdict":"maybe"}"#, false);
    assert_eq!(status, 400);
    assert!(body.contains("`verdict`"), "{body}");
}

#[test]
fn keep_protects_a_recording_and_a_read_only_store_refuses_writes() {
    let s = server(Served::Station);
    let id = s
        .sql_strings("SELECT id::VARCHAR FROM recordings ORDER BY created_on LIMIT 1")
        .remove(0);
    let url = format!("/api/v1/recordings/{id}/keep");
    let (status, body) = s.post(&url, "application/json", r#"{"keep":true}"#, false);
    assert_eq!(status, 200, "{body}");
    let kept = s.store.get_kept_files(Path::new("/rec")).unwrap();
    assert!(kept[0].kept && !kept[1].kept);
    let (status, html) = s.post(
        &url,
        "application/x-www-form-urlencoded",
        "keep=false",
        true,
    );
    assert_eq!(status, 200);
    assert!(html.contains("name=\"keep\" value=\"true\""), "{html}");
    assert_eq!(s.sql_i64("SELECT count(*) FROM recordings WHERE kept"), 0);
    assert_eq!(
        s.post(&url, "application/json", r#"{"keep":"often"}"#, false)
            .0,
        400
    );

    let r = server(Served::File { read_only: true });
    let id = r
        .sql_strings("SELECT id::VARCHAR FROM recordings LIMIT 1")
        .remove(0);
    let (status, _) = r.post(
        &format!("/api/v1/recordings/{id}/keep"),
        "application/json",
        r#"{"keep":true}"#,
        false,
    );
    assert_eq!(status, 409);
}

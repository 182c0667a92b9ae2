//! Tests of the DuckDB store, on real files in temporary folders: round trips of every
//! entity, message delivery semantics, transactions, migrations, locking between
//! processes, query and export.

use std::path::{Path, PathBuf};
use std::process::Command;

use acoupi_engine::config::pipeline::MessageOrder;
use acoupi_engine::data::{
    BoundingBox, Content, Deployment, Detection, Message, MessageType, Metric, ModelOutput,
    PredictedTag, PredictionType, Recording, Response, ResponseStatus, Tag, parse_timestamp,
};
use acoupi_engine::store::{MessageStore, Rejection, Store, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;

/// A timestamp given with an offset; kept to the microsecond like the store.
fn at(text: &str) -> DateTime<Utc> {
    parse_timestamp(text).unwrap()
}

fn fresh() -> (tempfile::TempDir, DuckDbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = DuckDbStore::open(&dir.path().join("nested/folder/store.duckdb")).unwrap();
    (dir, store)
}

fn deployment(name: &str, started_on: &str) -> Deployment {
    Deployment {
        started_on: at(started_on),
        ..Deployment::new(name)
            .with_location(52.520_008, 13.404_954)
            .unwrap()
    }
}

fn recording(deployment: &Deployment, path: &str, created_on: &str) -> Recording {
    let mut r = Recording::new(deployment.clone(), 3.25, 44_100)
        .unwrap()
        .with_path(path);
    r.created_on = at(created_on);
    r.audio_channels = 2;
    r.time_expansion = 10.0;
    r
}

fn tag(key: &str, value: &str, score: f64) -> PredictedTag {
    PredictedTag::new(Tag::new(key, value), score).unwrap()
}

/// Three detections: located with two tags (one unicode), unlocated without tags,
/// unlocated with one tag.
fn output(recording: &Recording, created_on: &str) -> ModelOutput {
    let located = Detection::new(PredictionType::Event)
        .with_location(BoundingBox::new(0.125, 1_000.5, 1.75, 8_000.25).unwrap())
        .with_score(0.8125)
        .unwrap()
        .with_tag(tag("species", "Turdus merula – Amsel", 0.9))
        .with_tag(tag("call", "Gesang \"song\"\tand\nmore", 0.25));
    let presence = Detection::new(PredictionType::Presence)
        .with_score(0.0)
        .unwrap();
    let sequence = Detection::new(PredictionType::Sequence).with_tag(tag(
        "species",
        "Erithacus rubecula",
        1.0,
    ));
    let mut o = ModelOutput::new(
        "birdnet",
        recording.clone(),
        vec![located, presence, sequence],
    );
    o.created_on = at(created_on);
    o
}

fn count(store: &DuckDbStore, sql: &str) -> i64 {
    store
        .connection()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

#[test]
fn deployment_round_trip_update_and_current() {
    let (_dir, store) = fresh();
    assert_eq!(store.get_current_deployment().unwrap(), None);
    let old = deployment("garden", "2026-04-01T08:00:00.000001+02:00");
    let mut new = deployment("pond – Teich", "2026-05-01T06:00:00.123456-03:30");
    new.latitude = None;
    // Stored newest first: "current" is by started_on, not by insertion.
    store.store_deployment(&new).unwrap();
    store.store_deployment(&old).unwrap();
    assert_eq!(store.get_current_deployment().unwrap(), Some(new.clone()));

    new.ended_on = Some(at("2026-05-02T00:00:00Z"));
    new.name = "pond 2".into();
    store.update_deployment(&new).unwrap();
    assert_eq!(store.get_current_deployment().unwrap(), Some(new.clone()));
    // store_deployment of a stored id updates it too.
    new.longitude = Some(-0.5);
    store.store_deployment(&new).unwrap();
    assert_eq!(store.get_current_deployment().unwrap(), Some(new.clone()));
    assert_eq!(count(&store, "SELECT count(*) FROM deployments"), 2);

    let err = store
        .update_deployment(&Deployment::new("never stored"))
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Database(m) if m.contains("not in the store")),
        "{err}"
    );
}

#[test]
fn timestamps_are_utc_and_kept_to_the_microsecond() {
    let (_dir, store) = fresh();
    let d = Deployment::new("now"); // Utc::now() carries nanoseconds on Linux
    store.store_deployment(&d).unwrap();
    let back = store.get_current_deployment().unwrap().unwrap();
    assert_eq!(back.started_on, stored_precision(d.started_on));
    assert_eq!(
        back.started_on.timestamp_micros(),
        d.started_on.timestamp_micros()
    );
    // The column holds the UTC instant: 06:00+02:00 reads as 04:00 UTC.
    let d = deployment("offset", "2030-01-01T06:00:00+02:00");
    store.store_deployment(&d).unwrap();
    let text: String = store
        .connection()
        .query_row(
            "SELECT strftime(started_on, '%Y-%m-%d %H:%M:%S') FROM deployments WHERE name = 'offset'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(text, "2030-01-01 04:00:00");
}

#[test]
fn recording_and_model_output_round_trip() {
    let (_dir, store) = fresh();
    let d = deployment("garden", "2026-05-01T06:00:00+02:00");
    let r = recording(&d, "/data/rec – 1.wav", "2026-05-01T06:10:00.5+02:00");
    store.store_recording(&r).unwrap();
    let o = output(&r, "2026-05-01T06:10:05.000007+02:00");
    store.store_model_output(&o).unwrap();

    assert_eq!(
        store.get_recordings(&[Uuid::new_v4(), r.id, r.id]).unwrap(),
        vec![r.clone()]
    );
    let outputs = store.get_recording_model_outputs(r.id).unwrap();
    assert_eq!(outputs, vec![o.clone()]);
    // Detections and tags come back in the order they were stored, every field kept.
    let back = &outputs[0];
    for (a, b) in back.detections.iter().zip(&o.detections) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.location, b.location);
        assert_eq!(a.tags, b.tags);
    }
    assert_eq!(back.detections[1].location, None);
    assert!(back.detections[1].tags.is_empty());
    assert_eq!(
        back.detections[0].tags[0].tag.value,
        "Turdus merula – Amsel"
    );
    assert!(
        store
            .get_recording_model_outputs(Uuid::new_v4())
            .unwrap()
            .is_empty()
    );

    // A second output of the same recording; the recording is not duplicated.
    let o2 = output(&r, "2026-05-01T06:10:06+02:00");
    store.store_model_output(&o2).unwrap();
    assert_eq!(
        store.get_recording_model_outputs(r.id).unwrap(),
        vec![o, o2]
    );
    assert_eq!(count(&store, "SELECT count(*) FROM recordings"), 1);
    assert_eq!(count(&store, "SELECT count(*) FROM detections"), 6);
    assert_eq!(count(&store, "SELECT count(*) FROM detection_tags"), 6);
}

#[test]
fn storing_an_output_adds_its_recording_and_deployment_but_keeps_stored_ones() {
    let (_dir, store) = fresh();
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    let r = recording(&d, "/tmp/a.wav", "2026-05-01T06:10:00Z");
    store
        .store_model_output(&output(&r, "2026-05-01T06:10:05Z"))
        .unwrap();
    assert_eq!(store.get_recordings(&[r.id]).unwrap(), vec![r.clone()]);
    assert_eq!(store.get_current_deployment().unwrap(), Some(d));

    // The path was moved meanwhile: an output carrying the old copy does not undo it.
    let moved = store
        .update_recording_path(&r, Some(Path::new("/archive/a.wav")))
        .unwrap();
    store
        .store_model_output(&output(&r, "2026-05-01T06:10:06Z"))
        .unwrap();
    assert_eq!(store.get_recordings(&[r.id]).unwrap(), vec![moved]);
}

#[test]
fn recording_path_can_be_cleared_and_the_row_stays() {
    let (_dir, store) = fresh();
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    let r = recording(&d, "/data/a.wav", "2026-05-01T06:10:00Z");
    store.store_recording(&r).unwrap();
    let o = output(&r, "2026-05-01T06:10:05Z");
    store.store_model_output(&o).unwrap();

    let cleared = store.update_recording_path(&r, None).unwrap();
    assert_eq!(
        cleared,
        Recording {
            path: None,
            ..r.clone()
        }
    );
    assert_eq!(
        store.get_recordings(&[r.id]).unwrap(),
        vec![cleared.clone()]
    );
    assert!(
        store
            .get_recordings_by_path(&[PathBuf::from("/data/a.wav")])
            .unwrap()
            .is_empty()
    );
    // Its detections are still there.
    let outputs = store.get_recording_model_outputs(r.id).unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].recording.path, None);
    assert_eq!(outputs[0].detections, o.detections);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM detections_flat WHERE recording_path IS NULL"
        ),
        4
    );

    let moved = store
        .update_recording_path(&cleared, Some(Path::new("/b/a.wav")))
        .unwrap();
    assert_eq!(moved.path.as_deref(), Some(Path::new("/b/a.wav")));
    assert_eq!(
        store
            .get_recordings_by_path(&[PathBuf::from("/b/a.wav")])
            .unwrap()
            .len(),
        1
    );

    // Updating the path of a recording the store never saw stores it.
    let unseen = recording(&d, "/x.wav", "2026-05-01T07:00:00Z");
    let stored = store
        .update_recording_path(&unseen, Some(Path::new("/y.wav")))
        .unwrap();
    assert_eq!(store.get_recordings(&[unseen.id]).unwrap(), vec![stored]);
}

#[test]
fn recordings_by_path_with_outputs_and_infos() {
    let (_dir, store) = fresh();
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    let a = recording(&d, "/data/a.wav", "2026-05-01T06:10:00Z");
    let b = recording(&d, "/data/b.wav", "2026-05-01T06:11:00Z");
    let c = recording(&d, "/data/c.wav", "2026-05-01T06:12:00Z");
    for r in [&a, &b, &c] {
        store.store_recording(r).unwrap();
    }
    let a1 = output(&a, "2026-05-01T06:10:05Z");
    let a2 = output(&a, "2026-05-01T06:10:04Z");
    let b1 = output(&b, "2026-05-01T06:11:05Z");
    for o in [&a1, &a2, &b1] {
        store.store_model_output(o).unwrap();
    }
    let paths = [
        PathBuf::from("/data/b.wav"),
        PathBuf::from("/unknown.wav"),
        PathBuf::from("/data/a.wav"),
        PathBuf::from("/data/c.wav"),
        PathBuf::from("/data/b.wav"),
    ];
    let found = store.get_recordings_by_path(&paths).unwrap();
    assert_eq!(
        found,
        vec![
            (b.clone(), vec![b1.clone()]),
            (a.clone(), vec![a2.clone(), a1.clone()]),
            (c.clone(), vec![])
        ]
    );
    let infos = store.get_recordings_info_by_path(&paths).unwrap();
    assert_eq!(
        infos,
        vec![
            (b, vec![b1.info()]),
            (a, vec![a2.info(), a1.info()]),
            (c, vec![])
        ]
    );
    assert!(store.get_recordings_by_path(&[]).unwrap().is_empty());
    assert!(
        store
            .get_recordings_info_by_path(&[PathBuf::from("/nope")])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn model_outputs_between_is_open_at_start_and_closed_at_end() {
    let (_dir, store) = fresh();
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    let r = recording(&d, "/a.wav", "2026-05-01T06:00:00Z");
    let times = [
        "2026-05-01T07:00:00Z",
        "2026-05-01T08:00:00Z",
        "2026-05-01T09:00:00Z",
    ];
    let outputs: Vec<ModelOutput> = times.iter().map(|t| output(&r, t)).collect();
    for o in outputs.iter().rev() {
        store.store_model_output(o).unwrap();
    }
    let between = |s: &str, e: &str| store.get_model_outputs_between(at(s), at(e)).unwrap();
    assert_eq!(
        between(times[0], times[2]),
        vec![outputs[1].clone(), outputs[2].clone()]
    );
    assert_eq!(
        between("2026-05-01T06:59:59.999999Z", times[0]),
        vec![outputs[0].clone()]
    );
    assert!(between(times[2], "2026-05-02T00:00:00Z").is_empty());
    // The same instant written with another offset.
    assert_eq!(
        between("2026-05-01T09:30:00+02:00", "2026-05-01T10:00:00+02:00"),
        vec![outputs[1].clone()]
    );
    assert_eq!(
        between("2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z"),
        outputs
    );
}

#[test]
fn a_failed_output_leaves_nothing_behind() {
    let (_dir, store) = fresh();
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    let first = output(
        &recording(&d, "/a.wav", "2026-05-01T06:10:00Z"),
        "2026-05-01T06:10:05Z",
    );
    store.store_model_output(&first).unwrap();
    let before: Vec<i64> = [
        "recordings",
        "model_outputs",
        "detections",
        "detection_tags",
    ]
    .iter()
    .map(|t| count(&store, &format!("SELECT count(*) FROM {t}")))
    .collect();

    // A new recording and output whose last detection reuses a stored detection id: the
    // recording, output, first detections and tags are inserted before the clash.
    let mut second = output(
        &recording(&d, "/b.wav", "2026-05-01T06:11:00Z"),
        "2026-05-01T06:11:05Z",
    );
    second.detections[2].id = first.detections[0].id;
    let err = store.store_model_output(&second).unwrap_err();
    assert!(
        matches!(&err, StoreError::Database(m) if m.contains("onstraint") || m.contains("uplicate")),
        "{err}"
    );
    let after: Vec<i64> = [
        "recordings",
        "model_outputs",
        "detections",
        "detection_tags",
    ]
    .iter()
    .map(|t| count(&store, &format!("SELECT count(*) FROM {t}")))
    .collect();
    assert_eq!(after, before);
    assert!(
        store
            .get_recordings_by_path(&[PathBuf::from("/b.wav")])
            .unwrap()
            .is_empty()
    );

    // The connection is usable afterwards, and the same output with a fresh id stores.
    second.detections[2].id = Uuid::new_v4();
    store.store_model_output(&second).unwrap();
    assert_eq!(
        store
            .get_recording_model_outputs(second.recording.id)
            .unwrap(),
        vec![second]
    );
}

#[test]
fn invalid_values_are_refused_not_altered() {
    use std::os::unix::ffi::OsStrExt;
    let (_dir, store) = fresh();
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    let bad = Recording {
        path: Some(PathBuf::from(std::ffi::OsStr::from_bytes(
            b"/data/\xff.wav",
        ))),
        ..recording(&d, "/x.wav", "2026-05-01T06:10:00Z")
    };
    assert!(
        matches!(store.store_recording(&bad), Err(StoreError::Invalid(m)) if m.contains("UTF-8"))
    );
    assert_eq!(count(&store, "SELECT count(*) FROM deployments"), 0);
}

fn message(content: impl Into<Content>, created_on: &str) -> Message {
    Message {
        created_on: at(created_on),
        ..Message::new(content)
    }
}

#[test]
fn messages_round_trip_text_and_bytes() {
    let (_dir, store) = fresh();
    let messages = vec![
        message(
            "{\"species\":\"Turdus merula – Amsel\"}",
            "2026-05-01T06:00:00Z",
        )
        .with_type(MessageType::Detection),
        message(vec![0u8, 159, 146, 150, 255], "2026-05-01T06:00:01Z")
            .with_type(MessageType::Heartbeat),
        message("", "2026-05-01T06:00:02Z"),
        // Valid UTF-8 as bytes stays bytes.
        message(b"plain".to_vec(), "2026-05-01T06:00:03Z").with_type(MessageType::Summary),
        message("d", "2026-05-01T06:00:04Z").with_type(MessageType::Deployment),
        message("r", "2026-05-01T06:00:05Z").with_type(MessageType::Recording),
    ];
    for m in &messages {
        store.store_message(m).unwrap();
        store.store_message(m).unwrap(); // again: no change
    }
    assert_eq!(
        store
            .get_unsent_messages(100, MessageOrder::OldestFirst)
            .unwrap(),
        messages
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM messages WHERE content_bytes IS NOT NULL"
        ),
        2
    );
}

#[test]
fn unsent_until_success_in_both_orders_with_limit() {
    let (_dir, store) = fresh();
    let ms: Vec<Message> = (0..5)
        .map(|i| message(format!("m{i}"), &format!("2026-05-01T06:00:0{i}Z")))
        .collect();
    for m in &ms {
        store.store_message(m).unwrap();
    }
    let respond = |m: &Message, status: ResponseStatus| {
        store
            .store_response(&Response::new(status, m.clone()).with_content("body"))
            .unwrap()
    };
    respond(&ms[0], ResponseStatus::Success);
    respond(&ms[1], ResponseStatus::Failed);
    respond(&ms[2], ResponseStatus::Error);
    respond(&ms[2], ResponseStatus::Timeout);
    respond(&ms[4], ResponseStatus::Failed);
    respond(&ms[4], ResponseStatus::Success);
    let unsent = |limit, order| store.get_unsent_messages(limit, order).unwrap();
    let pick = |ids: &[usize]| ids.iter().map(|i| ms[*i].clone()).collect::<Vec<_>>();
    assert_eq!(unsent(10, MessageOrder::OldestFirst), pick(&[1, 2, 3]));
    assert_eq!(unsent(10, MessageOrder::NewestFirst), pick(&[3, 2, 1]));
    assert_eq!(unsent(2, MessageOrder::OldestFirst), pick(&[1, 2]));
    assert_eq!(unsent(2, MessageOrder::NewestFirst), pick(&[3, 2]));
    assert_eq!(unsent(1, MessageOrder::NewestFirst), pick(&[3]));
    assert!(unsent(0, MessageOrder::OldestFirst).is_empty());

    // Every response is kept, every field; the view shows attempts and the latest status.
    assert_eq!(count(&store, "SELECT count(*) FROM responses"), 6);
    let status = |i: usize| -> (i64, i32, bool) {
        store
            .connection()
            .query_row(
                "SELECT attempts, coalesce(latest_status, -1), sent FROM message_status WHERE message_id = ?",
                [rows::SqlUuid(ms[i].id)],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap()
    };
    assert_eq!(status(0), (1, 0, true));
    assert_eq!(status(2), (2, 3, false));
    assert_eq!(status(3), (0, -1, false));
    assert_eq!(status(4), (2, 0, true));
    let received_on = at("2026-05-01T08:00:00.5+02:00");
    let stored_response = Response {
        received_on,
        ..Response::new(ResponseStatus::Timeout, ms[3].clone()).with_content("Zeitüberschreitung")
    };
    store.store_response(&stored_response).unwrap();
    let row: (i32, Option<String>, rows::SqlTime) = store
        .connection()
        .query_row(
            "SELECT status, content, received_on FROM responses WHERE message_id = ?",
            [rows::SqlUuid(ms[3].id)],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            3,
            Some("Zeitüberschreitung".to_owned()),
            rows::SqlTime(received_on)
        )
    );
    assert_eq!(status(3), (1, 3, false));

    // A response for a message the store has not seen stores the message too.
    let stray = message("stray", "2026-05-01T05:00:00Z");
    store
        .store_response(&Response::new(ResponseStatus::Timeout, stray.clone()))
        .unwrap();
    assert_eq!(unsent(1, MessageOrder::OldestFirst), vec![stray]);
}

#[test]
fn unsent_ties_are_broken_by_id() {
    let (_dir, store) = fresh();
    let mut ms: Vec<Message> = (0..6)
        .map(|i| message(format!("m{i}"), "2026-05-01T06:00:00Z"))
        .collect();
    for m in &ms {
        store.store_message(m).unwrap();
    }
    ms.sort_by_key(|m| m.id);
    let unsent = |limit, order| store.get_unsent_messages(limit, order).unwrap();
    assert_eq!(unsent(10, MessageOrder::OldestFirst), ms);
    assert_eq!(unsent(2, MessageOrder::OldestFirst), ms[..2]);
    ms.reverse();
    assert_eq!(unsent(10, MessageOrder::NewestFirst), ms);
    assert_eq!(unsent(2, MessageOrder::NewestFirst), ms[..2]);
}

#[test]
fn metrics_are_stored() {
    let (_dir, store) = fresh();
    let metrics = [
        Metric {
            captured_on: at("2026-05-01T06:00:00+02:00"),
            ..Metric::new("disk_free", 1.5e9, "bytes")
        },
        Metric::new("cpu_temperature", 48.25, "°C"),
    ];
    store.store_metrics(&metrics).unwrap();
    store.store_metrics(&[]).unwrap();
    let rows: Vec<(String, f64, String, rows::SqlTime)> = rows::select(
        &store.connection(),
        "SELECT name, value, unit, captured_on FROM metrics ORDER BY captured_on",
        &[],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1, rows[0].2.as_str()),
        ("disk_free", 1.5e9, "bytes")
    );
    assert_eq!(rows[0].3.0, at("2026-05-01T04:00:00Z"));
    assert_eq!((rows[1].1, rows[1].2.as_str()), (48.25, "°C"));
}

#[test]
fn handles_share_one_connection_and_clones_see_writes() {
    let (dir, store) = fresh();
    let again =
        DuckDbStore::open(&dir.path().join("nested/folder/../folder/store.duckdb")).unwrap();
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    store.store_deployment(&d).unwrap();
    assert_eq!(again.get_current_deployment().unwrap(), Some(d));
    assert!(Arc::ptr_eq(&store.shared, &again.shared));
    // Reading the same file read-only in this process would be a second DuckDB instance.
    let path = dir.path().join("nested/folder/store.duckdb");
    assert!(matches!(
        DuckDbStore::open_read_only(&path),
        Err(StoreError::Locked { .. })
    ));
    assert!(matches!(
        DuckDbStore::open_snapshot(&path),
        Err(StoreError::Locked { .. })
    ));
    drop((store, again));
    let reader = DuckDbStore::open_read_only(&path).unwrap();
    assert_eq!(reader.access(), Access::ReadOnly);
    assert!(reader.get_current_deployment().unwrap().is_some());
    assert!(matches!(
        DuckDbStore::open(&path),
        Err(StoreError::Locked { .. })
    ));
    let err = reader.store_deployment(&Deployment::new("x")).unwrap_err();
    assert!(
        matches!(&err, StoreError::Database(m) if m.contains("read-only")),
        "{err}"
    );
}

#[test]
fn read_only_open_of_a_missing_file_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = DuckDbStore::open_read_only(&dir.path().join("none.duckdb")).unwrap_err();
    assert!(
        matches!(&err, StoreError::Open { reason, .. } if reason.contains("acoupi run")),
        "{err}"
    );
    assert!(!dir.path().join("none.duckdb").exists());
}

// ---- schema versions ----

/// A version-1 file as an older acoupi wrote it: the v1 DDL and rows inserted with raw
/// SQL, nothing from this version's code paths.
fn v1_fixture(path: &Path) {
    let conn = duckdb::Connection::open(path).unwrap();
    conn.execute_batch(schema::V1).unwrap();
    conn.execute_batch(
        "INSERT INTO schema_version VALUES (1, TIMESTAMPTZ '2025-01-01 00:00:00+00');
         INSERT INTO deployments VALUES ('00000000-0000-4000-8000-000000000001', 'old garden',
             51.5, -0.1, TIMESTAMPTZ '2025-01-01 06:00:00+01', NULL);
         INSERT INTO recordings VALUES ('00000000-0000-4000-8000-000000000002',
             '00000000-0000-4000-8000-000000000001', TIMESTAMPTZ '2025-01-01 06:10:00+00',
             3.0, 48000, 1, 1.0, '/old/rec.wav');
         INSERT INTO model_outputs VALUES ('00000000-0000-4000-8000-000000000003',
             '00000000-0000-4000-8000-000000000002', 'birdnet', TIMESTAMPTZ '2025-01-01 06:10:05+00');
         INSERT INTO detections VALUES ('00000000-0000-4000-8000-000000000004',
             '00000000-0000-4000-8000-000000000003', 'event', 0.5, 1000, 1.5, 8000, 0.75);
         INSERT INTO detection_tags VALUES ('00000000-0000-4000-8000-000000000004',
             'species', 'Turdus merula – Amsel', 0.5);
         INSERT INTO messages VALUES ('00000000-0000-4000-8000-000000000005', 'hello', NULL,
             TIMESTAMPTZ '2025-01-01 06:11:00+00', 'detection');
         INSERT INTO responses VALUES ('00000000-0000-4000-8000-000000000006',
             '00000000-0000-4000-8000-000000000005', 1, 'HTTP 503', TIMESTAMPTZ '2025-01-01 06:11:01+00');",
    )
    .unwrap();
}

#[test]
fn a_version_1_file_is_upgraded_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.duckdb");
    v1_fixture(&path);

    // Read-only opens do not migrate, but read.
    let reader = DuckDbStore::open_read_only(&path).unwrap();
    assert_eq!(reader.schema_version().unwrap(), 1);
    assert_eq!(
        reader
            .get_recordings_by_path(&[PathBuf::from("/old/rec.wav")])
            .unwrap()
            .len(),
        1
    );
    drop(reader);

    let store = DuckDbStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), CURRENT_VERSION);
    assert_eq!(
        count(&store, "SELECT count(*) FROM schema_version"),
        CURRENT_VERSION
    );
    let found = store
        .get_recordings_by_path(&[PathBuf::from("/old/rec.wav")])
        .unwrap();
    assert_eq!(found.len(), 1);
    let (recording, outputs) = &found[0];
    assert_eq!(recording.deployment.name, "old garden");
    assert_eq!(recording.deployment.started_on, at("2025-01-01T05:00:00Z"));
    assert_eq!(
        outputs[0].detections[0].tags[0].tag.value,
        "Turdus merula – Amsel"
    );
    assert_eq!(
        outputs[0].detections[0].location,
        Some(BoundingBox::new(0.5, 1000.0, 1.5, 8000.0).unwrap())
    );
    // What version 2 added works on the upgraded file.
    store
        .store_metrics(&[Metric::new("disk_free", 1.0, "bytes")])
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM detections_flat"), 1);
    assert_eq!(count(&store, "SELECT attempts FROM message_status"), 1);
    assert_eq!(
        store
            .get_unsent_messages(10, MessageOrder::OldestFirst)
            .unwrap()
            .len(),
        1
    );
    // What version 3 added works too.
    let run = acoupi_engine::store::StageRunRecord {
        stage: "record".into(),
        kind: "recording".into(),
        started_on: at("2026-05-01T06:00:00Z"),
        finished_on: at("2026-05-01T06:00:03Z"),
        outcome: "recorded 1".into(),
    };
    store.store_stage_run(&run).unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM stage_runs WHERE stage = 'record' AND outcome = 'recorded 1' AND finished_on = TIMESTAMPTZ '2026-05-01 06:00:03+00'"
        ),
        1
    );
    drop(store);
    // Opening again runs nothing more.
    let store = DuckDbStore::open(&path).unwrap();
    assert_eq!(
        count(&store, "SELECT count(*) FROM schema_version"),
        CURRENT_VERSION
    );
}

#[test]
fn a_newer_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.duckdb");
    drop(DuckDbStore::open(&path).unwrap());
    {
        let conn = duckdb::Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO schema_version VALUES (?, now())",
            [CURRENT_VERSION + 1],
        )
        .unwrap();
    }
    for result in [DuckDbStore::open(&path), DuckDbStore::open_read_only(&path)] {
        match result {
            Err(StoreError::NewerSchema {
                found,
                supported,
                path: p,
            }) if found == CURRENT_VERSION + 1 && supported == CURRENT_VERSION => {
                assert_eq!(p, path)
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
    }
    let err = query(&path, "SELECT 1", QueryFormat::Csv, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("upgrade acoupi"), "{err}");
}

#[test]
fn a_foreign_duckdb_file_is_not_taken_for_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.duckdb");
    duckdb::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE birds (name VARCHAR)")
        .unwrap();
    let err = DuckDbStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Open { reason, .. } if reason.contains("not an acoupi store")),
        "{err}"
    );
}

// ---- two processes ----

const PROBE_ENV: &str = "ACOUPI_STORE_DUCKDB_PROBE";

/// Run by [`a_second_process_is_locked_out_but_can_read_a_snapshot`] in a child
/// process (this test binary again): tries each way of opening the file and prints
/// what happened.
#[test]
#[ignore = "run as a child process by a_second_process_is_locked_out_but_can_read_a_snapshot"]
fn second_process_probe() {
    let Ok(path) = std::env::var(PROBE_ENV) else {
        return;
    };
    let path = PathBuf::from(path);
    let describe = |result: Result<DuckDbStore, StoreError>| match result {
        Ok(store) => format!(
            "ok {}",
            store
                .get_recordings(&[])
                .map_or("unreadable", |_| "readable")
        ),
        Err(StoreError::Locked { reason, .. }) => format!("locked: {reason}"),
        Err(other) => format!("error: {other}"),
    };
    println!("PROBE write: {}", describe(DuckDbStore::open(&path)));
    println!(
        "PROBE read-only: {}",
        describe(DuckDbStore::open_read_only(&path))
    );
    let snapshot = DuckDbStore::open_snapshot(&path).map(|s| {
        let rows = s
            .connection()
            .query_row("SELECT count(*) FROM recordings", [], |r| {
                r.get::<_, i64>(0)
            });
        let copy = s
            .shared
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.dir.clone())
            .unwrap_or_default();
        let summary = (s.access(), rows.map_err(|e| e.to_string()), copy.exists());
        drop(s);
        (summary, copy.exists())
    });
    println!("PROBE snapshot: {snapshot:?}");
    let mut out = Vec::new();
    let n = query(
        &path,
        "SELECT path FROM recordings ORDER BY path",
        QueryFormat::Csv,
        &mut out,
    );
    println!("PROBE query: {n:?} {:?}", String::from_utf8_lossy(&out));
}

/// Runs [`second_process_probe`] on `path` in a child process; returns its lines by
/// name ("write", "read-only", "snapshot", "query").
fn probe_in_child_process(path: &Path) -> impl Fn(&str) -> String {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::second_process_probe",
            "--ignored",
            "--nocapture",
        ])
        .env(PROBE_ENV, path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&child.stderr).into_owned();
    move |what: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("PROBE {what}: ")))
            .unwrap_or_else(|| {
                panic!("no `{what}` line in the child's output:\n{stdout}\n{stderr}")
            })
            .to_owned()
    }
}

#[test]
fn a_second_process_is_locked_out_but_can_read_a_snapshot() {
    let (dir, store) = fresh();
    let path = dir.path().join("nested/folder/store.duckdb");
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    // Committed writes sit in the write-ahead log until a checkpoint.
    store
        .store_recording(&recording(&d, "/a.wav", "2026-05-01T06:10:00Z"))
        .unwrap();
    store
        .store_recording(&recording(&d, "/b.wav", "2026-05-01T06:11:00Z"))
        .unwrap();
    assert!(path.with_file_name("store.duckdb.wal").exists());

    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::second_process_probe",
            "--ignored",
            "--nocapture",
        ])
        .env(PROBE_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    let line = |what: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("PROBE {what}: ")))
            .unwrap_or_else(|| {
                panic!(
                    "no `{what}` line in the child's output:\n{stdout}\n{}",
                    String::from_utf8_lossy(&child.stderr)
                )
            })
            .to_owned()
    };
    let holder = format!("(PID {})", std::process::id());
    let write = line("write");
    assert!(
        write.starts_with("locked: lock held by ") && write.ends_with(&holder),
        "{write}"
    );
    let read_only = line("read-only");
    assert!(
        read_only.starts_with("locked: lock held by ") && read_only.ends_with(&holder),
        "{read_only}"
    );
    // The snapshot sees the committed rows still in the log; its copy is removed after.
    assert_eq!(line("snapshot"), "Ok(((Snapshot, Ok(2), true), false))");
    assert_eq!(line("query"), r#"Ok(2) "path\n/a.wav\n/b.wav\n""#);

    // The writer is unaffected.
    store
        .store_recording(&recording(&d, "/c.wav", "2026-05-01T06:12:00Z"))
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM recordings"), 3);
}

/// Why this process never opens a file it writes a second time (no read-only instance,
/// no snapshot copy): DuckDB's lock is a POSIX record lock, which closing *any*
/// descriptor of the file in the holding process releases. If this starts failing,
/// DuckDB moved to another kind of lock.
#[test]
fn closing_any_descriptor_of_the_file_drops_duckdbs_lock() {
    let (dir, store) = fresh();
    let path = dir.path().join("nested/folder/store.duckdb");
    store.store_deployment(&Deployment::new("x")).unwrap();
    drop(std::fs::File::open(&path).unwrap());
    assert_eq!(probe_in_child_process(&path)("write"), "ok readable");
}

#[test]
fn locked_error_names_the_holder() {
    let err = StoreError::Locked {
        path: "/data/store.duckdb".into(),
        reason: "x".into(),
    };
    assert!(err.to_string().contains("in use by another process"));
    let duck = duckdb::Error::DuckDBFailure(
        duckdb::ffi::Error { code: duckdb::ffi::ErrorCode::Unknown, extended_code: 1 },
        Some(
            "IO Error: Could not set lock on file \"/data/store.duckdb\": Conflicting lock is held in \
             /usr/bin/acoupi (PID 4242). See also https://duckdb.org/docs/stable/connect/concurrency"
                .into(),
        ),
    );
    match connect_error(Path::new("/data/store.duckdb"), duck) {
        StoreError::Locked { reason, .. } => {
            assert_eq!(reason, "lock held by /usr/bin/acoupi (PID 4242)")
        }
        other => panic!("{other:?}"),
    }
}

// ---- query and export ----

/// A closed store with two recordings (one with its file deleted), three outputs and
/// three messages.
fn filled() -> (tempfile::TempDir, PathBuf) {
    let (dir, store) = fresh();
    let d = deployment("garden", "2026-05-01T06:00:00Z");
    let a = recording(&d, "/data/a.wav", "2026-05-01T06:10:00Z");
    let b = recording(&d, "/data/b.wav", "2026-05-02T06:10:00Z");
    store
        .store_model_output(&output(&a, "2026-05-01T06:10:05Z"))
        .unwrap();
    store
        .store_model_output(&output(&b, "2026-05-02T06:10:05Z"))
        .unwrap();
    store
        .store_model_output(&output(&b, "2026-05-02T06:10:06Z"))
        .unwrap();
    store.update_recording_path(&b, None).unwrap();
    let m = message("hello", "2026-05-01T07:00:00Z");
    store.store_message(&m).unwrap();
    store
        .store_message(&message(vec![1u8, 2], "2026-05-02T07:00:00Z"))
        .unwrap();
    store
        .store_message(&message("third", "2026-05-03T07:00:00Z"))
        .unwrap();
    store
        .store_response(&Response::new(ResponseStatus::Success, m))
        .unwrap();
    (dir, store.path().to_owned())
}

fn run_query(path: &Path, sql: &str, format: QueryFormat) -> (usize, String) {
    let mut out = Vec::new();
    let n = query(path, sql, format, &mut out).unwrap();
    (n, String::from_utf8(out).unwrap())
}

const SAMPLE: &str = "SELECT * FROM (VALUES \
    ('Turdus merula – Amsel', 0.5::DOUBLE, NULL, TIMESTAMPTZ '2026-05-01 06:00:00+02:00', 'a,\"b\"', 12), \
    ('x', 10.25, 'y', NULL, 'plain', -3)) \
    AS t(species, score, maybe, seen, text, n)";

#[test]
fn query_as_table() {
    let (_dir, path) = filled();
    let (n, text) = run_query(&path, SAMPLE, QueryFormat::Table);
    assert_eq!(n, 2);
    assert_eq!(
        text,
        " species               | score | maybe | seen                      | text  | n\n\
         -----------------------+-------+-------+---------------------------+-------+----\n \
         Turdus merula – Amsel |   0.5 | NULL  | 2026-05-01T04:00:00+00:00 | a,\"b\" | 12\n \
         x                     | 10.25 | y     | NULL                      | plain | -3\n\
         (2 rows)\n"
    );
}

/// Display columns (a CJK character takes two) at which each `|` (`+` in the rule) of
/// `line` stands.
fn bar_columns(line: &str) -> Vec<usize> {
    use unicode_width::UnicodeWidthStr;
    line.match_indices(['|', '+'])
        .map(|(i, _)| line[..i].width())
        .collect()
}

#[test]
fn query_table_lines_up_wide_characters() {
    let (_dir, path) = filled();
    let sql = "SELECT * FROM (VALUES ('Grünfink', 1, 'Chloris chloris'), \
               ('シジュウカラ', 22, 'Parus minor'), ('Turdus merula – Amsel', 333, 'x')) \
               AS t(name, n, latin)";
    let (n, table) = run_query(&path, sql, QueryFormat::Table);
    assert_eq!(n, 3);
    assert_eq!(
        table,
        " name                  | n   | latin\n\
         -----------------------+-----+-----------------\n \
         Grünfink              |   1 | Chloris chloris\n \
         シジュウカラ          |  22 | Parus minor\n \
         Turdus merula – Amsel | 333 | x\n\
         (3 rows)\n"
    );
    let lines: Vec<&str> = table.lines().collect();
    for line in &lines[..5] {
        assert_eq!(bar_columns(line), [23, 29], "{table}");
    }
}

#[test]
fn query_as_csv_and_json() {
    let (_dir, path) = filled();
    let (n, csv) = run_query(&path, SAMPLE, QueryFormat::Csv);
    assert_eq!(n, 2);
    assert_eq!(
        csv,
        "species,score,maybe,seen,text,n\n\
         Turdus merula – Amsel,0.5,,2026-05-01T04:00:00+00:00,\"a,\"\"b\"\"\",12\n\
         x,10.25,y,,plain,-3\n"
    );
    let (n, json) = run_query(&path, SAMPLE, QueryFormat::Json);
    assert_eq!(n, 2);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!([
            {"species": "Turdus merula – Amsel", "score": 0.5, "maybe": null,
             "seen": "2026-05-01T04:00:00+00:00", "text": "a,\"b\"", "n": 12},
            {"species": "x", "score": 10.25, "maybe": "y", "seen": null, "text": "plain", "n": -3}
        ])
    );
    // Keys keep the column order.
    assert!(json.find("\"species\"").unwrap() < json.find("\"score\"").unwrap());
    assert_eq!(
        run_query(&path, "SELECT 1 AS x WHERE false", QueryFormat::Json),
        (0, "[]\n".to_owned())
    );
}

#[test]
fn query_reads_the_store_tables_and_views() {
    let (_dir, path) = filled();
    let (n, csv) = run_query(
        &path,
        "SELECT recording_path, tag_value FROM detections_flat \
         WHERE tag_key = 'species' ORDER BY recording_created_on, tag_value",
        QueryFormat::Csv,
    );
    assert_eq!(n, 6);
    assert!(
        csv.starts_with("recording_path,tag_value\n/data/a.wav,Erithacus rubecula\n"),
        "{csv}"
    );
    assert!(csv.ends_with(",Turdus merula – Amsel\n"), "{csv}");
    let (_, json) = run_query(
        &path,
        "SELECT content, content_bytes FROM messages ORDER BY created_on",
        QueryFormat::Json,
    );
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        parsed[1],
        serde_json::json!({"content": null, "content_bytes": [1, 2]})
    );
    let (_, table) = run_query(
        &path,
        "SELECT content_bytes FROM messages WHERE content IS NULL",
        QueryFormat::Table,
    );
    assert!(table.contains(r"\x01\x02"), "{table}");
}

#[test]
fn bad_sql_carries_duckdbs_message() {
    let (_dir, path) = filled();
    for (sql, expected) in [
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELEC 1", "syntax error"),
        ("DELETE FROM recordings", "read-only"),
    ] {
        let err = query(&path, sql, QueryFormat::Table, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(&err, StoreError::Database(m) if m.contains(expected)),
            "{sql}: {err}"
        );
    }
    // Nothing was deleted.
    assert_eq!(
        run_query(&path, "SELECT count(*) FROM recordings", QueryFormat::Csv).1,
        "count_star()\n2\n"
    );
}

/// SQL in single quotes, for building attacks.
fn literal(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// The attacks of issue 16 on `acoupi query`: each is refused, nothing is written
/// outside, nothing is read outside, and the store keeps its rows.
#[test]
fn query_refuses_what_is_not_one_read_statement_and_touches_nothing() {
    let (dir, path) = filled();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let other = scratch.join("x.duckdb");
    let attacks = [
        format!("COPY (SELECT 1) TO {}", literal(&scratch.join("x.csv"))),
        format!("EXPORT DATABASE {}", literal(&scratch.join("d"))),
        format!("ATTACH {} (READ_WRITE)", literal(&other)),
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "SELECT * FROM read_text('/etc/passwd')".to_owned(),
        "INSTALL httpfs".to_owned(),
        "LOAD httpfs".to_owned(),
        format!(
            "ATTACH {} AS w (READ_WRITE); USE w; DELETE FROM w.recordings",
            literal(&path)
        ),
        "SET enable_external_access = true".to_owned(),
        "RESET lock_configuration".to_owned(),
        "SELECT 1; SELECT 2".to_owned(),
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'".to_owned(),
        "DELETE FROM recordings".to_owned(),
    ];
    for sql in &attacks {
        let err = query(&path, sql, QueryFormat::Csv, &mut Vec::new()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, StoreError::Database(_)), "{sql}: {err}");
        let refused = message.contains("read-only: it runs one SELECT")
            || message.contains("disabled")
            || message.contains("Permission");
        assert!(refused, "{sql}: {message}");
    }
    let stmts = query(
        &path,
        "SELECT 1; SELECT 2",
        QueryFormat::Csv,
        &mut Vec::new(),
    );
    assert!(stmts.unwrap_err().to_string().contains("2 statements"));
    let delete = query(
        &path,
        "DELETE FROM recordings",
        QueryFormat::Csv,
        &mut Vec::new(),
    );
    assert!(
        delete
            .unwrap_err()
            .to_string()
            .contains("`DELETE` is not one of them")
    );
    assert_eq!(
        std::fs::read_dir(&scratch).unwrap().count(),
        0,
        "nothing written"
    );
    assert_eq!(
        run_query(
            &path,
            "SELECT count(*) AS n FROM recordings",
            QueryFormat::Csv
        )
        .1,
        "n\n2\n"
    );
}

/// The sandbox holds on its own, for SQL that got past the statement check: the
/// connection refuses files, extensions and setting changes.
#[test]
fn the_query_sandbox_refuses_files_extensions_and_settings_by_itself() {
    let (dir, path) = filled();
    let store = DuckDbStore::open_sandboxed(&path).unwrap();
    let conn = store.connection();
    let file = dir.path().join("x.csv");
    for sql in [
        format!("COPY (SELECT 1) TO {}", literal(&file)),
        format!("ATTACH {} AS w (READ_WRITE)", literal(&path)),
        "SELECT * FROM read_text('/etc/passwd')".to_owned(),
        "SELECT * FROM glob('/etc/*')".to_owned(),
        "INSTALL httpfs".to_owned(),
        "LOAD httpfs".to_owned(),
        "SET enable_external_access = true".to_owned(),
        "SET lock_configuration = false".to_owned(),
        "RESET enable_external_access".to_owned(),
    ] {
        assert!(
            conn.execute_batch(&sql).is_err(),
            "{sql} ran in the sandbox"
        );
    }
    assert!(!file.exists());
    let locked: String = conn
        .query_row(
            "SELECT current_setting('lock_configuration')::VARCHAR",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(locked, "true");
}

#[test]
fn query_runs_every_kind_of_read_statement() {
    let (_dir, path) = filled();
    for sql in [
        "FROM recordings",
        "VALUES (1), (2)",
        "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
        "EXPLAIN SELECT count(*) FROM recordings",
        "DESCRIBE recordings",
        "SHOW TABLES",
        "SUMMARIZE recordings",
        "PIVOT detection_tags ON key IN ('species') USING count(*)",
        "  -- a comment first\n/* and another */ SELECT 1;",
        "SELECT * FROM detections_flat",
    ] {
        let mut out = Vec::new();
        let result = query(&path, sql, QueryFormat::Table, &mut out);
        assert!(result.is_ok(), "{sql}: {result:?}");
    }
}

/// Rows are written as they come: the aligned table measures its widths on the first
/// rows only (a later, wider cell widens only its own line) and writes every row.
#[test]
fn query_streams_a_result_larger_than_the_measured_rows() {
    let (_dir, path) = filled();
    let sql = "SELECT CASE WHEN i = 4999 THEN 'a much wider cell' ELSE 'x' END AS v \
               FROM range(5000) t(i) ORDER BY i";
    let (n, table) = run_query(&path, sql, QueryFormat::Table);
    assert_eq!(n, 5000);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5000 + 3);
    assert_eq!(lines[0], " v");
    assert_eq!(lines[1], "---");
    assert_eq!(lines[5001], " a much wider cell");
    assert_eq!(lines[5002], "(5000 rows)");
    let (n, csv) = run_query(&path, "SELECT i FROM range(200000) t(i)", QueryFormat::Csv);
    assert_eq!((n, csv.lines().count()), (200_000, 200_001));
}

/// Rows in a file, counted by DuckDB itself.
fn rows_in(file: &Path, reader: &str) -> i64 {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.query_row(
        &format!("SELECT count(*) FROM {reader}('{}')", file.display()),
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn export_parquet_and_csv_are_read_back_by_duckdb() {
    let (dir, path) = filled();
    let out = dir.path().join("exports/sub");
    // detections × tags: per output 2 + 1 (untagged) + 1 = 4 rows, 3 outputs.
    for (what, expected) in [
        (ExportWhat::Detections, 12),
        (ExportWhat::Recordings, 2),
        (ExportWhat::Messages, 3),
    ] {
        let parquet = out.join(format!("{what:?}.parquet"));
        let csv = out.join(format!("{what:?}.csv"));
        assert_eq!(
            export(&path, what, ExportFormat::Parquet, &parquet, None, None).unwrap(),
            expected
        );
        assert_eq!(
            export(&path, what, ExportFormat::Csv, &csv, None, None).unwrap(),
            expected
        );
        assert_eq!(
            rows_in(&parquet, "read_parquet"),
            expected as i64,
            "{what:?}"
        );
        assert_eq!(rows_in(&csv, "read_csv"), expected as i64, "{what:?}");
    }
    // The parquet columns keep their types and values.
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let (value, sent): (String, bool) = conn
        .query_row(
            &format!(
                "SELECT (SELECT tag_value FROM read_parquet('{}') WHERE tag_key = 'species' LIMIT 1), \
                 (SELECT sent FROM read_parquet('{}') WHERE content = 'hello')",
                out.join("Detections.parquet").display(),
                out.join("Messages.parquet").display()
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((value.as_str(), sent), ("Turdus merula – Amsel", true));

    // since is included, until is not.
    let file = out.join("since.csv");
    let exported = |what, format, since: &str, until: &str| {
        let bound = |t: &str| (!t.is_empty()).then(|| at(t));
        export(&path, what, format, &file, bound(since), bound(until)).unwrap()
    };
    let day_2 = "2026-05-02T06:10:00Z";
    assert_eq!(
        exported(ExportWhat::Recordings, ExportFormat::Csv, day_2, ""),
        1
    );
    assert_eq!(
        exported(ExportWhat::Detections, ExportFormat::Csv, day_2, ""),
        8
    );
    assert_eq!(
        exported(ExportWhat::Detections, ExportFormat::Csv, "", day_2),
        4
    );
    assert_eq!(
        exported(
            ExportWhat::Messages,
            ExportFormat::Parquet,
            day_2,
            "2026-05-03T07:00:00Z"
        ),
        1
    );
}

/// `acoupi export` writes the file it was asked for and nothing else, even when the
/// name reads like SQL.
#[test]
fn export_writes_only_the_file_asked_for() {
    let (dir, path) = filled();
    for (format, name) in [
        (ExportFormat::Parquet, "d.parquet"),
        (ExportFormat::Csv, "it's'); COPY (SELECT 1) TO ('pwned.csv"),
        (ExportFormat::Raven, "selections.txt"),
    ] {
        let folder = dir.path().join(format!("{format:?}"));
        let file = folder.join(name);
        export(&path, ExportWhat::Detections, format, &file, None, None).unwrap();
        let written: Vec<_> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(written, [std::ffi::OsString::from(name)], "{format:?}");
    }
    assert!(!dir.path().join("pwned.csv").exists());
}

#[test]
fn export_raven_selection_table() {
    let (dir, path) = filled();
    let file = dir.path().join("selections.txt");
    assert_eq!(
        export(
            &path,
            ExportWhat::Detections,
            ExportFormat::Raven,
            &file,
            None,
            None
        )
        .unwrap(),
        9
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin File\tSpecies\tScore"
    );
    assert_eq!(lines.len(), 10);
    let fields: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split('\t').collect()).collect();
    assert!(fields.iter().all(|f| f.len() == 10));
    assert_eq!(
        fields.iter().map(|f| f[0]).collect::<Vec<_>>(),
        ["1", "2", "3", "4", "5", "6", "7", "8", "9"]
    );
    // Recording a: unlocated detections span the recording (3.25 s, 0 to 22050 Hz).
    let a: Vec<&Vec<&str>> = fields.iter().filter(|f| f[7] == "a.wav").collect();
    assert_eq!(a.len(), 3);
    assert!(a.contains(&&vec![
        "1",
        "Spectrogram 1",
        "1",
        "0",
        "3.25",
        "0",
        "22050",
        "a.wav",
        "",
        "0"
    ]));
    assert!(
        a.iter()
            .any(|f| f[3..7] == ["0.125", "1.75", "1000.5", "8000.25"]
                && f[8] == "Turdus merula – Amsel"
                && f[9] == "0.8125")
    );
    assert!(
        a.iter()
            .any(|f| f[8] == "Erithacus rubecula" && f[9] == "1")
    );
    // Recording b's file is gone: it is named by its id.
    assert_eq!(
        fields
            .iter()
            .filter(|f| f[7] != "a.wav" && Uuid::parse_str(f[7]).is_ok())
            .count(),
        6
    );

    let err = export(
        &path,
        ExportWhat::Messages,
        ExportFormat::Raven,
        &file,
        None,
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("detections only"), "{err}");
}

/// DuckDB 1.5.6 plans with the statistics of the moment: a prepared ORDER BY ... LIMIT
/// run first on an empty table and again after rows arrived reads garbage strings.
/// This pins the finding (if it starts failing, DuckDB fixed it) and the store's
/// answer, preparing every statement afresh.
#[test]
fn reexecuted_prepared_statements_read_stale_plans() {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE d (name VARCHAR, t INTEGER)")
        .unwrap();
    let sql = "SELECT name FROM d ORDER BY t DESC LIMIT 1";
    let mut statement = conn.prepare(sql).unwrap();
    let read = |statement: &mut duckdb::Statement<'_>| -> Vec<String> {
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert!(read(&mut statement).is_empty());
    conn.execute("INSERT INTO d VALUES ('pond – Teich', 1)", [])
        .unwrap();
    assert_ne!(read(&mut statement), ["pond – Teich"]);
    assert_eq!(read(&mut conn.prepare(sql).unwrap()), ["pond – Teich"]);

    // Every read of the store runs once on empty tables, then with rows.
    let (_dir, store) = fresh();
    assert_eq!(store.get_current_deployment().unwrap(), None);
    assert!(
        store
            .get_unsent_messages(5, MessageOrder::NewestFirst)
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_recordings_by_path(&[PathBuf::from("/a long path to a file.wav")])
            .unwrap()
            .is_empty()
    );
    let d = deployment(
        "a deployment name longer than twelve",
        "2026-05-01T06:00:00Z",
    );
    store.store_deployment(&d).unwrap();
    store.store_deployment(&d).unwrap(); // an update now
    let r = recording(&d, "/a long path to a file.wav", "2026-05-01T06:10:00Z");
    let o = output(&r, "2026-05-01T06:10:05Z");
    store.store_model_output(&o).unwrap();
    let m = message(
        "a message body longer than twelve bytes",
        "2026-05-01T07:00:00Z",
    );
    store.store_message(&m).unwrap();
    assert_eq!(store.get_current_deployment().unwrap(), Some(d));
    assert_eq!(
        store
            .get_unsent_messages(5, MessageOrder::NewestFirst)
            .unwrap(),
        vec![m]
    );
    assert_eq!(
        store
            .get_recordings_by_path(&[PathBuf::from("/a long path to a file.wav")])
            .unwrap(),
        vec![(r, vec![o])]
    );
}

#[test]
fn rejections_count_failed_responses_of_messages_whose_latest_answer_is_failed() {
    let (_dir, store) = fresh();
    let (rejected, recovered, erroring, fresh_message) = (
        Message::new("r"),
        Message::new("ok"),
        Message::new("e"),
        Message::new("n"),
    );
    for message in [&rejected, &recovered, &erroring, &fresh_message] {
        store.store_message(message).unwrap();
    }
    let answer = |message: &Message, status, on: &str| {
        let mut response = Response::new(status, message.clone());
        response.received_on = at(on);
        store.store_response(&response).unwrap();
    };
    answer(&rejected, ResponseStatus::Error, "2026-05-01T06:00:00Z");
    answer(&rejected, ResponseStatus::Failed, "2026-05-01T06:01:00Z");
    answer(&rejected, ResponseStatus::Failed, "2026-05-01T06:02:00Z");
    answer(&recovered, ResponseStatus::Failed, "2026-05-01T06:00:00Z");
    answer(&recovered, ResponseStatus::Timeout, "2026-05-01T06:05:00Z");
    answer(&erroring, ResponseStatus::Error, "2026-05-01T06:00:00Z");
    let ids = [rejected.id, recovered.id, erroring.id, fresh_message.id];
    let rejections = store.get_rejections(&ids).unwrap();
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(
        rejections[&rejected.id],
        Rejection {
            count: 2,
            last: at("2026-05-01T06:02:00Z")
        }
    );
    assert!(store.get_rejections(&[]).unwrap().is_empty());
}

#[test]
fn kept_files_under_a_root_with_their_best_scores() {
    use acoupi_engine::data::PRIVACY_TAG_KEY;
    use acoupi_engine::store::{KeptFile, TagScore};
    let (_dir, store) = fresh();
    let d = deployment("site", "2026-06-01T00:00:00Z");
    let kept = recording(&d, "/rec/2026/a.wav", "2026-06-02T05:00:00Z");
    let silent = recording(&d, "/rec/b.wav", "2026-06-01T05:00:00Z");
    let elsewhere = recording(&d, "/records/c.wav", "2026-06-01T06:00:00Z");
    let deleted = recording(&d, "/rec/d.wav", "2026-06-01T07:00:00Z");
    for r in [&kept, &silent, &elsewhere, &deleted] {
        store.store_recording(r).unwrap();
    }
    store.update_recording_path(&deleted, None).unwrap();
    // Two outputs: blackbird best 0.9 by tag but 0.8125 by its detection; a second
    // detection scores 0.7 with tag 0.95 (min 0.7); a privacy marker is left out.
    store
        .store_model_output(&output(&kept, "2026-06-02T05:00:10Z"))
        .unwrap();
    let second = ModelOutput::new(
        "other",
        kept.clone(),
        vec![
            Detection::new(PredictionType::Event)
                .with_score(0.7)
                .unwrap()
                .with_tag(tag("species", "Turdus merula – Amsel", 0.95)),
            Detection::new(PredictionType::Event)
                .with_score(0.99)
                .unwrap()
                .with_tag(tag(PRIVACY_TAG_KEY, "human", 0.99)),
        ],
    );
    store.store_model_output(&second).unwrap();
    let files = store.get_kept_files(Path::new("/rec")).unwrap();
    let silent_file = KeptFile {
        recording_id: silent.id,
        path: PathBuf::from("/rec/b.wav"),
        created_on: silent.created_on,
        best_score: None,
        kept: false,
        tags: vec![],
    };
    assert_eq!(files.len(), 2, "not /records, not a deleted one: {files:?}");
    assert_eq!(files[0], silent_file, "oldest first");
    let a = &files[1];
    assert_eq!(
        (a.recording_id, a.best_score),
        (kept.id, Some(1.0)),
        "the untagged-score sequence detection is certain"
    );
    let blackbird = a
        .tags
        .iter()
        .find(|t| t.value == "Turdus merula – Amsel")
        .unwrap();
    assert_eq!(
        blackbird,
        &TagScore {
            key: "species".into(),
            value: "Turdus merula – Amsel".into(),
            score: 0.8125
        }
    );
    assert!(a.tags.iter().all(|t| t.key != PRIVACY_TAG_KEY));
}

#[test]
fn an_output_and_its_messages_are_stored_together_or_not_at_all() {
    let (_dir, store) = fresh();
    let d = deployment("site", "2026-06-01T00:00:00Z");
    let r = recording(&d, "/tmp/a.wav", "2026-06-01T05:00:00Z");
    let first = output(&r, "2026-06-01T05:00:01Z");
    let (m1, m2) = (
        message("one", "2026-06-01T05:00:02Z"),
        message("two", "2026-06-01T05:00:02Z"),
    );
    store
        .store_model_output_with_messages(&first, &[m1.clone(), m2.clone()], &store)
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM model_outputs"), 1);
    assert_eq!(count(&store, "SELECT count(*) FROM messages"), 2);
    // The same output again fails on its id: the new message must not be stored either.
    let m3 = message("three", "2026-06-01T05:00:03Z");
    assert!(
        store
            .store_model_output_with_messages(&first, std::slice::from_ref(&m3), &store)
            .is_err()
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM messages"),
        2,
        "nothing of the failed transaction stays"
    );
    // Another message store gets the messages; this one the output.
    let (_other_dir, other) = fresh();
    let second = output(&r, "2026-06-01T05:00:04Z");
    store
        .store_model_output_with_messages(&second, std::slice::from_ref(&m3), &other)
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM model_outputs"), 2);
    assert_eq!(
        (
            count(&store, "SELECT count(*) FROM messages"),
            count(&other, "SELECT count(*) FROM messages")
        ),
        (2, 1)
    );
}

#[test]
fn a_recordings_gaps_are_stored_updated_and_read_back() {
    let (_dir, store) = fresh();
    let d = deployment("roost", "2026-05-01T18:00:00Z");
    let mut r = recording(&d, "/tmp/gappy.wav", "2026-05-01T21:00:00Z");
    (r.gaps, r.lost_frames) = (2, 4_800);
    store.store_recording(&r).unwrap();
    assert_eq!(store.get_recordings(&[r.id]).unwrap(), vec![r.clone()]);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM recordings WHERE gaps = 2 AND lost_frames = 4800"
        ),
        1
    );
    // An update (e.g. after a restart found more) replaces them; a clean recording reads 0.
    r.gaps = 3;
    store.store_recording(&r).unwrap();
    let clean = recording(&d, "/tmp/clean.wav", "2026-05-01T21:00:03Z");
    store.store_recording(&clean).unwrap();
    let back = store.get_recordings(&[r.id, clean.id]).unwrap();
    assert_eq!(
        back.iter()
            .map(|x| (x.gaps, x.lost_frames))
            .collect::<Vec<_>>(),
        [(3, 4_800), (0, 0)]
    );
}

/// The plan DuckDB ran for `sql` on the store's connection (EXPLAIN ANALYZE's text:
/// DuckDB 1.5 decides on an index scan when the scan starts, so plain EXPLAIN always
/// shows a sequential one).
fn plan(store: &DuckDbStore, sql: &str) -> String {
    let conn = store.connection();
    let mut statement = conn.prepare(&format!("EXPLAIN ANALYZE {sql}")).unwrap();
    let lines: Vec<String> = statement
        .query_map([], |row| row.get::<_, String>(1))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    lines.join("\n")
}

/// Issue #19: in a store of 100,000 recordings a look-up by path seeks through the ART
/// index on `recordings.path` (EXPLAIN ANALYZE shows an index scan), and finds its
/// recording and output among them.
#[test]
fn path_look_ups_seek_through_the_index_in_a_big_store() {
    let (_dir, store) = fresh();
    let d = deployment("big", "2026-05-01T06:00:00Z");
    let r = recording(&d, "/data/audio/the one.wav", "2026-05-01T06:10:00Z");
    let o = output(&r, "2026-05-01T06:10:05Z");
    store.store_model_output(&o).unwrap();
    store
        .connection()
        .execute_batch(
            "INSERT INTO recordings (id, deployment_id, created_on, duration, samplerate, \
             audio_channels, time_expansion, path) \
             SELECT gen_random_uuid(), (SELECT id FROM deployments LIMIT 1), \
             TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_seconds(i), 3.0, 48000, 1, 1.0, \
             '/data/audio/rec-' || i || '.wav' FROM range(100000) t(i)",
        )
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM recordings"), 100_001);

    let path = PathBuf::from("/data/audio/the one.wav");
    let condition = rows::path_condition(&path).unwrap();
    let by_path = plan(
        &store,
        &format!("SELECT id FROM recordings r WHERE {condition}"),
    );
    assert!(by_path.contains("Index Scan"), "{by_path}");
    let full = plan(
        &store,
        &format!(
            "SELECT {} FROM recordings r JOIN deployments d ON d.id = r.deployment_id \
             WHERE {condition} ORDER BY r.created_on, r.id",
            rows::RECORDING_COLUMNS
        ),
    );
    assert!(full.contains("Index Scan"), "{full}");
    // A scan of the same table for a condition the index cannot answer, for contrast.
    let scan = plan(
        &store,
        "SELECT id FROM recordings r WHERE r.path LIKE '%one%'",
    );
    assert!(!scan.contains("Index Scan"), "{scan}");

    assert_eq!(
        store.get_recordings_by_path(&[path]).unwrap(),
        vec![(r, vec![o])]
    );
    let filler = store
        .get_recordings_by_path(&[PathBuf::from("/data/audio/rec-99999.wav")])
        .unwrap();
    assert_eq!(filler.len(), 1);
    assert!(filler[0].1.is_empty());
}

/// [`DuckDbStore::seal`]: the station's instance with external access off (the local
/// API's sandbox).
mod sealed {
    use super::*;

    /// A store opened for writing with a few outputs, sealed with `<dir>/scratch`.
    fn sealed_store() -> (tempfile::TempDir, DuckDbStore, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.duckdb");
        let store = DuckDbStore::open(&path).unwrap();
        store.seal(&dir.path().join("scratch")).unwrap();
        let d = deployment("sealed", "2026-05-01T05:00:00Z");
        for (i, time) in ["2026-05-01T06:00:00Z", "2026-05-01T07:00:00Z"]
            .iter()
            .enumerate()
        {
            let r = recording(&d, &format!("/audio/{i}.wav"), time);
            store.store_model_output(&output(&r, time)).unwrap();
        }
        (dir, store, path)
    }

    fn query_text(store: &DuckDbStore, sql: &str) -> Result<String, StoreError> {
        let mut out = Vec::new();
        store.query_sealed(sql, QueryFormat::Csv, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn sealed_station_still_records_checkpoints_spills_and_exports() {
        let (dir, store, path) = sealed_store();
        // Records after sealing.
        let d = deployment("sealed", "2026-05-01T05:00:00Z");
        let r = recording(&d, "/audio/late.wav", "2026-05-01T08:00:00Z");
        store
            .store_model_output(&output(&r, "2026-05-01T08:00:00Z"))
            .unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM recordings"), 3);
        store.connection().execute_batch("CHECKPOINT").unwrap();
        // Spills: a sort of ~150 MB under a 40 MiB cap runs only through `<store>.tmp/`.
        store.limit_memory(40).unwrap();
        let sorted: i64 = store
            .connection()
            .query_row(
                "SELECT count(*) FROM (SELECT repeat('x', 100) || range AS s FROM range(1500000) ORDER BY s DESC)",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(sorted, 1_500_000);
        // Exports into the scratch folder, the same files as an export after the close.
        let mut inside = Vec::new();
        for (format, name) in [
            (ExportFormat::Csv, "d.csv"),
            (ExportFormat::Parquet, "d.parquet"),
            (ExportFormat::Raven, "d.txt"),
        ] {
            let (file, rows) = store
                .export_sealed(ExportWhat::Detections, format, name, None, None)
                .unwrap();
            assert_eq!(
                file,
                dir.path()
                    .join("scratch")
                    .canonicalize()
                    .unwrap()
                    .join(name)
            );
            assert!(rows > 0);
            inside.push((format, name, std::fs::read(&file).unwrap(), rows));
        }
        assert!(
            store
                .export_sealed(
                    ExportWhat::Detections,
                    ExportFormat::Csv,
                    "../x.csv",
                    None,
                    None
                )
                .is_err()
        );
        drop(store);
        for (format, name, bytes, rows) in inside {
            let after = dir.path().join(format!("after-{name}"));
            let n = export(&path, ExportWhat::Detections, format, &after, None, None).unwrap();
            assert_eq!(n, rows, "{name}");
            if format != ExportFormat::Parquet {
                assert_eq!(std::fs::read(&after).unwrap(), bytes, "{name}");
            } else {
                let conn = Connection::open_in_memory().unwrap();
                let differ: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT count(*) FROM ((FROM read_parquet('{a}') EXCEPT ALL FROM read_parquet('{b}')) UNION ALL (FROM read_parquet('{b}') EXCEPT ALL FROM read_parquet('{a}')))",
                            a = after.display(),
                            b = dir.path().join("scratch").join(name).display()
                        ),
                        [],
                        |row| row.get(0),
                    )
                    .unwrap();
                assert_eq!(differ, 0);
            }
        }
    }

    #[test]
    fn sealed_queries_answer_like_acoupi_query() {
        let (_dir, store, path) = sealed_store();
        let sql = "SELECT tag_value, count(*) AS n FROM detections_flat GROUP BY 1 ORDER BY 1";
        let inside = query_text(&store, sql).unwrap();
        drop(store);
        let mut after = Vec::new();
        query(&path, sql, QueryFormat::Csv, &mut after).unwrap();
        assert_eq!(inside, String::from_utf8(after).unwrap());
        assert!(inside.lines().count() > 2, "{inside}");
    }

    #[test]
    fn sealed_queries_refuse_every_escape() {
        let (dir, store, _path) = sealed_store();
        let outside = dir.path().join("outside.csv");
        std::fs::write(&outside, "a,b\n1,2\n").unwrap();
        let o = outside.display();
        let escapes = [
            "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
            "FROM '/etc/passwd'".to_owned(),
            format!("FROM '{o}'"),
            format!("SELECT * FROM read_csv_auto('{o}')"),
            "SELECT * FROM read_text('/etc/passwd')".to_owned(),
            "SELECT * FROM read_blob('/etc/passwd')".to_owned(),
            "SELECT * FROM glob('/etc/*')".to_owned(),
            "SELECT getenv('HOME')".to_owned(),
            format!(
                "COPY (SELECT 1) TO '{}'",
                dir.path().join("x.csv").display()
            ),
            format!(
                "COPY recordings TO '{}/scratch/x.csv'",
                dir.path().display()
            ),
            format!(
                "ATTACH '{}' AS other",
                dir.path().join("other.duckdb").display()
            ),
            "ATTACH ':memory:' AS m".to_owned(),
            format!("EXPORT DATABASE '{}'", dir.path().join("e").display()),
            "INSTALL httpfs".to_owned(),
            "LOAD httpfs".to_owned(),
            "SET enable_external_access = true".to_owned(),
            "RESET enable_external_access".to_owned(),
            "SET allowed_directories = ['/']".to_owned(),
            "DELETE FROM recordings".to_owned(),
            "CREATE TABLE t (i INTEGER)".to_owned(),
            "SELECT 1; DELETE FROM recordings".to_owned(),
            "SELECT * FROM query('DELETE FROM recordings')".to_owned(),
            "CHECKPOINT".to_owned(),
            "PRAGMA enable_external_access".to_owned(),
            "CALL pragma_version()".to_owned(),
        ];
        for sql in &escapes {
            assert!(query_text(&store, sql).is_err(), "ran: {sql}");
        }
        // Nothing was written or attached, the settings hold.
        assert!(!dir.path().join("x.csv").exists());
        assert!(!dir.path().join("scratch/x.csv").exists());
        assert!(!dir.path().join("e").exists());
        assert_eq!(count(&store, "SELECT count(*) FROM recordings"), 2);
        let conn = store.reader().unwrap();
        for sql in [
            "SET enable_external_access = true",
            "SET allowed_directories = ['/']",
            "SET allowed_paths = ['/etc/passwd']",
        ] {
            assert!(
                conn.execute_batch(sql).is_err(),
                "ran on the instance: {sql}"
            );
        }
        let external: String = conn
            .query_row(
                "SELECT current_setting('enable_external_access')::VARCHAR",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(external, "false");
        // A write-capable table function inside the read-only transaction cannot write.
        assert!(query_text(&store, "SELECT 1 AS one").is_ok());
    }

    #[test]
    fn an_unsealed_store_refuses_user_sql() {
        let (_dir, store) = fresh();
        let mut out = Vec::new();
        assert!(
            store
                .query_sealed("SELECT 1", QueryFormat::Csv, &mut out)
                .is_err()
        );
    }
}

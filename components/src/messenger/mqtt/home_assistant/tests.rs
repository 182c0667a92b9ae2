//! The entities' configs and topics, the states derived from delivered messages, and the
//! day's counts from a real DuckDB store. The broker side (retained topics, the Last
//! Will, `acoupi ha remove`) is tested end to end against mosquitto (e2e `home_assistant`).

use std::sync::Arc;

use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::line_col;
use acoupi_engine::data::{BoundingBox, Message, MessageType};
use acoupi_engine::store::Store;
use acoupi_store_duckdb::DuckDbStore;
use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::testing::{detection, output};

fn entities(base: &str) -> Entities {
    Entities::new(&DiscoveryPrefix("homeassistant".into()), base, "garden")
}

#[test]
fn every_config_has_the_keys_of_home_assistants_discovery_and_its_own_topics() {
    let station = entities("birdnet/garden");
    assert_eq!(station.device_id, "acoupi_birdnet_garden");
    let mut unique_ids = BTreeSet::new();
    let mut state_topics = BTreeSet::new();
    for sensor in SENSORS {
        let config = station.config(sensor);
        for key in [
            "name",
            "unique_id",
            "state_topic",
            "availability_topic",
            "device",
            "icon",
        ] {
            assert!(config.get(key).is_some(), "{}: no {key}", sensor.object);
        }
        assert_eq!(config["availability_topic"], "birdnet/garden/availability");
        assert_eq!(config["device"]["identifiers"][0], "acoupi_birdnet_garden");
        assert_eq!(config["device"]["model"], "acoupi");
        assert_eq!(config["device"]["name"], "garden");
        assert_eq!(config["device"]["sw_version"], VERSION);
        assert_eq!(
            config.get("json_attributes_topic").is_some(),
            sensor.attributes,
            "{}",
            sensor.object
        );
        assert_eq!(
            station.config_topic(sensor.object),
            format!(
                "homeassistant/sensor/acoupi_birdnet_garden/{}/config",
                sensor.object
            )
        );
        assert!(unique_ids.insert(config["unique_id"].to_string()));
        assert!(state_topics.insert(config["state_topic"].to_string()));
    }
    assert_eq!(
        station.config(&SENSORS[0])["json_attributes_topic"],
        "birdnet/garden/state/last_species/attributes"
    );
    let heartbeat = SENSORS.iter().find(|s| s.object == LAST_HEARTBEAT).unwrap();
    assert_eq!(station.config(heartbeat)["device_class"], "timestamp");
}

#[test]
fn two_stations_share_no_topic_and_odd_characters_make_a_valid_device_id() {
    let north = entities("acoupi/north field");
    let south = entities("acoupi/south.field");
    assert_eq!(north.device_id, "acoupi_acoupi_north_field");
    assert_eq!(south.device_id, "acoupi_acoupi_south_field");
    let a: BTreeSet<String> = north.retained_topics().into_iter().collect();
    let b: BTreeSet<String> = south.retained_topics().into_iter().collect();
    assert!(
        a.is_disjoint(&b),
        "{:?}",
        a.intersection(&b).collect::<Vec<_>>()
    );
    // Configs, states, attributes of the two sensors with some, availability.
    assert_eq!(a.len(), SENSORS.len() * 2 + 2 + 1);
}

#[test]
fn a_bad_discovery_prefix_is_reported_at_its_line_and_column() {
    for (prefix, ok) in [
        ("\"homeassistant\"", true),
        ("\"home/assistant\"", true),
        ("\"home/+\"", false),
        ("\"\"", false),
        ("\"/homeassistant\"", false),
        ("\"home assistant\"", false),
    ] {
        let component =
            format!("host = \"127.0.0.1\"\nhome_assistant = {{ discovery_prefix = {prefix} }}");
        let loaded = crate::testing::messenger_pipeline(
            "messenger.mqtt",
            "broker",
            "garden",
            &component,
            "pipeline.toml",
        );
        match (loaded, ok) {
            (Ok(_), true) => {}
            (Err(errors), false) => {
                assert_eq!(errors.problems.len(), 1, "{prefix}: {errors}");
                let problem = &errors.problems[0];
                assert_eq!(problem.code, Code::InvalidValue, "{prefix}: {errors}");
                let at = line_col(&errors.source, problem.span.clone().unwrap().start);
                assert_eq!(at, (7, 39), "the value: {prefix}: {errors}");
            }
            (other, _) => panic!("{prefix}: {other:?}"),
        }
    }
    let errors = crate::testing::messenger_pipeline(
        "messenger.mqtt",
        "broker",
        "garden",
        "host = \"127.0.0.1\"\nhome_assistant = { prefix = \"ha\" }",
        "pipeline.toml",
    )
    .unwrap_err();
    assert_eq!(errors.problems[0].code, Code::UnknownKey, "{errors}");
}

fn detection_message(content: String) -> Message {
    Message::new(content).with_type(MessageType::Detection)
}

#[test]
fn a_detection_sets_the_last_species_with_its_attributes_and_an_older_one_does_not() {
    let mut state = StationState::new(chrono_tz::Europe::London, None);
    let mut blackbird = detection(
        0.9,
        &[
            ("species", "Turdus merula", 0.9),
            ("common_name", "Eurasian Blackbird", 0.9),
        ],
    );
    blackbird.location = Some(BoundingBox::new(1.5, 0.0, 3.0, 12_000.0).unwrap());
    let quiet = detection(0.4, &[("species", "Erithacus rubecula", 0.4)]);
    let newer = output(vec![quiet, blackbird.clone()]);
    let changed = state.delivered(
        &detection_message(serde_json::to_string(&newer).unwrap()),
        Utc::now(),
    );
    assert_eq!(changed.objects, [LAST_SPECIES], "no store: no day counts");
    assert_eq!(state.state(LAST_SPECIES), Some("Eurasian Blackbird"));
    let attributes: Value = serde_json::from_str(state.attributes(LAST_SPECIES).unwrap()).unwrap();
    assert_eq!(attributes["scientific_name"], "Turdus merula");
    assert_eq!(attributes["confidence"], 0.9);
    assert_eq!(attributes["recording_id"], newer.recording.id.to_string());
    assert_eq!(attributes["detection_id"], blackbird.id.to_string());
    assert_eq!(attributes["model"], "test_model");
    let time = DateTime::parse_from_rfc3339(attributes["time"].as_str().unwrap()).unwrap();
    assert_eq!(
        time.with_timezone(&Utc),
        newer.recording.created_on + Duration::milliseconds(1500)
    );

    // An older detection delivered late (a backlog, a retry) leaves the last one.
    let mut older = output(vec![detection(0.8, &[("species", "Parus major", 0.8)])]);
    older.recording.created_on -= Duration::hours(1);
    state.delivered(
        &detection_message(serde_json::to_string(&older).unwrap()),
        Utc::now(),
    );
    assert_eq!(state.state(LAST_SPECIES), Some("Eurasian Blackbird"));
}

#[test]
fn a_birdnet_go_detection_sets_the_last_species() {
    let mut state = StationState::new(chrono_tz::Europe::London, None);
    let content = json!({
        "ScientificName": "Turdus merula", "CommonName": "Eurasian Blackbird",
        "Confidence": 0.91, "BeginTime": "2026-05-14T05:31:09+01:00",
        "detectionId": "d-1", "recordingId": "r-1",
    });
    state.delivered(&detection_message(content.to_string()), Utc::now());
    assert_eq!(state.state(LAST_SPECIES), Some("Eurasian Blackbird"));
    let attributes: Value = serde_json::from_str(state.attributes(LAST_SPECIES).unwrap()).unwrap();
    assert_eq!(
        attributes,
        json!({"scientific_name": "Turdus merula", "confidence": 0.91,
               "time": "2026-05-14T05:31:09+01:00", "recording_id": "r-1", "detection_id": "d-1"})
    );
}

#[test]
fn a_heartbeat_sets_the_health_sensors_and_the_cpu_temperature_appears_once_it_is_measured() {
    let mut state = StationState::new(chrono_tz::UTC, None);
    let heartbeat = |metrics: Value| {
        Message::new(
            json!({"sent_on": "2026-05-14T05:00:00+00:00", "device_id": "pi", "status": "OK", "metrics": metrics})
                .to_string(),
        )
        .with_type(MessageType::Heartbeat)
    };
    let entities = entities("acoupi/garden");
    let without = state.on_connect(&entities);
    assert!(
        !without.iter().any(|(t, _)| t.contains(CPU_TEMPERATURE)),
        "no temperature measured yet: no such entity"
    );
    let changed = state.delivered(
        &heartbeat(json!([
            {"name": "errors_since_last", "value": 2.0, "unit": "count"},
            {"name": "unsent_messages", "value": 7.0, "unit": "count"},
            {"name": "remaining_storage", "value": 123456789.0, "unit": "bytes"},
            {"name": "temperature_acpitz_temp1", "value": 30.0, "unit": "celsius"},
            {"name": "temperature_cpu_thermal_temp1", "value": 48.25, "unit": "celsius"},
        ])),
        Utc::now(),
    );
    assert!(changed.new_temperature);
    assert_eq!(state.state(ERRORS), Some("2"));
    assert_eq!(state.state(UNSENT), Some("7"));
    assert_eq!(state.state(FREE_DISK), Some("123456789"));
    assert_eq!(state.state(CPU_TEMPERATURE), Some("48.2"));
    assert_eq!(
        state.state(LAST_HEARTBEAT),
        Some("2026-05-14T05:00:00+00:00")
    );
    let with = state.on_connect(&entities);
    assert!(
        with.contains(&(
            entities.config_topic(CPU_TEMPERATURE),
            entities
                .config(
                    SENSORS
                        .iter()
                        .find(|s| s.object == CPU_TEMPERATURE)
                        .unwrap()
                )
                .to_string()
        ))
    );
    assert!(with.contains(&(entities.state_topic(UNSENT), "7".into())));
    assert_eq!(with[0], (entities.availability_topic(), "online".into()));

    let changed = state.delivered(
        &heartbeat(json!([{"name": "errors_since_last", "value": 0.0, "unit": "count"}])),
        Utc::now(),
    );
    assert!(!changed.new_temperature);
    assert_eq!(state.state(ERRORS), Some("0"));
}

#[test]
fn the_days_counts_come_from_the_store_survive_a_restart_and_start_again_at_local_midnight() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(DuckDbStore::open(&dir.path().join("s.duckdb")).unwrap());
    let keep = |out: &ModelOutput| {
        store.store_recording(&out.recording).unwrap();
        store.store_model_output(out).unwrap();
    };
    keep(&output(vec![
        detection(0.9, &[("species", "Turdus merula", 0.9)]),
        detection(0.8, &[("species", "Erithacus rubecula", 0.8)]),
        detection(0.9, &[("privacy", "voice", 0.9)]),
        detection(0.7, &[]),
    ]));
    let tz = chrono_tz::Europe::London;
    let mut state = StationState::new(tz, Some(store.clone()));
    let now = Utc::now();
    assert_eq!(state.refresh_day(now), [DETECTIONS_TODAY, SPECIES_TODAY]);
    assert_eq!(
        state.state(DETECTIONS_TODAY),
        Some("2"),
        "no privacy marker, no untagged"
    );
    assert_eq!(state.state(SPECIES_TODAY), Some("2"));

    keep(&output(vec![detection(
        0.9,
        &[("species", "Turdus merula", 0.9)],
    )]));
    let summary = Message::new("{}").with_type(MessageType::Summary);
    let later = Utc::now();
    let changed = state.delivered(&summary, later);
    assert_eq!(changed.objects, [DETECTIONS_TODAY, SPECIES_TODAY]);
    assert_eq!(
        state.state(DETECTIONS_TODAY),
        Some("3"),
        "each detection once"
    );
    assert_eq!(state.state(SPECIES_TODAY), Some("2"));
    let attributes: Value = serde_json::from_str(state.attributes(SPECIES_TODAY).unwrap()).unwrap();
    assert_eq!(
        attributes["species"],
        json!(["Erithacus rubecula", "Turdus merula"])
    );

    // A restart reads the same counts back.
    let mut restarted = StationState::new(tz, Some(store.clone()));
    restarted.refresh_day(Utc::now());
    assert_eq!(restarted.state(DETECTIONS_TODAY), Some("3"));

    // The next local day starts from zero.
    let tomorrow = local_midnight(tz, now.with_timezone(&tz).date_naive().succ_opt().unwrap())
        + Duration::minutes(1);
    state.refresh_day(tomorrow);
    assert_eq!(state.state(DETECTIONS_TODAY), Some("0"));
    assert_eq!(state.state(SPECIES_TODAY), Some("0"));
}

#[test]
fn local_midnight_follows_the_time_zone_and_dst() {
    let london = chrono_tz::Europe::London;
    let summer = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
    assert_eq!(
        local_midnight(london, summer),
        Utc.with_ymd_and_hms(2026, 6, 30, 23, 0, 0).unwrap()
    );
    let winter = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    assert_eq!(
        local_midnight(london, winter),
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    );
    // Santiago skips from 00:00 to 01:00 on its spring change (2026-09-06).
    let santiago = chrono_tz::America::Santiago;
    let skipped = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
    assert_eq!(
        local_midnight(santiago, skipped)
            .with_timezone(&santiago)
            .format("%H:%M")
            .to_string(),
        "01:00"
    );
}

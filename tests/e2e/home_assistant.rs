//! `messenger.mqtt`'s `home_assistant` against a real mosquitto on 127.0.0.1, read as Home
//! Assistant reads it (a fresh subscriber to `#` gets the retained topics): the discovery
//! configs and their keys, per-station state topics, the Last Will on SIGKILL, `online`
//! again on restart, the last species' attributes, `acoupi ha remove`.
//!
//! Without `/usr/sbin/mosquitto` (Debian's `mosquitto` package) the tests skip, unless
//! `ACOUPI_REQUIRE_MOSQUITTO` is set (CI), where they fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::run::demo_in;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// Every wait ends within this.
const PATIENCE: Duration = Duration::from_secs(20);

/// A mosquitto on a free port of 127.0.0.1 with a generated config, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Option<Mosquitto> {
        if !Path::new(MOSQUITTO).exists() {
            crate::skip_unless_required(
                "ACOUPI_REQUIRE_MOSQUITTO",
                "mosquitto is not installed (apt-get install mosquitto)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_local_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let broker = Mosquitto {
            child,
            port,
            _dir: dir,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < PATIENCE, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(broker)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The retained messages under `filter`, as a new subscriber gets them.
fn retained(port: u16, filter: &str) -> BTreeMap<String, String> {
    static CLIENTS: AtomicUsize = AtomicUsize::new(0);
    let id = format!(
        "e2e-ha-{}-{}",
        std::process::id(),
        CLIENTS.fetch_add(1, Ordering::Relaxed)
    );
    let (client, mut connection) = Client::new(MqttOptions::new(id, "127.0.0.1", port), 10);
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut subscribed = false;
    let mut out = BTreeMap::new();
    loop {
        let wait = if subscribed {
            Duration::from_millis(300)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match connection.recv_timeout(wait) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subscribed = true,
            Ok(Ok(Event::Incoming(Packet::Publish(publish)))) if publish.retain => {
                out.insert(
                    publish.topic.clone(),
                    String::from_utf8_lossy(&publish.payload).into_owned(),
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => panic!("subscriber: {error}"),
            Err(_) => {
                assert!(subscribed, "no SUBACK from mosquitto");
                break;
            }
        }
    }
    let _ = client.disconnect();
    out
}

/// Waits until the retained payload of `topic` is `want`.
fn wait_for(port: u16, topic: &str, want: &str) {
    let start = Instant::now();
    loop {
        let now = retained(port, topic);
        if now.get(topic).map(String::as_str) == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "`{topic}` is {:?}, not `{want}`",
            now.get(topic)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The demo station named `name` in `dir`, sending its detections and a heartbeat every
/// 2 s to the broker with `home_assistant = {}`.
fn station(dir: &Path, name: &str, port: u16) -> PathBuf {
    let pipeline = demo_in(dir);
    let mut table: toml::Table =
        toml::from_str(&std::fs::read_to_string(&pipeline).unwrap()).unwrap();
    table["deployment"]["name"] = name.into();
    let text = toml::to_string(&table).unwrap()
        + &format!(
            r#"
[components.broker]
type = "messenger.mqtt"
host = "127.0.0.1"
port = {port}
topic = "acoupi/{{deployment}}"
use_message_type = true
keep_alive = "1s"
timeout = "2s"
home_assistant = {{}}

[stages.send]
kind = "messaging"
messengers = ["broker"]
after = "manage"

[stages.heartbeat]
kind = "heartbeat"
messengers = ["broker"]
metrics = [{{ type = "metric.station" }}, {{ type = "metric.system", measure = ["disk", "temperature"] }}]
schedule = {{ every = "2s" }}
"#
        );
    std::fs::write(&pipeline, text).unwrap();
    pipeline
}

fn run_for(pipeline: &Path, seconds: &str) {
    crate::acoupi_ok(&[
        "run".as_ref(),
        pipeline.as_os_str(),
        "--for".as_ref(),
        seconds.as_ref(),
    ]);
}

fn count(dir: &Path, sql: &str) -> i64 {
    let db = duckdb::Connection::open(dir.join("station.duckdb")).unwrap();
    db.query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Tagged detections that are not privacy markers: what "detections today" counts.
const DETECTIONS: &str =
    "SELECT count(DISTINCT d.id) FROM detections d JOIN detection_tags t ON t.detection_id = d.id";

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn discovery_configs_are_retained_with_home_assistants_keys_and_a_detection_sets_the_last_species()
{
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pipeline = station(dir.path(), "garden", broker.port);
    run_for(&pipeline, "6s");

    let topics = retained(broker.port, "#");
    let device = "acoupi_acoupi_garden";
    let configs: Vec<(&String, Value)> = topics
        .iter()
        .filter(|(t, _)| t.starts_with(&format!("homeassistant/sensor/{device}/")))
        .map(|(t, p)| (t, json(p)))
        .collect();
    let objects: Vec<&str> = configs
        .iter()
        .map(|(t, _)| t.split('/').nth(3).unwrap())
        .collect();
    for object in [
        "last_species",
        "detections_today",
        "species_today",
        "errors",
        "unsent_messages",
        "free_disk",
        "last_heartbeat",
    ] {
        assert!(objects.contains(&object), "{object} in {objects:?}");
    }
    for (topic, config) in &configs {
        assert!(topic.ends_with("/config"), "{topic}");
        for key in [
            "name",
            "unique_id",
            "state_topic",
            "availability_topic",
            "device",
        ] {
            assert!(config.get(key).is_some(), "{topic}: no `{key}` in {config}");
        }
        assert_eq!(config["availability_topic"], "acoupi/garden/availability");
        assert_eq!(config["device"]["identifiers"][0], device);
        assert_eq!(config["device"]["model"], "acoupi");
        assert!(config["device"]["sw_version"].is_string());
        let state = config["state_topic"].as_str().unwrap();
        assert!(state.starts_with("acoupi/garden/state/"), "{state}");
    }
    assert_eq!(
        topics.get("acoupi/garden/availability").map(String::as_str),
        Some("offline"),
        "a clean stop says offline"
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT count(*) FROM messages WHERE content LIKE '%unique_id%' OR content LIKE '%online%'"
        ),
        0,
        "no discovery config or availability went through the outbox"
    );

    // The last species and its attributes: a chirp of a recording in the store.
    assert_eq!(
        topics
            .get("acoupi/garden/state/last_species")
            .map(String::as_str),
        Some("chirp")
    );
    let attributes = json(&topics["acoupi/garden/state/last_species/attributes"]);
    let recording = attributes["recording_id"].as_str().unwrap();
    assert_eq!(
        count(
            dir.path(),
            &format!("SELECT count(*) FROM recordings WHERE id = '{recording}'")
        ),
        1,
        "{attributes}"
    );
    let detection = attributes["detection_id"].as_str().unwrap();
    let confidence = attributes["confidence"].as_f64().unwrap();
    let stored: f64 = duckdb::Connection::open(dir.path().join("station.duckdb"))
        .unwrap()
        .query_row(
            &format!("SELECT detection_score FROM detections WHERE id = '{detection}'"),
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!((stored - confidence).abs() < 1e-9, "{attributes}");
    assert!(attributes["time"].is_string(), "{attributes}");

    let detections = count(dir.path(), DETECTIONS);
    assert!(detections > 0);
    assert_eq!(
        topics["acoupi/garden/state/detections_today"],
        detections.to_string()
    );
    assert_eq!(topics["acoupi/garden/state/species_today"], "1");
    assert!(topics.contains_key("acoupi/garden/state/last_heartbeat"));
    assert!(
        topics["acoupi/garden/state/free_disk"]
            .parse::<u64>()
            .unwrap()
            > 0,
        "{topics:?}"
    );
}

#[test]
fn two_stations_on_one_broker_keep_their_own_state_and_ha_remove_deletes_only_its_own() {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let (north_dir, south_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let north = station(north_dir.path(), "north", broker.port);
    let south = station(south_dir.path(), "south", broker.port);
    let first = std::thread::spawn(move || run_for(&north, "4s"));
    run_for(&south, "9s");
    first.join().unwrap();

    let topics = retained(broker.port, "#");
    for (name, dir) in [("north", north_dir.path()), ("south", south_dir.path())] {
        let detections = count(dir, DETECTIONS);
        assert_eq!(
            topics[&format!("acoupi/{name}/state/detections_today")],
            detections.to_string(),
            "{name} has its own count"
        );
        let config = json(
            &topics[&format!("homeassistant/sensor/acoupi_acoupi_{name}/detections_today/config")],
        );
        assert_eq!(
            config["state_topic"],
            format!("acoupi/{name}/state/detections_today")
        );
    }
    assert_ne!(
        count(north_dir.path(), DETECTIONS),
        count(south_dir.path(), DETECTIONS),
        "the two stations ran for different times, so a shared topic would show"
    );

    let north = north_dir.path().join("demo.toml");
    let stdout = crate::acoupi_ok(&["ha".as_ref(), "remove".as_ref(), north.as_os_str()]);
    assert!(stdout.contains("acoupi_acoupi_north"), "{stdout}");
    let after = retained(broker.port, "#");
    let left: Vec<&String> = after.keys().filter(|t| t.contains("north")).collect();
    assert!(
        left.is_empty(),
        "north's retained topics are gone: {left:?}"
    );
    assert_eq!(
        after.keys().filter(|t| t.contains("south")).count(),
        topics.keys().filter(|t| t.contains("south")).count(),
        "south keeps all of its own"
    );
}

#[test]
fn sigkill_flips_availability_to_offline_by_the_will_and_a_restart_publishes_online_and_the_configs()
 {
    let Some(broker) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pipeline = station(dir.path(), "garden", broker.port);
    let availability = "acoupi/garden/availability";
    let mut running = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("run")
        .arg(&pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(broker.port, availability, "online");
    running.kill().unwrap(); // SIGKILL
    running.wait().unwrap();
    wait_for(broker.port, availability, "offline");

    // Remove a config as a user would in Home Assistant's MQTT settings: the restart
    // publishes every config again.
    let config = "homeassistant/sensor/acoupi_acoupi_garden/last_species/config";
    let (client, mut connection) = Client::new(
        MqttOptions::new("e2e-ha-clear", "127.0.0.1", broker.port),
        10,
    );
    client
        .publish(config, QoS::AtLeastOnce, true, Vec::new())
        .unwrap();
    for event in connection.iter() {
        if matches!(event, Ok(Event::Incoming(Packet::PubAck(_)))) {
            break;
        }
    }
    drop(client);
    assert!(!retained(broker.port, config).contains_key(config));

    let mut restarted = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("run")
        .arg(&pipeline)
        .args(["--for", "8s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(broker.port, availability, "online");
    assert!(retained(broker.port, config).contains_key(config));
    assert!(restarted.wait().unwrap().success());
    wait_for(broker.port, availability, "offline");
}

//! `messenger.mqtt`'s `home_assistant` option: Home Assistant's MQTT discovery
//! (<https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery>) of one device per
//! station, its availability and one retained state topic per sensor. It owns the option,
//! the entities and their topics, the sensors' state and the connection that publishes
//! them; `acoupi ha remove` uses [`remove`].
//!
//! With `<topic>` the messenger's topic (e.g. `birdnet/garden`) and `<device>` the device
//! id (`acoupi_` and `<topic>` with every character but ASCII letters, digits, `_` and `-`
//! written `_`: `acoupi_birdnet_garden`; it depends only on the pipeline file, so it stays
//! the same across restarts and new deployments, and `acoupi ha remove` needs no store):
//!
//! - `<prefix>/sensor/<device>/<object>/config`: each sensor's discovery config, retained,
//!   published on each connect (never stored in the outbox).
//! - `<topic>/availability`: `online` (retained) on each connect, `offline` on a clean
//!   stop, and `offline` as the connection's Last Will (the broker publishes it when the
//!   station dies).
//! - `<topic>/state/<object>` (and `<topic>/state/<object>/attributes`): one retained
//!   topic per sensor of this station, never one shared topic filtered by a template.
//!
//! States follow the messages the messenger delivers: a state update is published only
//! after the broker acknowledged the message it comes from (the message itself went
//! through the outbox as always), so it is never the only copy. Detection messages
//! (both dialects) set the last species; heartbeats the health sensors; detection,
//! heartbeat and summary messages refresh the day's counts, which are read from the
//! store (the day's stored detections, privacy markers left out), so they survive a
//! restart; they start again at local midnight in the deployment's time zone.
//!
//! The entities go out on a second connection (client id `<client id>-ha`) that holds
//! the Last Will: the messenger's own connection keeps its one-publish-one-answer
//! accounting untouched, and the retained state is re-published whole on each connect.
//! Only a running station opens it (a build without a store, as `acoupi validate
//! --build`, publishes nothing, so checking a pipeline never marks a station offline).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acoupi_engine::backoff::Backoff;
use acoupi_engine::data::{Message, MessageType, ModelOutput, PredictedTag};
use acoupi_engine::store::Store;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rumqttc::{AsyncClient, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS};
use serde_json::{Value, json};
use uuid::Uuid;

/// `home_assistant = { discovery_prefix = "homeassistant" }`: publish Home Assistant's
/// MQTT discovery configs, availability and per-sensor state for this station.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HomeAssistantSettings {
    /// The discovery prefix Home Assistant listens on (its MQTT integration's setting).
    #[serde(default = "default_prefix")]
    #[schemars(default = "default_prefix")]
    pub discovery_prefix: DiscoveryPrefix,
}

fn default_prefix() -> DiscoveryPrefix {
    DiscoveryPrefix("homeassistant".into())
}

/// A discovery prefix: topic levels without wildcards, no leading or trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(transparent)]
pub struct DiscoveryPrefix(
    #[schemars(length(min = 1), regex(pattern = r"^[^+#/\s]+(/[^+#/\s]+)*$"))] pub String,
);

impl<'de> serde::Deserialize<'de> for DiscoveryPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Err(serde::de::Error::custom("the discovery prefix is empty"));
        }
        if text.contains(['+', '#']) || text.contains(char::is_whitespace) {
            return Err(serde::de::Error::custom(format!(
                "invalid discovery prefix `{text}`: no MQTT wildcard (`+`, `#`) or space"
            )));
        }
        if text.starts_with('/') || text.ends_with('/') || text.contains("//") {
            return Err(serde::de::Error::custom(format!(
                "invalid discovery prefix `{text}`: no empty topic level (write e.g. \"homeassistant\")"
            )));
        }
        Ok(DiscoveryPrefix(text))
    }
}

/// One sensor entity of a station.
#[derive(Debug)]
pub struct Sensor {
    /// The last level of its topics and of its unique id.
    pub object: &'static str,
    pub name: &'static str,
    icon: &'static str,
    unit: Option<&'static str>,
    device_class: Option<&'static str>,
    state_class: Option<&'static str>,
    diagnostic: bool,
    /// It has a `json_attributes_topic`.
    pub attributes: bool,
}

const LAST_SPECIES: &str = "last_species";
const DETECTIONS_TODAY: &str = "detections_today";
const SPECIES_TODAY: &str = "species_today";
const ERRORS: &str = "errors";
const UNSENT: &str = "unsent_messages";
const FREE_DISK: &str = "free_disk";
const CPU_TEMPERATURE: &str = "cpu_temperature";
const LAST_HEARTBEAT: &str = "last_heartbeat";

/// Every sensor of a station, in the order of the docs' table.
pub const SENSORS: &[Sensor] = &[
    Sensor {
        object: LAST_SPECIES,
        name: "Last species",
        icon: "mdi:bird",
        unit: None,
        device_class: None,
        state_class: None,
        diagnostic: false,
        attributes: true,
    },
    Sensor {
        object: DETECTIONS_TODAY,
        name: "Detections today",
        icon: "mdi:counter",
        unit: Some("detections"),
        device_class: None,
        state_class: Some("total_increasing"),
        diagnostic: false,
        attributes: false,
    },
    Sensor {
        object: SPECIES_TODAY,
        name: "Species today",
        icon: "mdi:format-list-bulleted",
        unit: Some("species"),
        device_class: None,
        state_class: Some("measurement"),
        diagnostic: false,
        attributes: true,
    },
    Sensor {
        object: ERRORS,
        name: "Errors since last heartbeat",
        icon: "mdi:alert-circle-outline",
        unit: Some("errors"),
        device_class: None,
        state_class: Some("measurement"),
        diagnostic: true,
        attributes: false,
    },
    Sensor {
        object: UNSENT,
        name: "Unsent messages",
        icon: "mdi:email-arrow-right-outline",
        unit: Some("messages"),
        device_class: None,
        state_class: Some("measurement"),
        diagnostic: true,
        attributes: false,
    },
    Sensor {
        object: FREE_DISK,
        name: "Free disk",
        icon: "mdi:harddisk",
        unit: Some("B"),
        device_class: Some("data_size"),
        state_class: Some("measurement"),
        diagnostic: true,
        attributes: false,
    },
    Sensor {
        object: CPU_TEMPERATURE,
        name: "CPU temperature",
        icon: "mdi:thermometer",
        unit: Some("°C"),
        device_class: Some("temperature"),
        state_class: Some("measurement"),
        diagnostic: true,
        attributes: false,
    },
    Sensor {
        object: LAST_HEARTBEAT,
        name: "Last heartbeat",
        icon: "mdi:heart-pulse",
        unit: None,
        device_class: Some("timestamp"),
        state_class: None,
        diagnostic: true,
        attributes: false,
    },
];

/// The acoupi version in the device's `sw_version`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A station's Home Assistant device and the topics of its entities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entities {
    prefix: String,
    /// The messenger's topic, under which the state and availability topics live.
    base: String,
    pub device_id: String,
    device_name: String,
}

impl Entities {
    /// The entities of a messenger publishing to `base` for the deployment `name`.
    pub fn new(prefix: &DiscoveryPrefix, base: &str, name: &str) -> Entities {
        let id: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Entities {
            prefix: prefix.0.clone(),
            base: base.to_owned(),
            device_id: format!("acoupi_{id}"),
            device_name: name.to_owned(),
        }
    }

    pub fn availability_topic(&self) -> String {
        format!("{}/availability", self.base)
    }

    pub fn state_topic(&self, object: &str) -> String {
        format!("{}/state/{object}", self.base)
    }

    pub fn attributes_topic(&self, object: &str) -> String {
        format!("{}/state/{object}/attributes", self.base)
    }

    pub fn config_topic(&self, object: &str) -> String {
        format!("{}/sensor/{}/{object}/config", self.prefix, self.device_id)
    }

    /// The discovery config of one sensor, with the keys of Home Assistant's MQTT sensor.
    pub fn config(&self, sensor: &Sensor) -> Value {
        let mut config = json!({
            "name": sensor.name,
            "unique_id": format!("{}_{}", self.device_id, sensor.object),
            "state_topic": self.state_topic(sensor.object),
            "availability_topic": self.availability_topic(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "icon": sensor.icon,
            "qos": 1,
            "device": {
                "identifiers": [self.device_id],
                "name": self.device_name,
                "model": "acoupi",
                "manufacturer": "acoupi",
                "sw_version": VERSION,
            },
            "origin": {
                "name": "acoupi",
                "sw_version": VERSION,
                "support_url": "https://acoupi.github.io/acoupi/",
            },
        });
        let mut set = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                config[key] = value.into();
            }
        };
        set("unit_of_measurement", sensor.unit);
        set("device_class", sensor.device_class);
        set("state_class", sensor.state_class);
        set("entity_category", sensor.diagnostic.then_some("diagnostic"));
        if sensor.attributes {
            config["json_attributes_topic"] = self.attributes_topic(sensor.object).into();
        }
        config
    }

    /// Every retained topic the station's entities can leave on a broker: configs, states,
    /// attributes, availability (what `acoupi ha remove` empties).
    pub fn retained_topics(&self) -> Vec<String> {
        let mut topics = Vec::new();
        for sensor in SENSORS {
            topics.push(self.config_topic(sensor.object));
            topics.push(self.state_topic(sensor.object));
            if sensor.attributes {
                topics.push(self.attributes_topic(sensor.object));
            }
        }
        topics.push(self.availability_topic());
        topics
    }
}

/// A retained publish: topic and payload.
pub type Publication = (String, String);

/// The day's counts, read from the store.
#[derive(Debug)]
struct Day {
    date: NaiveDate,
    detections: HashSet<Uuid>,
    species: BTreeSet<String>,
    /// Outputs created up to here are counted (those stored a little late are found again
    /// by looking back [`LOOK_BACK`] each time; the ids keep each detection counted once).
    counted_until: DateTime<Utc>,
}

/// How far before the last count each refresh looks again, for outputs stored after a
/// refresh that were created before it.
const LOOK_BACK: chrono::Duration = chrono::Duration::minutes(5);

/// The sensors' current values, from the delivered messages and the store.
pub struct StationState {
    timezone: Tz,
    store: Option<Arc<dyn Store>>,
    states: BTreeMap<&'static str, String>,
    attributes: BTreeMap<&'static str, String>,
    /// When the detection behind the last species happened.
    last_detection: Option<DateTime<Utc>>,
    day: Option<Day>,
}

/// What a delivered message changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changed {
    pub objects: Vec<&'static str>,
    /// The CPU temperature has its first value: its config goes out now.
    pub new_temperature: bool,
}

impl StationState {
    pub fn new(timezone: Tz, store: Option<Arc<dyn Store>>) -> StationState {
        StationState {
            timezone,
            store,
            states: BTreeMap::new(),
            attributes: BTreeMap::new(),
            last_detection: None,
            day: None,
        }
    }

    /// The current value of a sensor's state, if it has one.
    #[cfg(test)]
    pub fn state(&self, object: &str) -> Option<&str> {
        self.states.get(object).map(String::as_str)
    }

    /// The current attributes (JSON) of a sensor, if it has some.
    #[cfg(test)]
    pub fn attributes(&self, object: &str) -> Option<&str> {
        self.attributes.get(object).map(String::as_str)
    }

    fn has_temperature(&self) -> bool {
        self.states.contains_key(CPU_TEMPERATURE)
    }

    /// Takes in a message the broker acknowledged.
    pub fn delivered(&mut self, message: &Message, now: DateTime<Utc>) -> Changed {
        let mut changed = Changed::default();
        let content = message.content.as_text().and_then(|text| {
            serde_json::from_str::<Value>(text)
                .map_err(
                    |error| tracing::debug!(%error, "Home Assistant: a message that is not JSON"),
                )
                .ok()
        });
        match (message.message_type, content) {
            (Some(MessageType::Detection), Some(content)) => {
                if let Some(last) = last_detection(&content, self.timezone)
                    && self.last_detection.is_none_or(|t| t <= last.time)
                {
                    self.last_detection = Some(last.time);
                    self.states.insert(LAST_SPECIES, last.species);
                    self.attributes
                        .insert(LAST_SPECIES, last.attributes.to_string());
                    changed.objects.push(LAST_SPECIES);
                }
                changed.objects.extend(self.refresh_day(now));
            }
            (Some(MessageType::Heartbeat), Some(content)) => {
                let had_temperature = self.has_temperature();
                changed.objects.extend(self.heartbeat(&content));
                changed.new_temperature = !had_temperature && self.has_temperature();
                changed.objects.extend(self.refresh_day(now));
            }
            (Some(MessageType::Summary), _) => changed.objects.extend(self.refresh_day(now)),
            _ => {}
        }
        changed
    }

    /// The health sensors from a heartbeat's metrics (acoupi's heartbeat JSON).
    fn heartbeat(&mut self, content: &Value) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if let Some(sent_on) = content["sent_on"].as_str() {
            self.states.insert(LAST_HEARTBEAT, sent_on.to_owned());
            changed.push(LAST_HEARTBEAT);
        }
        let metrics: Vec<(&str, f64)> = content["metrics"]
            .as_array()
            .map(|metrics| {
                metrics
                    .iter()
                    .filter_map(|m| Some((m["name"].as_str()?, m["value"].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let value = |name: &str| metrics.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        for (object, metric) in [
            (ERRORS, "errors_since_last"),
            (UNSENT, "unsent_messages"),
            (FREE_DISK, "remaining_storage"),
        ] {
            if let Some(v) = value(metric) {
                self.states.insert(object, format!("{}", v.round() as i64));
                changed.push(object);
            }
        }
        if let Some(celsius) = cpu_temperature(&metrics) {
            self.states.insert(CPU_TEMPERATURE, format!("{celsius:.1}"));
            changed.push(CPU_TEMPERATURE);
        }
        changed
    }

    /// Brings the day's counts up to `now` from the store (a new day starts from zero at
    /// local midnight); the objects whose state it set. Nothing without a store.
    pub fn refresh_day(&mut self, now: DateTime<Utc>) -> Vec<&'static str> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        let date = now.with_timezone(&self.timezone).date_naive();
        let midnight = local_midnight(self.timezone, date);
        let day = match self.day.take() {
            Some(day) if day.date == date => day,
            _ => Day {
                date,
                detections: HashSet::new(),
                species: BTreeSet::new(),
                counted_until: midnight,
            },
        };
        let mut day = day;
        // `(start, end]`: an output created at midnight exactly counts.
        let start =
            (day.counted_until - LOOK_BACK).max(midnight) - chrono::Duration::microseconds(1);
        match store.get_model_outputs_between(start, now) {
            Ok(outputs) => {
                for output in &outputs {
                    for detection in &output.detections {
                        if detection.is_privacy_marker() || detection.tags.is_empty() {
                            continue;
                        }
                        if day.detections.insert(detection.id)
                            && let Some(names) = species(&detection.tags)
                        {
                            day.species.insert(names.common);
                        }
                    }
                }
                day.counted_until = now;
            }
            Err(error) => {
                tracing::warn!(%error, "Home Assistant: cannot read today's detections from the store");
            }
        }
        self.states
            .insert(DETECTIONS_TODAY, day.detections.len().to_string());
        self.states
            .insert(SPECIES_TODAY, day.species.len().to_string());
        self.attributes.insert(
            SPECIES_TODAY,
            json!({ "date": date.to_string(), "species": day.species }).to_string(),
        );
        self.day = Some(day);
        vec![DETECTIONS_TODAY, SPECIES_TODAY]
    }

    /// The state (and attributes) publications of these objects.
    pub fn publications(&self, entities: &Entities, objects: &[&'static str]) -> Vec<Publication> {
        let mut out = Vec::new();
        for object in objects {
            if let Some(state) = self.states.get(object) {
                out.push((entities.state_topic(object), state.clone()));
            }
            if let Some(attributes) = self.attributes.get(object) {
                out.push((entities.attributes_topic(object), attributes.clone()));
            }
        }
        out
    }

    /// Everything published at connect: availability, the configs (the CPU temperature's
    /// once a heartbeat had one) and every state known.
    pub fn on_connect(&self, entities: &Entities) -> Vec<Publication> {
        let mut out = vec![(entities.availability_topic(), "online".to_owned())];
        for sensor in SENSORS {
            if sensor.object != CPU_TEMPERATURE || self.has_temperature() {
                out.push((
                    entities.config_topic(sensor.object),
                    entities.config(sensor).to_string(),
                ));
            }
        }
        let objects: Vec<&'static str> = SENSORS.iter().map(|s| s.object).collect();
        out.extend(self.publications(entities, &objects));
        out
    }
}

/// Local midnight of `date` in `tz` as UTC (the first hour that exists when a DST change
/// skips midnight).
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    (0..4)
        .find_map(|hour| {
            date.and_hms_opt(hour, 0, 0)
                .and_then(|t| tz.from_local_datetime(&t).earliest())
        })
        .map_or_else(
            || date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            |t| t.with_timezone(&Utc),
        )
}

/// A detection's names: the common name (shown) and the scientific name.
struct Names {
    common: String,
    scientific: String,
}

/// The best `species` tag (else the best tag) and the best `common_name` tag (else the
/// scientific name), as the `birdnet-go` dialect names them.
fn species(tags: &[PredictedTag]) -> Option<Names> {
    let best = |key: Option<&str>| {
        tags.iter()
            .filter(|t| key.is_none_or(|key| t.tag.key == key))
            .max_by(|a, b| a.confidence_score.total_cmp(&b.confidence_score))
            .map(|t| t.tag.value.clone())
    };
    let scientific = best(Some("species")).or_else(|| best(None))?;
    let common = best(Some("common_name")).unwrap_or_else(|| scientific.clone());
    Some(Names { common, scientific })
}

/// The last species of a detection message.
struct LastDetection {
    species: String,
    time: DateTime<Utc>,
    attributes: Value,
}

/// The best detection of a detection message, in either dialect: BirdNET-Go's keys, or
/// acoupi's ModelOutput JSON.
fn last_detection(content: &Value, timezone: Tz) -> Option<LastDetection> {
    if let Some(scientific) = content["ScientificName"].as_str() {
        let begin = content["BeginTime"].as_str()?;
        let time = DateTime::parse_from_rfc3339(begin)
            .ok()?
            .with_timezone(&Utc);
        let common = content["CommonName"]
            .as_str()
            .filter(|c| !c.is_empty())
            .unwrap_or(scientific);
        return Some(LastDetection {
            species: common.to_owned(),
            time,
            attributes: json!({
                "scientific_name": scientific,
                "confidence": content["Confidence"],
                "time": begin,
                "recording_id": content["recordingId"],
                "detection_id": content["detectionId"],
            }),
        });
    }
    let output: ModelOutput = serde_json::from_value(content.clone()).ok()?;
    let detection = output
        .detections
        .iter()
        .filter(|d| !d.is_privacy_marker())
        .max_by(|a, b| a.detection_score.total_cmp(&b.detection_score))?;
    let names = species(&detection.tags)?;
    let start = detection
        .location
        .as_ref()
        .map_or(0.0, |b| b.coordinates()[0]);
    let time =
        output.recording.created_on + chrono::Duration::microseconds((start * 1e6).round() as i64);
    Some(LastDetection {
        species: names.common,
        time,
        attributes: json!({
            "scientific_name": names.scientific,
            "confidence": detection.detection_score,
            "time": time.with_timezone(&timezone).to_rfc3339(),
            "recording_id": output.recording.id.to_string(),
            "detection_id": detection.id.to_string(),
            "model": output.name_model,
        }),
    })
}

/// The CPU's temperature among a heartbeat's `temperature_<sensor>` metrics: a sensor
/// named for the CPU (`cpu`, then `package`, `soc`, `core`), else the first one.
fn cpu_temperature(metrics: &[(&str, f64)]) -> Option<f64> {
    let temperatures: Vec<(&str, f64)> = metrics
        .iter()
        .filter_map(|(name, v)| Some((name.strip_prefix("temperature_")?, *v)))
        .collect();
    ["cpu", "package", "soc", "core"]
        .iter()
        .find_map(|want| temperatures.iter().find(|(n, _)| n.contains(want)))
        .or(temperatures.first())
        .map(|(_, v)| *v)
}

/// The first wait before reconnecting, doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a clean stop waits for `offline` to go out.
const STOP_WAIT: Duration = Duration::from_secs(3);
/// Room in rumqttc's request queue (a connect publishes about twenty).
const QUEUE: usize = 256;

/// The connection that publishes a station's entities (see the module docs).
pub struct Publisher {
    client: AsyncClient,
    entities: Entities,
    state: Arc<Mutex<StationState>>,
    /// Closed when the connection thread ends.
    done: Mutex<Option<mpsc::Receiver<()>>>,
}

impl Publisher {
    /// Opens the connection (`options` are the messenger's, given another client id and
    /// the Last Will here) on its own thread.
    pub fn start(
        mut options: MqttOptions,
        entities: Entities,
        state: StationState,
        instance: &str,
    ) -> Result<Publisher, String> {
        options
            .set_client_id(format!("{}-ha", options.client_id()))
            .set_clean_session(true)
            .set_last_will(LastWill::new(
                entities.availability_topic(),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        let (client, eventloop) = AsyncClient::new(options, QUEUE);
        let state = Arc::new(Mutex::new(state));
        let (done_tx, done) = mpsc::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Home Assistant connection thread: {e}"))?;
        let (c, e, s) = (client.clone(), entities.clone(), state.clone());
        std::thread::Builder::new()
            .name(format!("mqtt-ha {instance}"))
            .spawn(move || {
                let _done = done_tx;
                runtime.block_on(drive(eventloop, c, e, s));
            })
            .map_err(|e| format!("cannot start the Home Assistant connection thread: {e}"))?;
        Ok(Publisher {
            client,
            entities,
            state,
            done: Mutex::new(Some(done)),
        })
    }

    /// Updates the states from a message the broker acknowledged.
    pub fn delivered(&self, message: &Message) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let changed = state.delivered(message, Utc::now());
        let mut out = Vec::new();
        if changed.new_temperature
            && let Some(sensor) = SENSORS.iter().find(|s| s.object == CPU_TEMPERATURE)
        {
            out.push((
                self.entities.config_topic(CPU_TEMPERATURE),
                self.entities.config(sensor).to_string(),
            ));
        }
        out.extend(state.publications(&self.entities, &changed.objects));
        drop(state);
        publish(&self.client, out);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // A clean stop: the day's counts as the store has them at the end, `offline`
        // (retained), then a DISCONNECT, which tells the broker not to publish the will.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let objects = state.refresh_day(Utc::now());
        let mut out = state.publications(&self.entities, &objects);
        drop(state);
        out.push((self.entities.availability_topic(), "offline".to_owned()));
        publish(&self.client, out);
        let _ = self.client.try_disconnect();
        if let Some(done) = self.done.lock().ok().and_then(|mut d| d.take()) {
            // Err(Disconnected) when the thread ended, Err(Timeout) after the wait.
            let _ = done.recv_timeout(STOP_WAIT);
        }
    }
}

/// Queues retained QoS 1 publishes; a full queue drops the rest (everything is published
/// again at the next connect).
fn publish(client: &AsyncClient, publications: Vec<Publication>) {
    for (topic, payload) in publications {
        if let Err(error) = client.try_publish(topic, QoS::AtLeastOnce, true, payload) {
            tracing::debug!(%error, "Home Assistant: a state update was dropped");
            return;
        }
    }
}

/// Drives the connection: on each connect, availability, configs and every state; at
/// local midnight, the day's counts start again. Ends once the DISCONNECT of a clean stop
/// is sent.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    client: AsyncClient,
    entities: Entities,
    state: Arc<Mutex<StationState>>,
) {
    let midnight = tokio::spawn(midnights(client.clone(), entities.clone(), state.clone()));
    let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff.reset();
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                state.refresh_day(Utc::now());
                let out = state.on_connect(&entities);
                drop(state);
                publish(&client, out);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(error) => {
                let wait = backoff.fail();
                tracing::debug!(error = %acoupi_engine::error_chain(&error), retry_in = ?wait, "Home Assistant connection down");
                tokio::time::sleep(wait).await;
            }
        }
    }
    midnight.abort();
}

/// At each local midnight, the day's counts start from zero.
async fn midnights(client: AsyncClient, entities: Entities, state: Arc<Mutex<StationState>>) {
    loop {
        let now = Utc::now();
        let timezone = state.lock().unwrap_or_else(|e| e.into_inner()).timezone;
        let today = now.with_timezone(&timezone).date_naive();
        let next = today
            .succ_opt()
            .map_or(now + chrono::Duration::days(1), |d| {
                local_midnight(timezone, d)
            });
        let wait = (next - now).to_std().unwrap_or(Duration::from_secs(1));
        tokio::time::sleep(wait + Duration::from_millis(10)).await;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let objects = state.refresh_day(Utc::now());
        let out = state.publications(&entities, &objects);
        drop(state);
        publish(&client, out);
    }
}

/// Why `acoupi ha remove` could not empty a station's topics.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("{0}")]
    Options(String),
    #[error("cannot connect to the MQTT broker {broker}: {reason}")]
    Connection { broker: String, reason: String },
    #[error("the MQTT broker {broker} acknowledged {acked} of {sent} publishes within {timeout:?}")]
    Timeout {
        broker: String,
        acked: usize,
        sent: usize,
        timeout: Duration,
    },
}

/// Publishes an empty retained payload to every topic of `entities` (Home Assistant
/// deletes an entity whose config is empty; the broker drops a retained message replaced
/// by an empty one) and waits for each acknowledgement; the number of topics emptied.
pub fn remove(
    mut options: MqttOptions,
    entities: &Entities,
    timeout: Duration,
) -> Result<usize, RemoveError> {
    let broker = format!(
        "{}:{}",
        options.broker_address().0,
        options.broker_address().1
    );
    options
        .set_client_id(format!("{}-ha-remove", options.client_id()))
        .set_clean_session(true);
    let topics = entities.retained_topics();
    let (client, mut connection) = rumqttc::Client::new(options, topics.len() + 4);
    for topic in &topics {
        if let Err(error) = client.try_publish(topic.as_str(), QoS::AtLeastOnce, true, Vec::new()) {
            return Err(RemoveError::Connection {
                broker,
                reason: error.to_string(),
            });
        }
    }
    let deadline = Instant::now() + timeout;
    let mut acked = 0;
    while acked < topics.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Incoming::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                return Err(RemoveError::Connection {
                    broker,
                    reason: acoupi_engine::error_chain(&error),
                });
            }
            Err(_) => {
                return Err(RemoveError::Timeout {
                    broker,
                    acked,
                    sent: topics.len(),
                    timeout,
                });
            }
        }
    }
    let _ = client.disconnect();
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Ok(Ok(event)) =
        connection.recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
    Ok(topics.len())
}

#[cfg(test)]
mod tests;

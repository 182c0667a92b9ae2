//! `message.detections`: detection messages built from each model output, keeping the
//! detections at or above a threshold that carry at least one tag (acoupi's
//! DetectionThresholdMessageBuilder), in one of two payload dialects:
//!
//! - `acoupi` (default): the JSON of a ModelOutput holding only the kept detections —
//!   acoupi's own wire format, so acoupi dashboards keep working. With `per = "output"`
//!   (default) one message per model output; with `per = "detection"` one message per
//!   kept detection, each a ModelOutput holding that one detection.
//! - `birdnet-go`: one message per kept detection with BirdNET-Go's keys, so Home
//!   Assistant cards and automations written for BirdNET-Go work unchanged:
//!
//! ```json
//! {"SourceNode": "roof-pi", "Date": "2026-05-14", "Time": "05:31:09",
//!  "BeginTime": "2026-05-14T05:31:09+01:00", "EndTime": "2026-05-14T05:31:12+01:00",
//!  "SpeciesCode": "", "ScientificName": "Turdus merula", "CommonName": "Eurasian Blackbird",
//!  "Confidence": 0.91, "Latitude": 51.5, "Longitude": -0.12, "Threshold": 0.7,
//!  "Sensitivity": 1.0, "ClipName": "recordings/2026/05/14/20260514_053109.wav",
//!  "ProcessingTime": 412000000, "detectionId": "…uuid…", "recordingId": "…uuid…",
//!  "sourceId": "…deployment uuid…", "sourceName": "north field"}
//! ```
//!
//! Privacy markers (detections tagged `privacy`, from `cleaner.privacy`) are never sent.
//!
//! BirdNET-Go field choices: `Date`/`Time` and the times are in the deployment's time zone
//! (BirdNET-Go reports local time); `BeginTime`/`EndTime` are the recording's start plus
//! the detection's box (the whole recording when the detection has no box);
//! `ScientificName` is the detection's best `species` tag (else its best tag) and
//! `CommonName` its best `common_name` tag (else the scientific name); `Latitude` and
//! `Longitude` are 0 when the deployment has none (as BirdNET-Go writes them);
//! `Threshold` is this factory's threshold and `Sensitivity` the `sensitivity` given here
//! (the model's setting is not in a ModelOutput); `ClipName` is the recording's path at
//! detection time; `recordingId` (not BirdNET-Go's, for Home Assistant's last-species
//! attributes) the recording's id; `ProcessingTime` (nanoseconds) is the time from the end of the
//! recording to the model output's creation; `SourceNode` is the device id from `[device]`,
//! else the deployment name.

use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, MessageFactory};
use acoupi_engine::config::values::Score;
use acoupi_engine::data::{Detection, Message, MessageType, ModelOutput};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;

/// Detection messages with the detections whose score is at least the threshold and that
/// carry at least one tag; no message when none is left. Payload dialect `acoupi`
/// (ModelOutput JSON, per output or per detection) or `birdnet-go` (one message per
/// detection with BirdNET-Go's keys).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectionMessageConfig {
    /// Minimum detection score, 0 to 1.
    #[serde(default = "default_threshold")]
    #[schemars(default = "default_threshold")]
    pub threshold: Score,
    /// One message per model output (`output`) or per detection (`detection`). The
    /// `birdnet-go` dialect is always per detection.
    #[serde(default)]
    #[schemars(default = "default_per")]
    pub per: Per,
    /// The payload format: `acoupi` (ModelOutput JSON) or `birdnet-go`.
    #[serde(default)]
    #[schemars(default = "default_dialect")]
    pub dialect: Dialect,
    /// `birdnet-go` only: the `Sensitivity` written in each message (set it to the
    /// model's sensitivity).
    #[serde(default = "default_sensitivity")]
    #[schemars(default = "default_sensitivity")]
    pub sensitivity: BirdnetGoSensitivity,
}

fn default_threshold() -> Score {
    Score(0.5)
}
fn default_per() -> Per {
    Per::Output
}
fn default_dialect() -> Dialect {
    Dialect::Acoupi
}
acoupi_engine::bounded_f64!(
    /// The sensitivity written in BirdNET-Go messages: any finite number.
    BirdnetGoSensitivity, "sensitivity", Unbounded, Unbounded
);

fn default_sensitivity() -> BirdnetGoSensitivity {
    BirdnetGoSensitivity(1.0)
}

/// How many detections one message holds.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// One message per model output, with all its kept detections.
    #[default]
    Output,
    /// One message per kept detection.
    Detection,
}

/// The payload format of detection messages.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// acoupi's ModelOutput JSON.
    #[default]
    Acoupi,
    /// BirdNET-Go's detection JSON (PascalCase keys).
    BirdnetGo,
}

impl ComponentConfig for DetectionMessageConfig {
    const KIND: &'static str = "message.detections";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let settings = &ctx.settings;
        Ok(Built::MessageFactory(Arc::new(DetectionMessages {
            threshold: self.threshold.0,
            per: self.per,
            dialect: self.dialect,
            sensitivity: self.sensitivity.0,
            timezone: settings.deployment.timezone,
            source_node: settings
                .device_id
                .clone()
                .unwrap_or_else(|| settings.deployment.name.clone()),
        })))
    }
}

pub struct DetectionMessages {
    threshold: f64,
    per: Per,
    dialect: Dialect,
    sensitivity: f64,
    timezone: Tz,
    source_node: String,
}

impl MessageFactory for DetectionMessages {
    fn build(&self, output: &ModelOutput) -> ComponentResult<Vec<Message>> {
        // Privacy markers (see `cleaner.privacy`) are never sent.
        let kept: Vec<&Detection> = output
            .detections
            .iter()
            .filter(|d| {
                d.detection_score >= self.threshold && !d.tags.is_empty() && !d.is_privacy_marker()
            })
            .collect();
        if kept.is_empty() {
            return Ok(Vec::new());
        }
        // BirdNET-Go has no message for several detections.
        let per = if self.dialect == Dialect::BirdnetGo {
            Per::Detection
        } else {
            self.per
        };
        let groups: Vec<Vec<&Detection>> = match per {
            Per::Output => vec![kept],
            Per::Detection => kept.into_iter().map(|d| vec![d]).collect(),
        };
        groups
            .into_iter()
            .map(|detections| {
                let content = match self.dialect {
                    Dialect::Acoupi => {
                        let mut part = output.clone();
                        part.detections = detections.into_iter().cloned().collect();
                        serde_json::to_string(&part)
                    }
                    Dialect::BirdnetGo => {
                        serde_json::to_string(&self.birdnet_go(output, detections[0]))
                    }
                }
                .map_err(|e| {
                    ComponentError::Other(format!("cannot serialise the detection message: {e}"))
                })?;
                Ok(Message::new(content).with_type(MessageType::Detection))
            })
            .collect()
    }
}

impl DetectionMessages {
    /// One detection as BirdNET-Go's JSON (see the module docs for each field).
    fn birdnet_go(&self, output: &ModelOutput, detection: &Detection) -> serde_json::Value {
        let recording = &output.recording;
        let (start, end) = detection
            .location
            .as_ref()
            .map_or((0.0, recording.duration), |b| {
                let [start, _, end, _] = b.coordinates();
                (start, end)
            });
        let at = |seconds: f64| {
            recording.created_on + chrono::Duration::microseconds((seconds * 1e6).round() as i64)
        };
        let local = |time: DateTime<Utc>| time.with_timezone(&self.timezone);
        let begin = local(at(start));
        let best = |key: &str| {
            detection
                .tags
                .iter()
                .filter(|t| t.tag.key == key)
                .max_by(|a, b| a.confidence_score.total_cmp(&b.confidence_score))
                .map(|t| t.tag.value.clone())
        };
        let top = detection
            .tags
            .iter()
            .max_by(|a, b| a.confidence_score.total_cmp(&b.confidence_score))
            .map(|t| t.tag.value.clone());
        let scientific = best("species").or(top).unwrap_or_default();
        let common = best("common_name").unwrap_or_else(|| scientific.clone());
        let recording_end = at(recording.duration);
        let processing_ns = (output.created_on - recording_end)
            .num_nanoseconds()
            .unwrap_or(0)
            .max(0);
        json!({
            "SourceNode": self.source_node,
            "Date": begin.format("%Y-%m-%d").to_string(),
            "Time": begin.format("%H:%M:%S").to_string(),
            "BeginTime": begin.to_rfc3339(),
            "EndTime": local(at(end)).to_rfc3339(),
            "SpeciesCode": "",
            "ScientificName": scientific,
            "CommonName": common,
            "Confidence": detection.detection_score,
            "Latitude": recording.deployment.latitude.unwrap_or(0.0),
            "Longitude": recording.deployment.longitude.unwrap_or(0.0),
            "Threshold": self.threshold,
            "Sensitivity": self.sensitivity,
            "ClipName": recording.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "ProcessingTime": processing_ns,
            "detectionId": detection.id.to_string(),
            "recordingId": recording.id.to_string(),
            "sourceId": recording.deployment.id.to_string(),
            "sourceName": recording.deployment.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};
    use acoupi_engine::data::{BoundingBox, PredictedTag, Tag};

    fn factory(per: Per, dialect: Dialect) -> DetectionMessages {
        DetectionMessages {
            threshold: 0.5,
            per,
            dialect,
            sensitivity: 1.25,
            timezone: chrono_tz::Europe::London,
            source_node: "roof-pi".into(),
        }
    }

    fn sample() -> ModelOutput {
        output(vec![
            detection(0.9, &[("species", "Turdus merula", 0.9)]),
            detection(0.8, &[]),
            detection(0.3, &[("species", "Erithacus rubecula", 0.3)]),
            detection(0.7, &[("species", "Erithacus rubecula", 0.7)]),
        ])
    }

    fn json(message: &Message) -> serde_json::Value {
        serde_json::from_str(message.content.as_text().unwrap()).unwrap()
    }

    #[test]
    fn acoupi_per_output_holds_the_tagged_detections_above_the_threshold() {
        let input = sample();
        let messages = factory(Per::Output, Dialect::Acoupi).build(&input).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message_type, Some(MessageType::Detection));
        let json = json(&messages[0]);
        let detections = json["detections"].as_array().unwrap();
        let species: Vec<&str> = detections
            .iter()
            .map(|d| d["tags"][0]["tag"]["value"].as_str().unwrap())
            .collect();
        assert_eq!(species, ["Turdus merula", "Erithacus rubecula"]);
        assert_eq!(json["name_model"], input.name_model);
        assert_eq!(json["recording"]["id"], input.recording.id.to_string());
        // It reads back as the data model.
        let back: ModelOutput = serde_json::from_value(json).unwrap();
        assert_eq!(back.id, input.id);
    }

    #[test]
    fn acoupi_per_detection_gives_one_model_output_per_kept_detection() {
        let input = sample();
        let messages = factory(Per::Detection, Dialect::Acoupi)
            .build(&input)
            .unwrap();
        let ids: Vec<String> = messages
            .iter()
            .map(|m| json(m)["detections"][0]["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids,
            [
                input.detections[0].id.to_string(),
                input.detections[3].id.to_string()
            ]
        );
        assert!(
            messages
                .iter()
                .all(|m| json(m)["detections"].as_array().unwrap().len() == 1)
        );
    }

    #[test]
    fn no_message_when_nothing_is_left() {
        let input = output(vec![
            detection(0.4, &[("species", "a", 0.9)]),
            detection(0.9, &[("privacy", "human", 0.9)]),
        ]);
        for (per, dialect) in [
            (Per::Output, Dialect::Acoupi),
            (Per::Detection, Dialect::Acoupi),
            (Per::Detection, Dialect::BirdnetGo),
        ] {
            assert!(factory(per, dialect).build(&input).unwrap().is_empty());
        }
    }

    #[test]
    fn birdnet_go_payload_has_its_keys_local_times_and_names() {
        let mut input = sample();
        input.recording.created_on = "2026-05-14T04:31:09Z".parse().unwrap();
        input.recording.deployment.latitude = Some(51.5);
        input.recording.deployment.longitude = Some(-0.12);
        input.recording.path = Some("recordings/2026/05/14/a.wav".into());
        input.created_on = input.recording.created_on + chrono::Duration::milliseconds(3000 + 412);
        let blackbird = &mut input.detections[0];
        blackbird.location = Some(BoundingBox::new(1.5, 0.0, 3.0, 15_000.0).unwrap());
        blackbird
            .tags
            .push(PredictedTag::new(Tag::new("common_name", "Eurasian Blackbird"), 0.9).unwrap());
        let messages = factory(Per::Output, Dialect::BirdnetGo)
            .build(&input)
            .unwrap();
        assert_eq!(messages.len(), 2, "always one per detection");
        let got = json(&messages[0]);
        let expected = serde_json::json!({
            "SourceNode": "roof-pi",
            "Date": "2026-05-14",
            "Time": "05:31:10",
            "BeginTime": "2026-05-14T05:31:10.500+01:00",
            "EndTime": "2026-05-14T05:31:12+01:00",
            "SpeciesCode": "",
            "ScientificName": "Turdus merula",
            "CommonName": "Eurasian Blackbird",
            "Confidence": 0.9,
            "Latitude": 51.5,
            "Longitude": -0.12,
            "Threshold": 0.5,
            "Sensitivity": 1.25,
            "ClipName": "recordings/2026/05/14/a.wav",
            "ProcessingTime": 412_000_000,
            "detectionId": input.detections[0].id.to_string(),
            "recordingId": input.recording.id.to_string(),
            "sourceId": input.recording.deployment.id.to_string(),
            "sourceName": "test site",
        });
        assert_eq!(got, expected);
        // No box: the whole recording; no common name: the scientific one; no position: 0.
        let robin = json(&messages[1]);
        assert_eq!(robin["CommonName"], "Erithacus rubecula");
        assert_eq!(robin["BeginTime"], "2026-05-14T05:31:09+01:00");
        assert_eq!(robin["EndTime"], "2026-05-14T05:31:12+01:00");
    }
}

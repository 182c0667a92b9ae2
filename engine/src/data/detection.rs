//! PredictionType, Detection (one thing a model found), ModelOutput (everything a model
//! found in one recording) and ModelOutputInfo (a ModelOutput without its detections).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BoundingBox, DataError, PredictedTag, Recording, check_score};

/// What a detection claims: presence in the recording, a sequence, or a located event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionType {
    Presence,
    Sequence,
    Event,
}

/// One detection: `detection_score` in [0, 1] (default 1.0), an optional location and
/// predicted tags. Equality compares every field but ignores the order of `tags`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Detection {
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    pub prediction_type: PredictionType,
    #[serde(default)]
    pub location: Option<BoundingBox>,
    #[serde(default = "certain")]
    pub detection_score: f64,
    #[serde(default)]
    pub tags: Vec<PredictedTag>,
}

fn certain() -> f64 {
    1.0
}

impl Detection {
    /// A detection with a random id, no location, score 1.0 and no tags.
    pub fn new(prediction_type: PredictionType) -> Self {
        Detection {
            id: Uuid::new_v4(),
            prediction_type,
            location: None,
            detection_score: certain(),
            tags: Vec::new(),
        }
    }

    pub fn with_location(mut self, location: BoundingBox) -> Self {
        self.location = Some(location);
        self
    }

    pub fn with_score(mut self, detection_score: f64) -> Result<Self, DataError> {
        check_score("detection_score", detection_score)?;
        self.detection_score = detection_score;
        Ok(self)
    }

    pub fn with_tag(mut self, tag: PredictedTag) -> Self {
        self.tags.push(tag);
        self
    }

    /// Checks the score, the location and every tag.
    pub fn validate(&self) -> Result<(), DataError> {
        check_score("detection_score", self.detection_score)?;
        self.location
            .as_ref()
            .map_or(Ok(()), BoundingBox::validate)?;
        self.tags.iter().try_for_each(PredictedTag::validate)
    }
}

impl PartialEq for Detection {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.prediction_type == other.prediction_type
            && self.location == other.location
            && self.detection_score == other.detection_score
            && same_elements(&self.tags, &other.tags)
    }
}

/// What a model made of one recording. Equality compares every field but ignores the
/// order of `detections`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelOutput {
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    pub name_model: String,
    pub recording: Recording,
    #[serde(default)]
    pub detections: Vec<Detection>,
    #[serde(with = "crate::data::timestamp", default = "Utc::now")]
    pub created_on: DateTime<Utc>,
}

/// The tag key that marks a detection as a privacy marker (see [`ModelOutput::is_private`]).
pub const PRIVACY_TAG_KEY: &str = "privacy";

impl Detection {
    /// Whether this detection is a privacy marker (it carries a [`PRIVACY_TAG_KEY`] tag).
    pub fn is_privacy_marker(&self) -> bool {
        self.tags.iter().any(|t| t.tag.key == PRIVACY_TAG_KEY)
    }
}

impl ModelOutput {
    /// An output with a random id, created now. Not validated: call [`Self::validate`].
    pub fn new(
        name_model: impl Into<String>,
        recording: Recording,
        detections: Vec<Detection>,
    ) -> Self {
        ModelOutput {
            id: Uuid::new_v4(),
            name_model: name_model.into(),
            recording,
            detections,
            created_on: Utc::now(),
        }
    }

    /// Whether a detection carries the privacy tag (key [`PRIVACY_TAG_KEY`]): a human
    /// was heard, so the recording's audio must not be kept (the management task deletes
    /// it whatever the saving filters say) and detection messages leave the marker out.
    pub fn is_private(&self) -> bool {
        self.detections.iter().any(Detection::is_privacy_marker)
    }

    /// Checks the recording (and its deployment) and every detection.
    pub fn validate(&self) -> Result<(), DataError> {
        self.recording.validate()?;
        self.detections.iter().try_for_each(Detection::validate)
    }

    pub fn info(&self) -> ModelOutputInfo {
        ModelOutputInfo::from(self)
    }
}

impl PartialEq for ModelOutput {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.name_model == other.name_model
            && self.recording == other.recording
            && self.created_on == other.created_on
            && same_elements(&self.detections, &other.detections)
    }
}

/// The light form of a [`ModelOutput`]: no recording, no detections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelOutputInfo {
    pub id: Uuid,
    pub name_model: String,
    #[serde(with = "crate::data::timestamp")]
    pub created_on: DateTime<Utc>,
}

impl From<&ModelOutput> for ModelOutputInfo {
    fn from(output: &ModelOutput) -> Self {
        ModelOutputInfo {
            id: output.id,
            name_model: output.name_model.clone(),
            created_on: output.created_on,
        }
    }
}

/// Multiset equality for types that are only `PartialEq` (scores are floats).
fn same_elements<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let found = b
            .iter()
            .enumerate()
            .find(|(i, y)| !used[*i] && x == *y)
            .map(|(i, _)| i);
        found.map(|i| used[i] = true).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Deployment, Tag};
    use serde_json::json;

    fn tag(value: &str, score: f64) -> PredictedTag {
        PredictedTag::new(Tag::new("species", value), score).unwrap()
    }

    fn output() -> ModelOutput {
        let deployment = Deployment::new("garden")
            .with_location(52.52, 13.405)
            .unwrap();
        let recording = Recording::new(deployment, 3.0, 48_000)
            .unwrap()
            .with_path("/tmp/r.wav");
        let detection = Detection::new(PredictionType::Event)
            .with_location(BoundingBox::new(0.5, 1000.0, 1.5, 8000.0).unwrap())
            .with_score(0.8)
            .unwrap()
            .with_tag(tag("Turdus merula – Amsel", 0.9))
            .with_tag(tag("Erithacus rubecula", 0.2));
        ModelOutput::new(
            "birdnet",
            recording,
            vec![detection, Detection::new(PredictionType::Presence)],
        )
    }

    #[test]
    fn prediction_type_json_is_lowercase() {
        assert_eq!(
            serde_json::to_string(&PredictionType::Presence).unwrap(),
            r#""presence""#
        );
        assert_eq!(
            serde_json::to_string(&PredictionType::Sequence).unwrap(),
            r#""sequence""#
        );
        assert_eq!(
            serde_json::to_string(&PredictionType::Event).unwrap(),
            r#""event""#
        );
        assert_eq!(
            serde_json::from_str::<PredictionType>(r#""event""#).unwrap(),
            PredictionType::Event
        );
        assert!(serde_json::from_str::<PredictionType>(r#""Event""#).is_err());
    }

    #[test]
    fn detection_defaults() {
        let d = Detection::new(PredictionType::Presence);
        assert_eq!(
            (d.location, d.detection_score, d.tags.len()),
            (None, 1.0, 0)
        );
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn detection_score_range() {
        let d = Detection::new(PredictionType::Presence);
        assert_eq!(d.clone().with_score(0.0).unwrap().detection_score, 0.0);
        assert_eq!(
            d.clone().with_score(1.2).unwrap_err(),
            DataError::ScoreOutOfRange {
                field: "detection_score",
                value: 1.2
            }
        );
        assert!(d.clone().with_score(f64::NAN).is_err());
        let mut bad = d;
        bad.detection_score = -0.5;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn detection_validate_checks_tags() {
        let mut d = Detection::new(PredictionType::Presence).with_tag(tag("a", 0.5));
        d.tags[0].confidence_score = 1.5;
        assert_eq!(
            d.validate(),
            Err(DataError::ScoreOutOfRange {
                field: "confidence_score",
                value: 1.5
            })
        );
    }

    #[test]
    fn detection_equality_ignores_tag_order() {
        let a = Detection::new(PredictionType::Event)
            .with_tag(tag("a", 0.1))
            .with_tag(tag("b", 0.2));
        let mut b = a.clone();
        b.tags.reverse();
        assert_eq!(a, b);
        b.tags[0].confidence_score = 0.3;
        assert_ne!(a, b);
        let mut c = a.clone();
        c.tags = vec![tag("a", 0.1), tag("a", 0.1)];
        assert_ne!(a, c);
    }

    #[test]
    fn model_output_equality_ignores_detection_order() {
        let a = output();
        let mut b = a.clone();
        b.detections.reverse();
        assert_eq!(a, b);
        b.detections.pop();
        assert_ne!(a, b);
        let mut c = a.clone();
        c.name_model = "other".into();
        assert_ne!(a, c);
    }

    #[test]
    fn model_output_validate_reaches_nested_values() {
        let mut o = output();
        assert_eq!(o.validate(), Ok(()));
        o.detections[1].detection_score = 2.0;
        assert!(matches!(
            o.validate(),
            Err(DataError::ScoreOutOfRange {
                field: "detection_score",
                ..
            })
        ));
        let mut o = output();
        o.recording.deployment.longitude = Some(181.0);
        assert_eq!(o.validate(), Err(DataError::LongitudeOutOfRange(181.0)));
    }

    #[test]
    fn model_output_json_round_trip() {
        let o = output();
        let text = serde_json::to_string(&o).unwrap();
        assert!(text.contains("Turdus merula – Amsel"));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["name_model"], "birdnet");
        assert_eq!(json["recording"]["deployment"]["latitude"], 52.52);
        assert_eq!(json["recording"]["deployment"]["longitude"], 13.405);
        assert_eq!(json["recording"]["path"], "/tmp/r.wav");
        assert_eq!(json["recording"]["samplerate"], 48_000);
        let detection = &json["detections"][0];
        assert_eq!(detection["prediction_type"], "event");
        assert_eq!(detection["detection_score"], 0.8);
        assert_eq!(
            detection["location"],
            json!({"type":"BoundingBox","coordinates":[0.5,1000.0,1.5,8000.0]})
        );
        assert_eq!(
            detection["tags"][0],
            json!({"tag":{"key":"species","value":"Turdus merula – Amsel"},"confidence_score":0.9})
        );
        assert_eq!(json["detections"][1]["location"], serde_json::Value::Null);
        assert!(json["created_on"].as_str().unwrap().ends_with("+00:00"));

        let back: ModelOutput = serde_json::from_str(&text).unwrap();
        assert_eq!(back, o);
        assert_eq!(
            back.detections[0].tags[0].tag.value,
            "Turdus merula – Amsel"
        );
        assert_eq!(back.recording.deployment.latitude, Some(52.52));
        assert_eq!(back.validate(), Ok(()));
    }

    #[test]
    fn bad_bounding_box_in_output_json_is_rejected() {
        let mut json = serde_json::to_value(output()).unwrap();
        json["detections"][0]["location"]["coordinates"] = json!([1.5, 1000.0, 0.5, 8000.0]);
        assert!(serde_json::from_value::<ModelOutput>(json).is_err());
    }

    #[test]
    fn info_is_the_light_form() {
        let o = output();
        let info = o.info();
        assert_eq!(
            (info.id, info.name_model.as_str(), info.created_on),
            (o.id, "birdnet", o.created_on)
        );
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 3);
    }
}

//! `cleaner.privacy`: BirdNET-Pi's privacy filter. When a human-voice class is detected in
//! a window, every detection overlapping that window or its neighbours (`neighbours`
//! seconds on each side) is dropped, the human detections included, and privacy markers
//! take their place: per human detection an `event` detection with its box and the tag
//! `privacy = "human"` with the human score. The marker makes the management task delete
//! the recording's audio whatever the saving filters say, and detection messages leave it
//! out; the store keeps it, so "why was nothing reported between 07:10 and 07:20?" has an
//! answer.
//!
//! ```toml
//! cleaners = [{ type = "cleaner.privacy", threshold = 0.1, neighbours = "3s" }]
//! ```
//!
//! Put it first among the cleaners, before any threshold cleaner could drop a faint human
//! detection. A human detection without a time box covers the whole recording.

use std::collections::BTreeSet;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, OutputCleaner};
use acoupi_engine::config::values::{HumanDuration, NonEmpty, Score};
use acoupi_engine::data::{
    BoundingBox, Detection, ModelOutput, PRIVACY_TAG_KEY, PredictedTag, PredictionType, Tag,
};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

/// Drop every detection near a human voice and mark the output private, so the recording's
/// audio is deleted (BirdNET-Pi's privacy filter).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyCleanerConfig {
    /// Tag values that mean a human was heard (BirdNET's labels by default).
    #[serde(default = "default_classes")]
    #[schemars(default = "default_classes")]
    pub classes: NonEmpty<String>,
    /// The lowest score of a human tag that counts.
    #[serde(default = "default_threshold")]
    #[schemars(default = "default_threshold")]
    pub threshold: Score,
    /// How far around a human window detections are dropped too (one BirdNET window by
    /// default).
    #[serde(default = "default_neighbours")]
    #[schemars(default = "default_neighbours_text")]
    pub neighbours: HumanDuration,
}

fn default_classes() -> NonEmpty<String> {
    NonEmpty(vec![
        "Human vocal".into(),
        "Human non-vocal".into(),
        "Human whistle".into(),
    ])
}
fn default_threshold() -> Score {
    Score(0.1)
}
fn default_neighbours() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(3))
}
fn default_neighbours_text() -> &'static str {
    "3s"
}

impl ComponentConfig for PrivacyCleanerConfig {
    const KIND: &'static str = "cleaner.privacy";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::Cleaner(Arc::new(PrivacyCleaner {
            classes: self.classes.0.iter().cloned().collect(),
            threshold: self.threshold.0,
            neighbours: self.neighbours.0.as_secs_f64(),
        })))
    }
}

pub struct PrivacyCleaner {
    classes: BTreeSet<String>,
    threshold: f64,
    neighbours: f64,
}

impl PrivacyCleaner {
    /// The detection's time span, or the whole recording when it has no box.
    fn span(detection: &Detection, duration: f64) -> (f64, f64) {
        detection.location.as_ref().map_or((0.0, duration), |b| {
            let [start, _, end, _] = b.coordinates();
            (start, end)
        })
    }
}

impl OutputCleaner for PrivacyCleaner {
    fn clean(&self, mut output: ModelOutput) -> ComponentResult<ModelOutput> {
        let duration = output.recording.duration;
        // Each human window with its best human score and its box.
        let humans: Vec<((f64, f64), f64, Option<BoundingBox>)> = output
            .detections
            .iter()
            .filter_map(|d| {
                let score = d
                    .tags
                    .iter()
                    .filter(|t| self.classes.contains(&t.tag.value))
                    .map(|t| t.confidence_score)
                    .fold(f64::NAN, f64::max);
                (score >= self.threshold).then(|| (Self::span(d, duration), score, d.location))
            })
            .collect();
        if humans.is_empty() {
            return Ok(output);
        }
        let near_a_human = |d: &Detection| {
            let (start, end) = Self::span(d, duration);
            humans.iter().any(|((h_start, h_end), _, _)| {
                start < h_end + self.neighbours && end > h_start - self.neighbours
            })
        };
        let before = output.detections.len();
        output.detections.retain(|d| !near_a_human(d));
        let dropped = before - output.detections.len();
        tracing::debug!(dropped, humans = humans.len(), model = %output.name_model, "privacy: detections near a human voice dropped");
        for (_, score, location) in humans {
            let mut marker = Detection::new(PredictionType::Event);
            marker.location = location;
            marker.detection_score = score;
            marker.tags = vec![PredictedTag::new(
                Tag::new(PRIVACY_TAG_KEY, "human"),
                score,
            )?];
            output.detections.push(marker);
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    fn at(start: f64, end: f64, tags: &[(&str, &str, f64)]) -> Detection {
        let mut d = detection(tags.first().map_or(0.9, |t| t.2), tags);
        d.location = Some(BoundingBox::new(start, 0.0, end, 15_000.0).unwrap());
        d
    }

    fn cleaner() -> PrivacyCleaner {
        PrivacyCleaner {
            classes: default_classes().0.into_iter().collect(),
            threshold: 0.1,
            neighbours: 3.0,
        }
    }

    fn species(output: &ModelOutput) -> Vec<String> {
        output
            .detections
            .iter()
            .map(|d| format!("{}={}", d.tags[0].tag.key, d.tags[0].tag.value))
            .collect()
    }

    #[test]
    fn detections_near_a_voice_give_way_to_a_privacy_marker() {
        let mut input = output(vec![
            at(0.0, 3.0, &[("species", "Turdus merula", 0.9)]),
            at(3.0, 6.0, &[("species", "Erithacus rubecula", 0.8)]),
            at(6.0, 9.0, &[("species", "Human vocal", 0.4)]),
            at(9.0, 12.0, &[("species", "Parus major", 0.7)]),
            at(12.0, 15.0, &[("species", "Sturnus vulgaris", 0.7)]),
        ]);
        input.recording.duration = 15.0;
        let cleaned = cleaner().clean(input).unwrap();
        // 3 s around 6-9 s: 3-6 and 9-12 go, 0-3 and 12-15 stay (touching is not overlapping).
        assert_eq!(
            species(&cleaned),
            [
                "species=Turdus merula",
                "species=Sturnus vulgaris",
                "privacy=human"
            ]
        );
        assert!(cleaned.is_private());
        let marker = cleaned.detections.last().unwrap();
        assert_eq!(marker.detection_score, 0.4);
        assert_eq!(
            marker.location.as_ref().unwrap().coordinates(),
            [6.0, 0.0, 9.0, 15_000.0]
        );
    }

    #[test]
    fn faint_or_absent_voices_change_nothing() {
        let input = output(vec![
            at(0.0, 3.0, &[("species", "Turdus merula", 0.9)]),
            at(3.0, 6.0, &[("species", "Human vocal", 0.05)]),
        ]);
        let cleaned = cleaner().clean(input.clone()).unwrap();
        assert_eq!(cleaned, input);
        assert!(!cleaned.is_private());
    }

    #[test]
    fn a_voice_without_a_box_covers_the_whole_recording() {
        let input = output(vec![
            at(0.0, 3.0, &[("species", "Turdus merula", 0.9)]),
            detection(0.5, &[("species", "Human whistle", 0.5)]),
        ]);
        let cleaned = cleaner().clean(input).unwrap();
        assert_eq!(species(&cleaned), ["privacy=human"]);
    }
}

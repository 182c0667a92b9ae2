//! `cleaner.tag_thresholds`: a confidence threshold per tag value (e.g. a stricter one for
//! a species the model over-reports); a detection left with no tag is dropped, logged at
//! debug level.
//!
//! ```toml
//! cleaners = [
//!   { type = "cleaner.tag_thresholds", default = 0.5, thresholds = { "Corvus corone" = 0.8 } },
//! ]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, OutputCleaner};
use acoupi_engine::config::values::Score;
use acoupi_engine::data::ModelOutput;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use super::drop_untagged;

/// Keep tags whose confidence reaches the threshold of their value (`thresholds`), or
/// `default` for values not listed; detections left with no tag are dropped.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagThresholdsCleanerConfig {
    /// Threshold per tag value (e.g. a scientific name), 0 to 1.
    pub thresholds: BTreeMap<String, Score>,
    /// The threshold of tag values not listed in `thresholds`.
    #[serde(default = "default_threshold")]
    #[schemars(default = "default_threshold")]
    pub default: Score,
}

fn default_threshold() -> Score {
    Score(0.0)
}

impl ComponentConfig for TagThresholdsCleanerConfig {
    const KIND: &'static str = "cleaner.tag_thresholds";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::Cleaner(Arc::new(TagThresholdsCleaner {
            thresholds: self
                .thresholds
                .iter()
                .map(|(value, score)| (value.clone(), score.0))
                .collect(),
            default: self.default.0,
        })))
    }
}

pub struct TagThresholdsCleaner {
    thresholds: BTreeMap<String, f64>,
    default: f64,
}

impl OutputCleaner for TagThresholdsCleaner {
    fn clean(&self, mut output: ModelOutput) -> ComponentResult<ModelOutput> {
        for detection in &mut output.detections {
            detection.tags.retain(|t| {
                t.confidence_score
                    >= self
                        .thresholds
                        .get(&t.tag.value)
                        .copied()
                        .unwrap_or(self.default)
            });
        }
        Ok(drop_untagged(output, "cleaner.tag_thresholds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cleaner::tag_values as tags;
    use crate::testing::{detection, output};

    #[test]
    fn tag_thresholds_apply_per_value_and_drop_detections_left_without_tags() {
        let input = output(vec![
            detection(
                0.9,
                &[
                    ("species", "Corvus corone", 0.7),
                    ("species", "Turdus merula", 0.7),
                ],
            ),
            detection(0.8, &[("species", "Corvus corone", 0.75)]),
            detection(0.3, &[("species", "Turdus merula", 0.3)]),
        ]);
        let cleaner = TagThresholdsCleaner {
            thresholds: [("Corvus corone".to_string(), 0.8)].into(),
            default: 0.5,
        };
        let cleaned = cleaner.clean(input).unwrap();
        assert_eq!(tags(&cleaned), vec![vec![("Turdus merula", 0.7)]]);
    }
}

//! `cleaner.threshold`: drops detections (and tags) below a score (acoupi's
//! ThresholdDetectionCleaner).

use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, OutputCleaner};
use acoupi_engine::config::values::Score;
use acoupi_engine::data::ModelOutput;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

/// Keep detections whose score is at least the threshold, and within them the tags whose
/// confidence is at least the threshold.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdCleanerConfig {
    /// Minimum detection score and tag confidence, 0 to 1.
    pub threshold: Score,
}

impl ComponentConfig for ThresholdCleanerConfig {
    const KIND: &'static str = "cleaner.threshold";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::Cleaner(Arc::new(ThresholdCleaner {
            threshold: self.threshold.0,
        })))
    }
}

pub struct ThresholdCleaner {
    threshold: f64,
}

impl OutputCleaner for ThresholdCleaner {
    fn clean(&self, mut output: ModelOutput) -> ComponentResult<ModelOutput> {
        let before = output.detections.len();
        output
            .detections
            .retain(|d| d.detection_score >= self.threshold);
        for detection in &mut output.detections {
            detection
                .tags
                .retain(|t| t.confidence_score >= self.threshold);
        }
        let dropped = before - output.detections.len();
        if dropped > 0 {
            tracing::debug!(dropped, threshold = self.threshold, model = %output.name_model, "cleaner.threshold dropped detections below the threshold");
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    #[test]
    fn keeps_detections_and_tags_at_or_above_the_threshold() {
        let cleaner = ThresholdCleaner { threshold: 0.5 };
        let input = output(vec![
            detection(0.9, &[("species", "a", 0.9), ("species", "b", 0.2)]),
            detection(0.5, &[("species", "c", 0.5)]),
            detection(0.49, &[("species", "d", 0.99)]),
        ]);
        let cleaned = cleaner.clean(input).unwrap();
        let kept: Vec<(f64, Vec<&str>)> = cleaned
            .detections
            .iter()
            .map(|d| {
                (
                    d.detection_score,
                    d.tags.iter().map(|t| t.tag.value.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(kept, vec![(0.9, vec!["a"]), (0.5, vec!["c"])]);
    }
}

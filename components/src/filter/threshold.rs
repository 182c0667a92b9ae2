//! `filter.threshold`: keep a recording when any detection reaches a score (acoupi's
//! SavingThreshold).

use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, SavingFilter};
use acoupi_engine::config::values::Score;
use acoupi_engine::data::{ModelOutput, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

/// Keep a recording when any detection of any model output has a score at least the
/// threshold.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSavingFilterConfig {
    /// Minimum detection score, 0 to 1.
    pub threshold: Score,
}

impl ComponentConfig for ThresholdSavingFilterConfig {
    const KIND: &'static str = "filter.threshold";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::SavingFilter(Arc::new(ThresholdSavingFilter {
            threshold: self.threshold.0,
        })))
    }
}

pub struct ThresholdSavingFilter {
    threshold: f64,
}

impl SavingFilter for ThresholdSavingFilter {
    fn should_save(&self, _: &Recording, outputs: &[ModelOutput]) -> ComponentResult<bool> {
        Ok(outputs
            .iter()
            .flat_map(|o| &o.detections)
            .any(|d| d.detection_score >= self.threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    #[test]
    fn any_detection_at_or_above_the_threshold_keeps_the_recording() {
        let filter = ThresholdSavingFilter { threshold: 0.6 };
        let low = output(vec![detection(0.59, &[])]);
        let high = output(vec![detection(0.6, &[])]);
        let recording = low.recording.clone();
        assert!(
            !filter
                .should_save(&recording, std::slice::from_ref(&low))
                .unwrap()
        );
        assert!(filter.should_save(&recording, &[low, high]).unwrap());
        assert!(!filter.should_save(&recording, &[]).unwrap());
    }
}

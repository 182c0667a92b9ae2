//! `filter.sample`: keep 1 in N recordings without detections, for quality checks (are
//! the quiet recordings really quiet?).

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use acoupi_engine::component::{ComponentResult, SavingFilter};
use acoupi_engine::config::values::{Score, nonzero};
use acoupi_engine::data::{ModelOutput, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

/// Keep 1 in `every` recordings without detections, as a sample for quality checks. A
/// recording is "without detections" when no detection of any model output reaches
/// `min_score`; the first such recording is kept, then every `every`-th after it.
/// Recordings with detections get a no from this filter (other filters decide). The
/// count is kept in memory and restarts when the station restarts. Saving filters are
/// asked in order until one says yes, so this one counts only the recordings it is asked
/// about: list it first to count every recording without detections.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleSavingFilterConfig {
    /// Keep one recording without detections in this many; 1 keeps them all.
    #[serde(deserialize_with = "every_at_least_one")]
    pub every: NonZeroU64,
    /// A detection with at least this score makes a recording one "with detections".
    #[serde(default = "default_min_score")]
    #[schemars(default = "default_min_score")]
    pub min_score: Score,
}

fn default_min_score() -> Score {
    Score(0.5)
}

fn every_at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU64, D::Error> {
    nonzero::<_, u64, _>(
        d,
        "`every` must be at least 1 (keep 1 in `every` recordings without detections)",
    )
}

impl ComponentConfig for SampleSavingFilterConfig {
    const KIND: &'static str = "filter.sample";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::SavingFilter(Arc::new(SampleSavingFilter::new(
            self.every.get(),
            self.min_score.0,
        ))))
    }
}

pub struct SampleSavingFilter {
    every: u64,
    min_score: f64,
    /// Recordings without detections seen since the station started.
    seen: AtomicU64,
}

impl SampleSavingFilter {
    fn new(every: u64, min_score: f64) -> Self {
        SampleSavingFilter {
            every: every.max(1),
            min_score,
            seen: AtomicU64::new(0),
        }
    }
}

impl SavingFilter for SampleSavingFilter {
    fn should_save(&self, _: &Recording, outputs: &[ModelOutput]) -> ComponentResult<bool> {
        if outputs
            .iter()
            .flat_map(|o| &o.detections)
            .any(|d| d.detection_score >= self.min_score)
        {
            return Ok(false);
        }
        let index = self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(index.is_multiple_of(self.every))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    #[test]
    fn keeps_exactly_one_in_n_recordings_without_detections() {
        for every in [1, 2, 3, 10] {
            let filter = SampleSavingFilter::new(every, 0.5);
            let quiet = output(vec![detection(0.49, &[])]);
            let loud = output(vec![detection(0.5, &[])]);
            let r = quiet.recording.clone();
            let mut kept = Vec::new();
            for i in 0..(every * 5) {
                // Recordings with detections in between neither count nor are kept.
                assert!(!filter.should_save(&r, std::slice::from_ref(&loud)).unwrap());
                let outputs = if i % 2 == 0 {
                    vec![quiet.clone()]
                } else {
                    vec![]
                };
                if filter.should_save(&r, &outputs).unwrap() {
                    kept.push(i);
                }
            }
            let expected: Vec<u64> = (0..5).map(|k| k * every).collect();
            assert_eq!(kept, expected, "every = {every}");
        }
    }

    #[test]
    fn min_score_decides_what_counts_as_a_detection() {
        let cases = [
            (0.5, 0.49, true),
            (0.5, 0.5, false),
            (0.9, 0.8, true),
            (0.0, 0.0, false),
        ];
        for (min_score, score, kept) in cases {
            let filter = SampleSavingFilter::new(1, min_score);
            let out = output(vec![detection(score, &[])]);
            let r = out.recording.clone();
            assert_eq!(
                filter.should_save(&r, &[out]).unwrap(),
                kept,
                "min_score {min_score}, score {score}"
            );
        }
    }

    #[test]
    fn every_must_be_at_least_one() {
        let ctx = crate::testing::context(std::path::Path::new("/tmp"), None);
        let config = |every: u64| {
            serde_json::from_value::<SampleSavingFilterConfig>(
                serde_json::json!({ "every": every }),
            )
        };
        assert!(config(1).unwrap().build(&ctx).is_ok());
        assert!(
            config(0)
                .unwrap_err()
                .to_string()
                .contains("`every` must be at least 1")
        );
    }
}

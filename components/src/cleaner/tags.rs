//! Output cleaners that work on tags: `cleaner.top_k` (keep each detection's best tags)
//! and `cleaner.tag_thresholds` (a confidence threshold per tag value, e.g. a stricter one
//! for a species the model over-reports). A detection left with no tag is dropped: a
//! detection without a name reports nothing. Each logs what it dropped at debug level;
//! the detection stage counts the dropped detections.
//!
//! ```toml
//! cleaners = [
//!   { type = "cleaner.tag_thresholds", default = 0.5, thresholds = { "Corvus corone" = 0.8 } },
//!   { type = "cleaner.top_k", k = 1 },
//! ]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, OutputCleaner};
use acoupi_engine::config::values::Score;
use acoupi_engine::data::ModelOutput;
use acoupi_engine::registry::{BuildContext, Built, ComponentConfig};

/// Keep only the `k` most confident tags of each detection (ties keep the earlier tag).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopKCleanerConfig {
    /// How many tags each detection keeps; at least 1.
    #[schemars(range(min = 1))]
    pub k: usize,
    /// Only tags with this key count and are cut (e.g. "species"); tags with other keys
    /// are kept. Default: all tags.
    pub key: Option<String>,
}

impl ComponentConfig for TopKCleanerConfig {
    const KIND: &'static str = "cleaner.top_k";

    fn build(&self, _: &BuildContext) -> Result<Built, String> {
        if self.k == 0 {
            return Err("k must be at least 1 (k = 0 would drop every detection)".into());
        }
        Ok(Built::Cleaner(Arc::new(TopKCleaner {
            k: self.k,
            key: self.key.clone(),
        })))
    }
}

pub struct TopKCleaner {
    k: usize,
    key: Option<String>,
}

impl OutputCleaner for TopKCleaner {
    fn clean(&self, mut output: ModelOutput) -> ComponentResult<ModelOutput> {
        let counts = |key: &Option<String>, tag: &acoupi_engine::data::PredictedTag| {
            key.as_deref().is_none_or(|k| tag.tag.key == k)
        };
        for detection in &mut output.detections {
            let mut ranked: Vec<(usize, f64)> = detection
                .tags
                .iter()
                .enumerate()
                .filter(|(_, t)| counts(&self.key, t))
                .map(|(i, t)| (i, t.confidence_score))
                .collect();
            // Stable: equal scores keep their order.
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            let cut: Vec<usize> = ranked.iter().skip(self.k).map(|(i, _)| *i).collect();
            let mut index = 0;
            detection.tags.retain(|_| {
                let keep = !cut.contains(&index);
                index += 1;
                keep
            });
        }
        Ok(drop_untagged(output, "cleaner.top_k"))
    }
}

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

    fn build(&self, _: &BuildContext) -> Result<Built, String> {
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

/// Drops the detections left without tags, logging how many.
fn drop_untagged(mut output: ModelOutput, cleaner: &str) -> ModelOutput {
    let before = output.detections.len();
    output.detections.retain(|d| !d.tags.is_empty());
    let dropped = before - output.detections.len();
    if dropped > 0 {
        tracing::debug!(dropped, cleaner, model = %output.name_model, "detections left without tags dropped");
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    fn tags(output: &ModelOutput) -> Vec<Vec<(&str, f64)>> {
        output
            .detections
            .iter()
            .map(|d| {
                d.tags
                    .iter()
                    .map(|t| (t.tag.value.as_str(), t.confidence_score))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn top_k_keeps_the_best_tags_in_their_order_per_detection() {
        let input = output(vec![
            detection(
                0.9,
                &[
                    ("species", "a", 0.2),
                    ("species", "b", 0.9),
                    ("species", "c", 0.5),
                    ("common_name", "B", 0.9),
                ],
            ),
            detection(0.4, &[("species", "d", 0.4)]),
        ]);
        let cases: &[(usize, Option<&str>, Vec<Vec<(&str, f64)>>)] = &[
            (1, None, vec![vec![("b", 0.9)], vec![("d", 0.4)]]),
            (
                2,
                None,
                vec![vec![("b", 0.9), ("B", 0.9)], vec![("d", 0.4)]],
            ),
            (
                2,
                Some("species"),
                vec![vec![("b", 0.9), ("c", 0.5), ("B", 0.9)], vec![("d", 0.4)]],
            ),
            (
                9,
                None,
                vec![
                    vec![("a", 0.2), ("b", 0.9), ("c", 0.5), ("B", 0.9)],
                    vec![("d", 0.4)],
                ],
            ),
        ];
        for (k, key, expected) in cases {
            let cleaner = TopKCleaner {
                k: *k,
                key: key.map(String::from),
            };
            assert_eq!(
                &tags(&cleaner.clean(input.clone()).unwrap()),
                expected,
                "k = {k}, key = {key:?}"
            );
        }
    }

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

    #[test]
    fn k_zero_is_refused() {
        let config: TopKCleanerConfig = serde_json::from_str(r#"{"k": 0}"#).unwrap();
        let ctx = crate::testing::context(std::path::Path::new("."), None);
        assert!(
            config
                .build(&ctx)
                .err()
                .unwrap()
                .contains("k must be at least 1")
        );
    }
}

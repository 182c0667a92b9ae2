//! `cleaner.top_k`: keeps each detection's most confident tags; a detection left with no
//! tag is dropped (a detection without a name reports nothing), logged at debug level.
//!
//! ```toml
//! cleaners = [{ type = "cleaner.top_k", k = 1 }]
//! ```

use std::num::NonZeroUsize;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, OutputCleaner};
use acoupi_engine::config::values::nonzero;
use acoupi_engine::data::ModelOutput;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use super::drop_untagged;

/// Keep only the `k` most confident tags of each detection (ties keep the earlier tag).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopKCleanerConfig {
    /// How many tags each detection keeps; at least 1.
    #[serde(deserialize_with = "k_at_least_one")]
    pub k: NonZeroUsize,
    /// Only tags with this key count and are cut (e.g. "species"); tags with other keys
    /// are kept. Default: all tags.
    pub key: Option<String>,
}

fn k_at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroUsize, D::Error> {
    nonzero::<_, usize, _>(d, "k must be at least 1 (k = 0 would drop every detection)")
}

impl ComponentConfig for TopKCleanerConfig {
    const KIND: &'static str = "cleaner.top_k";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::Cleaner(Arc::new(TopKCleaner {
            k: self.k.get(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cleaner::tag_values as tags;
    use crate::testing::{detection, output};

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
        type Case<'a> = (usize, Option<&'a str>, Vec<Vec<(&'a str, f64)>>);
        let cases: &[Case<'_>] = &[
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
    fn k_zero_is_refused() {
        let error = serde_json::from_str::<TopKCleanerConfig>(r#"{"k": 0}"#).unwrap_err();
        assert!(error.to_string().contains("k must be at least 1"));
    }
}

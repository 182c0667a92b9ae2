//! `filter.species`: keeps recordings by tag value (e.g. species), with a list to keep or
//! a list to ignore.

use std::collections::HashSet;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, SavingFilter};
use acoupi_engine::config::values::{NonEmpty, Score};
use acoupi_engine::data::{ModelOutput, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

/// Keep a recording when a detection carries a tag whose value is in `values` (or, with
/// `exclude = true`, a tag whose value is not in it), with detection score and tag
/// confidence at least `threshold`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpeciesFilterConfig {
    /// Tag values, e.g. scientific names.
    pub values: NonEmpty<String>,
    /// Keep recordings with a tag NOT in `values` instead (e.g. everything but house
    /// sparrows).
    #[serde(default)]
    pub exclude: bool,
    /// Only tags with this key count (e.g. "species"); default: any key.
    pub key: Option<String>,
    /// Minimum detection score and tag confidence.
    #[serde(default = "default_threshold")]
    #[schemars(default = "default_threshold")]
    pub threshold: Score,
}

fn default_threshold() -> Score {
    Score(0.5)
}

impl ComponentConfig for SpeciesFilterConfig {
    const KIND: &'static str = "filter.species";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::SavingFilter(Arc::new(SpeciesFilter {
            values: self.values.0.iter().cloned().collect(),
            exclude: self.exclude,
            key: self.key.clone(),
            threshold: self.threshold.0,
        })))
    }
}

pub struct SpeciesFilter {
    values: HashSet<String>,
    exclude: bool,
    key: Option<String>,
    threshold: f64,
}

impl SavingFilter for SpeciesFilter {
    fn should_save(&self, _: &Recording, outputs: &[ModelOutput]) -> ComponentResult<bool> {
        Ok(outputs
            .iter()
            .flat_map(|o| &o.detections)
            .filter(|d| d.detection_score >= self.threshold)
            .flat_map(|d| &d.tags)
            .filter(|t| {
                t.confidence_score >= self.threshold
                    && self.key.as_ref().is_none_or(|k| *k == t.tag.key)
            })
            .any(|t| self.values.contains(&t.tag.value) != self.exclude))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};

    fn filter(exclude: bool, key: Option<&str>) -> SpeciesFilter {
        SpeciesFilter {
            values: ["Turdus merula".to_string()].into(),
            exclude,
            key: key.map(String::from),
            threshold: 0.5,
        }
    }

    #[test]
    fn table() {
        let blackbird = output(vec![detection(0.9, &[("species", "Turdus merula", 0.8)])]);
        let weak_blackbird = output(vec![detection(0.9, &[("species", "Turdus merula", 0.3)])]);
        let sparrow = output(vec![detection(
            0.9,
            &[("species", "Passer domesticus", 0.9)],
        )]);
        let other_key = output(vec![detection(0.9, &[("call", "Turdus merula", 0.9)])]);
        let r = blackbird.recording.clone();
        let cases = [
            (filter(false, None), &blackbird, true),
            (filter(false, None), &weak_blackbird, false),
            (filter(false, None), &sparrow, false),
            (filter(true, None), &sparrow, true),
            (filter(true, None), &blackbird, false),
            (filter(false, Some("species")), &other_key, false),
            (filter(false, None), &other_key, true),
        ];
        for (i, (f, out, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                f.should_save(&r, std::slice::from_ref(out)).unwrap(),
                expected,
                "case {i}"
            );
        }
    }
}

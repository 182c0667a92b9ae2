//! `manager.by_tag`: keeps each recording in a folder named after its top tag (e.g. its
//! species), chosen by key, threshold and an optional list of values; recordings without
//! such a tag go to a fallback folder or to the next manager. Templates and sanitising
//! are in [`crate::shared::template`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, SavingManager};
use acoupi_engine::config::values::{NonEmpty, Score};
use acoupi_engine::data::{ModelOutput, PredictedTag, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use crate::shared::template::{self, Fields, FolderTemplate, Template, TopTag};

/// Keep each recording in a folder named after its top tag (`{top_tag}`, e.g. the
/// species): the most confident tag with `key` whose confidence and detection score both
/// reach `threshold` and, with `tags`, whose value is listed. A recording without such a
/// tag goes to `fallback`; without a fallback, the next manager is asked.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByTagManagerConfig {
    /// Only tags with this key count (e.g. "species"); default: any key.
    pub key: Option<String>,
    /// Minimum tag confidence and detection score of the top tag.
    #[serde(default = "default_threshold")]
    #[schemars(default = "default_threshold")]
    pub threshold: Score,
    /// Only these tag values get their own folder (e.g. the species of interest); default:
    /// any value.
    pub tags: Option<NonEmpty<String>>,
    /// Folder levels under the root, separated by `/`; each level is a template, with
    /// `{top_tag}` and `{score}` the chosen tag and its confidence (e.g.
    /// `{top_tag}/{year}-{month}`).
    #[serde(default = "default_folders")]
    #[schemars(default = "default_folders_text")]
    pub folders: FolderTemplate,
    /// File name template (`.wav` is added when missing).
    #[serde(default = "template::default_filename")]
    #[schemars(default = "template::default_filename_text")]
    pub filename: Template,
    /// Root folder (relative to the pipeline file). Default: `[paths] recordings`.
    pub root: Option<PathBuf>,
    /// Folder levels for recordings without a qualifying tag (e.g. `unsorted`); there
    /// `{top_tag}` and `{score}` are the best guess: the most confident tag with `key`,
    /// whatever its score or value (empty without one). Default: none, the next manager is
    /// asked.
    pub fallback: Option<FolderTemplate>,
}

fn default_threshold() -> Score {
    Score(0.5)
}
fn default_folders_text() -> &'static str {
    "{top_tag}"
}
fn default_folders() -> FolderTemplate {
    FolderTemplate::parse(default_folders_text()).unwrap_or_default()
}

impl ComponentConfig for ByTagManagerConfig {
    const KIND: &'static str = "manager.by_tag";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::Manager(Arc::new(ByTagManager {
            root: template::manager_root(ctx, self.root.as_deref()),
            key: self.key.clone(),
            threshold: self.threshold.0,
            tags: self
                .tags
                .as_ref()
                .map(|tags| tags.0.iter().cloned().collect()),
            folders: self.folders.clone(),
            filename: self.filename.clone(),
            fallback: self.fallback.clone(),
            timezone: ctx.settings.deployment.timezone,
        })))
    }
}

pub struct ByTagManager {
    root: PathBuf,
    key: Option<String>,
    threshold: f64,
    tags: Option<HashSet<String>>,
    folders: FolderTemplate,
    filename: Template,
    fallback: Option<FolderTemplate>,
    timezone: chrono_tz::Tz,
}

impl SavingManager for ByTagManager {
    fn save(
        &self,
        recording: &Recording,
        outputs: &[ModelOutput],
    ) -> ComponentResult<Option<PathBuf>> {
        // Every tag with the key, with the score of its detection.
        let keyed = || {
            outputs
                .iter()
                .flat_map(|o| &o.detections)
                .flat_map(|d| d.tags.iter().map(move |t| (d.detection_score, t)))
                .filter(|(_, t)| self.key.as_ref().is_none_or(|key| *key == t.tag.key))
        };
        let qualifies = |(detection_score, t): &(f64, &PredictedTag)| {
            *detection_score >= self.threshold
                && t.confidence_score >= self.threshold
                && self
                    .tags
                    .as_ref()
                    .is_none_or(|tags| tags.contains(&t.tag.value))
        };
        let fields = Fields::new(recording, outputs, self.timezone);
        if let Some(top) = TopTag::most_confident(keyed().filter(qualifies).map(|(_, t)| t)) {
            return template::destination(
                &self.root,
                &self.folders,
                &self.filename,
                &fields.with_top_tag(Some(top)),
            )
            .map(Some);
        }
        let Some(fallback) = &self.fallback else {
            return Ok(None);
        };
        let guess = TopTag::most_confident(keyed().map(|(_, t)| t));
        template::destination(
            &self.root,
            fallback,
            &self.filename,
            &fields.with_top_tag(guess),
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::template::tests::{ROOT, check_destination, hostile_text, save_relative};
    use crate::testing::{detection, output};
    use proptest::prelude::*;
    use serde_json::json;

    type Tags<'a> = &'a [(&'a str, &'a str, f64)];
    /// A case: its name, the config, the detections (score, tags), the expected
    /// destination under the root.
    type Case<'a> = (
        &'a str,
        serde_json::Value,
        Vec<(f64, Tags<'a>)>,
        Option<&'a str>,
    );

    /// Where `config` (with `filename = "{top_tag}_{score}"` unless it says otherwise)
    /// puts a recording whose one output has `detections`, relative to the root.
    fn save(mut config: serde_json::Value, detections: &[(f64, Tags<'_>)]) -> Option<String> {
        if config.get("filename").is_none() {
            config["filename"] = json!("{top_tag}_{score}");
        }
        let out = output(
            detections
                .iter()
                .map(|(score, tags)| detection(*score, tags))
                .collect(),
        );
        save_relative::<ByTagManagerConfig>(config, std::slice::from_ref(&out))
    }

    const BLACKBIRD: (&str, &str, f64) = ("species", "Turdus merula", 0.9);
    const TIT: (&str, &str, f64) = ("species", "Parus major", 0.6);

    #[test]
    fn manager_by_tag_table() {
        let cases: Vec<Case<'_>> = vec![
            (
                "top tag",
                json!({}),
                vec![(0.9, &[BLACKBIRD])],
                Some("Turdus merula/Turdus merula_0.90.wav"),
            ),
            (
                "most confident of two",
                json!({}),
                vec![(0.9, &[TIT]), (0.9, &[BLACKBIRD])],
                Some("Turdus merula/Turdus merula_0.90.wav"),
            ),
            (
                "folder tree",
                json!({ "folders": "{top_tag}/{year}-{month}" }),
                vec![(0.9, &[BLACKBIRD])],
                Some("Turdus merula/2026-05/Turdus merula_0.90.wav"),
            ),
            ("no detections", json!({}), vec![], None),
            (
                "weak tag",
                json!({}),
                vec![(0.9, &[("species", "Turdus merula", 0.49)])],
                None,
            ),
            (
                "weak detection",
                json!({}),
                vec![(0.49, &[BLACKBIRD])],
                None,
            ),
            (
                "both at the threshold",
                json!({}),
                vec![(0.5, &[("species", "Turdus merula", 0.5)])],
                Some("Turdus merula/Turdus merula_0.50.wav"),
            ),
            (
                "just under a raised threshold",
                json!({ "threshold": 0.8 }),
                vec![(0.9, &[("species", "Turdus merula", 0.79)])],
                None,
            ),
            (
                "at a raised threshold",
                json!({ "threshold": 0.8 }),
                vec![(0.8, &[("species", "Turdus merula", 0.8)])],
                Some("Turdus merula/Turdus merula_0.80.wav"),
            ),
            (
                "threshold 0 takes any tag",
                json!({ "threshold": 0.0 }),
                vec![(0.0, &[("species", "Turdus merula", 0.0)])],
                Some("Turdus merula/Turdus merula_0.00.wav"),
            ),
            (
                "weak best, strong second",
                json!({}),
                vec![
                    (
                        0.9,
                        &[
                            ("species", "Turdus merula", 0.4),
                            ("species", "Parus major", 0.45),
                        ],
                    ),
                    (0.9, &[TIT]),
                ],
                Some("Parus major/Parus major_0.60.wav"),
            ),
            (
                "other key ignored",
                json!({ "key": "species" }),
                vec![(0.9, &[("call", "song", 0.95), TIT])],
                Some("Parus major/Parus major_0.60.wav"),
            ),
            (
                "only another key",
                json!({ "key": "species" }),
                vec![(0.9, &[("call", "Turdus merula", 0.95)])],
                None,
            ),
            (
                "any key by default",
                json!({}),
                vec![(0.9, &[("call", "song", 0.95), TIT])],
                Some("song/song_0.95.wav"),
            ),
            (
                "listed tag",
                json!({ "tags": ["Parus major"] }),
                vec![(0.9, &[BLACKBIRD, TIT])],
                Some("Parus major/Parus major_0.60.wav"),
            ),
            (
                "unlisted tag",
                json!({ "tags": ["Parus major"] }),
                vec![(0.9, &[BLACKBIRD])],
                None,
            ),
            (
                "unlisted tag, fallback with the best guess",
                json!({ "tags": ["Parus major"], "fallback": "other/{top_tag}" }),
                vec![(0.9, &[BLACKBIRD])],
                Some("other/Turdus merula/Turdus merula_0.90.wav"),
            ),
            (
                "weak tag, fallback",
                json!({ "fallback": "unsure" }),
                vec![(0.9, &[("species", "Turdus merula", 0.3)])],
                Some("unsure/Turdus merula_0.30.wav"),
            ),
            (
                "fallback guess keeps the key",
                json!({ "key": "species", "fallback": "unsure/{top_tag}" }),
                vec![(
                    0.9,
                    &[("call", "song", 0.95), ("species", "Turdus merula", 0.3)],
                )],
                Some("unsure/Turdus merula/Turdus merula_0.30.wav"),
            ),
            (
                "fallback without any tag",
                json!({ "fallback": "unsure/{top_tag}", "filename": "x" }),
                vec![],
                Some("unsure/_/x.wav"),
            ),
            (
                "fallback into the root",
                json!({ "fallback": "", "filename": "x" }),
                vec![(0.1, &[])],
                Some("x.wav"),
            ),
            (
                "hostile tag value",
                json!({}),
                vec![(0.9, &[("species", "../../etc", 0.9)])],
                Some(".._.._etc/.._.._etc_0.90.wav"),
            ),
            (
                "tag with a slash",
                json!({}),
                vec![(0.9, &[("species", "Turdus merula/philomelos", 0.9)])],
                Some("Turdus merula_philomelos/Turdus merula_philomelos_0.90.wav"),
            ),
        ];
        for (name, config, detections, expected) in cases {
            assert_eq!(
                save(config, &detections).as_deref(),
                expected,
                "case `{name}`"
            );
        }
    }

    #[test]
    fn manager_by_tag_best_tag_across_outputs_and_no_outputs() {
        let outputs = [
            output(vec![detection(0.9, &[TIT])]),
            output(vec![detection(0.9, &[BLACKBIRD])]),
        ];
        assert_eq!(
            save_relative::<ByTagManagerConfig>(json!({ "filename": "{top_tag}" }), &outputs)
                .as_deref(),
            Some("Turdus merula/Turdus merula.wav")
        );
        assert_eq!(save_relative::<ByTagManagerConfig>(json!({}), &[]), None);
        assert_eq!(
            save_relative::<ByTagManagerConfig>(
                json!({ "fallback": "none", "filename": "x" }),
                &[]
            )
            .as_deref(),
            Some("none/x.wav")
        );
    }

    #[test]
    fn manager_by_tag_config_is_checked_when_loaded() {
        for (config, error) in [
            (json!({ "tags": [] }), "at least one item"),
            (json!({ "threshold": 1.5 }), "out of range"),
            (
                json!({ "fallback": "../elsewhere" }),
                "levels stay under the root",
            ),
            (json!({ "folders": "{top_tag}//x" }), "empty folder level"),
            (json!({ "folders": "{species}" }), "unknown template field"),
            (json!({ "dir": "x" }), "unknown field"),
        ] {
            let message = serde_json::from_value::<ByTagManagerConfig>(config.clone())
                .unwrap_err()
                .to_string();
            assert!(message.contains(error), "{config}: {message}");
        }
    }

    proptest! {
        #[test]
        fn manager_by_tag_destinations_stay_inside_the_root(
            tag in hostile_text(),
            deployment in hostile_text(),
            score in 0.0..=1.0f64,
            folders in prop::sample::select(vec!["{top_tag}", "{top_tag}/{year}-{month}", "{deployment}/{top_tag}/{day}"]),
            fallback in prop::sample::select(vec!["unsorted", "{deployment}/{top_tag}", "{top_tag}"]),
        ) {
            let mut out = output(vec![detection(score, &[("species", &tag, score)])]);
            out.recording.deployment.name = deployment;
            let config = json!({ "folders": folders, "fallback": fallback, "filename": "{deployment}_{top_tag}" });
            let levels = FolderTemplate::parse(if score >= 0.5 { folders } else { fallback }).unwrap().depth();
            let Some(path) = save_relative::<ByTagManagerConfig>(config, &[out]) else { return Err(TestCaseError::fail("no destination")) };
            check_destination(std::path::Path::new(ROOT), &std::path::Path::new(ROOT).join(path), levels)?;
        }
    }
}

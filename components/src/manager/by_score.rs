//! `manager.by_score`: sorts kept recordings into a "true" and a "false" detections
//! folder by their best detection score (acoupi's SaveRecordingManager). Templates and
//! sanitising are in [`crate::shared::template`].

use std::path::PathBuf;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, SavingManager};
use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::Score;
use acoupi_engine::data::{ModelOutput, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use crate::shared::template::{self, Fields, FolderTemplate, Template};

/// Sort recordings by their best detection score (acoupi's SaveRecordingManager): without
/// model outputs, into the root; with a detection scoring at least `detection_threshold`,
/// into `true_folder`; else with one at least `saving_threshold`, into `false_folder`;
/// else the next manager is asked.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ByScoreManagerConfig {
    /// Root folder (relative to the pipeline file). Default: `[paths] recordings`.
    pub root: Option<PathBuf>,
    /// Folder (levels separated by `/`, each a template) under the root for recordings
    /// with a detection at or above `detection_threshold`.
    #[serde(default = "default_true_folder")]
    #[schemars(default = "default_true_folder_text")]
    pub true_folder: FolderTemplate,
    /// Folder under the root for recordings whose best detection is at or above
    /// `saving_threshold` but below `detection_threshold`.
    #[serde(default = "default_false_folder")]
    #[schemars(default = "default_false_folder_text")]
    pub false_folder: FolderTemplate,
    /// Detection score from which a recording is a true detection.
    #[serde(default = "default_detection_threshold")]
    #[schemars(default = "default_detection_threshold")]
    pub detection_threshold: Score,
    /// Detection score from which a recording is kept at all; at most
    /// `detection_threshold`.
    #[serde(default = "default_saving_threshold")]
    #[schemars(default = "default_saving_threshold")]
    pub saving_threshold: Score,
    /// File name template (`.wav` is added when missing).
    #[serde(default = "template::default_filename")]
    #[schemars(default = "template::default_filename_text")]
    pub filename: Template,
}

fn default_true_folder_text() -> &'static str {
    "true_detections"
}
fn default_false_folder_text() -> &'static str {
    "false_detections"
}
fn default_true_folder() -> FolderTemplate {
    FolderTemplate::parse(default_true_folder_text()).unwrap_or_default()
}
fn default_false_folder() -> FolderTemplate {
    FolderTemplate::parse(default_false_folder_text()).unwrap_or_default()
}
fn default_detection_threshold() -> Score {
    Score(0.6)
}
fn default_saving_threshold() -> Score {
    Score(0.3)
}

impl ComponentConfig for ByScoreManagerConfig {
    const KIND: &'static str = "manager.by_score";

    fn check(&self) -> Vec<KeyProblem> {
        let (saving, detection) = (self.saving_threshold.0, self.detection_threshold.0);
        if saving > detection {
            return vec![KeyProblem::new(
                &["saving_threshold"],
                Code::OutOfRange,
                format!(
                    "`saving_threshold` {saving} is above `detection_threshold` {detection}: it must be at most the detection threshold"
                ),
            )];
        }
        Vec::new()
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let (saving, detection) = (self.saving_threshold.0, self.detection_threshold.0);
        Ok(Built::Manager(Arc::new(ByScoreManager {
            root: template::manager_root(ctx, self.root.as_deref()),
            true_folder: self.true_folder.clone(),
            false_folder: self.false_folder.clone(),
            detection_threshold: detection,
            saving_threshold: saving,
            filename: self.filename.clone(),
            timezone: ctx.settings.deployment.timezone,
        })))
    }
}

pub struct ByScoreManager {
    root: PathBuf,
    true_folder: FolderTemplate,
    false_folder: FolderTemplate,
    detection_threshold: f64,
    saving_threshold: f64,
    filename: Template,
    timezone: chrono_tz::Tz,
}

impl SavingManager for ByScoreManager {
    fn save(
        &self,
        recording: &Recording,
        outputs: &[ModelOutput],
    ) -> ComponentResult<Option<PathBuf>> {
        let best = outputs
            .iter()
            .flat_map(|o| &o.detections)
            .map(|d| d.detection_score)
            .max_by(f64::total_cmp);
        let folders = match best {
            _ if outputs.is_empty() => &FolderTemplate::default(),
            Some(score) if score >= self.detection_threshold => &self.true_folder,
            Some(score) if score >= self.saving_threshold => &self.false_folder,
            _ => return Ok(None),
        };
        let fields = Fields::new(recording, outputs, self.timezone);
        template::destination(&self.root, folders, &self.filename, &fields).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::template::tests::save_relative;
    use crate::testing::{detection, output};
    use serde_json::json;

    /// A case: its name, the config, the detection scores of each output, the expected
    /// destination under the root.
    type Case<'a> = (&'a str, serde_json::Value, Vec<&'a [f64]>, Option<&'a str>);

    /// Where `config` (with `filename = "f"`) puts a recording with one output per list of
    /// detection scores, relative to the root.
    fn save(mut config: serde_json::Value, outputs: &[&[f64]]) -> Option<String> {
        config["filename"] = json!("f");
        let outputs: Vec<_> = outputs
            .iter()
            .map(|scores| {
                output(
                    scores
                        .iter()
                        .map(|s| detection(*s, &[("species", "Turdus merula", 0.9)]))
                        .collect(),
                )
            })
            .collect();
        save_relative::<ByScoreManagerConfig>(config, &outputs)
    }

    #[test]
    fn manager_by_score_table() {
        let custom = json!({ "true_folder": "yes/{year}", "false_folder": "maybe", "detection_threshold": 0.9, "saving_threshold": 0.5 });
        let cases: Vec<Case<'_>> = vec![
            ("no outputs: the root", json!({}), vec![], Some("f.wav")),
            ("an output without detections", json!({}), vec![&[]], None),
            (
                "at the detection threshold",
                json!({}),
                vec![&[0.6]],
                Some("true_detections/f.wav"),
            ),
            (
                "above it",
                json!({}),
                vec![&[1.0]],
                Some("true_detections/f.wav"),
            ),
            (
                "just under it",
                json!({}),
                vec![&[0.59]],
                Some("false_detections/f.wav"),
            ),
            (
                "at the saving threshold",
                json!({}),
                vec![&[0.3]],
                Some("false_detections/f.wav"),
            ),
            (
                "just under it: next manager",
                json!({}),
                vec![&[0.29]],
                None,
            ),
            ("zero", json!({}), vec![&[0.0]], None),
            (
                "any detection counts",
                json!({}),
                vec![&[0.1, 0.7, 0.2]],
                Some("true_detections/f.wav"),
            ),
            (
                "any output counts",
                json!({}),
                vec![&[0.1], &[0.4]],
                Some("false_detections/f.wav"),
            ),
            (
                "custom folders, true",
                custom.clone(),
                vec![&[0.95]],
                Some("yes/2026/f.wav"),
            ),
            (
                "custom folders, false",
                custom.clone(),
                vec![&[0.6]],
                Some("maybe/f.wav"),
            ),
            ("custom thresholds, dropped", custom, vec![&[0.49]], None),
            (
                "equal thresholds",
                json!({ "detection_threshold": 0.5, "saving_threshold": 0.5 }),
                vec![&[0.5]],
                Some("true_detections/f.wav"),
            ),
            (
                "equal thresholds, under",
                json!({ "detection_threshold": 0.5, "saving_threshold": 0.5 }),
                vec![&[0.49]],
                None,
            ),
            (
                "folders in the root",
                json!({ "true_folder": "", "false_folder": "" }),
                vec![&[0.4]],
                Some("f.wav"),
            ),
        ];
        for (name, config, outputs, expected) in cases {
            assert_eq!(save(config, &outputs).as_deref(), expected, "case `{name}`");
        }
    }

    #[test]
    fn manager_by_score_default_file_name() {
        let out = output(vec![detection(0.9, &[])]);
        let path = save_relative::<ByScoreManagerConfig>(json!({}), std::slice::from_ref(&out));
        assert_eq!(
            path,
            Some(format!(
                "true_detections/20260504_120000_{}.wav",
                out.recording.id
            ))
        );
    }

    #[test]
    fn manager_by_score_and_by_tag_load_from_a_pipeline_file() {
        let source = r#"
[deployment]
name = "test"

[stages.manage]
kind = "management"
schedule = { every = "1min" }
managers = [
  { type = "manager.by_tag", key = "species", tags = ["Turdus merula"], folders = "{top_tag}/{year}-{month}", fallback = "unsorted" },
  { type = "manager.by_score", saving_threshold = 0.2, true_folder = "birds" },
]
"#;
        let load = |source: &str| {
            acoupi_engine::config::load_str(
                std::path::Path::new("station.toml"),
                source,
                &crate::registry(),
            )
        };
        let pipeline = load(source).unwrap();
        let kinds: Vec<_> = pipeline
            .components
            .iter()
            .map(|c| c.settings.kind())
            .collect();
        assert_eq!(kinds, ["manager.by_tag", "manager.by_score"]);
        let errors = load(
            &source
                .replace("saving_threshold = 0.2", "saving_threshold = 2")
                .replace("\"unsorted\"", "\"../x\""),
        )
        .unwrap_err()
        .to_string();
        assert!(
            errors.contains("station.toml:9:") && errors.contains("levels stay under the root"),
            "{errors}"
        );
        assert!(
            errors.contains("station.toml:10:") && errors.contains("out of range"),
            "{errors}"
        );
    }

    #[test]
    fn manager_by_score_thresholds_are_checked() {
        let config: ByScoreManagerConfig =
            serde_json::from_value(json!({ "saving_threshold": 0.7 })).unwrap();
        let problems = config.check();
        let error = &problems[0].message;
        assert_eq!(problems[0].key, ["saving_threshold"]);
        assert!(
            error.contains("`saving_threshold` 0.7 is above `detection_threshold` 0.6"),
            "{error}"
        );
        assert!(
            serde_json::from_value::<ByScoreManagerConfig>(json!({ "detection_threshold": -0.1 }))
                .is_err()
        );
        assert!(
            serde_json::from_value::<ByScoreManagerConfig>(json!({ "true_folder": ".." })).is_err()
        );
        assert!(
            serde_json::from_value::<ByScoreManagerConfig>(json!({ "dir_true": "x" })).is_err()
        );
    }
}

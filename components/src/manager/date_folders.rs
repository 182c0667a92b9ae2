//! `manager.date_folders`: keeps recordings in a date folder tree under the recordings
//! root, named by a template (acoupi's DateFileManager, with templates). The templates,
//! their fields and the sanitising that keeps every file inside the root are in
//! [`crate::shared::template`].

use std::path::PathBuf;
use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, SavingManager};
use acoupi_engine::data::{ModelOutput, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use crate::shared::template::{self, Fields, FolderTemplate, Template};

/// Keep recordings in dated folders (`{year}/{month}/{day}` by default) under the
/// recordings root, with a file name from a template. Fields: `year`, `month`, `day`,
/// `datetime`, `id`, `deployment`, `model`, `top_tag` (the most confident tag of any
/// detection), `score` (its confidence), `samplerate`; values are sanitised so that no
/// value can leave the root or add a folder level.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DateFoldersManagerConfig {
    /// Folder levels under the root, separated by `/`; each level is a template.
    #[serde(default = "default_folders")]
    #[schemars(default = "default_folders_text")]
    pub folders: FolderTemplate,
    /// File name template (`.wav` is added when missing).
    #[serde(default = "template::default_filename")]
    #[schemars(default = "template::default_filename_text")]
    pub filename: Template,
    /// Root folder (relative to the pipeline file). Default: `[paths] recordings`.
    pub root: Option<PathBuf>,
}

fn default_folders_text() -> &'static str {
    "{year}/{month}/{day}"
}
fn default_folders() -> FolderTemplate {
    FolderTemplate::parse(default_folders_text()).unwrap_or_default()
}

impl ComponentConfig for DateFoldersManagerConfig {
    const KIND: &'static str = "manager.date_folders";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::Manager(Arc::new(DateFoldersManager {
            root: template::manager_root(ctx, self.root.as_deref()),
            folders: self.folders.clone(),
            filename: self.filename.clone(),
            timezone: ctx.settings.deployment.timezone,
        })))
    }
}

pub struct DateFoldersManager {
    root: PathBuf,
    folders: FolderTemplate,
    filename: Template,
    timezone: chrono_tz::Tz,
}

impl SavingManager for DateFoldersManager {
    fn save(
        &self,
        recording: &Recording,
        outputs: &[ModelOutput],
    ) -> ComponentResult<Option<PathBuf>> {
        let fields = Fields::new(recording, outputs, self.timezone);
        template::destination(&self.root, &self.folders, &self.filename, &fields).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{detection, output};
    use chrono::{TimeZone, Utc};

    #[test]
    fn date_folders_in_the_deployment_timezone() {
        let config: DateFoldersManagerConfig =
            serde_json::from_value(serde_json::json!({ "root": "/data/recordings" })).unwrap();
        let mut ctx = crate::testing::context(std::path::Path::new("/station"), None);
        ctx.settings.deployment.timezone = chrono_tz::Europe::London;
        let Built::Manager(manager) = config.build(&ctx).unwrap() else {
            panic!("not a manager")
        };
        let mut out = output(vec![detection(0.9, &[("species", "Turdus merula", 0.9)])]);
        out.recording.created_on = Utc.with_ymd_and_hms(2026, 6, 30, 23, 30, 0).unwrap(); // 00:30 BST on 1 July
        let path = manager
            .save(&out.recording, std::slice::from_ref(&out))
            .unwrap()
            .unwrap();
        assert_eq!(
            path,
            PathBuf::from(format!(
                "/data/recordings/2026/07/01/20260701_003000_{}.wav",
                out.recording.id
            ))
        );
    }
}

//! `recorder.replay`: serves WAV files from a folder as if they had just been recorded, so
//! tests, demos and simulations run without audio hardware.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acoupi_engine::component::{ComponentError, ComponentResult, Recorder};
use acoupi_engine::config::values::TimeExpansion;
use acoupi_engine::data::{Deployment, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use crate::shared::audio::wav_info;

/// Replay WAV files from a folder as if just recorded: one per trigger, in name or
/// modification-time order, each copied (not moved) into the temp folder with a fresh
/// Recording.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRecorderConfig {
    /// Folder holding the WAV files (relative to the pipeline file); `*.wav`, any case.
    pub folder: PathBuf,
    /// Order in which files are served.
    #[serde(default)]
    pub order: ReplayOrder,
    /// Start again from the first file after the last one. Without it, a trigger after the
    /// last file is an error that the recording stage logs.
    #[serde(default, rename = "loop")]
    pub repeat: bool,
    /// Time expansion factor of the files (10 for recordings slowed down ten times).
    /// Default: each file's GUANO `TE` when it has one, else 1.
    pub time_expansion: Option<TimeExpansion>,
}

/// The order files are replayed in.
#[derive(
    Debug, Clone, Copy, Default, serde::Deserialize, schemars::JsonSchema, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOrder {
    /// By file name.
    #[default]
    Name,
    /// By modification time, oldest first.
    Modified,
}

impl ComponentConfig for ReplayRecorderConfig {
    const KIND: &'static str = "recorder.replay";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let folder = ctx.resolve(&self.folder);
        let files = list_wavs(&folder, self.order).map_err(|e| BuildError::at(&["folder"], e))?;
        if files.is_empty() {
            return Err(BuildError::at(
                &["folder"],
                format!("no WAV files in `{}`", folder.display()),
            ));
        }
        Ok(Built::Recorder(Arc::new(ReplayRecorder {
            files,
            next: Mutex::new(0),
            repeat: self.repeat,
            time_expansion: self.time_expansion.map(|te| te.0),
        })))
    }
}

fn list_wavs(folder: &Path, order: ReplayOrder) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(folder)
        .map_err(|e| format!("cannot read folder `{}`: {e}", folder.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read folder `{}`: {e}", folder.display()))?;
        let path = entry.path();
        let is_wav = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
        if is_wav && path.is_file() {
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            files.push((modified, path));
        }
    }
    match order {
        ReplayOrder::Name => files.sort_by(|a, b| a.1.cmp(&b.1)),
        ReplayOrder::Modified => files.sort(),
    }
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

pub struct ReplayRecorder {
    files: Vec<PathBuf>,
    next: Mutex<usize>,
    repeat: bool,
    time_expansion: Option<f64>,
}

impl ReplayRecorder {
    fn next_file(&self) -> ComponentResult<&Path> {
        let mut next = self
            .next
            .lock()
            .map_err(|_| ComponentError::Other("replay state poisoned".into()))?;
        if *next >= self.files.len() {
            if !self.repeat {
                return Err(ComponentError::Other(format!(
                    "all {} files have been replayed (set `loop = true` to start again)",
                    self.files.len()
                )));
            }
            *next = 0;
        }
        let file = &self.files[*next];
        *next += 1;
        Ok(file)
    }
}

impl Recorder for ReplayRecorder {
    fn record(&self, deployment: &Deployment, temp_dir: &Path) -> ComponentResult<Recording> {
        let source = self.next_file()?;
        let info = wav_info(source)?;
        let mut recording =
            Recording::new(deployment.clone(), info.duration_seconds(), info.samplerate)?;
        recording.audio_channels = u32::from(info.channels);
        recording.time_expansion = match self.time_expansion {
            Some(te) => te,
            None => match acoupi_engine::guano::read(source) {
                Ok(guano) => guano.and_then(|g| g.time_expansion()).unwrap_or(1.0),
                Err(error) => {
                    tracing::debug!(file = %source.display(), %error, "no GUANO read; time expansion 1");
                    1.0
                }
            },
        };
        let stem = source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("replay");
        let id = recording.id.simple().to_string();
        let name = format!(
            "{}_{}_{stem}.wav",
            recording.created_on.format("%Y%m%d_%H%M%S"),
            &id[..8]
        );
        std::fs::create_dir_all(temp_dir)
            .map_err(|e| ComponentError::io("cannot create temp folder", temp_dir, e))?;
        let target = temp_dir.join(name);
        if let Err(error) = std::fs::copy(source, &target) {
            // A copy cut short (a full disk) must not stay behind as a recording.
            let _ = std::fs::remove_file(&target);
            return Err(ComponentError::io(
                "cannot copy replayed file to",
                &target,
                error,
            ));
        }
        recording.path = Some(target);
        recording.validate()?;
        Ok(recording)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::audio::testing::write_wav;

    fn recorder(folder: &Path, repeat: bool) -> ReplayRecorder {
        ReplayRecorder {
            files: list_wavs(folder, ReplayOrder::Name).unwrap(),
            next: Mutex::new(0),
            repeat,
            time_expansion: None,
        }
    }

    #[test]
    fn serves_files_in_name_order_as_fresh_recordings() {
        let source = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        write_wav(&source.path().join("b.wav"), 16_000, 1, 0.5, |_| 0.0);
        write_wav(&source.path().join("a.WAV"), 8_000, 2, 1.0, |_| 0.0);
        std::fs::write(source.path().join("notes.txt"), "not audio").unwrap();
        let replay = recorder(source.path(), false);
        let deployment = Deployment::new("site");

        let first = replay.record(&deployment, temp.path()).unwrap();
        assert_eq!((first.samplerate, first.audio_channels), (8_000, 2));
        assert!((first.duration - 1.0).abs() < 1e-9);
        let path = first.path.clone().unwrap();
        assert!(path.starts_with(temp.path()) && path.exists());
        assert!(
            source.path().join("a.WAV").exists(),
            "the source is copied, not moved"
        );

        let second = replay.record(&deployment, temp.path()).unwrap();
        assert_eq!(second.samplerate, 16_000);
        assert_ne!(first.id, second.id);
        let err = replay
            .record(&deployment, temp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("all 2 files"), "{err}");
    }

    #[test]
    fn loops_when_asked() {
        let source = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        write_wav(&source.path().join("a.wav"), 8_000, 1, 0.1, |_| 0.0);
        let replay = recorder(source.path(), true);
        let deployment = Deployment::new("site");
        for _ in 0..3 {
            replay.record(&deployment, temp.path()).unwrap();
        }
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 3);
    }

    #[test]
    fn time_expansion_comes_from_the_files_guano_unless_configured() {
        use acoupi_engine::guano::{Guano, write};
        let source = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        write_wav(&source.path().join("a.wav"), 25_600, 1, 0.1, |_| 0.0);
        write_wav(&source.path().join("b.wav"), 25_600, 1, 0.1, |_| 0.0);
        let mut guano = Guano::default();
        guano.set("TE", "10");
        write(&source.path().join("a.wav"), &guano).unwrap();
        let deployment = Deployment::new("site");
        let replay = recorder(source.path(), false);
        assert_eq!(
            replay
                .record(&deployment, temp.path())
                .unwrap()
                .time_expansion,
            10.0,
            "from GUANO"
        );
        assert_eq!(
            replay
                .record(&deployment, temp.path())
                .unwrap()
                .time_expansion,
            1.0,
            "no GUANO"
        );
        let mut configured = recorder(source.path(), false);
        configured.time_expansion = Some(5.0);
        assert_eq!(
            configured
                .record(&deployment, temp.path())
                .unwrap()
                .time_expansion,
            5.0,
            "the config wins"
        );
    }
}

//! `processing.min_rms`: skips recordings that are nearly silent, so the model does not
//! spend time on an unplugged microphone or a windless night.

use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, ProcessingFilter};
use acoupi_engine::data::Recording;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use crate::shared::audio::{read_mono_blocks, recording_file};

/// Run the model only on recordings whose RMS level is at least a threshold in dBFS
/// (0 dBFS = full scale; a quiet field recording is around -60 dBFS).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinRmsFilterConfig {
    /// Minimum RMS level in dBFS, at most 0.
    #[serde(default = "default_min_dbfs")]
    #[schemars(default = "default_min_dbfs")]
    pub min_dbfs: MinDbfs,
}

acoupi_engine::bounded_f64!(
    /// An RMS level in dBFS, at most 0 (full scale).
    MinDbfs, "min_dbfs", Unbounded, Included(0.0)
);

fn default_min_dbfs() -> MinDbfs {
    MinDbfs(-70.0)
}

impl ComponentConfig for MinRmsFilterConfig {
    const KIND: &'static str = "processing.min_rms";

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::ProcessingFilter(Arc::new(MinRmsFilter {
            min_dbfs: self.min_dbfs.0,
        })))
    }
}

pub struct MinRmsFilter {
    min_dbfs: f64,
}

/// RMS level in dBFS (-inf for silence) of `count` samples whose squares add up to
/// `sum_squares`.
fn dbfs(sum_squares: f64, count: u64) -> f64 {
    if count == 0 {
        return f64::NEG_INFINITY;
    }
    10.0 * (sum_squares / count as f64).log10()
}

/// RMS level of samples in dBFS (-inf for silence).
#[cfg(test)]
fn rms_dbfs(samples: &[f32]) -> f64 {
    dbfs(
        samples.iter().map(|s| f64::from(*s) * f64::from(*s)).sum(),
        samples.len() as u64,
    )
}

impl ProcessingFilter for MinRmsFilter {
    fn should_process(&self, recording: &Recording) -> ComponentResult<bool> {
        // Block by block: the file is never held whole.
        let (path, _) = recording_file(recording)?;
        let (mut sum, mut count) = (0.0f64, 0u64);
        read_mono_blocks(path, &mut |block| {
            sum += block
                .iter()
                .map(|s| f64::from(*s) * f64::from(*s))
                .sum::<f64>();
            count += block.len() as u64;
            Ok(())
        })?;
        let level = dbfs(sum, count);
        if level < self.min_dbfs {
            tracing::debug!(recording = %recording.id, level, min = self.min_dbfs, "processing.min_rms: too quiet to analyse");
        }
        Ok(level >= self.min_dbfs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::audio::testing::write_wav;
    use acoupi_engine::data::Deployment;

    fn recording_of(dir: &std::path::Path, amplitude: f64) -> Recording {
        let path = dir.join(format!("{amplitude}.wav"));
        write_wav(&path, 8000, 1, 0.5, |t| {
            amplitude * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
        });
        Recording::new(Deployment::new("s"), 0.5, 8000)
            .unwrap()
            .with_path(path)
    }

    #[test]
    fn passes_sound_and_skips_near_silence() {
        let dir = tempfile::tempdir().unwrap();
        let filter = MinRmsFilter { min_dbfs: -40.0 };
        // A sine of amplitude 0.1 has RMS 0.0707 = -23 dBFS; 0.001 gives -63 dBFS.
        assert!(
            filter
                .should_process(&recording_of(dir.path(), 0.1))
                .unwrap()
        );
        assert!(
            !filter
                .should_process(&recording_of(dir.path(), 0.001))
                .unwrap()
        );
        assert!(
            !filter
                .should_process(&recording_of(dir.path(), 0.0))
                .unwrap()
        );
    }

    #[test]
    fn rms_of_a_full_scale_square_is_0_dbfs() {
        assert!((rms_dbfs(&[1.0, -1.0, 1.0, -1.0]) - 0.0).abs() < 1e-9);
        assert_eq!(rms_dbfs(&[]), f64::NEG_INFINITY);
    }
}

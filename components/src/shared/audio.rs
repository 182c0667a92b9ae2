//! The components' side of audio reading: [`acoupi_audio`]'s reader with the components'
//! error ([`ComponentError`]) and a Recording's file ([`recording_file`]). What a model
//! or processor reads goes through here; the limits, decoding, resampling and windows
//! are the audio crate's.

use std::path::Path;

pub(crate) use acoupi_audio::{
    BlockSink, MAX_WINDOW_FRAMES, WavInfo, WindowSink, Windows, audio_info, fill_window,
    resampled_len, wav_info,
};
use acoupi_engine::component::ComponentError;
use acoupi_engine::data::Recording;

/// A recording's file and its checked header.
pub(crate) fn recording_file(recording: &Recording) -> Result<(&Path, WavInfo), ComponentError> {
    let path = recording
        .path
        .as_deref()
        .ok_or_else(|| ComponentError::Other(format!("recording {} has no file", recording.id)))?;
    Ok((path, audio_info(path)?))
}

/// [`acoupi_audio::read_mono_blocks`] with a component's error.
pub(crate) fn read_mono_blocks(
    path: &Path,
    each: &mut BlockSink<'_, ComponentError>,
) -> Result<WavInfo, ComponentError> {
    acoupi_audio::read_mono_blocks(path, each)
}

/// [`acoupi_audio::for_each_window`] with a component's error.
pub(crate) fn for_each_window(
    path: &Path,
    info: &WavInfo,
    from: u32,
    to: u32,
    windows: Windows,
    each: &mut WindowSink<'_, ComponentError>,
) -> Result<(), ComponentError> {
    acoupi_audio::for_each_window(path, info, from, to, windows, each)
}

/// [`acoupi_audio::resample`] with a component's error (model tests compare with it).
#[cfg(test)]
pub(crate) fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ComponentError> {
    Ok(acoupi_audio::resample(samples, from, to)?)
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    pub use acoupi_audio::testing::write_wav;
    use acoupi_engine::data::{Deployment, Recording};

    /// Writes mono 32-bit float samples as a WAV and returns a Recording of it (a duration
    /// of 1 ms for an empty file: a Recording's duration must be positive).
    pub fn write_f32_wav(path: &Path, samplerate: u32, samples: &[f32]) -> Recording {
        acoupi_audio::testing::write_f32_wav(path, samplerate, samples);
        let duration = (samples.len() as f64 / f64::from(samplerate)).max(1e-3);
        Recording::new(Deployment::new("site"), duration, samplerate)
            .unwrap()
            .with_path(path)
    }
}

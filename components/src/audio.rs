//! Reading WAV files (and FLAC files, by their `.flac` extension, for reprocessed
//! archives): header facts for Recordings, and samples mixed down to mono f32 for
//! models; resampling them to the rate a model expects.

use std::path::Path;

use acoupi_engine::component::ComponentError;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

/// What a WAV header says about a recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavInfo {
    pub samplerate: u32,
    pub channels: u16,
    pub frames: u64,
}

impl WavInfo {
    pub fn duration_seconds(&self) -> f64 {
        self.frames as f64 / f64::from(self.samplerate)
    }
}

fn audio_error(path: &Path, e: impl std::fmt::Display) -> ComponentError {
    ComponentError::Audio { path: path.to_path_buf(), reason: e.to_string() }
}

/// Reads the header of a WAV file.
pub fn wav_info(path: &Path) -> Result<WavInfo, ComponentError> {
    let reader = hound::WavReader::open(path).map_err(|e| audio_error(path, e))?;
    let spec = reader.spec();
    if spec.sample_rate == 0 || spec.channels == 0 {
        return Err(audio_error(path, "the header has a zero sample rate or channel count"));
    }
    Ok(WavInfo { samplerate: spec.sample_rate, channels: spec.channels, frames: u64::from(reader.duration()) })
}

/// Whether a path names a FLAC file (by its extension, any case).
pub fn is_flac(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("flac"))
}

/// Reads a FLAC file's stream info: rate, channels and length (which a FLAC encoder may
/// leave unknown: an error here).
pub fn flac_info(path: &Path) -> Result<WavInfo, ComponentError> {
    let reader = claxon::FlacReader::open(path).map_err(|e| audio_error(path, e))?;
    let info = reader.streaminfo();
    let frames = info.samples.ok_or_else(|| audio_error(path, "the FLAC stream info does not say how long it is"))?;
    if info.sample_rate == 0 || info.channels == 0 {
        return Err(audio_error(path, "the header has a zero sample rate or channel count"));
    }
    Ok(WavInfo { samplerate: info.sample_rate, channels: info.channels as u16, frames })
}

/// Reads a FLAC file as mono f32 samples in [-1, 1] (channels averaged).
fn read_flac_mono(path: &Path) -> Result<(WavInfo, Vec<f32>), ComponentError> {
    let info = flac_info(path)?;
    let mut reader = claxon::FlacReader::open(path).map_err(|e| audio_error(path, e))?;
    let bits = reader.streaminfo().bits_per_sample;
    let scale = 1.0 / (1u64 << bits.saturating_sub(1)) as f32;
    let channels = usize::from(info.channels);
    let interleaved: Vec<i32> = reader.samples().collect::<Result<_, _>>().map_err(|e| audio_error(path, e))?;
    let mono: Vec<f32> = interleaved.chunks_exact(channels).map(|frame| frame.iter().map(|&v| v as f32 * scale).sum::<f32>() / channels as f32).collect();
    if (mono.len() as u64) < info.frames {
        return Err(audio_error(path, format!("truncated: the stream info says {} samples, the file holds {}", info.frames, mono.len())));
    }
    Ok((info, mono))
}

/// Reads a WAV (or, by its extension, FLAC) file as mono f32 samples in [-1, 1]
/// (channels averaged).
pub fn read_mono(path: &Path) -> Result<(WavInfo, Vec<f32>), ComponentError> {
    if is_flac(path) {
        return read_flac_mono(path);
    }
    let mut reader = hound::WavReader::open(path).map_err(|e| audio_error(path, e))?;
    let spec = reader.spec();
    let info = WavInfo { samplerate: spec.sample_rate, channels: spec.channels, frames: u64::from(reader.duration()) };
    if spec.sample_rate == 0 || spec.channels == 0 {
        return Err(audio_error(path, "the header has a zero sample rate or channel count"));
    }
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.saturating_sub(1))) as f32;
            reader.samples::<i32>().map(|s| s.map(|v| v as f32 * scale)).collect::<Result<_, _>>()
        }
    }
    .map_err(|e| audio_error(path, e))?;
    let channels = usize::from(spec.channels);
    let mono = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok((info, mono))
}

/// Reads a recording's file as mono f32 samples (see [`read_mono`]).
pub fn read_recording(recording: &acoupi_engine::data::Recording) -> Result<(WavInfo, Vec<f32>), ComponentError> {
    let path = recording.path.as_deref().ok_or_else(|| ComponentError::Other(format!("recording {} has no file", recording.id)))?;
    read_mono(path)
}

/// A recording's samples, read at `from` Hz, as they would be at `to` Hz (unchanged when
/// the rates are equal); an error names the recording's file.
pub(crate) fn resample_recording(recording: &acoupi_engine::data::Recording, samples: Vec<f32>, from: u32, to: u32) -> Result<Vec<f32>, ComponentError> {
    if from == to {
        return Ok(samples);
    }
    resample(&samples, from, to).map_err(|reason| ComponentError::Audio { path: recording.path.clone().unwrap_or_default(), reason })
}

/// Fills `window` with `samples` from `start` on, zero-padding what runs past their end.
pub(crate) fn fill_window(window: &mut [f32], samples: &[f32], start: usize) {
    let available = &samples[start.min(samples.len())..(start + window.len()).min(samples.len())];
    window[..available.len()].copy_from_slice(available);
    window[available.len()..].fill(0.0);
}

/// Resamples mono audio from `from` Hz to `to` Hz (rubato's synchronous FFT resampler; the
/// output has `len × to / from` samples, rounded, its start delay trimmed).
pub(crate) fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    let fail = |e: &dyn std::fmt::Display| format!("cannot resample from {from} Hz to {to} Hz: {e}");
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input).map_err(|e| fail(&e))?;
    let input = InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| fail(&e))?;
    let output = resampler.process_all(&input, samples.len(), None).map_err(|e| fail(&e))?;
    let mut output = output.take_data();
    // rubato may give one frame more than the exact ratio (1 s at 44.1 kHz gave 48001).
    let expected = (samples.len() as u64 * u64::from(to) + u64::from(from) / 2) / u64::from(from);
    output.truncate(usize::try_from(expected).unwrap_or(usize::MAX));
    Ok(output)
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use acoupi_engine::data::{Deployment, Recording};

    /// Writes mono 32-bit float samples as a WAV and returns a Recording of it (a duration
    /// of 1 ms for an empty file: a Recording's duration must be positive).
    pub fn write_f32_wav(path: &Path, samplerate: u32, samples: &[f32]) -> Recording {
        let spec = hound::WavSpec { channels: 1, sample_rate: samplerate, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        samples.iter().for_each(|s| writer.write_sample(*s).unwrap());
        writer.finalize().unwrap();
        let duration = (samples.len() as f64 / f64::from(samplerate)).max(1e-3);
        Recording::new(Deployment::new("site"), duration, samplerate).unwrap().with_path(path)
    }

    /// Writes a 16-bit WAV of `seconds` at `samplerate` whose samples come from `f(t)`.
    pub fn write_wav(path: &Path, samplerate: u32, channels: u16, seconds: f64, f: impl Fn(f64) -> f64) {
        let spec = hound::WavSpec { channels, sample_rate: samplerate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        let n = (seconds * f64::from(samplerate)) as usize;
        for i in 0..n {
            let v = (f(i as f64 / f64::from(samplerate)).clamp(-1.0, 1.0) * 32767.0) as i16;
            for _ in 0..channels {
                writer.write_sample(v).unwrap();
            }
        }
        writer.finalize().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_header_and_mixes_to_mono() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        testing::write_wav(&path, 8000, 2, 0.5, |_| 0.5);
        let info = wav_info(&path).unwrap();
        assert_eq!(info, WavInfo { samplerate: 8000, channels: 2, frames: 4000 });
        assert!((info.duration_seconds() - 0.5).abs() < 1e-9);
        let (_, mono) = read_mono(&path).unwrap();
        assert_eq!(mono.len(), 4000);
        assert!((mono[0] - 0.5).abs() < 1e-3);
    }

    #[test]
    fn rejects_a_file_that_is_not_wav() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.wav");
        std::fs::write(&path, b"not a wav file").unwrap();
        let err = wav_info(&path).unwrap_err().to_string();
        assert!(err.contains("bad.wav"), "{err}");
    }

    #[test]
    fn resampling_keeps_length_and_a_tone() {
        let tone: Vec<f32> = (0..44_100).map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 44_100.0).sin()).collect();
        let out = resample(&tone, 44_100, 48_000).unwrap();
        assert_eq!(out.len(), 48_000);
        // Away from the edges the output is the same tone at the new rate.
        let max_err = (4_800..43_200)
            .map(|i| (out[i] - (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48_000.0).sin()).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 1e-2, "max error {max_err}");
        assert!(resample(&[], 44_100, 48_000).unwrap().is_empty());
    }
}

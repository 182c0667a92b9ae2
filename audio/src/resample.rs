//! Resampling: rubato's synchronous FFT resampler, streamed a block at a time
//! ([`StreamResampler`], used by [`crate::for_each_window`]) or over a whole signal
//! ([`resample`]).

use std::path::Path;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

use crate::decode::BlockSink;
use crate::error::{AudioError, AudioErrorKind};

/// The number of samples `frames` at `from` Hz become at `to` Hz (rounded).
pub fn resampled_len(frames: u64, from: u32, to: u32) -> usize {
    let len = if from == to {
        frames
    } else {
        (frames * u64::from(to) + u64::from(from) / 2) / u64::from(from)
    };
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// rubato's synchronous FFT resampler fed a block at a time: the same samples as
/// resampling the whole signal at once (its start delay trimmed, `len` samples in all,
/// the last chunk zero-padded), in memory of one chunk.
pub(crate) struct StreamResampler {
    path: std::path::PathBuf,
    /// The rates, for errors.
    rates: (u32, u32),
    /// None when the rates are equal: samples pass through.
    fft: Option<Fft<f32>>,
    /// Input waiting for a whole chunk.
    pending: Vec<f32>,
    output: Vec<f32>,
    /// Output samples still to drop (the resampler's delay), and still to give.
    to_trim: usize,
    left: usize,
}

impl StreamResampler {
    pub(crate) fn new(
        path: &Path,
        from: u32,
        to: u32,
        len: usize,
    ) -> Result<StreamResampler, AudioError> {
        let mut resampler = StreamResampler {
            path: path.to_path_buf(),
            rates: (from, to),
            fft: None,
            pending: Vec::new(),
            output: Vec::new(),
            to_trim: 0,
            left: len,
        };
        if from != to {
            let fft = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
                .map_err(|e| resampler.error(&e))?;
            resampler.output = vec![0.0; fft.output_frames_max()];
            resampler.pending = Vec::with_capacity(fft.input_frames_max());
            resampler.to_trim = fft.output_delay();
            resampler.fft = Some(fft);
        }
        Ok(resampler)
    }

    fn error(&self, e: &dyn std::fmt::Display) -> AudioError {
        let (from, to) = self.rates;
        let reason = e.to_string();
        AudioError::new(&self.path, AudioErrorKind::Resample { from, to, reason })
    }

    pub(crate) fn push<E: From<AudioError>>(
        &mut self,
        mut input: &[f32],
        sink: &mut BlockSink<'_, E>,
    ) -> Result<(), E> {
        let Some(chunk) = self.fft.as_ref().map(|fft| fft.input_frames_next()) else {
            let given = &input[..input.len().min(self.left)];
            self.left -= given.len();
            return sink(given);
        };
        while !input.is_empty() {
            let wanted = chunk.saturating_sub(self.pending.len());
            let (now, later) = input.split_at(wanted.min(input.len()));
            self.pending.extend_from_slice(now);
            input = later;
            if now.len() == wanted {
                self.process(None, sink)?;
            }
        }
        Ok(())
    }

    /// Resamples the pending chunk (`partial`: how many of its samples are real, the
    /// rest zeros) and gives what is past the delay and within the length.
    fn process<E: From<AudioError>>(
        &mut self,
        partial: Option<usize>,
        sink: &mut BlockSink<'_, E>,
    ) -> Result<(), E> {
        let Some(fft) = &mut self.fft else {
            return Ok(());
        };
        let chunk = fft.input_frames_next();
        self.pending.resize(chunk, 0.0);
        let indexing = partial.map_or_else(Indexing::new, |n| Indexing::new().partial_len(n));
        let frames = self.output.len();
        let done = match (
            InterleavedSlice::new(&self.pending[..], 1, chunk),
            InterleavedSlice::new_mut(&mut self.output[..], 1, frames),
        ) {
            (Ok(input), Ok(mut output)) => fft
                .process_into_buffer(&input, &mut output, Some(&indexing))
                .map_err(|e| e.to_string()),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        };
        self.pending.clear();
        let (_, produced) = done.map_err(|e| E::from(self.error(&e)))?;
        let trimmed = self.to_trim.min(produced);
        self.to_trim -= trimmed;
        let given = (produced - trimmed).min(self.left);
        self.left -= given;
        sink(&self.output[trimmed..trimmed + given])
    }

    /// Resamples what is pending, then zeros until `len` samples were given.
    pub(crate) fn finish<E: From<AudioError>>(
        &mut self,
        sink: &mut BlockSink<'_, E>,
    ) -> Result<(), E> {
        if self.fft.is_none() {
            return Ok(());
        }
        if !self.pending.is_empty() {
            self.process(Some(self.pending.len()), sink)?;
        }
        while self.left > 0 {
            let before = self.left;
            self.process(Some(0), sink)?;
            if self.left == before && self.to_trim == 0 {
                let none = AudioError::new(&self.path, AudioErrorKind::NoResamplerOutput);
                return Err(none.into());
            }
        }
        Ok(())
    }
}

/// Resamples mono audio from `from` Hz to `to` Hz (the streaming resampler of
/// [`for_each_window`] over a whole signal: `len × to / from` samples, rounded).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    let len = resampled_len(samples.len() as u64, from, to);
    let mut output = Vec::with_capacity(len);
    let mut resampler = StreamResampler::new(Path::new("(samples)"), from, to, len)?;
    let mut sink = |block: &[f32]| -> Result<(), AudioError> {
        output.extend_from_slice(block);
        Ok(())
    };
    resampler.push(samples, &mut sink)?;
    resampler.finish(&mut sink)?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_resampling_is_rubatos_whole_signal_resampling() {
        let signal: Vec<f32> = (0..50_000)
            .map(|i| ((i as f32) * 0.013).sin() * 0.7 + ((i as f32) * 0.21).cos() * 0.2)
            .collect();
        for (from, to) in [
            (44_100, 48_000),
            (48_000, 256_000),
            (384_000, 48_000),
            (22_050, 256_000),
        ] {
            for len in [0, 100, 1024, 1025, 4096, 50_000] {
                let input = &signal[..len];
                let streamed = resample(input, from, to).unwrap();
                let mut reference =
                    Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input).unwrap();
                let expected = match len {
                    0 => Vec::new(),
                    _ => reference
                        .process_all(&InterleavedSlice::new(input, 1, len).unwrap(), len, None)
                        .unwrap()
                        .take_data(),
                };
                assert_eq!(
                    streamed.len(),
                    resampled_len(len as u64, from, to),
                    "{from} → {to}, {len}"
                );
                assert_eq!(
                    streamed[..],
                    expected[..streamed.len()],
                    "{from} → {to}, {len}"
                );
            }
        }
    }

    #[test]
    fn resampling_keeps_length_and_a_tone() {
        let tone: Vec<f32> = (0..44_100)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 44_100.0).sin())
            .collect();
        let out = resample(&tone, 44_100, 48_000).unwrap();
        assert_eq!(out.len(), 48_000);
        // Away from the edges the output is the same tone at the new rate.
        let max_err = (4_800..43_200)
            .map(|i| {
                (out[i] - (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48_000.0).sin()).abs()
            })
            .fold(0.0f32, f32::max);
        assert!(max_err < 1e-2, "max error {max_err}");
        assert!(resample(&[], 44_100, 48_000).unwrap().is_empty());
    }
}

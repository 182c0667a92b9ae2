//! Analysis windows: how a model cuts a file's audio ([`Windows`], [`for_each_window`],
//! streamed and resampled, a window at a time) and the Hann window its frames are
//! weighted with ([`hann`]).

use std::path::Path;

use crate::decode::{MAX_WINDOW_FRAMES, read_mono_blocks};
use crate::error::{AudioError, AudioErrorKind};
use crate::header::{MAX_SAMPLERATE, MIN_SAMPLERATE, WavInfo};
use crate::resample::{StreamResampler, resampled_len};

/// What takes a model's windows: the first sample's index and the window's samples.
pub type WindowSink<'a, E = AudioError> = dyn FnMut(usize, &[f32]) -> Result<(), E> + 'a;

/// How a model cuts audio into windows: `window` samples long, one starting every `step`
/// samples from 0, as long as at least `min_last` samples are left from its start (so a
/// window may run past the end: it is handed over shorter, and the model pads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub window: usize,
    pub step: usize,
    pub min_last: usize,
}

impl Windows {
    /// The first sample of each window of audio `len` samples long (what
    /// [`for_each_window`] cuts from a stream; the tests compare the two).
    pub fn starts(&self, len: usize) -> impl Iterator<Item = usize> {
        let min_last = self.min_last.max(1);
        (0..len)
            .step_by(self.step.max(1))
            .take_while(move |start| len - start >= min_last)
    }
}

/// Streams a file's audio, read at `from` Hz (its header's rate, or that rate × a time
/// expansion), as it would be at `to` Hz, and hands `each` every window of `windows`
/// with its first sample, in order: a window is `windows.window` samples or, at the end,
/// fewer. Memory is one window, one decoded block and one resampler chunk, whatever the
/// file's length. `info` is the file's header ([`crate::audio_info`]).
pub fn for_each_window<E: From<AudioError>>(
    path: &Path,
    info: &WavInfo,
    from: u32,
    to: u32,
    windows: Windows,
    each: &mut WindowSink<'_, E>,
) -> Result<(), E> {
    if windows.window == 0 || windows.window > MAX_WINDOW_FRAMES {
        let window = AudioErrorKind::Window {
            window: windows.window,
            max: MAX_WINDOW_FRAMES,
        };
        return Err(AudioError::new(path, window).into());
    }
    for rate in [from, to] {
        if !(MIN_SAMPLERATE..=MAX_SAMPLERATE).contains(&rate) {
            let rate = AudioErrorKind::AnalysisRate {
                rate,
                min: MIN_SAMPLERATE,
                max: MAX_SAMPLERATE,
            };
            return Err(AudioError::new(path, rate).into());
        }
    }
    let len = resampled_len(info.frames, from, to);
    let mut cutter = WindowCutter::new(windows, len);
    let mut resampler = StreamResampler::new(path, from, to, len)?;
    let mut resampled = |block: &[f32]| cutter.push(block, each);
    read_mono_blocks(path, &mut |block| resampler.push(block, &mut resampled))?;
    resampler.finish(&mut resampled)
}

/// Cuts a stream of samples into [`Windows`] (see [`for_each_window`]): it keeps the
/// samples from the next window's start on, at most a window and a block.
struct WindowCutter {
    windows: Windows,
    /// The stream's length (samples past it are ignored).
    len: usize,
    /// The first sample of the next window.
    next: usize,
    /// Samples from `buffer_start` to `seen`.
    buffer: Vec<f32>,
    buffer_start: usize,
    seen: usize,
}

impl WindowCutter {
    fn new(windows: Windows, len: usize) -> WindowCutter {
        WindowCutter {
            windows,
            len,
            next: 0,
            buffer: Vec::new(),
            buffer_start: 0,
            seen: 0,
        }
    }

    fn push<E>(&mut self, block: &[f32], each: &mut WindowSink<'_, E>) -> Result<(), E> {
        let block = &block[..block.len().min(self.len - self.seen)];
        let block_start = self.seen;
        self.seen += block.len();
        // Samples before the next window's start (when windows leave gaps) are not kept.
        let skip = self.next.saturating_sub(block_start).min(block.len());
        if self.buffer.is_empty() {
            self.buffer_start = block_start + skip;
        }
        self.buffer.extend_from_slice(&block[skip..]);
        let min_last = self.windows.min_last.max(1);
        while self.next < self.len && self.len - self.next >= min_last {
            let end = (self.next + self.windows.window).min(self.len);
            if self.seen < end {
                break;
            }
            let from = self.next - self.buffer_start;
            each(self.next, &self.buffer[from..from + end - self.next])?;
            self.next += self.windows.step.max(1);
        }
        let keep_from = self.next.min(self.seen);
        self.buffer.drain(..keep_from - self.buffer_start);
        self.buffer_start = keep_from;
        Ok(())
    }
}

/// The periodic Hann window of `len` samples (`0.5 - 0.5 cos(2πi/len)`, computed in f64),
/// as numpy's and torch's `hann_window(len, periodic=True)`.
pub fn hann(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / len as f64).cos()) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::read_mono;
    use crate::resample::resample;
    use crate::testing;

    #[test]
    fn windows_are_cut_from_the_stream_as_from_the_whole_signal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        // More than one block, so windows straddle blocks.
        testing::write_wav(&path, 16_000, 2, 9.1, |t| (t * 1234.5).sin() * 0.5);
        let (info, whole) = read_mono(&path).unwrap();
        for windows in [
            Windows {
                window: 48_000,
                step: 48_000,
                min_last: 1,
            },
            Windows {
                window: 48_000,
                step: 24_000,
                min_last: 24_000,
            },
            Windows {
                window: 320,
                step: 320,
                min_last: 320,
            },
            Windows {
                window: 1000,
                step: 70_001,
                min_last: 1,
            },
        ] {
            let mut got = Vec::new();
            for_each_window::<AudioError>(
                &path,
                &info,
                16_000,
                16_000,
                windows,
                &mut |start, samples| {
                    let end = (start + windows.window).min(whole.len());
                    assert_eq!(samples, &whole[start..end], "{windows:?} at {start}");
                    got.push(start);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(
                got,
                windows.starts(whole.len()).collect::<Vec<_>>(),
                "{windows:?}"
            );
        }
        // Resampled: the windows of the resampled whole signal.
        let resampled = resample(&whole, 16_000, 48_000).unwrap();
        let windows = Windows {
            window: 144_000,
            step: 72_000,
            min_last: 72_000,
        };
        let mut got = Vec::new();
        for_each_window::<AudioError>(
            &path,
            &info,
            16_000,
            48_000,
            windows,
            &mut |start, samples| {
                assert_eq!(
                    samples,
                    &resampled[start..(start + 144_000).min(resampled.len())]
                );
                got.push(start);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, [0, 72_000, 144_000, 216_000, 288_000, 360_000]);
        let too_big = Windows {
            window: MAX_WINDOW_FRAMES + 1,
            step: 1,
            min_last: 1,
        };
        assert!(
            for_each_window::<AudioError>(
                &path,
                &info,
                16_000,
                16_000,
                too_big,
                &mut |_, _| Ok(())
            )
            .is_err()
        );
    }
}

//! Why an audio file could not be read: [`AudioError`] names the file, its
//! [`AudioErrorKind`] the reason (a limit passed, a decoder's error, a cut file).

use std::path::{Path, PathBuf};

use crate::header::LimitError;

/// An audio file that could not be read, and why.
#[derive(Debug, thiserror::Error)]
#[error("invalid audio `{}`: {kind}", path.display())]
pub struct AudioError {
    /// The file (or, for samples in memory, a name in parentheses).
    pub path: PathBuf,
    pub kind: AudioErrorKind,
}

impl AudioError {
    pub(crate) fn new(path: &Path, kind: impl Into<AudioErrorKind>) -> AudioError {
        AudioError {
            path: path.to_path_buf(),
            kind: kind.into(),
        }
    }
}

/// Why an audio file could not be read (the reason without the file).
#[derive(Debug, thiserror::Error)]
pub enum AudioErrorKind {
    /// hound's error reading a WAV file.
    #[error("{0}")]
    Wav(#[from] hound::Error),
    /// claxon's error reading a FLAC file.
    #[error("{0}")]
    Flac(#[from] claxon::Error),
    /// The header passed one of the decoding limits.
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("the FLAC stream info does not say how long it is")]
    UnknownLength,
    #[error("truncated: the header says {declared} frames, the file holds {decoded}")]
    Truncated { declared: u64, decoded: u64 },
    #[error("a frame has {found} channels, the stream info says {declared}")]
    FrameChannels { found: u32, declared: u16 },
    #[error("the file holds more than the {declared} frames its stream info says")]
    MoreFrames { declared: u64 },
    #[error("{frames} frames: too long to read at once (at most {max})")]
    TooLongToReadAtOnce { frames: u64, max: usize },
    #[error("a window of {window} samples is outside the limits (1 to {max})")]
    Window { window: usize, max: usize },
    #[error("cannot analyse at {rate} Hz: outside the limits ({min} to {max} Hz)")]
    AnalysisRate { rate: u32, min: u32, max: u32 },
    #[error("cannot resample from {from} Hz to {to} Hz: {reason}")]
    Resample { from: u32, to: u32, reason: String },
    #[error("the resampler gave no output")]
    NoResamplerOutput,
}

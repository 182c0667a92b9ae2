//! Audio files for acoupi, below the engine and the components: the one WAV/FLAC reader
//! (WAV by hound, FLAC by its `.flac` extension and claxon, for reprocessed archives):
//! header facts for Recordings, the probe of archived files, GUANO metadata, and samples
//! mixed down to mono f32 for models, resampled to the rate a model expects and cut into
//! the windows it analyses.
//!
//! Decoding is bounded: a header is checked against the limits below before anything is
//! allocated from it, and audio is decoded in blocks of at most [`BLOCK_FRAMES`] frames,
//! resampled in rubato's chunks and handed to a model window by window
//! ([`for_each_window`]), so a model's memory is its window's, whatever the file's length
//! (a 1 h file at 384 kHz is analysed in the same few megabytes as a 3 s one). A file
//! outside the limits is refused with an error naming the limit; in `acoupi reprocess`
//! it becomes an `error` row and the batch goes on. The limits:
//! - sample rate from [`MIN_SAMPLERATE`] (1 kHz) to [`MAX_SAMPLERATE`] (1 MHz): every
//!   bioacoustic recorder we know of is inside (AudioMoth: 8–384 kHz; ultrasonic
//!   recorders: up to 500 kHz), and a header outside is damaged or hostile;
//! - at most [`MAX_CHANNELS`] (32) channels (microphone arrays included);
//! - 4 to 32 bits per sample (FLAC's and WAV's own range);
//! - at most [`MAX_SAMPLES`] samples (frames × channels, 2³²): what the largest possible
//!   WAV file (4 GB) holds at 8 bits; 3.1 h of mono 384 kHz audio, 24 h of 48 kHz. Split a
//!   longer file (e.g. `sox in.flac out.flac trim 0 3600 : newfile : restart`).
//! - a model's window is at most [`MAX_WINDOW_FRAMES`] samples (2²⁴, 64 MiB of f32).
//!
//! Errors are typed ([`AudioError`] names the file, [`ProbeError`] is a probe's one-line
//! reason); callers map them to their own.

mod decode;
mod error;
pub mod guano;
mod header;
mod probe;
mod resample;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod window;

pub use decode::{
    BLOCK_FRAMES, BlockSink, MAX_WINDOW_FRAMES, fill_window, read_mono, read_mono_blocks,
};
pub use error::{AudioError, AudioErrorKind};
pub use header::{
    LimitError, MAX_BITS, MAX_CHANNELS, MAX_SAMPLERATE, MAX_SAMPLES, MIN_BITS, MIN_SAMPLERATE,
    WavHeader, WavInfo, audio_info, check_header, flac_info, is_flac, read_wav_header, wav_info,
};
pub use probe::{ProbeError, Probed, probe};
pub use resample::{resample, resampled_len};
pub use window::{WindowSink, Windows, for_each_window, hann};

//! Headers: the one WAV header reader ([`read_wav_header`], on hound), FLAC stream info
//! (claxon), and the decoding limits every header is checked against ([`check_header`])
//! before anything is allocated from it (see the crate docs for why these limits).

use std::path::Path;

use crate::error::{AudioError, AudioErrorKind};

/// The lowest sample rate accepted, in Hz.
pub const MIN_SAMPLERATE: u32 = 1_000;
/// The highest sample rate accepted, in Hz.
pub const MAX_SAMPLERATE: u32 = 1_000_000;
/// The most channels accepted.
pub const MAX_CHANNELS: u16 = 32;
/// The range of bits per sample accepted.
pub const MIN_BITS: u16 = 4;
pub const MAX_BITS: u16 = 32;
/// The most samples (frames × channels) a file may hold.
pub const MAX_SAMPLES: u64 = 1 << 32;

/// A header fact outside the decoding limits; the message names the limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "the header's sample rate of {0} Hz is outside the limits ({MIN_SAMPLERATE} to {MAX_SAMPLERATE} Hz)"
    )]
    SampleRate(u32),
    #[error("the header's {0} channels are outside the limits (1 to {MAX_CHANNELS})")]
    Channels(u16),
    #[error("the header's {0} bits per sample are outside the limits ({MIN_BITS} to {MAX_BITS})")]
    Bits(u16),
    #[error(
        "too long: {frames} frames × {channels} channels = {samples} samples, over the limit of {MAX_SAMPLES} \
         samples ({hours:.1} h at this rate and channel count); split the file"
    )]
    TooLong {
        frames: u64,
        channels: u16,
        samples: u64,
        /// The longest file at this rate and channel count, in hours.
        hours: f64,
    },
}

/// Checks a header's facts against the limits, before anything is allocated from them;
/// the error names the limit that was passed.
pub fn check_header(
    samplerate: u32,
    channels: u16,
    bits: u16,
    frames: u64,
) -> Result<(), LimitError> {
    if !(MIN_SAMPLERATE..=MAX_SAMPLERATE).contains(&samplerate) {
        return Err(LimitError::SampleRate(samplerate));
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(LimitError::Channels(channels));
    }
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(LimitError::Bits(bits));
    }
    let samples = frames.saturating_mul(u64::from(channels));
    if samples > MAX_SAMPLES {
        let hours = MAX_SAMPLES as f64 / f64::from(channels) / f64::from(samplerate) / 3600.0;
        return Err(LimitError::TooLong {
            frames,
            channels,
            samples,
            hours,
        });
    }
    Ok(())
}

/// What a header says about a recording (checked against the limits).
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

/// A WAV file's `fmt ` facts and length in frames, as read, not yet checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavHeader {
    pub samplerate: u32,
    pub channels: u16,
    pub bits_per_sample: u16,
    pub frames: u64,
}

/// Reads a WAV file's header (hound's parser, so a file that passes can be decoded);
/// not checked against the limits: [`wav_info`] does both.
pub fn read_wav_header(path: &Path) -> Result<WavHeader, AudioError> {
    let reader = hound::WavReader::open(path).map_err(|e| AudioError::new(path, e))?;
    let spec = reader.spec();
    Ok(WavHeader {
        samplerate: spec.sample_rate,
        channels: spec.channels,
        bits_per_sample: spec.bits_per_sample,
        frames: u64::from(reader.duration()),
    })
}

/// Reads the header of a WAV file (checked against the limits).
pub fn wav_info(path: &Path) -> Result<WavInfo, AudioError> {
    let header = read_wav_header(path)?;
    check_header(
        header.samplerate,
        header.channels,
        header.bits_per_sample,
        header.frames,
    )
    .map_err(|e| AudioError::new(path, e))?;
    Ok(WavInfo {
        samplerate: header.samplerate,
        channels: header.channels,
        frames: header.frames,
    })
}

/// Whether a path names a FLAC file (by its extension, any case).
pub fn is_flac(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("flac"))
}

/// Reads a FLAC file's stream info: rate, channels and length (which a FLAC encoder may
/// leave unknown: an error here), checked against the limits.
pub fn flac_info(path: &Path) -> Result<WavInfo, AudioError> {
    let reader = claxon::FlacReader::open(path).map_err(|e| AudioError::new(path, e))?;
    let info = reader.streaminfo();
    let frames = info
        .samples
        .ok_or_else(|| AudioError::new(path, AudioErrorKind::UnknownLength))?;
    let channels = u16::try_from(info.channels).unwrap_or(u16::MAX);
    let bits = u16::try_from(info.bits_per_sample).unwrap_or(u16::MAX);
    check_header(info.sample_rate, channels, bits, frames).map_err(|e| AudioError::new(path, e))?;
    Ok(WavInfo {
        samplerate: info.sample_rate,
        channels,
        frames,
    })
}

/// The header of a WAV (or, by its extension, FLAC) file, checked against the limits.
pub fn audio_info(path: &Path) -> Result<WavInfo, AudioError> {
    if is_flac(path) {
        flac_info(path)
    } else {
        wav_info(path)
    }
}

//! Reading WAV files (and FLAC files, by their `.flac` extension, for reprocessed
//! archives): header facts for Recordings, and samples mixed down to mono f32 for
//! models, resampled to the rate a model expects and cut into the windows it analyses.
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

use std::path::Path;

use acoupi_engine::component::ComponentError;
use acoupi_engine::data::Recording;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};

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
/// Frames decoded (and mixed to mono) at a time.
pub const BLOCK_FRAMES: usize = 1 << 16;
/// The longest window a model may ask for, in samples.
pub const MAX_WINDOW_FRAMES: usize = 1 << 24;

/// What takes decoded blocks of mono samples, in order.
pub type BlockSink<'a> = dyn FnMut(&[f32]) -> Result<(), ComponentError> + 'a;
/// What takes a model's windows: the first sample's index and the window's samples.
pub(crate) type WindowSink<'a> = dyn FnMut(usize, &[f32]) -> Result<(), ComponentError> + 'a;

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
    ComponentError::Audio {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Checks a header's facts against the limits of the module docs, before anything is
/// allocated from them; the error names the limit that was passed.
pub fn check_header(samplerate: u32, channels: u16, bits: u16, frames: u64) -> Result<(), String> {
    if !(MIN_SAMPLERATE..=MAX_SAMPLERATE).contains(&samplerate) {
        return Err(format!(
            "the header's sample rate of {samplerate} Hz is outside the limits ({MIN_SAMPLERATE} to {MAX_SAMPLERATE} Hz)"
        ));
    }
    if !(1..=MAX_CHANNELS).contains(&channels) {
        return Err(format!(
            "the header's {channels} channels are outside the limits (1 to {MAX_CHANNELS})"
        ));
    }
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(format!(
            "the header's {bits} bits per sample are outside the limits ({MIN_BITS} to {MAX_BITS})"
        ));
    }
    let samples = frames.saturating_mul(u64::from(channels));
    if samples > MAX_SAMPLES {
        let hours = MAX_SAMPLES as f64 / f64::from(channels) / f64::from(samplerate) / 3600.0;
        return Err(format!(
            "too long: {frames} frames × {channels} channels = {samples} samples, over the limit of {MAX_SAMPLES} \
             samples ({hours:.1} h at this rate and channel count); split the file"
        ));
    }
    Ok(())
}

/// Reads the header of a WAV file (checked against the limits).
pub fn wav_info(path: &Path) -> Result<WavInfo, ComponentError> {
    let reader = hound::WavReader::open(path).map_err(|e| audio_error(path, e))?;
    let spec = reader.spec();
    let frames = u64::from(reader.duration());
    check_header(
        spec.sample_rate,
        spec.channels,
        spec.bits_per_sample,
        frames,
    )
    .map_err(|e| audio_error(path, e))?;
    Ok(WavInfo {
        samplerate: spec.sample_rate,
        channels: spec.channels,
        frames,
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
pub fn flac_info(path: &Path) -> Result<WavInfo, ComponentError> {
    let reader = claxon::FlacReader::open(path).map_err(|e| audio_error(path, e))?;
    let info = reader.streaminfo();
    let frames = info
        .samples
        .ok_or_else(|| audio_error(path, "the FLAC stream info does not say how long it is"))?;
    let channels = u16::try_from(info.channels).unwrap_or(u16::MAX);
    let bits = u16::try_from(info.bits_per_sample).unwrap_or(u16::MAX);
    check_header(info.sample_rate, channels, bits, frames).map_err(|e| audio_error(path, e))?;
    Ok(WavInfo {
        samplerate: info.sample_rate,
        channels,
        frames,
    })
}

/// The header of a WAV (or, by its extension, FLAC) file, checked against the limits.
pub fn audio_info(path: &Path) -> Result<WavInfo, ComponentError> {
    if is_flac(path) {
        flac_info(path)
    } else {
        wav_info(path)
    }
}

/// Decodes a WAV (or, by its extension, FLAC) file as mono f32 samples in [-1, 1]
/// (channels averaged), handing them to `each` in blocks of at most [`BLOCK_FRAMES`];
/// returns the header. A file holding fewer frames than its header says is an error
/// (after the blocks it does hold), and so is one holding more.
pub fn read_mono_blocks(path: &Path, each: &mut BlockSink<'_>) -> Result<WavInfo, ComponentError> {
    let info = audio_info(path)?;
    let decoded = if is_flac(path) {
        decode_flac(path, &info, each)?
    } else {
        decode_wav(path, &info, each)?
    };
    if decoded < info.frames {
        return Err(audio_error(
            path,
            format!(
                "truncated: the header says {} frames, the file holds {decoded}",
                info.frames
            ),
        ));
    }
    Ok(info)
}

/// Decodes a WAV file's samples (see [`read_mono_blocks`]); returns the frames decoded.
fn decode_wav(
    path: &Path,
    info: &WavInfo,
    each: &mut BlockSink<'_>,
) -> Result<u64, ComponentError> {
    let mut reader = hound::WavReader::open(path).map_err(|e| audio_error(path, e))?;
    let spec = reader.spec();
    let channels = usize::from(info.channels);
    let mut block = Vec::with_capacity(BLOCK_FRAMES);
    let mut frame_sum = 0.0f32;
    let mut in_frame = 0;
    let mut frames = 0u64;
    let mut push = |sample: f32, block: &mut Vec<f32>| -> Result<(), ComponentError> {
        frame_sum += sample;
        in_frame += 1;
        if in_frame == channels {
            block.push(frame_sum / channels as f32);
            (frame_sum, in_frame) = (0.0, 0);
            frames += 1;
            if block.len() == BLOCK_FRAMES {
                each(block)?;
                block.clear();
            }
        }
        Ok(())
    };
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for sample in reader.samples::<f32>() {
                push(sample.map_err(|e| audio_error(path, e))?, &mut block)?;
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.saturating_sub(1))) as f32;
            for sample in reader.samples::<i32>() {
                push(
                    sample.map_err(|e| audio_error(path, e))? as f32 * scale,
                    &mut block,
                )?;
            }
        }
    }
    if !block.is_empty() {
        each(&block)?;
    }
    Ok(frames)
}

/// Decodes a FLAC file's frames (see [`read_mono_blocks`]); returns the frames decoded.
/// A FLAC frame holds at most 65 535 samples per channel, so a block is at most that.
fn decode_flac(
    path: &Path,
    info: &WavInfo,
    each: &mut BlockSink<'_>,
) -> Result<u64, ComponentError> {
    let mut reader = claxon::FlacReader::open(path).map_err(|e| audio_error(path, e))?;
    let bits = reader.streaminfo().bits_per_sample;
    let scale = 1.0 / (1u64 << bits.saturating_sub(1)) as f32;
    let mut frames = 0u64;
    let mut mono = Vec::with_capacity(BLOCK_FRAMES);
    let mut buffer = Vec::new();
    let mut blocks = reader.blocks();
    while let Some(block) = blocks
        .read_next_or_eof(std::mem::take(&mut buffer))
        .map_err(|e| audio_error(path, e))?
    {
        if block.channels() != u32::from(info.channels) {
            return Err(audio_error(
                path,
                format!(
                    "a frame has {} channels, the stream info says {}",
                    block.channels(),
                    info.channels
                ),
            ));
        }
        frames += u64::from(block.duration());
        if frames > info.frames {
            return Err(audio_error(
                path,
                format!(
                    "the file holds more than the {} frames its stream info says",
                    info.frames
                ),
            ));
        }
        mono.clear();
        mono.resize(block.duration() as usize, 0.0);
        for channel in 0..block.channels() {
            for (m, &v) in mono.iter_mut().zip(block.channel(channel)) {
                *m += v as f32 * scale;
            }
        }
        let channels = f32::from(info.channels);
        mono.iter_mut().for_each(|m| *m /= channels);
        each(&mono)?;
        buffer = block.into_buffer();
    }
    Ok(frames)
}

/// Reads a whole WAV (or, by its extension, FLAC) file as mono f32 samples in [-1, 1]
/// (channels averaged): for short clips (tests, fuzzing); models go window by window
/// ([`for_each_window`]). A file of more than [`MAX_WINDOW_FRAMES`] frames is refused.
pub fn read_mono(path: &Path) -> Result<(WavInfo, Vec<f32>), ComponentError> {
    let info = audio_info(path)?;
    if info.frames > MAX_WINDOW_FRAMES as u64 {
        return Err(audio_error(
            path,
            format!(
                "{} frames: too long to read at once (at most {MAX_WINDOW_FRAMES})",
                info.frames
            ),
        ));
    }
    let mut samples = Vec::with_capacity(info.frames as usize);
    read_mono_blocks(path, &mut |block| {
        samples.extend_from_slice(block);
        Ok(())
    })?;
    Ok((info, samples))
}

/// Copies a window's samples into `buffer` (a model's input), zero-padding what they
/// lack.
pub(crate) fn fill_window(buffer: &mut [f32], samples: &[f32]) {
    let n = samples.len().min(buffer.len());
    buffer[..n].copy_from_slice(&samples[..n]);
    buffer[n..].fill(0.0);
}

/// A recording's file and its checked header.
pub(crate) fn recording_file(recording: &Recording) -> Result<(&Path, WavInfo), ComponentError> {
    let path = recording
        .path
        .as_deref()
        .ok_or_else(|| ComponentError::Other(format!("recording {} has no file", recording.id)))?;
    Ok((path, audio_info(path)?))
}

/// How a model cuts audio into windows: `window` samples long, one starting every `step`
/// samples from 0, as long as at least `min_last` samples are left from its start (so a
/// window may run past the end: it is handed over shorter, and the model pads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Windows {
    pub window: usize,
    pub step: usize,
    pub min_last: usize,
}

impl Windows {
    /// The first sample of each window of audio `len` samples long (what
    /// [`for_each_window`] cuts from a stream; the tests compare the two).
    #[cfg(test)]
    pub fn starts(&self, len: usize) -> impl Iterator<Item = usize> {
        let min_last = self.min_last.max(1);
        (0..len)
            .step_by(self.step.max(1))
            .take_while(move |start| len - start >= min_last)
    }
}

/// The number of samples `frames` at `from` Hz become at `to` Hz (rounded).
pub(crate) fn resampled_len(frames: u64, from: u32, to: u32) -> usize {
    let len = if from == to {
        frames
    } else {
        (frames * u64::from(to) + u64::from(from) / 2) / u64::from(from)
    };
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Streams a file's audio, read at `from` Hz (its header's rate, or that rate × a time
/// expansion), as it would be at `to` Hz, and hands `each` every window of `windows`
/// with its first sample, in order: a window is `windows.window` samples or, at the end,
/// fewer. Memory is one window, one decoded block and one resampler chunk, whatever the
/// file's length. `info` is the file's header ([`recording_file`]).
pub(crate) fn for_each_window(
    path: &Path,
    info: &WavInfo,
    from: u32,
    to: u32,
    windows: Windows,
    each: &mut WindowSink<'_>,
) -> Result<(), ComponentError> {
    if windows.window == 0 || windows.window > MAX_WINDOW_FRAMES {
        return Err(audio_error(
            path,
            format!(
                "a window of {} samples is outside the limits (1 to {MAX_WINDOW_FRAMES})",
                windows.window
            ),
        ));
    }
    for rate in [from, to] {
        if !(MIN_SAMPLERATE..=MAX_SAMPLERATE).contains(&rate) {
            return Err(audio_error(
                path,
                format!(
                    "cannot analyse at {rate} Hz: outside the limits ({MIN_SAMPLERATE} to {MAX_SAMPLERATE} Hz)"
                ),
            ));
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

    fn push(&mut self, block: &[f32], each: &mut WindowSink<'_>) -> Result<(), ComponentError> {
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

/// rubato's synchronous FFT resampler fed a block at a time: the same samples as
/// resampling the whole signal at once (its start delay trimmed, `len` samples in all,
/// the last chunk zero-padded), in memory of one chunk.
struct StreamResampler {
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
    fn new(path: &Path, from: u32, to: u32, len: usize) -> Result<StreamResampler, ComponentError> {
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

    fn error(&self, e: &dyn std::fmt::Display) -> ComponentError {
        let (from, to) = self.rates;
        audio_error(
            &self.path,
            format!("cannot resample from {from} Hz to {to} Hz: {e}"),
        )
    }

    fn push(&mut self, mut input: &[f32], sink: &mut BlockSink<'_>) -> Result<(), ComponentError> {
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
    fn process(
        &mut self,
        partial: Option<usize>,
        sink: &mut BlockSink<'_>,
    ) -> Result<(), ComponentError> {
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
        let (_, produced) = done.map_err(|e| self.error(&e))?;
        let trimmed = self.to_trim.min(produced);
        self.to_trim -= trimmed;
        let given = (produced - trimmed).min(self.left);
        self.left -= given;
        sink(&self.output[trimmed..trimmed + given])
    }

    /// Resamples what is pending, then zeros until `len` samples were given.
    fn finish(&mut self, sink: &mut BlockSink<'_>) -> Result<(), ComponentError> {
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
                return Err(audio_error(&self.path, "the resampler gave no output"));
            }
        }
        Ok(())
    }
}

/// Resamples mono audio from `from` Hz to `to` Hz (the streaming resampler of
/// [`for_each_window`] over a whole signal: `len × to / from` samples, rounded).
#[cfg(test)]
pub(crate) fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, ComponentError> {
    let len = resampled_len(samples.len() as u64, from, to);
    let mut output = Vec::with_capacity(len);
    let mut resampler = StreamResampler::new(Path::new("(samples)"), from, to, len)?;
    let mut sink = |block: &[f32]| {
        output.extend_from_slice(block);
        Ok(())
    };
    resampler.push(samples, &mut sink)?;
    resampler.finish(&mut sink)?;
    Ok(output)
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use acoupi_engine::data::{Deployment, Recording};

    /// Writes mono 32-bit float samples as a WAV and returns a Recording of it (a duration
    /// of 1 ms for an empty file: a Recording's duration must be positive).
    pub fn write_f32_wav(path: &Path, samplerate: u32, samples: &[f32]) -> Recording {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: samplerate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        samples
            .iter()
            .for_each(|s| writer.write_sample(*s).unwrap());
        writer.finalize().unwrap();
        let duration = (samples.len() as f64 / f64::from(samplerate)).max(1e-3);
        Recording::new(Deployment::new("site"), duration, samplerate)
            .unwrap()
            .with_path(path)
    }

    /// Writes a 16-bit WAV of `seconds` at `samplerate` whose samples come from `f(t)`.
    pub fn write_wav(
        path: &Path,
        samplerate: u32,
        channels: u16,
        seconds: f64,
        f: impl Fn(f64) -> f64,
    ) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: samplerate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
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
        assert_eq!(
            info,
            WavInfo {
                samplerate: 8000,
                channels: 2,
                frames: 4000
            }
        );
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

    /// An 8-bit mono WAV of 8000 frames whose header says `rate` (and a byte rate to
    /// match, which hound checks: 8 bits, so that 4 GHz still fits in its 32 bits).
    fn wav_declaring(dir: &Path, rate: u32) -> std::path::PathBuf {
        let path = dir.join(format!("declares-{rate}.wav"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        (0..8000).for_each(|i| writer.write_sample((i % 200 - 100) as i8).unwrap());
        writer.finalize().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[24..28].copy_from_slice(&rate.to_le_bytes());
        bytes[28..32].copy_from_slice(&rate.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn headers_outside_the_limits_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        for (rate, limit) in [
            (
                4_000_000_000,
                "sample rate of 4000000000 Hz is outside the limits (1000 to 1000000 Hz)",
            ),
            (2_000_000, "sample rate of 2000000 Hz is outside the limits"),
            (500, "sample rate of 500 Hz is outside the limits"),
            (0, "sample rate of 0 Hz"),
        ] {
            let path = wav_declaring(dir.path(), rate);
            for err in [
                wav_info(&path).unwrap_err(),
                read_mono_blocks(&path, &mut |_| panic!("decoded")).unwrap_err(),
            ] {
                assert!(
                    err.to_string().contains(limit) && err.to_string().contains("declares-"),
                    "{err}"
                );
            }
        }
        assert!(
            check_header(48_000, 33, 16, 10)
                .unwrap_err()
                .contains("33 channels are outside the limits (1 to 32)")
        );
        assert!(
            check_header(48_000, 0, 16, 10)
                .unwrap_err()
                .contains("0 channels")
        );
        assert!(
            check_header(48_000, 1, 64, 10)
                .unwrap_err()
                .contains("64 bits per sample are outside the limits (4 to 32)")
        );
        let long = check_header(384_000, 2, 16, 1 << 32).unwrap_err();
        assert!(
            long.contains("over the limit of 4294967296 samples (1.6 h at this rate"),
            "{long}"
        );
        check_header(384_000, 1, 16, 1 << 32).unwrap();
        check_header(1_000_000, 32, 32, 1 << 27).unwrap();
    }

    #[test]
    fn a_long_flac_is_decoded_in_bounded_blocks_never_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.flac");
        // 2 min at 384 kHz: 46 million samples.
        let frames = 120 * 384_000;
        std::fs::write(&path, crate::fuzz::silent_flac(384_000, 1, 16, frames)).unwrap();
        let (mut blocks, mut decoded, mut largest) = (0, 0u64, 0);
        read_mono_blocks(&path, &mut |block| {
            (blocks, decoded, largest) = (
                blocks + 1,
                decoded + block.len() as u64,
                largest.max(block.len()),
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(decoded, frames);
        assert!(
            largest <= BLOCK_FRAMES && blocks > 1,
            "{blocks} blocks, the largest {largest}"
        );
        let whole = read_mono(&path).unwrap_err().to_string();
        assert!(whole.contains("too long to read at once"), "{whole}");
    }

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
            for_each_window(
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
        for_each_window(
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
            for_each_window(&path, &info, 16_000, 16_000, too_big, &mut |_, _| Ok(())).is_err()
        );
    }

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

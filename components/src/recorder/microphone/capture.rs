//! Live audio capture with cpal (ALSA on Linux): input devices found by name and what they
//! support (`acoupi devices`), and a capture stream cut into chunks of an exact number of
//! frames, each stamped from its sample count since the stream's first sample.
//!
//! A capture thread owns the cpal stream. The audio callback only converts the block it
//! gets to the WAV sample type and hands it over a bounded channel (`try_send`: it never
//! blocks; a full channel drops the block and counts an overflow). The same thread cuts the
//! blocks into chunks: no frame is dropped or repeated at a chunk boundary. A gap (an xrun
//! reported by the device, a dropped block, or a jump in the capture timestamps) is
//! counted on the chunk it falls in, in [`gaps_total`], and logged at warn.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{InputCallbackInfo, SampleFormat, SizedSample, StreamInstant};

/// Gaps (xruns, dropped blocks, timestamp jumps) seen by every capture stream of this
/// process since it started: a metric-friendly counter.
static GAPS: AtomicU64 = AtomicU64::new(0);

/// Gaps seen by every capture stream of this process since it started.
pub fn gaps_total() -> u64 {
    GAPS.load(Ordering::Relaxed)
}

/// The WAV sample format a recording is written in.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WavFormat {
    /// 16-bit signed integer PCM (what most tools expect).
    #[default]
    Pcm16,
    /// 32-bit IEEE float.
    Float32,
}

impl WavFormat {
    /// Device sample formats in order of preference: the WAV format itself first, then
    /// the most precise others.
    fn preferred(self) -> [SampleFormat; 4] {
        match self {
            WavFormat::Pcm16 => [
                SampleFormat::I16,
                SampleFormat::I32,
                SampleFormat::F32,
                SampleFormat::I24,
            ],
            WavFormat::Float32 => [
                SampleFormat::F32,
                SampleFormat::I32,
                SampleFormat::I24,
                SampleFormat::I16,
            ],
        }
    }

    pub fn spec(self, samplerate: u32, channels: u16) -> hound::WavSpec {
        match self {
            WavFormat::Pcm16 => hound::WavSpec {
                channels,
                sample_rate: samplerate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            },
            WavFormat::Float32 => hound::WavSpec {
                channels,
                sample_rate: samplerate,
                bits_per_sample: 32,
                sample_format: hound::SampleFormat::Float,
            },
        }
    }
}

/// Why a device cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "no audio input device matches `{wanted}`; input devices: {available} (see `acoupi devices`)"
    )]
    NoSuchDevice { wanted: String, available: String },
    #[error("{device} cannot capture {rate} Hz with {channels} channel{s}; supported: {supported} (see `acoupi devices`)", s = if *.channels == 1 { "" } else { "s" })]
    Unsupported {
        device: String,
        rate: u32,
        channels: u16,
        supported: String,
    },
    #[error("audio: {0}")]
    Audio(String),
}

/// One way an input device can capture: a channel count, a rate range, a sample format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputConfig {
    pub channels: u16,
    pub min_rate: u32,
    pub max_rate: u32,
    pub format: String,
}

/// What a device supports, grouped for people: one line per rate range and set of
/// sample formats, with the channel counts that have them, e.g.
/// `1–32 channels at 1–384000 Hz (f32, i16, i24, i32, u8)`.
pub fn summarise(configs: &[InputConfig]) -> Vec<String> {
    let mut groups: Vec<((u32, u32, Vec<&str>), Vec<u16>)> = Vec::new();
    let mut channels: Vec<u16> = configs.iter().map(|c| c.channels).collect();
    channels.sort_unstable();
    channels.dedup();
    for ch in channels {
        let mut ranges: Vec<(u32, u32)> = configs
            .iter()
            .filter(|c| c.channels == ch)
            .map(|c| (c.min_rate, c.max_rate))
            .collect();
        ranges.sort_unstable();
        ranges.dedup();
        for (min, max) in ranges {
            let mut formats: Vec<&str> = configs
                .iter()
                .filter(|c| c.channels == ch && (c.min_rate, c.max_rate) == (min, max))
                .map(|c| c.format.as_str())
                .collect();
            formats.sort_unstable();
            formats.dedup();
            let key = (min, max, formats);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, chs)) => chs.push(ch),
                None => groups.push((key, vec![ch])),
            }
        }
    }
    groups
        .into_iter()
        .map(|((min, max, formats), chs)| {
            let rates = if min == max {
                format!("{min} Hz")
            } else {
                format!("{min}–{max} Hz")
            };
            format!(
                "{} at {rates} ({})",
                channel_ranges(&chs),
                formats.join(", ")
            )
        })
        .collect()
}

/// `[1, 2, 3, 8]` → "1–3, 8 channels"; `[1]` → "1 channel".
fn channel_ranges(channels: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < channels.len() {
        let start = channels[i];
        let mut end = start;
        while i + 1 < channels.len() && channels[i + 1] == end + 1 {
            i += 1;
            end = channels[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}–{end}")
        });
        i += 1;
    }
    let noun = if channels == [1] {
        "channel"
    } else {
        "channels"
    };
    format!("{} {noun}", parts.join(", "))
}

/// An input device: its ALSA name (what `device` matches), its description and what it
/// supports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputDevice {
    pub name: String,
    pub description: String,
    pub configs: Vec<InputConfig>,
}

/// Lists every input device of the default host (on Linux: ALSA PCMs, `pulse` and
/// `default` included), with what each supports. Devices that cannot be opened for
/// capture are left out.
pub fn input_devices() -> Result<Vec<InputDevice>, CaptureError> {
    let host = cpal::default_host();
    let devices = host
        .devices()
        .map_err(|e| CaptureError::Audio(format!("cannot list audio devices: {e}")))?;
    Ok(devices.filter_map(|device| describe(&device)).collect())
}

fn device_name(device: &cpal::Device) -> String {
    device
        .id()
        .map(|id| id.id().to_string())
        .unwrap_or_else(|_| device.to_string())
}

fn describe(device: &cpal::Device) -> Option<InputDevice> {
    let configs = device.supported_input_configs().ok()?;
    let mut configs: Vec<InputConfig> = configs
        .map(|c| InputConfig {
            channels: c.channels(),
            min_rate: c.min_sample_rate(),
            max_rate: c.max_sample_rate(),
            format: c.sample_format().to_string(),
        })
        .collect();
    if configs.is_empty() {
        return None;
    }
    configs.sort_by(|a, b| {
        (a.channels, a.min_rate, a.max_rate, &a.format)
            .cmp(&(b.channels, b.min_rate, b.max_rate, &b.format))
    });
    configs.dedup();
    let description = device
        .description()
        .map(|d| d.name().lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    Some(InputDevice {
        name: device_name(device),
        description,
        configs,
    })
}

/// What a capture is asked for.
#[derive(Debug, Clone)]
pub struct CaptureSpec {
    /// A substring of the device's name or description (any case); `None`: the default
    /// input device.
    pub device: Option<String>,
    pub samplerate: u32,
    pub channels: u16,
    pub format: WavFormat,
    /// Frames per chunk.
    pub chunk_frames: usize,
    /// Frames per device buffer; `None`: the device's default.
    pub buffer_frames: Option<u32>,
    /// Complete chunks kept while nobody takes them; older ones are dropped (and logged).
    pub max_pending: usize,
}

/// A device chosen for a spec, with the sample format it will be read in.
#[derive(Clone)]
pub struct OpenedDevice {
    pub device: cpal::Device,
    pub name: String,
    pub sample_format: SampleFormat,
}

/// Finds the device for `spec`: the default input device, or the first input device whose
/// name or description contains `spec.device` (an exact name first) and that supports the
/// rate and channel count. Errors list the devices, or what the matching ones support.
pub fn open_device(spec: &CaptureSpec) -> Result<OpenedDevice, CaptureError> {
    let host = cpal::default_host();
    let candidates: Vec<cpal::Device> = match &spec.device {
        None => host.default_input_device().into_iter().collect(),
        Some(wanted) => {
            let devices: Vec<cpal::Device> = host
                .devices()
                .map_err(|e| CaptureError::Audio(format!("cannot list audio devices: {e}")))?
                .collect();
            let wanted_lower = wanted.to_lowercase();
            let description = |d: &cpal::Device| {
                d.description()
                    .map(|d| d.name().to_lowercase())
                    .unwrap_or_default()
            };
            let mut matching: Vec<cpal::Device> = devices
                .iter()
                .filter(|d| {
                    device_name(d).to_lowercase().contains(&wanted_lower)
                        || description(d).contains(&wanted_lower)
                })
                .cloned()
                .collect();
            matching.sort_by_key(|d| device_name(d) != *wanted);
            matching.retain(|d| d.supports_input());
            if matching.is_empty() {
                let mut available: Vec<String> = devices
                    .iter()
                    .filter(|d| d.supports_input())
                    .map(device_name)
                    .collect();
                available.dedup();
                let available = if available.is_empty() {
                    "none".to_string()
                } else {
                    available.join(", ")
                };
                return Err(CaptureError::NoSuchDevice {
                    wanted: wanted.clone(),
                    available,
                });
            }
            matching
        }
    };
    if candidates.is_empty() {
        return Err(CaptureError::NoSuchDevice {
            wanted: "the default input device".into(),
            available: "none".into(),
        });
    }
    let mut supported = Vec::new();
    for device in &candidates {
        let name = device_name(device);
        let Some(info) = describe(device) else {
            continue;
        };
        let fits = |f: SampleFormat| {
            let f = f.to_string();
            info.configs.iter().any(|c| {
                c.channels == spec.channels
                    && c.format == f
                    && (c.min_rate..=c.max_rate).contains(&spec.samplerate)
            })
        };
        if let Some(format) = spec.format.preferred().into_iter().find(|f| fits(*f)) {
            return Ok(OpenedDevice {
                device: device.clone(),
                name,
                sample_format: format,
            });
        }
        supported.push(format!("`{name}`: {}", summarise(&info.configs).join("; ")));
    }
    let device = if candidates.len() == 1 {
        format!("device `{}`", device_name(&candidates[0]))
    } else {
        format!(
            "the devices matching `{}`",
            spec.device.as_deref().unwrap_or_default()
        )
    };
    Err(CaptureError::Unsupported {
        device,
        rate: spec.samplerate,
        channels: spec.channels,
        supported: if supported.is_empty() {
            "nothing".into()
        } else {
            supported.join("; ")
        },
    })
}

/// Samples in the WAV sample type, interleaved.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    I16(Vec<i16>),
    F32(Vec<f32>),
}

impl Samples {
    fn with_capacity(format: WavFormat, n: usize) -> Self {
        match format {
            WavFormat::Pcm16 => Samples::I16(Vec::with_capacity(n)),
            WavFormat::Float32 => Samples::F32(Vec::with_capacity(n)),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Samples::I16(v) => v.len(),
            Samples::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `from[range]` of another block of the same type.
    fn extend_from(&mut self, from: &Samples, range: std::ops::Range<usize>) {
        match (self, from) {
            (Samples::I16(to), Samples::I16(from)) => to.extend_from_slice(&from[range]),
            (Samples::F32(to), Samples::F32(from)) => to.extend_from_slice(&from[range]),
            // Blocks and chunks of one capture always share the WAV format.
            _ => {}
        }
    }

    /// Writes these samples as a WAV file.
    pub fn write_wav(
        &self,
        path: &std::path::Path,
        spec: hound::WavSpec,
    ) -> Result<(), hound::Error> {
        let mut writer = hound::WavWriter::create(path, spec)?;
        match self {
            Samples::I16(samples) => {
                let mut fast = writer.get_i16_writer(samples.len() as u32);
                for &s in samples {
                    fast.write_sample(s);
                }
                fast.flush()?;
            }
            Samples::F32(samples) => {
                for &s in samples {
                    writer.write_sample(s)?;
                }
            }
        }
        writer.finalize()
    }
}

/// A block of frames as the device delivered it (converted), with its capture time.
struct Block {
    samples: Samples,
    capture: StreamInstant,
    callback: StreamInstant,
    /// Frames the callback had to drop just before this block (the channel to the capture
    /// thread was full). Carried in the block, so the gap is placed where it happened.
    dropped_before: u64,
}

/// A complete chunk.
#[derive(Debug)]
pub struct Chunk {
    /// 0 for the stream's first chunk.
    pub index: u64,
    /// The wall-clock time of its first frame: the stream's anchor (wall clock at its
    /// first frame) plus the frames before it (and those lost in gaps) at the sample rate.
    pub start: DateTime<Utc>,
    pub samples: Samples,
    /// Gaps (xruns, dropped blocks, timestamp jumps) inside this chunk or just before it.
    pub gaps: u32,
    /// Frames estimated lost in those gaps.
    pub lost_frames: u64,
}

/// Seconds after the stream's start during which timestamp jumps are not gaps.
const WARM_UP_SECONDS: u64 = 2;

/// Cuts blocks into chunks of exactly `chunk_frames` frames and stamps them.
struct Chunker {
    format: WavFormat,
    channels: usize,
    rate: u32,
    chunk_frames: usize,
    current: Samples,
    index: u64,
    /// Frames on the stream's timeline before the current chunk: captured plus lost.
    timeline: u64,
    /// Frames lost (estimated) since the current chunk started.
    lost_in_current: u64,
    gaps_in_current: u32,
    /// Frames received and gaps seen since the stream started.
    frames_in: u64,
    gaps_total: u64,
    /// Overruns the device reported that the next block has not accounted for yet.
    pending_xruns: u32,
    anchor: Option<DateTime<Utc>>,
    /// The capture time the next block should have, when frames are contiguous.
    expected_capture: Option<StreamInstant>,
    /// Timestamp jumps within this many frames of the start are not gaps: while buffers
    /// settle, devices (PulseAudio's ALSA plugin: by ~300 ms) report moving latencies.
    warm_up_frames: u64,
}

impl Chunker {
    fn new(format: WavFormat, channels: u16, rate: u32, chunk_frames: usize) -> Self {
        let channels = usize::from(channels.max(1));
        Chunker {
            format,
            channels,
            rate,
            chunk_frames,
            current: Samples::with_capacity(format, chunk_frames * channels),
            index: 0,
            timeline: 0,
            lost_in_current: 0,
            gaps_in_current: 0,
            frames_in: 0,
            gaps_total: 0,
            pending_xruns: 0,
            anchor: None,
            expected_capture: None,
            warm_up_frames: u64::from(rate) * WARM_UP_SECONDS,
        }
    }

    fn frames_duration(&self, frames: u64) -> Duration {
        let rate = u64::from(self.rate);
        Duration::new(
            frames / rate,
            ((frames % rate) * 1_000_000_000 / rate) as u32,
        )
    }

    /// Notes a gap of about `lost` frames before the next block.
    fn gap(&mut self, lost: u64) {
        self.gaps_in_current += 1;
        self.gaps_total += 1;
        self.lost_in_current += lost;
        GAPS.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes an overrun the device reported; the next block says how long it was.
    fn xrun(&mut self) {
        self.pending_xruns += 1;
    }

    /// Adds a block; complete chunks go to `done`. The first block anchors the stream to
    /// `now` less the block's capture latency. Each loss is one gap, counted once:
    /// - frames the callback dropped (`dropped_before`): exactly those frames; the jump
    ///   they leave in the timestamps is not counted again;
    /// - else a capture time later than the previous block's end by more than
    ///   `max(50 ms, one block)` (after the warm-up): the frames that jump spans. An
    ///   overrun reported just before it is that same gap;
    /// - an overrun whose timestamps did not jump: a gap of unknown length (0 frames).
    fn push(&mut self, block: &Block, now: DateTime<Utc>, done: &mut impl FnMut(Chunk)) {
        let frames = block.samples.len() / self.channels;
        let warming_up = self.frames_in < self.warm_up_frames;
        self.frames_in += frames as u64;
        if self.anchor.is_none() {
            let latency = block
                .callback
                .checked_duration_since(block.capture)
                .unwrap_or_default();
            self.anchor = Some(now - TimeDelta::from_std(latency).unwrap_or_default());
        }
        let block_length = self.frames_duration(frames as u64);
        let xruns = std::mem::take(&mut self.pending_xruns);
        let mut seen = 0;
        if block.dropped_before > 0 {
            self.gap(block.dropped_before);
            seen = 1;
        } else if let Some(expected) = self.expected_capture.filter(|_| !warming_up) {
            if let Some(late) = block.capture.checked_duration_since(expected) {
                let tolerance = block_length.max(Duration::from_millis(50));
                if late > tolerance {
                    let lost = (late.as_secs_f64() * f64::from(self.rate)).round() as u64;
                    tracing::warn!(
                        late_ms = late.as_millis() as u64,
                        lost_frames = lost,
                        "audio capture gap: the device's timestamps jumped"
                    );
                    self.gap(lost);
                    seen = 1;
                }
            }
        }
        for _ in seen..xruns {
            self.gap(0);
        }
        self.expected_capture = block.capture.checked_add(block_length);
        let mut offset = 0;
        let total = block.samples.len() - block.samples.len() % self.channels;
        while offset < total {
            let room = self.chunk_frames * self.channels - self.current.len();
            let take = room.min(total - offset);
            self.current
                .extend_from(&block.samples, offset..offset + take);
            offset += take;
            if self.current.len() == self.chunk_frames * self.channels {
                let samples = std::mem::replace(
                    &mut self.current,
                    Samples::with_capacity(self.format, self.chunk_frames * self.channels),
                );
                let start_offset = self.frames_duration(self.timeline);
                let anchor = self.anchor.unwrap_or(now);
                let start = anchor + TimeDelta::from_std(start_offset).unwrap_or_default();
                done(Chunk {
                    index: self.index,
                    start,
                    samples,
                    gaps: self.gaps_in_current,
                    lost_frames: self.lost_in_current,
                });
                self.index += 1;
                self.timeline += self.chunk_frames as u64 + self.lost_in_current;
                self.gaps_in_current = 0;
                self.lost_in_current = 0;
            }
        }
    }
}

/// What the capture thread and `Capture` share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Chunk>,
    /// Why the stream stopped, when it did.
    failed: Option<String>,
    /// Complete chunks dropped because nobody took them in time.
    dropped: u64,
}

/// Counters the audio callbacks update (never blocking).
#[derive(Default)]
struct Alarms {
    xruns: AtomicU64,
    overflow_blocks: AtomicU64,
    overflow_frames: AtomicU64,
    fatal: Mutex<Option<String>>,
}

/// A running capture: a thread owning the cpal stream and cutting chunks. Dropping it
/// stops the stream.
pub struct Capture {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub device_name: String,
    pub sample_format: SampleFormat,
}

/// Blocks the callback may hand over before the capture thread takes them.
const CHANNEL_BLOCKS: usize = 256;
/// No audio for this long after the stream started: the device is considered stuck.
const STALL: Duration = Duration::from_secs(10);

impl Capture {
    /// Starts a stream for `spec` on a device [`open_device`] chose for it.
    pub fn start(opened: &OpenedDevice, spec: &CaptureSpec) -> Result<Capture, CaptureError> {
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = sync_channel::<Result<(), String>>(1);
        let thread = {
            let (shared, stop, spec) = (shared.clone(), stop.clone(), spec.clone());
            let device = opened.device.clone();
            let format = opened.sample_format;
            std::thread::Builder::new()
                .name("audio-capture".into())
                .spawn(move || capture_thread(device, format, spec, shared, stop, started_tx))
                .map_err(|e| CaptureError::Audio(format!("cannot start the capture thread: {e}")))?
        };
        let mut capture = Capture {
            shared,
            stop,
            thread: Some(thread),
            device_name: opened.name.clone(),
            sample_format: opened.sample_format,
        };
        match started_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => Ok(capture),
            Ok(Err(reason)) => {
                capture.stop();
                Err(CaptureError::Audio(format!(
                    "cannot open `{}` for capture: {reason}",
                    capture.device_name
                )))
            }
            Err(_) => {
                capture.stop();
                Err(CaptureError::Audio(format!(
                    "`{}` did not start capturing within 20 s",
                    capture.device_name
                )))
            }
        }
    }

    /// The next complete chunk, waiting up to `timeout`; with the number of older chunks
    /// dropped because nobody took them. An error when the stream failed or nothing came.
    pub fn next_chunk(&self, timeout: Duration) -> Result<(Chunk, u64), CaptureError> {
        let deadline = Instant::now() + timeout;
        let mut state = self
            .shared
            .state
            .lock()
            .map_err(|_| CaptureError::Audio("capture state poisoned".into()))?;
        loop {
            if let Some(chunk) = state.chunks.pop_front() {
                let dropped = std::mem::take(&mut state.dropped);
                return Ok((chunk, dropped));
            }
            if let Some(reason) = &state.failed {
                return Err(CaptureError::Audio(format!(
                    "`{}` stopped capturing: {reason}",
                    self.device_name
                )));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CaptureError::Audio(format!(
                    "no complete chunk from `{}` within {:.1} s",
                    self.device_name,
                    timeout.as_secs_f64()
                )));
            }
            state = self
                .shared
                .ready
                .wait_timeout(state, deadline - now)
                .map_err(|_| CaptureError::Audio("capture state poisoned".into()))?
                .0;
        }
    }

    /// Complete chunks waiting to be taken.
    pub fn pending(&self) -> usize {
        self.shared
            .state
            .lock()
            .map(|s| s.chunks.len())
            .unwrap_or(0)
    }

    /// Whether the stream has stopped on an error.
    pub fn failed(&self) -> bool {
        self.shared
            .state
            .lock()
            .map(|s| s.failed.is_some())
            .unwrap_or(true)
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fail(shared: &Shared, reason: String) {
    if let Ok(mut state) = shared.state.lock() {
        state.failed.get_or_insert(reason);
    }
    shared.ready.notify_all();
}

/// Builds the stream for sample type `T`, converting each block to the WAV type.
fn build_stream<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: WavFormat,
    tx: SyncSender<Block>,
    alarms: Arc<Alarms>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    i16: cpal::FromSample<T>,
    f32: cpal::FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    let data_alarms = alarms.clone();
    let mut dropped = 0u64;
    let on_data = move |data: &[T], info: &InputCallbackInfo| {
        let samples = match format {
            WavFormat::Pcm16 => Samples::I16(data.iter().map(|s| s.to_sample::<i16>()).collect()),
            WavFormat::Float32 => Samples::F32(data.iter().map(|s| s.to_sample::<f32>()).collect()),
        };
        let stamp = info.timestamp();
        match tx.try_send(Block {
            samples,
            capture: stamp.capture,
            callback: stamp.callback,
            dropped_before: dropped,
        }) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => dropped = 0,
            Err(TrySendError::Full(_)) => {
                let frames = (data.len() / channels) as u64;
                dropped += frames;
                data_alarms.overflow_blocks.fetch_add(1, Ordering::Relaxed);
                data_alarms
                    .overflow_frames
                    .fetch_add(frames, Ordering::Relaxed);
            }
        }
    };
    let on_error = move |error: cpal::Error| match error.kind() {
        cpal::ErrorKind::Xrun => {
            alarms.xruns.fetch_add(1, Ordering::Relaxed);
        }
        cpal::ErrorKind::DeviceNotAvailable
        | cpal::ErrorKind::StreamInvalidated
        | cpal::ErrorKind::HostUnavailable => {
            if let Ok(mut fatal) = alarms.fatal.lock() {
                fatal.get_or_insert(error.to_string());
            }
        }
        _ => tracing::warn!(%error, "audio stream error"),
    };
    device.build_input_stream::<T, _, _>(config, on_data, on_error, None)
}

fn capture_thread(
    device: cpal::Device,
    sample_format: SampleFormat,
    spec: CaptureSpec,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    started: SyncSender<Result<(), String>>,
) {
    let (tx, rx) = sync_channel::<Block>(CHANNEL_BLOCKS);
    let alarms = Arc::new(Alarms::default());
    let config = cpal::StreamConfig {
        channels: spec.channels,
        sample_rate: spec.samplerate,
        buffer_size: spec
            .buffer_frames
            .map_or(cpal::BufferSize::Default, cpal::BufferSize::Fixed),
    };
    let (a, f) = (alarms.clone(), spec.format);
    let stream = match sample_format {
        SampleFormat::I16 => build_stream::<i16>(&device, config, f, tx, a),
        SampleFormat::I24 => build_stream::<cpal::I24>(&device, config, f, tx, a),
        SampleFormat::I32 => build_stream::<i32>(&device, config, f, tx, a),
        SampleFormat::F32 => build_stream::<f32>(&device, config, f, tx, a),
        other => {
            let _ = started.send(Err(format!("sample format {other} is not supported")));
            return;
        }
    };
    let stream = match stream.and_then(|s| s.play().map(|()| s)) {
        Ok(stream) => stream,
        Err(error) => {
            let _ = started.send(Err(error.to_string()));
            return;
        }
    };
    let _ = started.send(Ok(()));
    run_chunker(&rx, &spec, &shared, &stop, &alarms);
    drop(stream);
}

/// The capture thread's loop: blocks → chunks, gaps noted, until stopped or failed; its
/// totals are logged when it ends.
fn run_chunker(
    rx: &Receiver<Block>,
    spec: &CaptureSpec,
    shared: &Shared,
    stop: &AtomicBool,
    alarms: &Alarms,
) {
    let mut chunker = Chunker::new(
        spec.format,
        spec.channels,
        spec.samplerate,
        spec.chunk_frames,
    );
    let outcome = chunk_until_stopped(&mut chunker, rx, spec, shared, stop, alarms);
    let (pending, dropped) = shared
        .state
        .lock()
        .map(|s| (s.chunks.len(), s.dropped))
        .unwrap_or_default();
    tracing::info!(
        frames = chunker.frames_in,
        chunks = chunker.index,
        unfinished_frames = chunker.current.len() / chunker.channels,
        pending,
        dropped,
        gaps = chunker.gaps_total,
        "microphone stream closed"
    );
    if let Err(reason) = outcome {
        fail(shared, reason);
    }
}

fn chunk_until_stopped(
    chunker: &mut Chunker,
    rx: &Receiver<Block>,
    spec: &CaptureSpec,
    shared: &Shared,
    stop: &AtomicBool,
    alarms: &Alarms,
) -> Result<(), String> {
    let (mut xruns, mut overflows) = (0u64, 0u64);
    let mut last_data = Instant::now();
    let mut publish = |chunk: Chunk| {
        if let Ok(mut state) = shared.state.lock() {
            state.chunks.push_back(chunk);
            while state.chunks.len() > spec.max_pending.max(1) {
                state.chunks.pop_front();
                state.dropped += 1;
            }
        }
        shared.ready.notify_all();
    };
    while !stop.load(Ordering::Acquire) {
        if let Some(reason) = alarms.fatal.lock().ok().and_then(|f| f.clone()) {
            return Err(reason);
        }
        let block = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(block) => block,
            Err(RecvTimeoutError::Timeout) if last_data.elapsed() > STALL => {
                return Err(format!("no audio for {} s", STALL.as_secs()));
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Err("the stream closed".into()),
        };
        last_data = Instant::now();
        let (x, o) = (
            alarms.xruns.load(Ordering::Relaxed),
            alarms.overflow_blocks.load(Ordering::Relaxed),
        );
        if x > xruns {
            tracing::warn!(
                xruns = x - xruns,
                "audio capture gap: the device reported an overrun (xrun)"
            );
            for _ in xruns..x {
                chunker.xrun();
            }
            xruns = x;
        }
        if o > overflows {
            let frames = alarms.overflow_frames.swap(0, Ordering::Relaxed);
            // Counted as a gap by the chunker when the block after them arrives.
            tracing::warn!(
                blocks = o - overflows,
                frames,
                "audio capture gap: blocks dropped because the capture thread fell behind"
            );
            overflows = o;
        }
        chunker.push(&block, Utc::now(), &mut publish);
        // Take what is already waiting without re-checking the alarms for each block.
        while let Ok(block) = rx.try_recv() {
            chunker.push(&block, Utc::now(), &mut publish);
        }
    }
    Ok(())
}

/// One line per device for `acoupi devices`.
pub fn describe_devices(devices: &[InputDevice]) -> String {
    let mut out = String::new();
    for device in devices {
        let _ = writeln!(out, "{}  {}", device.name, device.description);
        for line in summarise(&device.configs) {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::Sample;

    #[test]
    fn supported_configs_are_summarised_per_rate_range_and_formats() {
        let c = |channels, min_rate, max_rate, format: &str| InputConfig {
            channels,
            min_rate,
            max_rate,
            format: format.into(),
        };
        let configs = [
            c(1, 1, 384_000, "i16"),
            c(1, 1, 384_000, "f32"),
            c(2, 1, 384_000, "f32"),
            c(2, 1, 384_000, "i16"),
            c(3, 1, 384_000, "i16"),
            c(1, 384_000, 384_000, "i32"),
            c(8, 1, 384_000, "i16"),
        ];
        assert_eq!(
            summarise(&configs),
            [
                "1–2 channels at 1–384000 Hz (f32, i16)",
                "1 channel at 384000 Hz (i32)",
                "3, 8 channels at 1–384000 Hz (i16)"
            ]
        );
    }

    fn block(samples: Vec<i16>, capture_ms: u64) -> Block {
        Block {
            samples: Samples::I16(samples),
            capture: StreamInstant::from_millis(capture_ms),
            callback: StreamInstant::from_millis(capture_ms + 10),
            dropped_before: 0,
        }
    }

    fn chunks_of(blocks: &[Block], chunker: &mut Chunker) -> Vec<Chunk> {
        let mut out = Vec::new();
        let now = DateTime::parse_from_rfc3339("2026-06-21T04:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for b in blocks {
            chunker.push(b, now, &mut |c| out.push(c));
        }
        out
    }

    #[test]
    fn chunks_are_cut_at_exact_frame_counts_across_blocks() {
        // 1000 Hz, stereo, 250-frame chunks, blocks of 7 to 400 frames.
        let mut chunker = Chunker::new(WavFormat::Pcm16, 2, 1000, 250);
        let mut counter = 0i16;
        let mut blocks = Vec::new();
        let mut ms = 0;
        for frames in [7usize, 400, 1, 93, 249, 250, 251, 12] {
            let samples: Vec<i16> = (0..frames * 2)
                .map(|_| {
                    counter = counter.wrapping_add(1);
                    counter
                })
                .collect();
            blocks.push(block(samples, ms));
            ms += frames as u64;
        }
        let chunks = chunks_of(&blocks, &mut chunker);
        let total_frames: usize = blocks.iter().map(|b| b.samples.len() / 2).sum();
        assert_eq!(chunks.len(), total_frames / 250);
        let mut expected = 1i16;
        for (i, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.index, i as u64);
            assert_eq!(chunk.gaps, 0);
            let Samples::I16(s) = &chunk.samples else {
                panic!("i16 chunk")
            };
            assert_eq!(s.len(), 500);
            for &v in s {
                assert_eq!(v, expected, "no frame dropped or repeated");
                expected = expected.wrapping_add(1);
            }
        }
        // Stamps: the anchor (now − 10 ms capture latency) plus 250 ms per chunk.
        let anchor = chunks[0].start;
        assert_eq!(anchor.to_rfc3339(), "2026-06-21T04:29:59.990+00:00");
        for (i, chunk) in chunks.iter().enumerate() {
            assert_eq!(
                chunk.start - anchor,
                TimeDelta::milliseconds(250 * i as i64)
            );
        }
    }

    #[test]
    fn a_timestamp_jump_is_a_gap_and_moves_later_stamps() {
        let mut chunker = Chunker::new(WavFormat::Pcm16, 1, 1000, 100);
        chunker.warm_up_frames = 0;
        // 100 frames at 0 ms, then 100 at 100 ms (contiguous), then 100 at 500 ms: 300 lost.
        let blocks = [
            block(vec![1; 100], 0),
            block(vec![2; 100], 100),
            block(vec![3; 100], 500),
            block(vec![4; 100], 600),
        ];
        let chunks = chunks_of(&blocks, &mut chunker);
        assert_eq!(
            chunks.iter().map(|c| c.gaps).collect::<Vec<_>>(),
            [0, 0, 1, 0]
        );
        assert_eq!(chunks[2].lost_frames, 300);
        let anchor = chunks[0].start;
        assert_eq!(chunks[2].start - anchor, TimeDelta::milliseconds(200));
        assert_eq!(
            chunks[3].start - anchor,
            TimeDelta::milliseconds(600),
            "the lost 300 ms are on the timeline"
        );
    }

    #[test]
    fn each_loss_is_one_gap_whoever_reports_it() {
        // 1000 Hz, 100-frame blocks and chunks; every case loses 300 frames (300 ms)
        // before the third block, whose timestamp jumps accordingly.
        let run = |dropped_before: u64, xruns_before: u32, jump: bool| {
            let mut chunker = Chunker::new(WavFormat::Pcm16, 1, 1000, 100);
            chunker.warm_up_frames = 0;
            let third = if jump { 500 } else { 200 };
            let mut blocks = [
                block(vec![1; 100], 0),
                block(vec![2; 100], 100),
                block(vec![3; 100], third),
                block(vec![4; 100], third + 100),
            ];
            blocks[2].dropped_before = dropped_before;
            let mut chunks = chunks_of(&blocks[..2], &mut chunker);
            for _ in 0..xruns_before {
                chunker.xrun();
            }
            chunks.extend(chunks_of(&blocks[2..], &mut chunker));
            (
                chunks
                    .iter()
                    .map(|c| (c.gaps, c.lost_frames))
                    .collect::<Vec<_>>(),
                chunker.gaps_total,
            )
        };
        let one_gap = |lost| (vec![(0, 0), (0, 0), (1, lost), (0, 0)], 1);
        assert_eq!(
            run(300, 0, true),
            one_gap(300),
            "dropped blocks: not counted again from the timestamps"
        );
        assert_eq!(
            run(0, 1, true),
            one_gap(300),
            "an overrun with a jump is that one gap, timed by the jump"
        );
        assert_eq!(
            run(300, 1, true),
            one_gap(300),
            "an overrun that made the callback drop blocks"
        );
        assert_eq!(
            run(0, 1, false),
            one_gap(0),
            "an overrun the timestamps do not show: unknown length"
        );
        assert_eq!(run(0, 0, true), one_gap(300), "a jump alone");
        assert_eq!(
            run(0, 2, true).1,
            2,
            "two overruns before one block are two gaps"
        );
        assert_eq!(run(0, 0, false), (vec![(0, 0); 4], 0));
    }

    #[test]
    fn small_timestamp_jitter_is_not_a_gap() {
        let mut chunker = Chunker::new(WavFormat::Pcm16, 1, 1000, 100);
        chunker.warm_up_frames = 0;
        let blocks = [
            block(vec![0; 100], 0),
            block(vec![0; 100], 130),
            block(vec![0; 100], 190),
        ];
        assert!(chunks_of(&blocks, &mut chunker).iter().all(|c| c.gaps == 0));
    }

    #[test]
    fn timestamp_jumps_while_the_stream_warms_up_are_not_gaps() {
        // 2 s at 1000 Hz: jumps in the first 2000 frames are settling latencies.
        let mut chunker = Chunker::new(WavFormat::Pcm16, 1, 1000, 1000);
        let mut blocks: Vec<Block> = (0..20).map(|i| block(vec![0; 100], i * 250)).collect();
        blocks.push(block(vec![0; 100], 20 * 250 + 400));
        let chunks = chunks_of(&blocks, &mut chunker);
        assert_eq!(chunks.iter().map(|c| c.gaps).collect::<Vec<_>>(), [0, 0]);
        assert_eq!(
            chunker.gaps_in_current, 1,
            "after the warm-up a jump counts"
        );
    }

    #[test]
    fn float_chunks_and_wav_writing() {
        let dir = tempfile::tempdir().unwrap();
        let samples = Samples::F32(vec![0.0, 0.5, -0.25, 1.0]);
        let path = dir.path().join("a.wav");
        samples
            .write_wav(&path, WavFormat::Float32.spec(48_000, 2))
            .unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.spec(), WavFormat::Float32.spec(48_000, 2));
        let back: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
        assert_eq!(back, [0.0, 0.5, -0.25, 1.0]);
        let ints = Samples::I16(vec![i16::MIN, -1, 0, 1, i16::MAX]);
        ints.write_wav(&path, WavFormat::Pcm16.spec(8_000, 1))
            .unwrap();
        let back: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, [i16::MIN, -1, 0, 1, i16::MAX]);
    }

    #[test]
    fn sample_conversion_to_the_wav_type_is_exact_for_16_bit_sources() {
        for v in [i16::MIN, -12345, -1, 0, 1, 12345, i16::MAX] {
            let f = v.to_sample::<f32>();
            assert_eq!(f.to_sample::<i16>(), v, "f32 → i16 round trip of {v}");
            assert_eq!(f, f32::from(v) / 32768.0);
        }
        assert_eq!((0x1234_5678i32).to_sample::<i16>(), 0x1234);
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let spec = CaptureSpec {
            device: Some("no-such-microphone-xyz".into()),
            samplerate: 48_000,
            channels: 1,
            format: WavFormat::Pcm16,
            chunk_frames: 48_000,
            buffer_frames: None,
            max_pending: 2,
        };
        let Err(error) = open_device(&spec) else {
            panic!("no device should match")
        };
        let text = error.to_string();
        assert!(
            text.starts_with(
                "no audio input device matches `no-such-microphone-xyz`; input devices: "
            ),
            "{text}"
        );
        assert!(text.contains("acoupi devices"), "{text}");
    }

    #[test]
    fn unsupported_error_names_what_is_supported() {
        let error = CaptureError::Unsupported {
            device: "device `hw:CARD=AudioMoth,DEV=0`".into(),
            rate: 44_100,
            channels: 1,
            supported: "`hw:CARD=AudioMoth,DEV=0`: 1 channel at 384000 Hz (i16)".into(),
        };
        assert_eq!(
            error.to_string(),
            "device `hw:CARD=AudioMoth,DEV=0` cannot capture 44100 Hz with 1 channel; supported: `hw:CARD=AudioMoth,DEV=0`: 1 channel at 384000 Hz (i16) (see `acoupi devices`)"
        );
    }
}

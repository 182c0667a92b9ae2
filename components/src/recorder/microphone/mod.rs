//! `recorder.microphone`: records from a live input device (a USB microphone, an
//! AudioMoth, any ALSA input) through cpal: [`devices`] finds the device, [`stream`] runs
//! the capture and [`chunker`] cuts it into recordings.
//!
//! A device that fails (unplugged, a broken cable, a stream that stopped delivering) is
//! retried with backoff: after a failure, triggers are answered at once with an error
//! naming the device and the next attempt, 1 s later at first, doubling up to 1 min; the
//! first success logs how long the microphone was gone. The other stages never wait on
//! it.

pub mod chunker;
pub mod devices;
pub mod stream;

use std::num::{NonZeroU16, NonZeroU32};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acoupi_engine::backoff::Backoff;
use acoupi_engine::component::{ComponentError, ComponentResult, Recorder};
use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::{RecordingDuration, nonzero};
use acoupi_engine::data::{Deployment, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use acoupi_engine::telemetry::Telemetry;

use crate::recorder::microphone::chunker::{Chunk, WavFormat};
use crate::recorder::microphone::devices::{OpenedDevice, open_device};
use crate::recorder::microphone::stream::{Capture, CaptureSpec};

/// Record from a microphone (USB microphone, AudioMoth, any ALSA input) with cpal: one
/// recording of `duration` per trigger, written as WAV into the temp folder. With
/// `continuous`, the stream stays open and is cut into back-to-back recordings.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MicrophoneRecorderConfig {
    /// The input device: part of its name or description as `acoupi devices` lists them,
    /// any case (an exact name wins; among several matches, the first that supports the
    /// rate and channels), e.g. "AudioMoth", "hw:CARD=1", "pulse". Default: the system's
    /// default input device.
    pub device: Option<String>,
    /// Sample rate in Hz; the device must support it (an AudioMoth: 384000).
    #[serde(
        default = "default_samplerate",
        deserialize_with = "samplerate_at_least_one"
    )]
    pub samplerate: NonZeroU32,
    /// Number of channels.
    #[serde(
        default = "default_channels",
        deserialize_with = "channels_at_least_one"
    )]
    pub channels: NonZeroU16,
    /// Length of each recording, at most 1 h (acoupi's default is 3 s); rounded to a whole
    /// number of frames.
    #[serde(default = "default_duration")]
    #[schemars(default = "default_duration_text")]
    pub duration: RecordingDuration,
    /// Frames per device buffer (acoupi's `chunksize`). Default: the device's choice.
    #[schemars(range(min = 1))]
    pub chunk_size: Option<u32>,
    /// Sample format of the WAV files: `pcm16` (16-bit integer) or `float32`.
    #[serde(default)]
    pub sample_format: WavFormat,
    /// Keep the stream open across triggers and cut it into back-to-back recordings of
    /// exactly `duration` (no frame lost or repeated between them; each stamped from its
    /// sample count since the stream's first sample). Schedule the stage `every`
    /// `duration` (or more often: a trigger waits for the next recording). Without it
    /// (acoupi's behaviour), each trigger opens the device, records `duration` and closes
    /// it.
    #[serde(default)]
    pub continuous: bool,
}

fn default_samplerate() -> NonZeroU32 {
    NonZeroU32::new(48_000).unwrap_or(NonZeroU32::MIN)
}

fn default_channels() -> NonZeroU16 {
    NonZeroU16::MIN
}

fn samplerate_at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    nonzero::<_, u32, _>(d, "samplerate must be at least 1")
}

fn channels_at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroU16, D::Error> {
    nonzero::<_, u16, _>(d, "channels must be at least 1")
}

fn default_duration() -> RecordingDuration {
    acoupi_engine::config::values::BoundedDuration(Duration::from_secs(3))
}

fn default_duration_text() -> &'static str {
    "3s"
}

/// Complete recordings kept in memory in continuous mode while no trigger takes them:
/// at least this much audio (and at least two recordings); older ones are dropped, logged.
const PENDING_AUDIO: Duration = Duration::from_secs(30);

impl MicrophoneRecorderConfig {
    fn spec(&self) -> Result<CaptureSpec, String> {
        let (samplerate, channels) = (self.samplerate.get(), self.channels.get());
        let chunk_frames = (self.duration.0.as_secs_f64() * f64::from(samplerate)).round();
        if chunk_frames < 1.0 {
            return Err(format!(
                "duration {} is shorter than one frame at {} Hz",
                self.duration, samplerate
            ));
        }
        let bytes_per_sample = match self.sample_format {
            WavFormat::Pcm16 => 2.0,
            WavFormat::Float32 => 4.0,
        };
        if chunk_frames * f64::from(channels) * bytes_per_sample > f64::from(u32::MAX - 1024) {
            return Err(format!(
                "duration {} is too long: a WAV file holds at most 4 GiB of audio",
                self.duration
            ));
        }
        let chunk_frames = chunk_frames as usize;
        let max_pending = (PENDING_AUDIO.as_secs_f64() / self.duration.0.as_secs_f64())
            .ceil()
            .max(2.0) as usize;
        Ok(CaptureSpec {
            device: self.device.clone(),
            samplerate,
            channels,
            format: self.sample_format,
            chunk_frames,
            buffer_frames: self.chunk_size,
            max_pending,
        })
    }
}

impl ComponentConfig for MicrophoneRecorderConfig {
    const KIND: &'static str = "recorder.microphone";

    /// Checks now that the device exists and supports the rate and channels, so a station
    /// with the wrong microphone plugged in stops at start with the reason.
    /// A duration that makes no whole frame, or more audio than a WAV file holds.
    fn check(&self) -> Vec<KeyProblem> {
        match self.spec() {
            Ok(_) => Vec::new(),
            Err(message) => vec![KeyProblem::new(&["duration"], Code::OutOfRange, message)],
        }
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let spec = self.spec().map_err(|e| BuildError::at(&["duration"], e))?;
        let opened = open_device(&spec).map_err(|e| BuildError::at(&["device"], e.to_string()))?;
        tracing::info!(device = %opened.name, format = %opened.sample_format, samplerate = spec.samplerate, channels = spec.channels, continuous = self.continuous, "microphone found");
        Ok(Built::Recorder(Arc::new(MicrophoneRecorder {
            spec,
            device: opened,
            continuous: self.continuous,
            capture: Mutex::new(None),
            retry: Mutex::new(Retry::default()),
            telemetry: ctx.telemetry.clone(),
        })))
    }
}

pub struct MicrophoneRecorder {
    spec: CaptureSpec,
    /// Chosen once, at build: each stream opens it by its ALSA name (stable across
    /// unplugging and plugging back).
    device: OpenedDevice,
    continuous: bool,
    /// The open stream in continuous mode.
    capture: Mutex<Option<Capture>>,
    retry: Mutex<Retry>,
    /// The station's telemetry: each stream counts its gaps there.
    telemetry: Telemetry,
}

/// The first wait after a failure, and the longest.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// The backoff after failures of the device.
#[derive(Debug)]
struct Retry {
    /// Failed attempts in a row and the wait they earn.
    backoff: Backoff,
    /// No attempt before this.
    next: Option<Instant>,
    /// When the first failure in a row happened.
    since: Option<Instant>,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            backoff: Backoff::new(FIRST_RETRY, LAST_RETRY),
            next: None,
            since: None,
        }
    }
}

impl Retry {
    /// The error for a trigger that comes before the next attempt is due, if it does.
    fn too_early(&self, now: Instant, device: &str) -> Option<ComponentError> {
        let next = self.next.filter(|next| now < *next)?;
        Some(ComponentError::Other(format!(
            "the microphone `{device}` is unavailable ({} failed attempts); next attempt in {:.1} s",
            self.backoff.failures(),
            (next - now).as_secs_f64()
        )))
    }

    fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.backoff.fail();
        self.next = Some(now + wait);
        self.since.get_or_insert(now);
        wait
    }

    /// Clears the backoff; how long the device was gone, when it was.
    fn succeeded(&mut self, now: Instant) -> Option<(u32, Duration)> {
        let gone = self
            .since
            .map(|since| (self.backoff.failures(), now - since));
        *self = Retry::default();
        gone
    }
}

impl MicrophoneRecorder {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.spec.chunk_frames as f64 / f64::from(self.spec.samplerate))
    }

    /// How long a trigger waits for its recording: the recording, then some slack for a
    /// slow start.
    fn timeout(&self) -> Duration {
        self.duration() + Duration::from_secs(10)
    }

    fn audio_error(&self, error: impl std::fmt::Display) -> ComponentError {
        ComponentError::Other(error.to_string())
    }

    /// The next recording's audio, unless the device is in its backoff after a failure.
    fn next_chunk(&self) -> ComponentResult<Chunk> {
        let lock = || {
            self.retry
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some(error) = lock().too_early(Instant::now(), &self.device.name) {
            return Err(error);
        }
        let result = self.take_chunk();
        let now = Instant::now();
        match &result {
            Ok(_) => {
                if let Some((failures, gone)) = lock().succeeded(now) {
                    tracing::info!(device = %self.device.name, failures, gone_s = gone.as_secs_f64().round(), "the microphone is back");
                }
            }
            Err(error) => {
                let wait = lock().failed(now);
                tracing::warn!(device = %self.device.name, %error, retry_in_s = wait.as_secs_f64(), "microphone failed; retrying with backoff");
            }
        }
        result
    }

    fn take_chunk(&self) -> ComponentResult<Chunk> {
        if !self.continuous {
            let capture = Capture::start(&self.device, &self.spec, &self.telemetry)
                .map_err(|e| self.audio_error(e))?;
            let (chunk, _) = capture
                .next_chunk(self.timeout())
                .map_err(|e| self.audio_error(e))?;
            return Ok(chunk);
        }
        let mut slot = self
            .capture
            .lock()
            .map_err(|_| ComponentError::Other("microphone state poisoned".into()))?;
        if slot.as_ref().is_some_and(Capture::failed) {
            // Drained what it had; a new stream starts a new timeline.
            if let Some(old) = slot.as_ref()
                && let Ok((chunk, dropped)) = old.next_chunk(Duration::ZERO)
            {
                log_dropped(dropped);
                return Ok(chunk);
            }
            tracing::warn!("the microphone stream stopped; opening it again");
            *slot = None;
        }
        if slot.is_none() {
            let capture = Capture::start(&self.device, &self.spec, &self.telemetry)
                .map_err(|e| self.audio_error(e))?;
            tracing::info!(device = %capture.device_name, format = %capture.sample_format, "microphone stream open (continuous)");
            *slot = Some(capture);
        }
        let capture = slot
            .as_ref()
            .ok_or_else(|| ComponentError::Other("no microphone stream".into()))?;
        let (chunk, dropped) = capture
            .next_chunk(self.timeout())
            .map_err(|e| self.audio_error(e))?;
        log_dropped(dropped);
        Ok(chunk)
    }
}

fn log_dropped(dropped: u64) {
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "continuous microphone: recordings dropped because no trigger took them in time"
        );
    }
}

impl Recorder for MicrophoneRecorder {
    fn record(&self, deployment: &Deployment, temp_dir: &Path) -> ComponentResult<Recording> {
        let chunk = self.next_chunk()?;
        let frames = chunk.samples.len() / usize::from(self.spec.channels);
        let mut recording = Recording::new(
            deployment.clone(),
            frames as f64 / f64::from(self.spec.samplerate),
            self.spec.samplerate,
        )?;
        recording.created_on = chunk.start;
        recording.audio_channels = u32::from(self.spec.channels);
        (recording.gaps, recording.lost_frames) = (chunk.gaps, chunk.lost_frames);
        if chunk.gaps > 0 {
            tracing::warn!(recording = %recording.id, gaps = chunk.gaps, lost_frames = chunk.lost_frames, index = chunk.index, "recording has gaps: audio was lost just before or inside it");
        }
        let id = recording.id.simple().to_string();
        let name = format!(
            "{}_{}.wav",
            recording.created_on.format("%Y%m%d_%H%M%S"),
            &id[..8]
        );
        std::fs::create_dir_all(temp_dir)
            .map_err(|e| ComponentError::io("cannot create temp folder", temp_dir, e))?;
        let path = temp_dir.join(name);
        chunk
            .samples
            .write_wav(
                &path,
                self.spec
                    .format
                    .spec(self.spec.samplerate, self.spec.channels),
            )
            .map_err(|e| ComponentError::Audio {
                path: path.clone(),
                reason: format!("cannot write: {e}"),
            })?;
        recording.path = Some(path);
        recording.validate()?;
        Ok(recording)
    }

    /// The ALSA name of the device, e.g. `hw:CARD=AudioMoth,DEV=0`.
    fn device(&self) -> Option<String> {
        Some(self.device.name.clone())
    }

    /// In continuous mode, closes the stream: the chunks waiting in it were captured while
    /// the conditions said no, and a trigger after they say yes again must get audio from
    /// then, not from before (a new stream starts a new timeline).
    fn pause(&self) {
        let mut slot = self
            .capture
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(capture) = slot.take() {
            let waiting = capture.pending();
            drop(capture);
            tracing::info!(device = %self.device.name, dropped_recordings = waiting, "microphone stream closed while the recording conditions say no");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<MicrophoneRecorderConfig, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_48_khz_mono_3_s_pcm16_per_trigger() {
        let c = config("{}").unwrap();
        assert_eq!(
            (
                c.device,
                c.samplerate.get(),
                c.channels.get(),
                c.duration.0,
                c.chunk_size,
                c.sample_format,
                c.continuous
            ),
            (
                None,
                48_000,
                1,
                Duration::from_secs(3),
                None,
                WavFormat::Pcm16,
                false
            )
        );
        let spec = config("{}").unwrap().spec().unwrap();
        assert_eq!((spec.chunk_frames, spec.max_pending), (144_000, 10));
    }

    #[test]
    fn parameters_and_unknown_keys() {
        let c = config(r#"{"device": "AudioMoth", "samplerate": 384000, "duration": "500ms", "sample_format": "float32", "continuous": true, "chunk_size": 4096}"#).unwrap();
        let spec = c.spec().unwrap();
        assert_eq!(
            (
                spec.device.as_deref(),
                spec.chunk_frames,
                spec.buffer_frames,
                spec.format,
                spec.max_pending
            ),
            (
                Some("AudioMoth"),
                192_000,
                Some(4096),
                WavFormat::Float32,
                60
            )
        );
        assert!(
            config(r#"{"rate": 48000}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(config(r#"{"sample_format": "pcm24"}"#).is_err());
        assert!(config(r#"{"duration": "0s"}"#).is_err());
    }

    #[test]
    fn a_duration_shorter_than_a_frame_or_longer_than_a_wav_file_is_refused() {
        let c = config(r#"{"samplerate": 1000, "duration": "100µs"}"#).unwrap();
        assert!(c.spec().unwrap_err().contains("shorter than one frame"));
        let c = config(r#"{"samplerate": 384000, "channels": 2, "duration": "1h"}"#).unwrap();
        assert!(c.spec().unwrap_err().contains("at most 4 GiB"));
        let error = config(r#"{"duration": "1h 30min"}"#).unwrap_err();
        assert!(error.contains("too long: at most 1h"), "{error}");
    }

    #[test]
    fn failures_back_off_doubling_up_to_a_minute_and_success_resets() {
        let start = Instant::now();
        let mut retry = Retry::default();
        assert!(
            retry.too_early(start, "mic").is_none(),
            "a healthy device is always tried"
        );
        let waits: Vec<u64> = (0..9)
            .map(|i| retry.failed(start + Duration::from_secs(i)).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        let last = start + Duration::from_secs(8);
        let error = retry
            .too_early(last + Duration::from_secs(59), "AudioMoth")
            .unwrap()
            .to_string();
        assert!(
            error.contains("`AudioMoth` is unavailable (9 failed attempts); next attempt in 1.0 s"),
            "{error}"
        );
        assert!(
            retry.too_early(last + LAST_RETRY, "AudioMoth").is_none(),
            "due again"
        );
        assert_eq!(
            retry.succeeded(last + LAST_RETRY),
            Some((9, Duration::from_secs(68)))
        );
        assert_eq!(
            retry.succeeded(last + LAST_RETRY),
            None,
            "nothing to report twice"
        );
        assert_eq!(
            retry.failed(last + LAST_RETRY),
            FIRST_RETRY,
            "a new outage starts at 1 s"
        );
    }
}

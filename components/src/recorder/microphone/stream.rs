//! A running capture stream: a capture thread owns the cpal stream. The audio callback
//! only converts the block it gets to the WAV sample type and hands it over a bounded
//! channel (`try_send`: it never blocks; a full channel drops the block and counts an
//! overflow). The same thread cuts the blocks into chunks (see
//! [`super::chunker`]): no frame is dropped or repeated at a chunk boundary.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use acoupi_engine::telemetry::Telemetry;
use chrono::Utc;
use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{InputCallbackInfo, SampleFormat, SizedSample};

use super::chunker::{Block, Chunk, Chunker, Samples, WavFormat};
use super::devices::{CaptureError, OpenedDevice};

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
    /// Its gaps are counted in `telemetry` too.
    pub fn start(
        opened: &OpenedDevice,
        spec: &CaptureSpec,
        telemetry: &Telemetry,
    ) -> Result<Capture, CaptureError> {
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = sync_channel::<Result<(), String>>(1);
        let thread = {
            let (shared, stop, spec) = (shared.clone(), stop.clone(), spec.clone());
            let telemetry = telemetry.clone();
            let device = opened.device.clone();
            let format = opened.sample_format;
            std::thread::Builder::new()
                .name("audio-capture".into())
                .spawn(move || {
                    capture_thread(device, format, spec, telemetry, shared, stop, started_tx)
                })
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
    telemetry: Telemetry,
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
    run_chunker(&rx, &spec, telemetry, &shared, &stop, &alarms);
    drop(stream);
}

/// The capture thread's loop: blocks → chunks, gaps noted, until stopped or failed; its
/// totals are logged when it ends.
fn run_chunker(
    rx: &Receiver<Block>,
    spec: &CaptureSpec,
    telemetry: Telemetry,
    shared: &Shared,
    stop: &AtomicBool,
    alarms: &Alarms,
) {
    let mut chunker = Chunker::new(
        spec.format,
        spec.channels,
        spec.samplerate,
        spec.chunk_frames,
        telemetry,
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

#[cfg(test)]
mod tests {
    use cpal::Sample;

    #[test]
    fn sample_conversion_to_the_wav_type_is_exact_for_16_bit_sources() {
        for v in [i16::MIN, -12345, -1, 0, 1, 12345, i16::MAX] {
            let f = v.to_sample::<f32>();
            assert_eq!(f.to_sample::<i16>(), v, "f32 → i16 round trip of {v}");
            assert_eq!(f, f32::from(v) / 32768.0);
        }
        assert_eq!((0x1234_5678i32).to_sample::<i16>(), 0x1234);
    }
}

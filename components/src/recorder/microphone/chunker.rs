//! Cutting captured blocks into chunks of an exact number of frames, each stamped from
//! its sample count since the stream's first sample; the gaps (xruns, dropped blocks,
//! timestamp jumps) counted on the chunk they fall in, in the station's [`Telemetry`],
//! and logged at warn. Also the WAV sample types a chunk is held and written in.

use std::time::Duration;

use acoupi_engine::telemetry::Telemetry;
use chrono::{DateTime, TimeDelta, Utc};
use cpal::{SampleFormat, StreamInstant};

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
    pub(super) fn preferred(self) -> [SampleFormat; 4] {
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
pub(super) struct Block {
    pub(super) samples: Samples,
    pub(super) capture: StreamInstant,
    pub(super) callback: StreamInstant,
    /// Frames the callback had to drop just before this block (the channel to the capture
    /// thread was full). Carried in the block, so the gap is placed where it happened.
    pub(super) dropped_before: u64,
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
pub(super) struct Chunker {
    format: WavFormat,
    pub(super) channels: usize,
    rate: u32,
    chunk_frames: usize,
    pub(super) current: Samples,
    pub(super) index: u64,
    /// Frames on the stream's timeline before the current chunk: captured plus lost.
    timeline: u64,
    /// Frames lost (estimated) since the current chunk started.
    lost_in_current: u64,
    gaps_in_current: u32,
    /// Frames received and gaps seen since the stream started.
    pub(super) frames_in: u64,
    pub(super) gaps_total: u64,
    /// Overruns the device reported that the next block has not accounted for yet.
    pending_xruns: u32,
    anchor: Option<DateTime<Utc>>,
    /// The capture time the next block should have, when frames are contiguous.
    expected_capture: Option<StreamInstant>,
    /// Timestamp jumps within this many frames of the start are not gaps: while buffers
    /// settle, devices (PulseAudio's ALSA plugin: by ~300 ms) report moving latencies.
    warm_up_frames: u64,
    /// The station's telemetry, where each gap is counted too.
    telemetry: Telemetry,
}

impl Chunker {
    pub(super) fn new(
        format: WavFormat,
        channels: u16,
        rate: u32,
        chunk_frames: usize,
        telemetry: Telemetry,
    ) -> Self {
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
            telemetry,
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
        self.telemetry.record_gap();
    }

    /// Notes an overrun the device reported; the next block says how long it was.
    pub(super) fn xrun(&mut self) {
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
    pub(super) fn push(&mut self, block: &Block, now: DateTime<Utc>, done: &mut impl FnMut(Chunk)) {
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
        } else if let Some(expected) = self.expected_capture.filter(|_| !warming_up)
            && let Some(late) = block.capture.checked_duration_since(expected)
        {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut chunker = Chunker::new(WavFormat::Pcm16, 2, 1000, 250, Telemetry::new());
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
        let mut chunker = Chunker::new(WavFormat::Pcm16, 1, 1000, 100, Telemetry::new());
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
            let mut chunker = Chunker::new(WavFormat::Pcm16, 1, 1000, 100, Telemetry::new());
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
        let mut chunker = Chunker::new(WavFormat::Pcm16, 1, 1000, 100, Telemetry::new());
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
        let mut chunker = Chunker::new(WavFormat::Pcm16, 1, 1000, 1000, Telemetry::new());
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
}

//! `model.band_energy`: a signal-processing event detector. It finds the stretches of a
//! recording where the energy in a frequency band rises well above the recording's own
//! background level: a useful first pass for a single loud species (a cuckoo, an owl, a
//! frog chorus), for QA of a new deployment, and the model of the demo pipeline.
//!
//! Method: Hann-windowed frames (`frame` long, no overlap), real FFT (`realfft`), band
//! power in dB; the background level is the median band power over the recording; frames
//! more than `threshold_db` above it are active; runs of active frames at least
//! `min_duration` long become `event` detections with a time-frequency box (the band) and a
//! score `min(1, peak excess / (2 × threshold_db))`, so an event exactly at the threshold
//! scores 0.5. Times are in the file's seconds; frequencies are real-world Hz (file Hz ×
//! the recording's time expansion). A recording that is loud from end to end has a high
//! median and few events: use a shorter recording or a narrower band.
//!
//! The audio is read frame by frame (`audio::for_each_window`), never whole; the levels
//! are kept for the median, at most [`MAX_FRAMES`] of them.

use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, Model};
use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::{BoundedDuration, DurationUpTo, Hertz, RecordingDuration};
use acoupi_engine::data::{
    BoundingBox, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::shared::audio::{Windows, for_each_window, recording_file};

/// The most analysis frames of one recording: the median needs every frame's level
/// (8 bytes each). 2²³ frames are 46 h at the default 20 ms; a longer recording, or a
/// much shorter `frame`, is refused.
pub const MAX_FRAMES: u64 = 1 << 23;

/// Detect sound events from the energy in a frequency band rising above the recording's
/// background level (no machine learning).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandEnergyModelConfig {
    /// The model name stored with each output (`name_model`).
    #[serde(default = "default_name")]
    #[schemars(default = "default_name")]
    pub name: String,
    /// Lower edge of the band, in Hz.
    pub low_freq: Hertz,
    /// Upper edge of the band, in Hz.
    pub high_freq: Hertz,
    /// How far above the background (median band level) a frame must be, in dB.
    #[serde(default = "default_threshold_db")]
    #[schemars(default = "default_threshold_db")]
    pub threshold_db: ThresholdDb,
    /// Frame length of the analysis; at most 1 s (one FFT per frame).
    #[serde(default = "default_frame")]
    #[schemars(default = "default_frame_text")]
    pub frame: DurationUpTo<1>,
    /// Shortest event reported; at most a recording's longest length (1 h).
    #[serde(default = "default_min_duration")]
    #[schemars(default = "default_min_duration_text")]
    pub min_duration: RecordingDuration,
    /// The tag given to each event: `{ key = "sound", value = <label> }`.
    #[serde(default = "default_label")]
    #[schemars(default = "default_label")]
    pub label: String,
}

fn default_name() -> String {
    "band_energy".into()
}
acoupi_engine::bounded_f64!(
    /// How far above the background a frame must be, in dB: greater than 0.
    ThresholdDb, "threshold_db", Excluded(0.0), Unbounded
);

fn default_threshold_db() -> ThresholdDb {
    ThresholdDb(10.0)
}
fn default_frame() -> DurationUpTo<1> {
    BoundedDuration(std::time::Duration::from_millis(20))
}
fn default_frame_text() -> &'static str {
    "20ms"
}
fn default_min_duration() -> RecordingDuration {
    BoundedDuration(std::time::Duration::from_millis(100))
}
fn default_min_duration_text() -> &'static str {
    "100ms"
}
fn default_label() -> String {
    "band energy".into()
}

impl ComponentConfig for BandEnergyModelConfig {
    const KIND: &'static str = "model.band_energy";

    fn check(&self) -> Vec<KeyProblem> {
        if self.low_freq.0 >= self.high_freq.0 {
            return vec![KeyProblem::new(
                &["low_freq"],
                Code::OutOfRange,
                format!(
                    "low_freq {} must be below high_freq {}",
                    self.low_freq.0, self.high_freq.0
                ),
            )];
        }
        Vec::new()
    }

    fn build(&self, _: &BuildContext) -> Result<Built, BuildError> {
        Ok(Built::Model(Arc::new(BandEnergyModel {
            name: self.name.clone(),
            low_freq: self.low_freq.0,
            high_freq: self.high_freq.0,
            threshold_db: self.threshold_db.0,
            frame_seconds: self.frame.0.as_secs_f64(),
            min_duration: self.min_duration.0.as_secs_f64(),
            label: self.label.clone(),
        })))
    }
}

pub struct BandEnergyModel {
    name: String,
    low_freq: f64,
    high_freq: f64,
    threshold_db: f64,
    frame_seconds: f64,
    min_duration: f64,
    label: String,
}

/// A run of active frames.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    start: f64,
    end: f64,
    peak_excess_db: f64,
}

/// The band level of one frame: the window, the FFT and the band's bins, made once per
/// recording.
struct BandLevel {
    frame_len: usize,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    first_bin: usize,
    last_bin: usize,
}

impl BandLevel {
    /// Band level in dB of a frame of `frame_len` samples.
    fn level(&mut self, frame: &[f32]) -> Result<f64, String> {
        self.input.iter_mut().for_each(|x| *x = 0.0);
        for ((x, s), w) in self.input.iter_mut().zip(frame).zip(&self.window) {
            *x = s * w;
        }
        self.fft
            .process(&mut self.input, &mut self.spectrum)
            .map_err(|e| e.to_string())?;
        let power: f64 = self.spectrum[self.first_bin..=self.last_bin]
            .iter()
            .map(|c| f64::from(c.norm_sqr()))
            .sum();
        Ok(10.0 * (power + 1e-12).log10())
    }
}

impl BandEnergyModel {
    /// The analysis of audio at `samplerate` (the file's Hz, the band's real Hz ÷
    /// `time_expansion`).
    fn band_level(&self, samplerate: f64, time_expansion: f64) -> Result<BandLevel, String> {
        let frame_len = ((self.frame_seconds * samplerate).round() as usize).max(16);
        if frame_len > crate::shared::audio::MAX_WINDOW_FRAMES {
            return Err(format!(
                "a frame of {} s is {frame_len} samples at {samplerate} Hz, over the limit of {}",
                self.frame_seconds,
                crate::shared::audio::MAX_WINDOW_FRAMES
            ));
        }
        let fft_len = frame_len.next_power_of_two();
        let bin_hz = samplerate / fft_len as f64;
        // The band in the file's frequencies.
        let low = self.low_freq / time_expansion;
        let high = (self.high_freq / time_expansion).min(samplerate / 2.0);
        let first_bin = (low / bin_hz).ceil() as usize;
        let last_bin = ((high / bin_hz).floor() as usize).min(fft_len / 2);
        if first_bin > last_bin {
            return Err(format!(
                "the band {}-{} Hz is above the Nyquist frequency of this recording ({} Hz)",
                self.low_freq,
                self.high_freq,
                samplerate / 2.0 * time_expansion
            ));
        }
        let window = acoupi_audio::hann(frame_len);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(fft_len);
        let (input, spectrum) = (fft.make_input_vec(), fft.make_output_vec());
        Ok(BandLevel {
            frame_len,
            window,
            fft,
            input,
            spectrum,
            first_bin,
            last_bin,
        })
    }

    fn events(&self, levels: &[f64], frame_seconds: f64) -> Vec<Event> {
        if levels.is_empty() {
            return Vec::new();
        }
        let mut sorted = levels.to_vec();
        sorted.sort_by(f64::total_cmp);
        let background = sorted[sorted.len() / 2];
        let mut events = Vec::new();
        let mut current: Option<(usize, f64)> = None;
        for (i, level) in levels
            .iter()
            .chain(std::iter::once(&f64::NEG_INFINITY))
            .enumerate()
        {
            let excess = level - background;
            match (&mut current, excess > self.threshold_db) {
                (None, true) => current = Some((i, excess)),
                (Some((_, peak)), true) => *peak = peak.max(excess),
                (Some((start, peak)), false) => {
                    // Times to the microsecond: frame arithmetic would print 1.4000000000000001.
                    let at = |frame: usize| (frame as f64 * frame_seconds * 1e6).round() / 1e6;
                    let event = Event {
                        start: at(*start),
                        end: at(i),
                        peak_excess_db: *peak,
                    };
                    if event.end - event.start >= self.min_duration - 1e-9 {
                        events.push(event);
                    }
                    current = None;
                }
                (None, false) => {}
            }
        }
        events
    }
}

impl Model for BandEnergyModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, recording: &Recording) -> ComponentResult<ModelOutput> {
        let (path, info) = recording_file(recording)?;
        let audio_error = |reason: String| ComponentError::Audio {
            path: path.to_path_buf(),
            reason,
        };
        let samplerate = f64::from(info.samplerate);
        let mut band = self
            .band_level(samplerate, recording.time_expansion)
            .map_err(audio_error)?;
        let frame_len = band.frame_len;
        let frames = info.frames / frame_len as u64;
        if frames > MAX_FRAMES {
            return Err(audio_error(format!(
                "{frames} frames of {} s to analyse, over the limit of {MAX_FRAMES}: use a longer frame or split the file",
                self.frame_seconds
            )));
        }
        let mut levels = Vec::with_capacity(frames as usize);
        let windows = Windows {
            window: frame_len,
            step: frame_len,
            min_last: frame_len,
        };
        for_each_window(
            path,
            &info,
            info.samplerate,
            info.samplerate,
            windows,
            &mut |_, frame| {
                levels.push(band.level(frame).map_err(audio_error)?);
                Ok(())
            },
        )?;
        let frame_seconds = frame_len as f64 / samplerate;
        let mut detections = Vec::new();
        for event in self.events(&levels, frame_seconds) {
            let score = (event.peak_excess_db / (2.0 * self.threshold_db)).min(1.0);
            let mut detection = Detection::new(PredictionType::Event);
            detection.location = Some(BoundingBox::new(
                event.start,
                self.low_freq,
                event.end,
                self.high_freq,
            )?);
            detection.detection_score = score;
            detection.tags = vec![PredictedTag::new(
                Tag::new("sound", self.label.as_str()),
                score,
            )?];
            detections.push(detection);
        }
        Ok(ModelOutput::new(
            self.name.as_str(),
            recording.clone(),
            detections,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::audio::testing::write_wav;
    use acoupi_engine::data::Deployment;

    fn model(low: f64, high: f64) -> BandEnergyModel {
        BandEnergyModel {
            name: "band_energy".into(),
            low_freq: low,
            high_freq: high,
            threshold_db: 10.0,
            frame_seconds: 0.02,
            min_duration: 0.1,
            label: "tone".into(),
        }
    }

    /// 3 s at 16 kHz: faint broadband-ish hiss, a 4 kHz tone from 1.0 s to 1.5 s.
    fn recording_with_tone(dir: &std::path::Path) -> Recording {
        let path = dir.join("tone.wav");
        write_wav(&path, 16_000, 1, 3.0, |t| {
            let hiss = 0.001 * ((t * 7919.0).sin() + (t * 104_729.0).sin());
            let tone = if (1.0..1.5).contains(&t) {
                0.5 * (2.0 * std::f64::consts::PI * 4000.0 * t).sin()
            } else {
                0.0
            };
            hiss + tone
        });
        let mut recording = Recording::new(Deployment::new("site"), 3.0, 16_000).unwrap();
        recording.path = Some(path);
        recording
    }

    #[test]
    fn finds_the_tone_in_its_band_with_its_times() {
        let dir = tempfile::tempdir().unwrap();
        let recording = recording_with_tone(dir.path());
        let output = model(3000.0, 5000.0).run(&recording).unwrap();
        assert_eq!(output.detections.len(), 1, "{:?}", output.detections);
        let detection = &output.detections[0];
        let location = detection.location.as_ref().unwrap();
        let [start, low, end, high] = location.coordinates();
        assert!((start - 1.0).abs() <= 0.04, "start {start}");
        assert!((end - 1.5).abs() <= 0.04, "end {end}");
        assert_eq!((low, high), (3000.0, 5000.0));
        assert!(
            detection.detection_score > 0.9,
            "a loud tone scores high: {}",
            detection.detection_score
        );
        assert_eq!(detection.tags[0].tag.value, "tone");
        assert_eq!(output.name_model, "band_energy");
    }

    #[test]
    fn ignores_sound_outside_the_band_and_errors_above_nyquist() {
        let dir = tempfile::tempdir().unwrap();
        let recording = recording_with_tone(dir.path());
        assert!(
            model(6000.0, 7000.0)
                .run(&recording)
                .unwrap()
                .detections
                .is_empty()
        );
        let err = model(9000.0, 12000.0)
            .run(&recording)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Nyquist"), "{err}");
    }

    #[test]
    fn events_shorter_than_the_minimum_are_dropped() {
        let m = model(1.0, 2.0);
        let mut levels = vec![0.0; 50];
        levels[10..13].iter_mut().for_each(|l| *l = 30.0); // 60 ms
        levels[20..30].iter_mut().for_each(|l| *l = 20.0); // 200 ms
        let events = m.events(&levels, 0.02);
        assert_eq!(events.len(), 1);
        assert!((events[0].start - 0.4).abs() < 1e-9 && (events[0].end - 0.6).abs() < 1e-9);
        assert_eq!(events[0].peak_excess_db, 20.0);
    }
}

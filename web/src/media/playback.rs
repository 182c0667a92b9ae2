//! Audio made from a Recording for listening: a clip of `?start=&end=` seconds, and the
//! two ways of making bat calls audible, as one mono 16-bit WAV (hound's writer).
//!
//! - **Time expansion** (`?playback=expanded&factor=10`): the same samples, their header
//!   rate divided by the factor (2 to 100): 10× slower, a 40 kHz call heard at 4 kHz.
//! - **Heterodyne** (`?playback=heterodyne&khz=40`): the samples mixed with a carrier of
//!   that frequency (below the file's Nyquist), low-passed at 12 kHz (two biquads, a 4th
//!   order Butterworth) and resampled to 44.1 kHz (rubato, through acoupi-audio): a call
//!   near the carrier is heard at the difference, in real time.
//!
//! Decoding goes through acoupi-audio's bounded reader, block by block, keeping only the
//! span and stopping after it; a span is at most [`MAX_CLIP_FRAMES`] frames (a shorter
//! `?start=&end=` is asked for otherwise).

use std::f64::consts::PI;
use std::io::Cursor;
use std::path::Path;

use acoupi_audio::{AudioError, audio_info, read_mono_blocks};

use crate::WebError;

/// The longest clip, in frames: 2²⁴ (44 s at 384 kHz, 5.8 min at 48 kHz).
pub(crate) const MAX_CLIP_FRAMES: u64 = 1 << 24;
/// The rate heterodyned audio is played at.
pub(crate) const HETERODYNE_RATE: u32 = 44_100;
/// The low-pass after mixing.
const HETERODYNE_CUTOFF_HZ: f64 = 12_000.0;

/// How the clip is played.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Playback {
    Normal,
    Expanded { factor: u32 },
    Heterodyne { carrier_hz: f64 },
}

impl Playback {
    /// From the query's `playback`, `factor` and `khz`.
    pub(crate) fn parse(
        playback: Option<&str>,
        factor: Option<u32>,
        khz: Option<f64>,
    ) -> Result<Playback, WebError> {
        match playback {
            None | Some("normal") => Ok(Playback::Normal),
            Some("expanded") => {
                let factor = factor.unwrap_or(10);
                if !(2..=100).contains(&factor) {
                    return Err(WebError::BadRequest(format!(
                        "factor={factor}: a time expansion factor is from 2 to 100"
                    )));
                }
                Ok(Playback::Expanded { factor })
            }
            Some("heterodyne") => {
                let khz = khz.unwrap_or(40.0);
                if !(khz.is_finite() && khz > 0.0) {
                    return Err(WebError::BadRequest(format!(
                        "khz={khz}: the carrier is a frequency in kHz above 0"
                    )));
                }
                Ok(Playback::Heterodyne {
                    carrier_hz: khz * 1000.0,
                })
            }
            Some(other) => Err(WebError::BadRequest(format!(
                "playback={other}: one of normal, expanded, heterodyne"
            ))),
        }
    }
}

/// Why a bounded read of a span stopped: an audio error, or the span is read (the
/// clips here and the spectrogram's span use it).
pub(crate) enum Stop {
    Audio(AudioError),
    Done,
}

impl From<AudioError> for Stop {
    fn from(e: AudioError) -> Self {
        Stop::Audio(e)
    }
}

/// The mono samples of `[start, end)` seconds of the file (`end` past the file: to its
/// end) and its sample rate.
pub(crate) fn decode_span(
    path: &Path,
    start: Option<f64>,
    end: Option<f64>,
) -> Result<(u32, Vec<f32>), WebError> {
    let audio = |e: AudioError| WebError::Internal(e.to_string());
    let info = audio_info(path).map_err(audio)?;
    let rate = f64::from(info.samplerate);
    let first = start.map_or(0, |s| (s.max(0.0) * rate).round() as u64);
    let last = end.map_or(info.frames, |e| {
        ((e.max(0.0) * rate).round() as u64).min(info.frames)
    });
    if last <= first {
        return Err(WebError::BadRequest(format!(
            "start={} end={}: an empty span (the recording is {:.3} s)",
            start.unwrap_or(0.0),
            end.unwrap_or(info.duration_seconds()),
            info.duration_seconds()
        )));
    }
    if last - first > MAX_CLIP_FRAMES {
        return Err(WebError::BadRequest(format!(
            "a clip is at most {MAX_CLIP_FRAMES} frames ({:.1} s at {} Hz): ask for a shorter start..end",
            MAX_CLIP_FRAMES as f64 / rate,
            info.samplerate
        )));
    }
    let mut samples = Vec::with_capacity((last - first) as usize);
    let mut at = 0u64;
    let read = read_mono_blocks::<Stop>(path, &mut |block| {
        let from = at;
        at += block.len() as u64;
        let lo = first.clamp(from, at) - from;
        let hi = last.clamp(from, at) - from;
        samples.extend_from_slice(&block[lo as usize..hi as usize]);
        if at >= last {
            return Err(Stop::Done);
        }
        Ok(())
    });
    match read {
        Ok(_) | Err(Stop::Done) => Ok((info.samplerate, samples)),
        Err(Stop::Audio(e)) => Err(audio(e)),
    }
}

/// The WAV of `samples` (recorded at `rate`) played as `playback`.
pub(crate) fn render(rate: u32, samples: &[f32], playback: Playback) -> Result<Vec<u8>, WebError> {
    match playback {
        Playback::Normal => wav(rate, samples),
        Playback::Expanded { factor } => wav((rate / factor).max(1), samples),
        Playback::Heterodyne { carrier_hz } => {
            let nyquist = f64::from(rate) / 2.0;
            if carrier_hz >= nyquist {
                return Err(WebError::BadRequest(format!(
                    "khz={}: the carrier must be below the recording's Nyquist frequency ({} kHz)",
                    carrier_hz / 1000.0,
                    nyquist / 1000.0
                )));
            }
            let mixed = heterodyne(rate, samples, carrier_hz);
            let out = acoupi_audio::resample(&mixed, rate, HETERODYNE_RATE)
                .map_err(|e| WebError::Internal(e.to_string()))?;
            wav(HETERODYNE_RATE, &out)
        }
    }
}

/// `samples` mixed with a cosine at `carrier_hz` (×2: the mix halves the amplitude) and
/// low-passed.
fn heterodyne(rate: u32, samples: &[f32], carrier_hz: f64) -> Vec<f32> {
    let step = 2.0 * PI * carrier_hz / f64::from(rate);
    let mut phase = 0.0f64;
    let mut mixed: Vec<f32> = samples
        .iter()
        .map(|&x| {
            let y = x * (2.0 * phase.cos()) as f32;
            phase = (phase + step) % (2.0 * PI);
            y
        })
        .collect();
    let cutoff = HETERODYNE_CUTOFF_HZ.min(0.45 * f64::from(rate));
    // A 4th order Butterworth: two biquads of these Qs.
    for q in [0.541_196_1, 1.306_563] {
        Biquad::low_pass(f64::from(rate), cutoff, q).run(&mut mixed);
    }
    mixed
}

/// A low-pass biquad (the Audio EQ Cookbook's).
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
}

impl Biquad {
    fn low_pass(rate: f64, cutoff: f64, q: f64) -> Biquad {
        let w = 2.0 * PI * cutoff / rate;
        let alpha = w.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        let c = w.cos();
        Biquad {
            b: [(1.0 - c) / 2.0 / a0, (1.0 - c) / a0, (1.0 - c) / 2.0 / a0],
            a: [-2.0 * c / a0, (1.0 - alpha) / a0],
        }
    }

    fn run(&self, samples: &mut [f32]) {
        let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
        for s in samples {
            let x = f64::from(*s);
            let y =
                self.b[0] * x + self.b[1] * x1 + self.b[2] * x2 - self.a[0] * y1 - self.a[1] * y2;
            (x2, x1, y2, y1) = (x1, x, y1, y);
            *s = y as f32;
        }
    }
}

/// A mono 16-bit PCM WAV of `samples` at `rate`.
pub(crate) fn wav(rate: u32, samples: &[f32]) -> Result<Vec<u8>, WebError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let error = |e: hound::Error| WebError::Internal(format!("writing a WAV clip: {e}"));
    let mut bytes = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let mut writer = hound::WavWriter::new(&mut bytes, spec).map_err(error)?;
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        writer.write_sample(v).map_err(error)?;
    }
    writer.finalize().map_err(error)?;
    Ok(bytes.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heterodyne_moves_a_tone_down_to_the_difference() {
        // 42 kHz at 192 kHz, carrier 40 kHz: 2 kHz (the 82 kHz sum is filtered out).
        let rate = 192_000;
        let tone: Vec<f32> = (0..rate)
            .map(|n| (2.0 * PI * 42_000.0 * f64::from(n) / f64::from(rate)).sin() as f32 * 0.5)
            .collect();
        let mixed = heterodyne(rate, &tone, 40_000.0);
        // Zero crossings over the second half: 2 per period.
        let half = &mixed[mixed.len() / 2..];
        let crossings = half
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let hz = crossings as f64 / 2.0 / 0.5;
        assert!((hz - 2000.0).abs() < 20.0, "{hz} Hz");
        let peak = half.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 0.5).abs() < 0.05, "peak {peak}");
    }

    #[test]
    fn playback_parameters_are_checked() {
        assert!(Playback::parse(Some("expanded"), Some(1), None).is_err());
        assert!(Playback::parse(Some("heterodyne"), None, Some(-3.0)).is_err());
        assert!(Playback::parse(Some("loud"), None, None).is_err());
        assert_eq!(
            Playback::parse(Some("expanded"), None, None).unwrap(),
            Playback::Expanded { factor: 10 }
        );
    }
}

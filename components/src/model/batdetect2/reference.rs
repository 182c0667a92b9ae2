//! BatDetect2's reference case (`models/batdetect2/reference/`: the library's spectrogram,
//! PyTorch's detection map and the library's decoded detections for 1 s of synthetic
//! calls, see `model.json`) run through `model.batdetect2`'s own pre-processing, network
//! and decoding, for `acoupi models --verify`.

use std::collections::BTreeMap;

use acoupi_engine::resources::DataDirs;
use tract_linalg::multithread::Executor;

use crate::model::batdetect2::spectrogram::{Spectrogram, SpectrogramMaker};
use crate::model::batdetect2::{BUNDLED_LABELS, BUNDLED_MODEL, Network, Peak, decode};
use crate::model::reference::{Check, find, read_reference};

const MODEL: &str = "batdetect2";
/// The reference spectrogram's width (1 s of audio).
const REFERENCE_WIDTH: usize = 1024;
/// The reference detections were decoded with this threshold.
pub(crate) const REFERENCE_THRESHOLD: f32 = 0.01;
/// The numpy recipe is within 5e-7 of the library; f32 arithmetic in another order adds a
/// little.
pub(crate) const SPECTROGRAM_TOLERANCE: f32 = 1e-4;
/// model.json: onnxruntime and tract 0.23.9 were seen within 1e-4 of PyTorch.
pub(crate) const NETWORK_TOLERANCE: f32 = 1e-4;

/// One reference detection (`ref_detections.json`, the library's `run_nms`): its peak
/// and what was found there.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Expected {
    pub x: usize,
    pub y: usize,
    #[serde(flatten)]
    pub call: Call,
}

/// A detection in the library's terms: probability, start and end (real seconds), low
/// and high frequency (Hz), top class and its probability.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub(crate) struct Call {
    pub det_prob: f64,
    pub start_time: f64,
    pub end_time: f64,
    pub low_freq: f64,
    pub high_freq: f64,
    pub class: String,
    pub class_prob: f64,
}

impl Call {
    /// A decoded peak in the library's terms, its top class named from `labels`.
    pub(super) fn of_peak(peak: &Peak, labels: &[String]) -> Call {
        let (class, class_prob) = peak
            .class_probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or((String::new(), 0.0), |(i, p)| {
                (labels.get(i).cloned().unwrap_or_default(), f64::from(*p))
            });
        Call {
            det_prob: f64::from(peak.det_prob),
            start_time: peak.start_time,
            end_time: peak.end_time,
            low_freq: peak.low_freq,
            high_freq: peak.high_freq,
            class,
            class_prob,
        }
    }
}

/// The spectrogram, the detection map and the decoded detections of the reference case.
pub fn verify(dirs: &DataDirs) -> Vec<Check> {
    const SPECTROGRAM: &str = "spectrogram of the 1 s reference audio vs the library";
    const MAP: &str = "detection map of the reference spectrogram vs PyTorch";
    const DETECTIONS: &str = "decoded detections (probabilities) vs the library";
    let mut checks = Vec::with_capacity(3);
    checks.push(
        read_reference(dirs, MODEL, "ref_audio_256k_1x256000.f32")
            .and_then(|audio| {
                let want = read_reference(dirs, MODEL, "ref_spec_1x1x128x1024.f32")?;
                let got = SpectrogramMaker::new().spectrogram(&audio);
                Ok(Check::values(
                    MODEL,
                    SPECTROGRAM,
                    &got.values,
                    &want,
                    SPECTROGRAM_TOLERANCE,
                ))
            })
            .unwrap_or_else(|e| Check::failed(MODEL, SPECTROGRAM, SPECTROGRAM_TOLERANCE, e)),
    );
    let network = find(dirs, BUNDLED_MODEL)
        .and_then(|model| Network::load(&model, &find(dirs, BUNDLED_LABELS)?, REFERENCE_WIDTH));
    let maps = network.and_then(|network| {
        let spectrogram = Spectrogram {
            width: REFERENCE_WIDTH,
            values: read_reference(dirs, MODEL, "ref_spec_1x1x128x1024.f32")?,
        };
        let maps = network.maps(&spectrogram, &Executor::SingleThread)?;
        Ok((network, maps))
    });
    let (network, maps) = match maps {
        Ok(found) => found,
        Err(reason) => {
            checks.push(Check::failed(MODEL, MAP, NETWORK_TOLERANCE, reason.clone()));
            checks.push(Check::failed(MODEL, DETECTIONS, NETWORK_TOLERANCE, reason));
            return checks;
        }
    };
    checks.push(
        read_reference(dirs, MODEL, "ref_pred_det_1x1x128x1024.f32")
            .map(|want| Check::values(MODEL, MAP, &maps.det, &want, NETWORK_TOLERANCE))
            .unwrap_or_else(|e| Check::failed(MODEL, MAP, NETWORK_TOLERANCE, e)),
    );
    let detections = expected_detections(dirs).and_then(|want| {
        let got: BTreeMap<(usize, usize), Call> = decode(&maps, REFERENCE_THRESHOLD)
            .iter()
            .map(|peak| ((peak.x, peak.y), Call::of_peak(peak, &network.labels)))
            .collect();
        differences(&got, &want)
    });
    checks.push(match detections {
        Ok(d) => Check {
            model: MODEL,
            what: DETECTIONS.to_string(),
            max_abs_diff: Some(d.prob as f32),
            tolerance: NETWORK_TOLERANCE,
            outcome: d.within(f64::from(NETWORK_TOLERANCE)),
        },
        Err(reason) => Check::failed(MODEL, DETECTIONS, NETWORK_TOLERANCE, reason),
    });
    checks
}

/// The reference detections (`ref_detections.json`).
pub(crate) fn expected_detections(dirs: &DataDirs) -> Result<Vec<Expected>, String> {
    let path = find(dirs, "models/batdetect2/reference/ref_detections.json")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The largest differences of detections from the reference's at the same peaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Differences {
    /// Detection and class probabilities.
    pub prob: f64,
    /// Start and end times, in seconds.
    pub time: f64,
    /// Low and high frequencies, in Hz.
    pub freq: f64,
}

impl Differences {
    /// Whether probabilities are within `tolerance`, times within `tolerance` × 10 ms and
    /// frequencies within `tolerance` × 10 kHz; what is not, when they are not.
    pub(crate) fn within(&self, tolerance: f64) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.prob.is_nan() || self.prob > tolerance {
            problems.push(format!("probability difference {:e}", self.prob));
        }
        if self.time.is_nan() || self.time > tolerance * 1e-2 {
            problems.push(format!("time difference {:e} s", self.time));
        }
        if self.freq.is_nan() || self.freq > tolerance * 1e4 {
            problems.push(format!("frequency difference {:e} Hz", self.freq));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Detections (by the (x, y) of their peaks) against the reference: an error when the
/// peaks or their top classes differ, else the largest differences.
pub(crate) fn differences(
    got: &BTreeMap<(usize, usize), Call>,
    want: &[Expected],
) -> Result<Differences, String> {
    let want: BTreeMap<(usize, usize), &Expected> = want.iter().map(|e| ((e.x, e.y), e)).collect();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(k)).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!("peaks (x, y) missing {missing:?}, extra {extra:?}"));
    }
    let mut d = Differences {
        prob: 0.0,
        time: 0.0,
        freq: 0.0,
    };
    for (key, e) in &want {
        let Some(g) = got.get(key) else { continue };
        if g.class != e.call.class {
            return Err(format!(
                "the class at {key:?} is {}, the library's {}",
                g.class, e.call.class
            ));
        }
        d.prob = d
            .prob
            .max((g.det_prob - e.call.det_prob).abs())
            .max((g.class_prob - e.call.class_prob).abs());
        d.time = d
            .time
            .max((g.start_time - e.call.start_time).abs())
            .max((g.end_time - e.call.end_time).abs());
        d.freq = d
            .freq
            .max((g.low_freq - e.call.low_freq).abs())
            .max((g.high_freq - e.call.high_freq).abs());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(det_prob: f64, class: &str) -> Call {
        Call {
            det_prob,
            start_time: 0.1,
            end_time: 0.11,
            low_freq: 40_000.0,
            high_freq: 50_000.0,
            class: class.into(),
            class_prob: det_prob / 2.0,
        }
    }

    #[test]
    fn detections_differ_by_their_peaks_classes_and_values() {
        let want = [Expected {
            x: 3,
            y: 40,
            call: call(0.5, "Myotis daubentonii"),
        }];
        let got =
            |prob: f64, class: &str, at: (usize, usize)| BTreeMap::from([(at, call(prob, class))]);
        let same = differences(&got(0.50001, "Myotis daubentonii", (3, 40)), &want).unwrap();
        assert!((same.prob - 1e-5).abs() < 1e-9 && same.time == 0.0 && same.freq == 0.0);
        assert!(same.within(1e-4).is_ok());
        assert!(same.within(1e-6).unwrap_err().contains("probability"));
        let moved = differences(&got(0.5, "Myotis daubentonii", (4, 40)), &want).unwrap_err();
        assert!(
            moved.contains("missing [(3, 40)], extra [(4, 40)]"),
            "{moved}"
        );
        let other = differences(&got(0.5, "Nyctalus noctula", (3, 40)), &want).unwrap_err();
        assert!(other.contains("Nyctalus noctula"), "{other}");
        let late = Differences {
            prob: 0.0,
            time: 1e-5,
            freq: 0.0,
        };
        assert!(late.within(1e-4).unwrap_err().contains("time"));
    }
}

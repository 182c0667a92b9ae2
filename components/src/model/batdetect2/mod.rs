//! `model.batdetect2`: bat echolocation call detection and classification (17 UK species)
//! with BatDetect2 (Net2DFast_UK_same), run on the CPU with tract from the ONNX export in
//! `models/batdetect2/` (see its README for the licence: CC BY-NC 4.0, non-commercial).
//!
//! Method, following batdetect2 1.3.1's `process_file` (every parameter is in
//! `models/batdetect2/model.json`):
//! - the WAV is read as mono; its effective rate is the file's rate × the time expansion
//!   (so a recording slowed down 10× is analysed in real time and frequency), and it is
//!   resampled from that rate to 256 kHz with rubato's FFT resampler (the library uses
//!   librosa's polyphase resampler);
//! - it is cut into chunks of `chunk_seconds` (3 s) of real time, the last one shorter;
//! - each chunk becomes a spectrogram (`spectrogram`: STFT, 10–120 kHz, PCEN,
//!   denoising, resizing to 128 rows × W columns of 1 ms, W a multiple of 32) and goes
//!   through the network, which gives per pixel a detection probability, a box size and 18
//!   class probabilities (17 species + background; the species' add up to the detection
//!   probability);
//! - decoding (the library's `run_nms`): local maxima of the detection map over 9 × 9 pixels
//!   (max-pooling), the `int(200 × d)` highest with `d = (W × 128 + 384) / 256 000` s (the
//!   library's formula, which measures d on the resized width), those above
//!   `detection_threshold`, ordered by time;
//! - a peak at column x, row y with sizes (w, h) is a box from `t(x)` to `t(x + w)` with
//!   `t(p) = (2p × 128 + 384) / 256 000` s (plus the chunk's start), and from
//!   `10 kHz + (128 − y) × 859.375 Hz` up by `h × 859.375 Hz` (859.375 Hz = 110 kHz / 128);
//!   a box whose high frequency is above the recording's real Nyquist frequency is dropped,
//!   as the library does;
//! - each box becomes an `event` detection with `detection_score` = the detection
//!   probability and `species` tags: every class whose probability at the peak is at least
//!   `min_class_probability`, most probable first, and always the most probable one (the
//!   library's `class`). A class probability is the network's joint probability (call and
//!   species), so it is at most the detection score; the library reports the same value as
//!   `class_prob`.
//!
//! Units: times are in the file's seconds (the library's real-time seconds × the time
//! expansion), frequencies are real-world Hz (as the library reports them), as for the other
//! models. A box with zero width or height (the size head's ReLU gave 0) is given one pixel
//! (1 ms of real time, 859.375 Hz), so that it is a valid box.
//!
//! The network is loaded once, when the component is built; tract optimises one plan per
//! input width (one for full chunks, made at build time, and one per tail length met),
//! cached and shared by every run; a run is CPU-heavy and happens on the caller's
//! (blocking) thread. Before optimising, the graph's channel softmax and bilinear
//! upsamplings are swapped for faster equivalents (`ops`), which halves the time
//! per chunk and gives the same maps.

mod ops;
pub(crate) mod reference;
mod spectrogram;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acoupi_engine::component::{ComponentError, ComponentResult, Model};
use acoupi_engine::config::values::{Score, TimeExpansion, nonzero};
use acoupi_engine::data::{
    BoundingBox, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;

use crate::model::batdetect2::spectrogram::{
    COLUMNS_PER_PIXEL, HEIGHT, SAMPLE_RATE, Spectrogram, SpectrogramMaker, padded_width,
};
use crate::shared::audio::{Windows, for_each_window, recording_file};
use crate::shared::onnx;

/// STFT hop and the samples before the first hop, at 256 kHz (for pixel → time).
const HOP: f64 = 128.0;
const OVERLAP: f64 = 384.0;
/// The band the network's 128 rows cover, in Hz, and the height of one row.
const MIN_FREQ: f64 = 10_000.0;
const MAX_FREQ: f64 = 120_000.0;
const ROW_HZ: f64 = (MAX_FREQ - MIN_FREQ) / HEIGHT as f64;
/// Side of the max-pooling window of the non-maximum suppression, in pixels.
const NMS_KERNEL: usize = 9;
/// Peaks kept per second of (resized, see the module doc) spectrogram.
const TOP_K_PER_SECOND: f64 = 200.0;
/// The default files, relative to a data dir (found at run time: `acoupi_engine::resources`).
pub(crate) const BUNDLED_MODEL: &str = "models/batdetect2/batdetect2.onnx";
pub(crate) const BUNDLED_LABELS: &str = "models/batdetect2/class_names.txt";

/// Detect bat echolocation calls and classify them to 17 UK species with BatDetect2
/// (Net2DFast_UK_same; weights CC BY-NC 4.0, non-commercial use only). Recordings are
/// analysed at 256 kHz in real time (file rate × time expansion).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatDetect2ModelConfig {
    /// The model name stored with each output (`name_model`).
    #[serde(default = "default_name")]
    #[schemars(default = "default_name")]
    pub name: String,
    /// The ONNX file, relative to the pipeline file. Default: the bundled
    /// `models/batdetect2/batdetect2.onnx`, found in acoupi's data dirs
    /// (`$ACOUPI_DATA_DIR`, `<exe>/../share/acoupi`, `/usr/share/acoupi`; `acoupi models`
    /// lists what is found).
    pub model: Option<PathBuf>,
    /// The class names, one a line in the model's class order (background excluded),
    /// relative to the pipeline file. Default: the bundled
    /// `models/batdetect2/class_names.txt`, found as for `model`.
    pub labels: Option<PathBuf>,
    /// Lowest detection probability reported. batdetect2's API uses 0.01 (many false
    /// positives on noise); its documentation's examples use 0.3.
    #[serde(default = "default_detection_threshold")]
    #[schemars(default = "default_detection_threshold")]
    pub detection_threshold: Score,
    /// A species tag is added for every class at least this probable at the detection's
    /// peak (the most probable class is always tagged).
    #[serde(default = "default_min_class_probability")]
    #[schemars(default = "default_min_class_probability")]
    pub min_class_probability: Score,
    /// Length of the chunks the audio is analysed in, in seconds of real time (the
    /// library's `chunk_size`). Longer chunks need more memory; calls across a chunk border
    /// may be missed or split.
    #[serde(default = "default_chunk_seconds")]
    #[schemars(default = "default_chunk_seconds")]
    pub chunk_seconds: ChunkSeconds,
    /// The time expansion factor of the files (10 for recordings slowed down ten times).
    /// Default: each recording's own `time_expansion`.
    pub time_expansion: Option<TimeExpansion>,
    /// Threads one chunk's network run may use (its matrix products are split between
    /// them). More lowers the time to analyse one recording on a station with idle cores;
    /// keep 1 where recordings are analysed in parallel anyway (reprocessing).
    #[serde(default = "default_threads", deserialize_with = "threads_at_least_one")]
    #[schemars(default = "default_threads")]
    pub threads: NonZeroUsize,
}

fn default_threads() -> NonZeroUsize {
    NonZeroUsize::MIN
}
fn threads_at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NonZeroUsize, D::Error> {
    nonzero::<_, usize, _>(d, "threads must be at least 1")
}
acoupi_engine::bounded_f64!(
    /// The length of the chunks the audio is analysed in, 0.1 to 60 s.
    ChunkSeconds, "chunk_seconds", Included(0.1), Included(60.0)
);

fn default_name() -> String {
    "BatDetect2_UK".into()
}
fn default_detection_threshold() -> Score {
    Score(0.3)
}
fn default_min_class_probability() -> Score {
    Score(0.01)
}
fn default_chunk_seconds() -> ChunkSeconds {
    ChunkSeconds(3.0)
}

impl ComponentConfig for BatDetect2ModelConfig {
    const KIND: &'static str = "model.batdetect2";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let model = BatDetect2Model::load(self, ctx).map_err(|reason| {
            crate::model::at_file_field(
                reason,
                ctx,
                &[
                    ("model", self.model.as_deref()),
                    ("labels", self.labels.as_deref()),
                ],
            )
        })?;
        Ok(Built::Model(Arc::new(model)))
    }
}

/// The network's three maps for one spectrogram of `width` columns, row by row:
/// `det` (1 × 128 × W), `size` (2 × 128 × W), `class` (classes + 1 × 128 × W).
#[derive(Debug, Clone)]
struct Maps {
    width: usize,
    det: Vec<f32>,
    size: Vec<f32>,
    class: Vec<f32>,
}

/// The parsed network, its optimised plans (one per input width) and its labels, loaded
/// once and shared by every run.
struct Network {
    path: PathBuf,
    model: InferenceModel,
    plans: Mutex<HashMap<usize, Arc<TypedRunnableModel>>>,
    labels: Vec<String>,
}

impl Network {
    fn load(model_path: &Path, labels_path: &Path, width: usize) -> Result<Network, String> {
        let labels = onnx::read_labels(labels_path).map_err(|e| e.to_string())?;
        let model = onnx::parse(model_path, "model").map_err(|e| e.to_string())?;
        let network = Network {
            path: model_path.to_path_buf(),
            model,
            plans: Mutex::new(HashMap::new()),
            labels,
        };
        // The plan for full chunks, made now: a broken model fails the build, not a run.
        let plan = network.plan(width)?;
        let channels: Vec<Option<usize>> = (0..3)
            .map(|i| {
                plan.model()
                    .output_fact(i)
                    .ok()
                    .and_then(|fact| fact.shape.as_concrete().and_then(|s| s.get(1).copied()))
            })
            .collect();
        if channels != [Some(1), Some(2), Some(network.labels.len() + 1)] {
            return Err(format!(
                "the model `{}` has outputs with {:?} channels; expected detection (1), size (2) and class ({} labels in `{}` + background)",
                model_path.display(),
                channels,
                network.labels.len(),
                labels_path.display()
            ));
        }
        Ok(network)
    }

    /// The optimised plan for spectrograms `width` columns wide, made on first use.
    fn plan(&self, width: usize) -> Result<Arc<TypedRunnableModel>, String> {
        let mut plans = self
            .plans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plan) = plans.get(&width) {
            return Ok(plan.clone());
        }
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact([1, 1, HEIGHT, width]).into())
            .and_then(|model| model.into_typed())
            .and_then(|model| model.into_decluttered())
            .and_then(|mut model| {
                crate::model::batdetect2::ops::accelerate(&mut model).map(|_| model)
            })
            .and_then(|model| model.into_optimized())
            .and_then(|model| model.into_runnable())
            .map_err(|e| {
                format!(
                    "cannot prepare the model `{}` for width {width}: {e:#}",
                    self.path.display()
                )
            })?;
        plans.insert(width, plan.clone());
        Ok(plan)
    }

    /// The network's maps for one spectrogram.
    fn maps(&self, spectrogram: &Spectrogram, executor: &Executor) -> Result<Maps, String> {
        let plan = self.plan(spectrogram.width)?;
        let fail = |e: TractError| format!("BatDetect2 inference failed: {e:#}");
        let input = Tensor::from_shape(&[1, 1, HEIGHT, spectrogram.width], &spectrogram.values)
            .map_err(fail)?;
        let outputs = multithread_tract_scope(executor.clone(), || plan.run(tvec![input.into()]))
            .map_err(fail)?;
        let flat = |i: usize| -> Result<Vec<f32>, String> {
            let output = outputs
                .get(i)
                .ok_or_else(|| format!("the model gave {} outputs, not 3", outputs.len()))?;
            Ok(output
                .to_plain_array_view::<f32>()
                .map_err(fail)?
                .iter()
                .copied()
                .collect())
        };
        let maps = Maps {
            width: spectrogram.width,
            det: flat(0)?,
            size: flat(1)?,
            class: flat(2)?,
        };
        let plane = HEIGHT * spectrogram.width;
        let lengths = [maps.det.len(), maps.size.len(), maps.class.len()];
        if lengths != [plane, 2 * plane, (self.labels.len() + 1) * plane] {
            return Err(format!(
                "the model `{}` gave outputs of {lengths:?} values for a {HEIGHT} × {} spectrogram",
                self.path.display(),
                spectrogram.width
            ));
        }
        Ok(maps)
    }
}

/// One decoded peak, in the library's real-time units (seconds from the chunk's start, Hz).
#[derive(Debug, Clone, PartialEq)]
struct Peak {
    x: usize,
    y: usize,
    det_prob: f32,
    start_time: f64,
    end_time: f64,
    low_freq: f64,
    high_freq: f64,
    /// The species' probabilities (background dropped).
    class_probs: Vec<f32>,
}

/// The time of spectrogram column `x` (resized pixels, fractional), in seconds.
fn column_time(x: f64) -> f64 {
    (x * COLUMNS_PER_PIXEL as f64 * HOP + OVERLAP) / f64::from(SAMPLE_RATE)
}

/// `value` where it is the maximum of the `NMS_KERNEL` × `NMS_KERNEL` window around it
/// (clipped at the edges), 0 elsewhere: the library's max-pool suppression, done as a
/// row-wise then a column-wise running maximum.
fn suppress_non_maxima(det: &[f32], width: usize) -> Vec<f32> {
    if width == 0 {
        return Vec::new();
    }
    let half = NMS_KERNEL / 2;
    let height = det.len() / width;
    let mut across = vec![0.0f32; det.len()];
    for (row_in, row_out) in det.chunks_exact(width).zip(across.chunks_exact_mut(width)) {
        for (x, out) in row_out.iter_mut().enumerate() {
            *out = row_in[x.saturating_sub(half)..(x + half + 1).min(width)]
                .iter()
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
        }
    }
    let mut kept = vec![0.0f32; det.len()];
    for y in 0..height {
        for x in 0..width {
            let local_max = (y.saturating_sub(half)..(y + half + 1).min(height))
                .map(|r| across[r * width + x])
                .fold(f32::NEG_INFINITY, f32::max);
            let value = det[y * width + x];
            if value == local_max {
                kept[y * width + x] = value;
            }
        }
    }
    kept
}

/// The library's `run_nms` on one chunk's maps, with a detection threshold (strictly
/// above), ordered by column (then by decreasing probability).
fn decode(maps: &Maps, threshold: f32) -> Vec<Peak> {
    let width = maps.width;
    let plane = HEIGHT * width;
    let kept = suppress_non_maxima(&maps.det, width);
    let top_k = (column_time(width as f64 / COLUMNS_PER_PIXEL as f64) * TOP_K_PER_SECOND) as usize;
    let mut peaks: Vec<(usize, f32)> = kept
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, v)| *v > 0.0)
        .collect();
    peaks.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    peaks.truncate(top_k);
    peaks.retain(|(_, v)| *v > threshold);
    peaks.sort_by(|a, b| (a.0 % width).cmp(&(b.0 % width)).then(b.1.total_cmp(&a.1)));
    let classes = maps.class.len().checked_div(plane).unwrap_or(0);
    peaks
        .into_iter()
        .map(|(i, det_prob)| {
            let (y, x) = (i / width, i % width);
            let (box_width, box_height) =
                (f64::from(maps.size[i]), f64::from(maps.size[plane + i]));
            let low_freq = (HEIGHT - y) as f64 * ROW_HZ + MIN_FREQ;
            Peak {
                x,
                y,
                det_prob,
                start_time: column_time(x as f64),
                end_time: column_time(x as f64 + box_width),
                low_freq,
                high_freq: low_freq + box_height * ROW_HZ,
                class_probs: (0..classes.saturating_sub(1))
                    .map(|c| maps.class[c * plane + i])
                    .collect(),
            }
        })
        .collect()
}

/// The chunks of `chunk_samples` of a signal (the last one may be shorter).
fn chunk_windows(chunk_samples: usize) -> Windows {
    Windows {
        window: chunk_samples,
        step: chunk_samples,
        min_last: 1,
    }
}

/// A running BatDetect2 model: the shared network and this instance's settings.
#[derive(Clone)]
pub struct BatDetect2Model {
    name: String,
    network: Arc<Network>,
    spectrogram: Arc<SpectrogramMaker>,
    detection_threshold: f64,
    min_class_probability: f64,
    chunk_seconds: f64,
    time_expansion: Option<f64>,
    /// Where the network's matrix products run (one thread, or a pool of `threads`).
    executor: Executor,
}

impl BatDetect2Model {
    fn load(config: &BatDetect2ModelConfig, ctx: &BuildContext) -> Result<BatDetect2Model, String> {
        let path = |given: &Option<PathBuf>, bundled: &str, key: &str| {
            crate::model::file_or_default(ctx, given.as_deref(), bundled, key)
        };
        let chunk_samples = (f64::from(SAMPLE_RATE) * config.chunk_seconds.0) as usize;
        let network = Network::load(
            &path(&config.model, BUNDLED_MODEL, "model")?,
            &path(&config.labels, BUNDLED_LABELS, "labels")?,
            padded_width(chunk_samples),
        )?;
        Ok(BatDetect2Model {
            name: config.name.clone(),
            network: Arc::new(network),
            spectrogram: Arc::new(SpectrogramMaker::new()),
            detection_threshold: config.detection_threshold.0,
            min_class_probability: config.min_class_probability.0,
            chunk_seconds: config.chunk_seconds.0,
            time_expansion: config.time_expansion.map(|te| te.0),
            executor: if config.threads.get() > 1 {
                Executor::multithread_with_name(config.threads.get(), &ctx.instance)
            } else {
                Executor::SingleThread
            },
        })
    }

    fn chunk_samples(&self) -> usize {
        (f64::from(SAMPLE_RATE) * self.chunk_seconds) as usize
    }

    /// The peaks of the `index`th chunk of audio at 256 kHz, in real seconds from the
    /// audio's start.
    fn chunk_peaks(&self, index: usize, chunk: &[f32]) -> Result<Vec<Peak>, String> {
        let maps = self
            .network
            .maps(&self.spectrogram.spectrogram(chunk), &self.executor)?;
        let offset = index as f64 * self.chunk_seconds;
        Ok(decode(&maps, self.detection_threshold as f32)
            .into_iter()
            .map(|mut peak| {
                peak.start_time += offset;
                peak.end_time += offset;
                peak
            })
            .collect())
    }

    /// The peaks of audio at 256 kHz, chunk by chunk, in real seconds from its start.
    #[cfg(test)]
    fn peaks(&self, audio: &[f32]) -> Result<Vec<Peak>, String> {
        let chunk_samples = self.chunk_samples();
        let mut peaks = Vec::new();
        for (index, start) in chunk_windows(chunk_samples).starts(audio.len()).enumerate() {
            peaks.extend(self.chunk_peaks(
                index,
                &audio[start..(start + chunk_samples).min(audio.len())],
            )?);
        }
        Ok(peaks)
    }

    /// The detection of a peak: times × `time_expansion` (file seconds), frequencies as
    /// they are (real Hz).
    fn detection(&self, peak: &Peak, time_expansion: f64) -> ComponentResult<Detection> {
        let min_end = peak.start_time + column_time(1.0) - column_time(0.0);
        let end_time = peak.end_time.max(min_end);
        let high_freq = peak.high_freq.max(peak.low_freq + ROW_HZ);
        let mut classes: Vec<(usize, f32)> = peak.class_probs.iter().copied().enumerate().collect();
        classes.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut tags = Vec::new();
        for (rank, (class, probability)) in classes.into_iter().enumerate() {
            if rank > 0 && f64::from(probability) < self.min_class_probability {
                break;
            }
            let label = self
                .network
                .labels
                .get(class)
                .map_or("unknown", String::as_str);
            tags.push(PredictedTag::new(
                Tag::new("species", label),
                f64::from(probability).clamp(0.0, 1.0),
            )?);
        }
        let mut detection = Detection::new(PredictionType::Event);
        detection.location = Some(BoundingBox::new(
            peak.start_time * time_expansion,
            peak.low_freq,
            end_time * time_expansion,
            high_freq,
        )?);
        detection.detection_score = f64::from(peak.det_prob).clamp(0.0, 1.0);
        detection.tags = tags;
        Ok(detection)
    }
}

impl Model for BatDetect2Model {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, recording: &Recording) -> ComponentResult<ModelOutput> {
        let (path, info) = recording_file(recording)?;
        let audio_error = |reason: String| ComponentError::Audio {
            path: path.to_path_buf(),
            reason,
        };
        let time_expansion = self.time_expansion.unwrap_or(recording.time_expansion);
        let effective_rate = f64::from(info.samplerate) * time_expansion;
        if !(effective_rate >= 1.0 && effective_rate <= f64::from(u32::MAX)) {
            return Err(audio_error(format!(
                "{} Hz × time expansion {time_expansion} is not a usable sample rate",
                info.samplerate
            )));
        }
        let effective_rate = effective_rate.round() as u32;
        let nyquist = f64::from(info.samplerate) * time_expansion / 2.0;
        let chunk_samples = self.chunk_samples();
        let mut peaks = Vec::new();
        for_each_window(
            path,
            &info,
            effective_rate,
            SAMPLE_RATE,
            chunk_windows(chunk_samples),
            &mut |start, chunk| {
                peaks.extend(
                    self.chunk_peaks(start / chunk_samples, chunk)
                        .map_err(ComponentError::Other)?,
                );
                Ok(())
            },
        )?;
        let detections = peaks
            .iter()
            .filter(|peak| peak.high_freq <= nyquist)
            .map(|peak| self.detection(peak, time_expansion))
            .collect::<ComponentResult<Vec<_>>>()?;
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
    use std::collections::BTreeMap;
    use std::sync::OnceLock;
    use std::time::Instant;

    use crate::model::batdetect2::spectrogram::testing::{REFERENCE_DIR, read_f32};
    use crate::shared::audio::resample;

    use crate::model::batdetect2::reference::{Call, Expected, NETWORK_TOLERANCE, differences};
    /// The reference detections were decoded with this threshold.
    const REFERENCE_THRESHOLD: f64 = 0.01;

    fn expected() -> Vec<Expected> {
        let path = Path::new(REFERENCE_DIR).join("ref_detections.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    fn context() -> BuildContext {
        crate::testing::context(Path::new("."), None)
    }

    fn config(json: &str) -> BatDetect2ModelConfig {
        serde_json::from_str(json).unwrap()
    }

    /// The bundled model built from the default config, loaded once for all tests.
    fn shared() -> &'static BatDetect2Model {
        static MODEL: OnceLock<BatDetect2Model> = OnceLock::new();
        MODEL.get_or_init(|| {
            let t = Instant::now();
            let model = BatDetect2Model::load(&config("{}"), &context()).unwrap();
            eprintln!(
                "BatDetect2 loaded, plan for 3 s chunks optimised in {:.1?}",
                t.elapsed()
            );
            model
        })
    }

    /// The shared model with the reference's threshold, tagging every class.
    fn with_reference_threshold() -> BatDetect2Model {
        BatDetect2Model {
            detection_threshold: REFERENCE_THRESHOLD,
            min_class_probability: 0.0,
            ..shared().clone()
        }
    }

    /// The network's maps on the reference spectrogram (computed once).
    fn reference_maps() -> &'static Maps {
        static MAPS: OnceLock<Maps> = OnceLock::new();
        MAPS.get_or_init(|| {
            let spectrogram = Spectrogram {
                width: 1024,
                values: read_f32("ref_spec_1x1x128x1024.f32"),
            };
            let network = &shared().network;
            let t = Instant::now();
            network.plan(1024).unwrap();
            eprintln!(
                "plan for 1 s chunks (W = 1024) optimised in {:.1?}",
                t.elapsed()
            );
            let t = Instant::now();
            let maps = network.maps(&spectrogram, &Executor::SingleThread).unwrap();
            eprintln!(
                "one 1 s chunk (W = 1024) through the network: {} ms (dev profile)",
                t.elapsed().as_millis()
            );
            maps
        })
    }

    /// A WAV of the samples at `samplerate`, recorded with `time_expansion`.
    fn write_f32_wav(
        path: &Path,
        samplerate: u32,
        samples: &[f32],
        time_expansion: f64,
    ) -> Recording {
        let mut recording = crate::shared::audio::testing::write_f32_wav(path, samplerate, samples);
        recording.time_expansion = time_expansion;
        recording
    }

    /// The detections of an output back in the library's terms, by (x, y) of their peaks.
    fn found(output: &ModelOutput, time_expansion: f64) -> BTreeMap<(usize, usize), Call> {
        output
            .detections
            .iter()
            .map(|d| {
                let [start, low, end, high] = d.location.unwrap().coordinates();
                let (start_time, end_time) = (start / time_expansion, end / time_expansion);
                let x = ((start_time * f64::from(SAMPLE_RATE) - OVERLAP) / (2.0 * HOP)).round()
                    as usize;
                let y = (HEIGHT as f64 - (low - MIN_FREQ) / ROW_HZ).round() as usize;
                let top = &d.tags[0];
                let found = Call {
                    det_prob: d.detection_score,
                    start_time,
                    end_time,
                    low_freq: low,
                    high_freq: high,
                    class: top.tag.value.clone(),
                    class_prob: top.confidence_score,
                };
                ((x, y), found)
            })
            .collect()
    }

    /// Checks detections against the reference: the same peaks, and each field within
    /// `tolerance` (relative for probabilities and sizes); returns the largest differences
    /// (probability, seconds, Hz).
    fn compare(
        got: &BTreeMap<(usize, usize), Call>,
        want: &[Expected],
        tolerance: f64,
    ) -> (f64, f64, f64) {
        let d = differences(got, want).unwrap();
        d.within(tolerance).unwrap();
        (d.prob, d.time, d.freq)
    }

    #[test]
    fn the_network_matches_the_reference_detection_map() {
        let want = read_f32("ref_pred_det_1x1x128x1024.f32");
        let got = &reference_maps().det;
        let max_diff = crate::model::reference::max_abs_difference(got, &want).unwrap();
        eprintln!("pred_det: max abs difference from PyTorch {max_diff:e}");
        assert!(
            max_diff <= NETWORK_TOLERANCE,
            "max abs difference {max_diff:e} above {NETWORK_TOLERANCE:e}"
        );
    }

    #[test]
    fn decoding_the_reference_maps_gives_the_library_detections() {
        let want = expected();
        let peaks = decode(reference_maps(), REFERENCE_THRESHOLD as f32);
        assert_eq!(peaks.len(), want.len());
        let labels = &shared().network.labels;
        let got: BTreeMap<(usize, usize), Call> = peaks
            .iter()
            .map(|p| ((p.x, p.y), Call::of_peak(p, labels)))
            .collect();
        let (prob, time, freq) = compare(&got, &want, 1e-4);
        eprintln!(
            "decoding: {} detections as the library; max differences {prob:e} (probability), {time:e} s, {freq:e} Hz",
            peaks.len()
        );
        // Ordered by time, as the library's.
        assert!(peaks.windows(2).all(|w| w[0].x <= w[1].x));
    }

    #[test]
    fn end_to_end_the_reference_audio_gives_the_library_detections() {
        let audio = read_f32("ref_audio_256k_1x256000.f32");
        let dir = tempfile::tempdir().unwrap();
        let recording = write_f32_wav(&dir.path().join("ref.wav"), SAMPLE_RATE, &audio, 1.0);
        let t = Instant::now();
        let output = with_reference_threshold().run(&recording).unwrap();
        eprintln!(
            "end to end, 1 s at 256 kHz: {} ms (dev profile)",
            t.elapsed().as_millis()
        );
        assert_eq!(output.name_model, "BatDetect2_UK");
        output.validate().unwrap();
        let (prob, time, freq) = compare(&found(&output, 1.0), &expected(), 1e-3);
        eprintln!(
            "end to end: {} detections as the library; max differences {prob:e}, {time:e} s, {freq:e} Hz",
            output.detections.len()
        );
        for detection in &output.detections {
            assert_eq!(detection.prediction_type, PredictionType::Event);
            assert_eq!(
                detection.tags.len(),
                17,
                "every class tagged with min_class_probability 0"
            );
            let probabilities: Vec<f64> =
                detection.tags.iter().map(|t| t.confidence_score).collect();
            assert!(
                probabilities.windows(2).all(|w| w[0] >= w[1]),
                "most probable first"
            );
            assert!(
                (probabilities.iter().sum::<f64>() - detection.detection_score).abs() < 1e-4,
                "classes add up to the detection"
            );
        }
        // With the default threshold (0.3) only the confident calls remain.
        let confident = shared().run(&recording).unwrap();
        let want = expected().iter().filter(|e| e.call.det_prob > 0.3).count();
        assert_eq!(confident.detections.len(), want);
        for detection in &confident.detections {
            assert!(detection.detection_score > 0.3);
            // The top species, then only classes at least 0.01 probable (the default floor).
            assert!(
                !detection.tags.is_empty() && detection.tags.len() < 17,
                "{:?}",
                detection.tags
            );
            assert!(
                detection.tags[1..]
                    .iter()
                    .all(|t| t.confidence_score >= 0.01)
            );
        }
    }

    #[test]
    fn time_expanded_recordings_give_the_same_calls_in_real_time_and_frequency() {
        let audio = read_f32("ref_audio_256k_1x256000.f32");
        let dir = tempfile::tempdir().unwrap();
        // The same samples at 25.6 kHz: the calls slowed down ten times.
        let recording = write_f32_wav(&dir.path().join("te10.wav"), 25_600, &audio, 10.0);
        let output = with_reference_threshold().run(&recording).unwrap();
        let (prob, time, freq) = compare(&found(&output, 10.0), &expected(), 1e-3);
        eprintln!("time expansion 10: max differences {prob:e}, {time:e} s, {freq:e} Hz");
        // Times are the file's: ten times the real ones.
        let last = output
            .detections
            .iter()
            .map(|d| d.location.unwrap().end_time())
            .fold(0.0, f64::max);
        assert!(last > 10.0, "last end {last} s");
        // The config's time expansion overrides the recording's.
        let mut as_real = recording.clone();
        as_real.time_expansion = 1.0;
        let overridden = BatDetect2Model {
            time_expansion: Some(10.0),
            ..with_reference_threshold()
        };
        assert_eq!(
            found(&overridden.run(&as_real).unwrap(), 10.0).len(),
            output.detections.len()
        );
    }

    #[test]
    fn resampled_inputs_give_detections_close_to_the_reference() {
        let audio = read_f32("ref_audio_256k_1x256000.f32");
        let dir = tempfile::tempdir().unwrap();
        let want: Vec<Expected> = expected()
            .into_iter()
            .filter(|e| e.call.det_prob > 0.3)
            .collect();
        assert!(
            want.len() >= 5,
            "the reference has {} confident calls",
            want.len()
        );
        let model = BatDetect2Model {
            min_class_probability: 0.0,
            ..shared().clone()
        };
        // (rate, largest probability difference allowed): at 192 kHz everything above 96 kHz
        // is gone, which changes the PCEN and denoising of the remaining rows.
        for (rate, tolerance) in [(384_000u32, 0.05), (192_000, 0.2)] {
            let resampled = resample(&audio, SAMPLE_RATE, rate).unwrap();
            let recording = write_f32_wav(
                &dir.path().join(format!("ref_{rate}.wav")),
                rate,
                &resampled,
                1.0,
            );
            let got = found(&model.run(&recording).unwrap(), 1.0);
            // Above the file's Nyquist frequency there is nothing to find.
            let nyquist = f64::from(rate) / 2.0;
            let reachable: Vec<&Expected> = want
                .iter()
                .filter(|e| e.call.high_freq <= nyquist)
                .collect();
            let (mut matched, mut max_diff) = (0, 0.0f64);
            for e in &reachable {
                let close = got
                    .iter()
                    .find(|((x, y), _)| x.abs_diff(e.x) <= 1 && y.abs_diff(e.y) <= 1);
                if let Some((_, g)) = close {
                    matched += 1;
                    assert_eq!(
                        g.class, e.call.class,
                        "{rate} Hz: class at ({}, {})",
                        e.x, e.y
                    );
                    max_diff = max_diff.max((g.det_prob - e.call.det_prob).abs());
                }
            }
            assert!(
                max_diff <= tolerance,
                "{rate} Hz: detection probabilities up to {max_diff} from the reference"
            );
            eprintln!(
                "{rate} Hz: {matched} of {} confident reference calls found, {} detections in all, probabilities within {max_diff:.1e}",
                reachable.len(),
                got.len()
            );
            assert_eq!(matched, reachable.len(), "{rate} Hz: {got:?}");
            assert!(got.values().all(|g| g.high_freq <= nyquist));
        }
    }

    #[test]
    fn silent_and_empty_recordings_give_no_detections() {
        let dir = tempfile::tempdir().unwrap();
        let model = shared();
        // 3 s of silence: one full chunk (W = 3008, the plan made at build time). The
        // network's detection map is not 0 there (it peaks below 0.3), so the library's
        // 0.01 would report noise.
        let silent = write_f32_wav(
            &dir.path().join("silent.wav"),
            SAMPLE_RATE,
            &vec![0.0; 3 * SAMPLE_RATE as usize],
            1.0,
        );
        let t = Instant::now();
        assert!(model.run(&silent).unwrap().detections.is_empty());
        eprintln!(
            "one 3 s chunk (W = 3008), end to end: {} ms (dev profile)",
            t.elapsed().as_millis()
        );
        let t = Instant::now();
        let spectrogram = model
            .spectrogram
            .spectrogram(&vec![0.0; 3 * SAMPLE_RATE as usize]);
        eprintln!(
            "its spectrogram alone: {} ms (dev profile)",
            t.elapsed().as_millis()
        );
        assert_eq!(spectrogram.width, 3008);
        let peaks = model.peaks(&vec![0.0; SAMPLE_RATE as usize]).unwrap();
        let loudest = with_reference_threshold()
            .peaks(&vec![0.0; SAMPLE_RATE as usize])
            .unwrap()
            .iter()
            .map(|p| p.det_prob)
            .fold(0.0f32, f32::max);
        eprintln!("silence: highest detection probability {loudest}");
        assert!(peaks.is_empty() && loudest < 0.3);
        let empty = write_f32_wav(&dir.path().join("empty.wav"), SAMPLE_RATE, &[], 1.0);
        assert!(model.run(&empty).unwrap().detections.is_empty());
    }

    #[test]
    fn non_maximum_suppression_keeps_local_maxima_over_nine_pixels() {
        let width = 20;
        let mut det = vec![0.0f32; HEIGHT * width];
        det[10 * width + 5] = 0.9; // a peak
        det[12 * width + 8] = 0.5; // 3 rows, 3 columns away: suppressed
        det[10 * width + 15] = 0.6; // 10 columns away: kept
        det[127 * width + 19] = 0.4; // in the corner: kept
        let kept = suppress_non_maxima(&det, width);
        let peaks: Vec<(usize, usize, f32)> = kept
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            .map(|(i, v)| (i / width, i % width, *v))
            .collect();
        assert_eq!(peaks, [(10, 5, 0.9), (10, 15, 0.6), (127, 19, 0.4)]);
    }

    #[test]
    fn pixels_map_to_the_library_times_and_frequencies() {
        // (x, seconds): t(x) = (2x × 128 + 384) / 256 000.
        for (x, want) in [
            (0.0, 0.0015),
            (1.0, 0.0025),
            (1023.0, 1.0245),
            (7.615_296_363_830_566, 0.009_115_296_363_830_566),
        ] {
            assert!((column_time(x) - want).abs() < 1e-12, "x = {x}");
        }
        assert_eq!(ROW_HZ, 859.375);
        // top-k: 102 peaks for W = 1024, 301 for W = 3008.
        assert_eq!((column_time(512.0) * TOP_K_PER_SECOND) as usize, 102);
        assert_eq!((column_time(1504.0) * TOP_K_PER_SECOND) as usize, 301);
        assert_eq!(
            chunk_windows(768_000).starts(768_001).collect::<Vec<_>>(),
            [0, 768_000]
        );
        assert_eq!(chunk_windows(768_000).starts(0).count(), 0);
    }

    #[test]
    fn config_defaults_and_build_errors_name_the_problem() {
        let c = config("{}");
        assert_eq!(c.name, "BatDetect2_UK");
        assert_eq!(
            (
                c.detection_threshold.0,
                c.min_class_probability.0,
                c.chunk_seconds.0,
                c.time_expansion.map(|te| te.0)
            ),
            (0.3, 0.01, 3.0, None)
        );
        assert!(
            serde_json::from_str::<BatDetect2ModelConfig>(r#"{"detection_threshold": 1.5}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<BatDetect2ModelConfig>(r#"{"treshold": 0.5}"#).is_err());
        assert_eq!(shared().network.labels.len(), 17);
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = context();
        ctx.settings.base_dir = dir.path().to_path_buf();
        let err = BatDetect2Model::load(&config(r#"{"model": "missing.onnx"}"#), &ctx)
            .err()
            .unwrap();
        assert!(
            err.contains(&dir.path().join("missing.onnx").display().to_string()),
            "{err}"
        );
        let err = BatDetect2Model::load(&config(r#"{"labels": "labels.txt"}"#), &ctx)
            .err()
            .unwrap();
        assert!(err.contains("labels.txt"), "{err}");
        std::fs::write(dir.path().join("broken.onnx"), b"not a model").unwrap();
        let err = BatDetect2Model::load(&config(r#"{"model": "broken.onnx"}"#), &ctx)
            .err()
            .unwrap();
        assert!(err.contains("broken.onnx"), "{err}");
        let err = serde_json::from_str::<BatDetect2ModelConfig>(r#"{"chunk_seconds": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chunk_seconds"), "{err}");
        let err = serde_json::from_str::<BatDetect2ModelConfig>(r#"{"time_expansion": -1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("time_expansion"), "{err}");
    }

    #[test]
    fn two_threads_give_the_same_maps() {
        let spectrogram = Spectrogram {
            width: 1024,
            values: read_f32("ref_spec_1x1x128x1024.f32"),
        };
        let pool = Executor::multithread_with_name(2, "test");
        let maps = shared().network.maps(&spectrogram, &pool).unwrap();
        let single = reference_maps();
        let max_diff = maps
            .det
            .iter()
            .zip(&single.det)
            .chain(maps.class.iter().zip(&single.class))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-5, "max diff {max_diff}");
        let err = serde_json::from_str::<BatDetect2ModelConfig>(r#"{"threads": 0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("threads"), "{err}");
    }
}

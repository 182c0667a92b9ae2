//! `model.birdnet`: bird species detection with BirdNET GLOBAL 6K V2.4 (6522 classes), run
//! on the CPU with tract from the ONNX export in `models/birdnet/` (see its README for the
//! licence: CC BY-NC-SA 4.0, non-commercial).
//!
//! Method, following birdnetlib 0.18.1 (the reference the ONNX file was checked against;
//! every parameter is in `models/birdnet/model.json`):
//! - the WAV is read as mono and resampled to 48 kHz with rubato's FFT resampler when it has
//!   another rate;
//! - it is cut into 3 s windows (144 000 samples) starting every `3 - overlap` seconds; a
//!   window shorter than 1.5 s ends the list (it and anything after it is dropped), a longer
//!   short one is zero-padded to 3 s;
//! - each window goes through the network on its own (input `[1, 144000]`; the front end,
//!   min-max normalisation and mel spectrograms, is inside the graph) and gives 6522 logits;
//! - confidence = `1 / (1 + exp(-s × clip(logit, -15, 15)))`, with `s = max(0.5, min(2 - u,
//!   1.5))` for the user's `sensitivity` u (birdnetlib's mapping: a higher u gives higher
//!   confidences);
//! - every class with confidence ≥ `min_confidence` (and passing `include`/`exclude`) becomes
//!   an `event` detection whose box is the window (start, 0 Hz, end, 15 kHz: the band the
//!   network's spectrograms cover; the end is clipped to the end of the audio), with
//!   `detection_score` = confidence and two tags with that confidence: `species` = the
//!   scientific name and `common_name` = the English name (labels are `Scientific_Common`).
//!
//! The network is loaded and optimised once, when the component is built, and shared by
//! every run; a run is CPU-heavy and happens on the caller's (blocking) thread.
//!
//! With `range_filter`, birdnetlib's location filter applies too: BirdNET's species-range
//! model (`crate::model::birdnet::range`) scores every species at the deployment's latitude and
//! longitude in the recording's week (its local date in the deployment's time zone), and
//! species scored below the filter's threshold are not reported. The number of
//! detections it dropped is logged at debug level for each recording. The range network is
//! not kept in memory (it is 30 MB of weights and answers once a week): each species list
//! is computed by loading it, running it once and freeing it, and the list is kept.

pub(crate) mod range;
pub(crate) mod reference;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acoupi_engine::component::{ComponentError, ComponentResult, Model};
use acoupi_engine::config::values::Score;
use acoupi_engine::data::{
    BoundingBox, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use tract_onnx::prelude::*;

use crate::model::birdnet::range::{
    BUNDLED_RANGE_MODEL, DEFAULT_RANGE_THRESHOLD, RangeModel, week_48,
};
use crate::shared::audio::{Windows, fill_window, for_each_window, recording_file, resampled_len};
use crate::shared::onnx::{self, OnnxError, Outputs};

/// The sample rate the network expects.
const SAMPLE_RATE: u32 = 48_000;
/// Window length in seconds and in samples.
const CHUNK_SECONDS: f64 = 3.0;
const CHUNK_SAMPLES: usize = 144_000;
/// A window shorter than this (seconds) is dropped, together with any after it.
const MIN_CHUNK_SECONDS: f64 = 1.5;
/// The upper edge of the band the network's spectrograms cover, in Hz.
const HIGH_FREQ: f64 = 15_000.0;
/// The default files, relative to a data dir (found at run time: `acoupi_engine::resources`).
pub(crate) const BUNDLED_MODEL: &str = "models/birdnet/birdnet_v24_fp32.onnx";
pub(crate) const BUNDLED_LABELS: &str = "models/birdnet/BirdNET_GLOBAL_6K_V2.4_Labels.txt";

/// Detect bird species with BirdNET GLOBAL 6K V2.4 (6522 classes, 3 s windows at 48 kHz;
/// weights CC BY-NC-SA 4.0, non-commercial use only).
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BirdnetModelConfig {
    /// The model name stored with each output (`name_model`).
    #[serde(default = "default_name")]
    #[schemars(default = "default_name")]
    pub name: String,
    /// The ONNX file, relative to the pipeline file. Default: the bundled
    /// `models/birdnet/birdnet_v24_fp32.onnx`, found in acoupi's data dirs
    /// (`$ACOUPI_DATA_DIR`, `<exe>/../share/acoupi`, `/usr/share/acoupi`; `acoupi models`
    /// lists what is found).
    pub model: Option<PathBuf>,
    /// The labels file, one `Scientific_Common` name a line in the model's class order,
    /// relative to the pipeline file. Default: the bundled
    /// `models/birdnet/BirdNET_GLOBAL_6K_V2.4_Labels.txt`, found as for `model`.
    pub labels: Option<PathBuf>,
    /// Overlap of consecutive 3 s windows, in seconds: windows start every `3 - overlap` s.
    /// At least 0 and below 3.
    #[serde(default = "default_overlap")]
    #[schemars(default = "default_overlap")]
    pub overlap: BirdnetOverlap,
    /// Detection sensitivity, 0.5 to 1.5: higher gives higher confidences (more
    /// detections). birdnetlib's mapping to the sigmoid slope: s = max(0.5, min(2 - u, 1.5)).
    #[serde(default = "default_sensitivity")]
    #[schemars(default = "default_sensitivity")]
    pub sensitivity: BirdnetSensitivity,
    /// Lowest confidence reported.
    #[serde(default = "default_min_confidence")]
    #[schemars(default = "default_min_confidence")]
    pub min_confidence: Score,
    /// Report only these species (scientific names, e.g. "Turdus merula"); default: all.
    pub include: Option<Vec<String>>,
    /// Never report these species (scientific names).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Report only species BirdNET's range model expects at the deployment's position in
    /// the recording's week (birdnetlib's location filter; needs `[deployment] latitude`
    /// and `longitude`). `range_filter = {}` uses birdnetlib's threshold, 0.03.
    pub range_filter: Option<RangeFilterConfig>,
}

/// BirdNET's species-range filter.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RangeFilterConfig {
    /// The lowest occurrence score (0 to 1) a species needs there and then to be reported.
    #[serde(default = "default_range_threshold")]
    #[schemars(default = "default_range_threshold")]
    pub threshold: Score,
    /// The range model's ONNX file, relative to the pipeline file. Default: the bundled
    /// `models/birdnet-mdata/birdnet_v24_mdata_v2.onnx`, found as for `model`.
    pub model: Option<PathBuf>,
}

fn default_range_threshold() -> Score {
    Score(DEFAULT_RANGE_THRESHOLD)
}

fn default_name() -> String {
    "BirdNET_GLOBAL_6K_V2.4".into()
}
acoupi_engine::bounded_f64!(
    /// Overlap of consecutive 3 s windows, in seconds: at least 0 and below 3.
    BirdnetOverlap, "overlap", Included(0.0), Excluded(CHUNK_SECONDS)
);
acoupi_engine::bounded_f64!(
    /// BirdNET's detection sensitivity, 0.5 to 1.5.
    BirdnetSensitivity, "sensitivity", Included(0.5), Included(1.5)
);

fn default_overlap() -> BirdnetOverlap {
    BirdnetOverlap(0.0)
}
fn default_sensitivity() -> BirdnetSensitivity {
    BirdnetSensitivity(1.0)
}
fn default_min_confidence() -> Score {
    Score(0.1)
}

impl ComponentConfig for BirdnetModelConfig {
    const KIND: &'static str = "model.birdnet";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let model = BirdnetModel::load(self, ctx).map_err(|reason| {
            let range = self.range_filter.as_ref().and_then(|f| f.model.as_deref());
            crate::model::at_file_field(
                reason,
                ctx,
                &[
                    ("model", self.model.as_deref()),
                    ("labels", self.labels.as_deref()),
                    ("range_filter", range),
                ],
            )
        })?;
        Ok(Built::Model(Arc::new(model)))
    }
}

/// The optimised network and its labels, loaded once and shared by every run.
struct Network {
    plan: Arc<TypedRunnableModel>,
    labels: Vec<Label>,
}

/// One class of the network.
#[derive(Debug, Clone, PartialEq)]
struct Label {
    scientific: String,
    common: String,
}

impl Label {
    /// `Scientific name_Common name`; a line without `_` is used for both names.
    fn parse(line: &str) -> Label {
        let (scientific, common) = line.split_once('_').unwrap_or((line, line));
        Label {
            scientific: scientific.trim().into(),
            common: common.trim().into(),
        }
    }
}

impl Network {
    fn load(model_path: &Path, labels_path: &Path) -> Result<Network, OnnxError> {
        let labels: Vec<Label> = onnx::read_labels(labels_path)?
            .iter()
            .map(String::as_str)
            .map(Label::parse)
            .collect();
        let plan = onnx::load(model_path, "model", &[1, CHUNK_SAMPLES], "")?;
        onnx::check_labels(
            &plan,
            model_path,
            Outputs::Classes,
            labels_path,
            labels.len(),
        )?;
        Ok(Network { plan, labels })
    }

    /// The logits of one 3 s window at 48 kHz.
    fn logits(&self, chunk: &[f32]) -> TractResult<Vec<f32>> {
        let input = Tensor::from_shape(&[1, CHUNK_SAMPLES], chunk)?;
        let outputs = self.plan.run(tvec![input.into()])?;
        let output = outputs
            .first()
            .ok_or_else(|| TractError::msg("the model gave no output"))?;
        Ok(output
            .to_plain_array_view::<f32>()?
            .iter()
            .copied()
            .collect())
    }
}

/// A running BirdNET model: the shared network and this instance's settings.
#[derive(Clone)]
pub struct BirdnetModel {
    name: String,
    network: Arc<Network>,
    overlap: f64,
    /// The sigmoid slope `s` (from the user's sensitivity).
    slope: f64,
    min_confidence: f64,
    /// Per class, whether it may be reported (include/exclude applied).
    allowed: Vec<bool>,
    range: Option<Arc<RangeFilter>>,
}

/// The range filter of one model instance. Its network runs rarely (once per week of the
/// year and position), so it is not kept loaded: a species list not yet known is computed
/// by loading the network, running it once and freeing it, and kept (one flag per class,
/// a few KiB) for the recordings of the same week and position.
struct RangeFilter {
    /// The range model's file.
    path: PathBuf,
    threshold: f64,
    /// The station's position, used when a recording's deployment has none.
    latitude: f64,
    longitude: f64,
    timezone: chrono_tz::Tz,
    /// The species lists computed so far, by position and week.
    lists: Mutex<HashMap<ListKey, Arc<[bool]>>>,
}

/// A species list's latitude and longitude (their bits) and week.
type ListKey = (u64, u64, i32);

/// The species lists kept at most; beyond it they are forgotten and computed again (a
/// station needs one a week; reprocessing a year at one place, 48).
const MAX_RANGE_LISTS: usize = 256;

impl RangeFilter {
    /// Loads the network once to check it (and its species count), computes the list for
    /// the station's position this week, and frees the network.
    fn new(
        path: PathBuf,
        threshold: f64,
        latitude: f64,
        longitude: f64,
        timezone: chrono_tz::Tz,
        classes: usize,
    ) -> Result<RangeFilter, String> {
        let model = RangeModel::load(&path).map_err(|e| e.to_string())?;
        if model.species() != classes {
            return Err(format!(
                "the range model scores {} species but BirdNET has {classes} classes",
                model.species(),
            ));
        }
        let week = week_48(chrono::Utc::now().with_timezone(&timezone).date_naive());
        let list: Arc<[bool]> = model.allowed(latitude, longitude, week, threshold)?.into();
        let key = (latitude.to_bits(), longitude.to_bits(), week);
        Ok(RangeFilter {
            path,
            threshold,
            latitude,
            longitude,
            timezone,
            lists: Mutex::new(HashMap::from([(key, list)])),
        })
    }

    /// Per class, whether the species is expected where and when `recording` was made.
    fn allowed(&self, recording: &Recording) -> Result<Arc<[bool]>, String> {
        let latitude = recording.deployment.latitude.unwrap_or(self.latitude);
        let longitude = recording.deployment.longitude.unwrap_or(self.longitude);
        let week = week_48(
            recording
                .created_on
                .with_timezone(&self.timezone)
                .date_naive(),
        );
        let key = (latitude.to_bits(), longitude.to_bits(), week);
        // Held while a list is computed: other runs wait for it rather than load the
        // network too.
        let mut lists = self
            .lists
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(list) = lists.get(&key) {
            return Ok(list.clone());
        }
        let model = RangeModel::load(&self.path).map_err(|e| e.to_string())?;
        let list: Arc<[bool]> = model
            .allowed(latitude, longitude, week, self.threshold)?
            .into();
        drop(model);
        tracing::debug!(
            latitude,
            longitude,
            week,
            species = list.iter().filter(|kept| **kept).count(),
            "BirdNET range filter: species list computed"
        );
        if lists.len() >= MAX_RANGE_LISTS {
            lists.clear();
        }
        lists.insert(key, list.clone());
        Ok(list)
    }
}

impl BirdnetModel {
    fn load(config: &BirdnetModelConfig, ctx: &BuildContext) -> Result<BirdnetModel, String> {
        let path = |given: &Option<PathBuf>, bundled: &str, key: &str| {
            crate::model::file_or_default(ctx, given.as_deref(), bundled, key)
        };
        let network = Network::load(
            &path(&config.model, BUNDLED_MODEL, "model")?,
            &path(&config.labels, BUNDLED_LABELS, "labels")?,
        )
        .map_err(|e| e.to_string())?;
        let allowed = allowed_classes(&network.labels, config.include.as_deref(), &config.exclude)?;
        let range = match &config.range_filter {
            None => None,
            Some(filter) => {
                let deployment = &ctx.settings.deployment;
                let (Some(latitude), Some(longitude)) = (deployment.latitude, deployment.longitude)
                else {
                    return Err("range_filter needs the station's position: set `latitude` and `longitude` in [deployment]".into());
                };
                Some(Arc::new(RangeFilter::new(
                    path(&filter.model, BUNDLED_RANGE_MODEL, "range_filter.model")?,
                    filter.threshold.0,
                    latitude,
                    longitude,
                    deployment.timezone,
                    network.labels.len(),
                )?))
            }
        };
        Ok(BirdnetModel {
            name: config.name.clone(),
            network: Arc::new(network),
            overlap: config.overlap.0,
            slope: sigmoid_slope(config.sensitivity.0),
            min_confidence: config.min_confidence.0,
            allowed,
            range,
        })
    }

    /// The detections of one window starting at `start` seconds and ending at `end`.
    fn window_detections(
        &self,
        logits: &[f32],
        in_range: Option<&[bool]>,
        start: f64,
        end: f64,
        high_freq: f64,
    ) -> ComponentResult<(Vec<Detection>, usize)> {
        let mut found: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(class, _)| self.allowed.get(*class).copied().unwrap_or(false))
            .map(|(class, logit)| (class, confidence(f64::from(*logit), self.slope)))
            .filter(|(_, confidence)| *confidence >= self.min_confidence)
            .collect();
        let before = found.len();
        if let Some(in_range) = in_range {
            found.retain(|(class, _)| in_range.get(*class).copied().unwrap_or(false));
        }
        let out_of_range = before - found.len();
        found.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut detections = Vec::with_capacity(found.len());
        for (class, confidence) in found {
            let label = &self.network.labels[class];
            let mut detection = Detection::new(PredictionType::Event);
            detection.location = Some(BoundingBox::new(start, 0.0, end, high_freq)?);
            detection.detection_score = confidence;
            detection.tags = vec![
                PredictedTag::new(Tag::new("species", label.scientific.as_str()), confidence)?,
                PredictedTag::new(Tag::new("common_name", label.common.as_str()), confidence)?,
            ];
            detections.push(detection);
        }
        Ok((detections, out_of_range))
    }
}

impl Model for BirdnetModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, recording: &Recording) -> ComponentResult<ModelOutput> {
        let (path, info) = recording_file(recording)?;
        let duration = resampled_len(info.frames, info.samplerate, SAMPLE_RATE) as f64
            / f64::from(SAMPLE_RATE);
        let high_freq = HIGH_FREQ * recording.time_expansion;
        let in_range = match &self.range {
            Some(range) => Some(range.allowed(recording).map_err(ComponentError::Other)?),
            None => None,
        };
        let mut chunk = vec![0.0f32; CHUNK_SAMPLES];
        let mut detections = Vec::new();
        let mut out_of_range = 0;
        for_each_window(
            path,
            &info,
            info.samplerate,
            SAMPLE_RATE,
            windows(self.overlap),
            &mut |start, samples| {
                fill_window(&mut chunk, samples);
                let logits = self.network.logits(&chunk).map_err(|e| {
                    ComponentError::Other(format!("BirdNET inference failed: {e:#}"))
                })?;
                let start_seconds = start as f64 / f64::from(SAMPLE_RATE);
                let end_seconds = (start_seconds + CHUNK_SECONDS).min(duration);
                let (found, dropped) = self.window_detections(
                    &logits,
                    in_range.as_deref(),
                    start_seconds,
                    end_seconds,
                    high_freq,
                )?;
                detections.extend(found);
                out_of_range += dropped;
                Ok(())
            },
        )?;
        if out_of_range > 0 {
            tracing::debug!(recording = %recording.id, dropped = out_of_range, "BirdNET detections of species not expected here this week (range filter)");
        }
        Ok(ModelOutput::new(
            self.name.as_str(),
            recording.clone(),
            detections,
        ))
    }
}

/// birdnetlib's sensitivity mapping: the user's sensitivity u to the sigmoid slope s.
fn sigmoid_slope(sensitivity: f64) -> f64 {
    (1.0 - (sensitivity - 1.0)).clamp(0.5, 1.5)
}

/// The confidence of a logit: `1 / (1 + exp(-s × clip(logit, -15, 15)))`.
fn confidence(logit: f64, slope: f64) -> f64 {
    1.0 / (1.0 + (-slope * logit.clamp(-15.0, 15.0)).exp())
}

/// The windows of audio at 48 kHz: 3 s, one every `3 - overlap` seconds, stopping at the
/// first that has less than 1.5 s left.
fn windows(overlap: f64) -> Windows {
    let step = (((CHUNK_SECONDS - overlap) * f64::from(SAMPLE_RATE)) as usize).max(1);
    Windows {
        window: CHUNK_SAMPLES,
        step,
        min_last: (MIN_CHUNK_SECONDS * f64::from(SAMPLE_RATE)) as usize,
    }
}

/// The first sample of each window of a signal `len` samples long at 48 kHz.
#[cfg(test)]
fn chunk_starts(len: usize, overlap: f64) -> Vec<usize> {
    windows(overlap).starts(len).collect()
}

/// Which classes may be reported: those in `include` (all when `None`) and not in
/// `exclude`. A name that is no class's scientific name is an error (a typo would
/// otherwise silently report nothing, or everything).
fn allowed_classes(
    labels: &[Label],
    include: Option<&[String]>,
    exclude: &[String],
) -> Result<Vec<bool>, String> {
    let known: HashSet<&str> = labels.iter().map(|l| l.scientific.as_str()).collect();
    let unknown: Vec<&str> = include
        .unwrap_or_default()
        .iter()
        .chain(exclude)
        .map(String::as_str)
        .filter(|name| !known.contains(name))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "not a BirdNET species (scientific names as in the labels file, e.g. \"Turdus merula\"): {}",
            unknown
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let include: Option<HashSet<&str>> =
        include.map(|names| names.iter().map(String::as_str).collect());
    let exclude: HashSet<&str> = exclude.iter().map(String::as_str).collect();
    Ok(labels
        .iter()
        .map(|l| {
            include
                .as_ref()
                .is_none_or(|names| names.contains(l.scientific.as_str()))
                && !exclude.contains(l.scientific.as_str())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::time::Instant;

    use crate::shared::audio::resample;
    use crate::shared::audio::testing::write_f32_wav;

    /// The reference case (audio, TFLite logits), copied into the repository so that CI
    /// runs it.
    const REFERENCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/birdnet/reference");
    use crate::model::birdnet::reference::LOGITS_TOLERANCE as TOLERANCE;

    fn read_f32(path: &Path) -> Vec<f32> {
        crate::model::reference::read_f32(path).unwrap()
    }

    /// The reference audio and logits.
    fn reference() -> (Vec<f32>, Vec<f32>) {
        let dir = Path::new(REFERENCE_DIR);
        (
            read_f32(&dir.join("ref_audio_48k_1x144000.f32")),
            read_f32(&dir.join("ref_logits_1x6522.f32")),
        )
    }

    fn context() -> BuildContext {
        crate::testing::context(Path::new("."), None)
    }

    fn config(json: &str) -> BirdnetModelConfig {
        serde_json::from_str(json).unwrap()
    }

    /// The bundled model built from the default config, loaded once for all tests.
    fn shared() -> &'static BirdnetModel {
        static MODEL: OnceLock<BirdnetModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            let t = Instant::now();
            let model = BirdnetModel::load(&config("{}"), &context()).unwrap();
            eprintln!("BirdNET loaded and optimised in {:.1?}", t.elapsed());
            model
        })
    }

    fn with_min_confidence(min_confidence: f64) -> BirdnetModel {
        BirdnetModel {
            min_confidence,
            ..shared().clone()
        }
    }

    fn argmax(values: &[f32]) -> usize {
        values
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0
    }

    /// The species of the highest-scoring detection.
    fn top_species(output: &ModelOutput) -> (String, f64) {
        let top = output
            .detections
            .iter()
            .max_by(|a, b| a.detection_score.total_cmp(&b.detection_score))
            .unwrap();
        (top.tags[0].tag.value.clone(), top.detection_score)
    }

    #[test]
    fn the_network_matches_the_tflite_reference_logits() {
        let (audio, want) = reference();
        let model = shared();
        let t = Instant::now();
        let got = model.network.logits(&audio).unwrap();
        eprintln!("one 3 s window in {:.1?}", t.elapsed());
        assert_eq!(got.len(), want.len());
        let max_diff = crate::model::reference::max_abs_difference(&got, &want).unwrap();
        eprintln!("max abs logit difference from TFLite: {max_diff:e}");
        assert!(
            max_diff <= TOLERANCE,
            "max abs logit difference {max_diff:e} above {TOLERANCE:e}"
        );
        assert_eq!(argmax(&got), argmax(&want));
    }

    #[test]
    fn end_to_end_the_top_species_is_the_reference_argmax() {
        let (audio, want) = reference();
        let expected = &shared().network.labels[argmax(&want)];
        let dir = tempfile::tempdir().unwrap();
        let recording = write_f32_wav(&dir.path().join("ref.wav"), 48_000, &audio);
        // The reference's best confidence is about 0.019; the second best about 0.0096.
        let output = with_min_confidence(0.01).run(&recording).unwrap();
        assert_eq!(output.name_model, "BirdNET_GLOBAL_6K_V2.4");
        assert_eq!(output.detections.len(), 1, "{:?}", output.detections);
        let detection = &output.detections[0];
        let tags: Vec<(&str, &str)> = detection
            .tags
            .iter()
            .map(|t| (t.tag.key.as_str(), t.tag.value.as_str()))
            .collect();
        assert_eq!(
            tags,
            [
                ("species", expected.scientific.as_str()),
                ("common_name", expected.common.as_str())
            ]
        );
        let logit = f64::from(want[argmax(&want)]);
        assert!((detection.detection_score - confidence(logit, 1.0)).abs() < 1e-5);
        assert!(
            detection
                .tags
                .iter()
                .all(|t| t.confidence_score == detection.detection_score)
        );
        assert_eq!(
            detection.location.as_ref().unwrap().coordinates(),
            [0.0, 0.0, 3.0, 15_000.0]
        );
        // With the default min_confidence (0.1) this audio gives nothing.
        assert!(shared().run(&recording).unwrap().detections.is_empty());
    }

    #[test]
    fn resampled_inputs_give_the_same_top_species() {
        let (audio, want) = reference();
        let expected = shared().network.labels[argmax(&want)].scientific.clone();
        let dir = tempfile::tempdir().unwrap();
        let model = with_min_confidence(0.0);
        // The reference is faint (best confidence 0.019, second 0.0096): at 44.1 and 96 kHz
        // the best class must stay first; from 384 kHz (a bat recorder), where the round
        // trip through the resampler changes the signal most, among the first three.
        for (rate, within) in [(44_100, 1), (96_000, 1), (384_000, 3)] {
            let resampled = resample(&audio, 48_000, rate).unwrap();
            assert_eq!(resampled.len(), 144_000 * rate as usize / 48_000);
            let recording = write_f32_wav(
                &dir.path().join(format!("ref_{rate}.wav")),
                rate,
                &resampled,
            );
            let t = Instant::now();
            let output = model.run(&recording).unwrap();
            eprintln!("{rate} Hz: run in {:.1?}", t.elapsed());
            assert_eq!(output.detections.len(), 6522, "one window, every class");
            let ranked: Vec<&str> = output
                .detections
                .iter()
                .take(within)
                .map(|d| d.tags[0].tag.value.as_str())
                .collect();
            assert!(
                ranked.contains(&expected.as_str()),
                "at {rate} Hz: {expected} not in {ranked:?} (score {:?})",
                top_species(&output)
            );
        }
    }

    #[test]
    fn sensitivity_and_confidence_follow_birdnetlib() {
        for (sensitivity, slope) in [
            (0.5, 1.5),
            (0.75, 1.25),
            (1.0, 1.0),
            (1.25, 0.75),
            (1.5, 0.5),
            (0.0, 1.5),
            (2.0, 0.5),
        ] {
            assert!(
                (sigmoid_slope(sensitivity) - slope).abs() < 1e-12,
                "u = {sensitivity}"
            );
        }
        // (logit, slope, confidence)
        let table = [
            (0.0, 1.0, 0.5),
            (2.0, 1.0, 0.880_797_077_977_882_3),
            (-2.0, 1.0, 0.119_202_922_022_117_7),
            (2.0, 1.5, 0.952_574_126_822_433_4),
            (2.0, 0.5, 0.731_058_578_630_004_9),
            (15.0, 1.0, 0.999_999_694_097_773),
            (40.0, 1.0, 0.999_999_694_097_773), // clipped to 15
            (-40.0, 1.0, 3.059_022_269_256_247e-7), // clipped to -15
        ];
        for (logit, slope, want) in table {
            let got = confidence(logit, slope);
            assert!(
                (got - want).abs() < 1e-12,
                "logit {logit} slope {slope}: {got} != {want}"
            );
        }
    }

    #[test]
    fn chunks_start_every_three_seconds_minus_overlap_and_drop_short_tails() {
        let starts = |seconds: f64, overlap: f64| -> Vec<f64> {
            chunk_starts((seconds * 48_000.0).round() as usize, overlap)
                .into_iter()
                .map(|s| s as f64 / 48_000.0)
                .collect()
        };
        assert_eq!(starts(1.0, 0.0), Vec::<f64>::new()); // shorter than 1.5 s: nothing
        assert_eq!(starts(1.5, 0.0), [0.0]); // exactly 1.5 s: padded
        assert_eq!(starts(2.0, 0.0), [0.0]); // padded to 3 s
        assert_eq!(starts(3.0, 0.0), [0.0]);
        assert_eq!(starts(4.0, 0.0), [0.0]); // 1.0 s tail dropped
        assert_eq!(starts(4.6, 0.0), [0.0, 3.0]); // 1.6 s tail padded
        assert_eq!(starts(9.0, 0.0), [0.0, 3.0, 6.0]);
        assert_eq!(starts(6.0, 1.5), [0.0, 1.5, 3.0, 4.5]);
        assert_eq!(starts(6.0, 1.0), [0.0, 2.0, 4.0]); // 4.0: 2 s left; 6.0: none
    }

    #[test]
    fn a_padded_tail_window_ends_at_the_end_of_the_audio() {
        let model = with_min_confidence(0.0);
        let dir = tempfile::tempdir().unwrap();
        // 4.6 s of quiet noise: two windows, the second 1.6 s long.
        let samples: Vec<f32> = (0..(4.6f64 * 48_000.0).round() as usize)
            .map(|i| 0.01 * ((i as f32 * 0.37).sin() + (i as f32 * 1.91).sin()))
            .collect();
        let output = model
            .run(&write_f32_wav(
                &dir.path().join("tail.wav"),
                48_000,
                &samples,
            ))
            .unwrap();
        let mut windows: Vec<[f64; 4]> = output
            .detections
            .iter()
            .map(|d| d.location.as_ref().unwrap().coordinates())
            .collect();
        windows.dedup();
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0], [0.0, 0.0, 3.0, 15_000.0]);
        assert_eq!(windows[1][0], 3.0);
        assert!((windows[1][2] - 4.6).abs() < 1e-9, "{:?}", windows[1]);
    }

    #[test]
    fn include_and_exclude_select_species_and_reject_unknown_names() {
        let labels: Vec<Label> = [
            "Turdus merula_Eurasian Blackbird",
            "Erithacus rubecula_European Robin",
            "Parus major_Great Tit",
        ]
        .into_iter()
        .map(Label::parse)
        .collect();
        assert_eq!(
            labels[0],
            Label {
                scientific: "Turdus merula".into(),
                common: "Eurasian Blackbird".into()
            }
        );
        assert_eq!(
            allowed_classes(&labels, None, &[]).unwrap(),
            [true, true, true]
        );
        assert_eq!(
            allowed_classes(&labels, None, &["Parus major".into()]).unwrap(),
            [true, true, false]
        );
        let include = ["Turdus merula".to_string(), "Parus major".to_string()];
        assert_eq!(
            allowed_classes(&labels, Some(&include), &["Parus major".into()]).unwrap(),
            [true, false, false]
        );
        let err = allowed_classes(
            &labels,
            Some(&["Turdus merla".into()]),
            &["Blackbird".into()],
        )
        .unwrap_err();
        assert!(err.contains("\"Turdus merla\", \"Blackbird\""), "{err}");
    }

    #[test]
    fn config_defaults_and_build_errors_name_the_problem() {
        let c = config("{}");
        assert_eq!(c.name, "BirdNET_GLOBAL_6K_V2.4");
        assert_eq!(
            (c.overlap.0, c.sensitivity.0, c.min_confidence.0),
            (0.0, 1.0, 0.1)
        );
        assert!(serde_json::from_str::<BirdnetModelConfig>(r#"{"min_confidence": 1.5}"#).is_err());
        assert!(serde_json::from_str::<BirdnetModelConfig>(r#"{"treshold": 0.5}"#).is_err());
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = context();
        ctx.settings.base_dir = dir.path().to_path_buf();
        let err = BirdnetModel::load(&config(r#"{"model": "missing.onnx"}"#), &ctx)
            .err()
            .unwrap();
        assert!(
            err.contains(&dir.path().join("missing.onnx").display().to_string()),
            "{err}"
        );
        let err = BirdnetModel::load(&config(r#"{"labels": "labels.txt"}"#), &ctx)
            .err()
            .unwrap();
        assert!(err.contains("labels.txt"), "{err}");
        let err = serde_json::from_str::<BirdnetModelConfig>(r#"{"overlap": 3.0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("overlap"), "{err}");
        let err = serde_json::from_str::<BirdnetModelConfig>(r#"{"sensitivity": 2.0}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sensitivity"), "{err}");
    }

    #[test]
    fn the_range_filter_keeps_only_species_expected_there_that_week() {
        let (audio, _) = reference();
        let dir = tempfile::tempdir().unwrap();
        let mut recording = write_f32_wav(&dir.path().join("ref.wav"), 48_000, &audio);
        recording.created_on = "2026-05-15T05:00:00Z".parse().unwrap();
        let everything = with_min_confidence(1e-4).run(&recording).unwrap();
        let range = RangeFilter::new(
            acoupi_engine::resources::default_file(BUNDLED_RANGE_MODEL, "model").unwrap(),
            DEFAULT_RANGE_THRESHOLD,
            52.5,
            13.4,
            chrono_tz::Europe::Berlin,
            shared().network.labels.len(),
        )
        .unwrap();
        let expected = range.allowed(&recording).unwrap();
        // The list is computed once per position and week, by the network itself.
        let by_hand = RangeModel::load(
            &acoupi_engine::resources::default_file(BUNDLED_RANGE_MODEL, "model").unwrap(),
        )
        .unwrap()
        .allowed(52.5, 13.4, 18, DEFAULT_RANGE_THRESHOLD)
        .unwrap();
        assert_eq!(&*expected, by_hand.as_slice());
        assert!(Arc::ptr_eq(&expected, &range.allowed(&recording).unwrap()));
        let filtered = BirdnetModel {
            range: Some(Arc::new(range)),
            ..with_min_confidence(1e-4)
        }
        .run(&recording)
        .unwrap();
        let species = |output: &ModelOutput| -> Vec<String> {
            output
                .detections
                .iter()
                .map(|d| d.tags[0].tag.value.clone())
                .collect()
        };
        let labels = &shared().network.labels;
        let kept_by_hand: Vec<String> = species(&everything)
            .into_iter()
            .filter(|name| {
                labels
                    .iter()
                    .position(|l| &l.scientific == name)
                    .is_some_and(|class| expected[class])
            })
            .collect();
        assert!(
            !kept_by_hand.is_empty() && kept_by_hand.len() < everything.detections.len(),
            "{} of {}",
            kept_by_hand.len(),
            everything.detections.len()
        );
        assert_eq!(species(&filtered), kept_by_hand);

        // Without the station's position it cannot be built.
        let err = BirdnetModel::load(&config(r#"{"range_filter": {}}"#), &context())
            .err()
            .unwrap();
        assert!(err.contains("latitude"), "{err}");
    }
}

//! `model.onnx_classifier`: a window classifier for any ONNX model that takes raw audio
//! windows and returns one score per class, with a labels file — so users can bring their
//! own model without writing code. It owns the windowing, the score activation and the
//! mapping of scores to detections.
//!
//! ```toml
//! [components.frogs]
//! type = "model.onnx_classifier"
//! model = "models/frogs.onnx"          # input [1, samples] f32, output [1, classes]
//! labels = "models/frogs-labels.txt"   # one class name a line, in output order
//! samplerate = 22050
//! window = "2s"
//! activation = "softmax"               # or "sigmoid", or "none" when it gives probabilities
//! min_confidence = 0.5
//! ```
//!
//! Method:
//! - the WAV is read as mono and resampled to `samplerate` when it has another rate;
//! - it is cut into windows of `window` (the model's input is fixed to `[1, samples]`),
//!   starting every `window - overlap`; a last window shorter than `min_tail` of a window
//!   is dropped, a longer one is zero-padded;
//! - each window's output (any shape; its values are taken in order) goes through the
//!   activation; every class scoring at least `min_confidence` becomes an `event` detection
//!   whose box is the window (start, 0 Hz, end, Nyquist of `samplerate` × time expansion),
//!   with `detection_score` = the score and one tag `<tag_key>` = the label.
//!
//! The network is loaded and optimised once, when the component is built.

use std::path::PathBuf;
use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult, Model};
use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::{DurationUpTo, Score};
use acoupi_engine::data::{
    BoundingBox, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use tract_onnx::prelude::*;

use crate::shared::onnx::{self, Outputs};

use crate::shared::audio::{Windows, fill_window, for_each_window, recording_file, resampled_len};

/// Classify fixed-length windows of raw audio with your own ONNX model (input
/// `[1, samples]` f32, output one score per class) and a labels file.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnnxClassifierConfig {
    /// The model name stored with each output. Default: the ONNX file's name.
    pub name: Option<String>,
    /// The ONNX file, relative to the pipeline file.
    pub model: PathBuf,
    /// The labels file, one class name a line in the model's output order, relative to
    /// the pipeline file.
    pub labels: PathBuf,
    /// The sample rate the model expects, in Hz.
    #[schemars(range(min = 1))]
    pub samplerate: u32,
    /// The length of one input window; at most 1 min (classifiers take windows of
    /// seconds: BirdNET 3 s, Perch 5 s).
    pub window: DurationUpTo<60>,
    /// Overlap of consecutive windows (less than `window`). Default: none.
    #[serde(default)]
    #[schemars(default = "default_overlap_text")]
    pub overlap: acoupi_engine::config::values::HumanDuration,
    /// The shortest last window analysed, as a fraction of a window (it is zero-padded).
    #[serde(default = "default_min_tail")]
    #[schemars(default = "default_min_tail")]
    pub min_tail: Score,
    /// What turns the model's outputs into scores between 0 and 1.
    #[serde(default)]
    #[schemars(default = "default_activation")]
    pub activation: Activation,
    /// Lowest score reported.
    #[serde(default = "default_min_confidence")]
    #[schemars(default = "default_min_confidence")]
    pub min_confidence: Score,
    /// The key of the tag holding the label.
    #[serde(default = "default_tag_key")]
    #[schemars(default = "default_tag_key")]
    pub tag_key: String,
}

fn default_overlap_text() -> &'static str {
    "0s"
}
fn default_min_tail() -> Score {
    Score(0.5)
}
fn default_activation() -> Activation {
    Activation::None
}
fn default_min_confidence() -> Score {
    Score(0.5)
}
fn default_tag_key() -> String {
    "species".into()
}

/// How the model's outputs become scores.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// The outputs are already scores between 0 and 1.
    #[default]
    None,
    /// Logistic function per class (multi-label models).
    Sigmoid,
    /// Softmax over the classes (single-label models).
    Softmax,
}

impl Activation {
    fn apply(self, values: &mut [f64]) {
        match self {
            Activation::None => {}
            Activation::Sigmoid => values
                .iter_mut()
                .for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
            Activation::Softmax => {
                let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = values.iter().map(|v| (v - max).exp()).sum();
                values.iter_mut().for_each(|v| *v = (*v - max).exp() / sum);
            }
        }
    }
}

impl OnnxClassifierConfig {
    /// A duration in samples at the model's rate.
    fn samples(&self, duration: std::time::Duration) -> usize {
        (duration.as_secs_f64() * f64::from(self.samplerate)).round() as usize
    }
}

impl ComponentConfig for OnnxClassifierConfig {
    const KIND: &'static str = "model.onnx_classifier";

    fn check(&self) -> Vec<KeyProblem> {
        let mut problems = Vec::new();
        if self.samplerate == 0 {
            problems.push(KeyProblem::new(
                &["samplerate"],
                Code::OutOfRange,
                "samplerate must be at least 1",
            ));
        } else if self.samples(self.overlap.0) >= self.samples(self.window.0) {
            problems.push(KeyProblem::new(
                &["overlap"],
                Code::OutOfRange,
                format!(
                    "overlap ({}) must be shorter than the window ({})",
                    self.overlap, self.window
                ),
            ));
        }
        if self.tag_key.trim().is_empty() {
            problems.push(KeyProblem::new(
                &["tag_key"],
                Code::InvalidValue,
                "tag_key is empty",
            ));
        }
        problems
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let model = OnnxClassifier::load(self, ctx).map_err(|reason| {
            crate::model::at_file_field(
                reason,
                ctx,
                &[
                    ("model", Some(self.model.as_path())),
                    ("labels", Some(self.labels.as_path())),
                ],
            )
        })?;
        Ok(Built::Model(Arc::new(model)))
    }
}

pub struct OnnxClassifier {
    name: String,
    plan: Arc<TypedRunnableModel>,
    labels: Vec<String>,
    samplerate: u32,
    window: usize,
    step: usize,
    min_tail: usize,
    activation: Activation,
    min_confidence: f64,
    tag_key: String,
}

impl OnnxClassifier {
    fn load(config: &OnnxClassifierConfig, ctx: &BuildContext) -> Result<OnnxClassifier, String> {
        let window =
            (config.window.0.as_secs_f64() * f64::from(config.samplerate)).round() as usize;
        let overlap =
            (config.overlap.0.as_secs_f64() * f64::from(config.samplerate)).round() as usize;
        let model_path = ctx.resolve(&config.model);
        let labels_path = ctx.resolve(&config.labels);
        let labels = onnx::read_labels(&labels_path).map_err(|e| e.to_string())?;
        let plan = onnx::load(
            &model_path,
            "model",
            &[1, window],
            format!(
                " with input [1, {window}] ({} at {} Hz)",
                config.window, config.samplerate
            ),
        )
        .and_then(|plan| {
            onnx::check_labels(
                &plan,
                &model_path,
                Outputs::Scores,
                &labels_path,
                labels.len(),
            )
            .map(|()| plan)
        })
        .map_err(|e| e.to_string())?;
        let name = config.name.clone().unwrap_or_else(|| {
            model_path.file_stem().map_or_else(
                || "onnx_classifier".to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
        });
        Ok(OnnxClassifier {
            name,
            plan,
            labels,
            samplerate: config.samplerate,
            window,
            step: window.saturating_sub(overlap).max(1),
            min_tail: ((config.min_tail.0 * window as f64).ceil() as usize).max(1),
            activation: config.activation,
            min_confidence: config.min_confidence.0,
            tag_key: config.tag_key.clone(),
        })
    }

    fn scores(&self, window: &[f32]) -> TractResult<Vec<f64>> {
        let input = Tensor::from_shape(&[1, self.window], window)?;
        let outputs = self.plan.run(tvec![input.into()])?;
        let output = outputs
            .first()
            .ok_or_else(|| TractError::msg("the model gave no output"))?;
        let mut scores: Vec<f64> = output
            .to_plain_array_view::<f32>()?
            .iter()
            .map(|v| f64::from(*v))
            .collect();
        self.activation.apply(&mut scores);
        Ok(scores)
    }
}

impl Model for OnnxClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, recording: &Recording) -> ComponentResult<ModelOutput> {
        let (path, info) = recording_file(recording)?;
        let rate = f64::from(self.samplerate);
        let duration = resampled_len(info.frames, info.samplerate, self.samplerate) as f64 / rate;
        let high_freq = rate / 2.0 * recording.time_expansion;
        let mut buffer = vec![0.0f32; self.window];
        let mut detections = Vec::new();
        let windows = Windows {
            window: self.window,
            step: self.step,
            min_last: self.min_tail,
        };
        for_each_window(
            path,
            &info,
            info.samplerate,
            self.samplerate,
            windows,
            &mut |start, samples| {
                fill_window(&mut buffer, samples);
                let scores = self.scores(&buffer).map_err(|e| {
                    ComponentError::Other(format!("{} inference failed: {e:#}", self.name))
                })?;
                let begin = start as f64 / rate;
                let end = (begin + self.window as f64 / rate).min(duration);
                let mut found: Vec<(usize, f64)> = scores
                    .into_iter()
                    .enumerate()
                    .filter(|(_, s)| *s >= self.min_confidence)
                    .collect();
                found.sort_by(|a, b| b.1.total_cmp(&a.1));
                for (class, score) in found {
                    let mut detection = Detection::new(PredictionType::Event);
                    detection.location = Some(BoundingBox::new(begin, 0.0, end, high_freq)?);
                    detection.detection_score = score.clamp(0.0, 1.0);
                    detection.tags = vec![PredictedTag::new(
                        Tag::new(self.tag_key.as_str(), self.labels[class].as_str()),
                        score.clamp(0.0, 1.0),
                    )?];
                    detections.push(detection);
                }
                Ok(())
            },
        )?;
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
    use std::path::Path;

    /// BirdNET's network is a raw-audio window classifier: brought as "your own model", it
    /// must give what `model.birdnet` gives.
    const BIRDNET: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/birdnet/birdnet_v24_fp32.onnx"
    );
    const BIRDNET_LABELS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/birdnet/BirdNET_GLOBAL_6K_V2.4_Labels.txt"
    );
    const REFERENCE_AUDIO: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/birdnet/reference/ref_audio_48k_1x144000.f32"
    );

    fn config(extra: &str) -> OnnxClassifierConfig {
        let json = format!(
            r#"{{"model": "{BIRDNET}", "labels": "{BIRDNET_LABELS}", "samplerate": 48000, "window": "3s", "activation": "sigmoid" {extra}}}"#
        );
        serde_json::from_str(&json).unwrap()
    }

    fn reference_wav(dir: &Path, seconds: usize) -> Recording {
        let audio: Vec<f32> = std::fs::read(REFERENCE_AUDIO)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let looped: Vec<f32> = audio
            .iter()
            .cycle()
            .take(48_000 * seconds)
            .copied()
            .collect();
        crate::shared::audio::testing::write_f32_wav(&dir.join("ref.wav"), 48_000, &looped)
    }

    #[test]
    fn birdnet_as_your_own_model_gives_model_birdnets_detections() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = crate::testing::context(dir.path(), None);
        let classifier =
            OnnxClassifier::load(&config(r#", "min_confidence": 0.005"#), &ctx).unwrap();
        let birdnet = match serde_json::from_str::<crate::model::birdnet::BirdnetModelConfig>(
            r#"{"min_confidence": 0.005}"#,
        )
        .unwrap()
        .build(&ctx)
        .unwrap()
        {
            Built::Model(model) => model,
            _ => panic!("not a model"),
        };
        // 5 s: one full window and a 2 s tail (kept and zero-padded by both).
        let recording = reference_wav(dir.path(), 5);
        let ours = classifier.run(&recording).unwrap();
        let theirs = birdnet.run(&recording).unwrap();
        assert_eq!(ours.name_model, "birdnet_v24_fp32");
        assert!(!ours.detections.is_empty());
        let summary = |output: &ModelOutput| -> Vec<(String, [f64; 2], f64)> {
            output
                .detections
                .iter()
                .map(|d| {
                    let [start, _, end, _] = d.location.as_ref().unwrap().coordinates();
                    (
                        d.tags[0].tag.value.clone(),
                        [start, end],
                        (d.detection_score * 1e4).round(),
                    )
                })
                .collect()
        };
        let theirs: Vec<_> = summary(&theirs);
        let ours: Vec<_> = summary(&ours);
        // BirdNET's tags are `species` (scientific) and ours the whole label line.
        assert_eq!(ours.len(), theirs.len());
        for ((label, window, score), (scientific, their_window, their_score)) in
            ours.iter().zip(&theirs)
        {
            assert!(
                label.starts_with(scientific.as_str()),
                "{label} vs {scientific}"
            );
            assert_eq!((window, score), (their_window, their_score));
        }
    }

    #[test]
    fn activations_turn_outputs_into_scores() {
        let mut values = vec![0.0, 2.0f64.ln()];
        Activation::Softmax.apply(&mut values);
        assert!((values[0] - 1.0 / 3.0).abs() < 1e-12 && (values[1] - 2.0 / 3.0).abs() < 1e-12);
        let mut values = vec![0.0];
        Activation::Sigmoid.apply(&mut values);
        assert_eq!(values, [0.5]);
    }

    #[test]
    fn mismatched_labels_and_bad_windows_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = crate::testing::context(dir.path(), None);
        std::fs::write(dir.path().join("three.txt"), "a\nb\nc\n").unwrap();
        let mut bad = config("");
        bad.labels = "three.txt".into();
        let err = OnnxClassifier::load(&bad, &ctx).err().unwrap();
        assert!(
            err.contains("gives 6522 scores") && err.contains("has 3 labels"),
            "{err}"
        );
        let problems = config(r#", "overlap": "3s""#).check();
        let err = &problems[0].message;
        assert_eq!(problems[0].key, ["overlap"]);
        assert!(err.contains("overlap"), "{err}");
        let mut missing = config("");
        missing.model = "nowhere.onnx".into();
        let err = OnnxClassifier::load(&missing, &ctx).err().unwrap();
        assert!(
            err.contains(&dir.path().join("nowhere.onnx").display().to_string()),
            "{err}"
        );
    }
}

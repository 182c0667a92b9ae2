//! The one ONNX loader: reads a network with tract (the file checked first, so a missing
//! one is reported as such), fixes its input shape, optimises it into a runnable plan,
//! and checks a labels file against the size of its output. BirdNET, its range model,
//! BatDetect2 and `model.onnx_classifier` load through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

/// Why a network or its labels could not be loaded; each text names the file.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read the labels file `{}`: {error}", path.display())]
    Labels {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot read the {what} file `{}`: {error}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// `detail` says what was asked of the network (e.g. its input), or is empty.
    #[error("cannot load the {what} `{}`{detail}: {error:#}", path.display())]
    Load {
        what: &'static str,
        path: PathBuf,
        detail: String,
        error: TractError,
    },
    #[error("the {what} `{}` has no fixed output size", path.display())]
    NoOutputSize { what: &'static str, path: PathBuf },
    #[error(
        "the model `{}` {} but the labels file `{}` has {count} labels",
        model.display(),
        outputs.describe(*size),
        labels.display()
    )]
    LabelCount {
        model: PathBuf,
        outputs: Outputs,
        size: Option<usize>,
        labels: PathBuf,
        count: usize,
    },
}

/// How a model's outputs are named when they do not match its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// "has N classes" (a species classifier).
    Classes,
    /// "gives N scores" (a user's classifier).
    Scores,
}

impl Outputs {
    fn describe(self, size: Option<usize>) -> String {
        let n = size.map_or_else(|| "an unknown number of".to_string(), |n| n.to_string());
        match self {
            Outputs::Classes => format!("has {n} classes"),
            Outputs::Scores => format!("gives {n} scores"),
        }
    }
}

/// The labels in `path`: one a line, trimmed, blank lines skipped.
pub fn read_labels(path: &Path) -> Result<Vec<String>, OnnxError> {
    let text = std::fs::read_to_string(path).map_err(|error| OnnxError::Labels {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect())
}

/// The network in `path`, parsed but not optimised (for callers that make several plans).
/// `what` names it in errors ("model", "range model").
pub fn parse(path: &Path, what: &'static str) -> Result<InferenceModel, OnnxError> {
    readable(path, what)?;
    tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|error| load_error(path, what, String::new(), error))
}

/// The network in `path` with input 0 of shape `input`, optimised and runnable. `detail`
/// is added to a load error after the path (e.g. " with input [1, 144000]"), or is empty.
pub fn load(
    path: &Path,
    what: &'static str,
    input: &[usize],
    detail: impl Into<String>,
) -> Result<Arc<TypedRunnableModel>, OnnxError> {
    readable(path, what)?;
    tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|model| model.with_input_fact(0, f32::fact(input).into()))
        .and_then(|model| model.into_optimized())
        .and_then(|model| model.into_runnable())
        .map_err(|error| load_error(path, what, detail.into(), error))
}

/// How many values output 0 of `plan` holds, when its shape is fixed.
pub fn output_size(plan: &TypedRunnableModel) -> Option<usize> {
    plan.model().output_fact(0).ok().and_then(|fact| {
        fact.shape
            .as_concrete()
            .map(|s| s.iter().product::<usize>())
    })
}

/// Output 0's size, or an error naming the network when it is not fixed.
pub fn fixed_output_size(
    plan: &TypedRunnableModel,
    path: &Path,
    what: &'static str,
) -> Result<usize, OnnxError> {
    output_size(plan).ok_or_else(|| OnnxError::NoOutputSize {
        what,
        path: path.to_path_buf(),
    })
}

/// Checks that output 0 of `plan` (loaded from `model`) has one value per label read from
/// `labels`.
pub fn check_labels(
    plan: &TypedRunnableModel,
    model: &Path,
    outputs: Outputs,
    labels: &Path,
    count: usize,
) -> Result<(), OnnxError> {
    let size = output_size(plan);
    if size == Some(count) {
        return Ok(());
    }
    Err(OnnxError::LabelCount {
        model: model.to_path_buf(),
        outputs,
        size,
        labels: labels.to_path_buf(),
        count,
    })
}

fn readable(path: &Path, what: &'static str) -> Result<(), OnnxError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|error| OnnxError::Unreadable {
            what,
            path: path.to_path_buf(),
            error,
        })
}

fn load_error(path: &Path, what: &'static str, detail: String, error: TractError) -> OnnxError {
    OnnxError::Load {
        what,
        path: path.to_path_buf(),
        detail,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_trimmed_and_blank_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.txt");
        std::fs::write(&path, " a \n\n  \nb_c\n").unwrap();
        assert_eq!(read_labels(&path).unwrap(), ["a", "b_c"]);
        let error = read_labels(&dir.path().join("none.txt"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read the labels file `") && error.contains("none.txt"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_or_broken_file_is_named_with_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.onnx");
        let error = load(&missing, "range model", &[1, 3], "")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read the range model file `") && error.contains("none.onnx"),
            "{error}"
        );
        let broken = dir.path().join("broken.onnx");
        std::fs::write(&broken, b"not a network").unwrap();
        let error = load(&broken, "model", &[1, 3], " with input [1, 3]")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot load the model `") && error.contains("` with input [1, 3]: "),
            "{error}"
        );
        let error = parse(&broken, "model").unwrap_err().to_string();
        assert!(error.starts_with("cannot load the model `"), "{error}");
    }

    #[test]
    fn a_label_count_mismatch_says_both_sizes() {
        let error = OnnxError::LabelCount {
            model: "m.onnx".into(),
            outputs: Outputs::Scores,
            size: Some(6522),
            labels: "three.txt".into(),
            count: 3,
        };
        assert_eq!(
            error.to_string(),
            "the model `m.onnx` gives 6522 scores but the labels file `three.txt` has 3 labels"
        );
        let error = OnnxError::LabelCount {
            model: "m.onnx".into(),
            outputs: Outputs::Classes,
            size: None,
            labels: "l.txt".into(),
            count: 3,
        };
        assert_eq!(
            error.to_string(),
            "the model `m.onnx` has an unknown number of classes but the labels file `l.txt` has 3 labels"
        );
    }
}

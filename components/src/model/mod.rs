//! Models: what turns a recording into a model output.

pub(crate) mod band_energy;
pub(crate) mod batdetect2;
pub(crate) mod birdnet;
pub(crate) mod onnx_classifier;

use std::path::Path;

use acoupi_engine::registry::{BuildContext, BuildError};

/// A model's build failure, pointed at the first of `fields` (a key and the path it
/// gives, when given) whose resolved path the reason names: a missing or broken `model` or
/// `labels` file is reported at its key.
pub(crate) fn at_file_field(
    reason: String,
    ctx: &BuildContext,
    fields: &[(&str, Option<&Path>)],
) -> BuildError {
    let named = fields.iter().find_map(|(key, path)| {
        let path = ctx.resolve((*path)?);
        reason.contains(&path.display().to_string()).then_some(*key)
    });
    match named {
        Some(key) => BuildError::at(&[key], reason),
        None => BuildError::new(reason),
    }
}

//! Models: what turns a recording into a model output.

pub(crate) mod band_energy;
pub(crate) mod batdetect2;
pub(crate) mod birdnet;
pub mod bundled;
pub(crate) mod onnx_classifier;
pub(crate) mod reference;

use std::path::{Path, PathBuf};

use acoupi_engine::registry::{BuildContext, BuildError};
use acoupi_engine::resources;

/// The file a model's `key` gives (relative to the pipeline file) or, when it gives none,
/// its default `resource` (`models/<model>/…`) found in acoupi's data dirs
/// (`acoupi_engine::resources`); a missing default names every place looked and `key`.
pub(crate) fn file_or_default(
    ctx: &BuildContext,
    given: Option<&Path>,
    resource: &str,
    key: &str,
) -> Result<PathBuf, String> {
    match given {
        Some(path) => Ok(ctx.resolve(path)),
        None => resources::default_file(resource, key).map_err(|e| e.to_string()),
    }
}

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

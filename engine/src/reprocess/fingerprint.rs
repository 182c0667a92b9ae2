//! The fingerprint of "the same model and parameters": xxh3-128 (hex) of, for each
//! detection stage that runs, in order, its name and, for its model, processing filters,
//! cleaners and message factories in order, each component's instance name, type and
//! parsed configuration (every parameter, defaults filled in, as `{:?}` prints it). A
//! change to any of these (a threshold, a model file path, another cleaner) makes a new
//! fingerprint, so every file is analysed again; comments, formatting and the other
//! stages of the pipeline file do not. An acoupi upgrade that adds a parameter to one of
//! these components changes it too (erring towards analysing again).
//!
//! Also here: the deterministic deployment id reprocessing uses, so shards written on
//! different machines merge into one deployment.

use twox_hash::XxHash3_128;
use uuid::Uuid;

use crate::config::{Pipeline, Stage, StageSpec};

/// The fingerprint of these stages of `pipeline` (detection stages; others are ignored).
pub fn fingerprint(pipeline: &Pipeline, stages: &[&Stage]) -> String {
    let mut text = String::new();
    for stage in stages {
        let StageSpec::Detection(spec) = &stage.spec else {
            continue;
        };
        text.push_str(&format!("stage {}\n", stage.name));
        let ids = std::iter::once(spec.model.id())
            .chain(spec.filters.iter().map(|r| r.id()))
            .chain(spec.cleaners.iter().map(|r| r.id()))
            .chain(spec.messages.iter().map(|r| r.id()));
        for id in ids {
            match id.and_then(|id| pipeline.components.get(id)) {
                Some(component) => text.push_str(&format!(
                    "{} {} {:?}\n",
                    component.name, component.kind, component.settings
                )),
                None => text.push_str("unresolved\n"),
            }
        }
    }
    format!("{:032x}", XxHash3_128::oneshot(text.as_bytes()))
}

/// The id of the deployment reprocessing writes for `[deployment]` (name and position),
/// the same in every shard.
pub fn deployment_id(name: &str, latitude: Option<f64>, longitude: Option<f64>) -> Uuid {
    let text = format!("acoupi reprocess deployment\n{name}\n{latitude:?}\n{longitude:?}");
    uuid::Builder::from_u128(XxHash3_128::oneshot(text.as_bytes()))
        .with_version(uuid::Version::Random)
        .with_variant(uuid::Variant::RFC4122)
        .into_uuid()
}

//! Output cleaners: what a model output keeps before it is stored.

pub(crate) mod privacy;
pub(crate) mod tag_thresholds;
pub(crate) mod threshold;
pub(crate) mod top_k;

use acoupi_engine::data::ModelOutput;

/// Drops the detections left without tags, logging how many.
pub(crate) fn drop_untagged(mut output: ModelOutput, cleaner: &str) -> ModelOutput {
    let before = output.detections.len();
    output.detections.retain(|d| !d.tags.is_empty());
    let dropped = before - output.detections.len();
    if dropped > 0 {
        tracing::debug!(dropped, cleaner, model = %output.name_model, "detections left without tags dropped");
    }
    output
}

/// The tag values and scores of each detection, for the cleaner tests.
#[cfg(test)]
pub(crate) fn tag_values(output: &ModelOutput) -> Vec<Vec<(&str, f64)>> {
    output
        .detections
        .iter()
        .map(|d| {
            d.tags
                .iter()
                .map(|t| (t.tag.value.as_str(), t.confidence_score))
                .collect()
        })
        .collect()
}

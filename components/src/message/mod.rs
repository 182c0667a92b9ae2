//! Message factories: the messages built from each model output.

pub(crate) mod detections;
pub(crate) mod records;

//! Message factories: the messages built from each model output.

pub(crate) mod deployment;
pub(crate) mod detection;
pub(crate) mod model_output;
pub(crate) mod recording;

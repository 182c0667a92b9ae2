//! Models: what turns a recording into a model output.

pub(crate) mod band_energy;
pub(crate) mod batdetect2;
pub(crate) mod birdnet;
pub(crate) mod onnx_classifier;

//! Pieces shared by several components: audio reading, the ONNX loader, secrets, file-name
//! templates, sun times.

pub(crate) mod audio;
pub mod audio_probe;
pub(crate) mod onnx;
pub(crate) mod secret;
pub(crate) mod sun;
pub(crate) mod template;

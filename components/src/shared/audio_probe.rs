//! Probing archived audio files for `acoupi reprocess` ([`WavProbe`]): the engine's
//! [`AudioProbe`] over [`acoupi_audio::probe`], its [`acoupi_audio::ProbeError`] as the
//! one-line reason of the report.

use std::path::Path;

use acoupi_engine::reprocess::{AudioProbe, ProbedAudio};

/// Reads WAV headers and FLAC stream info (see [`acoupi_audio::probe`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct WavProbe;

impl AudioProbe for WavProbe {
    fn probe(&self, path: &Path) -> Result<ProbedAudio, String> {
        acoupi_audio::probe(path).map_err(|e| e.to_string())
    }
}

//! Fuzzing entry points, shared by the coverage-guided fuzzers in `fuzz/` (`cargo fuzz`,
//! libFuzzer) and by the property tests below (proptest, run with the unit tests): the
//! pipeline loader with every registered component ([`check_pipeline`]), and every reader
//! of audio files the station and reprocessing use ([`read_audio`]: WAV header and
//! samples, the reprocessing probe of WAV and FLAC files with their AudioMoth comment,
//! GUANO read and rewrite). Any input must give a result or an error, never a panic; a
//! loader's problems must point inside the text.
//!
//! The property tests also edit valid seeds at random; `ACOUPI_FUZZ_CASES` sets their
//! inputs per property (default 2,000; raise it for a longer session).

use std::path::{Path, PathBuf};

use acoupi_engine::config::load_str;
use acoupi_engine::reprocess::AudioProbe;

/// Loads `text` as a pipeline file; panics only where the loader would (a bug), or when a
/// problem's span lies outside the text.
pub fn check_pipeline(text: &str) {
    let registry = crate::registry();
    if let Err(errors) = load_str(Path::new("fuzz.toml"), text, &registry) {
        for problem in &errors.problems {
            if let Some(span) = &problem.span {
                assert!(
                    span.start <= span.end && span.end <= text.len(),
                    "span {span:?} outside a {}-byte text",
                    text.len()
                );
            }
        }
        // Rendering the report must not panic either.
        let _ = errors.to_string();
    }
}

/// Reads `bytes` as a recording file every way the station and reprocessing do, as a
/// `.wav` and as a `.flac`; only panics count, and a decoder that allocates past the
/// decoding limits (`acoupi_audio`'s crate docs): a header that passes is within them, a block
/// is at most [`acoupi_audio::BLOCK_FRAMES`] frames and the frames decoded are at most
/// the header's.
pub fn read_audio(bytes: &[u8]) {
    thread_local! {
        static FILES: Option<(tempfile::TempDir, PathBuf, PathBuf)> = scratch_files();
    }
    FILES.with(|files| {
        let Some((_dir, wav, flac)) = files else {
            return;
        };
        if std::fs::write(wav, bytes).is_err() {
            return;
        }
        for path in [wav, flac] {
            let _ = acoupi_audio::wav_info(path);
            check_decoding(path);
            let _ = crate::shared::audio_probe::WavProbe.probe(path);
        }
        if let Ok(Some(guano)) = acoupi_engine::guano::read(wav) {
            let _ = (
                guano.timestamp(chrono_tz::UTC),
                guano.time_expansion(),
                guano.position(),
                guano.gaps(),
            );
        }
        let _ = acoupi_engine::guano::write(wav, &acoupi_engine::guano::Guano::default());
    });
}

/// Decodes `path` block by block, asserting the decoding bounds (see [`read_audio`]).
fn check_decoding(path: &Path) {
    use acoupi_audio::{BLOCK_FRAMES, MAX_CHANNELS, MAX_SAMPLERATE, MAX_SAMPLES, MIN_SAMPLERATE};
    let Ok(info) = acoupi_audio::audio_info(path) else {
        return;
    };
    assert!(
        (MIN_SAMPLERATE..=MAX_SAMPLERATE).contains(&info.samplerate),
        "{info:?} passed the rate limits"
    );
    assert!(
        (1..=MAX_CHANNELS).contains(&info.channels),
        "{info:?} passed the channel limit"
    );
    assert!(
        info.frames.saturating_mul(u64::from(info.channels)) <= MAX_SAMPLES,
        "{info:?} passed the length limit"
    );
    let mut decoded = 0u64;
    let _ = acoupi_audio::read_mono_blocks::<acoupi_audio::AudioError>(path, &mut |block| {
        assert!(
            block.len() <= BLOCK_FRAMES,
            "a block of {} frames",
            block.len()
        );
        decoded += block.len() as u64;
        assert!(
            decoded <= info.frames,
            "{decoded} frames decoded from a header of {info:?}"
        );
        Ok(())
    });
    if let Ok((_, samples)) = acoupi_audio::read_mono(path) {
        assert!(
            samples.len() as u64 == info.frames,
            "{} samples from a header of {info:?}",
            samples.len()
        );
    }
}

/// A scratch `fuzz.wav` and a `fuzz.flac` link to it, made once per thread.
fn scratch_files() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    let dir = tempfile::tempdir().ok()?;
    let wav = dir.path().join("fuzz.wav");
    let flac = dir.path().join("fuzz.flac");
    std::fs::write(&wav, b"").ok()?;
    std::os::unix::fs::symlink(&wav, &flac).ok()?;
    Some((dir, wav, flac))
}

#[cfg(test)]
mod properties {
    use acoupi_audio::testing::silent_flac;
    use proptest::prelude::*;

    use super::*;

    /// A pipeline with every stage kind, from the fuzzers' seed corpus.
    const VALID: &str = include_str!("../../fuzz/corpus/pipeline_loader/every_stage_kind.toml");

    fn cases() -> u32 {
        std::env::var("ACOUPI_FUZZ_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2_000)
    }

    /// An edit: at a position (a fraction of the length), delete some bytes and insert text.
    fn edits() -> impl Strategy<Value = Vec<(f64, usize, String)>> {
        let insert = prop_oneof![
            Just(String::new()),
            "[=\\[\\]{}\",.#\\n ]{1,4}",
            "[a-z_]{1,8}",
            Just("\"".to_string()),
            Just("[stages.x]\n".to_string()),
            Just("after = \"record\"\n".to_string()),
            Just("schedule = { every = \"0s\" }\n".to_string()),
            any::<String>(),
        ];
        prop::collection::vec((0.0..1.0f64, 0usize..12, insert), 1..6)
    }

    fn apply(text: &str, edits: &[(f64, usize, String)]) -> String {
        let mut out = text.to_string();
        for (at, delete, insert) in edits {
            let mut start = ((out.len() as f64) * at) as usize;
            while !out.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (start + delete).min(out.len());
            while !out.is_char_boundary(end) {
                end += 1;
            }
            out.replace_range(start..end, insert);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_text_gives_a_pipeline_or_problems(text in any::<String>()) {
            check_pipeline(&text);
        }

        #[test]
        fn edited_valid_pipelines_give_a_pipeline_or_problems(edits in edits()) {
            check_pipeline(&apply(VALID, &edits));
        }
    }

    #[test]
    fn the_seed_pipeline_is_valid() {
        load_str(Path::new("fuzz.toml"), VALID, &crate::registry()).unwrap();
    }

    /// A small valid WAV: 16-bit stereo at 8 kHz, with a GUANO chunk.
    fn seed_wav() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.wav");
        crate::shared::audio::testing::write_wav(&path, 8_000, 2, 0.01, |t| {
            (t * 3000.0).sin() * 0.5
        });
        let mut guano = acoupi_engine::guano::Guano::default();
        guano.set("Timestamp", "2026-06-21T05:30:00+01:00");
        guano.set("TE", "10");
        acoupi_engine::guano::write(&path, &guano).unwrap();
        std::fs::read(path).unwrap()
    }

    fn byte_edits() -> impl Strategy<Value = Vec<(f64, usize, Vec<u8>)>> {
        prop::collection::vec(
            (
                0.0..1.0f64,
                0usize..16,
                prop::collection::vec(any::<u8>(), 0..8),
            ),
            1..6,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_read_as_a_wav_give_a_result_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            read_audio(&bytes);
        }

        #[test]
        fn edited_valid_wavs_give_a_result_or_an_error(edits in byte_edits()) {
            let mut bytes = seed_wav();
            for (at, delete, insert) in &edits {
                let start = ((bytes.len() as f64) * at) as usize;
                let end = (start + delete).min(bytes.len());
                bytes.splice(start..end, insert.iter().copied());
            }
            read_audio(&bytes);
        }

        /// Any sample rate, channel count and bit depth in a WAV header: refused, or
        /// decoded within the limits (`check_decoding`'s assertions).
        #[test]
        fn any_wav_header_values_are_refused_or_decoded_within_the_limits(rate in any::<u32>(), channels in any::<u16>(), bits in any::<u16>()) {
            let mut bytes = seed_wav();
            bytes[22..24].copy_from_slice(&channels.to_le_bytes());
            bytes[24..28].copy_from_slice(&rate.to_le_bytes());
            bytes[34..36].copy_from_slice(&bits.to_le_bytes());
            read_audio(&bytes);
        }

        /// Any stream info in a FLAC: refused, or decoded within the limits; the frames
        /// it claims beyond those it holds are never allocated.
        #[test]
        fn any_flac_stream_info_is_refused_or_decoded_within_the_limits(rate in 1u32..(1 << 20), channels in 1u8..=8, frames in 0u64..(1 << 36), held in 0u64..70_000) {
            let mut bytes = silent_flac(rate, channels, 16, held);
            // The stream info claims `frames` (bytes 18..26 pack rate, channels, bits, length).
            let packed = u64::from(rate) << 44 | u64::from(channels - 1) << 41 | 15 << 36 | frames;
            bytes[18..26].copy_from_slice(&packed.to_be_bytes());
            read_audio(&bytes);
        }
    }

    /// The fuzzers' seeds (absurd headers among them) pass the same checks.
    #[test]
    fn the_audio_corpus_gives_results_or_errors_within_the_limits() {
        let corpus = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/audio_reader"
        ));
        let mut seeds = 0;
        for entry in std::fs::read_dir(corpus).unwrap() {
            read_audio(&std::fs::read(entry.unwrap().path()).unwrap());
            seeds += 1;
        }
        assert!(seeds >= 4, "{seeds} seeds");
    }
}

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
/// decoding limits (`audio`'s module docs): a header that passes is within them, a block
/// is at most [`crate::shared::audio::BLOCK_FRAMES`] frames and the frames decoded are at most
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
            let _ = crate::shared::audio::wav_info(path);
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
    use crate::shared::audio::{
        BLOCK_FRAMES, MAX_CHANNELS, MAX_SAMPLERATE, MAX_SAMPLES, MIN_SAMPLERATE,
    };
    let Ok(info) = crate::shared::audio::audio_info(path) else {
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
    let _ = crate::shared::audio::read_mono_blocks(path, &mut |block| {
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
    if let Ok((_, samples)) = crate::shared::audio::read_mono(path) {
        assert!(
            samples.len() as u64 == info.frames,
            "{} samples from a header of {info:?}",
            samples.len()
        );
    }
}

/// A FLAC file of `frames` frames of silence (every subframe CONSTANT 0, blocks of
/// 65 535 frames; 8, 16 or 24 bits): an hour at 384 kHz is about 300 KB. For tests and
/// the fuzzers' seeds; the stream info's rate is 20 bits, so up to 1 048 575 Hz.
pub fn silent_flac(samplerate: u32, channels: u8, bits: u8, frames: u64) -> Vec<u8> {
    const BLOCK: u64 = 65_535;
    assert!(
        matches!(bits, 8 | 16 | 24)
            && (1..=8).contains(&channels)
            && samplerate < 1 << 20
            && frames < 1 << 36
    );
    let mut out = b"fLaC".to_vec();
    // The STREAMINFO block, the last metadata block: 34 bytes.
    out.extend([0x80, 0, 0, 34]);
    out.extend((BLOCK as u16).to_be_bytes());
    out.extend((BLOCK as u16).to_be_bytes());
    out.extend([0; 6]); // frame sizes unknown
    let packed = u64::from(samplerate) << 44
        | u64::from(channels - 1) << 41
        | u64::from(bits - 1) << 36
        | frames;
    out.extend(packed.to_be_bytes());
    out.extend([0; 16]); // MD5 unknown
    let mut number = 0u64;
    let mut left = frames;
    while left > 0 {
        let block = left.min(BLOCK);
        let start = out.len();
        // Sync, fixed blocking; block size in 16 bits at the end of the header; the rate
        // from the stream info; independent channels; the bits' code.
        let bits_code = match bits {
            8 => 0b001,
            16 => 0b100,
            _ => 0b110,
        };
        out.extend([0xff, 0xf8, 0x70, (channels - 1) << 4 | bits_code << 1]);
        out.extend(utf8_number(number));
        out.extend(((block - 1) as u16).to_be_bytes());
        out.push(crc8(&out[start..]));
        for _ in 0..channels {
            out.push(0); // CONSTANT, no wasted bits
            out.extend(std::iter::repeat_n(0u8, usize::from(bits / 8)));
        }
        let crc = crc16(&out[start..]);
        out.extend(crc.to_be_bytes());
        number += 1;
        left -= block;
    }
    out
}

/// FLAC's UTF-8-like coding of a frame number.
fn utf8_number(n: u64) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let continuation = (1..=6).find(|&k| n < 1u64 << (5 * k + 6)).unwrap_or(6);
    let mut bytes = vec![0u8; continuation + 1];
    for (i, byte) in bytes.iter_mut().enumerate().skip(1).rev() {
        *byte = 0x80 | ((n >> (6 * (continuation - i))) & 0x3f) as u8;
    }
    let lead_bits = 6 - continuation as u32;
    bytes[0] = (0xff00u16 >> (continuation + 1)) as u8
        | (n >> (6 * continuation)) as u8 & ((1u8 << lead_bits) - 1);
    bytes
}

fn crc8(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |crc, &b| {
        (0..8).fold(
            crc ^ b,
            |c, _| if c & 0x80 != 0 { c << 1 ^ 0x07 } else { c << 1 },
        )
    })
}

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (0..8).fold(crc ^ u16::from(b) << 8, |c, _| {
            if c & 0x8000 != 0 {
                c << 1 ^ 0x8005
            } else {
                c << 1
            }
        })
    })
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

    #[test]
    fn a_silent_flac_decodes_to_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silence.flac");
        std::fs::write(&path, silent_flac(384_000, 2, 16, 200_000)).unwrap();
        let (info, samples) = crate::shared::audio::read_mono(&path).unwrap();
        assert_eq!(
            info,
            crate::shared::audio::WavInfo {
                samplerate: 384_000,
                channels: 2,
                frames: 200_000
            }
        );
        assert!(samples.len() == 200_000 && samples.iter().all(|s| *s == 0.0));
        for n in [
            0,
            1,
            0x7f,
            0x80,
            0x7ff,
            0x800,
            0xffff,
            0x10000,
            1 << 30,
            (1 << 36) - 1,
        ] {
            let bytes = utf8_number(n);
            let lead = bytes[0].leading_ones() as usize;
            assert_eq!(
                lead,
                if n < 0x80 { 0 } else { bytes.len() },
                "{n:#x}: {bytes:x?}"
            );
            let mut value = u64::from(bytes[0] & (0x7f >> lead));
            for b in &bytes[1..] {
                assert_eq!(b & 0xc0, 0x80);
                value = value << 6 | u64::from(b & 0x3f);
            }
            assert_eq!(value, n, "{bytes:x?}");
        }
    }
}

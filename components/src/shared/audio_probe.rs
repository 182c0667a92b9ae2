//! Probing archived audio files for `acoupi reprocess` ([`WavProbe`]): the header facts a
//! Recording needs (from hound, so a file that passes can be read by the models), the
//! AudioMoth comment (`LIST/INFO/ICMT`) and GUANO (`guan`) chunks, and the checks that
//! turn a bad file into a one-line reason: empty, not RIFF/WAVE, a format the models
//! cannot read, or truncated (the data chunk declares more bytes than the file holds).
//! A `.flac` file is probed through its stream info (claxon) and its Vorbis `COMMENT`;
//! a truncated FLAC is found when the model decodes it (a stage failure, also reported).
//! Either header is checked against the decoding limits of `audio` (sample rate, channels,
//! bits, samples: [`crate::shared::audio::check_header`]), so an absurd file is a bad file with
//! the limit it passed as its reason, before any model allocates for it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use acoupi_engine::reprocess::{AudioProbe, ProbedAudio};

/// Reads WAV headers (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct WavProbe;

impl AudioProbe for WavProbe {
    fn probe(&self, path: &Path) -> Result<ProbedAudio, String> {
        let size = std::fs::metadata(path)
            .map_err(|e| format!("unreadable: {e}"))?
            .len();
        if size == 0 {
            return Err("empty file (0 bytes)".into());
        }
        if crate::shared::audio::is_flac(path) {
            return probe_flac(path);
        }
        let file = File::open(path).map_err(|e| format!("unreadable: {e}"))?;
        let chunks = scan_chunks(BufReader::new(file), size)?;
        let reader =
            hound::WavReader::open(path).map_err(|e| format!("not a readable WAV file: {e}"))?;
        let spec = reader.spec();
        let frames = u64::from(reader.duration());
        crate::shared::audio::check_header(
            spec.sample_rate,
            spec.channels,
            spec.bits_per_sample,
            frames,
        )?;
        Ok(ProbedAudio {
            samplerate: spec.sample_rate,
            channels: spec.channels,
            frames,
            comment: chunks.comment,
            guano: chunks.guano,
        })
    }
}

/// A FLAC file's stream info and comment.
fn probe_flac(path: &Path) -> Result<ProbedAudio, String> {
    let info = crate::shared::audio::flac_info(path).map_err(|e| match e {
        acoupi_engine::component::ComponentError::Audio { reason, .. } => {
            format!("not a readable FLAC file: {reason}")
        }
        other => other.to_string(),
    })?;
    let reader =
        claxon::FlacReader::open(path).map_err(|e| format!("not a readable FLAC file: {e}"))?;
    let comment = reader.get_tag("COMMENT").next().map(str::to_string);
    Ok(ProbedAudio {
        samplerate: info.samplerate,
        channels: info.channels,
        frames: info.frames,
        comment,
        guano: None,
    })
}

/// What the chunk walk found.
#[derive(Debug, Default)]
struct Chunks {
    comment: Option<String>,
    guano: Option<String>,
}

/// Walks the RIFF chunks: checks the RIFF/WAVE header, that a data chunk exists and is
/// whole, and reads the comment and GUANO text (at most 64 KiB each).
fn scan_chunks(mut file: impl Read + Seek, size: u64) -> Result<Chunks, String> {
    let mut header = [0u8; 12];
    file.read_exact(&mut header)
        .map_err(|_| format!("not a WAV file: only {size} bytes, shorter than a RIFF header"))?;
    if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" {
        let what = if &header[0..4] == b"RF64" {
            "RF64 (WAV over 4 GB) is not supported".to_string()
        } else {
            "not a WAV file (no RIFF/WAVE header)".to_string()
        };
        return Err(what);
    }
    let mut found = Chunks::default();
    let mut data = false;
    let mut position = 12u64;
    while position + 8 <= size {
        let mut head = [0u8; 8];
        file.read_exact(&mut head)
            .map_err(|e| format!("unreadable at byte {position}: {e}"))?;
        let id = [head[0], head[1], head[2], head[3]];
        let length = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        let body = position + 8;
        let available = size - body;
        match &id {
            b"data" => {
                if length > available {
                    return Err(format!(
                        "truncated: the data chunk declares {length} bytes, the file holds {available}"
                    ));
                }
                data = true;
            }
            b"LIST" | b"guan" if length <= available && length <= 64 * 1024 => {
                let mut bytes = vec![0u8; length as usize];
                file.read_exact(&mut bytes)
                    .map_err(|e| format!("unreadable at byte {body}: {e}"))?;
                if &id == b"guan" {
                    found.guano = Some(text(&bytes));
                } else if bytes.starts_with(b"INFO") {
                    found.comment = info_comment(&bytes[4..]).or(found.comment);
                }
            }
            _ => {}
        }
        position = body + length + (length & 1);
        file.seek(SeekFrom::Start(position))
            .map_err(|e| format!("unreadable at byte {position}: {e}"))?;
    }
    if !data {
        return Err("no data chunk (no audio, or the file was cut off in its header)".into());
    }
    Ok(found)
}

/// The `ICMT` sub-chunk of a `LIST/INFO` body.
fn info_comment(mut body: &[u8]) -> Option<String> {
    while body.len() >= 8 {
        let length = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
        let end = (8 + length).min(body.len());
        if &body[0..4] == b"ICMT" {
            return Some(text(&body[8..end]));
        }
        body = &body[(end + (length & 1)).min(body.len())..];
    }
    None
}

/// UTF-8 text (lossy) without trailing NULs.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\0')
        .to_string()
}

/// Writes a mono 16-bit WAV with an optional comment, for tests here and in the engine.
#[cfg(test)]
pub(crate) fn write_test_wav(path: &Path, samplerate: u32, seconds: f64, comment: Option<&str>) {
    let frames = (samplerate as f64 * seconds) as usize;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: samplerate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..frames {
        writer
            .write_sample(((i as f64 * 0.1).sin() * 8000.0) as i16)
            .unwrap();
    }
    writer.finalize().unwrap();
    if let Some(comment) = comment {
        // Append a LIST/INFO/ICMT chunk after the data and fix the RIFF size.
        let mut bytes = std::fs::read(path).unwrap();
        let mut icmt = comment.as_bytes().to_vec();
        icmt.push(0);
        if icmt.len() % 2 == 1 {
            icmt.push(0);
        }
        let mut list = b"INFOICMT".to_vec();
        list.extend((icmt.len() as u32).to_le_bytes());
        list.extend(&icmt);
        bytes.extend(b"LIST");
        bytes.extend((list.len() as u32).to_le_bytes());
        bytes.extend(&list);
        let riff = (bytes.len() - 8) as u32;
        bytes[4..8].copy_from_slice(&riff.to_le_bytes());
        std::fs::write(path, bytes).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(path: &Path) -> Result<ProbedAudio, String> {
        WavProbe.probe(path)
    }

    #[test]
    fn a_good_file_with_an_audiomoth_comment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let comment = "Recorded at 05:30:00 21/06/2026 (UTC+1) by AudioMoth 24F3190361DA5A34";
        write_test_wav(&path, 8000, 0.5, Some(comment));
        let probed = probe(&path).unwrap();
        assert_eq!(
            (probed.samplerate, probed.channels, probed.frames),
            (8000, 1, 4000)
        );
        assert_eq!(probed.comment.as_deref(), Some(comment));
        assert_eq!(probed.guano, None);
    }

    #[test]
    fn a_flac_file_reads_as_the_wav_it_was_made_from() {
        let flac = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/audio/01_dawn.flac"
        ));
        let wav = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../pipelines/audio/01_dawn.wav"
        ));
        let probed = probe(flac).unwrap();
        assert_eq!(
            (probed.samplerate, probed.channels, probed.frames),
            (22_050, 1, 66_150)
        );
        assert_eq!(probed.comment.as_deref(), Some("Processed by SoX"));
        let (flac_info, flac_samples) = crate::shared::audio::read_mono(flac).unwrap();
        let (wav_info, wav_samples) = crate::shared::audio::read_mono(wav).unwrap();
        assert_eq!((flac_info, flac_samples), (wav_info, wav_samples));
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.flac");
        let bytes = std::fs::read(flac).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(crate::shared::audio::read_mono(&cut).is_err());
        std::fs::write(dir.path().join("text.flac"), b"not flac at all").unwrap();
        assert!(
            probe(&dir.path().join("text.flac"))
                .unwrap_err()
                .starts_with("not a readable FLAC file")
        );
    }

    #[test]
    fn bad_files_each_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            probe(&path).unwrap_err()
        };
        assert_eq!(at("empty.wav", b""), "empty file (0 bytes)");
        assert!(at("text.wav", b"this is not audio at all").contains("no RIFF/WAVE header"));
        assert!(at("short.wav", b"RIFF").contains("shorter than a RIFF header"));
        let good = dir.path().join("good.wav");
        write_test_wav(&good, 8000, 0.5, None);
        let bytes = std::fs::read(&good).unwrap();
        let truncated = at("truncated.wav", &bytes[..bytes.len() / 2]);
        assert!(
            truncated.starts_with("truncated: the data chunk declares 8000 bytes"),
            "{truncated}"
        );
        assert!(at("header-only.wav", &bytes[..36]).contains("no data chunk"));
        assert!(
            probe(&dir.path().join("missing.wav"))
                .unwrap_err()
                .starts_with("unreadable")
        );
    }
}

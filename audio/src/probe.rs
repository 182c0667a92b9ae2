//! Probing archived audio files (for `acoupi reprocess`): the header facts a Recording
//! needs (from the one WAV header reader, so a file that passes can be decoded), the
//! AudioMoth comment (`LIST/INFO/ICMT`) and GUANO (`guan`) chunks, and the checks that
//! turn a bad file into a one-line reason ([`ProbeError`]): empty, not RIFF/WAVE, a
//! format the decoder cannot read, or truncated (the data chunk declares more bytes than
//! the file holds). A `.flac` file is probed through its stream info (claxon) and its
//! Vorbis `COMMENT`; a truncated FLAC is found when it is decoded. Either header is
//! checked against the decoding limits ([`crate::check_header`]), so an absurd file is a
//! bad file with the limit it passed as its reason, before anything allocates for it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::AudioErrorKind;
use crate::header::{LimitError, check_header, flac_info, is_flac, read_wav_header};

/// What a probe found in an audio file's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probed {
    pub samplerate: u32,
    pub channels: u16,
    /// Samples per channel.
    pub frames: u64,
    /// The AudioMoth comment (WAV `ICMT`, FLAC `COMMENT`).
    pub comment: Option<String>,
    /// The text of the `guan` chunk.
    pub guano: Option<String>,
}

/// Why a file is a bad file: a one-line reason (the caller names the file).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("unreadable: {0}")]
    Unreadable(std::io::Error),
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("not a WAV file: only {0} bytes, shorter than a RIFF header")]
    ShorterThanRiff(u64),
    #[error("RF64 (WAV over 4 GB) is not supported")]
    Rf64,
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotRiff,
    #[error("unreadable at byte {at}: {source}")]
    UnreadableAt { at: u64, source: std::io::Error },
    #[error("truncated: the data chunk declares {declared} bytes, the file holds {available}")]
    TruncatedData { declared: u64, available: u64 },
    #[error("no data chunk (no audio, or the file was cut off in its header)")]
    NoData,
    #[error("not a readable WAV file: {0}")]
    NotReadableWav(AudioErrorKind),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("not a readable FLAC file: {0}")]
    NotReadableFlac(AudioErrorKind),
}

/// Probes a WAV (or, by its extension, FLAC) file (see the module docs).
pub fn probe(path: &Path) -> Result<Probed, ProbeError> {
    let size = std::fs::metadata(path)
        .map_err(ProbeError::Unreadable)?
        .len();
    if size == 0 {
        return Err(ProbeError::Empty);
    }
    if is_flac(path) {
        return probe_flac(path);
    }
    let file = File::open(path).map_err(ProbeError::Unreadable)?;
    let chunks = scan_chunks(BufReader::new(file), size)?;
    let header = read_wav_header(path).map_err(|e| ProbeError::NotReadableWav(e.kind))?;
    check_header(
        header.samplerate,
        header.channels,
        header.bits_per_sample,
        header.frames,
    )?;
    Ok(Probed {
        samplerate: header.samplerate,
        channels: header.channels,
        frames: header.frames,
        comment: chunks.comment,
        guano: chunks.guano,
    })
}

/// A FLAC file's stream info and comment.
fn probe_flac(path: &Path) -> Result<Probed, ProbeError> {
    let info = flac_info(path).map_err(|e| ProbeError::NotReadableFlac(e.kind))?;
    let reader = claxon::FlacReader::open(path)
        .map_err(|e| ProbeError::NotReadableFlac(AudioErrorKind::Flac(e)))?;
    let comment = reader.get_tag("COMMENT").next().map(str::to_string);
    Ok(Probed {
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
fn scan_chunks(mut file: impl Read + Seek, size: u64) -> Result<Chunks, ProbeError> {
    let mut header = [0u8; 12];
    file.read_exact(&mut header)
        .map_err(|_| ProbeError::ShorterThanRiff(size))?;
    if &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" {
        return Err(if &header[0..4] == b"RF64" {
            ProbeError::Rf64
        } else {
            ProbeError::NotRiff
        });
    }
    let mut found = Chunks::default();
    let mut data = false;
    let mut position = 12u64;
    while position + 8 <= size {
        let mut head = [0u8; 8];
        file.read_exact(&mut head)
            .map_err(|source| ProbeError::UnreadableAt {
                at: position,
                source,
            })?;
        let id = [head[0], head[1], head[2], head[3]];
        let length = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        let body = position + 8;
        let available = size - body;
        match &id {
            b"data" => {
                if length > available {
                    return Err(ProbeError::TruncatedData {
                        declared: length,
                        available,
                    });
                }
                data = true;
            }
            b"LIST" | b"guan" if length <= available && length <= 64 * 1024 => {
                let mut bytes = vec![0u8; length as usize];
                file.read_exact(&mut bytes)
                    .map_err(|source| ProbeError::UnreadableAt { at: body, source })?;
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
            .map_err(|source| ProbeError::UnreadableAt {
                at: position,
                source,
            })?;
    }
    if !data {
        return Err(ProbeError::NoData);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write_test_wav;

    /// The probe, its reason as the reprocessing report shows it.
    fn probe(path: &Path) -> Result<Probed, String> {
        super::probe(path).map_err(|e| e.to_string())
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
        let (flac_info, flac_samples) = crate::read_mono(flac).unwrap();
        let (wav_info, wav_samples) = crate::read_mono(wav).unwrap();
        assert_eq!((flac_info, flac_samples), (wav_info, wav_samples));
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("cut.flac");
        let bytes = std::fs::read(flac).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        assert!(crate::read_mono(&cut).is_err());
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

//! Writers of small test files: WAVs of a function of time, and silent FLACs (for tests
//! here and in other crates, and the fuzzers' seeds). Panics on a write error: these are
//! test helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

/// Writes a 16-bit WAV of `seconds` at `samplerate` whose samples come from `f(t)`.
pub fn write_wav(
    path: &Path,
    samplerate: u32,
    channels: u16,
    seconds: f64,
    f: impl Fn(f64) -> f64,
) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: samplerate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    let n = (seconds * f64::from(samplerate)) as usize;
    for i in 0..n {
        let v = (f(i as f64 / f64::from(samplerate)).clamp(-1.0, 1.0) * 32767.0) as i16;
        for _ in 0..channels {
            writer.write_sample(v).unwrap();
        }
    }
    writer.finalize().unwrap();
}

/// Writes mono 32-bit float samples as a WAV.
pub fn write_f32_wav(path: &Path, samplerate: u32, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: samplerate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    samples
        .iter()
        .for_each(|s| writer.write_sample(*s).unwrap());
    writer.finalize().unwrap();
}

/// Writes a mono 16-bit WAV with an optional comment, for the probe's tests.
pub fn write_test_wav(path: &Path, samplerate: u32, seconds: f64, comment: Option<&str>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_flac_decodes_to_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silence.flac");
        std::fs::write(&path, silent_flac(384_000, 2, 16, 200_000)).unwrap();
        let (info, samples) = crate::read_mono(&path).unwrap();
        assert_eq!(
            info,
            crate::WavInfo {
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

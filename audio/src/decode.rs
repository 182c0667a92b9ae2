//! Decoding: samples of a WAV (hound) or FLAC (claxon) file mixed down to mono f32, in
//! blocks of at most [`BLOCK_FRAMES`] frames after the header passed the limits.

use std::path::Path;

use crate::error::{AudioError, AudioErrorKind};
use crate::header::{WavInfo, audio_info, is_flac};

/// Frames decoded (and mixed to mono) at a time.
pub const BLOCK_FRAMES: usize = 1 << 16;
/// The longest window a model may ask for, in samples.
pub const MAX_WINDOW_FRAMES: usize = 1 << 24;

/// What takes decoded blocks of mono samples, in order; its error is the caller's (one
/// an [`AudioError`] converts into).
pub type BlockSink<'a, E = AudioError> = dyn FnMut(&[f32]) -> Result<(), E> + 'a;

/// Decodes a WAV (or, by its extension, FLAC) file as mono f32 samples in [-1, 1]
/// (channels averaged), handing them to `each` in blocks of at most [`BLOCK_FRAMES`];
/// returns the header. A file holding fewer frames than its header says is an error
/// (after the blocks it does hold), and so is one holding more.
pub fn read_mono_blocks<E: From<AudioError>>(
    path: &Path,
    each: &mut BlockSink<'_, E>,
) -> Result<WavInfo, E> {
    let info = audio_info(path)?;
    let decoded = if is_flac(path) {
        decode_flac(path, &info, each)?
    } else {
        decode_wav(path, &info, each)?
    };
    if decoded < info.frames {
        let truncated = AudioErrorKind::Truncated {
            declared: info.frames,
            decoded,
        };
        return Err(AudioError::new(path, truncated).into());
    }
    Ok(info)
}

/// Decodes a WAV file's samples (see [`read_mono_blocks`]); returns the frames decoded.
fn decode_wav<E: From<AudioError>>(
    path: &Path,
    info: &WavInfo,
    each: &mut BlockSink<'_, E>,
) -> Result<u64, E> {
    let error = |e: hound::Error| E::from(AudioError::new(path, e));
    let mut reader = hound::WavReader::open(path).map_err(error)?;
    let spec = reader.spec();
    let channels = usize::from(info.channels);
    let mut block = Vec::with_capacity(BLOCK_FRAMES);
    let mut frame_sum = 0.0f32;
    let mut in_frame = 0;
    let mut frames = 0u64;
    let mut push = |sample: f32, block: &mut Vec<f32>| -> Result<(), E> {
        frame_sum += sample;
        in_frame += 1;
        if in_frame == channels {
            block.push(frame_sum / channels as f32);
            (frame_sum, in_frame) = (0.0, 0);
            frames += 1;
            if block.len() == BLOCK_FRAMES {
                each(block)?;
                block.clear();
            }
        }
        Ok(())
    };
    match spec.sample_format {
        hound::SampleFormat::Float => {
            for sample in reader.samples::<f32>() {
                push(sample.map_err(error)?, &mut block)?;
            }
        }
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.saturating_sub(1))) as f32;
            for sample in reader.samples::<i32>() {
                push(sample.map_err(error)? as f32 * scale, &mut block)?;
            }
        }
    }
    if !block.is_empty() {
        each(&block)?;
    }
    Ok(frames)
}

/// Decodes a FLAC file's frames (see [`read_mono_blocks`]); returns the frames decoded.
/// A FLAC frame holds at most 65 535 samples per channel, so a block is at most that.
fn decode_flac<E: From<AudioError>>(
    path: &Path,
    info: &WavInfo,
    each: &mut BlockSink<'_, E>,
) -> Result<u64, E> {
    let error = |kind: AudioErrorKind| E::from(AudioError::new(path, kind));
    let mut reader = claxon::FlacReader::open(path).map_err(|e| error(e.into()))?;
    let bits = reader.streaminfo().bits_per_sample;
    let scale = 1.0 / (1u64 << bits.saturating_sub(1)) as f32;
    let mut frames = 0u64;
    let mut mono = Vec::with_capacity(BLOCK_FRAMES);
    let mut buffer = Vec::new();
    let mut blocks = reader.blocks();
    while let Some(block) = blocks
        .read_next_or_eof(std::mem::take(&mut buffer))
        .map_err(|e| error(e.into()))?
    {
        if block.channels() != u32::from(info.channels) {
            return Err(error(AudioErrorKind::FrameChannels {
                found: block.channels(),
                declared: info.channels,
            }));
        }
        frames += u64::from(block.duration());
        if frames > info.frames {
            return Err(error(AudioErrorKind::MoreFrames {
                declared: info.frames,
            }));
        }
        mono.clear();
        mono.resize(block.duration() as usize, 0.0);
        for channel in 0..block.channels() {
            for (m, &v) in mono.iter_mut().zip(block.channel(channel)) {
                *m += v as f32 * scale;
            }
        }
        let channels = f32::from(info.channels);
        mono.iter_mut().for_each(|m| *m /= channels);
        each(&mono)?;
        buffer = block.into_buffer();
    }
    Ok(frames)
}

/// Reads a whole WAV (or, by its extension, FLAC) file as mono f32 samples in [-1, 1]
/// (channels averaged): for short clips (tests, fuzzing); models go window by window
/// ([`for_each_window`]). A file of more than [`MAX_WINDOW_FRAMES`] frames is refused.
pub fn read_mono(path: &Path) -> Result<(WavInfo, Vec<f32>), AudioError> {
    let info = audio_info(path)?;
    if info.frames > MAX_WINDOW_FRAMES as u64 {
        let too_long = AudioErrorKind::TooLongToReadAtOnce {
            frames: info.frames,
            max: MAX_WINDOW_FRAMES,
        };
        return Err(AudioError::new(path, too_long));
    }
    let mut samples = Vec::with_capacity(info.frames as usize);
    read_mono_blocks::<AudioError>(path, &mut |block| {
        samples.extend_from_slice(block);
        Ok(())
    })?;
    Ok((info, samples))
}

/// Copies a window's samples into `buffer` (a model's input), zero-padding what they
/// lack.
pub fn fill_window(buffer: &mut [f32], samples: &[f32]) {
    let n = samples.len().min(buffer.len());
    buffer[..n].copy_from_slice(&samples[..n]);
    buffer[n..].fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{check_header, wav_info};
    use crate::testing;

    #[test]
    fn reads_header_and_mixes_to_mono() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        testing::write_wav(&path, 8000, 2, 0.5, |_| 0.5);
        let info = wav_info(&path).unwrap();
        assert_eq!(
            info,
            WavInfo {
                samplerate: 8000,
                channels: 2,
                frames: 4000
            }
        );
        assert!((info.duration_seconds() - 0.5).abs() < 1e-9);
        let (_, mono) = read_mono(&path).unwrap();
        assert_eq!(mono.len(), 4000);
        assert!((mono[0] - 0.5).abs() < 1e-3);
    }

    #[test]
    fn rejects_a_file_that_is_not_wav() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.wav");
        std::fs::write(&path, b"not a wav file").unwrap();
        let err = wav_info(&path).unwrap_err().to_string();
        assert!(err.contains("bad.wav"), "{err}");
    }

    /// An 8-bit mono WAV of 8000 frames whose header says `rate` (and a byte rate to
    /// match, which hound checks: 8 bits, so that 4 GHz still fits in its 32 bits).
    fn wav_declaring(dir: &Path, rate: u32) -> std::path::PathBuf {
        let path = dir.join(format!("declares-{rate}.wav"));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        (0..8000).for_each(|i| writer.write_sample((i % 200 - 100) as i8).unwrap());
        writer.finalize().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[24..28].copy_from_slice(&rate.to_le_bytes());
        bytes[28..32].copy_from_slice(&rate.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn headers_outside_the_limits_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        for (rate, limit) in [
            (
                4_000_000_000,
                "sample rate of 4000000000 Hz is outside the limits (1000 to 1000000 Hz)",
            ),
            (2_000_000, "sample rate of 2000000 Hz is outside the limits"),
            (500, "sample rate of 500 Hz is outside the limits"),
            (0, "sample rate of 0 Hz"),
        ] {
            let path = wav_declaring(dir.path(), rate);
            for err in [
                wav_info(&path).unwrap_err(),
                read_mono_blocks::<AudioError>(&path, &mut |_| panic!("decoded")).unwrap_err(),
            ] {
                assert!(
                    err.to_string().contains(limit) && err.to_string().contains("declares-"),
                    "{err}"
                );
            }
        }
        assert!(
            check_header(48_000, 33, 16, 10)
                .unwrap_err()
                .to_string()
                .contains("33 channels are outside the limits (1 to 32)")
        );
        assert!(
            check_header(48_000, 0, 16, 10)
                .unwrap_err()
                .to_string()
                .contains("0 channels")
        );
        assert!(
            check_header(48_000, 1, 64, 10)
                .unwrap_err()
                .to_string()
                .contains("64 bits per sample are outside the limits (4 to 32)")
        );
        let long = check_header(384_000, 2, 16, 1 << 32)
            .unwrap_err()
            .to_string();
        assert!(
            long.contains("over the limit of 4294967296 samples (1.6 h at this rate"),
            "{long}"
        );
        check_header(384_000, 1, 16, 1 << 32).unwrap();
        check_header(1_000_000, 32, 32, 1 << 27).unwrap();
    }

    #[test]
    fn a_long_flac_is_decoded_in_bounded_blocks_never_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.flac");
        // 2 min at 384 kHz: 46 million samples.
        let frames = 120 * 384_000;
        std::fs::write(&path, testing::silent_flac(384_000, 1, 16, frames)).unwrap();
        let (mut blocks, mut decoded, mut largest) = (0, 0u64, 0);
        read_mono_blocks::<AudioError>(&path, &mut |block| {
            (blocks, decoded, largest) = (
                blocks + 1,
                decoded + block.len() as u64,
                largest.max(block.len()),
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(decoded, frames);
        assert!(
            largest <= BLOCK_FRAMES && blocks > 1,
            "{blocks} blocks, the largest {largest}"
        );
        let whole = read_mono(&path).unwrap_err().to_string();
        assert!(whole.contains("too long to read at once"), "{whole}");
    }
}

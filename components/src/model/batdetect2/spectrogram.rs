//! The spectrogram BatDetect2's network reads, computed as batdetect2 1.3.1 does
//! (`batdetect2.utils.audio_utils` and `detector_utils.compute_spectrogram`; the plain-numpy
//! recipe `models/batdetect2/reference/reference_preprocess.py` is what this ports, and
//! every parameter is in `models/batdetect2/model.json`).
//!
//! From a chunk of mono audio at 256 kHz:
//! - zero-pad its end so that the resized spectrogram is a multiple of 32 columns wide, and
//!   at least 64 ([`padded_len`]);
//! - magnitude STFT: 512-sample periodic Hann windows every 128 samples (2 ms, 75 %
//!   overlap), no centring;
//! - keep FFT bins 240 down to 21 (120 kHz to 10.5 kHz; the highest frequency in row 0):
//!   220 rows;
//! - PCEN (librosa's defaults at a nominal `sr = 25.6 kHz`, as the library calls it) on the
//!   magnitudes scaled by 2^31;
//! - denoise: subtract each row's mean over time, clip at 0;
//! - bilinear resize (`align_corners = false`, no antialiasing, as PyTorch's
//!   `F.interpolate`) to 128 rows and half the columns.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// The sample rate the network's spectrograms are made at.
pub const SAMPLE_RATE: u32 = 256_000;
/// STFT window length (2 ms at 256 kHz) and hop (25 % of it: 75 % overlap).
const N_FFT: usize = 512;
const HOP: usize = 128;
/// The samples before the first hop: `N_FFT - HOP`.
const OVERLAP: usize = N_FFT - HOP;
/// The FFT bins kept: `round(120 kHz × 2 ms)` down to `round(10 kHz × 2 ms) + 1`.
const TOP_BIN: usize = 240;
const BOTTOM_BIN: usize = 21;
const CROPPED_ROWS: usize = TOP_BIN - BOTTOM_BIN + 1;
/// The height of the network's input.
pub const HEIGHT: usize = 128;
/// The STFT columns per spectrogram column after resizing (`resize_factor` 0.5).
pub const COLUMNS_PER_PIXEL: usize = 2;
/// The network's width must be a multiple of this (its down-sampling factor).
pub const WIDTH_MULTIPLE: usize = 32;
/// The library pads shorter chunks to this width (`spec_divide_factor / resize_factor`).
const MIN_WIDTH: usize = 64;
/// PCEN's input scaling (the library multiplies magnitudes by 2^31).
const PCEN_INPUT_SCALE: f32 = 2_147_483_648.0;
/// PCEN's smoothing coefficient: librosa's `b` for a 0.4 s time constant at its default
/// hop of 512 samples and the nominal rate 25.6 kHz the library passes (`sr / 10`):
/// t = 20 frames, b = (√(1 + 4t²) − 1) / (2t²).
const PCEN_B: f64 = 0.048_765_625_812_791_56;
/// librosa's PCEN defaults: the smoother starts at 1.0; gain, bias, power, eps.
const PCEN_INITIAL_SMOOTHER: f64 = 1.0;
const PCEN_GAIN: f64 = 0.98;
const PCEN_BIAS: f64 = 2.0;
const PCEN_POWER: f64 = 0.5;
const PCEN_EPS: f64 = 1e-6;

/// The resized width of the spectrogram of `len` samples, before padding (the library's
/// `compute_spectrogram_width`: Python's floor division, then `int()` toward zero).
fn spectrogram_width(len: usize) -> i64 {
    let frames = (len as i64 - OVERLAP as i64).div_euclid(HOP as i64);
    // int(frames × 0.5) truncates toward zero, also for negative frame counts.
    frames / COLUMNS_PER_PIXEL as i64
}

/// The number of samples a chunk of `len` samples is zero-padded to (never fewer than
/// `len`): the library's `pad_audio`. A chunk whose width is already a multiple of 32 (and
/// at least 64) is left as it is.
pub fn padded_len(len: usize) -> usize {
    let width = spectrogram_width(len);
    let target = if width < MIN_WIDTH as i64 {
        MIN_WIDTH
    } else if width % WIDTH_MULTIPLE as i64 == 0 {
        return len;
    } else {
        (width as usize).div_ceil(WIDTH_MULTIPLE) * WIDTH_MULTIPLE
    };
    (target * COLUMNS_PER_PIXEL * HOP + OVERLAP).max(len)
}

/// The width of the network input for a chunk of `len` samples (after padding).
pub fn padded_width(len: usize) -> usize {
    (1 + (padded_len(len) - N_FFT) / HOP) / COLUMNS_PER_PIXEL
}

/// A spectrogram of `HEIGHT` rows (row 0 the highest frequency) and `width` columns, row
/// by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram {
    pub width: usize,
    pub values: Vec<f32>,
}

/// Makes spectrograms; holds the FFT plan and the window.
pub struct SpectrogramMaker {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
}

impl std::fmt::Debug for SpectrogramMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectrogramMaker")
            .field("n_fft", &N_FFT)
            .finish()
    }
}

impl Default for SpectrogramMaker {
    fn default() -> Self {
        SpectrogramMaker::new()
    }
}

impl SpectrogramMaker {
    pub fn new() -> SpectrogramMaker {
        let window = acoupi_audio::hann(N_FFT);
        SpectrogramMaker {
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
            window,
        }
    }

    /// The network input for a chunk of audio at 256 kHz (padded here as the library does).
    pub fn spectrogram(&self, chunk: &[f32]) -> Spectrogram {
        let mut audio = chunk.to_vec();
        audio.resize(padded_len(chunk.len()), 0.0);
        let cropped = self.cropped_magnitudes(&audio);
        let frames = cropped.len() / CROPPED_ROWS;
        let mut pcen = pcen(&cropped, frames);
        denoise(&mut pcen, frames);
        let width = frames / COLUMNS_PER_PIXEL;
        Spectrogram {
            width,
            values: resize_bilinear(&pcen, CROPPED_ROWS, frames, HEIGHT, width),
        }
    }

    /// STFT magnitudes of the kept bins, `CROPPED_ROWS` rows (row 0 = bin 240) of one
    /// value per frame.
    fn cropped_magnitudes(&self, audio: &[f32]) -> Vec<f32> {
        let frames = if audio.len() >= N_FFT {
            1 + (audio.len() - N_FFT) / HOP
        } else {
            0
        };
        let mut out = vec![0.0f32; CROPPED_ROWS * frames];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        for frame in 0..frames {
            let samples = &audio[frame * HOP..frame * HOP + N_FFT];
            input
                .iter_mut()
                .zip(samples.iter().zip(&self.window))
                .for_each(|(x, (s, w))| *x = s * w);
            // The lengths are those the plan made, so this cannot fail.
            if self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .is_err()
            {
                continue;
            }
            for row in 0..CROPPED_ROWS {
                out[row * frames + frame] = spectrum[TOP_BIN - row].norm();
            }
        }
        out
    }
}

/// Per-channel energy normalisation along time of each row (librosa's `pcen` with the
/// library's settings), in f64 and returned as f32 as librosa's output is cast.
fn pcen(magnitudes: &[f32], frames: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; magnitudes.len()];
    let offset = PCEN_BIAS.powf(PCEN_POWER);
    for (row_in, row_out) in magnitudes
        .chunks_exact(frames.max(1))
        .zip(out.chunks_exact_mut(frames.max(1)))
    {
        let mut smooth = PCEN_INITIAL_SMOOTHER;
        for (x, y) in row_in.iter().zip(row_out.iter_mut()) {
            let energy = f64::from(x * PCEN_INPUT_SCALE);
            smooth = PCEN_B * energy + (1.0 - PCEN_B) * smooth;
            *y = ((energy * (PCEN_EPS + smooth).powf(-PCEN_GAIN) + PCEN_BIAS).powf(PCEN_POWER)
                - offset) as f32;
        }
    }
    out
}

/// Subtracts from each row its mean over time and clips at 0.
fn denoise(values: &mut [f32], frames: usize) {
    if frames == 0 {
        return;
    }
    for row in values.chunks_exact_mut(frames) {
        let mean = (row.iter().map(|v| f64::from(*v)).sum::<f64>() / frames as f64) as f32;
        row.iter_mut().for_each(|v| *v = (*v - mean).max(0.0));
    }
}

/// For each output index of a linear resize from `n_in` to `n_out` (half-pixel centres,
/// `align_corners = false`): the two input indices and the weight of the second.
fn linear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f32 / n_out as f32;
    (0..n_out)
        .map(|i| {
            let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(n_in.saturating_sub(1));
            let i1 = (i0 + 1).min(n_in.saturating_sub(1));
            (i0, i1, src - i0 as f32)
        })
        .collect()
}

/// Bilinear resize of a `rows × cols` image (row by row) to `out_rows × out_cols`.
fn resize_bilinear(
    values: &[f32],
    rows: usize,
    cols: usize,
    out_rows: usize,
    out_cols: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; out_rows * out_cols];
    if rows == 0 || cols == 0 {
        return out;
    }
    let row_taps = linear_taps(rows, out_rows);
    let col_taps = linear_taps(cols, out_cols);
    let mut mixed_row = vec![0.0f32; cols];
    for (out_row, &(r0, r1, rl)) in out.chunks_exact_mut(out_cols).zip(&row_taps) {
        let (a, b) = (
            &values[r0 * cols..(r0 + 1) * cols],
            &values[r1 * cols..(r1 + 1) * cols],
        );
        mixed_row
            .iter_mut()
            .zip(a.iter().zip(b))
            .for_each(|(m, (a, b))| *m = a * (1.0 - rl) + b * rl);
        for (o, &(c0, c1, cl)) in out_row.iter_mut().zip(&col_taps) {
            *o = mixed_row[c0] * (1.0 - cl) + mixed_row[c1] * cl;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod testing {
    //! The reference case in the repository's `models/batdetect2/reference/`.
    use std::path::Path;

    pub const REFERENCE_DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/batdetect2/reference"
    );

    /// A raw little-endian f32 file of the reference case; panics naming a missing file.
    pub fn read_f32(name: &str) -> Vec<f32> {
        let path = Path::new(REFERENCE_DIR).join(name);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read the reference file {}: {e}", path.display()));
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::read_f32;
    use super::*;

    /// The spectrogram of the 1 s reference clip against the library's.
    #[test]
    fn the_reference_clip_gives_the_library_spectrogram() {
        let audio = read_f32("ref_audio_256k_1x256000.f32");
        let want = read_f32("ref_spec_1x1x128x1024.f32");
        let spec = SpectrogramMaker::new().spectrogram(&audio);
        assert_eq!(spec.width, 1024);
        let max_diff = crate::model::reference::max_abs_difference(&spec.values, &want).unwrap();
        let max = want.iter().copied().fold(0.0f32, f32::max);
        eprintln!(
            "spectrogram: max abs difference from the library {max_diff:e} (values up to {max})"
        );
        assert!(
            max_diff <= SPECTROGRAM_TOLERANCE,
            "max abs difference {max_diff:e}"
        );
    }

    use crate::model::batdetect2::reference::SPECTROGRAM_TOLERANCE;

    #[test]
    fn padding_follows_the_library() {
        // (samples, padded samples, resized width)
        let table = [
            (256_000, 262_528, 1024), // 1 s: width 998 → 1024
            (768_000, 770_432, 3008), // 3 s: width 2998 → 3008
            (262_528, 262_528, 1024), // already a multiple of 32
            (262_656, 262_656, 1024), // 2049 frames still give width 1024: not padded
            (0, 16_768, 64),          // empty: the minimum width, 64
            (1_000, 16_768, 64),      // short: the minimum width
            (16_768, 16_768, 64),     // exactly the minimum
            (20_000, 24_960, 96),     // 153 frames: width 76 → 96
        ];
        for (len, want, width) in table {
            assert_eq!(padded_len(len), want, "{len} samples");
            assert_eq!(padded_width(len), width, "{len} samples");
        }
    }

    #[test]
    fn resize_keeps_constants_and_interpolates_half_pixels() {
        assert_eq!(resize_bilinear(&[2.0; 12], 3, 4, 2, 2), [2.0; 4]);
        // 1 × 4 → 1 × 2: each output averages a pair of inputs.
        assert_eq!(
            resize_bilinear(&[0.0, 2.0, 4.0, 6.0], 1, 4, 1, 2),
            [1.0, 5.0]
        );
        // 1 × 2 → 1 × 4: the edges are clamped.
        assert_eq!(
            resize_bilinear(&[0.0, 4.0], 1, 2, 1, 4),
            [0.0, 1.0, 3.0, 4.0]
        );
    }

    #[test]
    fn silence_gives_a_zero_spectrogram() {
        let spec = SpectrogramMaker::new().spectrogram(&vec![0.0; 25_600]);
        assert_eq!(spec.width, 128);
        assert_eq!(spec.values.len(), HEIGHT * 128);
        assert!(spec.values.iter().all(|v| *v == 0.0));
    }
}

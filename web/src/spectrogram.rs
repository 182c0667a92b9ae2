//! Rendering a Recording's spectrogram as a PNG: log magnitude (dB, the loudest pixel at
//! the top of the colour map and 90 dB below it at the bottom), a viridis-like colour
//! map, and each detection drawn on it: a box (time × frequency) in [`BOX_COLOUR`], or,
//! for a presence-only detection, a band of that colour along the top over the whole
//! clip. Labels are not drawn in the PNG: the recording page lays them over it in an
//! inline SVG using [`Geometry`] (the same mapping), so text stays sharp and selectable.
//!
//! Time runs left to right over `[start, end)` (one column per pixel, each the FFT of a
//! Hann-windowed frame centred on the column's time: acoupi-audio's one Hann window);
//! frequency bottom to top, linear from 0 Hz to the Nyquist frequency, each row the
//! loudest FFT bin it covers. The FFT length follows the height (the next power of two
//! of twice the rows, 256 to 4096). One FFT plan and one set of buffers serve every
//! column; the file is decoded block by block (acoupi-audio's bounded reader) and only
//! the frames the next columns need are kept, so memory is the image's whatever the
//! recording's length.

use std::path::Path;

use acoupi_audio::{AudioError, audio_info, hann, read_mono_blocks};
use realfft::RealFftPlanner;
use realfft::num_complex::Complex32;

use crate::WebError;
use crate::media::playback::Stop;

/// The colour of detection boxes and presence bands (no colour of the map).
pub(crate) const BOX_COLOUR: [u8; 3] = [255, 48, 48];
/// Image sizes accepted.
pub(crate) const WIDTHS: std::ops::RangeInclusive<u32> = 64..=2000;
pub(crate) const HEIGHTS: std::ops::RangeInclusive<u32> = 32..=1000;
/// The dynamic range shown.
const RANGE_DB: f32 = 90.0;
/// A presence band's height (pixels).
pub(crate) const BAND: u32 = 4;

/// Where time and frequency fall in the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Geometry {
    pub width: u32,
    pub height: u32,
    /// Seconds from the recording's start.
    pub start: f64,
    pub end: f64,
    /// Half the sample rate (Hz): the top row.
    pub nyquist: f64,
}

impl Geometry {
    /// The x of a time (seconds from the recording's start).
    pub(crate) fn x(&self, t: f64) -> f64 {
        (t - self.start) / (self.end - self.start) * f64::from(self.width)
    }

    /// The y of a frequency (Hz); 0 is the top.
    pub(crate) fn y(&self, f: f64) -> f64 {
        f64::from(self.height) * (1.0 - f / self.nyquist)
    }
}

/// What is drawn over the spectrogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mark {
    /// A box: seconds from the recording's start, Hz.
    Box {
        start: f64,
        end: f64,
        low: f64,
        high: f64,
    },
    /// A presence-only detection.
    Presence,
}

/// The PNG of `[start, end)` seconds of the file at `path` (`end`: `None` for the whole
/// recording), `width` × `height`, with `marks` drawn.
pub(crate) fn render(
    path: &Path,
    width: u32,
    height: u32,
    start: f64,
    end: Option<f64>,
    marks: &[Mark],
) -> Result<Vec<u8>, WebError> {
    let audio = |e: AudioError| WebError::Internal(e.to_string());
    let info = audio_info(path).map_err(audio)?;
    let rate = f64::from(info.samplerate);
    let end = end.unwrap_or(info.duration_seconds());
    let geometry = Geometry {
        width,
        height,
        start,
        end,
        nyquist: rate / 2.0,
    };
    let (w, h) = (width as usize, height as usize);
    let nfft = (2 * h).next_power_of_two().clamp(256, 4096);
    let half = (nfft / 2) as i64;
    // Each column's first frame (its window's start, possibly before the file).
    let span = (end - start) * rate;
    let first_frame = |x: usize| -> i64 {
        (start * rate + (x as f64 + 0.5) * span / w as f64).round() as i64 - half
    };
    // The rows' bins.
    let bins = nfft / 2;
    let rows: Vec<(usize, usize)> = (0..h)
        .map(|y| {
            let lo = ((h - 1 - y) * bins) / h;
            let hi = (((h - y) * bins).div_ceil(h)).clamp(lo + 1, bins + 1);
            (lo, hi)
        })
        .collect();
    let window = hann(nfft);
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(nfft);
    let mut input = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut scratch = fft.make_scratch_vec();
    let mut db = vec![0.0f32; w * h];
    let mut column = |x: usize, base: i64, kept: &[f32]| {
        let from = first_frame(x);
        for (i, v) in input.iter_mut().enumerate() {
            let at = from + i as i64 - base;
            let sample = usize::try_from(at).ok().and_then(|a| kept.get(a)).copied();
            *v = sample.unwrap_or(0.0) * window[i];
        }
        let done = fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch);
        if done.is_err() {
            spectrum.fill(Complex32::new(0.0, 0.0));
        }
        for (y, &(lo, hi)) in rows.iter().enumerate() {
            let power = spectrum[lo..hi]
                .iter()
                .fold(0.0f32, |m, c| m.max(c.norm_sqr()));
            db[y * w + x] = 10.0 * (power + 1e-20).log10();
        }
    };
    // Decode, keeping from the next column's window on.
    let mut kept: Vec<f32> = Vec::with_capacity(acoupi_audio::BLOCK_FRAMES + nfft);
    let (mut base, mut at, mut next) = (0i64, 0i64, 0usize);
    let read = read_mono_blocks::<Stop>(path, &mut |block| {
        let from = at;
        at += block.len() as i64;
        if kept.is_empty() {
            let skip = (first_frame(next) - from).clamp(0, block.len() as i64);
            base = from + skip;
            kept.extend_from_slice(&block[skip as usize..]);
        } else {
            kept.extend_from_slice(block);
        }
        while next < w && first_frame(next) + nfft as i64 <= at {
            column(next, base, &kept);
            next += 1;
        }
        if next == w {
            return Err(Stop::Done);
        }
        let drop = (first_frame(next) - base).clamp(0, kept.len() as i64);
        kept.drain(..drop as usize);
        base += drop;
        Ok(())
    });
    if let Err(Stop::Audio(e)) = read {
        return Err(audio(e));
    }
    while next < w {
        column(next, base, &kept);
        next += 1;
    }
    let mut rgb = colour(&db);
    for mark in marks {
        draw(&mut rgb, &geometry, mark, marks);
    }
    encode(width, height, &rgb)
}

/// The colour map (viridis, 9 stops) over dB values.
fn colour(db: &[f32]) -> Vec<u8> {
    const STOPS: [[f32; 3]; 9] = [
        [68.0, 1.0, 84.0],
        [71.0, 44.0, 122.0],
        [59.0, 81.0, 139.0],
        [44.0, 113.0, 142.0],
        [33.0, 144.0, 141.0],
        [39.0, 173.0, 129.0],
        [92.0, 200.0, 99.0],
        [170.0, 220.0, 50.0],
        [253.0, 231.0, 37.0],
    ];
    let lut: Vec<[u8; 3]> = (0..256)
        .map(|i| {
            let t = i as f32 / 255.0 * 8.0;
            let k = (t.floor() as usize).min(7);
            let f = t - k as f32;
            let c = |j: usize| (STOPS[k][j] + (STOPS[k + 1][j] - STOPS[k][j]) * f).round() as u8;
            [c(0), c(1), c(2)]
        })
        .collect();
    let top = db.iter().copied().fold(f32::MIN, f32::max);
    let floor = top - RANGE_DB;
    let mut rgb = Vec::with_capacity(db.len() * 3);
    for &v in db {
        let i = (((v - floor) / RANGE_DB).clamp(0.0, 1.0) * 255.0) as usize;
        rgb.extend_from_slice(&lut[i]);
    }
    rgb
}

/// Draws one mark (a presence band's row is its rank among the presence marks).
fn draw(rgb: &mut [u8], g: &Geometry, mark: &Mark, marks: &[Mark]) {
    let (w, h) = (g.width as i64, g.height as i64);
    let mut fill = |x0: i64, y0: i64, x1: i64, y1: i64| {
        for y in y0.max(0)..y1.min(h) {
            for x in x0.max(0)..x1.min(w) {
                let i = ((y * w + x) * 3) as usize;
                rgb[i..i + 3].copy_from_slice(&BOX_COLOUR);
            }
        }
    };
    match *mark {
        Mark::Box {
            start,
            end,
            low,
            high,
        } => {
            let (x0, x1) = (g.x(start).floor() as i64, g.x(end).ceil() as i64);
            let (y0, y1) = (g.y(high).floor() as i64, g.y(low).ceil() as i64);
            let (x1, y1) = (x1.max(x0 + 2), y1.max(y0 + 2));
            if x1 <= 0 || x0 >= w || y1 <= 0 || y0 >= h {
                return;
            }
            fill(x0, y0, x1, y0 + 2);
            fill(x0, y1 - 2, x1, y1);
            fill(x0, y0, x0 + 2, y1);
            fill(x1 - 2, y0, x1, y1);
        }
        Mark::Presence => {
            let rank = marks
                .iter()
                .take_while(|m| !std::ptr::eq(*m, mark))
                .filter(|m| matches!(m, Mark::Presence))
                .count() as i64;
            let y0 = rank * i64::from(BAND + 1);
            fill(0, y0, w, y0 + i64::from(BAND));
        }
    }
}

fn encode(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, WebError> {
    let error = |e: png::EncodingError| WebError::Internal(format!("encoding a spectrogram: {e}"));
    let mut bytes = Vec::with_capacity(rgb.len() / 2);
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(error)?;
    writer.write_image_data(rgb).map_err(error)?;
    writer.finish().map_err(error)?;
    Ok(bytes)
}

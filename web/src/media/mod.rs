//! A Recording's audio and what is made from it, below the media endpoints
//! (`api/media.rs`): opening its file safely ([`file`]), HTTP Range ([`range`]), clips
//! and bat playback ([`playback`]) and the spectrogram cache ([`cache`]). The rendering
//! itself is `spectrogram.rs`.

pub(crate) mod cache;
pub(crate) mod file;
pub(crate) mod playback;
pub(crate) mod range;

#[cfg(test)]
mod tests;

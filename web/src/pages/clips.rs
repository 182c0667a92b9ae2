//! A detection's clip as Today and Species list it (time, species, confidence, a play
//! button and a small spectrogram from the media API), and percent-encoding for the
//! species names in links.

use chrono_tz::Tz;
use maud::{Markup, html};

use crate::data::species::{Clip, local};

/// `text` with everything but RFC 3986's unreserved characters percent-encoded (for a
/// path segment or a query value).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The species page of `species`.
pub(crate) fn species_href(species: &str) -> String {
    format!("/species/{}", encode(species))
}

/// One clip, as a list item.
pub(crate) fn clip(clip: &Clip, tz: Tz) -> Markup {
    let range = format!(
        "start={:.3}&end={:.3}",
        clip.start,
        clip.end.max(clip.start)
    );
    let audio = format!("/api/v1/recordings/{}/audio?{range}", clip.recording_id);
    let spectrogram = format!(
        "/api/v1/recordings/{}/spectrogram.png?{range}&width=240&height=80",
        clip.recording_id
    );
    let time = local(tz, clip.time_us);
    html! {
        li class="clip" data-detection=(clip.id) {
            time datetime=(time.to_rfc3339()) { (time.format("%Y-%m-%d %H:%M:%S")) }
            " "
            a href=(species_href(&clip.species)) { (clip.species) }
            " "
            span class="confidence" { (format!("{:.2}", clip.confidence)) }
            " "
            a href=(format!("/recordings/{}", clip.recording_id)) { "recording" }
            br;
            audio controls preload="none" src=(audio) {}
            img class="spectrogram" width="240" height="80" loading="lazy" alt="spectrogram"
                src=(spectrogram);
        }
    }
}

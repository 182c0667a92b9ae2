//! GUANO metadata (the bat-acoustics standard, <https://github.com/riggsd/guano-spec>, version 1.0)
//! in WAV files: reading the `guan` RIFF chunk, and writing one for a Recording as acoupi does (its
//! documentation, Reference → Tasks → Recording: <https://acoupi.github.io/acoupi/>).
//!
//! The chunk holds UTF-8 text: a first line `GUANO|Version: 1.0`, then one `Key: value`
//! per line; a key may carry a namespace (`acoupi|Deployment`); a newline inside a value is
//! written `\n`. Writing replaces any `guan` chunk already in the file, keeping its fields
//! that we do not set (an AudioMoth's, say), and rewrites the file through a temporary
//! file (named by the caller) and a rename, so a crash never leaves a half-written WAV.
//! The fields acoupi writes for a recording come from plain values ([`RecordingFields`]);
//! the engine fills them from its Recording and Deployment.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Why GUANO could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum GuanoError {
    #[error("cannot read or write `{}`: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` is not a RIFF/WAVE file: {reason}", path.display())]
    NotWav {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// The GUANO fields of a file, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guano {
    fields: Vec<(String, String)>,
}

impl Guano {
    /// The value of `key` (`Namespace|Key` for a namespaced one).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key`, replacing its value where it is already set.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value,
            None => self.fields.push((key.to_string(), value)),
        }
    }

    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// `Timestamp`: with its UTC offset when it has one; a time without an offset (the
    /// recorder's local time) is read in `local`.
    pub fn timestamp(&self, local: chrono_tz::Tz) -> Option<DateTime<Utc>> {
        let text = self.get("Timestamp")?.trim();
        if let Ok(zoned) = DateTime::parse_from_rfc3339(text) {
            return Some(zoned.with_timezone(&Utc));
        }
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .and_then(|naive| local.from_local_datetime(&naive).earliest())
            .map(|t| t.with_timezone(&Utc))
    }

    /// `TE`, the time expansion factor.
    pub fn time_expansion(&self) -> Option<f64> {
        self.get("TE")?
            .trim()
            .parse()
            .ok()
            .filter(|te: &f64| te.is_finite() && *te > 0.0)
    }

    /// `acoupi|Gaps` and `acoupi|Lost Frames` (audio lost inside or just before the
    /// recording); 0 when absent.
    pub fn gaps(&self) -> (u32, u64) {
        let number = |key: &str| {
            self.get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (
            u32::try_from(number("acoupi|Gaps")).unwrap_or(u32::MAX),
            number("acoupi|Lost Frames"),
        )
    }

    /// `Loc Position` as (latitude, longitude).
    pub fn position(&self) -> Option<(f64, f64)> {
        let mut parts = self
            .get("Loc Position")?
            .split_whitespace()
            .map(str::parse::<f64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(lat)), Some(Ok(lon))) => Some((lat, lon)),
            _ => None,
        }
    }

    /// The fields acoupi writes for a recording (the recording task adds `Model`, the
    /// recorder's device, when the recorder names one): `Timestamp` (created_on in the
    /// deployment timezone, to the microsecond), `Make`, `Firmware Version`, `Serial`
    /// (the device id), `Samplerate`, `Length`, `TE` when not 1, `Loc Position` when the
    /// deployment has one, `acoupi|Deployment`, `acoupi|Deployment ID`,
    /// `acoupi|Recording ID`, and `acoupi|Gaps` and `acoupi|Lost Frames` when audio was
    /// lost inside or just before the recording.
    pub fn for_recording(recording: &RecordingFields<'_>) -> Guano {
        let mut guano = Guano::default();
        let local = recording
            .created_on
            .with_timezone(&recording.timezone)
            .fixed_offset();
        guano.set(
            "Timestamp",
            local.format("%Y-%m-%dT%H:%M:%S%.6f%:z").to_string(),
        );
        guano.set("Make", "acoupi");
        guano.set(
            "Firmware Version",
            concat!("acoupi-rs ", env!("CARGO_PKG_VERSION")),
        );
        guano.set("Serial", recording.device_id);
        guano.set("Samplerate", recording.samplerate.to_string());
        guano.set("Length", format!("{}", recording.duration));
        if recording.time_expansion != 1.0 {
            guano.set("TE", format!("{}", recording.time_expansion));
        }
        if let Some((lat, lon)) = recording.position {
            guano.set("Loc Position", format!("{lat} {lon}"));
        }
        guano.set("acoupi|Deployment", recording.deployment);
        guano.set("acoupi|Deployment ID", recording.deployment_id);
        guano.set("acoupi|Recording ID", recording.recording_id);
        if recording.gaps > 0 {
            guano.set("acoupi|Gaps", recording.gaps.to_string());
            guano.set("acoupi|Lost Frames", recording.lost_frames.to_string());
        }
        guano
    }

    /// The chunk's text.
    pub fn to_text(&self) -> String {
        let mut text = String::from("GUANO|Version: 1.0\n");
        for (key, value) in self.fields.iter().filter(|(k, _)| k != "GUANO|Version") {
            text.push_str(&format!("{key}: {}\n", value.replace('\n', "\\n")));
        }
        text
    }

    /// Parses a chunk's text (lines without `: ` are skipped).
    pub fn parse(text: &str) -> Guano {
        let mut guano = Guano::default();
        for line in text.lines() {
            if let Some((key, value)) = line.split_once(':') {
                let key = key.trim();
                if !key.is_empty() {
                    guano.set(key, value.trim().replace("\\n", "\n"));
                }
            }
        }
        guano
    }
}

/// What acoupi writes into a recording's GUANO chunk ([`Guano::for_recording`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingFields<'a> {
    /// When the recording started.
    pub created_on: DateTime<Utc>,
    /// The deployment's timezone, the `Timestamp`'s offset.
    pub timezone: chrono_tz::Tz,
    /// The station's device id (`Serial`).
    pub device_id: &'a str,
    pub samplerate: u32,
    /// Seconds.
    pub duration: f64,
    pub time_expansion: f64,
    /// The deployment's (latitude, longitude), when it has both.
    pub position: Option<(f64, f64)>,
    /// The deployment's name.
    pub deployment: &'a str,
    pub deployment_id: &'a str,
    pub recording_id: &'a str,
    /// Gaps in the audio and the frames they lost.
    pub gaps: u32,
    pub lost_frames: u64,
}

/// A RIFF chunk: its id and the byte range of its data in the file.
struct Chunk {
    id: [u8; 4],
    start: usize,
    end: usize,
}

fn chunks(bytes: &[u8], path: &Path) -> Result<Vec<Chunk>, GuanoError> {
    let not_wav = |reason: &str| GuanoError::NotWav {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(not_wav("no RIFF/WAVE header"));
    }
    let mut found = Vec::new();
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let start = at + 8;
        // A data chunk whose size overruns the file (a recorder that never finished its
        // header) ends the walk: nothing after it can be found.
        let end = start
            .checked_add(size)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| not_wav("a chunk runs past the end of the file"))?;
        found.push(Chunk { id, start, end });
        at = end + (size & 1);
    }
    Ok(found)
}

/// The GUANO metadata of a WAV file; `None` when it has none.
pub fn read(path: &Path) -> Result<Option<Guano>, GuanoError> {
    let bytes = std::fs::read(path).map_err(|source| GuanoError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let found = chunks(&bytes, path)?;
    Ok(found
        .iter()
        .find(|c| &c.id == b"guan")
        .map(|c| Guano::parse(&String::from_utf8_lossy(&bytes[c.start..c.end]))))
}

/// Writes `guano` into the WAV file: replaces any `guan` chunk (keeping its fields that
/// `guano` does not set), appended after the other chunks; the new file is written at
/// `partial` (beside `path`, on its filesystem) and renamed over it.
pub fn write(path: &Path, partial: &Path, guano: &Guano) -> Result<(), GuanoError> {
    let io = |source| GuanoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let found = chunks(&bytes, path)?;
    let mut merged = Guano::default();
    for chunk in found.iter().filter(|c| &c.id == b"guan") {
        for (key, value) in
            Guano::parse(&String::from_utf8_lossy(&bytes[chunk.start..chunk.end])).fields
        {
            merged.set(&key, value);
        }
    }
    for (key, value) in &guano.fields {
        merged.set(key, value.clone());
    }
    let mut out = Vec::with_capacity(bytes.len() + 512);
    out.extend_from_slice(&bytes[0..12]);
    for chunk in found.iter().filter(|c| &c.id != b"guan") {
        out.extend_from_slice(&bytes[chunk.start - 8..chunk.end]);
        if (chunk.end - chunk.start) % 2 == 1 {
            out.push(0);
        }
    }
    let text = merged.to_text();
    out.extend_from_slice(b"guan");
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    if text.len() % 2 == 1 {
        out.push(0);
    }
    let riff_size = u32::try_from(out.len() - 8).map_err(|_| GuanoError::NotWav {
        path: path.to_path_buf(),
        reason: "larger than 4 GiB".into(),
    })?;
    out[4..8].copy_from_slice(&riff_size.to_le_bytes());
    let written = std::fs::File::create(partial).and_then(|mut file| {
        file.write_all(&out)?;
        file.sync_all()
    });
    if let Err(error) = written.and_then(|_| std::fs::rename(partial, path)) {
        let _ = std::fs::remove_file(partial);
        return Err(io(error));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

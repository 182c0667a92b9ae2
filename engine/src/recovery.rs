//! Start-up recovery: before a station starts its stages, the temp folder and the
//! recordings tree are brought in line with the store after a crash or a power cut.
//!
//! - A WAV in the temp folder the store does not know (written by a recorder that was
//!   stopped before the store heard of it) is stored as a recording of the current
//!   deployment when its header reads (time from its GUANO `Timestamp`, else the file's
//!   modification time; its id from the GUANO `acoupi|Recording ID` the recorder wrote,
//!   when that is a valid id no other stored recording has, else a new one), so it is
//!   analysed; one that cannot be read (an empty or cut file) is moved to
//!   `<temp>/quarantine/` with a `<name>.reason.txt` beside it. A name already taken in
//!   the quarantine folder gets a number (`name_2.wav`, as the managers do): nothing
//!   there is overwritten.
//! - Recordings in the temp folder that a detection stage's model has not analysed yet
//!   (a stop with recordings queued) are returned as a backlog, which the station feeds
//!   to those stages first.
//! - A recording the store places in the recordings tree whose file is gone gets its
//!   path cleared (the row stays), unless the recordings root itself is missing (an
//!   unmounted drive: nothing is changed).
//! - Leftover temporary files of acoupi's own names (`<name>.acoupi-partial`, an
//!   interrupted copy, and `<name>.acoupi-guano-partial`, an interrupted GUANO rewrite;
//!   see [`crate::folders::is_partial`]), whose originals are intact, are removed. Any
//!   other name is left alone.
//!
//! Nothing is deleted outside the canonical temp and recordings roots: the walks never
//! follow a symbolic link (each one met is logged as a warning naming it, and left
//! alone), and every deletion goes through the guard of [`crate::folders`], which
//! refuses a `..`, a path outside the roots and any link between root and file. A
//! symlink in place of a WAV in the temp folder is neither stored nor quarantined. A kept
//! recording whose stored path the guard refuses keeps its path (counted as `refused`).
//!
//! Unsent messages need nothing: the store keeps them and messaging sends them; their
//! count is in the report.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use crate::data::{Deployment, Recording};
use crate::store::Store;

/// What recovery found and did, for the one-line report at start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Unknown WAVs in the temp folder, now stored.
    pub stored: usize,
    /// Unreadable WAVs moved to the quarantine folder.
    pub quarantined: usize,
    /// Recordings in the temp folder still to be analysed.
    pub backlog: usize,
    /// Recordings whose kept file was gone; their path is cleared.
    pub missing: usize,
    /// Leftover partial files removed.
    pub partials: usize,
    /// Paths the deletion guard refused (outside the roots, a `..`, a link), left as
    /// they were.
    pub refused: usize,
    /// Messages waiting to be sent.
    pub unsent_messages: u64,
    /// Problems met (each logged).
    pub errors: usize,
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "recovery: {} unstored recordings stored, {} quarantined, {} recordings to analyse, {} missing files cleared, {} partial files removed, {} refused, {} messages to send, {} errors",
            self.stored,
            self.quarantined,
            self.backlog,
            self.missing,
            self.partials,
            self.refused,
            self.unsent_messages,
            self.errors
        )
    }
}

/// The name of the folder (inside the temp folder) unreadable recordings are moved to.
pub const QUARANTINE: &str = "quarantine";

/// Reconciles the folders with the store (see the module docs). Returns the report
/// (without `backlog`) and every recording in the temp folder with the names of the
/// models that have analysed it.
pub fn reconcile(
    temp_dir: &Path,
    recordings_dir: &Path,
    store: &dyn Store,
    deployment: &Deployment,
    timezone: chrono_tz::Tz,
) -> (RecoveryReport, Vec<(Recording, Vec<String>)>) {
    let mut report = RecoveryReport::default();
    remove_partials(&[temp_dir, recordings_dir], &mut report);
    let files = wavs(temp_dir);
    let known = match store.get_recordings_info_by_path(&files) {
        Ok(known) => known,
        Err(error) => {
            report.errors += 1;
            tracing::error!(%error, "recovery: cannot look up the temp folder's recordings");
            return (report, Vec::new());
        }
    };
    let mut waiting: Vec<(Recording, Vec<String>)> = known
        .into_iter()
        .map(|(recording, outputs)| {
            (
                recording,
                outputs.into_iter().map(|o| o.name_model).collect(),
            )
        })
        .collect();
    let known: std::collections::HashSet<PathBuf> =
        waiting.iter().filter_map(|(r, _)| r.path.clone()).collect();
    for file in files.iter().filter(|f| !known.contains(*f)) {
        match recording_of(file, deployment, timezone, store) {
            Ok(recording) => match store.store_recording(&recording) {
                Ok(()) => {
                    report.stored += 1;
                    tracing::warn!(path = %file.display(), recording = %recording.id, "recovery: a recording the store did not know is stored, to be analysed");
                    waiting.push((recording, Vec::new()));
                }
                Err(error) => {
                    report.errors += 1;
                    tracing::error!(path = %file.display(), %error, "recovery: cannot store a recording found in the temp folder");
                }
            },
            Err(reason) => match quarantine(file, &reason) {
                Ok(to) => {
                    report.quarantined += 1;
                    tracing::warn!(path = %file.display(), to = %to.display(), %reason, "recovery: an unreadable recording is quarantined");
                }
                Err(error) => {
                    report.errors += 1;
                    tracing::error!(path = %file.display(), %reason, %error, "recovery: cannot quarantine an unreadable recording");
                }
            },
        }
    }
    clear_missing(recordings_dir, store, &mut report);
    match store.activity_since(Utc::now()) {
        Ok(activity) => report.unsent_messages = activity.unsent_messages,
        Err(error) => {
            report.errors += 1;
            tracing::error!(%error, "recovery: cannot count unsent messages");
        }
    }
    (report, waiting)
}

/// A Recording for a WAV found in the temp folder, or why it cannot be read.
fn recording_of(
    path: &Path,
    deployment: &Deployment,
    timezone: chrono_tz::Tz,
    store: &dyn Store,
) -> Result<Recording, String> {
    let header = acoupi_audio::read_wav_header(path)
        .map_err(|e| format!("not a readable WAV: {}", e.kind))?;
    let frames = header.frames;
    let declared = frames * u64::from(header.channels) * u64::from(header.bits_per_sample / 8);
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if header.samplerate == 0 || header.channels == 0 || frames == 0 {
        return Err("no audio: zero frames, sample rate or channels".into());
    }
    if size < declared {
        return Err(format!(
            "cut short: the header declares {declared} bytes of audio, the file holds {size} bytes in all"
        ));
    }
    let guano = crate::guano::read(path).ok().flatten();
    let created_on = guano
        .as_ref()
        .and_then(|g| g.timestamp(timezone))
        .or_else(|| modified(path))
        .unwrap_or_else(Utc::now);
    let mut recording = Recording::new(
        deployment.clone(),
        frames as f64 / f64::from(header.samplerate),
        header.samplerate,
    )
    .map_err(|e| e.to_string())?
    .with_path(path);
    recording.audio_channels = u32::from(header.channels);
    recording.created_on = created_on;
    if let Some(guano) = &guano {
        recording.time_expansion = guano.time_expansion().unwrap_or(1.0);
        (recording.gaps, recording.lost_frames) = guano.gaps();
        if let Some(id) = guano_id(path, guano, store) {
            recording.id = id;
        }
    }
    Ok(recording)
}

/// The recording id the recorder wrote into the file's GUANO chunk, when it is a valid
/// id that no stored recording has (a copy of a stored recording gets a new id).
fn guano_id(path: &Path, guano: &crate::guano::Guano, store: &dyn Store) -> Option<uuid::Uuid> {
    let text = guano.get("acoupi|Recording ID")?;
    let Ok(id) = uuid::Uuid::parse_str(text.trim()) else {
        tracing::warn!(path = %path.display(), id = text, "recovery: the GUANO recording id is not a valid id; a new one is given");
        return None;
    };
    match store.get_recordings(&[id]) {
        Ok(found) if found.is_empty() => Some(id),
        Ok(_) => {
            tracing::warn!(path = %path.display(), %id, "recovery: another stored recording has the file's GUANO id; a new one is given");
            None
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %id, %error, "recovery: cannot check the file's GUANO id; a new one is given");
            None
        }
    }
}

fn modified(path: &Path) -> Option<DateTime<Utc>> {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .filter(|t| *t > SystemTime::UNIX_EPOCH)
        .map(DateTime::<Utc>::from)
}

/// Moves `file` to the quarantine folder with a reason file; returns where it went. A
/// name taken there (by the file or its reason file) gets a number, as the managers
/// number a taken name, so nothing in the quarantine folder is overwritten; a
/// quarantine folder that is a symbolic link is refused.
fn quarantine(file: &Path, reason: &str) -> std::io::Result<PathBuf> {
    let folder = file.parent().unwrap_or(Path::new(".")).join(QUARANTINE);
    if folder
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        let message = format!(
            "the quarantine folder `{}` is a symbolic link, which is not followed",
            folder.display()
        );
        return Err(std::io::Error::other(message));
    }
    std::fs::create_dir_all(&folder)?;
    let wanted = folder.join(
        file.file_name()
            .unwrap_or_else(|| std::ffi::OsStr::new("unnamed.wav")),
    );
    let reason_of = |to: &Path| {
        let mut name = to.file_name().unwrap_or_default().to_os_string();
        name.push(".reason.txt");
        to.with_file_name(name)
    };
    let taken =
        |to: &Path| to.symlink_metadata().is_ok() || reason_of(to).symlink_metadata().is_ok();
    let to = (1..=crate::folders::MAX_NUMBERED)
        .map(|n| crate::folders::numbered(&wanted, n))
        .find(|to| !taken(to))
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("every numbered name of `{}` is taken", wanted.display()),
            )
        })?;
    std::fs::rename(file, &to)?;
    std::fs::write(reason_of(&to), format!("{reason}\n"))?;
    Ok(to)
}

/// Clears the path of kept recordings whose file is gone, when the root is there.
fn clear_missing(recordings_dir: &Path, store: &dyn Store, report: &mut RecoveryReport) {
    if !recordings_dir.is_dir() {
        return;
    }
    let kept = match store.get_kept_files(recordings_dir) {
        Ok(kept) => kept,
        Err(error) => {
            report.errors += 1;
            tracing::error!(%error, "recovery: cannot list the kept recordings");
            return;
        }
    };
    let roots = [recordings_dir];
    let gone: Vec<uuid::Uuid> = kept
        .iter()
        .filter(|k| match crate::folders::check(&k.path, &roots) {
            Ok(found) => found == crate::folders::Found::Gone,
            Err(refused) => {
                report.refused += 1;
                tracing::warn!(recording = %k.recording_id, path = %k.path.display(), %refused, "recovery: a kept recording's path is refused; it is left as it is");
                false
            }
        })
        .map(|k| k.recording_id)
        .collect();
    if gone.is_empty() {
        return;
    }
    match store.get_recordings(&gone) {
        Ok(recordings) => {
            for recording in recordings {
                match store.update_recording_path(&recording, None) {
                    Ok(_) => {
                        report.missing += 1;
                        tracing::warn!(recording = %recording.id, path = ?recording.path, "recovery: a kept recording's file is gone; its path is cleared");
                    }
                    Err(error) => {
                        report.errors += 1;
                        tracing::error!(recording = %recording.id, %error, "recovery: cannot clear a missing file's path");
                    }
                }
            }
        }
        Err(error) => {
            report.errors += 1;
            tracing::error!(%error, "recovery: cannot read recordings whose files are gone");
        }
    }
}

/// The `.wav` files (any case) directly in `dir`, sorted; a symbolic link is logged and
/// left out (see [`crate::folders::wav_files`]).
fn wavs(dir: &Path) -> Vec<PathBuf> {
    crate::folders::wav_files(dir).unwrap_or_else(|error| {
        if dir.exists() {
            tracing::error!(temp = %dir.display(), %error, "recovery: cannot list the temp folder");
        }
        Vec::new()
    })
}

/// Removes the leftover temporary files of acoupi's own names under each root, through
/// the deletion guard, never following a link (each one met is logged).
fn remove_partials(roots: &[&Path], report: &mut RecoveryReport) {
    for root in roots {
        let walked = crate::folders::walk(root);
        for link in &walked.links {
            tracing::warn!(link = %link.display(), "recovery: a symbolic link in the station's folders is not followed");
        }
        for (path, _) in walked
            .files
            .iter()
            .filter(|(path, _)| crate::folders::is_partial(path))
        {
            match crate::folders::remove_file(path, roots) {
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "recovery: removed a partial file left by a stop");
                    report.partials += 1;
                }
                Err(refused) => {
                    report.refused += 1;
                    tracing::warn!(path = %path.display(), %refused, "recovery: a partial file is not removed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

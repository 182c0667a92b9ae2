//! Retention: which kept recordings to delete so the station's disk never fills, and
//! nothing the user asked to keep is lost. Owns the policy from `[retention]`, the plan
//! (what would be deleted and why, for `acoupi retention --dry-run`) and applying it.
//!
//! The policy, in order:
//! 1. **Protected** recordings are never deleted by any rule: those marked "keep"
//!    (the dashboard's `POST /api/v1/recordings/{id}/keep`), those in a
//!    `protect_folders` folder, those with a tag in `protect_species`, and for every
//!    species (tag value, of `species_key` when set) its `keep_best` recordings with the
//!    highest score (the older one first among equal scores, so the set is stable).
//! 2. **Age**: recordings made more than `max_age` ago are deleted.
//! 3. **Space**: while the free space of the recordings filesystem is below `min_free`,
//!    recordings are deleted in this order: those without any detection, oldest first;
//!    then those with detections, lowest score first (a recording's score is its best
//!    detection or tag score), oldest first among equals. When even that cannot reach the
//!    floor, the plan says by how much it falls short.
//!
//! A deleted recording keeps its row in the store with no path, so its detections stay
//! queryable. The file is removed before the path is cleared: a crash in between leaves
//! a row whose file is gone, which the next plan finds (`missing`) and clears. A kept
//! file that is missing while the recordings root exists is cleared the same way; when
//! the root itself is missing (an unmounted drive), retention does nothing.
//!
//! Only recordings under the recordings root are considered; files the store does not
//! know are never touched.
//!
//! Stored paths are not trusted (a merged shard, an edited store): every kept path goes
//! through the deletion guard of [`crate::folders`] when planning and again when
//! deleting. A path with a `..`, outside the canonical recordings root, through a
//! symbolic link (a day folder replaced by a link) or naming a link is **refused**: it is
//! not in the plan, the refusal is logged with the path and why (`acoupi retention`
//! lists it), and both the file and its row stay as they were. `protect_folders` are
//! compared resolved ([`crate::folders::resolved`]) as well as as written, so a folder
//! named through a link, or by its resolved path, protects the same recordings.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::values::SpaceAmount;
use crate::disk::{DiskSpace, Space};
use crate::folders::{DeleteError, Found};
use crate::store::{KeptFile, Store, StoreError};

/// `[retention]`, with folders resolved against the recordings root.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionPolicy {
    pub min_free: Option<SpaceAmount>,
    pub max_age: Option<Duration>,
    pub keep_best: Option<u32>,
    pub species_key: Option<String>,
    pub protect_species: HashSet<String>,
    pub protect_folders: Vec<PathBuf>,
}

/// How often the age rule is checked when the disk has room (a space shortage is
/// checked on every run).
const AGE_SWEEP_EVERY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Why retention could not plan.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("recordings root `{}` does not exist (an unmounted drive?); retention deletes nothing", .0.display())]
    RootMissing(PathBuf),
    #[error("cannot measure free space at `{}`: {source}", path.display())]
    Disk {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a recording is deleted.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Made more than `max_age` ago.
    Age { max_age: Duration },
    /// Space below the floor; the recording has no detection.
    SpaceNoDetection,
    /// Space below the floor; the recording's best score.
    SpaceLowScore { score: f64 },
    /// The store had a path but the file was gone; only the path is cleared.
    Missing,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Age { max_age } => write!(f, "older than max_age {}", whole_days(*max_age)),
            Reason::SpaceNoDetection => write!(f, "free space below min_free; no detection"),
            Reason::SpaceLowScore { score } => {
                write!(f, "free space below min_free; best score {score:.2}")
            }
            Reason::Missing => write!(f, "file already gone; clearing its path"),
        }
    }
}

/// "365d" for whole days, else humantime's form ("36h 30m").
fn whole_days(duration: Duration) -> String {
    match duration.as_secs() {
        secs if secs > 0 && secs % 86_400 == 0 && duration.subsec_nanos() == 0 => {
            format!("{}d", secs / 86_400)
        }
        _ => humantime::format_duration(duration).to_string(),
    }
}

/// One recording to delete.
#[derive(Debug, Clone, PartialEq)]
pub struct Deletion {
    pub recording_id: Uuid,
    pub path: PathBuf,
    pub created_on: DateTime<Utc>,
    /// File size in bytes (0 when missing).
    pub size: u64,
    pub reason: Reason,
}

/// What retention would do now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionPlan {
    pub deletions: Vec<Deletion>,
    /// Kept recordings considered.
    pub considered: usize,
    /// Of those, protected ones.
    pub protected: usize,
    /// Kept recordings whose path the deletion guard refuses, with why; never deleted.
    pub refused: Vec<(Uuid, DeleteError)>,
    /// Free space of the recordings filesystem before deleting.
    pub space: Option<Space>,
    /// `min_free` in bytes on that filesystem.
    pub floor: Option<u64>,
    /// Bytes still missing to reach the floor after every planned deletion.
    pub shortfall: u64,
}

impl RetentionPlan {
    /// Bytes the deletions free.
    pub fn freed(&self) -> u64 {
        self.deletions.iter().map(|d| d.size).sum()
    }

    /// The plan for people: one line per deletion (path, size, reason), then a summary
    /// (`would delete` for a dry run).
    pub fn describe(&self, dry_run: bool) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        for (id, refused) in &self.refused {
            let _ = writeln!(
                text,
                "refused: {refused} (recording {id}); the file and its row are left as they are"
            );
        }
        for d in &self.deletions {
            let _ = writeln!(
                text,
                "{}  {}  {}  ({})",
                d.path.display(),
                bytesize::ByteSize(d.size),
                d.created_on.format("%Y-%m-%d %H:%M"),
                d.reason
            );
        }
        let verb = if dry_run { "would delete" } else { "deleting" };
        let _ = write!(
            text,
            "{verb} {} of {} kept recordings ({}); {} protected",
            self.deletions.len(),
            self.considered,
            bytesize::ByteSize(self.freed()),
            self.protected
        );
        if let (Some(space), Some(floor)) = (self.space, self.floor) {
            let _ = write!(
                text,
                "; free {} of {}, min_free {}",
                bytesize::ByteSize(space.available),
                bytesize::ByteSize(space.total),
                bytesize::ByteSize(floor)
            );
        }
        if !self.refused.is_empty() {
            let _ = write!(
                text,
                "; {} refused (outside the recordings root or through a link)",
                self.refused.len()
            );
        }
        if self.shortfall > 0 {
            let _ = write!(
                text,
                "; still {} short of min_free: everything else is protected",
                bytesize::ByteSize(self.shortfall)
            );
        }
        text.push('\n');
        text
    }
}

/// What applying a plan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted: usize,
    pub freed: u64,
    pub errors: usize,
    pub shortfall: u64,
}

/// The retention policy at work on one station's recordings tree.
pub struct Retention {
    pub policy: RetentionPolicy,
    pub recordings_dir: PathBuf,
    pub store: Arc<dyn Store>,
    pub disk: Arc<dyn DiskSpace>,
    last_age_sweep: Mutex<Option<DateTime<Utc>>>,
}

impl Retention {
    pub fn new(
        policy: RetentionPolicy,
        recordings_dir: PathBuf,
        store: Arc<dyn Store>,
        disk: Arc<dyn DiskSpace>,
    ) -> Self {
        Retention {
            policy,
            recordings_dir,
            store,
            disk,
            last_age_sweep: Mutex::new(None),
        }
    }

    /// The floor in bytes for the filesystem holding `path`, with its space; `None` when
    /// there is no `min_free`.
    pub fn floor_at(&self, path: &Path) -> Result<Option<(u64, Space)>, RetentionError> {
        let Some(min_free) = self.policy.min_free else {
            return Ok(None);
        };
        let space = self
            .disk
            .space(path)
            .map_err(|source| RetentionError::Disk {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Some((min_free.bytes_of(space.total), space)))
    }

    /// What would be deleted now, and why.
    pub fn plan(&self, now: DateTime<Utc>) -> Result<RetentionPlan, RetentionError> {
        if !self.recordings_dir.exists() {
            return Err(RetentionError::RootMissing(self.recordings_dir.clone()));
        }
        let floor = self.floor_at(&self.recordings_dir)?;
        let mut files = Vec::new();
        let mut sizes = Vec::new();
        let mut refused = Vec::new();
        for file in self.store.get_kept_files(&self.recordings_dir)? {
            match crate::folders::check(&file.path, &[&self.recordings_dir]) {
                Ok(found) => {
                    sizes.push(match found {
                        Found::File { len, .. } => Some(len),
                        Found::Gone => None,
                    });
                    files.push(file);
                }
                Err(error) => {
                    tracing::warn!(recording = %file.recording_id, path = %file.path.display(), %error, "retention: refusing a kept recording's path; the file and its row are left as they are");
                    refused.push((file.recording_id, error));
                }
            }
        }
        let shortfall = floor.map_or(0, |(floor, space)| floor.saturating_sub(space.available));
        let mut plan = decide(&self.policy, &files, &sizes, now, shortfall);
        plan.space = floor.map(|(_, space)| space);
        plan.floor = floor.map(|(floor, _)| floor);
        plan.refused = refused;
        Ok(plan)
    }

    /// Deletes the planned recordings: file first, then the path in the store. A file
    /// that cannot be deleted, or that the deletion guard refuses, stays, with its path,
    /// and is counted as an error.
    pub fn apply(&self, plan: &RetentionPlan) -> RetentionReport {
        let mut report = RetentionReport {
            shortfall: plan.shortfall,
            ..Default::default()
        };
        if plan.deletions.is_empty() {
            return report;
        }
        let ids: Vec<Uuid> = plan.deletions.iter().map(|d| d.recording_id).collect();
        let recordings: HashMap<Uuid, _> = match self.store.get_recordings(&ids) {
            Ok(found) => found.into_iter().map(|r| (r.id, r)).collect(),
            Err(error) => {
                tracing::error!(%error, "retention: cannot read the recordings to delete");
                report.errors += 1;
                return report;
            }
        };
        for deletion in &plan.deletions {
            let Some(recording) = recordings.get(&deletion.recording_id) else {
                report.errors += 1;
                tracing::error!(recording = %deletion.recording_id, "retention: recording not in the store any more");
                continue;
            };
            if let Err(error) = crate::folders::remove_file(&deletion.path, &[&self.recordings_dir])
            {
                report.errors += 1;
                tracing::error!(recording = %recording.id, path = %deletion.path.display(), %error, "retention: not deleted; the file and its row are left as they are");
                continue;
            }
            if let Err(error) = self.store.update_recording_path(recording, None) {
                report.errors += 1;
                tracing::error!(recording = %recording.id, %error, "retention: deleted the file, but cannot clear its path (the next run clears it)");
                continue;
            }
            report.deleted += 1;
            report.freed += deletion.size;
            tracing::info!(recording = %recording.id, path = %deletion.path.display(), reason = %deletion.reason, "retention: deleted");
        }
        if plan.shortfall > 0 {
            tracing::warn!(
                short = %bytesize::ByteSize(plan.shortfall),
                protected = plan.protected,
                "retention: cannot reach min_free; every other recording is protected"
            );
        }
        report
    }

    /// Runs the policy when there is something to do: free space below the floor, or
    /// the hourly age sweep. Management calls this after each run.
    pub fn run_if_due(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<RetentionReport>, RetentionError> {
        let below = match self.floor_at(&self.recordings_dir)? {
            Some((floor, space)) => space.available < floor,
            None => false,
        };
        let age_due = self.policy.max_age.is_some() && {
            let mut last = self
                .last_age_sweep
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|last| now - last >= AGE_SWEEP_EVERY);
            if due {
                *last = Some(now);
            }
            due
        };
        if !below && !age_due {
            return Ok(None);
        }
        let plan = self.plan(now)?;
        Ok(Some(self.apply(&plan)))
    }

    /// Checks the floor before a recording is written into `temp_dir`. When the temp
    /// folder's or the recordings tree's filesystem is below `min_free`, the policy runs
    /// (deleting only when that filesystem is the recordings tree's); `Err` tells why the
    /// recording must not be made.
    pub fn ensure_room(&self, temp_dir: &Path, now: DateTime<Utc>) -> Result<(), String> {
        let check = |path: &Path| -> Result<Option<(u64, Space)>, String> {
            match self.floor_at(path) {
                Ok(Some((floor, space))) if space.available < floor => Ok(Some((floor, space))),
                Ok(_) => Ok(None),
                Err(error) => Err(error.to_string()),
            }
        };
        let low_temp = check(temp_dir)?;
        let low_recordings = check(&self.recordings_dir)?;
        if low_temp.is_none() && low_recordings.is_none() {
            return Ok(());
        }
        let helps =
            low_recordings.is_some() || self.disk.same_filesystem(temp_dir, &self.recordings_dir);
        if helps && self.recordings_dir.exists() {
            match self.plan(now) {
                Ok(plan) => {
                    self.apply(&plan);
                }
                Err(error) => tracing::error!(%error, "retention failed"),
            }
        }
        for path in [temp_dir, self.recordings_dir.as_path()] {
            if let Some((floor, space)) = check(path)? {
                return Err(format!(
                    "free space at `{}` is {}, below min_free {} ({})",
                    path.display(),
                    bytesize::ByteSize(space.available),
                    bytesize::ByteSize(floor),
                    if helps {
                        "every kept recording left is protected"
                    } else {
                        "the temp folder is on another filesystem than the recordings tree"
                    },
                ));
            }
        }
        Ok(())
    }
}

/// The decision, on the store's kept files and their sizes (`None`: missing on disk),
/// given the bytes missing to reach the floor.
pub fn decide(
    policy: &RetentionPolicy,
    files: &[KeptFile],
    sizes: &[Option<u64>],
    now: DateTime<Utc>,
    shortfall: u64,
) -> RetentionPlan {
    let protected = protected(policy, files);
    let mut plan = RetentionPlan {
        considered: files.len(),
        protected: protected.len(),
        ..Default::default()
    };
    let mut taken = vec![false; files.len()];
    let deletion = |i: usize, reason: Reason| Deletion {
        recording_id: files[i].recording_id,
        path: files[i].path.clone(),
        created_on: files[i].created_on,
        size: sizes[i].unwrap_or(0),
        reason,
    };
    for i in 0..files.len() {
        if sizes[i].is_none() {
            taken[i] = true;
            plan.deletions.push(deletion(i, Reason::Missing));
        }
    }
    if let Some(max_age) = policy.max_age {
        let oldest_allowed = chrono::TimeDelta::from_std(max_age)
            .ok()
            .and_then(|age| now.checked_sub_signed(age));
        for i in 0..files.len() {
            if !taken[i]
                && !protected.contains(&i)
                && oldest_allowed.is_some_and(|limit| files[i].created_on < limit)
            {
                taken[i] = true;
                plan.deletions.push(deletion(i, Reason::Age { max_age }));
            }
        }
    }
    let mut missing = shortfall.saturating_sub(plan.freed());
    if missing > 0 {
        let mut order: Vec<usize> = (0..files.len())
            .filter(|i| !taken[*i] && !protected.contains(i))
            .collect();
        // Stable sort on files already oldest first: no detection before detections, then
        // lowest score first.
        order.sort_by(|a, b| {
            let (a, b) = (score(&files[*a]), score(&files[*b]));
            a.is_some()
                .cmp(&b.is_some())
                .then(a.unwrap_or(0.0).total_cmp(&b.unwrap_or(0.0)))
        });
        for i in order {
            if missing == 0 {
                break;
            }
            let reason = match score(&files[i]) {
                None => Reason::SpaceNoDetection,
                Some(score) => Reason::SpaceLowScore { score },
            };
            let d = deletion(i, reason);
            missing = missing.saturating_sub(d.size);
            plan.deletions.push(d);
        }
    }
    plan.shortfall = missing;
    plan
}

/// A recording's value: its best detection or tag score; `None` with no detection.
fn score(file: &KeptFile) -> Option<f64> {
    let tags = file.tags.iter().map(|t| t.score);
    file.best_score.into_iter().chain(tags).reduce(f64::max)
}

/// Indices of the protected files.
fn protected(policy: &RetentionPolicy, files: &[KeptFile]) -> HashSet<usize> {
    let is_species = |key: &str| policy.species_key.as_deref().is_none_or(|k| k == key);
    // As written and resolved: protecting more is safe, protecting less is not.
    let folders: Vec<(&PathBuf, PathBuf)> = policy
        .protect_folders
        .iter()
        .map(|f| (f, crate::folders::resolved(f)))
        .collect();
    let in_folder = |path: &Path| {
        let resolved = (!folders.is_empty()).then(|| crate::folders::resolved(path));
        folders.iter().any(|(written, real)| {
            path.starts_with(written) || resolved.as_ref().is_some_and(|r| r.starts_with(real))
        })
    };
    let mut protected: HashSet<usize> = files
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.kept
                || in_folder(&f.path)
                || f.tags
                    .iter()
                    .any(|t| is_species(&t.key) && policy.protect_species.contains(&t.value))
        })
        .map(|(i, _)| i)
        .collect();
    if let Some(n) = policy.keep_best {
        let mut by_species: HashMap<&str, Vec<(f64, usize)>> = HashMap::new();
        for (i, file) in files.iter().enumerate() {
            for tag in file.tags.iter().filter(|t| is_species(&t.key)) {
                by_species
                    .entry(&tag.value)
                    .or_default()
                    .push((tag.score, i));
            }
        }
        for mut ranked in by_species.into_values() {
            // Files are oldest first, so among equal scores the older one ranks first.
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            protected.extend(ranked.iter().take(n as usize).map(|(_, i)| *i));
        }
    }
    protected
}

#[cfg(test)]
mod tests;

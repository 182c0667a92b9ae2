//! The management task: decides, for the recordings waiting in the temp folder, which to
//! keep (moved into the recordings tree) and which to delete.
//!
//! It lists only plain files directly in the temp folder: a symbolic link there (even one
//! named like a recording) is logged and left alone, never moved, copied or deleted. A
//! delete goes through the deletion guard of [`crate::folders`] with the temp folder as
//! its only root; a refusal is logged with the path and why, and the file and its row
//! stay as they were.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Named;
use crate::component::{RecordingCondition, SavingFilter, SavingManager};
use crate::disk::{SystemDisk, describe_free};
use crate::folders::{MAX_NUMBERED, numbered, wav_files};
use crate::retention::Retention;
use crate::store::Store;

/// Keeps or deletes the recordings in the temp folder.
pub struct ManagementTask {
    pub stage: String,
    pub temp_dir: PathBuf,
    pub store: Arc<dyn Store>,
    pub filters: Vec<Named<dyn SavingFilter>>,
    pub managers: Vec<Named<dyn SavingManager>>,
    /// Model names that must have an output before a recording is managed.
    pub required_models: Vec<String>,
    /// Management conditions: all must hold at the run's time, or nothing is managed.
    pub conditions: Vec<Named<dyn RecordingCondition>>,
    /// `[retention]`, run after managing when due.
    pub retention: Option<Arc<Retention>>,
}

/// What one management run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ManagementReport {
    pub kept: usize,
    pub deleted: usize,
    /// Recordings waiting for a required model, or for the management conditions.
    pub waiting: usize,
    /// Files the store does not know (left alone).
    pub unknown: usize,
    pub errors: usize,
    /// Recordings whose move had finished when the station stopped, found at their
    /// destination and recorded there now.
    pub recovered: usize,
    /// Kept recordings deleted by retention.
    pub retention_deleted: usize,
}

impl ManagementTask {
    /// 0. every management condition must hold now (a failing one counts as "no"), else
    ///    every recording waits for a later run; 1. list the `.wav` files in the temp folder; 2. `store.get_recordings_info_by_path`;
    /// 3. keep those for which every required model has an output (the others wait for a
    ///    later run); 4. `store.get_recordings_by_path` for those (full outputs); 5. for
    ///    each: no path → error, skip; an output marked private (a human was heard, see
    ///    `ModelOutput::is_private`) → delete the file, asking no filter; saving filters
    ///    present and none says yes → delete the file; file already gone → log, skip; else ask the managers in order, the
    ///    first returning a path wins → move the file there → `update_recording_path`; no
    ///    manager returns a path → warn and delete. A deleted file's recording keeps its
    ///    row with no path. A failing filter counts as "no"; a failing manager as "none",
    ///    except that a recording to keep is never deleted because a manager failed (a
    ///    destination refused for a link in the tree): it stays in the temp folder.
    ///
    /// Before that, [`ManagementTask::recover`] finishes moves a crash interrupted; after
    /// it, retention runs when due (see [`Retention::run_if_due`]).
    pub fn run(&self, now: DateTime<Utc>) -> ManagementReport {
        let mut report = self.manage(now);
        if let Some(retention) = &self.retention {
            match retention.run_if_due(now) {
                Ok(Some(retained)) => {
                    report.retention_deleted = retained.deleted;
                    report.errors += retained.errors;
                }
                Ok(None) => {}
                Err(error) => {
                    report.errors += 1;
                    tracing::error!(stage = %self.stage, %error, "retention failed");
                }
            }
        }
        report
    }

    fn manage(&self, now: DateTime<Utc>) -> ManagementReport {
        let mut report = ManagementReport::default();
        self.recover(&mut report);
        let files = match wav_files(&self.temp_dir) {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(stage = %self.stage, temp = %self.temp_dir.display(), %error, "cannot list the temp folder");
                report.errors += 1;
                return report;
            }
        };
        if files.is_empty() {
            return report;
        }
        if let Some(condition) = self
            .conditions
            .iter()
            .find(|condition| !self.holds(condition, now, &mut report))
        {
            tracing::info!(stage = %self.stage, condition = %condition.name, waiting = files.len(), "a management condition is not met; recordings stay in the temp folder");
            report.waiting = files.len();
            return report;
        }
        let infos = match self.store.get_recordings_info_by_path(&files) {
            Ok(infos) => infos,
            Err(error) => {
                tracing::error!(stage = %self.stage, %error, "cannot look up recordings");
                report.errors += 1;
                return report;
            }
        };
        report.unknown = files.len().saturating_sub(infos.len());
        let ready: Vec<PathBuf> = infos
            .iter()
            .filter(|(recording, outputs)| {
                let done: HashSet<&str> = outputs.iter().map(|o| o.name_model.as_str()).collect();
                let ready = self.required_models.iter().all(|m| done.contains(m.as_str()));
                if !ready {
                    tracing::debug!(stage = %self.stage, recording = %recording.id, "waiting for required models");
                }
                ready
            })
            .filter_map(|(recording, _)| recording.path.clone())
            .collect();
        report.waiting = infos.len() - ready.len();
        if ready.is_empty() {
            return report;
        }
        let recordings = match self.store.get_recordings_by_path(&ready) {
            Ok(recordings) => recordings,
            Err(error) => {
                tracing::error!(stage = %self.stage, %error, "cannot read recordings");
                report.errors += 1;
                return report;
            }
        };
        for (recording, outputs) in recordings {
            let Some(path) = recording.path.clone() else {
                tracing::error!(stage = %self.stage, recording = %recording.id, "recording has no path");
                report.errors += 1;
                continue;
            };
            let private = outputs.iter().any(|o| o.is_private());
            if private {
                tracing::info!(stage = %self.stage, recording = %recording.id, "privacy: a human was heard; the audio is not kept");
            }
            let keep = !private
                && (self.filters.is_empty()
                || self.filters.iter().any(|filter| match filter.should_save(&recording, &outputs) {
                    Ok(answer) => answer,
                    Err(error) => {
                        tracing::error!(stage = %self.stage, recording = %recording.id, filter = %filter.name, %error, "saving filter failed; counts as no");
                        false
                    }
                }));
            if !path.exists() {
                tracing::warn!(stage = %self.stage, recording = %recording.id, path = %path.display(), "file already gone");
                continue;
            }
            let mut failed = false;
            let destination = if keep {
                self.managers.iter().find_map(|manager| match manager.save(&recording, &outputs) {
                    Ok(destination) => destination,
                    Err(error) => {
                        failed = true;
                        tracing::error!(stage = %self.stage, recording = %recording.id, manager = %manager.name, %error, "saving manager failed");
                        None
                    }
                })
            } else {
                None
            };
            if keep && failed && destination.is_none() {
                // A refused destination (a link in the tree) must not turn into a delete.
                report.errors += 1;
                tracing::error!(stage = %self.stage, recording = %recording.id, path = %path.display(), "a saving manager failed and none gave a path; the recording stays in the temp folder and is tried again next run");
                continue;
            }
            // A name taken by another kept file (a template such as `{top_tag}.wav` that
            // is not unique per recording) gets a number: nothing is overwritten and the
            // recording does not stay stuck in the temp folder.
            let destination = destination.map(|wanted| {
                let free = free_destination(&path, &wanted);
                if free != wanted {
                    tracing::info!(stage = %self.stage, recording = %recording.id, wanted = %wanted.display(), path = %free.display(), "a kept file has that name already; numbering this one");
                }
                free
            });
            match destination {
                Some(destination) => match move_file(&path, &destination) {
                    Ok(()) => match self
                        .store
                        .update_recording_path(&recording, Some(&destination))
                    {
                        Ok(_) => {
                            report.kept += 1;
                            tracing::info!(stage = %self.stage, recording = %recording.id, path = %destination.display(), "kept");
                        }
                        Err(error) => {
                            report.errors += 1;
                            tracing::error!(stage = %self.stage, recording = %recording.id, %error, "moved, but cannot record the new path");
                        }
                    },
                    Err(error) => {
                        report.errors += 1;
                        let free = describe_free(&SystemDisk, &destination);
                        tracing::error!(stage = %self.stage, recording = %recording.id, from = %path.display(), to = %destination.display(), %free, %error, "cannot move the recording; it stays in the temp folder and is tried again next run");
                    }
                },
                None => {
                    if keep && !self.managers.is_empty() {
                        tracing::warn!(stage = %self.stage, recording = %recording.id, "no saving manager gave a path; deleting");
                    }
                    match crate::folders::remove_file(&path, &[self.temp_dir.as_path()]) {
                        Ok(_) => {
                            report.deleted += 1;
                            if let Err(error) = self.store.update_recording_path(&recording, None) {
                                report.errors += 1;
                                tracing::error!(stage = %self.stage, recording = %recording.id, %error, "deleted, but cannot clear the path in the store");
                            }
                            tracing::info!(stage = %self.stage, recording = %recording.id, "deleted");
                        }
                        Err(error) => {
                            report.errors += 1;
                            tracing::error!(stage = %self.stage, recording = %recording.id, path = %path.display(), %error, "cannot delete the recording");
                        }
                    }
                }
            }
        }
        report
    }
}

impl ManagementTask {
    /// Whether a management condition holds now; one that fails says no and counts as an
    /// error.
    fn holds(
        &self,
        condition: &Named<dyn RecordingCondition>,
        now: DateTime<Utc>,
        report: &mut ManagementReport,
    ) -> bool {
        condition.should_record(now).unwrap_or_else(|error| {
            report.errors += 1;
            tracing::error!(stage = %self.stage, condition = %condition.name, %error, "management condition failed");
            false
        })
    }

    /// Finishes what a crash interrupted: a stored recording whose path is in the temp
    /// folder but whose file is gone was moved (or deleted) just before the stop, without
    /// the store hearing of it. The managers are asked again (they are deterministic);
    /// when the file is at the destination, the store gets that path; otherwise the file
    /// was deleted and the path is cleared, as a delete would have done. A destination
    /// already recorded for another recording is not taken.
    fn recover(&self, report: &mut ManagementReport) {
        let stored = match self.store.get_kept_files(&self.temp_dir) {
            Ok(stored) => stored,
            Err(error) => {
                report.errors += 1;
                tracing::error!(stage = %self.stage, %error, "cannot list the recordings stored in the temp folder");
                return;
            }
        };
        let gone: Vec<uuid::Uuid> = stored
            .iter()
            .filter(|f| !f.path.exists())
            .map(|f| f.recording_id)
            .collect();
        if gone.is_empty() || !self.temp_dir.exists() {
            return;
        }
        let recordings = match self.store.get_recordings(&gone) {
            Ok(recordings) => recordings,
            Err(error) => {
                report.errors += 1;
                tracing::error!(stage = %self.stage, %error, "cannot read recordings to recover");
                return;
            }
        };
        for recording in recordings {
            let outputs = self
                .store
                .get_recording_model_outputs(recording.id)
                .unwrap_or_default();
            // The destination (or a numbered one, see `free_destination`) must exist and
            // belong to no other recording (a template that is not unique per recording
            // must not hand one file to two).
            let unowned = |d: &PathBuf| {
                self.store
                    .get_recordings_info_by_path(std::slice::from_ref(d))
                    .is_ok_and(|owners| owners.is_empty())
            };
            let destination = self
                .managers
                .iter()
                .find_map(|m| m.save(&recording, &outputs).ok().flatten())
                .and_then(|wanted| {
                    (1..=MAX_NUMBERED)
                        .map(|n| numbered(&wanted, n))
                        .take_while(|d| d.exists())
                        .find(unowned)
                });
            match self
                .store
                .update_recording_path(&recording, destination.as_deref())
            {
                Ok(_) => {
                    report.recovered += usize::from(destination.is_some());
                    match &destination {
                        Some(path) => {
                            tracing::warn!(stage = %self.stage, recording = %recording.id, path = %path.display(), "recovered: the recording had been moved before a stop")
                        }
                        None => {
                            tracing::warn!(stage = %self.stage, recording = %recording.id, "recovered: the recording's file had been deleted before a stop; path cleared")
                        }
                    }
                }
                Err(error) => {
                    report.errors += 1;
                    tracing::error!(stage = %self.stage, recording = %recording.id, %error, "cannot record a recovered path");
                }
            }
        }
    }
}

/// Where to move `from` when the manager asked for `wanted`: `wanted` itself when it is
/// free or holds the same bytes (a move a stop interrupted), else the first free
/// `name_2.wav`, `name_3.wav` … (the last tried when all are taken: the move then fails
/// and says so).
fn free_destination(from: &Path, wanted: &Path) -> PathBuf {
    (1..=MAX_NUMBERED)
        .map(|n| numbered(wanted, n))
        .find(|candidate| !candidate.exists() || same_contents(from, candidate).unwrap_or(false))
        .unwrap_or_else(|| numbered(wanted, MAX_NUMBERED))
}

/// Moves a file, creating the destination folder. Within a filesystem this is a rename;
/// across filesystems the file is copied to a temporary name beside the destination
/// (`<name>.acoupi-partial`, see [`crate::folders::partial_path`]), synced, renamed into place, and only then is the source removed,
/// so a crash leaves the file at the old path, the new one, or (between the last two
/// steps) both: a destination with the same bytes as the source then finishes the move
/// by removing the source. A failed copy (a full disk) removes its partial file, so the
/// space is given back and the source stays where it is.
pub fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    move_file_with(from, to, |from, to| std::fs::rename(from, to))
}

/// [`move_file`] with the rename given, so tests can play a rename across filesystems.
pub fn move_file_with(
    from: &Path,
    to: &Path,
    rename: impl Fn(&Path, &Path) -> io::Result<()>,
) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if to.exists() {
        if same_contents(from, to)? {
            tracing::warn!(from = %from.display(), to = %to.display(), "finishing a move interrupted by a stop");
            return std::fs::remove_file(from);
        }
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("`{}` already exists", to.display()),
        ));
    }
    match rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let partial = crate::folders::partial_path(to, crate::folders::Partial::Copy);
            let copied = std::fs::copy(from, &partial)
                .and_then(|_| std::fs::File::open(&partial)?.sync_all());
            if let Err(error) = copied {
                let _ = std::fs::remove_file(&partial);
                return Err(error);
            }
            std::fs::rename(&partial, to)?;
            if let Some(parent) = to.parent() {
                // Make the rename durable before the source goes.
                let _ = std::fs::File::open(parent).and_then(|dir| dir.sync_all());
            }
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// Whether two files hold the same bytes. Read block by block, stopping at the first
/// difference: recordings of one length have one size, and `free_destination` compares a
/// recording with every kept file of its name, so two different recordings must cost a
/// block each, not two whole files.
fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    if std::fs::metadata(a)?.len() != std::fs::metadata(b)?.len() {
        return Ok(false);
    }
    let (mut a, mut b) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    let (mut block_a, mut block_b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let read = read_full(&mut a, &mut block_a)?;
        if read != read_full(&mut b, &mut block_b)? || block_a[..read] != block_b[..read] {
            return Ok(false);
        }
        if read == 0 {
            return Ok(true);
        }
    }
}

/// Fills `block` from `file` as far as the file goes; the bytes read.
fn read_full(file: &mut std::fs::File, block: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < block.len() {
        match file.read(&mut block[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::testing::{Calls, FakeCondition, FakeManager, FakeSavingFilter, FakeStore};

    fn setup(
        calls: &Calls,
        files: &[&str],
        outputs: &[Vec<&str>],
    ) -> (tempfile::TempDir, Arc<FakeStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FakeStore::new(calls));
        for (name, models) in files.iter().zip(outputs) {
            let path = dir.path().join("tmp").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"RIFF").unwrap();
            store.add_recording(&path, models);
        }
        (dir, store)
    }

    fn task(
        dir: &Path,
        store: Arc<FakeStore>,
        calls: &Calls,
        filters: &[Option<bool>],
        managers: &[Option<&str>],
        required: &[&str],
    ) -> ManagementTask {
        ManagementTask {
            stage: "manage".into(),
            temp_dir: dir.join("tmp"),
            store,
            filters: filters
                .iter()
                .map(|a| {
                    Named::new(
                        "sf",
                        Arc::new(FakeSavingFilter {
                            calls: calls.clone(),
                            answer: *a,
                        }) as Arc<dyn SavingFilter>,
                    )
                })
                .collect(),
            managers: managers
                .iter()
                .map(|m| {
                    Named::new(
                        "mgr",
                        Arc::new(FakeManager {
                            calls: calls.clone(),
                            target: m.map(|m| dir.join(m)),
                        }) as Arc<dyn SavingManager>,
                    )
                })
                .collect(),
            required_models: required.iter().map(|s| s.to_string()).collect(),
            conditions: Vec::new(),
            retention: None,
        }
    }

    #[test]
    fn keeps_with_the_first_manager_that_gives_a_path() {
        let calls = Calls::default();
        let (dir, store) = setup(&calls, &["a.wav"], &[vec!["m"]]);
        let report = task(
            dir.path(),
            store.clone(),
            &calls,
            &[Some(false), Some(true)],
            &[None, Some("kept/a.wav"), Some("other/a.wav")],
            &["m"],
        )
        .run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                kept: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            calls.take(),
            [
                "store.get_kept_files",
                "store.get_recordings_info_by_path",
                "store.get_recordings_by_path",
                "saving_filter",
                "saving_filter",
                "manager",
                "manager",
                "store.update_recording_path"
            ]
        );
        assert!(dir.path().join("kept/a.wav").exists() && !dir.path().join("tmp/a.wav").exists());
        assert_eq!(store.path_of(0), Some(dir.path().join("kept/a.wav")));
    }

    #[test]
    fn management_conditions_all_hold_or_every_recording_waits() {
        // (answers of the conditions, report, calls after the kept-files check, file still in tmp)
        let yes_no_broken = [Some(true), Some(false), None];
        type Case<'a> = (&'a [Option<bool>], ManagementReport, &'a [&'a str], bool);
        let cases: [Case<'_>; 5] = [
            (
                &[],
                ManagementReport {
                    deleted: 2,
                    ..Default::default()
                },
                &["store.get_recordings_info_by_path"],
                false,
            ),
            (
                &yes_no_broken[..1],
                ManagementReport {
                    deleted: 2,
                    ..Default::default()
                },
                &["condition c0", "store.get_recordings_info_by_path"],
                false,
            ),
            (
                &yes_no_broken[..2],
                ManagementReport {
                    waiting: 2,
                    ..Default::default()
                },
                &["condition c0", "condition c1"],
                true,
            ),
            (
                &[Some(false), Some(true)],
                ManagementReport {
                    waiting: 2,
                    ..Default::default()
                },
                &["condition c0"],
                true,
            ),
            (
                &yes_no_broken[2..],
                ManagementReport {
                    waiting: 2,
                    errors: 1,
                    ..Default::default()
                },
                &["condition c0"],
                true,
            ),
        ];
        for (answers, want, want_calls, stays) in cases {
            let calls = Calls::default();
            let (dir, store) = setup(&calls, &["a.wav", "b.wav"], &[vec![], vec![]]);
            let mut task = task(dir.path(), store, &calls, &[], &[], &[]);
            task.conditions = answers
                .iter()
                .enumerate()
                .map(|(i, &answer)| {
                    let condition = FakeCondition {
                        name: format!("c{i}"),
                        answer,
                        calls: calls.clone(),
                    };
                    Named::new(
                        format!("c{i}"),
                        Arc::new(condition) as Arc<dyn RecordingCondition>,
                    )
                })
                .collect();
            calls.take();
            let report = task.run(Utc::now());
            assert_eq!(report, want, "{answers:?}");
            let made = calls.take();
            assert_eq!(
                &made[1..=want_calls.len()],
                want_calls,
                "{answers:?}: {made:?}"
            );
            assert_eq!(dir.path().join("tmp/a.wav").exists(), stays, "{answers:?}");
            assert_eq!(dir.path().join("tmp/b.wav").exists(), stays, "{answers:?}");
        }
    }

    #[test]
    fn deletes_when_no_filter_says_yes_and_keeps_the_row() {
        let calls = Calls::default();
        let (dir, store) = setup(&calls, &["a.wav"], &[vec![]]);
        let report = task(
            dir.path(),
            store.clone(),
            &calls,
            &[Some(false), None],
            &[Some("kept/a.wav")],
            &[],
        )
        .run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                deleted: 1,
                ..Default::default()
            }
        );
        assert!(!dir.path().join("tmp/a.wav").exists());
        assert_eq!(store.path_of(0), None);
        assert!(!calls.take().contains(&"manager".to_string()));
    }

    #[test]
    fn waits_for_required_models_and_ignores_unknown_files() {
        let calls = Calls::default();
        let (dir, store) = setup(&calls, &["a.wav", "b.wav"], &[vec!["m1"], vec!["m1", "m2"]]);
        std::fs::write(dir.path().join("tmp/orphan.wav"), b"RIFF").unwrap();
        let report = task(dir.path(), store, &calls, &[], &[], &["m1", "m2"]).run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                deleted: 1,
                waiting: 1,
                unknown: 1,
                ..Default::default()
            }
        );
        assert!(dir.path().join("tmp/a.wav").exists(), "a waits for m2");
        assert!(
            !dir.path().join("tmp/b.wav").exists(),
            "b: no manager, deleted"
        );
        assert!(
            dir.path().join("tmp/orphan.wav").exists(),
            "unknown files are left alone"
        );
    }

    #[test]
    fn a_private_recording_is_deleted_whatever_the_filters_say() {
        use crate::data::{Detection, PRIVACY_TAG_KEY, PredictedTag, PredictionType, Tag};
        let calls = Calls::default();
        let (dir, store) = setup(&calls, &["a.wav"], &[vec!["m"]]);
        let mut marker = Detection::new(PredictionType::Event);
        marker.tags = vec![PredictedTag::new(Tag::new(PRIVACY_TAG_KEY, "human"), 0.9).unwrap()];
        store.add_detection(0, marker);
        let report = task(
            dir.path(),
            store.clone(),
            &calls,
            &[Some(true)],
            &[Some("kept/a.wav")],
            &[],
        )
        .run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                deleted: 1,
                ..Default::default()
            }
        );
        assert!(!dir.path().join("tmp/a.wav").exists() && !dir.path().join("kept/a.wav").exists());
        assert!(
            !calls
                .take()
                .iter()
                .any(|c| c == "saving_filter" || c == "manager"),
            "neither filters nor managers are asked"
        );
    }

    #[test]
    fn a_taken_name_gets_a_number_and_recovery_finds_numbered_files() {
        let calls = Calls::default();
        let (dir, store) = setup(
            &calls,
            &["a.wav", "b.wav", "c.wav"],
            &[vec![], vec![], vec![]],
        );
        for (name, bytes) in [("a.wav", "a"), ("b.wav", "b"), ("c.wav", "c")] {
            std::fs::write(dir.path().join("tmp").join(name), bytes).unwrap();
        }
        // One name for every recording, e.g. `{top_tag}.wav`.
        let report = task(
            dir.path(),
            store.clone(),
            &calls,
            &[],
            &[Some("kept/robin.wav")],
            &[],
        )
        .run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                kept: 3,
                ..Default::default()
            }
        );
        let kept =
            |name: &str| std::fs::read_to_string(dir.path().join("kept").join(name)).unwrap();
        assert_eq!(
            [kept("robin.wav"), kept("robin_2.wav"), kept("robin_3.wav")],
            ["a", "b", "c"]
        );
        assert_eq!(store.path_of(1), Some(dir.path().join("kept/robin_2.wav")));
        assert_eq!(numbered(Path::new("/r/x"), 2), Path::new("/r/x_2"));

        // A stop after the third move, before the store heard of it: recovery finds it
        // under its number, and not under a name another recording owns.
        let (dir, store) = setup(&calls, &["a.wav", "b.wav"], &[vec![], vec![]]);
        for (name, bytes) in [("a.wav", "a"), ("b.wav", "b")] {
            std::fs::write(dir.path().join("tmp").join(name), bytes).unwrap();
        }
        task(
            dir.path(),
            store.clone(),
            &calls,
            &[],
            &[Some("kept/robin.wav")],
            &[],
        )
        .run(Utc::now());
        store.add_recording(&dir.path().join("tmp/c.wav"), &[]);
        std::fs::write(dir.path().join("kept/robin_3.wav"), "c").unwrap();
        let report = task(
            dir.path(),
            store.clone(),
            &calls,
            &[],
            &[Some("kept/robin.wav")],
            &[],
        )
        .run(Utc::now());
        assert_eq!(report.recovered, 1, "{report:?}");
        assert_eq!(store.path_of(2), Some(dir.path().join("kept/robin_3.wav")));
        assert_eq!(
            store.path_of(0),
            Some(dir.path().join("kept/robin.wav")),
            "the others keep theirs"
        );
    }

    #[test]
    fn same_contents_compares_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let a = write("a", &bytes);
        assert!(same_contents(&a, &write("same", &bytes)).unwrap());
        let mut late = bytes.clone();
        *late.last_mut().unwrap() ^= 1;
        assert!(
            !same_contents(&a, &write("late", &late)).unwrap(),
            "a difference in the last block"
        );
        assert!(!same_contents(&a, &write("short", &bytes[..199_999])).unwrap());
        assert!(same_contents(&write("e1", b""), &write("e2", b"")).unwrap());
    }

    #[test]
    fn move_file_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("sub/b"));
        std::fs::write(&a, b"1").unwrap();
        move_file(&a, &b).unwrap();
        assert!(!a.exists() && b.exists());
        std::fs::write(&a, b"2").unwrap();
        assert!(move_file(&a, &b).is_err());
        assert_eq!(std::fs::read(&b).unwrap(), b"1");
    }

    #[test]
    fn a_move_finished_before_a_stop_is_recorded_at_its_destination() {
        let calls = Calls::default();
        let (dir, store) = setup(&calls, &["a.wav", "b.wav"], &[vec!["m"], vec!["m"]]);
        // The crash: a.wav reached kept/a.wav, b.wav was deleted, the store heard of neither.
        move_file(
            &dir.path().join("tmp/a.wav"),
            &dir.path().join("kept/a.wav"),
        )
        .unwrap();
        std::fs::remove_file(dir.path().join("tmp/b.wav")).unwrap();
        let report = task(
            dir.path(),
            store.clone(),
            &calls,
            &[],
            &[Some("kept/a.wav")],
            &[],
        )
        .run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                recovered: 1,
                ..Default::default()
            }
        );
        assert_eq!(store.path_of(0), Some(dir.path().join("kept/a.wav")));
        assert_eq!(
            store.path_of(1),
            None,
            "b was deleted: its path is cleared, its row stays"
        );
    }

    #[test]
    fn an_interrupted_cross_filesystem_move_is_finished_and_a_real_one_works() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.wav"), dir.path().join("kept/a.wav"));
        std::fs::write(&a, b"RIFF....").unwrap();
        // Played across filesystems: the rename fails with EXDEV, so copy+sync+rename.
        let exdev = |_: &Path, _: &Path| Err(io::Error::from(io::ErrorKind::CrossesDevices));
        move_file_with(&a, &b, exdev).unwrap();
        assert!(!a.exists() && std::fs::read(&b).unwrap() == b"RIFF....");
        assert!(!dir.path().join("kept/a.wav.acoupi-partial").exists());
        // A stop after the copy's rename but before the source's removal: both exist.
        std::fs::write(&a, b"RIFF....").unwrap();
        move_file(&a, &b).unwrap();
        assert!(
            !a.exists(),
            "the same bytes at the destination finish the move"
        );
        // A real second filesystem when the machine has one (/dev/shm is a tmpfs).
        let shm = Path::new("/dev/shm");
        use crate::disk::DiskSpace;
        if shm.is_dir() && !crate::disk::SystemDisk.same_filesystem(dir.path(), shm) {
            let target = tempfile::tempdir_in(shm).unwrap();
            std::fs::write(&a, b"RIFF-real").unwrap();
            move_file(&a, &target.path().join("x/a.wav")).unwrap();
            assert_eq!(
                std::fs::read(target.path().join("x/a.wav")).unwrap(),
                b"RIFF-real"
            );
            assert!(!a.exists());
        } else {
            println!(
                "skipped the real cross-filesystem move: /dev/shm is missing or on the same filesystem"
            );
        }
    }

    /// A 1 MiB tmpfs as the recordings tree; needs root (mount), skipped otherwise.
    struct TinyDisk(PathBuf);
    impl TinyDisk {
        fn mount(at: &Path) -> Option<TinyDisk> {
            std::fs::create_dir_all(at).ok()?;
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
                .arg(at)
                .status()
                .ok()?;
            status.success().then(|| TinyDisk(at.to_path_buf()))
        }
    }
    impl Drop for TinyDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    #[test]
    fn a_full_disk_leaves_the_recording_in_the_temp_folder_and_gives_the_space_back() {
        let calls = Calls::default();
        let (dir, store) = setup(&calls, &["big.wav"], &[vec![]]);
        std::fs::write(dir.path().join("tmp/big.wav"), vec![7u8; 2 << 20]).unwrap();
        let Some(_disk) = TinyDisk::mount(&dir.path().join("full")) else {
            // CI sets ACOUPI_REQUIRE_ROOT=1: a runner without root must not pass by skipping.
            assert!(
                std::env::var("ACOUPI_REQUIRE_ROOT").as_deref() != Ok("1"),
                "cannot mount a tmpfs, and root is required (ACOUPI_REQUIRE_ROOT=1)"
            );
            println!("skipped: cannot mount a tmpfs (needs root)");
            return;
        };
        let report = task(
            dir.path(),
            store.clone(),
            &calls,
            &[],
            &[Some("full/kept/big.wav")],
            &[],
        )
        .run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                errors: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("tmp/big.wav"))
                .unwrap()
                .len(),
            2 << 20,
            "the recording stays, whole"
        );
        assert_eq!(store.path_of(0), Some(dir.path().join("tmp/big.wav")));
        assert!(
            !dir.path().join("full/kept/big.wav.acoupi-partial").exists(),
            "the partial copy is removed"
        );
        // Next run, still full: tried again, still there.
        let report = task(
            dir.path(),
            store.clone(),
            &calls,
            &[],
            &[Some("full/kept/big.wav")],
            &[],
        )
        .run(Utc::now());
        assert_eq!(report.errors, 1);
        assert!(dir.path().join("tmp/big.wav").exists());
    }

    #[test]
    fn a_link_in_the_temp_folder_is_left_alone_and_a_failing_manager_deletes_nothing() {
        struct Refusing;
        impl SavingManager for Refusing {
            fn save(
                &self,
                _: &crate::data::Recording,
                _: &[crate::data::ModelOutput],
            ) -> crate::component::ComponentResult<Option<PathBuf>> {
                Err(crate::component::ComponentError::Other(
                    "refusing destination: a symbolic link".into(),
                ))
            }
        }
        let calls = Calls::default();
        let (dir, store) = setup(&calls, &["a.wav"], &[vec![]]);
        std::fs::write(dir.path().join("precious.wav"), b"mine").unwrap();
        let link = dir.path().join("tmp/link.wav");
        std::os::unix::fs::symlink(dir.path().join("precious.wav"), &link).unwrap();
        store.add_recording(&link, &[]);
        let mut task = task(dir.path(), store.clone(), &calls, &[], &[], &[]);
        task.managers = vec![Named::new(
            "refusing",
            Arc::new(Refusing) as Arc<dyn SavingManager>,
        )];
        let report = task.run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                errors: 1,
                ..Default::default()
            }
        );
        assert!(
            dir.path().join("tmp/a.wav").exists(),
            "a recording to keep stays when its manager fails"
        );
        assert_eq!(store.path_of(0), Some(dir.path().join("tmp/a.wav")));
        assert!(
            link.symlink_metadata().is_ok() && dir.path().join("precious.wav").exists(),
            "the link and its target stay"
        );
        assert_eq!(store.path_of(1), Some(link));
    }

    #[test]
    fn retention_runs_after_managing() {
        use crate::retention::{Retention, RetentionPolicy};
        let calls = Calls::default();
        let (dir, store) = setup(&calls, &["a.wav"], &[vec![]]);
        let old = dir.path().join("kept/old.wav");
        std::fs::create_dir_all(old.parent().unwrap()).unwrap();
        std::fs::write(&old, b"RIFF").unwrap();
        store.add_kept(&old, Utc::now() - chrono::TimeDelta::days(400), &[]);
        let policy = RetentionPolicy {
            max_age: Some(std::time::Duration::from_secs(365 * 86_400)),
            ..Default::default()
        };
        let mut task = task(
            dir.path(),
            store.clone(),
            &calls,
            &[],
            &[Some("kept/a.wav")],
            &[],
        );
        task.retention = Some(Arc::new(Retention::new(
            policy,
            dir.path().join("kept"),
            store.clone(),
            Arc::new(crate::disk::SystemDisk),
        )));
        let report = task.run(Utc::now());
        assert_eq!(
            report,
            ManagementReport {
                kept: 1,
                retention_deleted: 1,
                ..Default::default()
            }
        );
        assert!(!old.exists() && dir.path().join("kept/a.wav").exists());
    }
}

//! One reprocessing batch: discover, select this shard's files that are not done yet,
//! analyse them on `jobs` threads, commit the results from one writer, report.
//!
//! The pipeline is bounded: a feeder hands file paths to the workers through a channel
//! of `jobs` places; each worker probes a file's header, dates it, builds its Recording
//! and runs every selected detection stage on it ([`DetectionTask::run`], writing into
//! the worker's [`CaptureStore`]); results go to the writer through a channel of
//! `2 × jobs` places. So at most `jobs` files are decoded at a time (the model reads
//! its file), whatever the archive's size. Models run on these plain threads, never on
//! an async executor. The writer (the calling thread) commits up to [`BATCH_FILES`]
//! files, or what arrived within [`BATCH_INTERVAL`], per transaction: a DuckDB commit
//! costs milliseconds, an analysis usually more.
//!
//! A file whose header the probe refuses (the components' probe checks it against the
//! decoding limits: rate, channels, bits, length) or whose analysis failed in any stage
//! (or panicked) is recorded as `error` with the reason and nothing else of it is stored, so `--retry-errors` can analyse it again
//! without duplicating outputs. A file every stage's processing filters turned down is
//! `filtered`: its recording is stored, without outputs.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::capture::{CaptureStore, capturing};
use super::discovery::{ArchiveFile, DiscoveryError, discover};
use super::fingerprint::{deployment_id, fingerprint};
use super::plan::{PlanEntry, PlanError};
use super::printable::printable;
use super::progress::{Progress, Totals};
use super::time_source::{TimeHints, recorded_at};
use super::{ArchiveStore, AudioProbe, FileStatus, ProcessedEntry, ReprocessedFile, Shard};
use crate::config::{Pipeline, Settings, StageSpec};
use crate::data::{Deployment, Recording};
use crate::runtime::{StartError, build_detection_tasks};
use crate::store::{MessageStore, Store, StoreError};
use crate::tasks::{DetectionReport, DetectionTask};

/// At most this many files per store transaction.
pub const BATCH_FILES: usize = 64;
/// A batch is committed at least this often.
pub const BATCH_INTERVAL: Duration = Duration::from_secs(1);

/// What to reprocess and how.
#[derive(Debug, Clone)]
pub struct ReprocessOptions {
    /// The archive folder.
    pub archive: PathBuf,
    /// Worker threads (at least 1).
    pub jobs: usize,
    pub shard: Option<Shard>,
    /// A chrono pattern for recording times in file names (see [`super::time_source`]).
    pub time_format: Option<String>,
    /// Detection stages to run (empty: every detection stage of the pipeline).
    pub stages: Vec<String>,
    /// Analyse again the files recorded as `error`.
    pub retry_errors: bool,
    /// The archive's files as a plan lists them: shards by duration, no walk (see
    /// [`super::plan`]); `None` walks the archive and shards by path hash.
    pub plan: Option<Arc<[PlanEntry]>>,
}

/// Why a batch could not run (bad files never stop it; see [`BatchReport::bad`]).
#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("the pipeline has no detection stage to run")]
    NoDetectionStage,
    #[error("`{name}` is not a detection stage of the pipeline (detection stages: {known})")]
    UnknownStage { name: String, known: String },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub fingerprint: String,
    /// WAV files in the archive (all shards).
    pub found: usize,
    /// Of those, in this shard.
    pub in_shard: usize,
    /// Already processed with this fingerprint (skipped).
    pub skipped: usize,
    /// Analysed now, outputs stored.
    pub analysed: usize,
    /// Turned down by processing filters now.
    pub filtered: usize,
    /// Files that could not be analysed now, and unreadable archive entries, with why
    /// (sorted by path).
    pub bad: Vec<(PathBuf, String)>,
    /// Audio analysed now (analysed and filtered files).
    pub audio_seconds: f64,
    pub detections: usize,
    pub messages: usize,
    pub wall: Duration,
}

impl BatchReport {
    /// Seconds of audio per second of wall time.
    pub fn real_time_factor(&self) -> f64 {
        let wall = self.wall.as_secs_f64();
        if wall > 0.0 {
            self.audio_seconds / wall
        } else {
            0.0
        }
    }

    /// The final report, a few lines of text.
    pub fn render(&self) -> String {
        let mut text = format!(
            "files: {} found, {} in this shard, {} already done, {} analysed, {} filtered, {} bad\n\
             audio: {} ({:.2} h) analysed; detections: {}; messages: {}\n\
             wall time: {}; real-time factor: {:.1}× (fingerprint {})\n",
            self.found,
            self.in_shard,
            self.skipped,
            self.analysed,
            self.filtered,
            self.bad.len(),
            humantime::format_duration(Duration::from_secs(self.audio_seconds.round() as u64)),
            self.audio_seconds / 3600.0,
            self.detections,
            self.messages,
            humantime::format_duration(Duration::from_millis(self.wall.as_millis() as u64)),
            self.real_time_factor(),
            self.fingerprint,
        );
        if !self.bad.is_empty() {
            text.push_str("bad files:\n");
            for (path, reason) in &self.bad {
                // A file name may hold a newline or an ESC: printed escaped.
                text.push_str(&format!(
                    "  {}: {}\n",
                    printable(&path.to_string_lossy()),
                    printable(reason)
                ));
            }
        }
        text
    }
}

/// Runs a batch (see the module docs), reporting to `progress` as files are done
/// ([`NoProgress`](super::NoProgress) for none).
pub fn reprocess(
    pipeline: &Pipeline,
    store: Arc<dyn ArchiveStore>,
    probe: Arc<dyn AudioProbe>,
    options: &ReprocessOptions,
    progress: &mut dyn Progress,
) -> Result<BatchReport, ReprocessError> {
    let started = Instant::now();
    let stages = select_stages(pipeline, &options.stages)?;
    let names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    let fingerprint = fingerprint(pipeline, &stages);
    let tasks = build_detection_tasks(
        pipeline,
        &names,
        store.clone() as Arc<dyn Store>,
        store.clone() as Arc<dyn MessageStore>,
    )?;
    let deployment = reprocess_deployment(store.as_ref(), &pipeline.settings)?;
    let (found, in_shard, unreadable) = match &options.plan {
        Some(plan) => {
            let selection = super::plan::select(plan, options.shard, &options.archive)?;
            (selection.found, selection.files, selection.unreadable)
        }
        None => {
            let discovery = discover(&options.archive)?;
            let found = discovery.files.len();
            let in_shard: Vec<ArchiveFile> = discovery
                .files
                .into_iter()
                .filter(|f| options.shard.is_none_or(|s| s.contains(&f.relative)))
                .collect();
            (found, in_shard, discovery.unreadable)
        }
    };
    let mut report = BatchReport {
        fingerprint: fingerprint.clone(),
        found,
        bad: unreadable,
        ..BatchReport::default()
    };
    report.in_shard = in_shard.len();
    let done: HashMap<PathBuf, ProcessedEntry> = store
        .reprocessed_files(&fingerprint)?
        .into_iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    let pending: Vec<ArchiveFile> = in_shard
        .into_iter()
        .filter(|f| match done.get(&f.path) {
            Some(entry) => {
                !(entry.size == f.size
                    && entry.mtime_ns == f.mtime_ns
                    && (entry.status != FileStatus::Error || !options.retry_errors))
            }
            None => true,
        })
        .collect();
    report.skipped = report.in_shard - pending.len();
    tracing::info!(
        archive = %options.archive.display(), found = report.found, in_shard = report.in_shard, skipped = report.skipped, pending = pending.len(),
        jobs = options.jobs, fingerprint = %fingerprint, "reprocess: starting"
    );
    let worker = Worker {
        tasks,
        store: store.clone(),
        probe,
        deployment,
        fingerprint,
        time_format: options.time_format.clone(),
        timezone: pipeline.settings.deployment.timezone,
    };
    progress.selected(report.in_shard as u64, report.skipped as u64);
    progress.start(pending.len() as u64, pending.iter().map(|f| f.size).sum());
    let outcome = run_pipeline(
        &worker,
        pending,
        options.jobs.max(1),
        store.as_ref(),
        &mut report,
        progress,
    );
    progress.finish();
    report.bad.sort();
    report.wall = started.elapsed();
    outcome.map(|()| report)
}

/// The pipeline's detection stages, or the named ones (in file order).
fn select_stages<'p>(
    pipeline: &'p Pipeline,
    names: &[String],
) -> Result<Vec<&'p crate::config::Stage>, ReprocessError> {
    let detection: Vec<&crate::config::Stage> = pipeline
        .stages
        .iter()
        .filter(|s| matches!(s.spec, StageSpec::Detection(_)))
        .collect();
    if let Some(name) = names
        .iter()
        .find(|n| !detection.iter().any(|s| &&s.name == n))
    {
        let known = detection
            .iter()
            .map(|s| format!("`{}`", s.name))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ReprocessError::UnknownStage {
            name: name.clone(),
            known,
        });
    }
    let selected: Vec<_> = detection
        .into_iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect();
    if selected.is_empty() {
        return Err(ReprocessError::NoDetectionStage);
    }
    Ok(selected)
}

/// The store's current deployment when it is the pipeline's (a station's own store);
/// otherwise one with an id derived from the deployment's name and position, so every
/// shard writes the same deployment.
fn reprocess_deployment(
    store: &dyn ArchiveStore,
    settings: &Settings,
) -> Result<Deployment, ReprocessError> {
    let wanted = &settings.deployment;
    if let Some(current) = store.get_current_deployment()?
        && current.ended_on.is_none()
        && current.name == wanted.name
        && current.latitude == wanted.latitude
        && current.longitude == wanted.longitude
    {
        return Ok(current);
    }
    let mut deployment = Deployment::new(wanted.name.clone());
    deployment.id = deployment_id(&wanted.name, wanted.latitude, wanted.longitude);
    if let (Some(latitude), Some(longitude)) = (wanted.latitude, wanted.longitude) {
        deployment = deployment
            .with_location(latitude, longitude)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    store.store_deployment(&deployment)?;
    Ok(deployment)
}

/// What every worker shares.
struct Worker {
    tasks: Vec<DetectionTask>,
    store: Arc<dyn ArchiveStore>,
    probe: Arc<dyn AudioProbe>,
    deployment: Deployment,
    fingerprint: String,
    time_format: Option<String>,
    timezone: chrono_tz::Tz,
}

/// Feeder, workers and the writer (this thread).
fn run_pipeline(
    worker: &Worker,
    pending: Vec<ArchiveFile>,
    jobs: usize,
    store: &dyn ArchiveStore,
    report: &mut BatchReport,
    progress: &mut dyn Progress,
) -> Result<(), ReprocessError> {
    let (work_tx, work_rx) = sync_channel::<ArchiveFile>(jobs);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (result_tx, result_rx) = sync_channel::<(ReprocessedFile, u64)>(2 * jobs);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for file in pending {
                if work_tx.send(file).is_err() {
                    break;
                }
            }
        });
        for _ in 0..jobs {
            let work_rx = work_rx.clone();
            let result_tx = result_tx.clone();
            let capture = CaptureStore::new(worker.store.clone());
            let tasks: Vec<DetectionTask> = worker
                .tasks
                .iter()
                .map(|t| capturing(t, &capture))
                .collect();
            scope.spawn(move || {
                loop {
                    let next = work_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(file) = next else { break };
                    let result = analyse(worker, &tasks, &capture, &file);
                    if result_tx.send((result, file.size)).is_err() {
                        break;
                    }
                }
            });
        }
        // Only the workers hold the channels' ends now: when the writer stops early, the
        // workers' sends fail, they drop the work receiver, and the feeder stops too.
        drop(work_rx);
        drop(result_tx);
        write(result_rx, store, report, progress)
    })
}

/// The writer: commits batches, counts, shows progress. On a store error it stops
/// (dropping the channel stops the workers) and returns the error.
fn write(
    results: Receiver<(ReprocessedFile, u64)>,
    store: &dyn ArchiveStore,
    report: &mut BatchReport,
    progress: &mut dyn Progress,
) -> Result<(), ReprocessError> {
    let mut batch: Vec<(ReprocessedFile, u64)> = Vec::with_capacity(BATCH_FILES);
    let mut totals = Totals::default();
    let mut stored = Totals::default();
    let mut last_commit = Instant::now();
    loop {
        let wait = BATCH_INTERVAL.saturating_sub(last_commit.elapsed());
        let closed = match results.recv_timeout(wait) {
            Ok((file, bytes)) => {
                add(&mut totals, &file, bytes);
                progress.update(&totals);
                batch.push((file, bytes));
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if !batch.is_empty()
            && (closed || batch.len() >= BATCH_FILES || last_commit.elapsed() >= BATCH_INTERVAL)
        {
            let mut committed = Totals::default();
            let files: Vec<ReprocessedFile> = batch
                .drain(..)
                .map(|(file, bytes)| {
                    add(&mut committed, &file, bytes);
                    file
                })
                .collect();
            store.store_reprocessed(&files)?;
            stored.files += committed.files;
            stored.bytes += committed.bytes;
            stored.errors += committed.errors;
            stored.audio_seconds += committed.audio_seconds;
            for file in files {
                count(report, file);
            }
        }
        progress.committed(&stored);
        if last_commit.elapsed() >= BATCH_INTERVAL || closed {
            last_commit = Instant::now();
        }
        if closed {
            return Ok(());
        }
    }
}

/// Adds a file to running totals.
fn add(totals: &mut Totals, file: &ReprocessedFile, bytes: u64) {
    totals.files += 1;
    totals.bytes += bytes;
    if file.status == FileStatus::Error {
        totals.errors += 1;
    } else if let Some(recording) = &file.recording {
        totals.audio_seconds += recording.duration;
    }
}

/// Adds a committed file to the report.
fn count(report: &mut BatchReport, file: ReprocessedFile) {
    match file.status {
        FileStatus::Done => report.analysed += 1,
        FileStatus::Filtered => report.filtered += 1,
        FileStatus::Error => report.bad.push((file.path, file.error.unwrap_or_default())),
    }
    if file.status != FileStatus::Error {
        report.audio_seconds += file.recording.as_ref().map_or(0.0, |r| r.duration);
    }
    report.detections += file
        .outputs
        .iter()
        .map(|o| o.detections.len())
        .sum::<usize>();
    report.messages += file.messages.len();
}

/// One file: probe, date, run every stage (see the module docs).
fn analyse(
    worker: &Worker,
    tasks: &[DetectionTask],
    capture: &CaptureStore,
    file: &ArchiveFile,
) -> ReprocessedFile {
    let mut result = ReprocessedFile {
        path: file.path.clone(),
        size: file.size,
        mtime_ns: file.mtime_ns,
        fingerprint: worker.fingerprint.clone(),
        status: FileStatus::Error,
        error: None,
        time_source: None,
        recording: None,
        outputs: Vec::new(),
        messages: Vec::new(),
        processed_on: Utc::now(),
    };
    let fail = |mut result: ReprocessedFile, reason: String| {
        tracing::debug!(file = %printable(&file.path.to_string_lossy()), reason = %printable(&reason), "reprocess: bad file");
        result.error = Some(reason);
        result
    };
    let probed = match worker.probe.probe(&file.path) {
        Ok(probed) => probed,
        Err(reason) => return fail(result, reason),
    };
    if probed.frames == 0 {
        return fail(result, "no audio: the data chunk is empty".into());
    }
    let file_name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let guano = probed.guano.as_deref().map(crate::guano::Guano::parse);
    let hints = TimeHints {
        file_name: &file_name,
        comment: probed.comment.as_deref(),
        guano: guano.as_ref(),
        mtime: DateTime::from_timestamp_nanos(file.mtime_ns),
    };
    let (created_on, source) = recorded_at(hints, worker.time_format.as_deref(), worker.timezone);
    tracing::debug!(file = %printable(&file.path.to_string_lossy()), %created_on, source = source.as_str(), "reprocess: recording time");
    let (gaps, lost_frames) = guano.as_ref().map_or((0, 0), crate::guano::Guano::gaps);
    let recording = Recording {
        id: Uuid::new_v4(),
        created_on,
        duration: probed.frames as f64 / f64::from(probed.samplerate.max(1)),
        samplerate: probed.samplerate,
        deployment: worker.deployment.clone(),
        path: Some(file.path.clone()),
        audio_channels: u32::from(probed.channels),
        // GUANO's `TE` for time-expanded bat recordings; 1 otherwise.
        time_expansion: guano
            .as_ref()
            .and_then(crate::guano::Guano::time_expansion)
            .unwrap_or(1.0),
        gaps,
        lost_frames,
    };
    if let Err(error) = recording.validate() {
        return fail(result, format!("unusable header: {error}"));
    }
    result.time_source = Some(source);
    let mut failures = Vec::new();
    let mut filtered = 0;
    capture.take();
    for task in tasks {
        let report = std::panic::catch_unwind(AssertUnwindSafe(|| task.run(&recording)))
            .unwrap_or_else(|panic| DetectionReport {
                failure: Some(format!("panicked: {}", panic_text(panic.as_ref()))),
                ..DetectionReport::default()
            });
        if let Some(failure) = report.failure {
            failures.push(format!("stage `{}`: {failure}", task.stage));
        } else if report.filtered_by.is_some() {
            filtered += 1;
        }
    }
    let captured = capture.take();
    if !failures.is_empty() {
        return fail(result, failures.join("; "));
    }
    result.status = if filtered == tasks.len() {
        FileStatus::Filtered
    } else {
        FileStatus::Done
    };
    result.outputs = captured.outputs;
    result.messages = captured.messages;
    result.recording = Some(recording);
    result
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::component::{ComponentResult, Model};
    use crate::data::ModelOutput;
    use crate::reprocess::ProbedAudio;
    use crate::store::StoreResult;
    use crate::tasks::Named;
    use crate::tasks::testing::{Calls, FakeStore};

    /// Commits nothing when a batch holds a `disk-full` file (as a full disk would).
    impl ArchiveStore for FakeStore {
        fn reprocessed_files(&self, _: &str) -> StoreResult<Vec<ProcessedEntry>> {
            Ok(Vec::new())
        }
        fn store_reprocessed(&self, files: &[ReprocessedFile]) -> StoreResult<()> {
            match files
                .iter()
                .any(|f| f.path.to_string_lossy().contains("disk-full"))
            {
                true => Err(StoreError::Database("disk full".into())),
                false => Ok(()),
            }
        }
    }

    /// One second of audio, except for `bad` files.
    struct Probe;
    impl AudioProbe for Probe {
        fn probe(&self, path: &Path) -> Result<ProbedAudio, String> {
            match path.to_string_lossy().contains("bad") {
                true => Err("not a WAV file (no RIFF/WAVE header)".into()),
                false => Ok(ProbedAudio {
                    samplerate: 1000,
                    channels: 1,
                    frames: 1000,
                    ..ProbedAudio::default()
                }),
            }
        }
    }

    /// Panics on `panic` files.
    struct Model1;
    impl Model for Model1 {
        fn name(&self) -> &str {
            "m"
        }
        fn run(&self, recording: &Recording) -> ComponentResult<ModelOutput> {
            let path = recording.path.clone().unwrap_or_default();
            assert!(!path.to_string_lossy().contains("panic"), "the model broke");
            Ok(ModelOutput::new("m", recording.clone(), Vec::new()))
        }
    }

    fn run(names: &[&str], jobs: usize) -> Result<BatchReport, ReprocessError> {
        let store: Arc<dyn ArchiveStore> = Arc::new(FakeStore::new(&Calls::default()));
        let task = DetectionTask {
            stage: "detect".into(),
            model: Named::new("m", Arc::new(Model1)),
            filters: Vec::new(),
            cleaners: Vec::new(),
            factories: Vec::new(),
            store: store.clone(),
            message_store: store.clone(),
        };
        let worker = Worker {
            tasks: vec![task],
            store: store.clone(),
            probe: Arc::new(Probe),
            deployment: Deployment::new("d"),
            fingerprint: "fp".into(),
            time_format: None,
            timezone: chrono_tz::UTC,
        };
        let files = names
            .iter()
            .map(|n| ArchiveFile {
                path: PathBuf::from(format!("/archive/{n}")),
                relative: n.to_string(),
                size: 2000,
                mtime_ns: 0,
            })
            .collect();
        let mut report = BatchReport::default();
        run_pipeline(
            &worker,
            files,
            jobs,
            store.as_ref(),
            &mut report,
            &mut super::super::NoProgress,
        )
        .map(|()| report)
    }

    #[test]
    fn a_panicking_model_and_a_bad_header_are_bad_files_and_the_batch_goes_on() {
        let report = run(&["ok-1.wav", "panic-2.wav", "bad-3.wav", "ok-4.wav"], 2).unwrap();
        assert_eq!((report.analysed, report.audio_seconds), (2, 2.0));
        let mut bad = report.bad.clone();
        bad.sort();
        assert_eq!(bad.len(), 2);
        assert_eq!(
            bad[0],
            (
                PathBuf::from("/archive/bad-3.wav"),
                "not a WAV file (no RIFF/WAVE header)".to_string()
            )
        );
        assert!(
            bad[1]
                .1
                .starts_with("stage `detect`: panicked: the model broke"),
            "{:?}",
            bad[1]
        );
    }

    #[test]
    fn a_store_error_stops_the_batch_without_hanging() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let names: Vec<String> = (0..200).map(|i| format!("disk-full-{i}.wav")).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let _ = tx.send(run(&names, 2).map(|_| ()).map_err(|e| e.to_string()));
        });
        let outcome = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the batch hung after a store error");
        assert_eq!(outcome, Err("store: disk full".to_string()));
    }
}

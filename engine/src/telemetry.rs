//! A station's telemetry: what it counts about itself for its heartbeats (`metric.station`)
//! — ERROR-level log events (how many, the latest, how many per stage and component) and
//! the gaps live audio capture met — and what the dashboard's Station page shows: each
//! stage's state, runs, errors, last run and lag, its queue depth, and each model's
//! inference time and real-time factor. One [`Telemetry`] per station: the runtime creates it
//! (or is given one), components get it in their `BuildContext`, and the CLI's logging
//! layer records every ERROR event into it, whatever the log filter. Nothing here is
//! process-wide: two stations in one process count apart.
//!
//! Stages (see [`StageProbe`]): the runtime registers each stage when it starts and
//! notes each input queued, each run started and finished. Definitions:
//! - *state*: `running` while a run is in progress, else `queued` when inputs wait, else
//!   `idle`;
//! - *errors*: runs whose task reported a failure (a detection that stored nothing
//!   because a filter, the model or the store failed; a management run with errors; a
//!   messaging run with failed sends) or that crashed;
//! - *lag*: for a scheduled stage (`every`, `cron`), how late its last run started after
//!   the tick it was due at (waiting in the queue behind a busy run counts); for an
//!   `after` stage, the time since its last run finished (how stale its work is), as of
//!   the snapshot.
//!
//! Models (see [`ModelStats`]): one *chunk* is one model run on one recording; the
//! detection task times the model's `run` alone (not the filters, cleaners or store), and
//! the real-time factor is audio seconds analysed / compute seconds spent (above 1: faster
//! than real time).
//!
//! Counting is cheap: atomics, and short locks on the last-run and model records.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The log fields that name a component in the tasks' error events, by family.
pub const COMPONENT_FIELDS: &[&str] = &[
    "recorder",
    "condition",
    "model",
    "cleaner",
    "filter",
    "manager",
    "factory",
    "messenger",
    "summariser",
    "metric",
];

/// Where an error was logged: its stage and component, when the event named them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErrorSource {
    pub stage: Option<String>,
    pub component: Option<String>,
}

/// A cheap handle (clones share the counts) on one station's telemetry.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    started_on: DateTime<Utc>,
    errors: AtomicU64,
    last_error: Mutex<Option<(DateTime<Utc>, String)>>,
    errors_by_source: Mutex<BTreeMap<ErrorSource, u64>>,
    gaps: AtomicU64,
    stages: Mutex<Vec<StageProbe>>,
    models: Mutex<BTreeMap<String, ModelStats>>,
    /// The latest errors, newest last (at most [`LAST_ERRORS`]).
    recent_errors: Mutex<std::collections::VecDeque<RecentError>>,
}

/// How many of the latest errors [`Telemetry::recent_errors`] keeps.
pub const LAST_ERRORS: usize = 20;

/// One recorded error, for the Station page's "last errors".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentError {
    pub at: DateTime<Utc>,
    pub message: String,
    pub source: ErrorSource,
}

/// What a stage is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageState {
    Idle,
    Queued,
    Running,
}

impl StageState {
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Idle => "idle",
            StageState::Queued => "queued",
            StageState::Running => "running",
        }
    }
}

/// A stage's counts, as of [`Telemetry::stages`].
#[derive(Debug, Clone, PartialEq)]
pub struct StageSnapshot {
    pub name: String,
    /// `recording`, `detection`, ... (as in `stage_runs.kind`).
    pub kind: String,
    /// The stage's trigger in words (`every 10s`, `cron ...`, `after record`).
    pub trigger: String,
    /// Scheduled (`every`/`cron`) rather than `after` another stage.
    pub scheduled: bool,
    pub state: StageState,
    pub runs: u64,
    pub errors: u64,
    /// Inputs waiting in the stage's queue, and how many it holds.
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub last_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    /// See the module docs.
    pub lag: Option<Duration>,
}

/// A model's inference counts (one *chunk* = one run on one recording).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelStats {
    /// The detection stage running it.
    pub stage: String,
    pub chunks: u64,
    /// Seconds of compute spent in the model's `run`, in all.
    pub compute_seconds: f64,
    /// Seconds of audio it analysed, in all.
    pub audio_seconds: f64,
    /// The latest run's compute time.
    pub last: Duration,
}

impl ModelStats {
    /// Mean milliseconds per chunk.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.chunks > 0).then(|| self.compute_seconds * 1000.0 / self.chunks as f64)
    }

    /// Audio seconds per compute second (above 1: faster than real time).
    pub fn real_time_factor(&self) -> Option<f64> {
        (self.compute_seconds > 0.0).then(|| self.audio_seconds / self.compute_seconds)
    }
}

/// The runtime's handle on one stage's counts (clones share them).
#[derive(Clone)]
pub struct StageProbe {
    inner: Arc<StageEntry>,
}

struct StageEntry {
    name: String,
    kind: String,
    trigger: String,
    scheduled: bool,
    capacity: u64,
    runs: AtomicU64,
    errors: AtomicU64,
    queued: AtomicI64,
    running: AtomicBool,
    last: Mutex<LastRun>,
}

#[derive(Default)]
struct LastRun {
    due: Option<DateTime<Utc>>,
    started: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
    outcome: Option<String>,
    lag: Option<Duration>,
}

impl StageProbe {
    fn last(&self) -> std::sync::MutexGuard<'_, LastRun> {
        self.inner
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An input was put in the stage's queue; `due` is the tick a scheduled run was due
    /// at.
    pub fn queued(&self, due: Option<DateTime<Utc>>) {
        self.inner.queued.fetch_add(1, Ordering::Relaxed);
        if due.is_some() {
            self.last().due = due;
        }
    }

    /// The worker took an input and starts running it at `now`.
    pub fn started(&self, now: DateTime<Utc>) {
        self.inner.queued.fetch_sub(1, Ordering::Relaxed);
        self.inner.running.store(true, Ordering::Relaxed);
        let mut last = self.last();
        last.started = Some(now);
        if let Some(due) = last.due.take() {
            last.lag = Some((now - due).to_std().unwrap_or(Duration::ZERO));
        }
    }

    /// The run started last finished at `now` with this outcome; `failed` counts it as
    /// an error.
    pub fn finished(&self, now: DateTime<Utc>, outcome: impl Into<String>, failed: bool) {
        self.inner.runs.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.inner.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.running.store(false, Ordering::Relaxed);
        let mut last = self.last();
        last.finished = Some(now);
        last.outcome = Some(outcome.into());
    }

    fn snapshot(&self, now: DateTime<Utc>) -> StageSnapshot {
        let entry = &self.inner;
        let depth = u64::try_from(entry.queued.load(Ordering::Relaxed)).unwrap_or(0);
        let state = if entry.running.load(Ordering::Relaxed) {
            StageState::Running
        } else if depth > 0 {
            StageState::Queued
        } else {
            StageState::Idle
        };
        let last = self.last();
        let lag = if entry.scheduled {
            last.lag
        } else {
            last.finished
                .map(|finished| (now - finished).to_std().unwrap_or(Duration::ZERO))
        };
        StageSnapshot {
            name: entry.name.clone(),
            kind: entry.kind.clone(),
            trigger: entry.trigger.clone(),
            scheduled: entry.scheduled,
            state,
            runs: entry.runs.load(Ordering::Relaxed),
            errors: entry.errors.load(Ordering::Relaxed),
            queue_depth: depth,
            queue_capacity: entry.capacity,
            last_started: last.started,
            last_finished: last.finished,
            last_outcome: last.outcome.clone(),
            lag,
        }
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("errors", &self.errors())
            .field("gaps", &self.gaps())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A station's telemetry with nothing counted yet.
    pub fn new() -> Telemetry {
        Telemetry {
            inner: Arc::new(Inner {
                started_on: Utc::now(),
                ..Inner::default()
            }),
        }
    }

    /// When this telemetry was created (the station's start).
    pub fn started_on(&self) -> DateTime<Utc> {
        self.inner.started_on
    }

    /// Notes one error, logged now with this text, from `source`.
    pub fn record_error(&self, message: impl Into<String>, source: ErrorSource) {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        let message = message.into();
        if let Ok(mut last) = self.inner.last_error.lock() {
            *last = Some((Utc::now(), message.clone()));
        }
        if let Ok(mut recent) = self.inner.recent_errors.lock() {
            if recent.len() >= LAST_ERRORS {
                recent.pop_front();
            }
            recent.push_back(RecentError {
                at: Utc::now(),
                message,
                source: source.clone(),
            });
        }
        if let Ok(mut by_source) = self.inner.errors_by_source.lock() {
            *by_source.entry(source).or_default() += 1;
        }
    }

    /// The latest errors (at most [`LAST_ERRORS`]), newest first.
    pub fn recent_errors(&self) -> Vec<RecentError> {
        self.inner
            .recent_errors
            .lock()
            .map(|recent| recent.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Registers a stage (in pipeline order; a stage of the same name registered before,
    /// by an earlier build of the pipeline, is replaced in place) and returns the probe the
    /// runtime counts it with.
    pub fn register_stage(
        &self,
        name: &str,
        kind: &str,
        trigger: &str,
        scheduled: bool,
        queue_capacity: usize,
    ) -> StageProbe {
        let probe = StageProbe {
            inner: Arc::new(StageEntry {
                name: name.to_string(),
                kind: kind.to_string(),
                trigger: trigger.to_string(),
                scheduled,
                capacity: queue_capacity as u64,
                runs: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                queued: AtomicI64::new(0),
                running: AtomicBool::new(false),
                last: Mutex::new(LastRun::default()),
            }),
        };
        let mut stages = self
            .inner
            .stages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match stages.iter_mut().find(|s| s.inner.name == name) {
            Some(slot) => *slot = probe.clone(),
            None => stages.push(probe.clone()),
        }
        probe
    }

    /// Every registered stage, in pipeline order, as of `now`.
    pub fn stages(&self, now: DateTime<Utc>) -> Vec<StageSnapshot> {
        let stages = self
            .inner
            .stages
            .lock()
            .map(|stages| stages.clone())
            .unwrap_or_default();
        stages.iter().map(|probe| probe.snapshot(now)).collect()
    }

    /// Notes one model run of `compute` on `audio_seconds` of audio, in `stage`.
    pub fn record_inference(
        &self,
        model: &str,
        stage: &str,
        compute: Duration,
        audio_seconds: f64,
    ) {
        let mut models = self
            .inner
            .models
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stats = models.entry(model.to_string()).or_default();
        stats.stage = stage.to_string();
        stats.chunks += 1;
        stats.compute_seconds += compute.as_secs_f64();
        stats.audio_seconds += audio_seconds.max(0.0);
        stats.last = compute;
    }

    /// Each model's inference counts, by model name.
    pub fn models(&self) -> BTreeMap<String, ModelStats> {
        self.inner
            .models
            .lock()
            .map(|models| models.clone())
            .unwrap_or_default()
    }

    /// Errors recorded since this telemetry was created.
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// When the latest error was recorded, and its text.
    pub fn last_error(&self) -> Option<(DateTime<Utc>, String)> {
        self.inner
            .last_error
            .lock()
            .ok()
            .and_then(|last| last.clone())
    }

    /// Errors recorded so far, by stage and component.
    pub fn errors_by_source(&self) -> BTreeMap<ErrorSource, u64> {
        self.inner
            .errors_by_source
            .lock()
            .map(|by_source| by_source.clone())
            .unwrap_or_default()
    }

    /// Notes one gap in live audio (an xrun, dropped blocks, a timestamp jump).
    pub fn record_gap(&self) {
        self.inner.gaps.fetch_add(1, Ordering::Relaxed);
    }

    /// Gaps every capture stream of this station met.
    pub fn gaps(&self) -> u64 {
        self.inner.gaps.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_keeps_the_latest() {
        let tally = Telemetry::new();
        assert_eq!((tally.errors(), tally.last_error()), (0, None));
        tally.record_error("first", ErrorSource::default());
        tally.record_error("second", ErrorSource::default());
        assert_eq!(tally.errors(), 2);
        assert_eq!(
            tally.last_error().map(|(_, text)| text).as_deref(),
            Some("second")
        );
    }

    #[test]
    fn errors_are_counted_by_stage_and_component() {
        let telemetry = Telemetry::new();
        let source = |stage: &str, component: Option<&str>| ErrorSource {
            stage: Some(stage.into()),
            component: component.map(String::from),
        };
        telemetry.record_error("a", source("detect", Some("birdnet")));
        telemetry.record_error("b", source("detect", Some("birdnet")));
        telemetry.record_error("c", source("manage", None));
        let by_source = telemetry.errors_by_source();
        assert_eq!(by_source[&source("detect", Some("birdnet"))], 2);
        assert_eq!(by_source[&source("manage", None)], 1);
        assert_eq!(telemetry.errors(), 3);
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_stage_goes_queued_running_idle_and_counts_runs_errors_and_lag() {
        let telemetry = Telemetry::new();
        let probe = telemetry.register_stage("record", "recording", "every 10s", true, 1);
        let state = |t: &Telemetry| t.stages(at(100))[0].clone();
        assert_eq!(state(&telemetry).state, StageState::Idle);
        probe.queued(Some(at(10)));
        let queued = state(&telemetry);
        assert_eq!((queued.state, queued.queue_depth), (StageState::Queued, 1));
        probe.started(at(13));
        let running = state(&telemetry);
        assert_eq!(
            (running.state, running.queue_depth),
            (StageState::Running, 0)
        );
        assert_eq!(running.lag, Some(Duration::from_secs(3)));
        probe.finished(at(15), "recorded", false);
        probe.queued(Some(at(20)));
        probe.started(at(20));
        probe.finished(at(21), "no recording", true);
        let done = state(&telemetry);
        assert_eq!(
            (done.state, done.runs, done.errors, done.lag),
            (StageState::Idle, 2, 1, Some(Duration::ZERO))
        );
        assert_eq!(
            (
                done.last_started,
                done.last_finished,
                done.last_outcome.as_deref()
            ),
            (Some(at(20)), Some(at(21)), Some("no recording"))
        );
    }

    #[test]
    fn an_after_stage_lags_by_the_time_since_its_last_run() {
        let telemetry = Telemetry::new();
        let probe = telemetry.register_stage("manage", "management", "after detect", false, 1);
        assert_eq!(telemetry.stages(at(0))[0].lag, None);
        probe.queued(None);
        probe.started(at(5));
        probe.finished(at(7), "ok", false);
        assert_eq!(
            telemetry.stages(at(67))[0].lag,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn registering_a_stage_again_replaces_it_in_place() {
        let telemetry = Telemetry::new();
        let old = telemetry.register_stage("a", "recording", "every 1s", true, 1);
        telemetry.register_stage("b", "detection", "after a", false, 4);
        old.queued(None);
        old.started(at(0));
        old.finished(at(1), "x", false);
        telemetry.register_stage("a", "recording", "every 2s", true, 1);
        let stages = telemetry.stages(at(2));
        let names: Vec<_> = stages.iter().map(|s| (s.name.as_str(), s.runs)).collect();
        assert_eq!(names, [("a", 0), ("b", 0)]);
        assert_eq!(stages[1].queue_capacity, 4);
    }

    #[test]
    fn models_keep_mean_last_and_real_time_factor() {
        let telemetry = Telemetry::new();
        assert!(telemetry.models().is_empty());
        telemetry.record_inference("birdnet", "detect", Duration::from_millis(300), 3.0);
        telemetry.record_inference("birdnet", "detect", Duration::from_millis(100), 3.0);
        let stats = &telemetry.models()["birdnet"];
        assert_eq!((stats.chunks, stats.last), (2, Duration::from_millis(100)));
        assert!((stats.mean_ms().unwrap() - 200.0).abs() < 1e-9);
        assert!((stats.real_time_factor().unwrap() - 15.0).abs() < 1e-9);
        assert_eq!(ModelStats::default().real_time_factor(), None);
    }

    #[test]
    fn recent_errors_are_bounded_and_newest_first() {
        let telemetry = Telemetry::new();
        for i in 0..LAST_ERRORS + 5 {
            telemetry.record_error(format!("e{i}"), ErrorSource::default());
        }
        let recent = telemetry.recent_errors();
        assert_eq!(recent.len(), LAST_ERRORS);
        assert_eq!(recent[0].message, format!("e{}", LAST_ERRORS + 4));
    }

    #[test]
    fn clones_share_counts_and_new_handles_do_not() {
        let station = Telemetry::new();
        let other = Telemetry::new();
        let clone = station.clone();
        clone.record_error("x", ErrorSource::default());
        clone.record_gap();
        assert_eq!((station.errors(), station.gaps()), (1, 1));
        assert_eq!((other.errors(), other.gaps()), (0, 0));
    }
}

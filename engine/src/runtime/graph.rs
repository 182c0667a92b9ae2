//! The running station as a graph of tokio tasks: one worker per stage, fed by a bounded
//! queue; a timer per scheduled stage; `after` edges carry each output downstream.
//!
//! - A stage never runs twice at once: its worker takes one input at a time and runs the
//!   task on a blocking thread (models and file I/O never run on the async executor), so
//!   a slow stage never blocks the others.
//! - A scheduled run that comes while the stage is still busy waits in the queue (one
//!   place); further runs in that time are skipped and counted, never bunched up.
//! - Detection queues up to `queue` recordings; one that does not fit is logged and
//!   counted (`not_queued`), and stays in the temp folder and the store (with
//!   `required_models`, management keeps it waiting rather than deleting it unanalysed).
//!   Management and messaging runs triggered `after` a busy stage coalesce: they scan the
//!   whole temp folder / queue anyway.
//! - Shutdown (signal, `--for`, or the end of `--once`) stops the timers; each worker
//!   finishes its current run, drains what is queued, then closes its downstream queues,
//!   so work in flight completes in stage order and the store is consistent at exit.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::{Clock, Job, Station};
use crate::config::Trigger;
use crate::data::Recording;
use crate::schedule::{Aligned, next_cron};
use crate::store::{StageRunRecord, Store};
use crate::telemetry::{StageProbe, Telemetry};

/// How long to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Trigger each scheduled stage once, wait for everything downstream, stop.
    pub once: bool,
    /// Stop after this long (else: until the shutdown future completes).
    pub duration: Option<Duration>,
}

/// What a run did, for the summary printed at exit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub recordings: u64,
    pub analysed: u64,
    pub detections: u64,
    pub messages_queued: u64,
    pub kept: u64,
    pub deleted: u64,
    pub messages_sent: u64,
    pub messages_failed: u64,
    pub heartbeats: u64,
    /// Scheduled runs skipped because the stage was still busy.
    pub skipped_runs: u64,
    /// Recordings a detection queue had no room for.
    pub not_queued: u64,
    /// Stage runs that panicked (a bug in a component; the station kept going).
    pub crashed_runs: u64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} recordings, {} analysed, {} detections, {} messages queued, {} kept, {} deleted, {} messages sent, {} send failures",
            self.recordings,
            self.analysed,
            self.detections,
            self.messages_queued,
            self.kept,
            self.deleted,
            self.messages_sent,
            self.messages_failed
        )?;
        if self.heartbeats > 0 {
            write!(f, ", {} heartbeats", self.heartbeats)?;
        }
        for (n, what) in [
            (self.skipped_runs, "runs skipped (stage busy)"),
            (self.not_queued, "recordings not queued"),
            (self.crashed_runs, "runs crashed"),
        ] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Stats {
    recordings: AtomicU64,
    analysed: AtomicU64,
    detections: AtomicU64,
    messages_queued: AtomicU64,
    kept: AtomicU64,
    deleted: AtomicU64,
    messages_sent: AtomicU64,
    messages_failed: AtomicU64,
    heartbeats: AtomicU64,
    skipped_runs: AtomicU64,
    not_queued: AtomicU64,
    crashed_runs: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

impl Stats {
    fn summary(&self) -> RunSummary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RunSummary {
            recordings: get(&self.recordings),
            analysed: get(&self.analysed),
            detections: get(&self.detections),
            messages_queued: get(&self.messages_queued),
            kept: get(&self.kept),
            deleted: get(&self.deleted),
            messages_sent: get(&self.messages_sent),
            messages_failed: get(&self.messages_failed),
            heartbeats: get(&self.heartbeats),
            skipped_runs: get(&self.skipped_runs),
            not_queued: get(&self.not_queued),
            crashed_runs: get(&self.crashed_runs),
        }
    }
}

/// What a stage is asked to work on.
enum Input {
    Tick,
    Recording(Recording),
}

/// What one run of a task gave.
struct Ran {
    /// The Recording a recording stage made.
    recording: Option<Recording>,
    /// A few words on what the run did.
    outcome: String,
    /// The task reported a failure (see [`crate::telemetry`] on stage errors).
    failed: bool,
}

/// Runs one task (on a blocking thread), counting model inference in `telemetry`.
fn run_job(
    job: &Job,
    input: Input,
    now: DateTime<Utc>,
    stats: &Stats,
    telemetry: &Telemetry,
) -> Ran {
    let (recording, outcome, failed) = run_task(job, input, now, stats, telemetry);
    Ran {
        recording,
        outcome,
        failed,
    }
}

fn run_task(
    job: &Job,
    input: Input,
    now: DateTime<Utc>,
    stats: &Stats,
    telemetry: &Telemetry,
) -> (Option<Recording>, String, bool) {
    match (job, input) {
        (Job::Recording(task), _) => {
            let recording = task.run(now);
            add(&stats.recordings, usize::from(recording.is_some()));
            let outcome = recording.as_ref().map_or_else(
                || "no recording".to_string(),
                |r| format!("recorded {}", r.id),
            );
            (recording, outcome, false)
        }
        (Job::Detection(task), Input::Recording(recording)) => {
            let report = task.run(&recording);
            if let Some(compute) = report.inference {
                telemetry.record_inference(
                    &task.model.name,
                    &task.stage,
                    compute,
                    recording.duration,
                );
            }
            add(&stats.analysed, usize::from(report.stored));
            add(&stats.detections, report.detections);
            add(&stats.messages_queued, report.messages);
            let outcome = if report.stored {
                format!(
                    "{}: {} detections, {} cleaned away, {} messages",
                    recording.id, report.detections, report.cleaned, report.messages
                )
            } else {
                format!("{}: no output stored", recording.id)
            };
            (None, outcome, report.failure.is_some())
        }
        (Job::Detection(task), Input::Tick) => {
            tracing::warn!(stage = %task.stage, "a detection stage was triggered without a recording");
            (None, "no recording given".to_string(), false)
        }
        (Job::Management(task), _) => {
            let report = task.run(now);
            add(&stats.kept, report.kept);
            add(&stats.deleted, report.deleted + report.retention_deleted);
            let mut outcome = format!(
                "{} kept, {} deleted, {} waiting, {} errors",
                report.kept, report.deleted, report.waiting, report.errors
            );
            if report.recovered > 0 {
                outcome.push_str(&format!(", {} recovered", report.recovered));
            }
            if report.retention_deleted > 0 {
                outcome.push_str(&format!(
                    ", {} deleted by retention",
                    report.retention_deleted
                ));
            }
            (None, outcome, report.errors > 0)
        }
        (Job::Messaging(task), _) => {
            let report = task.run(now);
            add(&stats.messages_sent, report.successful);
            add(&stats.messages_failed, report.failed + report.send_errors);
            (
                None,
                format!(
                    "{} selected, {} sent, {} failed",
                    report.selected,
                    report.successful,
                    report.failed + report.send_errors
                ),
                report.failed + report.send_errors > 0,
            )
        }
        (Job::Heartbeat(task), _) => {
            let report = task.run(now);
            add(&stats.heartbeats, 1);
            (
                None,
                format!(
                    "{} metrics, delivered {} times",
                    report.metrics, report.delivered
                ),
                false,
            )
        }
        (Job::Summary(task), _) => {
            let queued = task.run(now);
            add(&stats.messages_queued, queued);
            (None, format!("{queued} summaries queued"), false)
        }
    }
}

/// The stage kind of a job, as stored in `stage_runs`.
fn kind_of(job: &Job) -> &'static str {
    match job {
        Job::Recording(_) => "recording",
        Job::Detection(_) => "detection",
        Job::Management(_) => "management",
        Job::Messaging(_) => "messaging",
        Job::Heartbeat(_) => "heartbeat",
        Job::Summary(_) => "summary",
    }
}

/// A downstream stage's queue and whether it takes the Recording itself.
struct Downstream {
    name: String,
    sender: mpsc::Sender<Input>,
    wants_recording: bool,
    probe: StageProbe,
}

struct Worker {
    name: String,
    job: Arc<Job>,
    downstream: Vec<Downstream>,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    telemetry: Telemetry,
    probe: StageProbe,
}

async fn worker(w: Worker, mut queue: mpsc::Receiver<Input>) {
    let Worker {
        name,
        job,
        downstream,
        stats,
        clock,
        store,
        telemetry,
        probe,
    } = w;
    while let Some(input) = queue.recv().await {
        let (job, run_stats, store, stage, run_clock, run_telemetry, run_probe) = (
            job.clone(),
            stats.clone(),
            store.clone(),
            name.clone(),
            clock.clone(),
            telemetry.clone(),
            probe.clone(),
        );
        let now = clock.now();
        probe.started(now);
        let run = move || {
            let ran = run_job(&job, input, now, &run_stats, &run_telemetry);
            let record = StageRunRecord {
                stage,
                kind: kind_of(&job).into(),
                started_on: now,
                finished_on: run_clock.now(),
                outcome: ran.outcome,
            };
            run_probe.finished(record.finished_on, record.outcome.clone(), ran.failed);
            if let Err(error) = store.store_stage_run(&record) {
                tracing::warn!(stage = %record.stage, %error, "cannot record the stage run");
            }
            ran.recording
        };
        let recording = match tokio::task::spawn_blocking(run).await {
            Ok(recording) => recording,
            Err(error) => {
                probe.finished(clock.now(), "crashed", true);
                stats.crashed_runs.fetch_add(1, Ordering::Relaxed);
                tracing::error!(stage = %name, %error, "the stage's run crashed; the station goes on");
                continue;
            }
        };
        for next in &downstream {
            let input = match (&recording, next.wants_recording) {
                (Some(recording), true) => Input::Recording(recording.clone()),
                (None, true) => continue,
                (_, false) => Input::Tick,
            };
            match next.sender.try_send(input) {
                Ok(()) => next.probe.queued(None),
                Err(TrySendError::Full(Input::Recording(recording))) => {
                    stats.not_queued.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(stage = %next.name, recording = %recording.id, path = ?recording.path, "detection queue full; the recording stays in the temp folder unanalysed");
                }
                Err(TrySendError::Full(Input::Tick)) => {
                    tracing::debug!(stage = %next.name, "already has a run waiting; runs coalesce");
                }
                Err(TrySendError::Closed(_)) => {}
            }
        }
    }
}

async fn sleep_until(target: DateTime<Utc>, clock: &dyn Clock) {
    let wait = (target - clock.now()).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep(wait).await;
}

/// Queues a scheduled run due at `due`.
fn enqueue_tick(
    name: &str,
    sender: &mpsc::Sender<Input>,
    stats: &Stats,
    probe: &StageProbe,
    due: DateTime<Utc>,
) -> bool {
    match sender.try_send(Input::Tick) {
        Ok(()) => {
            probe.queued(Some(due));
            true
        }
        Err(TrySendError::Full(_)) => {
            stats.skipped_runs.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(stage = %name, "still busy with the previous run; this run is skipped");
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

async fn timer(
    name: String,
    trigger: Trigger,
    sender: mpsc::Sender<Input>,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    timezone: chrono_tz::Tz,
    probe: StageProbe,
) {
    match trigger {
        Trigger::Every { every, offset } => {
            let mut schedule = Aligned::starting_at(clock.now(), every, offset);
            loop {
                let due = schedule.next_due();
                sleep_until(due, clock.as_ref()).await;
                if let Some(skipped) = schedule.take_due(clock.now()) {
                    if skipped > 0 {
                        tracing::warn!(stage = %name, skipped, "late: missed schedule slots are skipped, not made up");
                    }
                    if !enqueue_tick(&name, &sender, &stats, &probe, due) {
                        return;
                    }
                }
            }
        }
        Trigger::Cron(cron) => loop {
            let Some(next) = next_cron(clock.now(), &cron, timezone) else {
                tracing::info!(stage = %name, cron = %cron.text, "the cron expression has no more fire times");
                return;
            };
            sleep_until(next, clock.as_ref()).await;
            if !enqueue_tick(&name, &sender, &stats, &probe, next) {
                return;
            }
        },
        Trigger::After(_) => {}
    }
}

impl Station {
    /// Runs the station until `shutdown` completes, `options.duration` passes, or (with
    /// `options.once`) each scheduled stage has run once with everything downstream.
    pub async fn run(
        mut self,
        options: RunOptions,
        clock: Arc<dyn Clock>,
        shutdown: impl Future<Output = ()>,
    ) -> RunSummary {
        let stats = Arc::new(Stats::default());
        let probes: Vec<StageProbe> = self
            .stages
            .iter()
            .map(|s| {
                let (trigger, scheduled) = match &s.trigger {
                    Trigger::Every { every, offset } if offset.is_zero() => {
                        (format!("every {}s", every.as_secs()), true)
                    }
                    Trigger::Every { every, offset } => (
                        format!("every {}s + {}s", every.as_secs(), offset.as_secs()),
                        true,
                    ),
                    Trigger::Cron(cron) => (format!("cron {}", cron.text), true),
                    Trigger::After(up) => (
                        format!(
                            "after {}",
                            self.stages.get(*up).map_or("?", |u| u.name.as_str())
                        ),
                        false,
                    ),
                };
                self.telemetry.register_stage(
                    &s.name,
                    kind_of(&s.job),
                    &trigger,
                    scheduled,
                    s.queue.max(1),
                )
            })
            .collect();
        let (mut senders, receivers): (Vec<_>, Vec<_>) = self
            .stages
            .iter()
            .map(|s| mpsc::channel::<Input>(s.queue.max(1)))
            .unzip();
        let mut workers = Vec::new();
        for (i, receiver) in receivers.into_iter().enumerate() {
            let downstream = self
                .stages
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s.trigger, Trigger::After(up) if up == i))
                .map(|(j, s)| Downstream {
                    name: s.name.clone(),
                    sender: senders[j].clone(),
                    wants_recording: matches!(*s.job, Job::Detection(_)),
                    probe: probes[j].clone(),
                })
                .collect();
            let stage = &self.stages[i];
            let w = Worker {
                name: stage.name.clone(),
                job: stage.job.clone(),
                downstream,
                stats: stats.clone(),
                clock: clock.clone(),
                store: self.store.clone(),
                telemetry: self.telemetry.clone(),
                probe: probes[i].clone(),
            };
            workers.push(tokio::spawn(worker(w, receiver)));
        }
        // The recovery backlog goes to its detection stages first, waiting for room in
        // their queues (the feeder holds a sender until it is done).
        for (i, recordings) in std::mem::take(&mut self.backlog) {
            let sender = senders[i].clone();
            let probe = probes[i].clone();
            tokio::spawn(async move {
                for recording in recordings {
                    if sender.send(Input::Recording(recording)).await.is_err() {
                        break;
                    }
                    probe.queued(None);
                }
            });
        }
        // From here on, only timers (or the once-ticks), backlog feeders and upstream
        // workers hold senders: when they are gone, queues close in stage order.
        let roots: Vec<(usize, mpsc::Sender<Input>)> = senders
            .drain(..)
            .enumerate()
            .filter(|(i, _)| !matches!(self.stages[*i].trigger, Trigger::After(_)))
            .collect();
        if options.once {
            let now = clock.now();
            for (i, sender) in &roots {
                enqueue_tick(&self.stages[*i].name, sender, &stats, &probes[*i], now);
            }
            drop(roots);
        } else {
            let timers: Vec<_> = roots
                .into_iter()
                .map(|(i, sender)| {
                    let stage = &self.stages[i];
                    tokio::spawn(timer(
                        stage.name.clone(),
                        stage.trigger.clone(),
                        sender,
                        stats.clone(),
                        clock.clone(),
                        self.settings.deployment.timezone,
                        probes[i].clone(),
                    ))
                })
                .collect();
            match options.duration {
                Some(duration) => {
                    tokio::select! {
                        _ = shutdown => {}
                        _ = tokio::time::sleep(duration) => {}
                    }
                }
                None => shutdown.await,
            }
            tracing::info!("stopping: finishing the work in flight");
            for timer in &timers {
                timer.abort();
            }
            for timer in timers {
                let _ = timer.await;
            }
        }
        for worker in workers {
            if let Err(error) = worker.await {
                tracing::error!(%error, "a stage worker stopped abnormally");
            }
        }
        stats.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::runtime::{StageRun, TokioClock};
    use crate::tasks::testing::{Calls, FakeModel, FakeRecorder, FakeStore};
    use crate::tasks::{DetectionTask, Named, RecordingTask};

    fn station(calls: &Calls, every: u64, queue: usize) -> Station {
        let store = Arc::new(FakeStore::new(calls));
        let recording = RecordingTask {
            stage: "record".into(),
            recorder: Named::new(
                "rec",
                Arc::new(FakeRecorder {
                    calls: calls.clone(),
                    fail: false,
                }),
            ),
            conditions: Vec::new(),
            any_conditions: Vec::new(),
            store: store.clone(),
            temp_dir: "/tmp/unused".into(),
            retention: None,
            device_id: "test".into(),
            timezone: chrono_tz::UTC,
        };
        let detection = DetectionTask {
            stage: "detect".into(),
            model: Named::new(
                "m",
                Arc::new(FakeModel {
                    calls: calls.clone(),
                    detections: 2,
                }),
            ),
            filters: Vec::new(),
            cleaners: Vec::new(),
            factories: Vec::new(),
            store: store.clone(),
            message_store: store.clone(),
        };
        let settings = Settings::new(
            std::path::Path::new("/tmp/p.toml"),
            toml::from_str("name = \"t\"").unwrap(),
            Default::default(),
            Default::default(),
            Default::default(),
            None,
            None,
        );
        Station {
            backlog: Vec::new(),
            telemetry: crate::telemetry::Telemetry::new(),
            settings,
            stages: vec![
                StageRun {
                    name: "record".into(),
                    job: Arc::new(Job::Recording(recording)),
                    trigger: Trigger::Every {
                        every: Duration::from_secs(every),
                        offset: Duration::ZERO,
                    },
                    queue: 1,
                },
                StageRun {
                    name: "detect".into(),
                    job: Arc::new(Job::Detection(detection)),
                    trigger: Trigger::After(0),
                    queue,
                },
            ],
            store,
        }
    }

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-05-01T06:00:01Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[tokio::test(start_paused = true)]
    async fn scheduled_recordings_flow_into_detection_on_the_aligned_grid() {
        let calls = Calls::default();
        let clock = Arc::new(TokioClock::new(start()));
        let options = RunOptions {
            once: false,
            duration: Some(Duration::from_secs(35)),
        };
        let summary = station(&calls, 10, 4)
            .run(options, clock, std::future::pending())
            .await;
        // 06:00:01 + 35 s: runs at :10, :20, :30.
        assert_eq!(
            (summary.recordings, summary.analysed, summary.detections),
            (3, 3, 6),
            "{summary:?}"
        );
        let calls = calls.take();
        assert_eq!(calls.iter().filter(|c| *c == "recorder.record").count(), 3);
        assert_eq!(calls.iter().filter(|c| *c == "model.run").count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn once_runs_each_scheduled_stage_once_and_waits_for_downstream() {
        let calls = Calls::default();
        let clock = Arc::new(TokioClock::new(start()));
        let summary = station(&calls, 3600, 4)
            .run(
                RunOptions {
                    once: true,
                    duration: None,
                },
                clock,
                std::future::pending(),
            )
            .await;
        assert_eq!((summary.recordings, summary.analysed), (1, 1));
        assert_eq!(
            calls.take(),
            [
                "store.get_current_deployment",
                "recorder.record",
                "store.store_recording",
                "model.run",
                "store.store_model_output"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn telemetry_counts_each_stage_its_queue_and_the_model() {
        let calls = Calls::default();
        let clock = Arc::new(TokioClock::new(start()));
        let station = station(&calls, 10, 4);
        let telemetry = station.telemetry.clone();
        let options = RunOptions {
            once: false,
            duration: Some(Duration::from_secs(35)),
        };
        station
            .run(options, clock.clone(), std::future::pending())
            .await;
        let stages = telemetry.stages(clock.now());
        let names: Vec<_> = stages
            .iter()
            .map(|s| (s.name.as_str(), s.trigger.as_str(), s.runs, s.errors))
            .collect();
        assert_eq!(
            names,
            [
                ("record", "every 10s", 3, 0),
                ("detect", "after record", 3, 0)
            ]
        );
        assert!(
            stages
                .iter()
                .all(|s| s.queue_depth == 0 && s.state == crate::telemetry::StageState::Idle)
        );
        assert_eq!(stages[1].queue_capacity, 4);
        // Paused time: each tick's run starts at its due time.
        assert_eq!(stages[0].lag, Some(Duration::ZERO));
        let models = telemetry.models();
        assert_eq!(
            (models["m"].chunks, models["m"].stage.as_str()),
            (3, "detect")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_finishes_the_work_in_flight() {
        let calls = Calls::default();
        let clock = Arc::new(TokioClock::new(start()));
        let shutdown = tokio::time::sleep(Duration::from_secs(25));
        let summary = station(&calls, 10, 4)
            .run(RunOptions::default(), clock, shutdown)
            .await;
        assert_eq!(
            (summary.recordings, summary.analysed),
            (2, 2),
            "each recording made before the stop was analysed"
        );
    }
}

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

/// Runs one task (on a blocking thread); returns the Recording a recording stage made
/// and a few words on what the run did.
fn run_job(
    job: &Job,
    input: Input,
    now: DateTime<Utc>,
    stats: &Stats,
) -> (Option<Recording>, String) {
    match (job, input) {
        (Job::Recording(task), _) => {
            let recording = task.run(now);
            add(&stats.recordings, usize::from(recording.is_some()));
            let outcome = recording.as_ref().map_or_else(
                || "no recording".to_string(),
                |r| format!("recorded {}", r.id),
            );
            (recording, outcome)
        }
        (Job::Detection(task), Input::Recording(recording)) => {
            let report = task.run(&recording);
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
            (None, outcome)
        }
        (Job::Detection(task), Input::Tick) => {
            tracing::warn!(stage = %task.stage, "a detection stage was triggered without a recording");
            (None, "no recording given".to_string())
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
            (None, outcome)
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
            )
        }
        (Job::Summary(task), _) => {
            let queued = task.run(now);
            add(&stats.messages_queued, queued);
            (None, format!("{queued} summaries queued"))
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
}

struct Worker {
    name: String,
    job: Arc<Job>,
    downstream: Vec<Downstream>,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
}

async fn worker(w: Worker, mut queue: mpsc::Receiver<Input>) {
    let Worker {
        name,
        job,
        downstream,
        stats,
        clock,
        store,
    } = w;
    while let Some(input) = queue.recv().await {
        let (job, run_stats, store, stage, run_clock) = (
            job.clone(),
            stats.clone(),
            store.clone(),
            name.clone(),
            clock.clone(),
        );
        let now = clock.now();
        let run = move || {
            let (recording, outcome) = run_job(&job, input, now, &run_stats);
            let record = StageRunRecord {
                stage,
                kind: kind_of(&job).into(),
                started_on: now,
                finished_on: run_clock.now(),
                outcome,
            };
            if let Err(error) = store.store_stage_run(&record) {
                tracing::warn!(stage = %record.stage, %error, "cannot record the stage run");
            }
            recording
        };
        let recording = match tokio::task::spawn_blocking(run).await {
            Ok(recording) => recording,
            Err(error) => {
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
                Ok(()) => {}
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

fn enqueue_tick(name: &str, sender: &mpsc::Sender<Input>, stats: &Stats) -> bool {
    match sender.try_send(Input::Tick) {
        Ok(()) => true,
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
) {
    match trigger {
        Trigger::Every { every, offset } => {
            let mut schedule = Aligned::starting_at(clock.now(), every, offset);
            loop {
                sleep_until(schedule.next_due(), clock.as_ref()).await;
                if let Some(skipped) = schedule.take_due(clock.now()) {
                    if skipped > 0 {
                        tracing::warn!(stage = %name, skipped, "late: missed schedule slots are skipped, not made up");
                    }
                    if !enqueue_tick(&name, &sender, &stats) {
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
            if !enqueue_tick(&name, &sender, &stats) {
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
            };
            workers.push(tokio::spawn(worker(w, receiver)));
        }
        // The recovery backlog goes to its detection stages first, waiting for room in
        // their queues (the feeder holds a sender until it is done).
        for (i, recordings) in std::mem::take(&mut self.backlog) {
            let sender = senders[i].clone();
            tokio::spawn(async move {
                for recording in recordings {
                    if sender.send(Input::Recording(recording)).await.is_err() {
                        break;
                    }
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
            for (i, sender) in &roots {
                enqueue_tick(&self.stages[*i].name, sender, &stats);
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

//! Progress across a cluster: each `acoupi reprocess` task keeps a small JSON status
//! file next to its store (`<store stem>.status.json`), and `acoupi reprocess --status
//! OUT` sums the files of a folder ([`Summary`]).
//!
//! [`StatusFile`] is a [`Progress`] that rewrites the file after each commit and at
//! least every [`WRITE_EVERY`] while the batch runs, then once with the final state;
//! each write goes to a temporary file in the same folder that is renamed over the old
//! one, so a reader never sees half a file. The counts are what the store holds (files
//! committed), not what is still in flight.
//!
//! A task killed before it could write its final state (`scancel`, `kill -9`, a node
//! lost) leaves `running` behind; [`Summary`] calls such a task `stopped` when it ran on
//! this host and its process is gone, and `silent` when its file has not changed for
//! [`SILENT_AFTER`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::progress::{Progress, Totals};

/// A running task's file is rewritten at least this often.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);
/// A `running` file older than this is reported as `silent`.
pub const SILENT_AFTER: Duration = Duration::from_secs(120);
/// What status file names end with.
pub const SUFFIX: &str = ".status.json";

/// What a task says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Running,
    Done,
    Failed,
}

/// One task's status file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// `I/N`, or absent for an unsharded run.
    pub shard: Option<String>,
    pub state: TaskState,
    /// Files in this task's shard.
    pub files_total: u64,
    /// Of those, done: analysed, filtered or bad, now or by an earlier run.
    pub files_done: u64,
    /// Of the done files, those an earlier run had done (skipped now).
    pub files_skipped: u64,
    /// Files that could not be analysed in this run.
    pub errors: u64,
    /// Hours of audio analysed in this run.
    pub audio_hours: f64,
    /// Bytes this run has to read, and has read.
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Files per second in this run.
    pub files_per_second: f64,
    /// Seconds of audio analysed per second.
    pub real_time_factor: f64,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
    /// Why the task failed (state `failed`).
    pub error: Option<String>,
}

impl TaskStatus {
    /// Seconds until this task is done at its rate so far (by bytes), if it has one.
    pub fn eta(&self) -> Option<Duration> {
        let elapsed = (self.updated_at - self.started_at).to_std().ok()?;
        if self.state != TaskState::Running || self.bytes_done == 0 || elapsed.is_zero() {
            return None;
        }
        let rate = self.bytes_done as f64 / elapsed.as_secs_f64();
        let left = self.bytes_total.saturating_sub(self.bytes_done) as f64;
        Some(Duration::from_secs_f64(left / rate))
    }
}

/// The status file of a store: `<stem>.status.json` beside it.
pub fn status_path(store: &Path) -> PathBuf {
    let stem = store
        .file_stem()
        .map_or_else(|| "acoupi".into(), |s| s.to_string_lossy().into_owned());
    store.with_file_name(format!("{stem}{SUFFIX}"))
}

/// This machine's name (for telling whose process a status file speaks of).
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Writes `status` to `path` atomically (a temporary file renamed over it).
pub fn write_status(path: &Path, status: &TaskStatus) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    let name = path
        .file_name()
        .map_or_else(|| "status".into(), |n| n.to_string_lossy().into_owned());
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

/// A [`Progress`] that keeps a status file, passing every call on to `inner`.
pub struct StatusFile<P: Progress> {
    inner: P,
    path: PathBuf,
    status: TaskStatus,
    started: Instant,
    last_write: Option<Instant>,
    warned: bool,
}

impl<P: Progress> StatusFile<P> {
    /// A status for the task of `shard` writing beside `store`; nothing is written
    /// before the batch starts.
    pub fn new(inner: P, store: &Path, shard: Option<String>) -> StatusFile<P> {
        let now = Utc::now();
        StatusFile {
            inner,
            path: status_path(store),
            status: TaskStatus {
                shard,
                state: TaskState::Running,
                files_total: 0,
                files_done: 0,
                files_skipped: 0,
                errors: 0,
                audio_hours: 0.0,
                bytes_total: 0,
                bytes_done: 0,
                files_per_second: 0.0,
                real_time_factor: 0.0,
                started_at: now,
                updated_at: now,
                host: host_name(),
                pid: std::process::id(),
                error: None,
            },
            started: Instant::now(),
            last_write: None,
            warned: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The progress it passes calls on to (to run without the status file).
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }

    /// Writes the final state (`done`, or `failed` with why).
    pub fn end(&mut self, error: Option<String>) {
        self.status.state = match error {
            None => TaskState::Done,
            Some(_) => TaskState::Failed,
        };
        self.status.error = error;
        self.write();
    }

    fn write(&mut self) {
        self.status.updated_at = Utc::now();
        self.last_write = Some(Instant::now());
        if let Err(error) = write_status(&self.path, &self.status)
            && !std::mem::replace(&mut self.warned, true)
        {
            tracing::warn!(path = %self.path.display(), %error, "reprocess: cannot write the status file");
        }
    }
}

impl<P: Progress> Progress for StatusFile<P> {
    fn selected(&mut self, in_shard: u64, skipped: u64) {
        self.status.files_total = in_shard;
        self.status.files_skipped = skipped;
        self.status.files_done = skipped;
        self.inner.selected(in_shard, skipped);
    }

    fn start(&mut self, files: u64, bytes: u64) {
        self.status.bytes_total = bytes;
        self.started = Instant::now();
        self.status.started_at = Utc::now();
        self.inner.start(files, bytes);
        self.write();
    }

    fn update(&mut self, done: &Totals) {
        self.inner.update(done);
    }

    fn committed(&mut self, stored: &Totals) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let per_second = |n: f64| if elapsed > 0.0 { n / elapsed } else { 0.0 };
        self.status.files_done = self.status.files_skipped + stored.files;
        self.status.errors = stored.errors;
        self.status.audio_hours = stored.audio_seconds / 3600.0;
        self.status.bytes_done = stored.bytes;
        self.status.files_per_second = per_second(stored.files as f64);
        self.status.real_time_factor = per_second(stored.audio_seconds);
        self.inner.committed(stored);
        if self
            .last_write
            .is_none_or(|last| last.elapsed() >= WRITE_EVERY)
        {
            self.write();
        }
    }

    fn finish(&mut self) {
        self.inner.finish();
    }
}

/// How a task looks from `--status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Running,
    Done,
    Failed,
    /// `running`, but its process on this host is gone.
    Stopped,
    /// `running`, but the file has not changed for [`SILENT_AFTER`].
    Silent,
}

impl Seen {
    pub fn as_str(self) -> &'static str {
        match self {
            Seen::Running => "running",
            Seen::Done => "done",
            Seen::Failed => "failed",
            Seen::Stopped => "stopped",
            Seen::Silent => "silent",
        }
    }
}

/// How `--status` sees a task, given this host's name, whether a process id is alive
/// here, and the time now.
pub fn seen(
    status: &TaskStatus,
    host: &str,
    alive: impl Fn(u32) -> bool,
    now: DateTime<Utc>,
) -> Seen {
    match status.state {
        TaskState::Done => Seen::Done,
        TaskState::Failed => Seen::Failed,
        TaskState::Running if status.host == host && !alive(status.pid) => Seen::Stopped,
        TaskState::Running
            if (now - status.updated_at)
                .to_std()
                .is_ok_and(|age| age > SILENT_AFTER) =>
        {
            Seen::Silent
        }
        TaskState::Running => Seen::Running,
    }
}

/// Whether process `pid` exists on this machine (Linux: `/proc/<pid>`; elsewhere it is
/// taken to be alive, and a dead task shows as `silent` in time).
pub fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// The tasks of one output folder, summed.
#[derive(Debug, Clone)]
pub struct Summary {
    /// `(file, status, how it looks)`, sorted by file name.
    pub tasks: Vec<(PathBuf, TaskStatus, Seen)>,
    /// Files that are not status files acoupi can read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl Summary {
    /// Reads every `*.status.json` in `folder` (or the one file `folder` names).
    pub fn read(folder: &Path) -> std::io::Result<Summary> {
        let mut files: Vec<PathBuf> = if folder.is_dir() {
            std::fs::read_dir(folder)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(SUFFIX))
                .collect()
        } else {
            vec![folder.to_path_buf()]
        };
        files.sort();
        let host = host_name();
        let now = Utc::now();
        let mut summary = Summary {
            tasks: Vec::new(),
            unreadable: Vec::new(),
        };
        for file in files {
            let read = std::fs::read(&file)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<TaskStatus>(&bytes).map_err(|e| e.to_string())
                });
            match read {
                Ok(status) => {
                    let looks = seen(&status, &host, process_alive, now);
                    summary.tasks.push((file, status, looks));
                }
                Err(reason) => summary.unreadable.push((file, reason)),
            }
        }
        Ok(summary)
    }

    /// How many tasks look `seen`.
    pub fn count(&self, seen: Seen) -> usize {
        self.tasks.iter().filter(|(_, _, s)| *s == seen).count()
    }

    /// Whether every task reported is done, and every shard of its count reported.
    pub fn complete(&self) -> bool {
        let expected = self.expected_shards();
        !self.tasks.is_empty()
            && self.count(Seen::Done) == self.tasks.len()
            && expected.is_none_or(|n| n == self.tasks.len())
    }

    /// The shard count the tasks name (the largest, if they disagree).
    fn expected_shards(&self) -> Option<usize> {
        self.tasks
            .iter()
            .filter_map(|(_, s, _)| s.shard.as_deref()?.split_once('/')?.1.parse().ok())
            .max()
    }

    /// A few lines: the totals, an ETA, then one line per task.
    pub fn render(&self) -> String {
        let sum = |f: fn(&TaskStatus) -> u64| self.tasks.iter().map(|(_, s, _)| f(s)).sum::<u64>();
        let hours: f64 = self.tasks.iter().map(|(_, s, _)| s.audio_hours).sum();
        let states = [
            Seen::Done,
            Seen::Running,
            Seen::Stopped,
            Seen::Silent,
            Seen::Failed,
        ]
        .iter()
        .filter(|s| self.count(**s) > 0)
        .map(|s| format!("{} {}", self.count(*s), s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
        let of = self
            .expected_shards()
            .map_or_else(String::new, |n| format!(" of {n}"));
        let mut text = format!(
            "tasks: {} reported{of}: {}\nfiles: {} of {} done ({} errors); audio analysed: {hours:.2} h\n",
            self.tasks.len(),
            if states.is_empty() {
                "none"
            } else {
                states.as_str()
            },
            sum(|s| s.files_done),
            sum(|s| s.files_total),
            sum(|s| s.errors),
        );
        let eta = self
            .tasks
            .iter()
            .filter(|(_, _, seen)| *seen == Seen::Running)
            .filter_map(|(_, s, _)| s.eta())
            .max();
        match eta {
            Some(eta) => text.push_str(&format!(
                "ETA: {} (the slowest running task, at its rate so far)\n",
                humantime::format_duration(Duration::from_secs(eta.as_secs()))
            )),
            None if self.complete() => text.push_str("complete: every task is done\n"),
            None => {}
        }
        for (file, status, seen) in &self.tasks {
            let name = file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            text.push_str(&format!(
                "  {name}: {} {}/{} files, {:.2} h, {:.1}x real time, updated {}{}\n",
                seen.as_str(),
                status.files_done,
                status.files_total,
                status.audio_hours,
                status.real_time_factor,
                status.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
                status
                    .error
                    .as_ref()
                    .map_or_else(String::new, |e| format!(": {}", super::printable(e))),
            ));
        }
        for (file, reason) in &self.unreadable {
            text.push_str(&format!(
                "  {}: unreadable: {}\n",
                super::printable(&file.to_string_lossy()),
                super::printable(reason)
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Vec<String>);
    impl Progress for Record {
        fn start(&mut self, files: u64, _: u64) {
            self.0.push(format!("start {files}"));
        }
        fn committed(&mut self, stored: &Totals) {
            self.0.push(format!("committed {}", stored.files));
        }
    }

    fn read(path: &Path) -> TaskStatus {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn the_file_follows_the_commits_and_ends_done_or_failed() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("shard-2-of-4.duckdb");
        let mut file = StatusFile::new(Record::default(), &store, Some("2/4".into()));
        assert_eq!(file.path(), dir.path().join("shard-2-of-4.status.json"));
        file.selected(10, 3);
        file.start(7, 7000);
        let first = read(file.path());
        assert_eq!(
            (
                first.state,
                first.files_total,
                first.files_done,
                first.bytes_total
            ),
            (TaskState::Running, 10, 3, 7000)
        );
        assert_eq!(
            (first.pid, first.host.clone()),
            (std::process::id(), host_name())
        );
        let stored = Totals {
            files: 2,
            bytes: 2000,
            audio_seconds: 7200.0,
            errors: 1,
        };
        file.committed(&stored);
        // The final state is always written.
        file.end(None);
        let done = read(file.path());
        assert_eq!(
            (done.state, done.files_done, done.errors, done.audio_hours),
            (TaskState::Done, 5, 1, 2.0)
        );
        assert_eq!(file.inner.0, ["start 7", "committed 2"]);
        file.end(Some("store: disk full".into()));
        let failed = read(file.path());
        assert_eq!(failed.state, TaskState::Failed);
        assert_eq!(failed.error.as_deref(), Some("store: disk full"));
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    fn status(shard: &str, state: TaskState, done: u64, total: u64) -> TaskStatus {
        let now = Utc::now();
        TaskStatus {
            shard: Some(shard.into()),
            state,
            files_total: total,
            files_done: done,
            files_skipped: 0,
            errors: 0,
            audio_hours: done as f64 / 60.0,
            bytes_total: total * 1000,
            bytes_done: done * 1000,
            files_per_second: 1.0,
            real_time_factor: 60.0,
            started_at: now - chrono::Duration::seconds(done as i64),
            updated_at: now,
            host: "node-1".into(),
            pid: 42,
            error: None,
        }
    }

    #[test]
    fn a_task_killed_without_a_word_is_stopped_here_and_silent_elsewhere() {
        let now = Utc::now();
        let running = status("1/2", TaskState::Running, 1, 4);
        assert_eq!(seen(&running, "node-1", |_| true, now), Seen::Running);
        assert_eq!(seen(&running, "node-1", |_| false, now), Seen::Stopped);
        assert_eq!(seen(&running, "login", |_| false, now), Seen::Running);
        let later = now + chrono::Duration::seconds(121);
        assert_eq!(seen(&running, "login", |_| false, later), Seen::Silent);
        let done = status("2/2", TaskState::Done, 4, 4);
        assert_eq!(seen(&done, "node-1", |_| false, later), Seen::Done);
    }

    #[test]
    fn the_summary_sums_the_tasks_and_takes_the_slowest_eta() {
        let dir = tempfile::tempdir().unwrap();
        let mut slow = status("1/3", TaskState::Running, 2, 10);
        slow.pid = std::process::id();
        slow.host = host_name();
        let done = status("2/3", TaskState::Done, 5, 5);
        write_status(&dir.path().join("shard-1-of-3.status.json"), &slow).unwrap();
        write_status(&dir.path().join("shard-2-of-3.status.json"), &done).unwrap();
        std::fs::write(dir.path().join("broken.status.json"), b"{").unwrap();
        std::fs::write(dir.path().join("shard-1-of-3.duckdb"), b"").unwrap();
        let summary = Summary::read(dir.path()).unwrap();
        assert_eq!(summary.tasks.len(), 2);
        assert_eq!(summary.unreadable.len(), 1);
        assert!(!summary.complete());
        let text = summary.render();
        assert!(
            text.starts_with(
                "tasks: 2 reported of 3: 1 done, 1 running\nfiles: 7 of 15 done (0 errors)"
            ),
            "{text}"
        );
        // 2000 of 10000 bytes in 2 s: 8 s to go.
        assert!(text.contains("ETA: 8s"), "{text}");
        assert!(text.contains("broken.status.json: unreadable"), "{text}");
        write_status(
            &dir.path().join("shard-1-of-3.status.json"),
            &status("1/3", TaskState::Done, 10, 10),
        )
        .unwrap();
        write_status(
            &dir.path().join("shard-3-of-3.status.json"),
            &status("3/3", TaskState::Done, 1, 1),
        )
        .unwrap();
        std::fs::remove_file(dir.path().join("broken.status.json")).unwrap();
        let summary = Summary::read(dir.path()).unwrap();
        assert!(summary.complete());
        assert!(summary.render().contains("complete: every task is done"));
    }
}

//! Batch reprocessing of archived audio (`acoupi reprocess`): every WAV or FLAC file
//! under a folder goes through the same detection stages that ran live (processing filters →
//! model → cleaners → message factories → store), on every core, resumably, optionally
//! as one deterministic shard of N.
//!
//! The parts, one job each:
//! - [`discovery`]: walks the archive, lists WAV and FLAC files with size and
//!   modification time;
//! - [`time_source`]: when each file was recorded (a `--time-format` pattern, GUANO, the
//!   AudioMoth comment, a `YYYYMMDD_HHMMSS` file name, else the file's mtime);
//! - [`shard`]: `--shard I/N`, by an xxh3 hash of the path relative to the archive root;
//! - [`array_task`]: `--shard auto`, the shard of an array task from its engine's
//!   variables (Slurm, Kubernetes, AWS Batch, Cloud Run);
//! - [`plan`]: `--plan`, the archive listed once with durations, split into shards by
//!   audio duration (greedy longest-first);
//! - [`status`]: the status file each task keeps, and `--status` over a folder of them;
//! - [`fingerprint`]: what "processed with the same model and parameters" means;
//! - [`capture`]: a store that keeps what a [`DetectionTask`] writes, so a file's
//!   outputs, messages and its `reprocessed_files` row are committed together;
//! - [`batch`]: the bounded pipeline (a feeder, `jobs` worker threads, one writer);
//! - [`progress`]: the [`Progress`] callback the writer reports running totals to;
//! - [`printable`](mod@printable): file names and reasons escaped for reports and logs.
//!
//! # Resuming
//!
//! Each analysed file gets one `reprocessed_files` row, committed in the same
//! transaction as its recording, model outputs and messages. A file is skipped when a
//! row exists for its absolute path and the current [`fingerprint`] with the same size
//! and modification time (to the nanosecond). Path + size + mtime rather than a hash of
//! the contents: deciding what to skip must not read 2 TB again, and archives are
//! append-only in practice; a file rewritten in place with the same size and mtime is
//! the case this misses. A changed file is analysed again (its earlier results stay).
//! Files recorded with status `error` are skipped too, unless `retry_errors`.
//!
//! The writer commits a batch (up to [`batch::BATCH_FILES`] files, or what arrived within
//! [`batch::BATCH_INTERVAL`]) per transaction, so a crash loses at most the files being
//! analysed and those finished within the last second; none is ever stored twice.

pub mod array_task;
pub mod batch;
pub mod capture;
pub mod discovery;
pub mod fingerprint;
pub mod plan;
pub mod printable;
pub mod progress;
pub mod shard;
pub mod status;
pub mod time_source;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::data::{Message, ModelOutput, Recording};
use crate::store::{MessageStore, Store, StoreResult};
#[cfg(doc)]
use crate::tasks::DetectionTask;

pub use array_task::{ArrayTaskError, ShardChoice, shard_from_env};
pub use batch::{BatchReport, ReprocessError, ReprocessOptions, reprocess};
pub use discovery::{ArchiveFile, Discovery, discover};
pub use fingerprint::fingerprint;
pub use plan::{PlanEntry, PlanError, make_plan};
pub use printable::printable;
pub use progress::{NoProgress, Progress, Totals};
pub use shard::Shard;
pub use status::{StatusFile, Summary};
pub use time_source::TimeSource;

/// What became of one archive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Analysed by every stage; outputs stored.
    Done,
    /// A processing filter said no (e.g. near-silent): no model output, not an error.
    Filtered,
    /// Not analysed: unreadable, not a WAV, truncated, empty, or a stage failed.
    Error,
}

impl FileStatus {
    /// The name kept in `reprocessed_files.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Done => "done",
            FileStatus::Filtered => "filtered",
            FileStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<FileStatus> {
        match text {
            "done" => Some(FileStatus::Done),
            "filtered" => Some(FileStatus::Filtered),
            "error" => Some(FileStatus::Error),
            _ => None,
        }
    }
}

/// One archive file's result, as the writer commits it.
#[derive(Debug, Clone)]
pub struct ReprocessedFile {
    /// Absolute path.
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub fingerprint: String,
    pub status: FileStatus,
    /// Why the file was not analysed (status `error`).
    pub error: Option<String>,
    /// Where its recording time came from (absent when the file could not be read).
    pub time_source: Option<TimeSource>,
    /// The recording made of it (absent when the file could not be read).
    pub recording: Option<Recording>,
    pub outputs: Vec<ModelOutput>,
    pub messages: Vec<Message>,
    pub processed_on: DateTime<Utc>,
}

/// A file recorded in `reprocessed_files` for a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedEntry {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub status: FileStatus,
}

/// The store side of reprocessing (`store.duckdb` implements it).
pub trait ArchiveStore: Store + MessageStore {
    /// Every file recorded for this fingerprint (the latest row per path).
    fn reprocessed_files(&self, fingerprint: &str) -> StoreResult<Vec<ProcessedEntry>>;
    /// Commits the files' recordings, model outputs, messages and `reprocessed_files`
    /// rows in one transaction; an earlier row of the same path and fingerprint is
    /// replaced.
    fn store_reprocessed(&self, files: &[ReprocessedFile]) -> StoreResult<()>;
}

/// What a WAV header and its metadata chunks say (the audio crate's probe result; its
/// `guano` text dates the file and sets the time expansion: see [`time_source`]).
pub use acoupi_audio::Probed as ProbedAudio;

/// Reads a file's header; an error says, in a few words, why it is not usable audio
/// (empty, not a WAV, truncated, unreadable).
pub trait AudioProbe: Send + Sync {
    fn probe(&self, path: &Path) -> Result<ProbedAudio, String>;
}

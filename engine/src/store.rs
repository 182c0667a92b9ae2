//! The store and message store interfaces (acoupi's documentation, Reference → Components → Stores
//! and Messengers: <https://acoupi.github.io/acoupi/>). The engine only talks to these traits;
//! `store.duckdb` in acoupi-components implements both.
//!
//! Semantics every implementation keeps:
//! - the store never deletes a recording row: a recording whose file is deleted keeps its
//!   row with `path = None`, so its detections stay queryable;
//! - a model output, its detections and their tags are stored together or not at all;
//! - a message is *unsent* while it has no response with status SUCCESS; FAILED, ERROR
//!   and TIMEOUT responses are recorded and leave it unsent, so it is retried;
//! - unsent messages are ordered by `created_on` (ascending for oldest first, descending
//!   for newest first), ties broken by id, and the limit applies after ordering.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::pipeline::MessageOrder;
use crate::data::{Deployment, Message, Metric, ModelOutput, ModelOutputInfo, Recording, Response};

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store `{}`: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// Another process has the store open for writing.
    #[error("store `{}` is in use by another process ({reason}); only one `acoupi run` may write to a store file", path.display())]
    Locked { path: PathBuf, reason: String },
    /// The file was written by a newer acoupi with a schema this version does not know.
    #[error("store `{}` has schema version {found}, newer than the {supported} this acoupi supports; upgrade acoupi", path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("store: {0}")]
    Database(String),
    /// No row of this kind has the id (a review of an unknown detection, "keep" on an
    /// unknown recording).
    #[error("no {what} has id {id}")]
    NotFound { what: &'static str, id: Uuid },
    /// A stored value could not be read back as the data model (a corrupt row).
    #[error("store holds an invalid value: {0}")]
    Invalid(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One run of a stage, for `acoupi status` and for queries (`stage_runs`).
#[derive(Debug, Clone, PartialEq)]
pub struct StageRunRecord {
    pub stage: String,
    /// The stage kind (`recording`, `detection`, ...).
    pub kind: String,
    pub started_on: DateTime<Utc>,
    pub finished_on: DateTime<Utc>,
    /// What the run did, in a few words ("recorded 1", "3 detections, 1 message").
    pub outcome: String,
}

/// Where deployments, recordings and model outputs are kept.
pub trait Store: Send + Sync {
    fn store_deployment(&self, deployment: &Deployment) -> StoreResult<()>;
    /// The deployment with the latest `started_on`, if any.
    fn get_current_deployment(&self) -> StoreResult<Option<Deployment>>;
    /// Updates a stored deployment (e.g. sets `ended_on`).
    fn update_deployment(&self, deployment: &Deployment) -> StoreResult<()>;
    fn store_recording(&self, recording: &Recording) -> StoreResult<()>;
    /// Stores the output with its detections and tags in one transaction.
    fn store_model_output(&self, output: &ModelOutput) -> StoreResult<()>;
    /// Stores the output and the messages built from it. A store that is also
    /// `message_store` does both in one transaction, so a stop never leaves an output
    /// without its messages (nor messages of an output that was not stored); this default
    /// stores the output, then each message.
    fn store_model_output_with_messages(
        &self,
        output: &ModelOutput,
        messages: &[Message],
        message_store: &dyn MessageStore,
    ) -> StoreResult<()> {
        self.store_model_output(output)?;
        messages
            .iter()
            .try_for_each(|message| message_store.store_message(message))
    }
    /// The recordings with these ids; unknown ids are absent.
    fn get_recordings(&self, ids: &[Uuid]) -> StoreResult<Vec<Recording>>;
    /// For each path that matches a stored recording: the recording and its full model
    /// outputs. Unknown paths are absent.
    fn get_recordings_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutput>)>>;
    /// Like [`Store::get_recordings_by_path`], with only the outputs' light form.
    fn get_recordings_info_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutputInfo>)>>;
    /// All model outputs of one recording, oldest first.
    fn get_recording_model_outputs(&self, recording_id: Uuid) -> StoreResult<Vec<ModelOutput>>;
    /// Sets (or, with `None`, clears) the recording's path; returns the updated Recording.
    fn update_recording_path(
        &self,
        recording: &Recording,
        path: Option<&Path>,
    ) -> StoreResult<Recording>;
    /// Model outputs created in `(start, end]`, oldest first (for summarisers).
    fn get_model_outputs_between(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<Vec<ModelOutput>>;
    /// Keeps heartbeat metrics for queries.
    fn store_metrics(&self, metrics: &[Metric]) -> StoreResult<()>;
    /// Keeps a record of one stage run.
    fn store_stage_run(&self, run: &StageRunRecord) -> StoreResult<()>;
    /// What the station did since `since` (for heartbeat metrics).
    fn activity_since(&self, since: DateTime<Utc>) -> StoreResult<Activity>;
    /// The recordings whose path lies under `root`, oldest first (ties by id), each with
    /// what retention weighs: its best detection score and its tags' best scores.
    fn get_kept_files(&self, root: &Path) -> StoreResult<Vec<KeptFile>>;
}

/// A recording kept in the recordings tree, as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptFile {
    pub recording_id: Uuid,
    pub path: PathBuf,
    pub created_on: DateTime<Utc>,
    /// The highest detection score over its model outputs; `None` when it has no
    /// detection.
    pub best_score: Option<f64>,
    /// Marked "keep" (from the dashboard): retention never deletes it.
    pub kept: bool,
    /// One entry per distinct tag (key and value) of its detections, privacy markers
    /// excepted, with the best `min(detection score, tag confidence)`.
    pub tags: Vec<TagScore>,
}

/// A tag of a kept recording and its best score.
#[derive(Debug, Clone, PartialEq)]
pub struct TagScore {
    pub key: String,
    pub value: String,
    pub score: f64,
}

/// Counts of what the station did in an interval, and of what is still waiting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Recordings created in the interval.
    pub recordings: u64,
    /// Model outputs created in the interval.
    pub model_outputs: u64,
    /// Detections in those model outputs.
    pub detections: u64,
    /// Messages created in the interval.
    pub messages: u64,
    /// Messages (of any age) with no successful response yet.
    pub unsent_messages: u64,
}

/// Where messages wait until a messenger has delivered them.
pub trait MessageStore: Send + Sync {
    fn store_message(&self, message: &Message) -> StoreResult<()>;
    fn store_response(&self, response: &Response) -> StoreResult<()>;
    /// At most `limit` unsent messages in `order` (see the module docs).
    fn get_unsent_messages(&self, limit: usize, order: MessageOrder) -> StoreResult<Vec<Message>>;
    /// For those of these messages whose latest response is FAILED (the receiver
    /// rejected them): how many FAILED responses they have and when the latest came.
    /// Messages never rejected, or whose latest response is another status, are absent.
    fn get_rejections(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Rejection>>;
}

/// A message's rejections so far (see [`MessageStore::get_rejections`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// FAILED responses of the message.
    pub count: u32,
    /// When the latest response came.
    pub last: DateTime<Utc>,
}

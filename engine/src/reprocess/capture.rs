//! A store that keeps the model outputs and messages a [`DetectionTask`] writes instead of
//! writing them, so the reprocess writer can commit them with the file's
//! `reprocessed_files` row in one transaction. Everything else goes to the real store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::pipeline::MessageOrder;
use crate::data::{Deployment, Message, Metric, ModelOutput, ModelOutputInfo, Recording, Response};
use crate::store::{
    Activity, KeptFile, MessageStore, Rejection, StageRunRecord, Store, StoreResult,
};
use crate::tasks::DetectionTask;

use super::ArchiveStore;

/// What one file's detection runs wrote.
#[derive(Debug, Default)]
pub struct Captured {
    pub outputs: Vec<ModelOutput>,
    pub messages: Vec<Message>,
}

/// See the module docs. One per worker thread.
pub struct CaptureStore {
    inner: Arc<dyn ArchiveStore>,
    captured: Mutex<Captured>,
}

impl CaptureStore {
    pub fn new(inner: Arc<dyn ArchiveStore>) -> Arc<CaptureStore> {
        Arc::new(CaptureStore {
            inner,
            captured: Mutex::new(Captured::default()),
        })
    }

    /// What was written since the last call.
    pub fn take(&self) -> Captured {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.captured
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A copy of `task` writing to `capture`.
pub fn capturing(task: &DetectionTask, capture: &Arc<CaptureStore>) -> DetectionTask {
    DetectionTask {
        stage: task.stage.clone(),
        model: task.model.clone(),
        filters: task.filters.clone(),
        cleaners: task.cleaners.clone(),
        factories: task.factories.clone(),
        store: capture.clone(),
        message_store: capture.clone(),
    }
}

impl Store for CaptureStore {
    fn store_model_output(&self, output: &ModelOutput) -> StoreResult<()> {
        self.lock().outputs.push(output.clone());
        Ok(())
    }

    fn store_model_output_with_messages(
        &self,
        output: &ModelOutput,
        messages: &[Message],
        _: &dyn MessageStore,
    ) -> StoreResult<()> {
        let mut captured = self.lock();
        captured.outputs.push(output.clone());
        captured.messages.extend(messages.iter().cloned());
        Ok(())
    }

    fn store_deployment(&self, deployment: &Deployment) -> StoreResult<()> {
        self.inner.store_deployment(deployment)
    }
    fn get_current_deployment(&self) -> StoreResult<Option<Deployment>> {
        self.inner.get_current_deployment()
    }
    fn update_deployment(&self, deployment: &Deployment) -> StoreResult<()> {
        self.inner.update_deployment(deployment)
    }
    fn store_recording(&self, recording: &Recording) -> StoreResult<()> {
        self.inner.store_recording(recording)
    }
    fn get_recordings(&self, ids: &[Uuid]) -> StoreResult<Vec<Recording>> {
        self.inner.get_recordings(ids)
    }
    fn get_recordings_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutput>)>> {
        self.inner.get_recordings_by_path(paths)
    }
    fn get_recordings_info_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutputInfo>)>> {
        self.inner.get_recordings_info_by_path(paths)
    }
    fn get_recording_model_outputs(&self, recording_id: Uuid) -> StoreResult<Vec<ModelOutput>> {
        self.inner.get_recording_model_outputs(recording_id)
    }
    fn update_recording_path(
        &self,
        recording: &Recording,
        path: Option<&Path>,
    ) -> StoreResult<Recording> {
        self.inner.update_recording_path(recording, path)
    }
    fn get_model_outputs_between(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> StoreResult<Vec<ModelOutput>> {
        self.inner.get_model_outputs_between(start, end)
    }
    fn store_metrics(&self, metrics: &[Metric]) -> StoreResult<()> {
        self.inner.store_metrics(metrics)
    }
    fn store_stage_run(&self, run: &StageRunRecord) -> StoreResult<()> {
        self.inner.store_stage_run(run)
    }
    fn activity_since(&self, since: DateTime<Utc>) -> StoreResult<Activity> {
        self.inner.activity_since(since)
    }
    fn get_kept_files(&self, root: &Path) -> StoreResult<Vec<KeptFile>> {
        self.inner.get_kept_files(root)
    }
}

impl MessageStore for CaptureStore {
    fn store_message(&self, message: &Message) -> StoreResult<()> {
        self.lock().messages.push(message.clone());
        Ok(())
    }

    fn store_response(&self, response: &Response) -> StoreResult<()> {
        self.inner.store_response(response)
    }
    fn get_unsent_messages(&self, limit: usize, order: MessageOrder) -> StoreResult<Vec<Message>> {
        self.inner.get_unsent_messages(limit, order)
    }
    fn get_rejections(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Rejection>> {
        self.inner.get_rejections(ids)
    }
}

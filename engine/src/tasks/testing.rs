//! Test components that record the calls made to them, for checking each task's call
//! order (the tasks' contracts), and a small in-memory store doing the same.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::component::*;
use crate::config::pipeline::MessageOrder;
use crate::data::*;
use crate::store::{MessageStore, Store, StoreResult};

/// A detection as tests write it: `(score, &[(tag key, tag value, confidence)])`.
pub type DetectionSpec<'a> = (f64, &'a [(&'a str, &'a str, f64)]);

/// A shared log of calls.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    pub fn push(&self, call: impl Into<String>) {
        self.0.lock().unwrap().push(call.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub fn recording() -> Recording {
    Recording::new(Deployment::new("test"), 3.0, 48_000)
        .unwrap()
        .with_path("/tmp/x.wav")
}

pub struct FakeCondition {
    pub name: String,
    pub answer: Option<bool>,
    pub calls: Calls,
}
impl RecordingCondition for FakeCondition {
    fn should_record(&self, _: DateTime<Utc>) -> ComponentResult<bool> {
        self.calls.push(format!("condition {}", self.name));
        self.answer
            .ok_or_else(|| ComponentError::Other("broken condition".into()))
    }
}

pub struct FakeRecorder {
    pub calls: Calls,
    pub fail: bool,
}
impl Recorder for FakeRecorder {
    fn record(&self, deployment: &Deployment, _: &Path) -> ComponentResult<Recording> {
        self.calls.push("recorder.record");
        if self.fail {
            return Err(ComponentError::Other("no microphone".into()));
        }
        Ok(Recording::new(deployment.clone(), 3.0, 48_000)?
            .with_path("/nonexistent/acoupi-test/r.wav"))
    }
    fn pause(&self) {
        self.calls.push("recorder.pause");
    }
}

pub struct FakeFilter {
    pub calls: Calls,
    pub answer: Option<bool>,
}
impl ProcessingFilter for FakeFilter {
    fn should_process(&self, _: &Recording) -> ComponentResult<bool> {
        self.calls.push("filter.should_process");
        self.answer
            .ok_or_else(|| ComponentError::Other("broken filter".into()))
    }
}

pub struct FakeModel {
    pub calls: Calls,
    pub detections: usize,
}
impl Model for FakeModel {
    fn name(&self) -> &str {
        "fake"
    }
    fn run(&self, recording: &Recording) -> ComponentResult<ModelOutput> {
        self.calls.push("model.run");
        let detections = (0..self.detections)
            .map(|_| Detection::new(PredictionType::Event))
            .collect();
        Ok(ModelOutput::new("fake", recording.clone(), detections))
    }
}

pub struct FakeCleaner {
    pub name: String,
    pub calls: Calls,
    pub keep: usize,
}
impl OutputCleaner for FakeCleaner {
    fn clean(&self, mut output: ModelOutput) -> ComponentResult<ModelOutput> {
        self.calls.push(format!("cleaner {}", self.name));
        output.detections.truncate(self.keep);
        Ok(output)
    }
}

pub struct FakeFactory {
    pub name: String,
    pub calls: Calls,
    pub messages: usize,
}
impl MessageFactory for FakeFactory {
    fn build(&self, _: &ModelOutput) -> ComponentResult<Vec<Message>> {
        self.calls.push(format!("factory {}", self.name));
        Ok((0..self.messages)
            .map(|i| Message::new(format!("m{i}")))
            .collect())
    }
}

pub struct FakeSavingFilter {
    pub calls: Calls,
    pub answer: Option<bool>,
}
impl SavingFilter for FakeSavingFilter {
    fn should_save(&self, _: &Recording, _: &[ModelOutput]) -> ComponentResult<bool> {
        self.calls.push("saving_filter");
        self.answer
            .ok_or_else(|| ComponentError::Other("broken saving filter".into()))
    }
}

pub struct FakeManager {
    pub calls: Calls,
    pub target: Option<PathBuf>,
}
impl SavingManager for FakeManager {
    fn save(&self, _: &Recording, _: &[ModelOutput]) -> ComponentResult<Option<PathBuf>> {
        self.calls.push("manager");
        Ok(self.target.clone())
    }
}

/// Answers with `status`, or a send error when `None`.
pub struct FakeMessenger {
    pub calls: Calls,
    pub status: Option<ResponseStatus>,
}
impl Messenger for FakeMessenger {
    fn send(&self, message: &Message) -> Result<Response, SendError> {
        self.calls.push(format!(
            "messenger.send {}",
            message.content.as_text().unwrap_or("")
        ));
        match self.status {
            Some(status) => Ok(Response::new(status, message.clone())),
            None => Err(SendError("connection refused".into())),
        }
    }
}

pub struct FakeMetric {
    pub calls: Calls,
}
impl MetricSource for FakeMetric {
    fn measure(&self) -> ComponentResult<Vec<Metric>> {
        self.calls.push("metric.measure");
        Ok(vec![Metric::new("free_memory", 1024.0, "bytes")])
    }
}

pub struct FakeSummariser {
    pub calls: Calls,
    pub messages: usize,
}
impl Summariser for FakeSummariser {
    fn build_summary(&self, _: DateTime<Utc>) -> ComponentResult<Vec<Message>> {
        self.calls.push("summariser.build_summary");
        Ok((0..self.messages)
            .map(|i| Message::new(format!("s{i}")).with_type(MessageType::Summary))
            .collect())
    }
}

/// An in-memory store that logs calls; enough for the tasks' call-order tests.
pub struct FakeStore {
    calls: Calls,
    recordings: Mutex<Vec<(Recording, Vec<ModelOutput>)>>,
    messages: Mutex<Vec<(Message, bool)>>,
    rejections: Mutex<std::collections::HashMap<uuid::Uuid, crate::store::Rejection>>,
}

impl FakeStore {
    pub fn new(calls: &Calls) -> Self {
        FakeStore {
            calls: calls.clone(),
            recordings: Mutex::default(),
            messages: Mutex::default(),
            rejections: Mutex::default(),
        }
    }

    /// Adds a recording at `path` with outputs from the named models.
    pub fn add_recording(&self, path: &Path, models: &[&str]) {
        let recording = Recording::new(Deployment::new("test"), 3.0, 48_000)
            .unwrap()
            .with_path(path);
        let outputs = models
            .iter()
            .map(|m| ModelOutput::new(*m, recording.clone(), Vec::new()))
            .collect();
        self.recordings.lock().unwrap().push((recording, outputs));
    }

    /// Adds a recording at `path` made at `created_on`, with one output holding these
    /// detections.
    pub fn add_kept(
        &self,
        path: &Path,
        created_on: DateTime<Utc>,
        detections: &[DetectionSpec<'_>],
    ) -> Uuid {
        let mut recording = Recording::new(Deployment::new("test"), 3.0, 48_000)
            .unwrap()
            .with_path(path);
        recording.created_on = created_on;
        let detections = detections
            .iter()
            .map(|(score, tags)| {
                let mut d = Detection::new(PredictionType::Event);
                d.detection_score = *score;
                d.tags = tags
                    .iter()
                    .map(|(k, v, c)| PredictedTag::new(Tag::new(*k, *v), *c).unwrap())
                    .collect();
                d
            })
            .collect();
        let id = recording.id;
        let output = ModelOutput::new("m", recording.clone(), detections);
        self.recordings
            .lock()
            .unwrap()
            .push((recording, vec![output]));
        id
    }

    /// Adds a detection to the first output of the recording at `index`.
    pub fn add_detection(&self, index: usize, detection: crate::data::Detection) {
        self.recordings.lock().unwrap()[index].1[0]
            .detections
            .push(detection);
    }

    pub fn path_of(&self, index: usize) -> Option<PathBuf> {
        self.recordings.lock().unwrap()[index].0.path.clone()
    }
}

impl Store for FakeStore {
    fn store_deployment(&self, _: &Deployment) -> StoreResult<()> {
        self.calls.push("store.store_deployment");
        Ok(())
    }
    fn get_current_deployment(&self) -> StoreResult<Option<Deployment>> {
        self.calls.push("store.get_current_deployment");
        Ok(Some(Deployment::new("test")))
    }
    fn update_deployment(&self, _: &Deployment) -> StoreResult<()> {
        Ok(())
    }
    fn store_recording(&self, recording: &Recording) -> StoreResult<()> {
        self.calls.push("store.store_recording");
        self.recordings
            .lock()
            .unwrap()
            .push((recording.clone(), Vec::new()));
        Ok(())
    }
    fn store_model_output(&self, _: &ModelOutput) -> StoreResult<()> {
        self.calls.push("store.store_model_output");
        Ok(())
    }
    fn get_recordings(&self, ids: &[Uuid]) -> StoreResult<Vec<Recording>> {
        let all = self.recordings.lock().unwrap();
        Ok(all
            .iter()
            .filter(|(r, _)| ids.contains(&r.id))
            .map(|(r, _)| r.clone())
            .collect())
    }
    fn get_recordings_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutput>)>> {
        self.calls.push("store.get_recordings_by_path");
        let all = self.recordings.lock().unwrap();
        Ok(all
            .iter()
            .filter(|(r, _)| r.path.as_ref().is_some_and(|p| paths.contains(p)))
            .cloned()
            .collect())
    }
    fn get_recordings_info_by_path(
        &self,
        paths: &[PathBuf],
    ) -> StoreResult<Vec<(Recording, Vec<ModelOutputInfo>)>> {
        self.calls.push("store.get_recordings_info_by_path");
        let all = self.recordings.lock().unwrap();
        Ok(all
            .iter()
            .filter(|(r, _)| r.path.as_ref().is_some_and(|p| paths.contains(p)))
            .map(|(r, o)| (r.clone(), o.iter().map(ModelOutput::info).collect()))
            .collect())
    }
    fn get_recording_model_outputs(&self, _: Uuid) -> StoreResult<Vec<ModelOutput>> {
        Ok(Vec::new())
    }
    fn update_recording_path(
        &self,
        recording: &Recording,
        path: Option<&Path>,
    ) -> StoreResult<Recording> {
        self.calls.push("store.update_recording_path");
        let mut all = self.recordings.lock().unwrap();
        let mut updated = recording.clone();
        updated.path = path.map(Path::to_path_buf);
        if let Some(entry) = all.iter_mut().find(|(r, _)| r.id == recording.id) {
            entry.0 = updated.clone();
        }
        Ok(updated)
    }
    fn get_model_outputs_between(
        &self,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> StoreResult<Vec<ModelOutput>> {
        Ok(Vec::new())
    }
    fn store_metrics(&self, _: &[Metric]) -> StoreResult<()> {
        self.calls.push("store.store_metrics");
        Ok(())
    }
    fn store_stage_run(&self, _: &crate::store::StageRunRecord) -> StoreResult<()> {
        Ok(())
    }
    fn activity_since(&self, _: DateTime<Utc>) -> StoreResult<crate::store::Activity> {
        Ok(crate::store::Activity::default())
    }
    fn get_kept_files(&self, root: &Path) -> StoreResult<Vec<crate::store::KeptFile>> {
        self.calls.push("store.get_kept_files");
        let all = self.recordings.lock().unwrap();
        let mut kept: Vec<crate::store::KeptFile> = all
            .iter()
            .filter_map(|(recording, outputs)| {
                let path = recording.path.clone().filter(|p| p.starts_with(root))?;
                let detections: Vec<&Detection> =
                    outputs.iter().flat_map(|o| &o.detections).collect();
                let best_score = detections
                    .iter()
                    .map(|d| d.detection_score)
                    .reduce(f64::max);
                let mut tags: Vec<crate::store::TagScore> = Vec::new();
                for d in &detections {
                    for t in d.tags.iter().filter(|t| t.tag.key != PRIVACY_TAG_KEY) {
                        let score = d.detection_score.min(t.confidence_score);
                        match tags
                            .iter_mut()
                            .find(|s| s.key == t.tag.key && s.value == t.tag.value)
                        {
                            Some(s) => s.score = s.score.max(score),
                            None => tags.push(crate::store::TagScore {
                                key: t.tag.key.clone(),
                                value: t.tag.value.clone(),
                                score,
                            }),
                        }
                    }
                }
                Some(crate::store::KeptFile {
                    recording_id: recording.id,
                    path,
                    created_on: recording.created_on,
                    best_score,
                    kept: false,
                    tags,
                })
            })
            .collect();
        kept.sort_by_key(|k| (k.created_on, k.recording_id));
        Ok(kept)
    }
}

impl MessageStore for FakeStore {
    fn store_message(&self, message: &Message) -> StoreResult<()> {
        self.calls.push("message_store.store_message");
        self.messages.lock().unwrap().push((message.clone(), false));
        Ok(())
    }
    fn store_response(&self, response: &Response) -> StoreResult<()> {
        self.calls.push("message_store.store_response");
        let mut rejections = self.rejections.lock().unwrap();
        if response.status == crate::data::ResponseStatus::Failed {
            let entry = rejections
                .entry(response.message.id)
                .or_insert(crate::store::Rejection {
                    count: 0,
                    last: response.received_on,
                });
            entry.count += 1;
            entry.last = response.received_on;
        } else {
            rejections.remove(&response.message.id);
        }
        if response.is_success() {
            for (message, sent) in self.messages.lock().unwrap().iter_mut() {
                if message.id == response.message.id {
                    *sent = true;
                }
            }
        }
        Ok(())
    }
    fn get_unsent_messages(&self, limit: usize, _: MessageOrder) -> StoreResult<Vec<Message>> {
        self.calls.push("message_store.get_unsent_messages");
        Ok(self
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, sent)| !sent)
            .take(limit)
            .map(|(m, _)| m.clone())
            .collect())
    }
    fn get_rejections(
        &self,
        ids: &[uuid::Uuid],
    ) -> StoreResult<std::collections::HashMap<uuid::Uuid, crate::store::Rejection>> {
        self.calls.push("message_store.get_rejections");
        let rejections = self.rejections.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| rejections.get(id).map(|r| (*id, *r)))
            .collect())
    }
}

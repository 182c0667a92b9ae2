//! The recording task: conditions → current deployment → recorder → store.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Named;
use crate::component::{Recorder, RecordingCondition};
use crate::data::Recording;
use crate::disk::{SystemDisk, describe_free};
use crate::retention::Retention;
use crate::store::Store;

/// Makes one recording when every condition holds.
pub struct RecordingTask {
    pub stage: String,
    pub recorder: Named<dyn Recorder>,
    pub conditions: Vec<Named<dyn RecordingCondition>>,
    /// At least one of these must hold too, when there are any.
    pub any_conditions: Vec<Named<dyn RecordingCondition>>,
    pub store: Arc<dyn Store>,
    pub temp_dir: PathBuf,
    /// `[retention]`: its `min_free` floor is checked (and made room for) before each
    /// recording.
    pub retention: Option<Arc<Retention>>,
    /// For the GUANO metadata: the device id (`Serial`) and the deployment timezone
    /// (`Timestamp`).
    pub device_id: String,
    pub timezone: chrono_tz::Tz,
}

impl RecordingTask {
    /// 1. `condition.should_record(now)` for each condition: any false → nothing (a
    ///    condition that fails with an error counts as false: no recording is made); then,
    ///    when there are `any_conditions`, at least one of them must say yes;
    /// 2. `store.get_current_deployment()`; with `[retention] min_free`, the free space
    ///    is checked (retention makes room when it can; otherwise no recording is made,
    ///    logged as an error); 3. `recorder.record(deployment)`; GUANO metadata is written
    ///    into the WAV ([`crate::guano`]; a file that cannot take it is kept without);
    /// 4. `store.store_recording(recording)` → the Recording, which stages running
    ///    `after` this one receive. A recorder or store error is logged and gives nothing;
    ///    a file the store could not record stays in the temp folder.
    ///
    /// When the conditions say no, the recorder is told to pause ([`Recorder::pause`]): a
    /// continuous microphone closes its stream, so no audio from outside the conditions
    /// is recorded later.
    pub fn run(&self, now: DateTime<Utc>) -> Option<Recording> {
        if !self.conditions_hold(now) {
            self.recorder.pause();
            return None;
        }
        self.record(now)
    }

    fn conditions_hold(&self, now: DateTime<Utc>) -> bool {
        for condition in &self.conditions {
            match condition.should_record(now) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(stage = %self.stage, condition = %condition.name, "condition not met; not recording");
                    return false;
                }
                Err(error) => {
                    tracing::error!(stage = %self.stage, condition = %condition.name, %error, "condition failed; not recording");
                    return false;
                }
            }
        }
        if !self.any_conditions.is_empty() {
            let holds = self.any_conditions.iter().any(|condition| match condition.should_record(now) {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::error!(stage = %self.stage, condition = %condition.name, %error, "condition failed; counts as not met");
                    false
                }
            });
            if !holds {
                let names: Vec<&str> = self
                    .any_conditions
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                tracing::info!(stage = %self.stage, any_of = ?names, "none of the any_conditions is met; not recording");
                return false;
            }
        }
        true
    }

    fn record(&self, now: DateTime<Utc>) -> Option<Recording> {
        let deployment = match self.store.get_current_deployment() {
            Ok(Some(deployment)) => deployment,
            Ok(None) => {
                tracing::error!(stage = %self.stage, "the store has no deployment; not recording");
                return None;
            }
            Err(error) => {
                tracing::error!(stage = %self.stage, %error, "cannot read the current deployment; not recording");
                return None;
            }
        };
        if let Some(retention) = &self.retention
            && let Err(reason) = retention.ensure_room(&self.temp_dir, now)
        {
            tracing::error!(stage = %self.stage, %reason, "not recording: the disk is too full");
            return None;
        }
        let recording = match self.recorder.record(&deployment, &self.temp_dir) {
            Ok(recording) => recording,
            Err(error) => {
                let free = describe_free(&SystemDisk, &self.temp_dir);
                tracing::error!(stage = %self.stage, recorder = %self.recorder.name, temp = %self.temp_dir.display(), %free, %error, "recording failed");
                return None;
            }
        };
        if let Some(path) = &recording.path {
            let mut guano = crate::guano::for_recording(
                &recording,
                &deployment,
                self.timezone,
                &self.device_id,
            );
            if let Some(model) = self.recorder.device() {
                guano.set("Model", model);
            }
            if let Err(error) = crate::guano::write(path, &guano) {
                tracing::warn!(stage = %self.stage, recording = %recording.id, %error, "cannot write GUANO metadata; the recording is kept without it");
            }
        }
        if let Err(error) = self.store.store_recording(&recording) {
            tracing::error!(stage = %self.stage, recording = %recording.id, path = ?recording.path, %error, "cannot store the recording; its file stays in the temp folder");
            return None;
        }
        tracing::info!(stage = %self.stage, recording = %recording.id, path = ?recording.path, duration = recording.duration, "recorded");
        Some(recording)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::testing::{Calls, FakeCondition, FakeRecorder, FakeStore};

    fn conditions(
        calls: &Calls,
        answers: &[(&str, Option<bool>)],
    ) -> Vec<Named<dyn RecordingCondition>> {
        answers
            .iter()
            .map(|(n, answer)| {
                Named::new(
                    *n,
                    Arc::new(FakeCondition {
                        name: n.to_string(),
                        answer: *answer,
                        calls: calls.clone(),
                    }) as Arc<dyn RecordingCondition>,
                )
            })
            .collect()
    }

    fn task(calls: &Calls, all: &[(&str, Option<bool>)], recorder_fails: bool) -> RecordingTask {
        RecordingTask {
            stage: "record".into(),
            recorder: Named::new(
                "rec",
                Arc::new(FakeRecorder {
                    calls: calls.clone(),
                    fail: recorder_fails,
                }),
            ),
            conditions: conditions(calls, all),
            any_conditions: Vec::new(),
            store: Arc::new(FakeStore::new(calls)),
            temp_dir: PathBuf::from("/tmp/unused"),
            retention: None,
            device_id: "test".into(),
            timezone: chrono_tz::UTC,
        }
    }

    #[test]
    fn calls_conditions_then_deployment_then_recorder_then_store() {
        let calls = Calls::default();
        let recording =
            task(&calls, &[("a", Some(true)), ("b", Some(true))], false).run(Utc::now());
        assert!(recording.is_some());
        assert_eq!(
            calls.take(),
            [
                "condition a",
                "condition b",
                "store.get_current_deployment",
                "recorder.record",
                "store.store_recording"
            ]
        );
    }

    #[test]
    fn a_false_or_failing_condition_stops_before_the_recorder_and_pauses_it() {
        let calls = Calls::default();
        assert!(
            task(&calls, &[("a", Some(false)), ("b", Some(true))], false)
                .run(Utc::now())
                .is_none()
        );
        assert_eq!(calls.take(), ["condition a", "recorder.pause"]);
        assert!(
            task(&calls, &[("a", None)], false)
                .run(Utc::now())
                .is_none()
        );
        assert_eq!(calls.take(), ["condition a", "recorder.pause"]);
    }

    #[test]
    fn a_recorder_error_gives_nothing_and_stores_nothing() {
        let calls = Calls::default();
        assert!(task(&calls, &[], true).run(Utc::now()).is_none());
        assert_eq!(
            calls.take(),
            ["store.get_current_deployment", "recorder.record"]
        );
    }

    #[test]
    fn any_conditions_need_one_yes_after_all_conditions_hold() {
        let calls = Calls::default();
        // (the any-conditions' answers, whether it records, the conditions asked)
        type Case<'a> = (&'a [(&'a str, Option<bool>)], bool, &'a [&'a str]);
        let cases: [Case<'_>; 4] = [
            (
                &[("x", Some(false)), ("y", Some(true))],
                true,
                &["condition a", "condition x", "condition y"],
            ),
            (
                &[("x", Some(true)), ("y", Some(false))],
                true,
                &["condition a", "condition x"],
            ),
            (
                &[("x", Some(false)), ("y", None)],
                false,
                &["condition a", "condition x", "condition y"],
            ),
            (&[], true, &["condition a"]),
        ];
        for (any, records, asked) in cases {
            let mut task = task(&calls, &[("a", Some(true))], false);
            task.any_conditions = conditions(&calls, any);
            assert_eq!(task.run(Utc::now()).is_some(), records, "{any:?}");
            let log = calls.take();
            assert_eq!(&log[..asked.len()], asked, "{any:?}");
            assert_eq!(
                log.iter().any(|c| c == "recorder.pause"),
                !records,
                "{any:?}: {log:?}"
            );
        }
    }
}

//! The detection task: processing filters → model → cleaners → message factories → the
//! output and its messages stored together.

use std::sync::Arc;

use super::Named;
use crate::component::{MessageFactory, Model, OutputCleaner, ProcessingFilter};
use crate::data::Recording;
use crate::store::{MessageStore, Store};

/// Runs the model on a recording and keeps what it found.
pub struct DetectionTask {
    pub stage: String,
    pub model: Named<dyn Model>,
    pub filters: Vec<Named<dyn ProcessingFilter>>,
    pub cleaners: Vec<Named<dyn OutputCleaner>>,
    pub factories: Vec<Named<dyn MessageFactory>>,
    pub store: Arc<dyn Store>,
    pub message_store: Arc<dyn MessageStore>,
}

/// What one detection run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DetectionReport {
    /// The model output was stored.
    pub stored: bool,
    pub detections: usize,
    pub messages: usize,
    /// Detections the cleaners removed (so a user can ask why a bird was not reported:
    /// each cleaner also logs its count at debug level).
    pub cleaned: usize,
    /// The processing filter that said no (the model did not run; not an error).
    pub filtered_by: Option<String>,
    /// Why no output was stored, when a filter, the model or the store failed.
    pub failure: Option<String>,
    /// How long the model's `run` took (the filters, cleaners and store not counted),
    /// when it ran.
    pub inference: Option<std::time::Duration>,
}

impl DetectionTask {
    /// 1. `filter.should_process(recording)`: any false (or error) → nothing;
    /// 2. `model.run(recording)`; 3. each `cleaner.clean(output)` in order (a failing
    ///    cleaner is skipped: the output goes on uncleaned by it, logged);
    /// 4. for each factory `build(output)`: zero, one or many messages (a failing factory
    ///    is logged and gives none);
    /// 5. `store.store_model_output_with_messages(output, messages)`: the output and its
    ///    messages in one transaction (acoupi stores the output, then each message; a
    ///    stop in between would lose the messages). On error nothing is stored: the
    ///    recording stays in the temp folder without an output, and start-up recovery
    ///    analyses it again.
    pub fn run(&self, recording: &Recording) -> DetectionReport {
        let mut report = DetectionReport::default();
        for filter in &self.filters {
            match filter.should_process(recording) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(stage = %self.stage, recording = %recording.id, filter = %filter.name, "filtered out; model not run");
                    report.filtered_by = Some(filter.name.clone());
                    return report;
                }
                Err(error) => {
                    tracing::error!(stage = %self.stage, recording = %recording.id, filter = %filter.name, %error, "processing filter failed; model not run");
                    report.failure = Some(format!(
                        "processing filter `{}` failed: {error}",
                        filter.name
                    ));
                    return report;
                }
            }
        }
        let started = std::time::Instant::now();
        let ran = self.model.run(recording);
        report.inference = Some(started.elapsed());
        let mut output = match ran {
            Ok(output) => output,
            Err(error) => {
                tracing::error!(stage = %self.stage, recording = %recording.id, model = %self.model.name, %error, "model failed");
                report.failure = Some(format!("model `{}` failed: {error}", self.model.name));
                return report;
            }
        };
        for cleaner in &self.cleaners {
            let before = output.detections.len();
            match cleaner.clean(output.clone()) {
                Ok(cleaned) => {
                    let dropped = before.saturating_sub(cleaned.detections.len());
                    report.cleaned += dropped;
                    if dropped > 0 {
                        tracing::debug!(stage = %self.stage, recording = %recording.id, cleaner = %cleaner.name, dropped, "cleaner dropped detections");
                    }
                    output = cleaned;
                }
                Err(error) => {
                    tracing::error!(stage = %self.stage, recording = %recording.id, cleaner = %cleaner.name, %error, "cleaner failed; output kept as it was")
                }
            }
        }
        let mut messages = Vec::new();
        for factory in &self.factories {
            match factory.build(&output) {
                Ok(built) => messages.extend(built),
                Err(error) => {
                    tracing::error!(stage = %self.stage, recording = %recording.id, factory = %factory.name, %error, "message factory failed")
                }
            }
        }
        if let Err(error) = self.store.store_model_output_with_messages(
            &output,
            &messages,
            self.message_store.as_ref(),
        ) {
            tracing::error!(stage = %self.stage, recording = %recording.id, model = %self.model.name, %error, "cannot store the model output and its messages");
            report.failure = Some(format!(
                "cannot store the output of model `{}`: {error}",
                self.model.name
            ));
            return report;
        }
        report.stored = true;
        report.detections = output.detections.len();
        report.messages = messages.len();
        tracing::info!(stage = %self.stage, recording = %recording.id, model = %self.model.name, detections = report.detections, cleaned = report.cleaned, messages = report.messages, "analysed");
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::testing::{
        Calls, FakeCleaner, FakeFactory, FakeFilter, FakeModel, FakeStore, recording,
    };

    fn task(calls: &Calls, filter: Option<bool>, factories: &[usize]) -> DetectionTask {
        let store = Arc::new(FakeStore::new(calls));
        DetectionTask {
            stage: "detect".into(),
            model: Named::new(
                "m",
                Arc::new(FakeModel {
                    calls: calls.clone(),
                    detections: 3,
                }),
            ),
            filters: vec![Named::new(
                "f",
                Arc::new(FakeFilter {
                    calls: calls.clone(),
                    answer: filter,
                }),
            )],
            cleaners: vec![
                Named::new(
                    "c1",
                    Arc::new(FakeCleaner {
                        name: "c1".into(),
                        calls: calls.clone(),
                        keep: 2,
                    }),
                ),
                Named::new(
                    "c2",
                    Arc::new(FakeCleaner {
                        name: "c2".into(),
                        calls: calls.clone(),
                        keep: 1,
                    }),
                ),
            ],
            factories: factories
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    Named::new(
                        format!("mf{i}"),
                        Arc::new(FakeFactory {
                            name: format!("mf{i}"),
                            calls: calls.clone(),
                            messages: *n,
                        }) as Arc<dyn MessageFactory>,
                    )
                })
                .collect(),
            store: store.clone(),
            message_store: store,
        }
    }

    #[test]
    fn calls_filter_model_cleaners_store_factories_message_store_in_order() {
        let calls = Calls::default();
        let report = task(&calls, Some(true), &[0, 2]).run(&recording());
        assert_eq!(
            report,
            DetectionReport {
                stored: true,
                detections: 1,
                messages: 2,
                cleaned: 2,
                inference: report.inference,
                ..Default::default()
            }
        );
        assert_eq!(
            calls.take(),
            [
                "filter.should_process",
                "model.run",
                "cleaner c1",
                "cleaner c2",
                "factory mf0",
                "factory mf1",
                "store.store_model_output",
                "message_store.store_message",
                "message_store.store_message",
            ]
        );
    }

    #[test]
    fn a_filter_saying_no_stops_before_the_model() {
        let calls = Calls::default();
        assert_eq!(
            task(&calls, Some(false), &[1]).run(&recording()),
            DetectionReport {
                filtered_by: Some("f".into()),
                ..Default::default()
            }
        );
        assert_eq!(calls.take(), ["filter.should_process"]);
    }
}

//! The summary task: each summariser's messages go into the message store.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Named;
use crate::component::Summariser;
use crate::store::MessageStore;

/// Queues summary messages.
pub struct SummaryTask {
    pub stage: String,
    pub summarisers: Vec<Named<dyn Summariser>>,
    pub message_store: Arc<dyn MessageStore>,
}

impl SummaryTask {
    /// For each summariser: `build_summary(now)` → `store_message` for each message.
    /// Returns how many messages were queued.
    pub fn run(&self, now: DateTime<Utc>) -> usize {
        let mut queued = 0;
        for summariser in &self.summarisers {
            match summariser.build_summary(now) {
                Ok(messages) => {
                    for message in messages {
                        match self.message_store.store_message(&message) {
                            Ok(()) => queued += 1,
                            Err(error) => {
                                tracing::error!(stage = %self.stage, summariser = %summariser.name, %error, "cannot queue the summary")
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(stage = %self.stage, summariser = %summariser.name, %error, "summariser failed")
                }
            }
        }
        queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::testing::{Calls, FakeStore, FakeSummariser};

    #[test]
    fn builds_then_stores_each_summary() {
        let calls = Calls::default();
        let task = SummaryTask {
            stage: "summary".into(),
            summarisers: vec![
                Named::new(
                    "s1",
                    Arc::new(FakeSummariser {
                        calls: calls.clone(),
                        messages: 2,
                    }) as Arc<dyn Summariser>,
                ),
                Named::new(
                    "s2",
                    Arc::new(FakeSummariser {
                        calls: calls.clone(),
                        messages: 0,
                    }) as Arc<dyn Summariser>,
                ),
            ],
            message_store: Arc::new(FakeStore::new(&calls)),
        };
        assert_eq!(task.run(Utc::now()), 2);
        assert_eq!(
            calls.take(),
            [
                "summariser.build_summary",
                "message_store.store_message",
                "message_store.store_message",
                "summariser.build_summary"
            ]
        );
    }
}

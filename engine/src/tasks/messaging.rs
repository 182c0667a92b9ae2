//! The send-messages task: unsent messages from the message store → every messenger →
//! each response back into the store.

use std::sync::Arc;

use super::Named;
use crate::component::Messenger;
use crate::config::pipeline::MessageOrder;
use crate::store::MessageStore;

/// Sends queued messages.
pub struct MessagingTask {
    pub stage: String,
    pub message_store: Arc<dyn MessageStore>,
    /// At least one (validation guarantees it).
    pub messengers: Vec<Named<dyn Messenger>>,
    pub limit: usize,
    pub order: MessageOrder,
}

/// Counts of one run (logged as selected/attempted/successful/failed).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessagingReport {
    pub selected: usize,
    pub attempted: usize,
    pub successful: usize,
    /// Responses with FAILED, ERROR or TIMEOUT: the message stays unsent.
    pub failed: usize,
    /// Send errors (nothing was sent; no response stored).
    pub send_errors: usize,
}

impl MessagingTask {
    /// 1. `message_store.get_unsent_messages(limit, order)`; 2. for each messenger, for
    ///    each message: `send` → a Response of any status → 3. `store_response`. A send
    ///    error is logged and counted and the loop goes on.
    pub fn run(&self) -> MessagingReport {
        let mut report = MessagingReport::default();
        let messages = match self.message_store.get_unsent_messages(self.limit, self.order) {
            Ok(messages) => messages,
            Err(error) => {
                tracing::error!(stage = %self.stage, %error, "cannot read unsent messages");
                return report;
            }
        };
        report.selected = messages.len();
        for messenger in &self.messengers {
            for message in &messages {
                report.attempted += 1;
                match messenger.send(message) {
                    Ok(response) => {
                        if response.is_success() {
                            report.successful += 1;
                        } else {
                            report.failed += 1;
                            tracing::warn!(stage = %self.stage, messenger = %messenger.name, message = %message.id, status = response.status.name(), "message not delivered; it will be retried");
                        }
                        if let Err(error) = self.message_store.store_response(&response) {
                            tracing::error!(stage = %self.stage, message = %message.id, %error, "cannot store the response");
                        }
                    }
                    Err(error) => {
                        report.send_errors += 1;
                        tracing::error!(stage = %self.stage, messenger = %messenger.name, message = %message.id, %error, "send error; it will be retried");
                    }
                }
            }
        }
        if report.selected > 0 {
            tracing::info!(stage = %self.stage, selected = report.selected, attempted = report.attempted, successful = report.successful, failed = report.failed + report.send_errors, "sent messages");
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Message, ResponseStatus};
    use crate::tasks::testing::{Calls, FakeMessenger, FakeStore};

    #[test]
    fn sends_each_unsent_message_through_each_messenger_and_stores_responses() {
        let calls = Calls::default();
        let store = Arc::new(FakeStore::new(&calls));
        for text in ["a", "b"] {
            store.store_message(&Message::new(text)).unwrap();
        }
        calls.take();
        let task = MessagingTask {
            stage: "send".into(),
            message_store: store.clone(),
            messengers: vec![
                Named::new("ok", Arc::new(FakeMessenger { calls: calls.clone(), status: Some(ResponseStatus::Success) }) as Arc<dyn Messenger>),
                Named::new("down", Arc::new(FakeMessenger { calls: calls.clone(), status: None }) as Arc<dyn Messenger>),
                Named::new("refusing", Arc::new(FakeMessenger { calls: calls.clone(), status: Some(ResponseStatus::Failed) }) as Arc<dyn Messenger>),
            ],
            limit: 10,
            order: MessageOrder::OldestFirst,
        };
        let report = task.run();
        assert_eq!(report, MessagingReport { selected: 2, attempted: 6, successful: 2, failed: 2, send_errors: 2 });
        let calls = calls.take();
        assert_eq!(calls[0], "message_store.get_unsent_messages");
        assert_eq!(calls[1..3], ["messenger.send a", "message_store.store_response"]);
        assert_eq!(calls.iter().filter(|c| *c == "message_store.store_response").count(), 4);
    }
}

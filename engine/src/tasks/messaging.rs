//! The send-messages task: unsent messages from the message store → every messenger →
//! each response back into the store.
//!
//! Retry policy (our refinement of acoupi's loop, which sends every unsent message on
//! every run):
//! - **The link is down** (a response ERROR or TIMEOUT, or a send error): the rest of this
//!   run's batch for that messenger is left for the next run — they would fail the same
//!   way, and a batch of 100 timeouts would hold the stage for minutes. The stage's
//!   schedule is the link's retry interval, and creation order is kept: after an outage
//!   the oldest message goes first.
//! - **The receiver rejected a message** (FAILED, e.g. HTTP 400): that message alone backs
//!   off — it is due again [`FIRST_BACKOFF`] after its first rejection, doubling with each
//!   further one up to [`MAX_BACKOFF`] — and it does not hold up the others (a message
//!   the server will never take must not block the queue). Its attempts are counted from
//!   its stored responses, so the backoff survives a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Named;
use crate::backoff::Backoff;
use crate::component::Messenger;
use crate::config::pipeline::MessageOrder;
use crate::data::ResponseStatus;
use crate::store::{MessageStore, Rejection};

/// How long a message rejected once waits before its next attempt.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(60);
/// The longest wait between attempts of a rejected message.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

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
    /// Not attempted this run: rejected messages still backing off, and messages after
    /// a link failure (per messenger).
    pub deferred: usize,
}

/// When a message rejected `count` times may be tried again.
pub fn next_attempt(rejection: &Rejection) -> DateTime<Utc> {
    let wait = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF).wait_after(rejection.count);
    rejection.last + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX)
}

impl MessagingTask {
    /// 1. `message_store.get_unsent_messages(limit, order)`, then
    ///    `message_store.get_rejections` of those; 2. for each messenger, for each message
    ///    that is due (see the module docs): `send` → a Response of any status → 3.
    ///    `store_response`. A send error is logged and counted; an ERROR, TIMEOUT or send
    ///    error ends that messenger's batch.
    pub fn run(&self, now: DateTime<Utc>) -> MessagingReport {
        let mut report = MessagingReport::default();
        let messages = match self
            .message_store
            .get_unsent_messages(self.limit, self.order)
        {
            Ok(messages) => messages,
            Err(error) => {
                tracing::error!(stage = %self.stage, %error, "cannot read unsent messages");
                return report;
            }
        };
        report.selected = messages.len();
        if messages.is_empty() {
            return report;
        }
        let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
        let rejections: HashMap<Uuid, Rejection> = self.message_store.get_rejections(&ids).unwrap_or_else(|error| {
            // Without the history every message is tried: better a retry too soon than none.
            tracing::error!(stage = %self.stage, %error, "cannot read rejected messages; trying all");
            HashMap::new()
        });
        for messenger in &self.messengers {
            for (index, message) in messages.iter().enumerate() {
                if let Some(rejection) = rejections.get(&message.id) {
                    let due = next_attempt(rejection);
                    if now < due {
                        report.deferred += 1;
                        tracing::debug!(stage = %self.stage, message = %message.id, rejections = rejection.count, %due, "rejected message backing off");
                        continue;
                    }
                }
                report.attempted += 1;
                let link_down = match messenger.send(message) {
                    Ok(response) => {
                        let status = response.status;
                        if response.is_success() {
                            report.successful += 1;
                        } else {
                            report.failed += 1;
                            tracing::warn!(stage = %self.stage, messenger = %messenger.name, message = %message.id, status = status.name(), reason = response.content.as_deref().unwrap_or(""), "message not delivered; it will be retried");
                        }
                        if let Err(error) = self.message_store.store_response(&response) {
                            tracing::error!(stage = %self.stage, message = %message.id, %error, "cannot store the response");
                        }
                        matches!(status, ResponseStatus::Error | ResponseStatus::Timeout)
                    }
                    Err(error) => {
                        report.send_errors += 1;
                        tracing::error!(stage = %self.stage, messenger = %messenger.name, message = %message.id, %error, "send error; it will be retried");
                        true
                    }
                };
                if link_down {
                    let left = messages.len() - index - 1;
                    report.deferred += left;
                    if left > 0 {
                        tracing::warn!(stage = %self.stage, messenger = %messenger.name, waiting = left, "link down: the other messages wait for the next run");
                    }
                    break;
                }
            }
        }
        tracing::info!(stage = %self.stage, selected = report.selected, attempted = report.attempted, successful = report.successful, failed = report.failed + report.send_errors, deferred = report.deferred, "sent messages");
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Message, Response};
    use crate::tasks::testing::{Calls, FakeMessenger, FakeStore};

    fn task(
        store: Arc<FakeStore>,
        messengers: Vec<(&str, Option<ResponseStatus>)>,
        calls: &Calls,
    ) -> MessagingTask {
        MessagingTask {
            stage: "send".into(),
            message_store: store,
            messengers: messengers
                .into_iter()
                .map(|(name, status)| {
                    Named::new(
                        name,
                        Arc::new(FakeMessenger {
                            calls: calls.clone(),
                            status,
                        }) as Arc<dyn Messenger>,
                    )
                })
                .collect(),
            limit: 10,
            order: MessageOrder::OldestFirst,
        }
    }

    fn queue(store: &FakeStore, texts: &[&str]) -> Vec<Message> {
        texts
            .iter()
            .map(|text| {
                let message = Message::new(*text);
                store.store_message(&message).unwrap();
                message
            })
            .collect()
    }

    #[test]
    fn sends_each_unsent_message_through_each_messenger_and_stores_responses() {
        let calls = Calls::default();
        let store = Arc::new(FakeStore::new(&calls));
        queue(&store, &["a", "b"]);
        calls.take();
        let task = task(
            store,
            vec![
                ("ok", Some(ResponseStatus::Success)),
                ("refusing", Some(ResponseStatus::Failed)),
            ],
            &calls,
        );
        let report = task.run(Utc::now());
        assert_eq!(
            report,
            MessagingReport {
                selected: 2,
                attempted: 4,
                successful: 2,
                failed: 2,
                send_errors: 0,
                deferred: 0
            }
        );
        let calls = calls.take();
        assert_eq!(
            calls[..2],
            [
                "message_store.get_unsent_messages",
                "message_store.get_rejections"
            ]
        );
        assert_eq!(
            calls[2..4],
            ["messenger.send a", "message_store.store_response"]
        );
        assert_eq!(
            calls
                .iter()
                .filter(|c| *c == "message_store.store_response")
                .count(),
            4
        );
    }

    #[test]
    fn a_link_failure_ends_that_messengers_batch_and_keeps_the_order() {
        for status in [
            None,
            Some(ResponseStatus::Error),
            Some(ResponseStatus::Timeout),
        ] {
            let calls = Calls::default();
            let store = Arc::new(FakeStore::new(&calls));
            queue(&store, &["a", "b", "c"]);
            calls.take();
            let task = task(
                store.clone(),
                vec![("down", status), ("ok", Some(ResponseStatus::Success))],
                &calls,
            );
            let report = task.run(Utc::now());
            assert_eq!(
                (report.attempted, report.deferred, report.successful),
                (4, 2, 3),
                "{status:?}: {report:?}"
            );
            let sends: Vec<String> = calls
                .take()
                .into_iter()
                .filter(|c| c.starts_with("messenger.send"))
                .collect();
            assert_eq!(
                sends,
                [
                    "messenger.send a",
                    "messenger.send a",
                    "messenger.send b",
                    "messenger.send c"
                ],
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_rejected_message_backs_off_alone_and_longer_after_each_rejection() {
        let calls = Calls::default();
        let store = Arc::new(FakeStore::new(&calls));
        let messages = queue(&store, &["poison", "fine"]);
        let start = Utc::now();
        // Rejected twice, the last time at `start`: due 2 min later.
        for _ in 0..2 {
            let mut response = Response::new(ResponseStatus::Failed, messages[0].clone());
            response.received_on = start;
            store.store_response(&response).unwrap();
        }
        let task = task(
            store.clone(),
            vec![("ok", Some(ResponseStatus::Success))],
            &calls,
        );
        calls.take();
        let report = task.run(start + chrono::Duration::seconds(119));
        assert_eq!(
            (report.attempted, report.deferred, report.successful),
            (1, 1, 1),
            "the other message is not held up"
        );
        assert!(calls.take().contains(&"messenger.send fine".to_string()));
        let report = task.run(start + chrono::Duration::seconds(120));
        assert_eq!(
            (report.attempted, report.successful),
            (1, 1),
            "due again after 2 min"
        );
    }

    #[test]
    fn the_backoff_doubles_up_to_its_maximum() {
        let last = Utc::now();
        let wait = |count| (next_attempt(&Rejection { count, last }) - last).num_seconds();
        assert_eq!([wait(1), wait(2), wait(3), wait(4)], [60, 120, 240, 480]);
        assert_eq!(wait(100), MAX_BACKOFF.as_secs() as i64);
    }
}

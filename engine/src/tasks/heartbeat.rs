//! The heartbeat task: measure every metric now, build the heartbeat, send it directly
//! through every messenger (heartbeats are not queued), and keep the metrics in the store.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Named;
use crate::component::{Messenger, MetricSource};
use crate::data::{Message, MessageType, Metric, timestamp::format_timestamp};
use crate::store::Store;

/// Sends a heartbeat.
pub struct HeartbeatTask {
    pub stage: String,
    pub messengers: Vec<Named<dyn Messenger>>,
    pub metrics: Vec<Named<dyn MetricSource>>,
    pub device_id: String,
    pub store: Arc<dyn Store>,
}

/// What one heartbeat did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeartbeatReport {
    pub metrics: usize,
    pub delivered: usize,
}

/// acoupi's heartbeat JSON: `{"sent_on", "device_id", "status": "OK", "metrics":
/// [{"name", "value", "captured_on", "unit"}]}`, `metrics` omitted when empty.
pub fn heartbeat_payload(sent_on: DateTime<Utc>, device_id: &str, metrics: &[Metric]) -> Value {
    let mut payload =
        json!({ "sent_on": format_timestamp(&sent_on), "device_id": device_id, "status": "OK" });
    if !metrics.is_empty() {
        payload["metrics"] = metrics
            .iter()
            .map(|m| json!({ "name": m.name, "value": m.value, "captured_on": format_timestamp(&m.captured_on), "unit": m.unit }))
            .collect();
    }
    payload
}

impl HeartbeatTask {
    /// 1. evaluate every metric now (a failing metric is logged and left out); 2. build
    ///    and serialise the heartbeat; 3. send it through each messenger and log each
    ///    response status; 4. store the metrics for queries.
    pub fn run(&self, now: DateTime<Utc>) -> HeartbeatReport {
        let mut metrics = Vec::new();
        for source in &self.metrics {
            match source.measure() {
                Ok(measured) => metrics.extend(measured),
                Err(error) => {
                    tracing::error!(stage = %self.stage, metric = %source.name, %error, "metric failed")
                }
            }
        }
        let message = Message::new(heartbeat_payload(now, &self.device_id, &metrics).to_string())
            .with_type(MessageType::Heartbeat);
        let mut report = HeartbeatReport {
            metrics: metrics.len(),
            delivered: 0,
        };
        for messenger in &self.messengers {
            match messenger.send(&message) {
                Ok(response) => {
                    report.delivered += usize::from(response.is_success());
                    tracing::info!(stage = %self.stage, messenger = %messenger.name, status = response.status.name(), "heartbeat sent");
                }
                Err(error) => {
                    tracing::error!(stage = %self.stage, messenger = %messenger.name, %error, "heartbeat not sent")
                }
            }
        }
        if !metrics.is_empty()
            && let Err(error) = self.store.store_metrics(&metrics)
        {
            tracing::error!(stage = %self.stage, %error, "cannot store metrics");
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ResponseStatus;
    use crate::tasks::testing::{Calls, FakeMessenger, FakeMetric, FakeStore};

    #[test]
    fn payload_has_the_acoupi_shape() {
        let now = DateTime::parse_from_rfc3339("2026-05-01T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let bare = heartbeat_payload(now, "pi-1", &[]);
        assert_eq!(
            bare,
            json!({ "sent_on": "2026-05-01T06:00:00+00:00", "device_id": "pi-1", "status": "OK" })
        );
        let mut metric = Metric::new("cpu_usage", 12.5, "percent");
        metric.captured_on = now;
        let full = heartbeat_payload(now, "pi-1", &[metric]);
        assert_eq!(
            full["metrics"],
            json!([{ "name": "cpu_usage", "value": 12.5, "captured_on": "2026-05-01T06:00:00+00:00", "unit": "percent" }])
        );
    }

    #[test]
    fn measures_then_sends_through_each_messenger_then_stores_metrics() {
        let calls = Calls::default();
        let task = HeartbeatTask {
            stage: "beat".into(),
            messengers: vec![
                Named::new(
                    "a",
                    Arc::new(FakeMessenger {
                        calls: calls.clone(),
                        status: Some(ResponseStatus::Success),
                    }) as Arc<dyn Messenger>,
                ),
                Named::new(
                    "b",
                    Arc::new(FakeMessenger {
                        calls: calls.clone(),
                        status: None,
                    }) as Arc<dyn Messenger>,
                ),
            ],
            metrics: vec![Named::new(
                "m",
                Arc::new(FakeMetric {
                    calls: calls.clone(),
                }) as Arc<dyn MetricSource>,
            )],
            device_id: "pi-1".into(),
            store: Arc::new(FakeStore::new(&calls)),
        };
        assert_eq!(
            task.run(Utc::now()),
            HeartbeatReport {
                metrics: 1,
                delivered: 1
            }
        );
        let calls = calls.take();
        assert_eq!(calls[0], "metric.measure");
        assert!(calls[1].starts_with("messenger.send {"), "{calls:?}");
        assert!(calls[2].starts_with("messenger.send {"));
        assert_eq!(calls[3], "store.store_metrics");
    }
}

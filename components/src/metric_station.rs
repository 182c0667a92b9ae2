//! `metric.station`: what the station itself did, for heartbeats, read from the store when
//! the heartbeat is built: recordings, model outputs, detections and messages created
//! since the previous heartbeat (since the station started, for the first), and the
//! messages still waiting to be delivered. It owns those metrics' names and units.
//!
//! ```toml
//! [components.activity]
//! type = "metric.station"
//! ```
//!
//! Metrics (unit): `recordings_since_last`, `model_outputs_since_last`,
//! `detections_since_last`, `messages_since_last` (count) and `unsent_messages` (count,
//! of any age). A station whose recorder stopped shows `recordings_since_last = 0` on the
//! dashboard long before anyone visits the site.

use std::sync::{Arc, Mutex};

use acoupi_engine::component::{ComponentError, ComponentResult, MetricSource};
use acoupi_engine::data::Metric;
use acoupi_engine::registry::{BuildContext, Built, ComponentConfig};
use acoupi_engine::store::Store;
use chrono::{DateTime, Utc};

/// Report what the station did since the previous heartbeat (recordings, model outputs,
/// detections, messages) and how many messages wait to be delivered.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StationMetricsConfig {}

impl ComponentConfig for StationMetricsConfig {
    const KIND: &'static str = "metric.station";

    fn build(&self, ctx: &BuildContext) -> Result<Built, String> {
        let store = ctx.store.clone().ok_or("it needs the station's store, which is not open here")?;
        Ok(Built::Metric(Arc::new(StationMetrics { store, last: Mutex::new(Utc::now()) })))
    }
}

pub struct StationMetrics {
    store: Arc<dyn Store>,
    /// The end of the previous interval.
    last: Mutex<DateTime<Utc>>,
}

impl MetricSource for StationMetrics {
    fn measure(&self) -> ComponentResult<Vec<Metric>> {
        let now = Utc::now();
        let mut last = self.last.lock().map_err(|_| ComponentError::Other("the interval clock is poisoned".into()))?;
        let activity = self.store.activity_since(*last).map_err(|e| ComponentError::Other(format!("cannot read the station's activity: {e}")))?;
        // Only a successful read moves the interval on: nothing is skipped after an error.
        *last = now;
        Ok(vec![
            Metric::new("recordings_since_last", activity.recordings as f64, "count"),
            Metric::new("model_outputs_since_last", activity.model_outputs as f64, "count"),
            Metric::new("detections_since_last", activity.detections as f64, "count"),
            Metric::new("messages_since_last", activity.messages as f64, "count"),
            Metric::new("unsent_messages", activity.unsent_messages as f64, "count"),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acoupi_engine::data::{Message, Response, ResponseStatus};
    use acoupi_engine::store::MessageStore;

    use crate::store_duckdb::DuckDbStore;
    use crate::testing::{detection, output};

    #[test]
    fn counts_what_happened_since_the_previous_heartbeat_and_what_waits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap());
        let ctx = crate::testing::context(dir.path(), Some(store.clone()));
        let Built::Metric(metric) = StationMetricsConfig {}.build(&ctx).unwrap() else { panic!("not a metric") };

        let value = |metrics: &[Metric], name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
        let out = output(vec![detection(0.9, &[("species", "Turdus merula", 0.9)]), detection(0.5, &[])]);
        store.store_recording(&out.recording).unwrap();
        store.store_model_output(&out).unwrap();
        let (delivered, waiting) = (Message::new("a"), Message::new("b"));
        store.store_message(&delivered).unwrap();
        store.store_message(&waiting).unwrap();
        store.store_response(&Response::new(ResponseStatus::Success, delivered)).unwrap();
        store.store_response(&Response::new(ResponseStatus::Error, waiting)).unwrap();

        let first = metric.measure().unwrap();
        assert_eq!(value(&first, "recordings_since_last"), Some(1.0));
        assert_eq!(value(&first, "model_outputs_since_last"), Some(1.0));
        assert_eq!(value(&first, "detections_since_last"), Some(2.0));
        assert_eq!(value(&first, "messages_since_last"), Some(2.0));
        assert_eq!(value(&first, "unsent_messages"), Some(1.0));
        assert!(first.iter().all(|m| m.unit == "count"));

        // The next interval starts where the previous one ended; the unsent one still waits.
        let second = metric.measure().unwrap();
        assert_eq!(value(&second, "recordings_since_last"), Some(0.0));
        assert_eq!(value(&second, "detections_since_last"), Some(0.0));
        assert_eq!(value(&second, "unsent_messages"), Some(1.0));
    }

    #[test]
    fn without_a_store_it_cannot_be_built() {
        let ctx = crate::testing::context(std::path::Path::new("."), None);
        let error = StationMetricsConfig {}.build(&ctx).err().unwrap();
        assert!(error.contains("store"), "{error}");
    }
}

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
//! `detections_since_last`, `messages_since_last` (count), `unsent_messages` (count, of
//! any age), `errors_since_last` (count of ERROR-level log events of the station) and,
//! once there has been one, `seconds_since_last_error` (seconds); `audio_gaps_since_last`
//! (count of gaps `recorder.microphone` met: xruns, dropped blocks, clock jumps); the latest error's text
//! is logged with the heartbeat at warn level, since a metric holds a number. A station whose recorder stopped shows `recordings_since_last = 0` on the
//! dashboard long before anyone visits the site.

use std::sync::{Arc, Mutex};

use acoupi_engine::component::{ComponentError, ComponentResult, MetricSource};
use acoupi_engine::data::Metric;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use acoupi_engine::store::Store;
use acoupi_engine::telemetry::Telemetry;
use chrono::{DateTime, Utc};

/// Report what the station did since the previous heartbeat (recordings, model outputs,
/// detections, messages) and how many messages wait to be delivered.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StationMetricsConfig {}

impl ComponentConfig for StationMetricsConfig {
    const KIND: &'static str = "metric.station";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let store = ctx.store.clone().ok_or_else(BuildError::needs_store)?;
        Ok(Built::Metric(Arc::new(StationMetrics::new(
            store,
            ctx.telemetry.clone(),
        ))))
    }
}

pub struct StationMetrics {
    store: Arc<dyn Store>,
    /// The station's telemetry: its error and audio-gap counts.
    telemetry: Telemetry,
    /// The end of the previous interval, and the error and audio-gap counts then.
    last: Mutex<(DateTime<Utc>, u64, u64)>,
}

impl StationMetrics {
    fn new(store: Arc<dyn Store>, telemetry: Telemetry) -> StationMetrics {
        StationMetrics {
            store,
            last: Mutex::new((Utc::now(), telemetry.errors(), telemetry.gaps())),
            telemetry,
        }
    }
}

impl MetricSource for StationMetrics {
    fn measure(&self) -> ComponentResult<Vec<Metric>> {
        let now = Utc::now();
        let mut last = self
            .last
            .lock()
            .map_err(|_| ComponentError::Other("the interval clock is poisoned".into()))?;
        let (since, errors_before, gaps_before) = *last;
        let activity = self.store.activity_since(since).map_err(|e| {
            ComponentError::Other(format!("cannot read the station's activity: {e}"))
        })?;
        let errors = self.telemetry.errors();
        let gaps = self.telemetry.gaps();
        // Only a successful read moves the interval on: nothing is skipped after an error.
        *last = (now, errors, gaps);
        let mut metrics = vec![
            Metric::new("recordings_since_last", activity.recordings as f64, "count"),
            Metric::new(
                "model_outputs_since_last",
                activity.model_outputs as f64,
                "count",
            ),
            Metric::new("detections_since_last", activity.detections as f64, "count"),
            Metric::new("messages_since_last", activity.messages as f64, "count"),
            Metric::new("unsent_messages", activity.unsent_messages as f64, "count"),
            Metric::new(
                "errors_since_last",
                errors.saturating_sub(errors_before) as f64,
                "count",
            ),
            Metric::new(
                "audio_gaps_since_last",
                gaps.saturating_sub(gaps_before) as f64,
                "count",
            ),
        ];
        if let Some((when, text)) = self.telemetry.last_error() {
            metrics.push(Metric::new(
                "seconds_since_last_error",
                (now - when).num_milliseconds().max(0) as f64 / 1000.0,
                "seconds",
            ));
            if errors > errors_before {
                tracing::warn!(errors = errors - errors_before, last_error = %text, "errors since the last heartbeat");
            }
        }
        Ok(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acoupi_engine::data::{Message, Response, ResponseStatus};
    use acoupi_engine::store::MessageStore;
    use acoupi_store_duckdb::DuckDbStore;

    use crate::testing::{detection, output};

    #[test]
    fn counts_what_happened_since_the_previous_heartbeat_and_what_waits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap());
        let ctx = crate::testing::context(dir.path(), Some(store.clone()));
        assert!(matches!(
            StationMetricsConfig {}.build(&ctx),
            Ok(Built::Metric(_))
        ));
        let errors = Telemetry::new();
        let metric = StationMetrics::new(store.clone(), errors.clone());

        let value = |metrics: &[Metric], name: &str| {
            metrics.iter().find(|m| m.name == name).map(|m| m.value)
        };
        let out = output(vec![
            detection(0.9, &[("species", "Turdus merula", 0.9)]),
            detection(0.5, &[]),
        ]);
        store.store_recording(&out.recording).unwrap();
        store.store_model_output(&out).unwrap();
        let (delivered, waiting) = (Message::new("a"), Message::new("b"));
        store.store_message(&delivered).unwrap();
        store.store_message(&waiting).unwrap();
        store
            .store_response(&Response::new(ResponseStatus::Success, delivered))
            .unwrap();
        store
            .store_response(&Response::new(ResponseStatus::Error, waiting))
            .unwrap();

        errors.record_error("cannot move the file", Default::default());
        errors.record_error("model failed", Default::default());
        let first = metric.measure().unwrap();
        assert_eq!(value(&first, "errors_since_last"), Some(2.0));
        assert!(
            value(&first, "seconds_since_last_error").is_some_and(|s| (0.0..60.0).contains(&s))
        );
        assert_eq!(value(&first, "recordings_since_last"), Some(1.0));
        assert_eq!(value(&first, "model_outputs_since_last"), Some(1.0));
        assert_eq!(value(&first, "detections_since_last"), Some(2.0));
        assert_eq!(value(&first, "messages_since_last"), Some(2.0));
        assert_eq!(value(&first, "unsent_messages"), Some(1.0));
        assert!(
            first
                .iter()
                .filter(|m| m.name != "seconds_since_last_error")
                .all(|m| m.unit == "count")
        );

        // The next interval starts where the previous one ended; the unsent one still waits.
        let second = metric.measure().unwrap();
        assert_eq!(value(&second, "recordings_since_last"), Some(0.0));
        assert_eq!(value(&second, "detections_since_last"), Some(0.0));
        assert_eq!(value(&second, "unsent_messages"), Some(1.0));
        assert_eq!(value(&second, "errors_since_last"), Some(0.0));
    }

    #[test]
    fn two_stations_in_one_process_do_not_share_counts() {
        use acoupi_engine::runtime::{Job, Station};
        let source = "[deployment]\nname = \"t\"\n\n\
            [components.hub]\ntype = \"messenger.http\"\nurl = \"http://127.0.0.1:9/in\"\n\n\
            [stages.beat]\nkind = \"heartbeat\"\nmessengers = [\"hub\"]\n\
            metrics = [{ type = \"metric.station\" }]\nschedule = { every = \"5min\" }\n";
        let station = |dir: &std::path::Path| {
            let pipeline = acoupi_engine::config::load_str(
                &dir.join("pipeline.toml"),
                source,
                &crate::registry(),
            )
            .unwrap();
            let store = Arc::new(DuckDbStore::open(&pipeline.settings.store_path).unwrap());
            Station::build(&pipeline, store.clone(), store).unwrap()
        };
        let measure = |station: &Station| {
            let Job::Heartbeat(task) = station.stages[0].job.as_ref() else {
                panic!("not a heartbeat stage")
            };
            let metrics = task.metrics[0].component.measure().unwrap();
            let value = |name: &str| metrics.iter().find(|m| m.name == name).map(|m| m.value);
            (
                value("errors_since_last"),
                value("audio_gaps_since_last"),
                value("seconds_since_last_error").is_some(),
            )
        };
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (station(dir_a.path()), station(dir_b.path()));
        a.telemetry.record_error("model failed", Default::default());
        a.telemetry.record_gap();
        a.telemetry.record_gap();
        assert_eq!(measure(&a), (Some(1.0), Some(2.0), true));
        assert_eq!(
            measure(&b),
            (Some(0.0), Some(0.0), false),
            "the other station saw nothing"
        );
        b.telemetry.record_error("cannot send", Default::default());
        assert_eq!(measure(&a), (Some(0.0), Some(0.0), true));
        assert_eq!(measure(&b), (Some(1.0), Some(0.0), true));
    }

    #[test]
    fn without_a_store_it_cannot_be_built() {
        let ctx = crate::testing::context(std::path::Path::new("."), None);
        let error = StationMetricsConfig {}.build(&ctx).err().unwrap();
        assert!(error.to_string().contains("store"), "{error}");
    }
}

//! A station's telemetry: what it counts about itself for its heartbeats (`metric.station`)
//! — ERROR-level log events (how many, the latest, how many per stage and component) and
//! the gaps live audio capture met. One [`Telemetry`] per station: the runtime creates it
//! (or is given one), components get it in their `BuildContext`, and the CLI's logging
//! layer records every ERROR event into it, whatever the log filter. Nothing here is
//! process-wide: two stations in one process count apart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// The log fields that name a component in the tasks' error events, by family.
pub const COMPONENT_FIELDS: &[&str] = &[
    "recorder",
    "condition",
    "model",
    "cleaner",
    "filter",
    "manager",
    "factory",
    "messenger",
    "summariser",
    "metric",
];

/// Where an error was logged: its stage and component, when the event named them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ErrorSource {
    pub stage: Option<String>,
    pub component: Option<String>,
}

/// A cheap handle (clones share the counts) on one station's telemetry.
#[derive(Clone, Default)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    errors: AtomicU64,
    last_error: Mutex<Option<(DateTime<Utc>, String)>>,
    errors_by_source: Mutex<BTreeMap<ErrorSource, u64>>,
    gaps: AtomicU64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("errors", &self.errors())
            .field("gaps", &self.gaps())
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// A station's telemetry with nothing counted yet.
    pub fn new() -> Telemetry {
        Telemetry::default()
    }

    /// Notes one error, logged now with this text, from `source`.
    pub fn record_error(&self, message: impl Into<String>, source: ErrorSource) {
        self.inner.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.inner.last_error.lock() {
            *last = Some((Utc::now(), message.into()));
        }
        if let Ok(mut by_source) = self.inner.errors_by_source.lock() {
            *by_source.entry(source).or_default() += 1;
        }
    }

    /// Errors recorded since this telemetry was created.
    pub fn errors(&self) -> u64 {
        self.inner.errors.load(Ordering::Relaxed)
    }

    /// When the latest error was recorded, and its text.
    pub fn last_error(&self) -> Option<(DateTime<Utc>, String)> {
        self.inner
            .last_error
            .lock()
            .ok()
            .and_then(|last| last.clone())
    }

    /// Errors recorded so far, by stage and component.
    pub fn errors_by_source(&self) -> BTreeMap<ErrorSource, u64> {
        self.inner
            .errors_by_source
            .lock()
            .map(|by_source| by_source.clone())
            .unwrap_or_default()
    }

    /// Notes one gap in live audio (an xrun, dropped blocks, a timestamp jump).
    pub fn record_gap(&self) {
        self.inner.gaps.fetch_add(1, Ordering::Relaxed);
    }

    /// Gaps every capture stream of this station met.
    pub fn gaps(&self) -> u64 {
        self.inner.gaps.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_keeps_the_latest() {
        let tally = Telemetry::new();
        assert_eq!((tally.errors(), tally.last_error()), (0, None));
        tally.record_error("first", ErrorSource::default());
        tally.record_error("second", ErrorSource::default());
        assert_eq!(tally.errors(), 2);
        assert_eq!(
            tally.last_error().map(|(_, text)| text).as_deref(),
            Some("second")
        );
    }

    #[test]
    fn errors_are_counted_by_stage_and_component() {
        let telemetry = Telemetry::new();
        let source = |stage: &str, component: Option<&str>| ErrorSource {
            stage: Some(stage.into()),
            component: component.map(String::from),
        };
        telemetry.record_error("a", source("detect", Some("birdnet")));
        telemetry.record_error("b", source("detect", Some("birdnet")));
        telemetry.record_error("c", source("manage", None));
        let by_source = telemetry.errors_by_source();
        assert_eq!(by_source[&source("detect", Some("birdnet"))], 2);
        assert_eq!(by_source[&source("manage", None)], 1);
        assert_eq!(telemetry.errors(), 3);
    }

    #[test]
    fn clones_share_counts_and_new_handles_do_not() {
        let station = Telemetry::new();
        let other = Telemetry::new();
        let clone = station.clone();
        clone.record_error("x", ErrorSource::default());
        clone.record_gap();
        assert_eq!((station.errors(), station.gaps()), (1, 1));
        assert_eq!((other.errors(), other.gaps()), (0, 0));
    }
}

//! The station's error tally: how many ERROR-level events the station has logged and the
//! latest one, for the heartbeat's engine metrics (`metric.station`). The CLI feeds it
//! from its logging set-up (a `tracing` layer that sees every ERROR event, whatever the
//! log filter); anything else may call [`ErrorTally::record`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};

/// Counts errors and keeps the latest.
pub struct ErrorTally {
    count: AtomicU64,
    last: Mutex<Option<(DateTime<Utc>, String)>>,
}

/// The process's tally.
pub static ERRORS: ErrorTally = ErrorTally::new();

impl ErrorTally {
    pub const fn new() -> ErrorTally {
        ErrorTally {
            count: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// Notes one error, logged now with this text.
    pub fn record(&self, message: impl Into<String>) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Utc::now(), message.into()));
        }
    }

    /// Errors recorded since the process started.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// When the latest error was recorded, and its text.
    pub fn last(&self) -> Option<(DateTime<Utc>, String)> {
        self.last.lock().ok().and_then(|last| last.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_keeps_the_latest() {
        let tally = ErrorTally::new();
        assert_eq!((tally.count(), tally.last()), (0, None));
        tally.record("first");
        tally.record("second");
        assert_eq!(tally.count(), 2);
        assert_eq!(
            tally.last().map(|(_, text)| text).as_deref(),
            Some("second")
        );
    }
}

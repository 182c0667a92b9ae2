//! Summarisers: messages about the detections of the last interval, read from the store.

pub(crate) mod statistics;
pub(crate) mod thresholds;

use std::sync::Arc;

use acoupi_engine::component::{ComponentError, ComponentResult};
use acoupi_engine::config::values::{BoundedDuration, PositiveDuration};
use acoupi_engine::data::ModelOutput;
use acoupi_engine::registry::{BuildContext, BuildError};
use acoupi_engine::store::Store;
use chrono::{DateTime, Utc};

/// The interval summarised by default: one hour.
pub(crate) fn default_interval() -> PositiveDuration {
    BoundedDuration(std::time::Duration::from_secs(3600))
}
pub(crate) fn default_interval_text() -> &'static str {
    "1h"
}

/// The station's store and the interval as a calendar duration, for a summariser's build.
pub(crate) fn store_and_interval(
    ctx: &BuildContext,
    interval: &PositiveDuration,
) -> Result<(Arc<dyn Store>, chrono::Duration), BuildError> {
    let store = ctx.store.clone().ok_or_else(BuildError::needs_store)?;
    let interval = chrono::Duration::from_std(interval.0)
        .map_err(|e| BuildError::at(&["interval"], e.to_string()))?;
    Ok((store, interval))
}

/// The start of the interval ending at `now` and the model outputs created in it.
pub(crate) fn interval_outputs(
    store: &dyn Store,
    interval: chrono::Duration,
    now: DateTime<Utc>,
) -> ComponentResult<(DateTime<Utc>, Vec<ModelOutput>)> {
    let start = now - interval;
    let outputs = store
        .get_model_outputs_between(start, now)
        .map_err(|e| ComponentError::Store(e.to_string()))?;
    Ok((start, outputs))
}

//! Metrics: heartbeat readings about the station and its host.

pub(crate) mod station;
pub(crate) mod system;

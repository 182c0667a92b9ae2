//! Output cleaners: what a model output keeps before it is stored.

pub(crate) mod privacy;
pub(crate) mod tags;
pub(crate) mod threshold;

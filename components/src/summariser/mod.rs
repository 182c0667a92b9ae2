//! Summarisers: messages about the detections of the last interval.

pub(crate) mod summarisers;

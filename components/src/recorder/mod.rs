//! Recorders: where recordings come from (a microphone, or files replayed as if live).

pub(crate) mod microphone;
pub(crate) mod replay;

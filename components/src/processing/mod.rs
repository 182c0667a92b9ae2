//! Processing filters: whether a recording is worth running the models on.

pub(crate) mod min_rms;

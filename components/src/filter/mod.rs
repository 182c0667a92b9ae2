//! Saving filters: whether a recording's audio is kept once analysed.

pub(crate) mod dawn_dusk;
pub(crate) mod frequency;
pub(crate) mod sample;
pub(crate) mod species;
pub(crate) mod threshold;
pub(crate) mod time_window;

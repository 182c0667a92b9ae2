//! Recording conditions: whether a recording is taken now.

pub(crate) mod battery;
pub(crate) mod dawn_dusk;
pub(crate) mod free_space;
pub(crate) mod time_window;

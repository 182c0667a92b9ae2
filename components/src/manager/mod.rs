//! Recording managers: where a kept recording's file goes.

pub(crate) mod by_score;
pub(crate) mod by_tag;
pub(crate) mod date_folders;

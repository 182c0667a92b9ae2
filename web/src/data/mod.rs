//! The dashboard's SQL: each function takes a reader connection and returns the rows a
//! page or an API answer shows, prepared for the call that runs it (see
//! acoupi-store-duckdb's docs on prepared reads).

pub(crate) mod detections;
pub(crate) mod recording;
pub(crate) mod reviews;
pub(crate) mod species;
pub(crate) mod species_key;
pub(crate) mod status;

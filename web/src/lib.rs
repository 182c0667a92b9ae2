//! The station dashboard (`[web]` in a pipeline, `acoupi serve`): server-rendered pages
//! (maud), the JSON API under `/api/v1`, media (audio with HTTP Range, spectrograms) and
//! Prometheus metrics, all answered from the station's own store connection.
//!
//! `server.rs` builds the router from each module's `routes()`; `state.rs` owns the
//! store handles every handler reads through ([`AppState::read`] runs the query on a
//! blocking thread); `data/` holds the SQL, `pages/` the HTML, `api/` the JSON.
//! `local.rs` is the station's local API on a Unix socket (`acoupi query`, `status` and
//! `export` while a station runs), `local_client.rs` the CLI's client for it.

mod api;
mod assets;
mod data;
mod error;
pub mod local;
pub mod local_client;
mod media;
mod pages;
mod security;
mod server;
mod spectrogram;
mod state;

pub use error::WebError;
pub use server::{router, serve};
pub use state::{AppState, Served, StateOptions};

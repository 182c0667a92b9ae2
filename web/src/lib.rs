//! The station dashboard (`[web]` in a pipeline, `acoupi serve`): server-rendered pages
//! (maud), the JSON API under `/api/v1`, media (audio with HTTP Range, spectrograms) and
//! Prometheus metrics, all answered from the station's own store connection.
//!
//! `server.rs` builds the router from each module's `routes()`; `state.rs` owns the
//! store handles every handler reads through ([`AppState::read`] runs the query on a
//! blocking thread); `data/` holds the SQL, `pages/` the HTML, `api/` the JSON.

mod api;
mod data;
mod error;
mod pages;
mod server;
mod state;

pub use error::WebError;
pub use server::{router, serve};
pub use state::{AppState, Served, StateOptions};

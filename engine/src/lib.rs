//! acoupi-engine: the data model, component traits, registry, pipeline loading and
//! validation, the stage DAG, the scheduler and the six tasks.

pub mod backoff;
pub mod component;
pub mod component_docs;
pub mod config;
pub mod data;
pub mod disk;
pub mod error_chain;
pub mod folders;
pub mod guano;
pub mod recovery;
pub mod registry;
pub mod reprocess;
pub mod resources;
pub mod retention;
pub mod runtime;
pub mod schedule;
pub mod schema;
pub mod secret;
pub mod store;
pub mod tasks;
pub mod telemetry;

pub use error_chain::error_chain;

//! End-to-end tests: one test binary, one module per area. They run the real `acoupi`
//! binary and the engine on the files in `pipelines/`, `schemas/` and `tests/pipelines/`.

mod cli;
mod corpus;
mod crash;
mod guano;
mod pipelines;
mod recovery;
mod retention;
mod run;
mod schema;
mod store_cli;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `*.toml` files of a folder under the root, sorted.
pub fn toml_files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(folder))
        .unwrap_or_else(|e| panic!("cannot read {folder}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

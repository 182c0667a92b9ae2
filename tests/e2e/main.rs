//! End-to-end tests: one test binary, one module per area. They run the real `acoupi`
//! binary and the engine on the files in `pipelines/`, `schemas/` and `tests/pipelines/`.

// A test crate: its helpers may panic on a broken fixture (clippy.toml exempts only
// `#[test]` functions and `#[cfg(test)]` modules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench;
mod browser;
mod cli;
mod corpus;
mod crash;
mod faults;
mod guano;
mod home_assistant;
mod hostile_fs;
mod local_api;
mod microphone;
mod models;
mod pipelines;
mod recovery;
mod reprocess;
mod retention;
mod run;
mod schema;
mod service;
mod slurm;
mod store_cli;
mod web;

use std::path::{Path, PathBuf};

/// A test that cannot find what it needs (root, a virtual microphone, systemd-analyze)
/// skips with `reason`, unless `var` is set (to anything but `0`): CI sets these
/// variables, and there a skip is a failure, so a missing tool cannot pass by skipping.
pub fn skip_unless_required(var: &str, reason: &str) {
    let required = std::env::var_os(var).is_some_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{reason}, and it is required here ({var} is set)"
    );
    println!("skipped: {reason}");
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a broker or server a test
/// starts).
pub fn free_local_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `acoupi` with `args`, asserts it succeeded (printing its output otherwise) and
/// returns its standard output.
pub fn acoupi_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "acoupi {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

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

/// The `.wav` files under `dir`, at any depth, except in `quarantine` folders.
pub fn wavs_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_none_or(|n| n != "quarantine") {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "wav") {
                found.push(path);
            }
        }
    }
    found
}

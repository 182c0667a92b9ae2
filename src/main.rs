//! The `acoupi` binary: argument parsing, logging set-up and error reporting. Each
//! subcommand lives in `cli/`, the benchmarks in `cli/bench/`, the terminal progress
//! display in `progress.rs`; behaviour lives in `acoupi-engine`, `acoupi-components` and
//! `acoupi-store-duckdb`.

mod cli;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::Cli::parse().execute()
}

//! The `acoupi` binary: argument parsing, logging set-up and error reporting. Each
//! subcommand lives in `cli/`; behaviour lives in `acoupi-engine` and
//! `acoupi-components`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    cli::Cli::parse().execute()
}

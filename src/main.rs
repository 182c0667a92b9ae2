//! The `acoupi` binary: argument parsing, logging set-up and error reporting. Everything
//! else lives in `acoupi-engine` and `acoupi-components`.

use std::path::PathBuf;
use std::process::ExitCode;

use acoupi_engine::config::{LoadError, load};
use clap::{Parser, Subcommand};

/// Autonomous bioacoustic monitoring stations, configured in one TOML pipeline file.
#[derive(Parser)]
#[command(name = "acoupi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline file and report every mistake with file:line:col.
    ///
    /// Exit status: 0 valid, 1 invalid pipeline, 2 usage or I/O error.
    Validate {
        /// Pipeline files to check.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
    /// Print the JSON Schema of pipeline files (for editors and `taplo`).
    Schema,
    /// List every component type with its one-line description.
    Components {
        /// Print the full list with each type's parameter schema as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Exit status for an invalid pipeline (usage and I/O errors exit with 2, as clap does).
const INVALID: u8 = 1;
const USAGE_OR_IO: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let registry = acoupi_components::registry();
    match cli.command {
        Command::Validate { pipelines } => validate(&registry, &pipelines),
        Command::Schema => {
            print!("{}", acoupi_engine::schema::pipeline_schema_text(&registry));
            ExitCode::SUCCESS
        }
        Command::Components { json } => {
            if json {
                let list: Vec<_> = registry
                    .types()
                    .map(|t| {
                        serde_json::json!({
                            "type": t.kind,
                            "family": t.family.noun(),
                            "description": t.description(),
                            "parameters": t.parameters_schema(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list).unwrap_or_default());
            } else {
                let width = registry.kinds().map(str::len).max().unwrap_or(0);
                for t in registry.types() {
                    println!("{:width$}  {}", t.kind, t.description());
                }
            }
            ExitCode::SUCCESS
        }
    }
}

fn validate(registry: &acoupi_engine::registry::Registry, pipelines: &[PathBuf]) -> ExitCode {
    let mut status = 0;
    for path in pipelines {
        match load(path, registry) {
            Ok(pipeline) => println!("{}: valid: {}", path.display(), pipeline.summary()),
            Err(LoadError::Read(error)) => {
                eprintln!("error: {error}");
                status = status.max(USAGE_OR_IO);
            }
            Err(LoadError::Invalid(errors)) => {
                for report in errors.reports() {
                    eprintln!("{:?}", miette::Report::new(report));
                }
                let n = errors.problems.len();
                eprintln!("{}: {n} problem{} found", path.display(), if n == 1 { "" } else { "s" });
                status = status.max(INVALID);
            }
        }
    }
    ExitCode::from(status)
}

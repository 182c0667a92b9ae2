//! Subcommands and exit codes: 0 success, 1 invalid pipeline or failed run, 2 usage or
//! I/O error (clap uses 2 for usage errors too).

mod bench;
mod components;
mod devices;
mod ha;
mod models;
mod reprocess;
mod retention;
mod run;
mod serve;
mod service;
mod status;
mod store;
mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use acoupi_engine::config::{LoadError, Pipeline, PipelineErrors, load};
use acoupi_engine::registry::Registry;
use clap::{Parser, Subcommand, ValueEnum};

pub const INVALID: u8 = 1;
pub const USAGE_OR_IO: u8 = 2;

/// Autonomous bioacoustic monitoring stations, configured in one TOML pipeline file.
#[derive(Parser)]
#[command(name = "acoupi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: human-readable lines, or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check pipeline files and report every mistake with file:line:col.
    ///
    /// With --build, also build every component (load model files and check their
    /// labels, open devices, read folders and secrets) without starting anything, and
    /// report each failure at its component.
    ///
    /// Exit status: 0 valid, 1 invalid pipeline (or a component that cannot be built), 2
    /// usage or I/O error.
    Validate {
        /// Pipeline files to check.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// Also build every component, as `acoupi run` does before it starts.
        #[arg(long)]
        build: bool,
    },
    /// Run a station until stopped (Ctrl-C or SIGTERM finish the work in flight).
    Run(run::RunArgs),
    /// What a station has done: last run of each stage, counts, unsent messages, disk use.
    Status {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Run SQL on a station's store (works while the station runs).
    Query(store::QueryArgs),
    /// Export detections, recordings or messages to Parquet, CSV or a Raven selection table.
    Export(store::ExportArgs),
    /// Apply the pipeline's [retention] policy now, or with --dry-run report what it
    /// would delete and why.
    Retention(retention::RetentionArgs),
    /// Analyse an archive of WAV files with the pipeline's detection stages: every core,
    /// resumable (a second run skips what is done), optionally one shard of N.
    Reprocess(reprocess::ReprocessArgs),
    /// Merge store files (e.g. reprocessing shards) into one.
    Merge(reprocess::MergeArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: bench::BenchWhat,
    },
    /// Run a station as a system service (systemd).
    Service {
        #[command(subcommand)]
        command: service::ServiceCommand,
    },
    /// Home Assistant: `acoupi ha remove FILE` deletes the station's entities.
    Ha {
        #[command(subcommand)]
        command: ha::HaCommand,
    },
    /// Serve the dashboard of a store no station holds (read-only unless
    /// --allow-reviews): a pipeline's, a `.duckdb` file, or a reprocessing output
    /// folder's. A running station serves its own with [web] in its pipeline.
    Serve(serve::ServeArgs),
    /// Print the JSON Schema of pipeline files (for editors and `taplo`).
    Schema,
    /// List the audio input devices (for `recorder.microphone`'s `device`) with the
    /// channels, sample rates and sample formats each supports.
    Devices {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the bundled models found in acoupi's data dirs: file, size, sha256, licence
    /// and where each was found ($ACOUPI_DATA_DIR, <exe>/../share/acoupi,
    /// /usr/share/acoupi, the source tree of a dev build).
    ///
    /// With --verify, also run each model's reference case through the model code and
    /// print each check's max abs difference. Exit status: 0 all found (and passed), 1 a
    /// file missing or a check failed.
    Models(models::ModelsArgs),
    /// List every component type with its one-line description.
    Components {
        /// Print the full list with each type's parameter schema as JSON.
        #[arg(long)]
        json: bool,
        /// Print the component reference as Markdown (the checked-in
        /// `docs/components.md`).
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
    },
}

impl Cli {
    pub fn execute(self) -> ExitCode {
        let registry = acoupi_components::registry();
        match self.command {
            Command::Validate { pipelines, build } => {
                validate::validate(&registry, &pipelines, build)
            }
            Command::Run(args) => run::run(&registry, args, self.log_format),
            Command::Status { pipeline } => {
                run::init_logging_with(self.log_format, "warn", None);
                status::status(&registry, &pipeline)
            }
            Command::Query(args) => {
                run::init_logging_with(self.log_format, "warn", None);
                store::query(&registry, args)
            }
            Command::Export(args) => {
                run::init_logging_with(self.log_format, "warn", None);
                store::export(&registry, args)
            }
            Command::Retention(args) => retention::retention(&registry, args),
            Command::Reprocess(args) => {
                reprocess::reprocess_command(&registry, args, self.log_format)
            }
            Command::Merge(args) => reprocess::merge_command(args),
            Command::Bench { what } => bench::bench(what),
            Command::Service { command } => service::service(&registry, command),
            Command::Ha { command } => ha::ha(&registry, command),
            Command::Serve(args) => serve::serve(&registry, args, self.log_format),
            Command::Schema => {
                print!("{}", acoupi_engine::schema::pipeline_schema_text(&registry));
                ExitCode::SUCCESS
            }
            Command::Components { json, markdown } => components::list(&registry, json, markdown),
            Command::Devices { json } => devices::list(json),
            Command::Models(args) => models::models(args),
        }
    }
}

/// Loads a pipeline, printing its problems (exit 1) or a read error (exit 2).
pub fn load_or_report(registry: &Registry, path: &Path) -> Result<Pipeline, ExitCode> {
    match load(path, registry) {
        Ok(pipeline) => Ok(pipeline),
        Err(LoadError::Read(error)) => {
            eprintln!("error: {error}");
            Err(ExitCode::from(USAGE_OR_IO))
        }
        Err(LoadError::Invalid(errors)) => Err(report_problems(&errors)),
    }
}

/// Prints every problem of a file (miette, with its snippet) and a count; exit code 1.
pub fn report_problems(errors: &PipelineErrors) -> ExitCode {
    for report in errors.reports() {
        eprintln!("{:?}", miette::Report::new(report));
    }
    let n = errors.problems.len();
    eprintln!(
        "{}: {n} problem{} found",
        errors.path.display(),
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(INVALID)
}

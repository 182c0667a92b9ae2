//! `acoupi reprocess PIPELINE ARCHIVE` and `acoupi merge OUT INPUT...`: argument
//! parsing, opening the store, printing the report. The work is
//! [`acoupi_engine::reprocess`] and [`acoupi_store_duckdb::merge`].

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use acoupi_components::audio_probe::WavProbe;
use acoupi_engine::registry::Registry;
use acoupi_engine::reprocess::{ReprocessError, ReprocessOptions, Shard, printable, reprocess};
use acoupi_store_duckdb::DuckDbStore;
use clap::{Args, ValueEnum};

use super::LogFormat;
use crate::progress::{ProgressDisplay, ProgressMode};

#[derive(Args)]
pub struct ReprocessArgs {
    /// The pipeline file: its detection stages analyse the archive.
    pipeline: PathBuf,
    /// The archive folder, searched recursively for .wav and .flac files.
    archive: PathBuf,
    /// Write to this DuckDB file (created if missing) instead of the pipeline's store.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Analyse only shard I of N (1-based), e.g. 3/64. Without --store, the store is
    /// the pipeline's with `.shard-I-of-N` before its extension.
    #[arg(long)]
    shard: Option<Shard>,
    /// Worker threads (default: one per core).
    #[arg(long, short = 'j')]
    jobs: Option<NonZeroUsize>,
    /// Recording time in file names as a chrono pattern, e.g. "SITE_%Y-%m-%d_%H-%M-%S"
    /// (local to the deployment's timezone unless it has %z).
    #[arg(long)]
    time_format: Option<String>,
    /// Detection stages to run (repeatable; default: all).
    #[arg(long = "stage")]
    stages: Vec<String>,
    /// Analyse again the files an earlier run recorded as errors.
    #[arg(long)]
    retry_errors: bool,
    /// How to show progress: a bar on a terminal, else a log line every 10 s (auto).
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
    /// What the results are left as: the DuckDB store file, or also a folder of Parquet
    /// files beside it (`<store>.parquet/`, one file per table, rewritten at the end of
    /// each run; `acoupi merge` takes such folders). The store file stays either way: a
    /// rerun resumes from it.
    #[arg(long, value_enum, default_value_t = OutputFormat::Duckdb)]
    format: OutputFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Duckdb,
    Parquet,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProgressArg {
    Auto,
    Bar,
    Log,
    Off,
}

#[derive(Args)]
pub struct MergeArgs {
    /// The store file to merge into (created if missing).
    out: PathBuf,
    /// Store files or Parquet folders to merge (e.g. the shards of
    /// `acoupi reprocess --shard`, with or without `--format parquet`).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// The store a shard writes without --store: `<stem>.shard-I-of-N.<ext>`.
fn shard_store(store: &Path, shard: Shard) -> PathBuf {
    let stem = store
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "acoupi".into());
    let extension = store
        .extension()
        .map_or_else(|| "duckdb".into(), |e| e.to_string_lossy().into_owned());
    store.with_file_name(format!(
        "{stem}.shard-{}-of-{}.{extension}",
        shard.index(),
        shard.count()
    ))
}

pub fn reprocess_command(
    registry: &Registry,
    args: ReprocessArgs,
    log_format: LogFormat,
) -> ExitCode {
    let pipeline = match super::load_or_report(registry, &args.pipeline) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    // Each analysed file's "analysed" line would drown the progress: warnings only there.
    super::run::init_logging_with(
        log_format,
        "info,acoupi_engine::tasks::detection=warn",
        None,
    );
    let store_path = match (&args.store, args.shard) {
        (Some(path), _) => path.clone(),
        (None, Some(shard)) => shard_store(&pipeline.settings.store_path, shard),
        (None, None) => pipeline.settings.store_path.clone(),
    };
    let store = match DuckDbStore::open(&store_path) {
        Ok(store) => Arc::new(store),
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(super::INVALID);
        }
    };
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    );
    let options = ReprocessOptions {
        archive: args.archive.clone(),
        jobs,
        shard: args.shard,
        time_format: args.time_format,
        stages: args.stages,
        retry_errors: args.retry_errors,
    };
    let mut progress = ProgressDisplay::new(match args.progress {
        ProgressArg::Auto => ProgressMode::detect(),
        ProgressArg::Bar => ProgressMode::Bar,
        ProgressArg::Log => ProgressMode::Log(Duration::from_secs(10)),
        ProgressArg::Off => ProgressMode::Off,
    });
    let shard = args
        .shard
        .map_or_else(String::new, |s| format!(" (shard {s})"));
    match reprocess(
        &pipeline,
        store.clone(),
        Arc::new(WavProbe),
        &options,
        &mut progress,
    ) {
        Ok(report) => {
            let parquet = store_path.with_extension("parquet");
            let exported = (args.format == OutputFormat::Parquet)
                .then(|| acoupi_store_duckdb::export_parquet(&store, &parquet));
            drop(store);
            let shown = |path: &Path| printable(&path.to_string_lossy()).into_owned();
            println!("{} → {}{shard}", shown(&args.archive), shown(&store_path));
            print!("{}", report.render());
            match exported {
                Some(Err(error)) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
                Some(Ok(())) => {
                    println!("Parquet: {}", shown(&parquet));
                    ExitCode::SUCCESS
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(error @ ReprocessError::Discovery(_)) => {
            eprintln!("error: {error}");
            ExitCode::from(super::USAGE_OR_IO)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(super::INVALID)
        }
    }
}

pub fn merge_command(args: MergeArgs) -> ExitCode {
    match acoupi_store_duckdb::merge(&args.out, &args.inputs) {
        Ok(report) => {
            let rows = report
                .rows
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(table, n)| format!("{table} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "merged {} store files into {}: {}",
                report.inputs,
                args.out.display(),
                if rows.is_empty() {
                    "nothing new".into()
                } else {
                    rows
                }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(super::INVALID)
        }
    }
}

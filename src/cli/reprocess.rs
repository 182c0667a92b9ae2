//! `acoupi reprocess PIPELINE ARCHIVE` (and its `--plan PLAN ARCHIVE` and `--status
//! OUT` forms) and `acoupi merge OUT INPUT...`: argument parsing, opening the store,
//! printing the report. The work is [`acoupi_engine::reprocess`] and
//! [`acoupi_store_duckdb::merge`].

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use acoupi_components::audio_probe::WavProbe;
use acoupi_engine::registry::Registry;
use acoupi_engine::reprocess::plan::shard_durations;
use acoupi_engine::reprocess::{
    PlanEntry, ReprocessError, ReprocessOptions, Shard, ShardChoice, StatusFile, Summary,
    make_plan, printable, reprocess, shard_from_env,
};
use acoupi_store_duckdb::DuckDbStore;
use clap::{Args, ValueEnum};

use super::LogFormat;
use crate::progress::{ProgressDisplay, ProgressMode};

#[derive(Args)]
pub struct ReprocessArgs {
    /// The pipeline file: its detection stages analyse the archive. (With --plan and
    /// no pipeline, the one path given is the archive to write a plan of.)
    #[arg(value_name = "PIPELINE", required_unless_present = "status")]
    pipeline: Option<PathBuf>,
    /// The archive folder, searched recursively for .wav and .flac files.
    archive: Option<PathBuf>,
    /// Write to this DuckDB file (created if missing) instead of the pipeline's store.
    #[arg(long, conflicts_with = "out")]
    store: Option<PathBuf>,
    /// Write into this folder (created if missing): `shard-I-of-N.duckdb` and its
    /// `shard-I-of-N.status.json` (`shard-1-of-1` without --shard), what the cluster
    /// recipes in deploy/ merge.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Analyse only shard I of N (1-based), e.g. 3/64, or `auto`: the shard of this
    /// array task, from Slurm's, Kubernetes', AWS Batch's or Cloud Run's variables.
    /// Without --store or --out, the store is the pipeline's with `.shard-I-of-N`
    /// before its extension. A sharded run keeps a status file beside its store.
    #[arg(long)]
    shard: Option<ShardChoice>,
    /// The number of shards, for `--shard auto` where the engine does not give it
    /// (Kubernetes) or to resubmit some Slurm tasks alone (default: $ACOUPI_SHARDS).
    #[arg(long)]
    shards: Option<NonZeroU32>,
    /// With PIPELINE ARCHIVE: take the archive's files from this plan and split them
    /// into shards by audio duration, without walking the archive. With ARCHIVE alone:
    /// walk it once and write the plan (Parquet: path, size, mtime_ns, duration).
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Sum the status files of the tasks writing into this folder (done, running, ETA)
    /// and exit.
    #[arg(long, conflicts_with_all = ["pipeline", "plan", "store", "out", "shard"])]
    status: Option<PathBuf>,
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
    /// What the results are left as: the DuckDB store file, or also Parquet beside it:
    /// `<store>.parquet/` (one file per table; `acoupi merge` takes such folders) and
    /// `parquet/{detections,recordings}/deployment=…/date=…/part-<store stem>.parquet`
    /// (hive-partitioned, shards side by side), rewritten at the end of each run. The
    /// store file stays either way: a rerun resumes from it.
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

/// Where `--format parquet` leaves the hive-partitioned season: `parquet/` beside the
/// store file.
fn season_folder(store: &Path) -> PathBuf {
    store
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("parquet")
}

/// `--out DIR`: `DIR/shard-I-of-N.duckdb`.
fn out_store(dir: &Path, shard: Option<Shard>) -> PathBuf {
    let (index, count) = shard.map_or((1, 1), |s| (s.index(), s.count()));
    dir.join(format!("shard-{index}-of-{count}.duckdb"))
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(super::USAGE_OR_IO)
}

pub fn reprocess_command(
    registry: &Registry,
    args: ReprocessArgs,
    log_format: LogFormat,
) -> ExitCode {
    if let Some(folder) = &args.status {
        return status_command(folder);
    }
    let (pipeline_path, archive) = match (&args.pipeline, &args.archive, &args.plan) {
        (Some(archive), None, Some(plan)) => return plan_command(archive, plan, args.shards),
        (Some(pipeline), Some(archive), _) => (pipeline.clone(), archive.clone()),
        _ => {
            return usage(
                "give the pipeline file and the archive folder (or --plan PLAN ARCHIVE to write a plan, or --status OUT)",
            );
        }
    };
    let shard = match (args.shard, args.shards) {
        (None, None) => None,
        (None, Some(_)) => return usage("--shards N goes with --shard auto"),
        (Some(ShardChoice::Fixed(_)), Some(_)) => {
            return usage("--shards N goes with --shard auto (--shard I/N names the count)");
        }
        (Some(ShardChoice::Fixed(shard)), None) => Some(shard),
        (Some(ShardChoice::Auto), count) => {
            match shard_from_env(|var| std::env::var(var).ok(), count.map(NonZeroU32::get)) {
                Ok((shard, engine)) => {
                    eprintln!("shard {shard} (from {engine}'s variables)");
                    Some(shard)
                }
                Err(error) => return usage(&error.to_string()),
            }
        }
    };
    let plan: Option<Arc<[PlanEntry]>> = match &args.plan {
        None => None,
        Some(file) => match acoupi_store_duckdb::read_plan(file) {
            Ok(entries) => Some(entries.into()),
            Err(error) => return usage(&error.to_string()),
        },
    };
    let pipeline = match super::load_or_report(registry, &pipeline_path) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    // Each analysed file's "analysed" line would drown the progress: warnings only there.
    super::run::init_logging_with(
        log_format,
        "info,acoupi_engine::tasks::detection=warn",
        None,
    );
    let store_path = match (&args.store, &args.out, shard) {
        (Some(path), _, _) => path.clone(),
        (None, Some(dir), shard) => {
            if let Err(error) = std::fs::create_dir_all(dir) {
                return usage(&format!("cannot create `{}`: {error}", dir.display()));
            }
            out_store(dir, shard)
        }
        (None, None, Some(shard)) => shard_store(&pipeline.settings.store_path, shard),
        (None, None, None) => pipeline.settings.store_path.clone(),
    };
    let with_status = shard.is_some() || args.out.is_some();
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
        archive: archive.clone(),
        jobs,
        shard,
        time_format: args.time_format,
        stages: args.stages,
        retry_errors: args.retry_errors,
        plan,
    };
    let display = ProgressDisplay::new(match args.progress {
        ProgressArg::Auto => ProgressMode::detect(),
        ProgressArg::Bar => ProgressMode::Bar,
        ProgressArg::Log => ProgressMode::Log(Duration::from_secs(10)),
        ProgressArg::Off => ProgressMode::Off,
    });
    let mut status = StatusFile::new(display, &store_path, shard.map(|s| s.to_string()));
    let outcome = reprocess(
        &pipeline,
        store.clone(),
        Arc::new(WavProbe),
        &options,
        if with_status {
            &mut status
        } else {
            status.inner_mut()
        },
    );
    let shown_shard = shard.map_or_else(String::new, |s| format!(" (shard {s})"));
    let code = match outcome {
        Ok(report) => {
            let parquet = store_path.with_extension("parquet");
            let season = season_folder(&store_path);
            let exported = (args.format == OutputFormat::Parquet).then(|| {
                acoupi_store_duckdb::export_parquet(&store, &parquet)?;
                let part = store_path
                    .file_stem()
                    .map_or_else(|| "acoupi".into(), |s| s.to_string_lossy().into_owned());
                acoupi_store_duckdb::export_partitioned(&store, &season, &part)
            });
            drop(store);
            let shown = |path: &Path| printable(&path.to_string_lossy()).into_owned();
            println!("{} → {}{shown_shard}", shown(&archive), shown(&store_path));
            print!("{}", report.render());
            match exported {
                Some(Err(error)) => {
                    eprintln!("error: {error}");
                    Err((ExitCode::FAILURE, error.to_string()))
                }
                Some(Ok(files)) => {
                    println!(
                        "Parquet: {} (per table) and {} ({files} partition files)",
                        shown(&parquet),
                        shown(&season)
                    );
                    Ok(())
                }
                None => Ok(()),
            }
        }
        Err(error @ (ReprocessError::Discovery(_) | ReprocessError::Plan(_))) => {
            eprintln!("error: {error}");
            Err((ExitCode::from(super::USAGE_OR_IO), error.to_string()))
        }
        Err(error) => {
            eprintln!("error: {error}");
            Err((ExitCode::from(super::INVALID), error.to_string()))
        }
    };
    if with_status {
        status.end(code.as_ref().err().map(|(_, reason)| reason.clone()));
    }
    code.map_or_else(|(code, _)| code, |()| ExitCode::SUCCESS)
}

/// `acoupi reprocess --plan PLAN ARCHIVE`: walks the archive once, reads every header,
/// writes the plan; with `--shards N`, shows how the plan splits into N shards.
fn plan_command(archive: &Path, plan: &Path, shards: Option<NonZeroU32>) -> ExitCode {
    let made = match make_plan(archive, &WavProbe) {
        Ok(made) => made,
        Err(error) => return usage(&error.to_string()),
    };
    if let Err(error) = acoupi_store_duckdb::write_plan(plan, &made.entries) {
        return usage(&error.to_string());
    }
    let seconds: f64 = made.entries.iter().filter_map(|e| e.duration).sum();
    let longest = made
        .entries
        .iter()
        .filter_map(|e| e.duration)
        .fold(0.0, f64::max);
    let unknown = made.entries.iter().filter(|e| e.duration.is_none()).count();
    let shown = |path: &Path| printable(&path.to_string_lossy()).into_owned();
    println!("{} → {}", shown(archive), shown(plan));
    println!(
        "files: {} ({unknown} without a readable header); audio: {:.2} h, the longest file {longest:.1} s",
        made.entries.len(),
        seconds / 3600.0
    );
    if let Some(count) = shards {
        let totals = shard_durations(&made.entries, count.get());
        let max = totals.iter().copied().fold(f64::MIN, f64::max);
        let min = totals.iter().copied().fold(f64::MAX, f64::min);
        println!(
            "{count} shards: {:.1} s to {:.1} s of audio each (a spread of {:.1} s)",
            min,
            max,
            max - min
        );
    }
    for (path, reason) in &made.unreadable {
        println!("  {}: {}", shown(path), printable(reason));
    }
    ExitCode::SUCCESS
}

/// `acoupi reprocess --status OUT`: 0 when it could read the folder, 2 otherwise.
fn status_command(folder: &Path) -> ExitCode {
    match Summary::read(folder) {
        Ok(summary) if summary.tasks.is_empty() && summary.unreadable.is_empty() => usage(
            &format!("no status files (*.status.json) in `{}`", folder.display()),
        ),
        Ok(summary) => {
            print!("{}", summary.render());
            ExitCode::SUCCESS
        }
        Err(error) => usage(&format!("cannot read `{}`: {error}", folder.display())),
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

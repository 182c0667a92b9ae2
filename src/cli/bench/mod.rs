//! `acoupi bench store | models | reprocess | memory | serve`: the subcommands and their folders.
//! Each benchmark is its own module; it writes its table to the given output.

mod memory;
mod models;
mod reprocess;
mod serve;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::{INVALID, USAGE_OR_IO};

#[derive(Subcommand)]
pub enum BenchWhat {
    /// The store workload: 2,000 recordings with outputs, 2,000 messages sent in
    /// batches of 100, 1,000 look-ups by path, and again in a store of 100,000
    /// recordings; operations per second per step.
    Store {
        /// Folder for the benchmark database (default: a temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Multiply the workload's counts by this (e.g. 0.1 for a quick check); the
        /// figures to report are those of the full workload (1).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Also run the workload on Python acoupi's SQLite stores with this Python
        /// interpreter (one where `import acoupi` works) and print the ratio per step.
        #[arg(long, value_name = "PYTHON")]
        compare_acoupi: Option<PathBuf>,
    },
    /// Each model on a 3 s chunk: milliseconds per chunk on one thread, and the real-time
    /// factor with every core busy (build with --release for figures worth reporting).
    Models {
        /// Model types to measure (default: model.birdnet and model.batdetect2).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Chunks per thread.
        #[arg(long, default_value_t = 10)]
        repeats: usize,
    },
    /// `acoupi reprocess` on a synthetic archive (deterministic WAVs at 48 kHz): the
    /// real-time factor with 1 job and with one per core, per model.
    Reprocess {
        /// Model types to measure (default: model.band_energy, model.birdnet,
        /// model.batdetect2).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Files in the archive.
        #[arg(long, default_value_t = 200)]
        files: usize,
        /// Seconds per file.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Folder for the archive and stores (default: a temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A station's resident memory over a soak: `acoupi run` in a child process (the
    /// BirdNET or BatDetect2 station, generated with its own audio, or --pipeline),
    /// sampled from /proc; prints start, steady, peak and end RSS and the growth.
    Memory {
        /// The generated station's model.
        #[arg(long, value_enum, default_value = "birdnet")]
        model: memory::StationModel,
        /// Run this pipeline file instead of a generated station.
        #[arg(long, conflicts_with = "model")]
        pipeline: Option<PathBuf>,
        /// Minutes the station runs, its start included (e.g. 0.5 for a quick check).
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Seconds between two samples.
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
        /// Folder for the generated station and the log (default: a temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The station dashboard on a big store: fills one with --detections over a year
    /// (reused from --dir when it is there), serves it in-process on 127.0.0.1 and prints
    /// p50 and p95 latency and status of each page and API URL, the RSS overhead, and
    /// each goal met or missed.
    Serve {
        /// Detections in the store (recordings: a quarter as many).
        #[arg(long, default_value_t = 1_000_000)]
        detections: usize,
        /// Timed requests per URL (after --warm-ups untimed ones).
        #[arg(long, default_value_t = 30)]
        requests: usize,
        /// Untimed requests per URL first.
        #[arg(long, default_value_t = 3)]
        warm_ups: usize,
        /// Folder for the store and its WAV files (default: a temporary folder); a store
        /// filled there before with as many detections is reused.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn bench(what: BenchWhat) -> ExitCode {
    match what {
        BenchWhat::Store {
            dir,
            scale,
            compare_acoupi,
        } => bench_store(dir, scale, compare_acoupi),
        BenchWhat::Models { models, repeats } => bench_models(&models, repeats),
        BenchWhat::Reprocess {
            models,
            files,
            seconds,
            dir,
        } => bench_reprocess(&models, files, seconds, dir),
        BenchWhat::Memory {
            model,
            pipeline,
            minutes,
            interval,
            dir,
        } => bench_memory(model, pipeline, minutes, interval, dir),
        BenchWhat::Serve {
            detections,
            requests,
            warm_ups,
            dir,
            json,
        } => bench_serve(detections, requests, warm_ups, dir, json),
    }
}

/// `acoupi bench serve`: see [`serve`]. After a fill the command runs itself again on the
/// filled folder, so the measuring process has only opened the store.
fn bench_serve(
    detections: usize,
    requests: usize,
    warm_ups: usize,
    dir: Option<PathBuf>,
    json: bool,
) -> ExitCode {
    if detections == 0 || requests == 0 {
        eprintln!("error: --detections and --requests must be at least 1");
        return ExitCode::from(USAGE_OR_IO);
    }
    let (dir, _temporary) = match work_dir(dir, true) {
        Ok(found) => found,
        Err(code) => return code,
    };
    match serve::is_filled(&serve::store_path(&dir), detections) {
        Ok(true) => {}
        Ok(false) => {
            let timer = std::time::Instant::now();
            match serve::fill(&dir, detections) {
                Ok(filled) => eprintln!(
                    "filled {} with {} detections in {} recordings in {:.1} s",
                    serve::store_path(&dir).display(),
                    filled.detections,
                    filled.recordings,
                    timer.elapsed().as_secs_f64()
                ),
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(INVALID);
                }
            }
            let mut again = std::process::Command::new(match std::env::current_exe() {
                Ok(exe) => exe,
                Err(error) => {
                    eprintln!("error: cannot find this program to measure: {error}");
                    return ExitCode::from(USAGE_OR_IO);
                }
            });
            again
                .args(["bench", "serve", "--detections"])
                .arg(detections.to_string())
                .arg("--requests")
                .arg(requests.to_string())
                .arg("--warm-ups")
                .arg(warm_ups.to_string())
                .arg("--dir")
                .arg(&dir);
            if json {
                again.arg("--json");
            }
            return match again.status() {
                Ok(status) if status.success() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(INVALID),
                Err(error) => {
                    eprintln!("error: cannot run the measuring process: {error}");
                    ExitCode::from(USAGE_OR_IO)
                }
            };
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(INVALID);
        }
    }
    let report = match serve::measure(&dir, requests, warm_ups) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(INVALID);
        }
    };
    if json {
        println!("{}", report.json());
    } else {
        println!("{}", report.table());
    }
    if report.answered() {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: some URLs answered neither 2xx nor 404 (see the table)");
        ExitCode::from(INVALID)
    }
}

/// `acoupi bench memory`: see [`memory`].
fn bench_memory(
    model: memory::StationModel,
    pipeline: Option<PathBuf>,
    minutes: f64,
    interval: f64,
    dir: Option<PathBuf>,
) -> ExitCode {
    let (Ok(soak), Ok(interval)) = (
        Duration::try_from_secs_f64(minutes * 60.0),
        Duration::try_from_secs_f64(interval),
    ) else {
        eprintln!("error: --minutes and --interval must be positive numbers");
        return ExitCode::from(USAGE_OR_IO);
    };
    if soak < Duration::from_secs(1) || interval.is_zero() {
        eprintln!("error: --minutes must be at least 1 s and --interval above 0");
        return ExitCode::from(USAGE_OR_IO);
    }
    let station = match pipeline {
        Some(path) => {
            if let Err(code) = super::load_or_report(&acoupi_components::registry(), &path) {
                return code;
            }
            memory::Station::Pipeline(path)
        }
        None => memory::Station::Generated(model),
    };
    let (dir, _temporary) = match work_dir(dir, true) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let bench = memory::MemoryBench {
        station,
        soak,
        interval,
        dir,
    };
    match memory::bench_memory(&bench, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(INVALID)
        }
    }
}

/// A benchmark's folder: `--dir` (created when `create` is set and it is missing) or a
/// temporary folder, removed when the returned guard is dropped. Errors are printed.
fn work_dir(
    dir: Option<PathBuf>,
    create: bool,
) -> Result<(PathBuf, Option<tempfile::TempDir>), ExitCode> {
    let Some(dir) = dir else {
        return match tempfile::tempdir() {
            Ok(temporary) => Ok((temporary.path().to_path_buf(), Some(temporary))),
            Err(error) => {
                eprintln!("error: cannot create a temporary folder: {error}");
                Err(ExitCode::from(USAGE_OR_IO))
            }
        };
    };
    if create && let Err(error) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create `{}`: {error}", dir.display());
        return Err(ExitCode::from(USAGE_OR_IO));
    }
    Ok((dir, None))
}

/// `acoupi bench store`: the store benchmark in a temporary folder (or `--dir`), and
/// Python acoupi's beside it with `--compare-acoupi`.
fn bench_store(dir: Option<PathBuf>, scale: f64, python: Option<PathBuf>) -> ExitCode {
    if scale.is_nan() || scale <= 0.0 {
        eprintln!("error: --scale must be greater than 0");
        return ExitCode::from(USAGE_OR_IO);
    }
    let (dir, _temporary) = match work_dir(dir, false) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let sizes = store::BenchSizes::scaled(scale);
    let mut out = std::io::stdout().lock();
    let compared = store::bench_with(&dir, &sizes, &mut out).and_then(|ours| match &python {
        Some(python) => store::compare_acoupi(python, &dir, &sizes, &ours, &mut out).map(drop),
        None => Ok(()),
    });
    match compared {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(INVALID)
        }
    }
}

/// `acoupi bench models`: see [`models`].
fn bench_models(models: &[String], repeats: usize) -> ExitCode {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => {
            eprintln!("error: cannot create a temporary folder: {error}");
            return ExitCode::from(USAGE_OR_IO);
        }
    };
    match models::bench_models(models, repeats, dir.path(), &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(INVALID)
        }
    }
}

/// `acoupi bench reprocess`: see [`reprocess`].
fn bench_reprocess(
    models: &[String],
    files: usize,
    seconds: f64,
    dir: Option<PathBuf>,
) -> ExitCode {
    let (dir, _temporary) = match work_dir(dir, true) {
        Ok(found) => found,
        Err(code) => return code,
    };
    match reprocess::bench_reprocess(models, files, seconds, &dir, &mut std::io::stdout().lock()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(INVALID)
        }
    }
}

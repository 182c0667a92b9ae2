//! `acoupi retention`: what the pipeline's `[retention]` policy deletes now, and why;
//! `--dry-run` only reports (and works while the station runs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use acoupi_engine::disk::SystemDisk;
use acoupi_engine::registry::Registry;
use acoupi_engine::retention::Retention;
use acoupi_engine::store::StoreError;
use acoupi_store_duckdb::DuckDbStore;

#[derive(clap::Args)]
pub struct RetentionArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Report what would be deleted and why, deleting nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn retention(registry: &Registry, args: RetentionArgs) -> ExitCode {
    let pipeline = match super::load_or_report(registry, &args.pipeline) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    let settings = pipeline.settings;
    let Some(policy) = settings.retention else {
        println!(
            "{}: no [retention] table; nothing is ever deleted from {}",
            args.pipeline.display(),
            settings.recordings_dir.display()
        );
        return ExitCode::SUCCESS;
    };
    if !settings.store_path.exists() {
        println!(
            "no store yet at {} (the station has never run); nothing to delete",
            settings.store_path.display()
        );
        return ExitCode::SUCCESS;
    }
    let opened = if args.dry_run {
        DuckDbStore::open_for_reading(&settings.store_path)
    } else {
        DuckDbStore::open(&settings.store_path)
    };
    let store = match opened {
        Ok(store) => Arc::new(store),
        Err(error @ StoreError::Locked { .. }) => {
            eprintln!(
                "error: {error}\nhelp: a running station applies retention itself after each management run; use --dry-run to see what it would delete"
            );
            return ExitCode::from(super::USAGE_OR_IO);
        }
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(super::USAGE_OR_IO);
        }
    };
    let retention = Retention::new(
        policy,
        settings.recordings_dir.clone(),
        store,
        Arc::new(SystemDisk),
    );
    let plan = match retention.plan(chrono::Utc::now()) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(super::USAGE_OR_IO);
        }
    };
    print!("{}", plan.describe(args.dry_run));
    if args.dry_run {
        return ExitCode::SUCCESS;
    }
    let report = retention.apply(&plan);
    println!(
        "deleted {} ({}), {} errors",
        report.deleted,
        bytesize::ByteSize(report.freed),
        report.errors
    );
    if report.errors > 0 {
        ExitCode::from(super::INVALID)
    } else {
        ExitCode::SUCCESS
    }
}

//! `acoupi query` and `acoupi export`: the store from the command line. Each takes a
//! pipeline file (its `[store]` is used) or a DuckDB file. A refused or failed query
//! exits 1 (its sandbox and streaming: `acoupi_store_duckdb::query`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use acoupi_engine::registry::Registry;
use acoupi_store_duckdb::{self as store_duckdb, ExportFormat, ExportWhat, QueryFormat};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

/// The store file behind a pipeline file or a DuckDB file.
fn store_path(registry: &Registry, target: &Path) -> Result<PathBuf, ExitCode> {
    if target.extension().is_some_and(|e| e == "toml") {
        super::load_or_report(registry, target).map(|p| p.settings.store_path)
    } else {
        Ok(target.to_path_buf())
    }
}

#[derive(Args)]
pub struct QueryArgs {
    /// A pipeline file (its store is queried) or a DuckDB file.
    target: PathBuf,
    /// One read statement (SELECT, WITH, FROM, VALUES, TABLE, EXPLAIN, DESCRIBE, SHOW,
    /// SUMMARIZE or PIVOT), e.g. "SELECT tag_value, count(*) FROM detections_flat GROUP BY 1".
    /// It runs in a sandbox: no other file is read or written; other SQL is refused.
    sql: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

pub fn query(registry: &Registry, args: QueryArgs) -> ExitCode {
    let path = match store_path(registry, &args.target) {
        Ok(path) => path,
        Err(code) => return code,
    };
    let format = match args.format {
        Format::Table => QueryFormat::Table,
        Format::Csv => QueryFormat::Csv,
        Format::Json => QueryFormat::Json,
    };
    let mut out = std::io::stdout().lock();
    match store_duckdb::query(&path, &args.sql, format, &mut out) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(super::INVALID)
        }
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// A pipeline file (its store is exported) or a DuckDB file.
    target: PathBuf,
    /// What to export.
    #[arg(long, value_enum)]
    what: What,
    /// The file format (raven: a Raven Pro selection table; detections only).
    #[arg(long, value_enum)]
    format: FileFormat,
    /// The output file.
    #[arg(short, long)]
    output: PathBuf,
    /// Only rows from this time on (RFC 3339, or a naive time taken as UTC).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only rows before this time.
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    Detections,
    Recordings,
    Messages,
}

#[derive(Clone, Copy, ValueEnum)]
enum FileFormat {
    Parquet,
    Csv,
    Raven,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    acoupi_engine::data::parse_timestamp(text).map_err(|e| e.to_string())
}

pub fn export(registry: &Registry, args: ExportArgs) -> ExitCode {
    let path = match store_path(registry, &args.target) {
        Ok(path) => path,
        Err(code) => return code,
    };
    let what = match args.what {
        What::Detections => ExportWhat::Detections,
        What::Recordings => ExportWhat::Recordings,
        What::Messages => ExportWhat::Messages,
    };
    let format = match args.format {
        FileFormat::Parquet => ExportFormat::Parquet,
        FileFormat::Csv => ExportFormat::Csv,
        FileFormat::Raven => ExportFormat::Raven,
    };
    match store_duckdb::export(&path, what, format, &args.output, args.since, args.until) {
        Ok(rows) => {
            println!("{}: {rows} rows", args.output.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(super::INVALID)
        }
    }
}

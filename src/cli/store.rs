//! `acoupi query` and `acoupi export`: the store from the command line. Each takes a
//! pipeline file (its `[store]` is used) or a DuckDB file. A refused or failed query
//! exits 1 (its sandbox and streaming: `acoupi_store_duckdb::query`).
//!
//! While a station holds the store and its local API answers (`<store>.sock`, see
//! `acoupi_web::local`), both ask the station instead of copying the store file; else
//! they read the file (a snapshot while another process writes it). `RUST_LOG=debug`
//! says which.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use acoupi_engine::registry::Registry;
use acoupi_store_duckdb::{self as store_duckdb, ExportFormat, ExportWhat, QueryFormat};
use acoupi_web::local_client::LocalClient;
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

/// The running station's local API for `store`, if one answers (logged either way).
pub(super) fn station(store: &Path, what: &str) -> Option<LocalClient> {
    let found = LocalClient::find(store);
    match &found {
        Some(client) => tracing::debug!(
            socket = %client.socket().display(),
            "{what}: through the station's local API"
        ),
        None => tracing::debug!(
            store = %store.display(),
            "{what}: on the store file (a snapshot while another process writes it)"
        ),
    }
    found
}

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
    if let Some(client) = station(&path, "query") {
        let format = match args.format {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
        };
        return match client.query(&args.sql, format, &mut out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(super::INVALID)
            }
        };
    }
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
    let exported = match station(&path, "export") {
        Some(client) => export_through(&client, &args),
        None => store_duckdb::export(&path, what, format, &args.output, args.since, args.until)
            .map_err(|e| e.to_string()),
    };
    match exported {
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

/// `acoupi export` through the station: the station writes the file in its scratch
/// folder and streams it back; it is written here beside the output and renamed into
/// place once complete.
fn export_through(client: &LocalClient, args: &ExportArgs) -> Result<usize, String> {
    let what = match args.what {
        What::Detections => "detections",
        What::Recordings => "recordings",
        What::Messages => "messages",
    };
    let format = match args.format {
        FileFormat::Parquet => "parquet",
        FileFormat::Csv => "csv",
        FileFormat::Raven => "raven",
    };
    let output = &args.output;
    let fail =
        |e: &dyn std::fmt::Display| format!("export: cannot write `{}`: {e}", output.display());
    let folder = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(|e| fail(&e))?;
    let mut partial = tempfile::NamedTempFile::new_in(folder).map_err(|e| fail(&e))?;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    let rows = {
        let mut out = std::io::BufWriter::new(partial.as_file_mut());
        let rows = client
            .export(what, format, time(args.since), time(args.until), &mut out)
            .map_err(|e| e.to_string())?;
        std::io::Write::flush(&mut out).map_err(|e| fail(&e))?;
        rows
    };
    partial.persist(output).map_err(|e| fail(&e))?;
    Ok(rows)
}

//! `acoupi status`: what a station has done, read from its store and its folders. While
//! the station runs, its SQL goes through the station's local API when it answers (else
//! a snapshot; see `store.rs`).

use std::path::Path;
use std::process::ExitCode;

use acoupi_engine::registry::Registry;
use acoupi_store_duckdb::{self as store_duckdb, QueryFormat};
use acoupi_web::local_client::LocalClient;
use serde_json::Value;

/// Where the status's SQL runs: the running station's local API, or the store file.
struct Source<'a> {
    file: &'a Path,
    station: Option<LocalClient>,
}

fn rows(store: &Source<'_>, sql: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    match &store.station {
        Some(client) => client
            .query(sql, "json", &mut out)
            .map_err(|e| e.to_string())?,
        None => {
            store_duckdb::query(store.file, sql, QueryFormat::Json, &mut out)
                .map_err(|e| e.to_string())?;
        }
    }
    match serde_json::from_slice(&out).map_err(|e| e.to_string())? {
        Value::Array(rows) => Ok(rows),
        other => Err(format!("unexpected query result {other}")),
    }
}

fn number(store: &Source<'_>, sql: &str) -> Result<i64, String> {
    let rows = rows(store, sql)?;
    Ok(rows
        .first()
        .and_then(|r| r.as_object())
        .and_then(|o| o.values().next())
        .and_then(Value::as_i64)
        .unwrap_or(0))
}

/// Bytes in the plain files under `path` (0 when it does not exist), never following a
/// link: each one met is named in a warning on stderr and not counted, so a loop of
/// links (`loopA -> .`) can neither hang the walk nor inflate the size.
fn disk_usage(path: &Path) -> u64 {
    let walked = acoupi_engine::folders::walk(path);
    for link in &walked.links {
        eprintln!(
            "warning: `{}` is a symbolic link; it is not followed nor counted",
            link.display()
        );
    }
    for error in &walked.errors {
        eprintln!("warning: {error}");
    }
    walked.bytes()
}

fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

pub fn status(registry: &Registry, pipeline_path: &Path) -> ExitCode {
    let pipeline = match super::load_or_report(registry, pipeline_path) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    let settings = &pipeline.settings;
    let store = settings.store_path.as_path();
    if !store.exists() {
        println!(
            "station `{}`: no store yet at {} (it has never run)",
            settings.deployment.name,
            store.display()
        );
        return ExitCode::SUCCESS;
    }
    let source = Source {
        file: store,
        station: super::store::station(store, "status"),
    };
    let report = || -> Result<(), String> {
        println!(
            "station `{}`  store {} ({})",
            settings.deployment.name,
            store.display(),
            human_bytes(disk_usage(store))
        );
        let runs = rows(
            &source,
            "SELECT stage, count(*) AS runs, max(finished_on) AS last, arg_max(outcome, finished_on) AS outcome FROM stage_runs GROUP BY stage",
        )?;
        println!("stages:");
        let width = pipeline
            .stages
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        for stage in &pipeline.stages {
            let run = runs.iter().find(|r| r["stage"] == stage.name.as_str());
            match run {
                Some(run) => println!(
                    "  {:width$}  {:10}  last run {}  ({} runs): {}",
                    stage.name,
                    stage.spec.kind().as_str(),
                    run["last"].as_str().unwrap_or("?"),
                    run["runs"],
                    run["outcome"].as_str().unwrap_or("")
                ),
                None => println!(
                    "  {:width$}  {:10}  never run",
                    stage.name,
                    stage.spec.kind().as_str()
                ),
            }
        }
        let recordings = number(&source, "SELECT count(*) FROM recordings")?;
        let deleted = number(
            &source,
            "SELECT count(*) FROM recordings WHERE path IS NULL",
        )?;
        let detections = number(&source, "SELECT count(*) FROM detections")?;
        let messages = number(&source, "SELECT count(*) FROM messages")?;
        let unsent = number(
            &source,
            "SELECT count(*) FROM message_status WHERE NOT sent",
        )?;
        println!("recordings: {recordings} ({deleted} deleted, their rows kept)");
        println!("detections: {detections}");
        println!("messages: {messages} ({unsent} unsent)");
        println!(
            "disk: temp {} in {}, recordings {} in {}",
            human_bytes(disk_usage(&settings.temp_dir)),
            settings.temp_dir.display(),
            human_bytes(disk_usage(&settings.recordings_dir)),
            settings.recordings_dir.display()
        );
        Ok(())
    };
    match report() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(super::INVALID)
        }
    }
}

//! `acoupi models`: the bundled models found in acoupi's data dirs (name, file, size,
//! sha256, licence, and which lookup step found it); `--verify` runs each model's
//! reference case through the model code and prints each check's max abs difference.
//! Exit status 1 when a default file is missing or a check fails.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use acoupi_components::bundled::{BUNDLED_MODELS, BundledModel, Check};
use acoupi_engine::resources::{DataDirs, Found, NotFound, Step};
use bytesize::ByteSize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cli::INVALID;

#[derive(clap::Args)]
pub struct ModelsArgs {
    /// Also run each model's reference case (its `reference/` files) through the model
    /// code and compare with the original framework's outputs; exit 1 on a failure.
    #[arg(long)]
    verify: bool,
    /// Print the list (and the checks) as JSON.
    #[arg(long)]
    json: bool,
}

/// One default file: found (with its size and hash) or not.
struct FileReport {
    resource: &'static str,
    found: Result<(Found, u64, String), String>,
}

/// One model's files and licence.
struct ModelReport {
    model: &'static BundledModel,
    licence: Option<acoupi_components::bundled::Licence>,
    files: Vec<FileReport>,
}

pub fn models(args: ModelsArgs) -> ExitCode {
    let dirs = DataDirs::from_process();
    let reports: Vec<ModelReport> = BUNDLED_MODELS
        .iter()
        .map(|model| ModelReport {
            model,
            licence: model.licence(&dirs),
            files: model
                .files
                .iter()
                .zip(model.find_files(&dirs))
                .map(|(resource, found)| FileReport {
                    resource,
                    found: described(found),
                })
                .collect(),
        })
        .collect();
    let mut ok = reports
        .iter()
        .all(|r| r.files.iter().all(|f| f.found.is_ok()));
    if !args.json {
        print_dirs(&dirs);
        reports.iter().for_each(print_model);
    }
    let mut checks = Vec::new();
    if args.verify {
        for model in BUNDLED_MODELS {
            let started = Instant::now();
            let these = model.verify(&dirs);
            if !args.json {
                for check in &these {
                    print_check(check);
                }
                println!(
                    "  ({} checked in {:.1} s)",
                    model.name,
                    started.elapsed().as_secs_f64()
                );
            }
            checks.extend(these);
        }
        ok &= checks.iter().all(Check::passed);
        if !args.json {
            let passed = checks.iter().filter(|c| c.passed()).count();
            println!("{passed} of {} reference checks passed", checks.len());
        }
    }
    if args.json {
        let mut out = json!({
            "data_dirs": dirs.dirs().iter().map(|d| json!({
                "step": d.step.name(),
                "path": d.path.as_ref().map(|p| p.display().to_string()),
            })).collect::<Vec<_>>(),
            "models": reports.iter().map(model_json).collect::<Vec<_>>(),
        });
        if args.verify {
            out["verify"] = checks.iter().map(check_json).collect();
        }
        println!("{out:#}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    }
}

/// A lookup's result with the file's size and sha256, or why there is none.
fn described(found: Result<Found, NotFound>) -> Result<(Found, u64, String), String> {
    let found = found.map_err(|e| e.to_string())?;
    let (size, sha256) =
        sha256(&found.path).map_err(|e| format!("cannot read {}: {e}", found.path.display()))?;
    Ok((found, size, sha256))
}

/// The size and the sha256 (lowercase hex) of a file, read in blocks.
fn sha256(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, hex))
}

fn print_dirs(dirs: &DataDirs) {
    println!("Data dirs, in lookup order:");
    for (i, dir) in dirs.dirs().iter().enumerate() {
        match &dir.path {
            Some(path) => println!("  {}. {}: {}", i + 1, dir.step, path.display()),
            None if dir.step == Step::DataDirVar => println!("  {}. {}: not set", i + 1, dir.step),
            None => println!("  {}. {}: not available", i + 1, dir.step),
        }
    }
}

fn print_model(report: &ModelReport) {
    let licence = match &report.licence {
        Some(l) => match &l.file {
            Some(file) => format!("{} ({})", l.name, file.path.display()),
            None => l.name.clone(),
        },
        None => "licence unknown".into(),
    };
    println!(
        "\n{} (used by {}): {licence}",
        report.model.name, report.model.used_by
    );
    for file in &report.files {
        match &file.found {
            Ok((found, size, sha256)) => println!(
                "  {}\n    {}, sha256 {sha256}, found in {}",
                found.path.display(),
                ByteSize::b(*size).display().si(),
                found.step
            ),
            Err(reason) => println!(
                "  {}: MISSING\n    {}",
                file.resource,
                reason.replace('\n', "\n    ")
            ),
        }
    }
}

fn print_check(check: &Check) {
    let diff = check.max_abs_diff.map_or_else(
        || "no difference measured".into(),
        |d| format!("max abs difference {d:.2e}"),
    );
    match &check.outcome {
        Ok(()) => println!(
            "{}: {}: {diff} (tolerance {:.0e}): pass",
            check.model, check.what, check.tolerance
        ),
        Err(reason) => println!(
            "{}: {}: {diff} (tolerance {:.0e}): FAIL: {reason}",
            check.model, check.what, check.tolerance
        ),
    }
}

fn model_json(report: &ModelReport) -> Value {
    json!({
        "name": report.model.name,
        "used_by": report.model.used_by,
        "licence": report.licence.as_ref().map(|l| l.name.clone()),
        "licence_file": report.licence.as_ref().and_then(|l| l.file.as_ref()).map(|f| f.path.display().to_string()),
        "files": report.files.iter().map(|file| match &file.found {
            Ok((found, size, sha256)) => json!({
                "resource": file.resource,
                "path": found.path.display().to_string(),
                "size": size,
                "sha256": sha256,
                "found_in": found.step.name(),
                "data_dir": found.data_dir.display().to_string(),
            }),
            Err(reason) => json!({ "resource": file.resource, "error": reason }),
        }).collect::<Vec<_>>(),
    })
}

fn check_json(check: &Check) -> Value {
    json!({
        "model": check.model,
        "check": check.what,
        "max_abs_diff": check.max_abs_diff,
        "tolerance": check.tolerance,
        "passed": check.passed(),
        "error": check.outcome.as_ref().err(),
    })
}

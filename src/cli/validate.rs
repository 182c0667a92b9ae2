//! `acoupi validate`: every problem of each file, or a one-line summary of its DAG.

use std::path::PathBuf;
use std::process::ExitCode;

use acoupi_engine::registry::Registry;

pub fn validate(registry: &Registry, pipelines: &[PathBuf]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let mut worst = 0;
    for path in pipelines {
        match super::load_or_report(registry, path) {
            Ok(pipeline) => println!("{}: valid: {}", path.display(), pipeline.summary()),
            Err(code) => {
                let rank = if code == ExitCode::from(super::USAGE_OR_IO) {
                    2
                } else {
                    1
                };
                if rank > worst {
                    worst = rank;
                    status = code;
                }
            }
        }
    }
    status
}

//! `acoupi validate`: every problem of each file, or a one-line summary of its DAG; with
//! `--build`, also every component that cannot be built.

use std::path::PathBuf;
use std::process::ExitCode;

use acoupi_engine::registry::Registry;
use acoupi_engine::runtime::check_build;

pub fn validate(registry: &Registry, pipelines: &[PathBuf], build: bool) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    let mut worst = 0;
    for path in pipelines {
        let result = super::load_or_report(registry, path).and_then(|pipeline| {
            if !build {
                println!("{}: valid: {}", path.display(), pipeline.summary());
                return Ok(());
            }
            match check_build(&pipeline) {
                Ok(report) => {
                    let skipped = if report.need_store.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; not built (they read the store): {}",
                            report.need_store.join(", ")
                        )
                    };
                    println!(
                        "{}: valid, {} component{} built: {}{skipped}",
                        path.display(),
                        report.built,
                        if report.built == 1 { "" } else { "s" },
                        pipeline.summary()
                    );
                    Ok(())
                }
                Err(errors) => Err(super::report_problems(&errors)),
            }
        });
        if let Err(code) = result {
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
    status
}

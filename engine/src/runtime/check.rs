//! `acoupi validate --build`: builds every component of a validated pipeline as
//! [`Station::build`](super::Station::build) would — model files loaded and checked
//! against their labels, devices opened, folders and secrets read — without a store and
//! without starting any stage, and reports each failure at its component's span (or the
//! field the failure names) like any other problem of the file.

use crate::config::{Code, Pipeline, PipelineErrors, Problem};
use crate::registry::{BuildContext, BuildFailure};
use crate::telemetry::Telemetry;

/// What a build check did when nothing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Components built (and dropped again).
    pub built: usize,
    /// Components that read the station's store, which a check does not open: not built.
    pub need_store: Vec<String>,
}

/// Builds every component of `pipeline` outside a station; every failure is a
/// `build-failed` problem pointing at its component, or at the field it names.
pub fn check_build(pipeline: &Pipeline) -> Result<BuildReport, PipelineErrors> {
    let mut report = BuildReport {
        built: 0,
        need_store: Vec::new(),
    };
    let mut problems = Vec::new();
    // A throwaway telemetry: nothing runs, so nothing is counted.
    let telemetry = Telemetry::default();
    for instance in &pipeline.components {
        let ctx = BuildContext {
            settings: pipeline.settings.clone(),
            instance: instance.name.clone(),
            store: None,
            telemetry: telemetry.clone(),
        };
        match instance.settings.build(&ctx) {
            Ok(_) => report.built += 1,
            Err(error) if matches!(error.reason, BuildFailure::NeedsStore) => {
                report.need_store.push(instance.name.clone());
            }
            Err(error) => problems.push(
                Problem::new(
                    Code::BuildFailed,
                    instance.span_of(&error.field),
                    error.to_string(),
                )
                .with_help(
                    "`acoupi run` would stop here; fix the file, device or setting it names",
                ),
            ),
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
        Err(PipelineErrors {
            path: pipeline.path.clone(),
            source: pipeline.source.clone(),
            problems,
        })
    }
}

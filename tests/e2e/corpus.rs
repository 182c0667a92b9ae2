//! The bad-pipeline corpus: each `tests/pipelines/bad/<name>.toml` holds one kind of
//! mistake (a few hold several) and `<name>.expected` lists the problems the engine must
//! report, one `line:col code` per line, in file order. The engine must report exactly
//! those: no missed problem, no extra one, each at the right place.
//!
//! To draft the expectations of a new case, run the tests with `ACOUPI_BLESS=1`, then
//! read the drafted file and check every line against the TOML by hand.

use std::path::Path;

use acoupi_engine::config::diagnostics::line_col;
use acoupi_engine::config::load_str;

use crate::toml_files;

/// `line:col code` for each problem the engine reports.
fn actual(path: &Path) -> Vec<String> {
    let source = std::fs::read_to_string(path).unwrap();
    match load_str(path, &source, &acoupi_components::registry()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .problems
            .iter()
            .map(|p| {
                let (line, col) = line_col(&source, p.span.as_ref().map_or(0, |s| s.start));
                format!("{line}:{col} {}", p.code)
            })
            .collect(),
    }
}

#[test]
fn every_bad_pipeline_reports_its_problems_at_the_right_place() {
    let files = toml_files("tests/pipelines/bad");
    assert!(
        files.len() >= 20,
        "the corpus needs at least 20 distinct mistakes, found {}",
        files.len()
    );
    let bless = std::env::var_os("ACOUPI_BLESS").is_some();
    let mut failures = Vec::new();
    for path in &files {
        let got = actual(path);
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, got.join("\n") + "\n").unwrap();
            continue;
        }
        let expected: Vec<String> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        assert!(
            !expected.is_empty(),
            "{} expects no problem: a bad pipeline must have one",
            expected_path.display()
        );
        if got != expected {
            failures.push(format!(
                "{}:\n  expected {expected:?}\n  got      {got:?}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_codes_in_the_corpus_cover_the_required_mistakes() {
    let mut codes = std::collections::BTreeSet::new();
    for path in toml_files("tests/pipelines/bad") {
        for line in std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_default()
            .lines()
        {
            if let Some((_, code)) = line.split_once(' ') {
                codes.insert(code.to_string());
            }
        }
    }
    for required in [
        "toml-syntax",
        "duplicate-name",
        "unknown-key",
        "unknown-component-type",
        "missing-key",
        "type-mismatch",
        "out-of-range",
        "undefined-reference",
        "wrong-family",
        "after-cycle",
        "incompatible-after",
        "no-trigger",
        "two-triggers",
        "schedule-not-allowed",
        "offset-too-large",
        "invalid-cron",
        "unknown-timezone",
        "undefined-stage",
        "duplicate-reference",
        "invalid-duration",
        "invalid-time",
        "unknown-stage-kind",
        "empty-list",
        "invalid-schedule",
        "credentials-in-clear",
        "secret-in-pipeline",
        "web-token-required",
    ] {
        assert!(
            codes.contains(required),
            "no corpus case reports `{required}`"
        );
    }
}

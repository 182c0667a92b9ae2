//! The `acoupi` binary: exit codes and what `validate`, `components` print.

use std::process::{Command, Output};

use crate::{root, toml_files};

fn acoupi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn validate_exits_0_on_the_examples_with_a_summary_line() {
    for path in toml_files("pipelines") {
        let output = acoupi(&["validate", path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(": valid: ") && stdout.contains("stages"),
            "{stdout}"
        );
    }
}

#[test]
fn validate_exits_1_on_each_bad_pipeline_naming_file_line_and_column() {
    for path in toml_files("tests/pipelines/bad") {
        let relative = path
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let output = acoupi(&["validate", &relative]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{relative}: {stderr}");
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            let (position, code) = line.split_once(' ').unwrap();
            assert!(
                stderr.contains(&format!("{relative}:{position}")),
                "{relative}: no {position} in\n{stderr}"
            );
            assert!(stderr.contains(code), "{relative}: no {code} in\n{stderr}");
        }
    }
}

#[test]
fn validate_build_builds_every_component_of_a_good_pipeline() {
    let output = acoupi(&["validate", "--build", "pipelines/demo.toml"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("pipelines/demo.toml: valid, ") && stdout.contains("components built"),
        "{stdout}"
    );
}

#[test]
fn validate_build_reports_a_missing_model_file_at_its_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("station.toml");
    let audio = root().join("pipelines/audio");
    let text = format!(
        "[deployment]\nname = \"build-check\"\n\n[components.rec]\ntype = \"recorder.replay\"\nfolder = {:?}\n\n[components.birds]\ntype = \"model.birdnet\"\nmodel = \"gone.onnx\"\n\n[stages.record]\nkind = \"recording\"\nrecorder = \"rec\"\nschedule = {{ every = \"10s\" }}\n\n[stages.detect]\nkind = \"detection\"\nafter = \"record\"\nmodel = \"birds\"\n",
        audio.display().to_string()
    );
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap();
    // Plain validation reads the file only: the model file is not its business.
    let plain = acoupi(&["validate", path]);
    assert_eq!(
        plain.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let built = acoupi(&["validate", "--build", path]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert_eq!(built.status.code(), Some(1), "{stderr}");
    // `model = "gone.onnx"` of `[components.birds]` is on line 10.
    assert!(
        stderr.contains(&format!("{path}:10:1")) && stderr.contains("build-failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("gone.onnx") && stderr.contains("`birds`"),
        "{stderr}"
    );
}

#[test]
fn validate_refuses_a_pipeline_file_over_1_mib_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    // Valid TOML all the way (a comment), so only its size can be the problem.
    let mut text = String::from("[deployment]\nname = \"huge\"\n");
    while text.len() <= 1024 * 1024 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, text).unwrap();
    let output = acoupi(&["validate", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("file-too-large") && stderr.contains("larger than 1024 KiB"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("no [stages]"),
        "the file is not parsed: {stderr}"
    );
}

#[test]
fn validate_exits_2_on_a_missing_file_and_on_bad_usage() {
    let missing = acoupi(&["validate", "no/such/pipeline.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/pipeline.toml"));
    assert_eq!(acoupi(&["validate"]).status.code(), Some(2));
    assert_eq!(acoupi(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn components_lists_every_type_and_json_has_their_parameters() {
    let registry = acoupi_components::registry();
    let text = String::from_utf8(acoupi(&["components"]).stdout).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&acoupi(&["components", "--json"]).stdout).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), registry.types().count());
    for ty in registry.types() {
        assert!(
            text.lines()
                .any(|l| l.starts_with(ty.kind) && l.len() > ty.kind.len() + 10),
            "{} missing or undescribed",
            ty.kind
        );
        let entry = list.iter().find(|e| e["type"] == ty.kind).unwrap();
        assert!(
            entry["parameters"]["properties"].is_object(),
            "{} has no parameters schema",
            ty.kind
        );
    }
}

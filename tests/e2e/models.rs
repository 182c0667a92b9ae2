//! `acoupi models`: the bundled models are found at run time by the lookup in
//! `acoupi_engine::resources` — beside a copied binary before the source tree, in
//! `$ACOUPI_DATA_DIR` before both — and pass their reference cases from there.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use serde_json::Value;

use crate::root;

const MODELS: [&str; 3] = ["birdnet", "birdnet-mdata", "batdetect2"];

/// `<prefix>/bin/acoupi`, a copy of the binary under test, with `<prefix>/share/acoupi/
/// models/<model>` linked to the repository's model folders (the packages' layout).
fn installed_prefix(prefix: &Path) -> PathBuf {
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("acoupi");
    std::fs::copy(env!("CARGO_BIN_EXE_acoupi"), &exe).unwrap();
    let models = prefix.join("share/acoupi/models");
    std::fs::create_dir_all(&models).unwrap();
    for model in MODELS {
        std::os::unix::fs::symlink(root().join("models").join(model), models.join(model)).unwrap();
    }
    exe
}

/// Runs `exe` with `args` from a folder that has nothing to do with acoupi, with
/// `ACOUPI_DATA_DIR` as given (unset for `None`). The dev binary finds libduckdb.so
/// through an rpath relative to `target/`, which a copy loses: the library path stands in
/// for the package's `/usr/lib/acoupi`.
fn run_in(exe: &Path, cwd: &Path, data_dir: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(exe);
    command
        .args(args)
        .current_dir(cwd)
        .env("LD_LIBRARY_PATH", root().join(".duckdb"))
        .env_remove("ACOUPI_DATA_DIR");
    if let Some(dir) = data_dir {
        command.env("ACOUPI_DATA_DIR", dir);
    }
    command.output().unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}\n{}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every file `acoupi models --json` lists, as (model, file object).
fn files(json: &Value) -> Vec<(String, Value)> {
    json["models"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|model| {
            let name = model["name"].as_str().unwrap().to_string();
            model["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |file| (name.clone(), file.clone()))
        })
        .collect()
}

/// The sha256 of a file by coreutils, independent of the binary's.
fn sha256sum(path: &Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_copied_binary_finds_and_verifies_the_models_beside_it_before_the_source_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = std::fs::canonicalize(tmp.path()).unwrap();
    let prefix = tmp_path.join("opt/acoupi");
    let exe = installed_prefix(&prefix);
    let elsewhere = tmp_path.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let share = prefix.join("share/acoupi");

    let started = Instant::now();
    let output = run_in(&exe, &elsewhere, None, &["models", "--json", "--verify"]);
    println!(
        "acoupi models --verify (dev build, copied binary): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let json = json_of(&output);

    // The lookup order, as the binary saw it: beside the executable before the source tree.
    let steps: Vec<(&str, Option<&str>)> = json["data_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["step"].as_str().unwrap(), d["path"].as_str()))
        .collect();
    let share_text = share.display().to_string();
    let root_text = root().display().to_string();
    assert_eq!(steps[0], ("ACOUPI_DATA_DIR", None), "{steps:?}");
    assert_eq!(
        steps[1],
        ("executable", Some(share_text.as_str())),
        "{steps:?}"
    );
    assert_eq!(
        steps.last().copied(),
        Some(("source-tree", Some(root_text.as_str()))),
        "{steps:?}"
    );

    let files = files(&json);
    assert_eq!(files.len(), 5, "{json:#}");
    for (model, file) in &files {
        let path = PathBuf::from(file["path"].as_str().unwrap_or_else(|| panic!("{file}")));
        let resource = file["resource"].as_str().unwrap();
        assert!(resource.starts_with(&format!("models/{model}/")), "{file}");
        assert_eq!(path, share.join(resource), "{file}");
        assert_eq!(file["found_in"], "executable", "{file}");
        assert_eq!(file["data_dir"], share_text.as_str(), "{file}");
        assert_eq!(
            file["size"].as_u64(),
            Some(std::fs::metadata(&path).unwrap().len())
        );
        assert_eq!(file["sha256"].as_str(), Some(sha256sum(&path).as_str()));
    }
    let licences: Vec<(&str, &str)> = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["licence"].as_str().unwrap()))
        .collect();
    assert_eq!(
        licences,
        [
            ("birdnet", "CC BY-NC-SA 4.0"),
            ("birdnet-mdata", "CC BY-NC-SA 4.0"),
            ("batdetect2", "CC BY-NC 4.0")
        ]
    );
    let batdetect2_licence = share.join("models/batdetect2/LICENSE.md");
    assert_eq!(
        json["models"][2]["licence_file"].as_str(),
        Some(batdetect2_licence.display().to_string().as_str())
    );

    // Every reference case ran and passed, each difference measured.
    let checks = json["verify"].as_array().unwrap();
    let per_model: Vec<&str> = checks
        .iter()
        .map(|c| c["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        per_model,
        [
            "birdnet",
            "birdnet-mdata",
            "batdetect2",
            "batdetect2",
            "batdetect2"
        ]
    );
    for check in checks {
        println!("{check}");
        let diff = check["max_abs_diff"].as_f64().unwrap();
        assert!(
            check["passed"] == true && diff <= check["tolerance"].as_f64().unwrap(),
            "{check}"
        );
    }
}

#[test]
fn acoupi_data_dir_comes_first_and_the_text_listing_names_each_place() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = std::fs::canonicalize(tmp.path()).unwrap();
    // Only the range model in the data dir: it is found there, the rest further down.
    let data = tmp_path.join("data");
    std::fs::create_dir_all(data.join("models")).unwrap();
    std::os::unix::fs::symlink(
        root().join("models/birdnet-mdata"),
        data.join("models/birdnet-mdata"),
    )
    .unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_acoupi"));
    let json = json_of(&run_in(&exe, &tmp_path, Some(&data), &["models", "--json"]));
    for (model, file) in files(&json) {
        let found_in = file["found_in"].as_str().unwrap();
        if model == "birdnet-mdata" {
            assert_eq!(found_in, "ACOUPI_DATA_DIR", "{file}");
            assert!(
                file["path"]
                    .as_str()
                    .unwrap()
                    .starts_with(&data.display().to_string())
            );
        } else {
            assert_ne!(found_in, "ACOUPI_DATA_DIR", "{file}");
        }
    }

    let text = run_in(&exe, &tmp_path, Some(&data), &["models"]);
    assert!(text.status.success());
    let stdout = String::from_utf8_lossy(&text.stdout);
    for part in [
        format!("1. $ACOUPI_DATA_DIR: {}", data.display()),
        "birdnet (used by model.birdnet): CC BY-NC-SA 4.0".to_string(),
        format!(
            "{}",
            data.join("models/birdnet-mdata/birdnet_v24_mdata_v2.onnx")
                .display()
        ),
        "found in $ACOUPI_DATA_DIR".to_string(),
        "sha256 ".to_string(),
    ] {
        assert!(stdout.contains(&part), "{part:?} not in\n{stdout}");
    }
}

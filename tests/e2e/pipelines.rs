//! Every example pipeline loads with the engine and validates against the checked-in
//! JSON Schema.

use crate::{root, toml_files};

fn schema_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas/pipeline.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn as_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    serde_json::to_value(value).unwrap()
}

#[test]
fn every_example_pipeline_is_valid_for_the_engine_and_the_schema() {
    let registry = acoupi_components::registry();
    let validator = schema_validator();
    let files = toml_files("pipelines");
    assert!(
        files.len() >= 2,
        "expected example pipelines, found {files:?}"
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("#:schema ../schemas/pipeline.schema.json\n"),
            "{} must start with the #:schema line",
            path.display()
        );
        if let Err(errors) = acoupi_engine::config::load(&path, &registry) {
            panic!("{} is invalid:\n{errors}", path.display());
        }
        let errors: Vec<String> = validator
            .iter_errors(&as_json(&path))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} fails the schema: {errors:#?}",
            path.display()
        );
    }
}

#[test]
fn the_schema_rejects_a_misspelt_key_an_unknown_type_and_a_wrong_family() {
    let validator = schema_validator();
    let demo = as_json(&root().join("pipelines/demo.toml"));

    let mut misspelt = demo.clone();
    misspelt["components"]["chirps"]["low_frequency"] = 2500.into();
    assert!(
        !validator.is_valid(&misspelt),
        "a misspelt parameter must fail"
    );

    let mut unknown = demo.clone();
    unknown["components"]["chirps"]["type"] = "model.band_energi".into();
    assert!(
        !validator.is_valid(&unknown),
        "an unknown component type must fail"
    );

    let mut family = demo.clone();
    family["stages"]["detect"]["cleaners"][0] =
        serde_json::json!({ "type": "filter.threshold", "threshold": 0.5 });
    assert!(
        !validator.is_valid(&family),
        "an inline saving filter in `cleaners` must fail"
    );

    let mut stage = demo;
    stage["stages"]["record"]["kind"] = "recordin".into();
    assert!(
        !validator.is_valid(&stage),
        "an unknown stage kind must fail"
    );
}

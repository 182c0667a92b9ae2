//! The checked-in schema is what `acoupi schema` prints.

use crate::root;

#[test]
fn checked_in_schema_is_up_to_date() {
    let registry = acoupi_components::registry();
    let generated = acoupi_engine::schema::pipeline_schema_text(&registry);
    let path = root().join("schemas/pipeline.schema.json");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "schemas/pipeline.schema.json is stale; regenerate it with\n    cargo run -- schema > schemas/pipeline.schema.json"
    );
}

#[test]
fn the_cli_prints_the_same_schema() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(output.status.success());
    let checked_in = std::fs::read_to_string(root().join("schemas/pipeline.schema.json")).unwrap();
    assert_eq!(String::from_utf8(output.stdout).unwrap(), checked_in);
}

#[test]
fn every_component_type_is_in_the_schema_with_its_type_constant() {
    let registry = acoupi_components::registry();
    let schema = acoupi_engine::schema::pipeline_schema(&registry);
    let definitions = schema["definitions"].as_object().unwrap();
    for ty in registry.types() {
        let definition = &definitions[&ty.schema_name];
        assert_eq!(definition["properties"]["type"]["const"], ty.kind);
        assert_eq!(definition["required"][0], "type");
        let family = &definitions[ty.family.schema_name()];
        let refs = family["oneOf"].as_array().unwrap();
        assert!(
            refs.iter()
                .any(|r| r["$ref"].as_str().unwrap().ends_with(&ty.schema_name)),
            "{} missing from its family",
            ty.kind
        );
    }
}

//! The checked-in generated files are what the binary prints: the schema
//! (`acoupi schema`) and the component reference (`acoupi components --markdown`).

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
    assert_the_cli_prints(&["schema"], "schemas/pipeline.schema.json");
}

/// `acoupi ARGS` succeeds and prints exactly the checked-in file at `path`.
fn assert_the_cli_prints(args: &[&str], path: &str) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success());
    let checked_in = std::fs::read_to_string(root().join(path)).unwrap();
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

#[test]
fn checked_in_components_doc_is_up_to_date() {
    let registry = acoupi_components::registry();
    let generated = acoupi_engine::component_docs::components_markdown(&registry);
    let checked_in = std::fs::read_to_string(root().join("docs/components.md")).unwrap_or_default();
    assert!(
        generated == checked_in,
        "docs/components.md is stale; regenerate it with\n    {}",
        acoupi_engine::component_docs::REGENERATE
    );
}

#[test]
fn the_cli_prints_the_same_components_doc() {
    assert_the_cli_prints(&["components", "--markdown"], "docs/components.md");
}

#[test]
fn the_components_doc_names_every_component_type() {
    let registry = acoupi_components::registry();
    let page = acoupi_engine::component_docs::components_markdown(&registry);
    for ty in registry.types() {
        assert!(
            page.contains(&format!("\n### `{}`\n", ty.kind)),
            "{} has no section",
            ty.kind
        );
    }
}

//! The JSON Schema of pipeline files, generated from the same types the loader
//! deserialises and from every registered component's config. Editors (taplo/Even Better
//! TOML, Helix, Neovim) use it through the `#:schema` line at the top of a pipeline file.
//!
//! Components are a union discriminated by `type`, stages by `kind`; each stage field
//! that takes a component accepts a component name or an inline table of that family.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use crate::component::Family;
use crate::config::pipeline::{
    DeploymentSection, DeviceSection, PathsSection, RetentionSection, StageSpec, StoreSection,
    WebSection,
};
use crate::registry::Registry;

/// The whole file, for the schema only (the loader reads the tables one by one).
#[derive(JsonSchema)]
#[schemars(title = "acoupi pipeline")]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
/// An acoupi-rs pipeline: the station, its store, its components and its scheduled stages.
struct PipelineFile {
    deployment: DeploymentSection,
    /// Where everything the station produces is kept.
    store: Option<StoreSection>,
    /// Folders the station writes to.
    paths: Option<PathsSection>,
    /// The hardware running the station.
    device: Option<DeviceSection>,
    /// How the recordings tree is kept from filling the disk.
    retention: Option<RetentionSection>,
    /// The station dashboard `acoupi run` serves.
    web: Option<WebSection>,
    /// Named component instances: `[components.<name>]` with `type = "family.kind"` and
    /// its parameters.
    components: Option<BTreeMap<String, AnyComponent>>,
    /// Named stages: `[stages.<name>]` with `kind` and exactly one trigger (`schedule` or
    /// `after`).
    stages: BTreeMap<String, AnyStage>,
}

/// Placeholder definitions, replaced once the registry's types are known.
macro_rules! placeholder {
    ($name:ident) => {
        struct $name;
        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({})
            }
        }
    };
}
placeholder!(AnyComponent);
placeholder!(AnyStage);

/// Builds the pipeline JSON Schema (draft 07, which taplo and VS Code understand).
pub fn pipeline_schema(registry: &Registry) -> Value {
    let mut generator = SchemaSettings::draft07().into_generator();
    let mut by_family: BTreeMap<Family, Vec<Value>> = BTreeMap::new();
    let mut components = Vec::new();
    let mut tagged = Vec::new();
    for ty in registry.types() {
        let reference = ty.schema(&mut generator).to_value();
        tagged.push((ty.schema_name.clone(), "type", ty.kind, ty.description()));
        by_family
            .entry(ty.family)
            .or_default()
            .push(reference.clone());
        components.push(reference);
    }
    let mut stages = Vec::new();
    for (kind, name, reference) in StageSpec::schemas(&mut generator) {
        tagged.push((name, "kind", kind.as_str(), format!("A {kind} stage.")));
        stages.push(reference.to_value());
    }

    let mut root = generator.root_schema_for::<PipelineFile>().to_value();
    let Some(definitions) = root.get_mut("definitions").and_then(Value::as_object_mut) else {
        return root;
    };
    for (name, tag, value, description) in tagged {
        if let Some(definition) = definitions.get_mut(&name).and_then(Value::as_object_mut) {
            add_tag(definition, tag, value, &description);
        }
    }
    definitions.insert("AnyComponent".into(), json!({ "oneOf": components }));
    definitions.insert("AnyStage".into(), json!({ "oneOf": stages }));
    for family in Family::ALL {
        let schema = match by_family.remove(&family) {
            Some(refs) => json!({ "oneOf": refs }),
            None => {
                json!({ "description": format!("No {} component types exist yet.", family.noun()), "not": {} })
            }
        };
        definitions.insert(family.schema_name().into(), schema);
    }
    strip_null(&mut root);
    root
}

/// Adds the discriminating `type`/`kind` property, first, and makes it required.
fn add_tag(definition: &mut Map<String, Value>, tag: &str, value: &str, description: &str) {
    let mut properties = Map::new();
    properties.insert(
        tag.into(),
        json!({ "const": value, "description": description }),
    );
    if let Some(Value::Object(existing)) = definition.remove("properties") {
        properties.extend(existing);
    }
    definition.insert("properties".into(), Value::Object(properties));
    let mut required = vec![Value::from(tag)];
    if let Some(Value::Array(existing)) = definition.remove("required") {
        required.extend(existing);
    }
    definition.insert("required".into(), Value::Array(required));
}

/// TOML has no null: drops the `null` alternatives schemars adds for `Option` fields.
fn strip_null(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    object.insert("type".into(), single);
                }
            }
            if let Some(Value::Array(alternatives)) = object.get_mut("anyOf") {
                alternatives.retain(|a| a.get("type").and_then(Value::as_str) != Some("null"));
                if alternatives.len() == 1
                    && let Some(Value::Object(single)) = object
                        .remove("anyOf")
                        .and_then(|mut a| a.as_array_mut().map(|a| a.remove(0)))
                {
                    for (k, v) in single {
                        object.entry(k).or_insert(v);
                    }
                }
            }
            if object.get("default") == Some(&Value::Null) {
                object.remove("default");
            }
            object.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// The schema as pretty JSON with a trailing newline (the checked-in file's format).
pub fn pipeline_schema_text(registry: &Registry) -> String {
    let mut text = serde_json::to_string_pretty(&pipeline_schema(registry)).unwrap_or_default();
    text.push('\n');
    text
}

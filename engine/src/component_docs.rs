//! The component reference (`docs/components.md`), generated from the registry: each
//! type's family, description and parameters (type, range, default, description), all
//! read from the config structs' JSON Schemas. `acoupi components --markdown` prints it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::component::Family;
use crate::registry::{ComponentType, Registry};

/// The command that regenerates `docs/components.md`.
pub const REGENERATE: &str = "cargo run -- components --markdown > docs/components.md";

/// The whole Markdown page: a summary table, one section per family with a parameter
/// table per component type, then the named value types the parameters use.
pub fn components_markdown(registry: &Registry) -> String {
    let mut value_types = BTreeMap::new();
    let mut out = String::new();
    out.push_str("# Components\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the component registry: do not edit. Regenerate with\n     {REGENERATE} -->\n"
    );
    out.push_str(
        "Every component type a pipeline file can name in `type = \"family.kind\"`, with its \
         parameters. The descriptions are the config structs' doc comments, the same text \
         `acoupi components` prints and editors show from the JSON Schema \
         (`schemas/pipeline.schema.json`). How components fit into stages is in \
         [the pipeline guide](pipeline.md); the families follow acoupi's \
         components ([acoupi's documentation](https://acoupi.github.io/acoupi/), \
         Reference → Components).\n\n",
    );
    out.push_str("| type | family | what it does |\n|---|---|---|\n");
    for ty in registry.types() {
        let _ = writeln!(
            out,
            "| [`{}`](#{}) | {} | {} |",
            ty.kind,
            anchor(ty.kind),
            ty.family.noun(),
            cell(&ty.description())
        );
    }
    for family in Family::ALL {
        let types: Vec<&ComponentType> = registry.types().filter(|t| t.family == family).collect();
        if types.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "\n## {} (`{}.*`)\n",
            capitalise(&plural(family.noun())),
            family.prefix()
        );
        for ty in types {
            component_section(&mut out, ty, &mut value_types);
        }
    }
    value_types_section(&mut out, &value_types);
    out
}

/// The glossary of named value types (`Score`, `PositiveDuration`, ...) that the
/// parameter tables name in their type column.
fn value_types_section(out: &mut String, value_types: &BTreeMap<String, Value>) {
    if value_types.is_empty() {
        return;
    }
    out.push_str(
        "\n## Value types\n\nThe named types in the parameter tables, checked while the \
         pipeline file is read.\n\n| value type | what it accepts |\n|---|---|\n",
    );
    for (name, schema) in value_types {
        let mut parts = Vec::new();
        let description = one_line(
            schema
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        if !description.is_empty() {
            parts.push(description);
        }
        if let Some(range) = range(schema) {
            parts.push(format!("{}: {range}", capitalise(&json_type(schema))));
        }
        if let Some(values) = allowed_values(schema) {
            parts.push(format!("Values: {values}"));
        }
        if let Some(fields) = schema.get("properties").and_then(Value::as_object) {
            let names: Vec<String> = fields.keys().map(|k| format!("`{k}`")).collect();
            parts.push(format!("Fields: {}", names.join(", ")));
        }
        if parts.is_empty() {
            parts.push(capitalise(&json_type(schema)));
        }
        let text = parts
            .iter()
            .map(|p| {
                if p.ends_with('.') {
                    p.clone()
                } else {
                    format!("{p}.")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(out, "| `{name}` | {} |", cell(&text));
    }
}

fn component_section(
    out: &mut String,
    ty: &ComponentType,
    value_types: &mut BTreeMap<String, Value>,
) {
    let schema = ty.parameters_schema();
    let _ = write!(out, "\n### `{}`\n\n", ty.kind);
    let full = schema
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    for paragraph in full.split("\n\n") {
        let text = one_line(paragraph);
        if !text.is_empty() {
            let _ = write!(out, "{text}\n\n");
        }
    }
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, definition) in defs {
        value_types
            .entry(name.clone())
            .or_insert_with(|| definition.clone());
    }
    let parameters: Vec<(&String, &Value)> = properties
        .iter()
        .filter(|(name, _)| *name != "type")
        .collect();
    if parameters.is_empty() {
        out.push_str("No parameters.\n");
        return;
    }
    out.push_str("| parameter | type | default | description |\n|---|---|---|---|\n");
    for (name, property) in parameters {
        let default = match property.get("default") {
            Some(value) => format!("`{}`", cell(&value.to_string())),
            None if required.contains(&name.as_str()) => "required".to_owned(),
            None => "—".to_owned(),
        };
        let description = property
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let _ = writeln!(
            out,
            "| `{name}` | {} | {default} | {} |",
            cell(&type_text(property, defs)),
            cell(&one_line(description))
        );
    }
}

/// A parameter's type in words: the value type's name or the JSON type, then its range
/// or allowed values when the schema gives them.
fn type_text(property: &Value, defs: &Map<String, Value>) -> String {
    let inner = non_null(property);
    let (name, resolved) = match reference(inner) {
        Some(name) => (Some(name), defs.get(name).unwrap_or(inner)),
        None => (None, inner),
    };
    let mut text = match name {
        Some(name) => format!("[{name}](#value-types)"),
        None => json_type(resolved),
    };
    let mut extras = Vec::new();
    if let Some(range) = range(inner).or_else(|| range(resolved)) {
        extras.push(range);
    }
    if let Some(values) = allowed_values(resolved) {
        extras.push(values);
    }
    if !extras.is_empty() {
        let _ = write!(text, ": {}", extras.join("; "));
    }
    text
}

/// The one branch of an optional value (`anyOf: [T, { type: null }]`), else the schema.
fn non_null(schema: &Value) -> &Value {
    let branches = schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array);
    let Some(branches) = branches else {
        return schema;
    };
    let mut others = branches
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"));
    match (others.next(), others.next()) {
        (Some(only), None) if branches.len() == 2 => only,
        _ => schema,
    }
}

/// The definition a property points at, directly or through `allOf: [{ $ref }]`.
fn reference(property: &Value) -> Option<&str> {
    let direct = property.get("$ref").and_then(Value::as_str);
    let through_all_of = || {
        property
            .get("allOf")?
            .as_array()?
            .first()?
            .get("$ref")?
            .as_str()
    };
    direct
        .or_else(through_all_of)
        .and_then(|r| r.rsplit('/').next())
}

fn json_type(schema: &Value) -> String {
    let base = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => {
            if schema.get("anyOf").is_some() || schema.get("oneOf").is_some() {
                return "one of several forms".to_owned();
            }
            return "any".to_owned();
        }
    };
    if base == "array"
        && let Some(items) = schema.get("items")
    {
        let items = non_null(items);
        let item = match reference(items) {
            Some(name) => name.to_owned(),
            None => json_type(items),
        };
        return format!("array of {item}");
    }
    base
}

/// `0 ≤ x ≤ 1`, `> 0`, `at most 32`: the numeric bounds a schema states.
fn range(schema: &Value) -> Option<String> {
    let number = |key: &str| schema.get(key).and_then(Value::as_f64).map(number_text);
    let low = number("minimum")
        .map(|n| (n, "≤"))
        .or_else(|| number("exclusiveMinimum").map(|n| (n, "<")));
    let high = number("maximum")
        .map(|n| (n, "≤"))
        .or_else(|| number("exclusiveMaximum").map(|n| (n, "<")));
    match (low, high) {
        (Some((low, a)), Some((high, b))) => Some(format!("{low} {a} x {b} {high}")),
        (Some((low, "≤")), None) => Some(format!("≥ {low}")),
        (Some((low, _)), None) => Some(format!("> {low}")),
        (None, Some((high, b))) => Some(format!("{b} {high}")),
        (None, None) => None,
    }
}

/// Integral bounds print without a decimal point: `0`, `1.5`, `65535`.
fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `"POST"`, `"PUT"`: an enum's values, or the constants of a `oneOf`.
fn allowed_values(schema: &Value) -> Option<String> {
    let values: Vec<String> = if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        values.iter().map(|v| format!("`{v}`")).collect()
    } else {
        schema
            .get("oneOf")
            .and_then(Value::as_array)?
            .iter()
            .map(|v| v.get("const").map(|c| format!("`{c}`")))
            .collect::<Option<Vec<_>>>()?
    };
    (!values.is_empty()).then(|| values.join(", "))
}

/// A GitHub heading anchor for a heading that is just `` `kind` ``.
fn anchor(kind: &str) -> String {
    kind.chars()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

fn plural(noun: &str) -> String {
    match noun.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{noun}s"),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{BuildContext, Built, ComponentConfig};

    /// Keep recordings whose score reaches a | threshold.
    ///
    /// A second paragraph.
    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct ExampleFilter {
        /// The lowest score kept.
        #[serde(default = "half")]
        #[schemars(range(min = 0.0, max = 1.0))]
        threshold: f64,
        /// Where to look.
        folder: String,
        /// Tags to keep.
        #[serde(default)]
        tags: Vec<String>,
        /// When to keep.
        window: Option<ExampleWindow>,
    }

    /// A daily window.
    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct ExampleWindow {
        start: String,
        end: String,
    }

    fn half() -> f64 {
        0.5
    }

    impl ComponentConfig for ExampleFilter {
        const KIND: &'static str = "filter.example";

        fn build(&self, _: &BuildContext) -> Result<Built, crate::registry::BuildError> {
            Err(String::from("not built in tests").into())
        }
    }

    #[test]
    fn a_component_gets_a_row_a_section_and_a_parameter_table() {
        let mut registry = Registry::new();
        registry.register::<ExampleFilter>();
        let page = components_markdown(&registry);
        assert!(page.contains(
            "| [`filter.example`](#filterexample) | saving filter | Keep recordings whose \
             score reaches a \\| threshold. |"
        ));
        assert!(page.contains("\n## Saving filters (`filter.*`)\n"));
        assert!(page.contains("\n### `filter.example`\n\nKeep recordings"));
        assert!(page.contains("\n\nA second paragraph.\n\n"));
        assert!(
            page.contains("| `threshold` | number: 0 ≤ x ≤ 1 | `0.5` | The lowest score kept. |")
        );
        assert!(page.contains("| `folder` | string | required | Where to look. |"));
        assert!(page.contains("| `tags` | array of string | `[]` | Tags to keep. |"));
        assert!(page.contains("| `window` | [ExampleWindow](#value-types) | — | When to keep. |"));
        assert!(!page.contains("| `type` |"));
        assert!(page.contains(
            "\n## Value types\n\nThe named types in the parameter tables, checked while the \
             pipeline file is read.\n\n| value type | what it accepts |\n|---|---|\n\
             | `ExampleWindow` | A daily window. Fields: `end`, `start`. |\n"
        ));
    }

    #[test]
    fn ranges_read_as_bounds() {
        let schema = serde_json::json!({ "exclusiveMinimum": 0 });
        assert_eq!(range(&schema).as_deref(), Some("> 0"));
        let schema = serde_json::json!({ "minimum": 0.0, "exclusiveMaximum": 3.0 });
        assert_eq!(range(&schema).as_deref(), Some("0 ≤ x < 3"));
        let schema = serde_json::json!({ "minimum": 1 });
        assert_eq!(range(&schema).as_deref(), Some("≥ 1"));
        let schema = serde_json::json!({ "maximum": 32 });
        assert_eq!(range(&schema).as_deref(), Some("≤ 32"));
    }

    #[test]
    fn enums_and_constants_list_their_values() {
        let schema = serde_json::json!({ "enum": ["POST", "PUT"] });
        assert_eq!(
            allowed_values(&schema).as_deref(),
            Some("`\"POST\"`, `\"PUT\"`")
        );
        let schema = serde_json::json!({ "oneOf": [{ "const": "dawn" }, { "const": "dusk" }] });
        assert_eq!(
            allowed_values(&schema).as_deref(),
            Some("`\"dawn\"`, `\"dusk\"`")
        );
    }

    #[test]
    fn plurals_and_anchors() {
        assert_eq!(plural("message factory"), "message factories");
        assert_eq!(plural("output cleaner"), "output cleaners");
        assert_eq!(anchor("model.band_energy"), "modelband_energy");
    }
}

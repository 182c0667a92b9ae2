//! `acoupi components`: the component types, as a table, as JSON with parameters, or as
//! the Markdown reference (`docs/components.md`).

use std::process::ExitCode;

use acoupi_engine::registry::Registry;

pub fn list(registry: &Registry, json: bool, markdown: bool) -> ExitCode {
    if markdown {
        print!(
            "{}",
            acoupi_engine::component_docs::components_markdown(registry)
        );
    } else if json {
        let list: Vec<_> = registry
            .types()
            .map(|t| {
                serde_json::json!({
                    "type": t.kind,
                    "family": t.family.noun(),
                    "description": t.description(),
                    "parameters": t.parameters_schema(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        let width = registry.kinds().map(str::len).max().unwrap_or(0);
        for t in registry.types() {
            println!("{:width$}  {}", t.kind, t.description());
        }
    }
    ExitCode::SUCCESS
}

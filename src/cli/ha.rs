//! `acoupi ha remove`: deletes a station's Home Assistant entities (the retained discovery
//! configs, states and availability of each `messenger.mqtt` with `home_assistant`).

use std::path::PathBuf;
use std::process::ExitCode;

use acoupi_engine::registry::Registry;

#[derive(clap::Subcommand)]
pub enum HaCommand {
    /// Publish empty retained discovery configs for every entity of the station (Home
    /// Assistant deletes them) and clear its retained state and availability topics.
    /// Stop the station first: a running one publishes them again when it reconnects.
    Remove {
        /// The pipeline file.
        pipeline: PathBuf,
    },
}

pub fn ha(registry: &Registry, command: HaCommand) -> ExitCode {
    let HaCommand::Remove { pipeline } = command;
    let pipeline = match super::load_or_report(registry, &pipeline) {
        Ok(pipeline) => pipeline,
        Err(code) => return code,
    };
    let removals = acoupi_components::home_assistant::remove_home_assistant(&pipeline);
    if removals.is_empty() {
        eprintln!(
            "error: {}: no `messenger.mqtt` has `home_assistant`; nothing to remove",
            pipeline.path.display()
        );
        return ExitCode::from(super::INVALID);
    }
    let mut failed = false;
    for removal in removals {
        match removal.outcome {
            Ok(topics) => println!(
                "{}: removed Home Assistant device `{}` ({topics} retained topics emptied)",
                removal.messenger, removal.entities.device_id
            ),
            Err(error) => {
                failed = true;
                eprintln!("error: {}: {error}", removal.messenger);
            }
        }
    }
    if failed {
        ExitCode::from(super::USAGE_OR_IO)
    } else {
        ExitCode::SUCCESS
    }
}

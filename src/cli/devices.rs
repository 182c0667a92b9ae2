//! `acoupi devices`: the audio input devices `recorder.microphone` can use, with the
//! channel counts, sample rates and sample formats each supports.

use std::process::ExitCode;

use acoupi_components::microphone::{describe_devices, input_devices};

pub fn list(json: bool) -> ExitCode {
    let devices = match input_devices() {
        Ok(devices) => devices,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(super::USAGE_OR_IO);
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&devices).unwrap_or_default()
        );
    } else if devices.is_empty() {
        println!("no audio input devices");
    } else {
        print!("{}", describe_devices(&devices));
    }
    ExitCode::SUCCESS
}

//! Any bytes as a recording file, read every way the station and reprocessing read one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    acoupi_components::fuzz::read_audio(data);
});

//! Any bytes as a pipeline file (text that is not UTF-8 is read lossily, as a file would
//! be refused earlier with its own error).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    acoupi_components::fuzz::check_pipeline(&String::from_utf8_lossy(data));
});

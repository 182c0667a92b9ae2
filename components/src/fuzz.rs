//! Property-based fuzzing (this machine has only stable Rust, and `cargo fuzz` needs
//! nightly): the pipeline loader with every registered component, and the readers of
//! audio files (WAV header, samples, GUANO). Any text, and valid inputs with random
//! edits, must give a result or an error, never a panic; a loader's problems must point
//! inside the text. `ACOUPI_FUZZ_CASES` sets the number of inputs per property (default
//! 2,000; CI's run takes seconds; raise it for a longer session).

use proptest::prelude::*;

use acoupi_engine::config::load_str;

const VALID: &str = r#"[deployment]
name = "fuzz"
latitude = 51.75
longitude = -1.25
timezone = "Europe/London"

[paths]
temp = "tmp"

[retention]
min_free = "1 GB"
max_age = "30d"

[components.chirps]
type = "model.band_energy"
low_freq = 2500
high_freq = 7000

[stages.record]
kind = "recording"
recorder = { type = "recorder.replay", folder = ".", loop = true }
conditions = [{ type = "condition.time_window", windows = [{ start = "20:00", end = "04:00" }] }]
any_conditions = [{ type = "condition.dawn_dusk", windows = [{ event = "sunrise", before = "30min" }] }]
schedule = { every = "10s", offset = "5s" }

[stages.detect]
kind = "detection"
after = "record"
model = "chirps"
cleaners = [{ type = "cleaner.threshold", threshold = 0.3 }]
messages = [{ type = "message.detections", threshold = 0.5 }]

[stages.manage]
kind = "management"
after = "detect"
required_models = ["m"]
filters = [{ type = "filter.species", values = ["Turdus merula"] }]
managers = [{ type = "manager.by_tag", folders = "{top_tag}/{year}" }]

[stages.send]
kind = "messaging"
after = "manage"
messengers = [{ type = "messenger.http", url = "http://127.0.0.1:9/x", headers = { A = { env = "T" } } }]

[stages.tidy]
kind = "management"
schedule = { cron = "0 * * * *" }
"#;

fn cases() -> u32 {
    std::env::var("ACOUPI_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000)
}

/// Checks one input: no panic, and every problem's span lies inside the text.
fn check(text: &str) {
    let registry = crate::registry();
    if let Err(errors) = load_str(std::path::Path::new("fuzz.toml"), text, &registry) {
        for problem in &errors.problems {
            if let Some(span) = &problem.span {
                assert!(span.start <= span.end && span.end <= text.len(), "span {span:?} outside a {}-byte text", text.len());
            }
        }
        // Rendering the report must not panic either.
        let _ = errors.to_string();
    }
}

/// An edit: at a position (a fraction of the length), delete some bytes and insert text.
fn edits() -> impl Strategy<Value = Vec<(f64, usize, String)>> {
    let insert = prop_oneof![
        Just(String::new()),
        "[=\\[\\]{}\",.#\\n ]{1,4}",
        "[a-z_]{1,8}",
        Just("\"".to_string()),
        Just("[stages.x]\n".to_string()),
        Just("after = \"record\"\n".to_string()),
        Just("schedule = { every = \"0s\" }\n".to_string()),
        any::<String>(),
    ];
    prop::collection::vec((0.0..1.0f64, 0usize..12, insert), 1..6)
}

fn apply(text: &str, edits: &[(f64, usize, String)]) -> String {
    let mut out = text.to_string();
    for (at, delete, insert) in edits {
        let mut start = ((out.len() as f64) * at) as usize;
        while !out.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + delete).min(out.len());
        while !out.is_char_boundary(end) {
            end += 1;
        }
        out.replace_range(start..end, insert);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_gives_a_pipeline_or_problems(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn edited_valid_pipelines_give_a_pipeline_or_problems(edits in edits()) {
        check(&apply(VALID, &edits));
    }
}

#[test]
fn the_seed_pipeline_is_valid() {
    load_str(std::path::Path::new("fuzz.toml"), VALID, &crate::registry()).unwrap();
}

/// A small valid WAV: 16-bit stereo at 8 kHz, with a GUANO chunk.
fn seed_wav() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.wav");
    crate::audio::testing::write_wav(&path, 8_000, 2, 0.01, |t| (t * 3000.0).sin() * 0.5);
    let mut guano = acoupi_engine::guano::Guano::default();
    guano.set("Timestamp", "2026-06-21T05:30:00+01:00");
    guano.set("TE", "10");
    acoupi_engine::guano::write(&path, &guano).unwrap();
    std::fs::read(path).unwrap()
}

/// Reads `bytes` as a recording file every way the station does; only panics count.
fn read_all_ways(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.wav");
    std::fs::write(&path, bytes).unwrap();
    let _ = crate::audio::wav_info(&path);
    let _ = crate::audio::read_mono(&path);
    if let Ok(Some(guano)) = acoupi_engine::guano::read(&path) {
        let _ = (guano.timestamp(chrono_tz::UTC), guano.time_expansion(), guano.position());
    }
    let _ = acoupi_engine::guano::write(&path, &acoupi_engine::guano::Guano::default());
}

fn byte_edits() -> impl Strategy<Value = Vec<(f64, usize, Vec<u8>)>> {
    prop::collection::vec((0.0..1.0f64, 0usize..16, prop::collection::vec(any::<u8>(), 0..8)), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_read_as_a_wav_give_a_result_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        read_all_ways(&bytes);
    }

    #[test]
    fn edited_valid_wavs_give_a_result_or_an_error(edits in byte_edits()) {
        let mut bytes = seed_wav();
        for (at, delete, insert) in &edits {
            let start = ((bytes.len() as f64) * at) as usize;
            let end = (start + delete).min(bytes.len());
            bytes.splice(start..end, insert.iter().copied());
        }
        read_all_ways(&bytes);
    }
}

//! `acoupi bench models`: for each model, milliseconds per 3 s chunk on one thread and the
//! real-time factor with every core busy (BatDetect2 also with all cores on one chunk,
//! `threads = <cores>`: the time to analyse one recording on an otherwise idle station). A chunk is a 3 s WAV at the model's usual input
//! rate (noise with a frequency sweep, fixed seed) analysed with `Model::run` — reading the
//! file and pre-processing included, as on a station. The model is built from its default
//! config (the bundled files), exactly as a pipeline would build it, and shared by all
//! threads (one loaded network, as in reprocessing).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use acoupi_engine::component::Model;
use acoupi_engine::config::load_str;
use acoupi_engine::data::{Deployment, Recording};
use acoupi_engine::registry::{BuildContext, Built};

/// The models `acoupi bench models` measures, with the input rate of their test chunk.
pub const BENCH_MODELS: &[(&str, u32)] =
    &[("model.birdnet", 48_000), ("model.batdetect2", 256_000)];
/// Models measured a second time with every core on one chunk (`threads = <cores>`).
const THREADED: &[&str] = &["model.batdetect2"];
/// The length of one chunk, in seconds.
const CHUNK_SECONDS: f64 = 3.0;

/// One model's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBench {
    pub kind: String,
    /// Milliseconds per 3 s chunk on one thread (the median of the runs).
    pub ms_per_chunk: f64,
    /// Threads used for the all-cores run.
    pub threads: usize,
    /// Seconds of audio analysed per second of wall time with every thread busy.
    pub realtime_factor: f64,
}

/// Builds `kind` from its default config, as a pipeline in `dir` would.
fn build_model(kind: &str, keys: &str, dir: &Path) -> Result<Arc<dyn Model>, String> {
    let source = format!(
        "[deployment]\nname = \"bench\"\n\n[components.model]\ntype = \"{kind}\"\n{keys}\n\n\
         [stages.detect]\nkind = \"detection\"\nmodel = \"model\"\nafter = \"record\"\n\n\
         [components.replay]\ntype = \"recorder.replay\"\nfolder = \".\"\n\n\
         [stages.record]\nkind = \"recording\"\nrecorder = \"replay\"\nschedule = {{ every = \"3s\" }}\n"
    );
    let pipeline = load_str(
        &dir.join("bench.toml"),
        &source,
        &acoupi_components::registry(),
    )
    .map_err(|e| e.to_string())?;
    let instance = pipeline
        .components
        .iter()
        .find(|c| c.name == "model")
        .ok_or("no model in the bench pipeline")?;
    let ctx = BuildContext {
        settings: pipeline.settings.clone(),
        instance: instance.name.clone(),
        store: None,
        telemetry: Default::default(),
    };
    match instance.settings.build(&ctx).map_err(|e| e.to_string())? {
        Built::Model(model) => Ok(model),
        _ => Err(format!("{kind} is not a model")),
    }
}

/// Writes the benchmark chunk: 3 s of 16-bit mono at `samplerate`, its noise drawn from
/// `seed`.
pub(super) fn write_chunk(path: &Path, samplerate: u32, seed: u32) -> Result<Recording, String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: samplerate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(|e| e.to_string())?;
    let n = (CHUNK_SECONDS * f64::from(samplerate)) as usize;
    let mut seed = seed;
    for i in 0..n {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = (f64::from(seed >> 8) / f64::from(1u32 << 24) - 0.5) * 0.1;
        let t = i as f64 / f64::from(samplerate);
        // A sweep from 2 % to 20 % of the sample rate.
        let f0 = 0.02 * f64::from(samplerate);
        let sweep = 0.3
            * (2.0
                * std::f64::consts::PI
                * (f0 * t + 0.5 * (0.18 * f64::from(samplerate) / CHUNK_SECONDS) * t * t))
                .sin();
        writer
            .write_sample(((noise + sweep) * 32_767.0) as i16)
            .map_err(|e| e.to_string())?;
    }
    writer.finalize().map_err(|e| e.to_string())?;
    Recording::new(Deployment::new("bench"), CHUNK_SECONDS, samplerate)
        .map(|r| r.with_path(path))
        .map_err(|e| e.to_string())
}

/// Measures one model: `repeats` chunks on one thread, then `repeats` chunks on each of
/// every available core at once.
/// `keys` are extra config lines for the model (e.g. `threads = 2`).
pub fn bench_model(
    kind: &str,
    keys: &str,
    samplerate: u32,
    repeats: usize,
    dir: &Path,
) -> Result<ModelBench, String> {
    let repeats = repeats.max(1);
    let recording = write_chunk(
        &dir.join(format!("{}.wav", kind.replace('.', "_"))),
        samplerate,
        0x1234_5678,
    )?;
    let model = build_model(kind, keys, dir)?;
    // Warm-up (first-run allocations).
    model.run(&recording).map_err(|e| e.to_string())?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        model.run(&recording).map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let ms_per_chunk = times[times.len() / 2];

    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let start = Instant::now();
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (model, recording) = (model.clone(), &recording);
                scope.spawn(move || -> Result<(), String> {
                    for _ in 0..repeats {
                        model.run(recording).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a benchmark thread panicked".into()))
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    let audio_seconds = (threads * repeats) as f64 * CHUNK_SECONDS;
    let label = if keys.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({keys})")
    };
    Ok(ModelBench {
        kind: label,
        ms_per_chunk,
        threads,
        realtime_factor: audio_seconds / start.elapsed().as_secs_f64(),
    })
}

/// Runs [`bench_model`] for each of `kinds` (all of [`BENCH_MODELS`] when empty) and
/// prints a table.
/// The entries of `all` named by `kinds` (a model type each), in that order; all of them
/// when `kinds` is empty. An unknown type is an error listing the known ones.
pub(super) fn choose<T: Copy>(
    all: &[(&'static str, T)],
    kinds: &[String],
) -> Result<Vec<(&'static str, T)>, String> {
    if kinds.is_empty() {
        return Ok(all.to_vec());
    }
    kinds
        .iter()
        .map(|k| {
            all.iter()
                .find(|(kind, _)| kind == k)
                .copied()
                .ok_or_else(|| {
                    format!(
                        "no benchmark for `{k}`; choose from {}",
                        all.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                    )
                })
        })
        .collect()
}

pub fn bench_models(
    kinds: &[String],
    repeats: usize,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<Vec<ModelBench>, String> {
    let chosen = choose(BENCH_MODELS, kinds)?;
    let io = |e: std::io::Error| e.to_string();
    writeln!(
        out,
        "{:<32} {:>10} {:>16} {:>8} {:>22}",
        "model", "input Hz", "ms / 3 s chunk", "threads", "real-time factor"
    )
    .map_err(io)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut all = Vec::new();
    for (kind, rate) in chosen {
        let mut variants = vec![String::new()];
        if THREADED.contains(&kind) && cores > 1 {
            variants.push(format!("threads = {cores}"));
        }
        for keys in variants {
            let bench = bench_model(kind, &keys, rate, repeats, dir)?;
            writeln!(
                out,
                "{:<32} {:>10} {:>16.1} {:>8} {:>21.1}x",
                bench.kind, rate, bench.ms_per_chunk, bench.threads, bench.realtime_factor
            )
            .map_err(io)?;
            all.push(bench);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_birdnet_and_refuses_unknown_models() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let results = bench_models(&["model.birdnet".into()], 1, dir.path(), &mut out).unwrap();
        assert_eq!(results.len(), 1);
        assert!(results[0].ms_per_chunk > 0.0 && results[0].realtime_factor > 0.0);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("model.birdnet") && text.contains("real-time factor"),
            "{text}"
        );
        let err = bench_models(&["model.nothing".into()], 1, dir.path(), &mut Vec::new())
            .err()
            .unwrap();
        assert!(err.contains("model.birdnet"), "{err}");
    }
}

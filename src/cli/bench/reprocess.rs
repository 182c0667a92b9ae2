//! `acoupi bench reprocess`: the real-time factor of `acoupi reprocess` on a synthetic
//! archive, with one worker and with one per core, for the demo model
//! (`model.band_energy`) and each bundled ONNX model (`model.birdnet`,
//! `model.batdetect2`), built from their default configs. The archive is deterministic:
//! `files` WAVs of `seconds` s, 16-bit mono at 48 kHz, low noise with a 3–6 kHz chirp
//! every 2 s (fixed seeds), in four site folders. Everything of a run counts: walking,
//! probing, the model, the writer's DuckDB commits (into a fresh store per run).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use acoupi_components::audio_probe::WavProbe;
use acoupi_engine::config::load_str;
use acoupi_engine::reprocess::{NoProgress, ReprocessOptions, reprocess};
use acoupi_store_duckdb::DuckDbStore;

/// The models measured by default, with their component keys.
pub const BENCH_MODELS: &[(&str, &str)] = &[
    ("model.band_energy", "low_freq = 2500\nhigh_freq = 7000"),
    ("model.birdnet", ""),
    ("model.batdetect2", ""),
];
/// The archive's sample rate.
const SAMPLERATE: u32 = 48_000;

/// One run's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ReprocessBench {
    pub kind: String,
    pub jobs: usize,
    pub files: usize,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    pub detections: usize,
}

impl ReprocessBench {
    pub fn realtime_factor(&self) -> f64 {
        if self.wall_seconds > 0.0 {
            self.audio_seconds / self.wall_seconds
        } else {
            0.0
        }
    }
}

/// Writes the synthetic archive (see the module docs) under `dir/archive`.
pub fn write_archive(dir: &Path, files: usize, seconds: f64) -> Result<PathBuf, String> {
    let archive = dir.join("archive");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLERATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let frames = (seconds * f64::from(SAMPLERATE)) as usize;
    for file in 0..files {
        let folder = archive.join(format!("site-{}", file % 4));
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("cannot create `{}`: {e}", folder.display()))?;
        let path = folder.join(format!(
            "20260621_{:02}{:02}00.wav",
            file / 60 % 24,
            file % 60
        ));
        let mut writer = hound::WavWriter::create(&path, spec)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
        let mut seed = 0x9E37_79B9u32 ^ file as u32;
        for i in 0..frames {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (f64::from(seed >> 8) / f64::from(1u32 << 24) - 0.5) * 0.02;
            let t = i as f64 / f64::from(SAMPLERATE);
            let phase = t % 2.0;
            let chirp = if phase < 0.1 {
                0.3 * (2.0 * std::f64::consts::PI * (3000.0 * phase + 15_000.0 * phase * phase))
                    .sin()
            } else {
                0.0
            };
            writer
                .write_sample(((noise + chirp) * 32_767.0) as i16)
                .map_err(|e| e.to_string())?;
        }
        writer.finalize().map_err(|e| e.to_string())?;
    }
    Ok(archive)
}

/// Reprocesses `archive` with `kind` on `jobs` workers into a fresh store in `dir`.
pub fn bench_run(
    kind: &str,
    keys: &str,
    archive: &Path,
    jobs: usize,
    dir: &Path,
) -> Result<ReprocessBench, String> {
    let name = format!("{}-{jobs}", kind.replace('.', "_"));
    let source = format!(
        "[deployment]\nname = \"bench\"\n\n[store]\npath = \"{name}.duckdb\"\n\n\
         [components.model]\ntype = \"{kind}\"\n{keys}\n\n\
         [components.replay]\ntype = \"recorder.replay\"\nfolder = \".\"\n\n\
         [stages.record]\nkind = \"recording\"\nrecorder = \"replay\"\nschedule = {{ every = \"3s\" }}\n\n\
         [stages.detect]\nkind = \"detection\"\nmodel = \"model\"\nafter = \"record\"\n"
    );
    let pipeline = load_str(
        &dir.join(format!("{name}.toml")),
        &source,
        &acoupi_components::registry(),
    )
    .map_err(|e| e.to_string())?;
    let store_path = &pipeline.settings.store_path;
    let _ = std::fs::remove_file(store_path);
    let store = Arc::new(DuckDbStore::open(store_path).map_err(|e| e.to_string())?);
    let options = ReprocessOptions {
        archive: archive.to_path_buf(),
        jobs,
        shard: None,
        time_format: None,
        stages: Vec::new(),
        retry_errors: false,
        plan: None,
    };
    let report = reprocess(
        &pipeline,
        store,
        Arc::new(WavProbe),
        &options,
        &mut NoProgress,
    )
    .map_err(|e| e.to_string())?;
    if let Some((path, reason)) = report.bad.first() {
        return Err(format!("{kind}: `{}` failed: {reason}", path.display()));
    }
    Ok(ReprocessBench {
        kind: kind.to_string(),
        jobs,
        files: report.analysed + report.filtered,
        audio_seconds: report.audio_seconds,
        wall_seconds: report.wall.as_secs_f64(),
        detections: report.detections,
    })
}

/// Writes the archive, then for each of `kinds` (all of [`BENCH_MODELS`] when empty)
/// reprocesses it with 1 job and with one per core; prints a table row per run.
pub fn bench_reprocess(
    kinds: &[String],
    files: usize,
    seconds: f64,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<Vec<ReprocessBench>, String> {
    let chosen = super::models::choose(BENCH_MODELS, kinds)?;
    let io = |e: std::io::Error| e.to_string();
    writeln!(
        out,
        "synthetic archive: {files} files × {seconds} s at {SAMPLERATE} Hz ({:.2} h)",
        files as f64 * seconds / 3600.0
    )
    .map_err(io)?;
    let archive = write_archive(dir, files, seconds)?;
    writeln!(
        out,
        "{:<20} {:>5} {:>7} {:>10} {:>11} {:>18}",
        "model", "jobs", "files", "wall s", "detections", "real-time factor"
    )
    .map_err(io)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut all = Vec::new();
    for (kind, keys) in chosen {
        let mut jobs = vec![1];
        if cores > 1 {
            jobs.push(cores);
        }
        for jobs in jobs {
            let bench = bench_run(kind, keys, &archive, jobs, dir)?;
            writeln!(
                out,
                "{:<20} {:>5} {:>7} {:>10.2} {:>11} {:>17.1}x",
                bench.kind,
                bench.jobs,
                bench.files,
                bench.wall_seconds,
                bench.detections,
                bench.realtime_factor()
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
    fn the_demo_model_over_a_small_archive_finds_every_chirp() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let results =
            bench_reprocess(&["model.band_energy".into()], 4, 4.0, dir.path(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("model.band_energy") && text.contains("real-time factor"),
            "{text}"
        );
        for bench in &results {
            assert_eq!((bench.files, bench.audio_seconds), (4, 16.0), "{text}");
            // Two chirps in each 4 s file.
            assert_eq!(bench.detections, 8, "{text}");
            assert!(bench.realtime_factor() > 0.0);
        }
        // The archive is the same bytes every time.
        let again = tempfile::tempdir().unwrap();
        let a = std::fs::read(
            write_archive(dir.path(), 1, 1.0)
                .unwrap()
                .join("site-0/20260621_000000.wav"),
        )
        .unwrap();
        let b = std::fs::read(
            write_archive(again.path(), 1, 1.0)
                .unwrap()
                .join("site-0/20260621_000000.wav"),
        )
        .unwrap();
        assert_eq!(a, b);
        assert!(
            bench_reprocess(
                &["model.nothing".into()],
                1,
                1.0,
                dir.path(),
                &mut Vec::new()
            )
            .unwrap_err()
            .contains("model.birdnet")
        );
    }
}

//! `acoupi bench memory`: a real station's resident memory over a soak. The station is
//! `acoupi run --for <soak>` in a child process — the BirdNET station (with its range
//! model) or the BatDetect2 station, generated in a folder of its own and replaying
//! generated audio at the model's rate, or a pipeline file of your own — and its
//! `/proc/<pid>/status` (VmRSS, RssAnon, RssFile, VmHWM) is read every few seconds.
//! Prints the samples, then start, steady, peak and end RSS and the growth over the soak
//! (the median RSS of the last quarter of the samples over that of the first),
//! and what the station stored (so a station that never analysed anything is not taken
//! for a small one).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acoupi_store_duckdb::{QueryFormat, query};
use clap::ValueEnum;

/// The generated stations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StationModel {
    /// `model.birdnet` with its range filter, 3 s at 48 kHz.
    Birdnet,
    /// `model.batdetect2`, 3 s at 256 kHz.
    Batdetect2,
}

impl StationModel {
    /// The model's usual input rate: the rate of the generated recordings.
    fn samplerate(self) -> u32 {
        match self {
            StationModel::Birdnet => 48_000,
            StationModel::Batdetect2 => 256_000,
        }
    }

    /// The `[components.model]` table (the bundled files, as a pipeline that names none).
    fn component(self) -> &'static str {
        match self {
            StationModel::Birdnet => {
                "type = \"model.birdnet\"\noverlap = 0.5\nmin_confidence = 0.25\n\
                 range_filter = { threshold = 0.03 }\n"
            }
            StationModel::Batdetect2 => "type = \"model.batdetect2\"\ndetection_threshold = 0.3\n",
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct MemoryBench {
    /// The station: generated for a model, or a pipeline file.
    pub station: Station,
    /// How long the station runs (its build included).
    pub soak: Duration,
    /// Time between two samples.
    pub interval: Duration,
    /// Where a generated station lives (its pipeline, audio, store and folders).
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub enum Station {
    Generated(StationModel),
    Pipeline(PathBuf),
}

/// One reading of `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub rss: u64,
    pub anon: u64,
    pub file: u64,
    pub hwm: u64,
}

/// The fields of a `/proc/<pid>/status` text (missing ones are 0).
pub fn parse_status(text: &str) -> Status {
    let mut status = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let kib = value
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .unwrap_or(0);
        match key {
            "VmRSS" => status.rss = kib,
            "RssAnon" => status.anon = kib,
            "RssFile" => status.file = kib,
            "VmHWM" => status.hwm = kib,
            _ => {}
        }
    }
    status
}

/// One sample: seconds since the station started, and its status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub seconds: f64,
    pub status: Status,
}

/// The figures of a soak, in KiB.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Samples before this many seconds are the warm-up (models loading, first runs).
    pub warm_up: f64,
    /// The first sample after the warm-up.
    pub start: u64,
    /// The median of the samples after the warm-up.
    pub steady: u64,
    /// The highest VmHWM seen (the peak, warm-up included).
    pub peak: u64,
    /// The last sample.
    pub end: u64,
    /// The median of the last quarter of the samples after the warm-up over that of the
    /// first quarter, in per cent (single samples swing with the model's runs).
    pub growth: f64,
}

/// The warm-up of a soak of `seconds`: a fifth of it, at most a minute.
pub fn warm_up(seconds: f64) -> f64 {
    (seconds / 5.0).min(60.0)
}

/// The summary of `samples` (in time order), or `None` when no sample follows the warm-up.
pub fn summarise(samples: &[Sample], warm_up: f64) -> Option<Summary> {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.seconds >= warm_up).collect();
    let start = after.first()?.status.rss;
    let end = after.last()?.status.rss;
    let mut rss: Vec<u64> = after.iter().map(|s| s.status.rss).collect();
    rss.sort_unstable();
    let steady = rss[rss.len() / 2];
    let peak = samples.iter().map(|s| s.status.hwm).max().unwrap_or(0);
    let quarter = (after.len() / 4).max(1);
    let median = |part: &[&Sample]| -> u64 {
        let mut rss: Vec<u64> = part.iter().map(|s| s.status.rss).collect();
        rss.sort_unstable();
        rss[rss.len() / 2]
    };
    let early = median(&after[..quarter]);
    let late = median(&after[after.len() - quarter..]);
    let growth = if early == 0 {
        0.0
    } else {
        (late as f64 - early as f64) / early as f64 * 100.0
    };
    Some(Summary {
        warm_up,
        start,
        steady,
        peak,
        end,
        growth,
    })
}

/// What the station stored, read from its store after it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    pub recordings: i64,
    pub outputs: i64,
    pub detections: i64,
}

/// The generated station's pipeline, in `dir`: record 3 s every 3 s (back to back, as a
/// continuous microphone would), analyse, keep what the model found, delete the rest.
fn station_pipeline(model: StationModel) -> String {
    let component = model.component();
    format!(
        "[deployment]\nname = \"bench-memory\"\nlatitude = 51.752\nlongitude = -1.2577\n\
         timezone = \"Europe/London\"\n\n\
         [store]\npath = \"station.duckdb\"\n\n\
         [paths]\ntemp = \"tmp\"\nrecordings = \"recordings\"\n\n\
         [components.replay]\ntype = \"recorder.replay\"\nfolder = \"audio\"\nloop = true\n\n\
         [components.model]\n{component}\n\
         [stages.record]\nkind = \"recording\"\nrecorder = \"replay\"\nschedule = {{ every = \"3s\" }}\n\n\
         [stages.detect]\nkind = \"detection\"\nafter = \"record\"\nmodel = \"model\"\n\
         cleaners = [{{ type = \"cleaner.threshold\", threshold = 0.25 }}]\n\
         messages = [{{ type = \"message.detections\", threshold = 0.5 }}]\n\n\
         [stages.manage]\nkind = \"management\"\nafter = \"detect\"\n\
         filters = [{{ type = \"filter.threshold\", threshold = 0.5 }}]\n\
         managers = [{{ type = \"manager.date_folders\", folders = \"{{year}}-{{month}}-{{day}}\" }}]\n\n\
         [stages.summary]\nkind = \"summary\"\n\
         summarisers = [{{ type = \"summariser.thresholds\", interval = \"1min\", low = 0.3, mid = 0.5, high = 0.8 }}]\n\
         schedule = {{ every = \"1min\" }}\n"
    )
}

/// Writes the generated station into `dir` (its pipeline and four 3 s recordings); returns
/// the pipeline file.
fn write_station(model: StationModel, dir: &Path) -> Result<PathBuf, String> {
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio)
        .map_err(|e| format!("cannot create `{}`: {e}", audio.display()))?;
    for i in 0..4 {
        super::models::write_chunk(
            &audio.join(format!("{i:02}.wav")),
            model.samplerate(),
            0x1234_5678 + i,
        )?;
    }
    let pipeline = dir.join("station.toml");
    std::fs::write(&pipeline, station_pipeline(model))
        .map_err(|e| format!("cannot write `{}`: {e}", pipeline.display()))?;
    Ok(pipeline)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One number from a query on `store`.
fn count(store: &Path, sql: &str) -> Result<i64, String> {
    let mut out = Vec::new();
    query(store, sql, QueryFormat::Json, &mut out).map_err(|e| e.to_string())?;
    let rows: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
    Ok(rows
        .get(0)
        .and_then(|row| row.as_object())
        .and_then(|row| row.values().next())
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0))
}

fn stored(store: &Path) -> Result<Stored, String> {
    Ok(Stored {
        recordings: count(store, "SELECT count(*) FROM recordings")?,
        outputs: count(store, "SELECT count(*) FROM model_outputs")?,
        detections: count(store, "SELECT count(*) FROM detections")?,
    })
}

/// The last lines of the station's log, for an error.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Runs the soak and writes the samples and the summary to `out`.
pub fn bench_memory(bench: &MemoryBench, out: &mut dyn Write) -> Result<Summary, String> {
    let io = |e: std::io::Error| e.to_string();
    let (pipeline, label) = match &bench.station {
        Station::Generated(model) => (
            write_station(*model, &bench.dir)?,
            format!(
                "generated {} station (3 s at {} Hz every 3 s)",
                model
                    .to_possible_value()
                    .map(|v| v.get_name().to_string())
                    .unwrap_or_default(),
                model.samplerate()
            ),
        ),
        Station::Pipeline(path) => (path.clone(), format!("pipeline {}", path.display())),
    };
    let store = acoupi_engine::config::load(&pipeline, &acoupi_components::registry())
        .map_err(|e| format!("`{}`: {e}", pipeline.display()))?
        .settings
        .store_path;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find acoupi itself: {e}"))?;
    let log_path = bench.dir.join("station.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create `{}`: {e}", log_path.display()))?;
    let soak_seconds = bench.soak.as_secs().max(1);
    writeln!(
        out,
        "{label}: {:.1} min, a sample every {:.0} s; the station's log: {}",
        soak_seconds as f64 / 60.0,
        bench.interval.as_secs_f64(),
        log_path.display()
    )
    .map_err(io)?;
    writeln!(
        out,
        "{:>9} {:>10} {:>10} {:>10} {:>10}",
        "seconds", "RSS MiB", "anon MiB", "file MiB", "peak MiB"
    )
    .map_err(io)?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["run", "--for"])
        .arg(format!("{soak_seconds}s"))
        .arg(&pipeline)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io)?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the station: {e}"))?;
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut samples = Vec::new();
    let mut next = Duration::ZERO;
    let exit = loop {
        if let Some(exit) = child.try_wait().map_err(io)? {
            break exit;
        }
        if started.elapsed() >= next {
            // Gone between the two calls: the next try_wait sees it.
            if let Ok(text) = std::fs::read_to_string(&status_path) {
                let sample = Sample {
                    seconds: started.elapsed().as_secs_f64(),
                    status: parse_status(&text),
                };
                // A zombie (exited, not yet waited for) has no VmRSS line.
                if sample.status.rss > 0 {
                    let s = sample.status;
                    writeln!(
                        out,
                        "{:>9.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                        sample.seconds,
                        mib(s.rss),
                        mib(s.anon),
                        mib(s.file),
                        mib(s.hwm)
                    )
                    .map_err(io)?;
                    samples.push(sample);
                }
            }
            next += bench.interval;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !exit.success() {
        return Err(format!(
            "the station stopped with {exit}; its log ends:\n{}",
            log_tail(&log_path)
        ));
    }
    let warm_up = warm_up(soak_seconds as f64);
    let summary = summarise(&samples, warm_up).ok_or_else(|| {
        format!(
            "no sample after the {warm_up:.0} s warm-up; its log ends:\n{}",
            log_tail(&log_path)
        )
    })?;
    let stored = stored(&store)?;
    writeln!(
        out,
        "stored: {} recordings, {} model outputs, {} detections",
        stored.recordings, stored.outputs, stored.detections
    )
    .map_err(io)?;
    if stored.outputs == 0 {
        return Err(format!(
            "the station analysed no recording; its log ends:\n{}",
            log_tail(&log_path)
        ));
    }
    writeln!(
        out,
        "start (after {:.0} s) {:.1} MiB, steady (median) {:.1} MiB, peak (VmHWM) {:.1} MiB, \
         end {:.1} MiB, growth {:+.1} % (median of the last quarter over the first)",
        summary.warm_up,
        mib(summary.start),
        mib(summary.steady),
        mib(summary.peak),
        mib(summary.end),
        summary.growth
    )
    .map_err(io)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib_and_this_process_has_them() {
        let text = "Name:\tacoupi\nVmHWM:\t  245760 kB\nVmRSS:\t  102400 kB\n\
                    RssAnon:\t   81920 kB\nRssFile:\t   20480 kB\nThreads:\t7\n";
        assert_eq!(
            parse_status(text),
            Status {
                rss: 102_400,
                anon: 81_920,
                file: 20_480,
                hwm: 245_760
            }
        );
        let own = parse_status(&std::fs::read_to_string("/proc/self/status").unwrap());
        assert!(own.rss > 0 && own.hwm >= own.rss && own.anon + own.file <= own.rss + 1024);
    }

    #[test]
    fn the_summary_skips_the_warm_up_and_takes_the_median_and_the_highest_peak() {
        let sample = |seconds: f64, rss: u64, hwm: u64| Sample {
            seconds,
            status: Status {
                rss,
                hwm,
                ..Status::default()
            },
        };
        let samples = [
            sample(0.0, 10, 10),
            sample(5.0, 300, 400),
            sample(10.0, 100, 400),
            sample(15.0, 104, 400),
            sample(20.0, 101, 400),
            sample(25.0, 105, 400),
        ];
        let summary = summarise(&samples, 10.0).unwrap();
        assert_eq!(
            (summary.start, summary.steady, summary.peak, summary.end),
            (100, 104, 400, 105)
        );
        assert!((summary.growth - 5.0).abs() < 1e-9, "{}", summary.growth);
        assert_eq!(summarise(&samples, 30.0), None);
        assert_eq!(warm_up(600.0), 60.0);
        assert_eq!(warm_up(20.0), 4.0);
    }

    #[test]
    fn the_generated_stations_are_valid_pipelines() {
        for model in [StationModel::Birdnet, StationModel::Batdetect2] {
            let dir = tempfile::tempdir().unwrap();
            let path = write_station(model, dir.path()).unwrap();
            let pipeline =
                acoupi_engine::config::load(&path, &acoupi_components::registry()).unwrap();
            assert_eq!(
                pipeline.settings.store_path,
                dir.path().join("station.duckdb")
            );
            assert_eq!(
                std::fs::read_dir(dir.path().join("audio")).unwrap().count(),
                4
            );
        }
    }
}

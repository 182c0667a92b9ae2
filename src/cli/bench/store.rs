//! `acoupi bench store`: a fixed workload on a fresh store file, timed step by step.
//!
//! The workload (issue #19's): N recordings, each with one model output of 5 detections
//! with 2 tags; N messages; unsent messages fetched in batches of 100 until none is
//! left, a SUCCESS response stored for each; 1,000 look-ups of a recording by path; the
//! same look-ups again once the store holds 100,000 recordings (the others added with one
//! `INSERT ... SELECT`), which must be as fast: a look-up seeks, it does not scan.
//! [`bench_with`] runs it with N = 2,000 ([`BenchSizes::default`]) or other sizes (the
//! tests run a small one).
//!
//! `--compare-acoupi PYTHON` runs the same workload on Python acoupi's SQLite stores
//! (`bench/acoupi_sqlite_store.py`, built into the binary) with that interpreter and
//! prints both side by side ([`compare_acoupi`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use acoupi_engine::config::pipeline::MessageOrder;
use acoupi_engine::data::{
    BoundingBox, Deployment, Detection, Message, MessageType, ModelOutput, PredictedTag,
    PredictionType, Recording, Response, ResponseStatus, Tag,
};
use acoupi_engine::store::{MessageStore, Store};
use acoupi_store_duckdb::{DuckDbStore, StoreError};
use chrono::{TimeDelta, TimeZone, Utc};

/// The sizes of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchSizes {
    pub recordings: usize,
    pub detections_per_output: usize,
    pub tags_per_detection: usize,
    pub messages: usize,
    /// Messages fetched per `get_unsent_messages` call.
    pub batch: usize,
    pub lookups: usize,
    /// Recordings in the store for the second round of look-ups.
    pub big: usize,
}

impl Default for BenchSizes {
    fn default() -> Self {
        BenchSizes {
            recordings: 2_000,
            detections_per_output: 5,
            tags_per_detection: 2,
            messages: 2_000,
            batch: 100,
            lookups: 1_000,
            big: 100_000,
        }
    }
}

impl BenchSizes {
    /// The default workload with the counts (recordings, messages, look-ups, the big
    /// store) multiplied by `factor` (at least 1 each), for quick checks.
    pub fn scaled(factor: f64) -> Self {
        let d = BenchSizes::default();
        let scale = |n: usize| ((n as f64 * factor).round() as usize).max(1);
        BenchSizes {
            recordings: scale(d.recordings),
            messages: scale(d.messages),
            lookups: scale(d.lookups),
            big: scale(d.big),
            ..d
        }
    }
}

/// One timed step.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchStep {
    pub name: &'static str,
    pub operations: usize,
    pub elapsed: Duration,
}

impl BenchStep {
    pub fn per_second(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What [`bench_with`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub steps: Vec<BenchStep>,
    /// The store file and its write-ahead log after the store was closed.
    pub file_bytes: u64,
}

/// Runs the workload of `sizes` in a new file `bench.duckdb` under `dir` (which must not
/// exist) and prints the operations per second of each step and the final file size.
pub fn bench_with(
    dir: &Path,
    sizes: &BenchSizes,
    out: &mut dyn Write,
) -> Result<BenchReport, StoreError> {
    let path = dir.join("bench.duckdb");
    if path.exists() {
        return Err(StoreError::Open {
            path,
            reason: "the benchmark writes a new file; remove this one or pick another folder"
                .into(),
        });
    }
    let print = |out: &mut dyn Write, line: String| {
        writeln!(out, "{line}")
            .map_err(|e| StoreError::Database(format!("writing the benchmark report: {e}")))
    };
    print(
        out,
        format!(
            "store bench: {} recordings × 1 model output × {} detections × {} tags, {} messages, \
             batches of {}, {} look-ups, then again in a store of {} recordings; file {}",
            sizes.recordings,
            sizes.detections_per_output,
            sizes.tags_per_detection,
            sizes.messages,
            sizes.batch,
            sizes.lookups,
            sizes.big.max(sizes.recordings),
            path.display()
        ),
    )?;
    let store = DuckDbStore::open(&path)?;
    let mut steps = Vec::new();
    let mut report = |out: &mut dyn Write, step: BenchStep| {
        let line = format!(
            "{:<28} {:>8} ops {:>9.3} s {:>10.0} ops/s",
            step.name,
            step.operations,
            step.elapsed.as_secs_f64(),
            step.per_second()
        );
        steps.push(step);
        print(out, line)
    };

    let start = Utc
        .with_ymd_and_hms(2026, 5, 1, 4, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let deployment = Deployment {
        started_on: start,
        ..Deployment::new("bench")
    };
    store.store_deployment(&deployment)?;
    let recordings: Vec<Recording> = (0..sizes.recordings)
        .map(|i| recording(&deployment, dir, i, start))
        .collect::<Result<_, _>>()?;

    let timer = Instant::now();
    for recording in &recordings {
        store.store_recording(recording)?;
    }
    report(
        out,
        BenchStep {
            name: "store_recording",
            operations: recordings.len(),
            elapsed: timer.elapsed(),
        },
    )?;

    let outputs: Vec<ModelOutput> = recordings
        .iter()
        .map(|r| output(r, sizes))
        .collect::<Result<_, _>>()?;
    let timer = Instant::now();
    for output in &outputs {
        store.store_model_output(output)?;
    }
    report(
        out,
        BenchStep {
            name: "store_model_output",
            operations: outputs.len(),
            elapsed: timer.elapsed(),
        },
    )?;

    let messages: Vec<Message> = (0..sizes.messages)
        .map(|i| Message {
            created_on: start + TimeDelta::milliseconds(i64::try_from(i).unwrap_or(i64::MAX) * 100),
            ..Message::new(format!(
                r#"{{"recording":"{}","species":"Turdus merula","score":0.9,"n":{i}}}"#,
                uuid::Uuid::new_v4()
            ))
            .with_type(MessageType::Detection)
        })
        .collect();
    let timer = Instant::now();
    for message in &messages {
        store.store_message(message)?;
    }
    report(
        out,
        BenchStep {
            name: "store_message",
            operations: messages.len(),
            elapsed: timer.elapsed(),
        },
    )?;

    let (mut fetching, mut responding) = (Duration::ZERO, Duration::ZERO);
    let (mut batches, mut responses) = (0, 0);
    loop {
        let timer = Instant::now();
        let unsent = store.get_unsent_messages(sizes.batch, MessageOrder::OldestFirst)?;
        fetching += timer.elapsed();
        batches += 1;
        if unsent.is_empty() {
            break;
        }
        if responses + unsent.len() > sizes.messages {
            return Err(StoreError::Invalid(format!(
                "bench: more unsent messages than stored ({} after {responses} responses)",
                unsent.len()
            )));
        }
        let timer = Instant::now();
        for message in unsent {
            store.store_response(&Response::new(ResponseStatus::Success, message))?;
            responses += 1;
        }
        responding += timer.elapsed();
    }
    report(
        out,
        BenchStep {
            name: "get_unsent_messages",
            operations: batches,
            elapsed: fetching,
        },
    )?;
    report(
        out,
        BenchStep {
            name: "store_response",
            operations: responses,
            elapsed: responding,
        },
    )?;

    let lookups = if recordings.is_empty() {
        0
    } else {
        sizes.lookups
    };
    let elapsed = look_up(&store, &recordings, lookups)?;
    report(
        out,
        BenchStep {
            name: "get_recordings_by_path",
            operations: lookups,
            elapsed,
        },
    )?;

    // The same look-ups in a big store: the other recordings added in one statement.
    drop(store);
    add_recordings(&path, sizes.big.saturating_sub(sizes.recordings))?;
    let store = DuckDbStore::open(&path)?;
    let elapsed = look_up(&store, &recordings, lookups)?;
    report(
        out,
        BenchStep {
            name: "get_recordings_by_path_big",
            operations: lookups,
            elapsed,
        },
    )?;

    drop(store);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = path.with_file_name("bench.duckdb.wal");
    let file_bytes = size(&path) + size(&wal);
    print(
        out,
        format!(
            "file size: {:.1} MiB ({} bytes; write-ahead log {} bytes)",
            file_bytes as f64 / (1024.0 * 1024.0),
            file_bytes,
            size(&wal)
        ),
    )?;
    Ok(BenchReport { steps, file_bytes })
}

/// The workload on Python acoupi's stores, run by [`compare_acoupi`].
const ACOUPI_SCRIPT: &str = include_str!("../../../bench/acoupi_sqlite_store.py");

/// The steps of the workload, in order (the script reports the same names).
const STEPS: [&str; 7] = [
    "store_recording",
    "store_model_output",
    "store_message",
    "get_unsent_messages",
    "store_response",
    "get_recordings_by_path",
    "get_recordings_by_path_big",
];

/// Runs the workload of `sizes` on Python acoupi's SQLite stores (`SqliteStore`,
/// `SqliteMessageStore`) with the interpreter `python`, in a new folder `acoupi/` under
/// `dir`, and prints each step's rate beside ours (`ours`, measured in the same session)
/// with the ratio. Errors when `acoupi` does not import there or the script fails.
pub fn compare_acoupi(
    python: &Path,
    dir: &Path,
    sizes: &BenchSizes,
    ours: &BenchReport,
    out: &mut dyn Write,
) -> Result<Vec<BenchStep>, StoreError> {
    let failed = |what: String| StoreError::Invalid(format!("--compare-acoupi: {what}"));
    let script = dir.join("acoupi_sqlite_store.py");
    std::fs::write(&script, ACOUPI_SCRIPT)
        .map_err(|e| failed(format!("writing `{}`: {e}", script.display())))?;
    let output = Command::new(python)
        .arg(&script)
        .arg("--dir")
        .arg(dir.join("acoupi"))
        .args(
            [
                ("--recordings", sizes.recordings),
                ("--detections", sizes.detections_per_output),
                ("--tags", sizes.tags_per_detection),
                ("--messages", sizes.messages),
                ("--batch", sizes.batch),
                ("--lookups", sizes.lookups),
                ("--big", sizes.big),
            ]
            .iter()
            .flat_map(|(flag, n)| [flag.to_string(), n.to_string()]),
        )
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| failed(format!("cannot run `{}`: {e}", python.display())))?;
    if !output.status.success() {
        return Err(failed(format!(
            "`{} {}` failed ({}); does `import acoupi` work with that interpreter?",
            python.display(),
            script.display(),
            output.status
        )));
    }
    let mut steps = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let step: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| failed(format!("the script printed `{line}`: {e}")))?;
        let name = step["step"].as_str().unwrap_or_default();
        let (Some(name), Some(operations), Some(seconds)) = (
            STEPS.iter().find(|s| **s == name),
            step["operations"].as_u64(),
            step["seconds"]
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0),
        ) else {
            return Err(failed(format!("the script printed `{line}`")));
        };
        steps.push(BenchStep {
            name,
            operations: usize::try_from(operations).unwrap_or(usize::MAX),
            elapsed: Duration::from_secs_f64(seconds),
        });
    }
    let print = |out: &mut dyn Write, line: String| {
        writeln!(out, "{line}")
            .map_err(|e| StoreError::Database(format!("writing the benchmark report: {e}")))
    };
    print(out, String::new())?;
    print(
        out,
        format!(
            "{:<28} {:>16} {:>16} {:>8}",
            "step", "acoupi (SQLite)", "acoupi-rs", "ratio"
        ),
    )?;
    for name in STEPS {
        let rate = |steps: &[BenchStep]| {
            steps
                .iter()
                .find(|s| s.name == name)
                .map(BenchStep::per_second)
        };
        let (theirs, mine) = (rate(&steps), rate(&ours.steps));
        let show = |rate: Option<f64>| rate.map_or("-".to_owned(), |r| format!("{r:.0} /s"));
        let ratio = match (theirs, mine) {
            (Some(t), Some(m)) if t > 0.0 => format!("{:.1}×", m / t),
            _ => "-".to_owned(),
        };
        print(
            out,
            format!(
                "{name:<28} {:>16} {:>16} {ratio:>8}",
                show(theirs),
                show(mine)
            ),
        )?;
    }
    Ok(steps)
}

/// `count` look-ups by path: a fixed walk through the recordings (a prime stride, so it
/// spreads); each must find its recording and its one model output.
fn look_up(
    store: &DuckDbStore,
    recordings: &[Recording],
    count: usize,
) -> Result<Duration, StoreError> {
    let timer = Instant::now();
    for n in 0..count {
        let recording = &recordings[(n * 7_919) % recordings.len()];
        let path: PathBuf = recording.path.clone().unwrap_or_default();
        let found = store.get_recordings_by_path(std::slice::from_ref(&path))?;
        if found.len() != 1 || found[0].1.len() != 1 {
            return Err(StoreError::Invalid(format!(
                "bench: looking up `{}` found {} recordings",
                path.display(),
                found.len()
            )));
        }
    }
    Ok(timer.elapsed())
}

/// Adds `count` recordings (on the store's deployment, paths under `filler/`) to the
/// closed store file at `path`, in one statement.
fn add_recordings(path: &Path, count: usize) -> Result<(), StoreError> {
    if count == 0 {
        return Ok(());
    }
    let database = |e: duckdb::Error| StoreError::Database(format!("bench: {e}"));
    let conn = duckdb::Connection::open(path).map_err(database)?;
    conn.execute(
        "INSERT INTO recordings (id, deployment_id, created_on, duration, samplerate, \
         audio_channels, time_expansion, path) \
         SELECT gen_random_uuid(), (SELECT id FROM deployments LIMIT 1), \
         TIMESTAMPTZ '2020-01-01 00:00:00+00' + to_seconds(i), 3.0, 48000, 1, 1.0, \
         'filler/rec-' || i || '.wav' FROM range(?) t(i)",
        [i64::try_from(count).unwrap_or(i64::MAX)],
    )
    .map_err(database)?;
    Ok(())
}

fn recording(
    deployment: &Deployment,
    dir: &Path,
    i: usize,
    start: chrono::DateTime<Utc>,
) -> Result<Recording, StoreError> {
    let invalid = |e: acoupi_engine::data::DataError| StoreError::Invalid(format!("bench: {e}"));
    let mut recording = Recording::new(deployment.clone(), 3.0, 48_000).map_err(invalid)?;
    recording.created_on = start + TimeDelta::seconds(i64::try_from(i).unwrap_or(i64::MAX) * 10);
    Ok(recording.with_path(dir.join("audio").join(format!("rec-{i:06}.wav"))))
}

fn output(recording: &Recording, sizes: &BenchSizes) -> Result<ModelOutput, StoreError> {
    let invalid = |e: acoupi_engine::data::DataError| StoreError::Invalid(format!("bench: {e}"));
    let species = [
        "Turdus merula",
        "Erithacus rubecula",
        "Parus major",
        "Fringilla coelebs",
    ];
    let detections = (0..sizes.detections_per_output)
        .map(|d| {
            let start = d as f64 * 0.5;
            let mut detection = Detection::new(PredictionType::Event)
                .with_location(
                    BoundingBox::new(start, 1_000.0, start + 0.4, 8_000.0).map_err(invalid)?,
                )
                .with_score(0.5 + 0.05 * (d % 10) as f64)
                .map_err(invalid)?;
            for t in 0..sizes.tags_per_detection {
                let tag = Tag::new("species", species[(d + t) % species.len()]);
                detection = detection
                    .with_tag(PredictedTag::new(tag, 0.9 - 0.1 * (t % 9) as f64).map_err(invalid)?);
            }
            Ok(detection)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut output = ModelOutput::new("bench_model", recording.clone(), detections);
    output.created_on = recording.created_on + TimeDelta::seconds(4);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one number `sql` selects from the store file at `path`.
    fn count(path: &Path, sql: &str) -> i64 {
        let mut out = Vec::new();
        acoupi_store_duckdb::query(path, sql, acoupi_store_duckdb::QueryFormat::Csv, &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        text.lines().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn a_small_benchmark_runs() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = BenchSizes {
            recordings: 20,
            messages: 250,
            batch: 100,
            lookups: 15,
            big: 2_000,
            ..BenchSizes::default()
        };
        let mut out = Vec::new();
        let report = bench_with(dir.path(), &sizes, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let steps: Vec<(&str, usize)> = report
            .steps
            .iter()
            .map(|s| (s.name, s.operations))
            .collect();
        assert_eq!(
            steps,
            [
                ("store_recording", 20),
                ("store_model_output", 20),
                ("store_message", 250),
                ("get_unsent_messages", 4),
                ("store_response", 250),
                ("get_recordings_by_path", 15),
                ("get_recordings_by_path_big", 15),
            ]
        );
        assert!(report.file_bytes > 0);
        assert_eq!(
            text.lines().filter(|l| l.ends_with("ops/s")).count(),
            7,
            "{text}"
        );
        assert!(
            text.lines().last().unwrap().starts_with("file size: "),
            "{text}"
        );
        let store = dir.path().join("bench.duckdb");
        assert_eq!(
            count(&store, "SELECT count(*) FROM detection_tags"),
            20 * 5 * 2
        );
        assert_eq!(
            count(&store, "SELECT count(*) FROM message_status WHERE sent"),
            250
        );
        assert_eq!(count(&store, "SELECT count(*) FROM recordings"), 2_000);

        // Python acoupi's figures beside ours: a stand-in interpreter that prints what
        // the workload script prints (the real one needs acoupi installed).
        let fake = dir.path().join("fake-python");
        let lines: String = STEPS
            .iter()
            .map(|s| {
                format!(r#"echo '{{"step": "{s}", "operations": 10, "seconds": 0.5}}'"#) + "\n"
            })
            .collect();
        std::fs::write(&fake, format!("#!/bin/sh\n{lines}")).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut table = Vec::new();
        let theirs = compare_acoupi(&fake, dir.path(), &sizes, &report, &mut table).unwrap();
        assert_eq!(theirs.len(), 7);
        assert!(theirs.iter().all(|s| s.per_second() == 20.0));
        let table = String::from_utf8(table).unwrap();
        let recording_line = table
            .lines()
            .find(|l| l.starts_with("store_recording"))
            .unwrap();
        assert!(recording_line.contains(" 20 /s"), "{table}");
        assert!(recording_line.ends_with('×'), "{table}");
        // An interpreter that fails is an error, not an empty table.
        assert!(
            compare_acoupi(
                Path::new("/bin/false"),
                dir.path(),
                &sizes,
                &report,
                &mut Vec::new()
            )
            .is_err()
        );
        // It never overwrites a file.
        assert!(matches!(
            bench_with(dir.path(), &sizes, &mut Vec::new()),
            Err(StoreError::Open { .. })
        ));
    }

    /// The full `acoupi bench store` workload (minutes in a debug build):
    /// `cargo test --bin acoupi cli::bench::store::tests::full_benchmark -- --ignored --nocapture`.
    #[test]
    #[ignore = "the full benchmark takes minutes"]
    fn full_benchmark() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = std::io::stdout();
        bench_with(dir.path(), &BenchSizes::default(), &mut out).unwrap();
    }
}

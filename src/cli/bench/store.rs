//! `acoupi bench store`: a fixed workload on a fresh store file, timed step by step.
//!
//! The workload: N recordings, each with one model output of 5 detections with 2 tags;
//! N messages; unsent messages fetched in batches of 100 until none is left, a SUCCESS
//! response stored for each; 1,000 look-ups of a recording by path. [`bench_with`] runs
//! it with N = 10,000 ([`BenchSizes::default`]) or other sizes (the tests run a small one).

use std::io::Write;
use std::path::{Path, PathBuf};
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
}

impl Default for BenchSizes {
    fn default() -> Self {
        BenchSizes {
            recordings: 10_000,
            detections_per_output: 5,
            tags_per_detection: 2,
            messages: 10_000,
            batch: 100,
            lookups: 1_000,
        }
    }
}

impl BenchSizes {
    /// The default workload with the counts (recordings, messages, look-ups) multiplied
    /// by `factor` (at least 1 each), for quick checks.
    pub fn scaled(factor: f64) -> Self {
        let d = BenchSizes::default();
        let scale = |n: usize| ((n as f64 * factor).round() as usize).max(1);
        BenchSizes {
            recordings: scale(d.recordings),
            messages: scale(d.messages),
            lookups: scale(d.lookups),
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
             batches of {}, {} look-ups; file {}",
            sizes.recordings,
            sizes.detections_per_output,
            sizes.tags_per_detection,
            sizes.messages,
            sizes.batch,
            sizes.lookups,
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
    let timer = Instant::now();
    for n in 0..lookups {
        // A fixed walk through the recordings (a prime stride, so it spreads).
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
    report(
        out,
        BenchStep {
            name: "get_recordings_by_path",
            operations: lookups,
            elapsed: timer.elapsed(),
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
            ]
        );
        assert!(report.file_bytes > 0);
        assert_eq!(
            text.lines().filter(|l| l.ends_with("ops/s")).count(),
            6,
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

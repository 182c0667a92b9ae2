//! `acoupi bench serve`: the dashboard's latency and memory on a big store.
//!
//! **Fill** ([`fill`]): a store `bench-serve.duckdb` in the bench folder with N detections
//! (1,000,000 by default) over the year before the fill: one deployment, recordings every
//! `365 days / (N / 4)` (about 2 minutes at full size), one in five of 10 s and the others
//! of 3 s, each with one `birdnet` model output; detections spread over the recordings,
//! each with one `species` tag drawn from 20 species with a Zipf-like skew (the commonest
//! about a third of all detections, the rarest a few hundred), confidences between 0.1
//! and 1. The rows are written by a few `INSERT ... SELECT FROM range(...)` statements
//! through the store's own schema (seconds, not hours through the `Store` trait). The
//! recordings' paths point at six WAV files in `audio/` (three of 3 s, three of 10 s,
//! 48 kHz, tones and chirps) shared by all recordings, so media endpoints read real files.
//! Some stage runs and heartbeat metrics of the last day are added for the station page.
//! No reviews yet: the `reviews` table is not in this store's schema version.
//! A store already there with N detections is reused (`--dir`); one with another count
//! is refused.
//!
//! **Measure** ([`measure`]): in a process that has only opened the store (after a fill
//! the command runs itself again, so the fill's memory does not hide the dashboard's),
//! the dashboard is served in-process on 127.0.0.1:0 (`Served::File`, read-only) and each
//! URL of [`urls`] is requested `warm_ups` times then `requests` times, one at a time, over
//! a new connection each (`Connection: close`, the whole body read): p50 and p95 in ms
//! and the status codes. A URL that answers only 404 is reported as "not built" (a page
//! not merged yet), anything else but 2xx as an error (and a non-zero exit). The
//! spectrogram is asked with a different `width` each time, so no answer comes from the
//! cache. RSS (VmRSS) is read once the store is open (before the bench picks its ids, so
//! what those two queries keep counts against the dashboard) and after the run, and the
//! peak (VmHWM); the goal (≤ 30 MB) is judged on the RSS after the run. The fill ends with
//! a CHECKPOINT, so opening the store replays no write-ahead log.
//!
//! Goals (issue #20): p95 ≤ 150 ms for every page and API call, ≤ 100 ms for the
//! spectrogram of a 10 s recording; the audio is timed but has no goal (its time is
//! the file's size over loopback).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use acoupi_engine::data::Deployment;
use acoupi_engine::store::Store;
use acoupi_store_duckdb::DuckDbStore;
use chrono::{TimeDelta, Utc};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;

use super::memory;

/// The store's file name in the bench folder.
pub const STORE_FILE: &str = "bench-serve.duckdb";

/// The deployment every bench recording belongs to.
const DEPLOYMENT: &str = "bench serve";

/// The species, commonest first (weights fall as 1 / rank^1.1).
const SPECIES: [&str; 20] = [
    "Parus major",
    "Turdus merula",
    "Erithacus rubecula",
    "Fringilla coelebs",
    "Cyanistes caeruleus",
    "Troglodytes troglodytes",
    "Phylloscopus collybita",
    "Sylvia atricapilla",
    "Columba palumbus",
    "Corvus corone",
    "Pica pica",
    "Sturnus vulgaris",
    "Dendrocopos major",
    "Sitta europaea",
    "Certhia familiaris",
    "Regulus regulus",
    "Aegithalos caudatus",
    "Garrulus glandarius",
    "Strix aluco",
    "Picus viridis",
];

/// The WAV files the recordings share: (name, seconds).
const CLIPS: [(&str, f64); 6] = [
    ("clip-3s-a.wav", 3.0),
    ("clip-3s-b.wav", 3.0),
    ("clip-3s-c.wav", 3.0),
    ("clip-10s-a.wav", 10.0),
    ("clip-10s-b.wav", 10.0),
    ("clip-10s-c.wav", 10.0),
];

const SAMPLERATE: u32 = 48_000;

/// What the fill wrote (or found).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    pub recordings: i64,
    pub detections: i64,
}

/// The number of detections in the bench store at `path`, or `None` when it has none
/// (a new file, or a fill that did not finish).
fn detections_in(store: &DuckDbStore) -> Result<Option<i64>, String> {
    let conn = store.reader().map_err(|e| e.to_string())?;
    let n: i64 = conn
        .query_row("SELECT count(*) FROM detections", [], |row| row.get(0))
        .map_err(|e| format!("counting detections: {e}"))?;
    Ok((n > 0).then_some(n))
}

/// Whether the bench store at `path` already holds `detections` detections; `Ok(false)`
/// when it is missing or empty; an error when it holds another count.
pub fn is_filled(path: &Path, detections: usize) -> Result<bool, String> {
    if !path.exists() {
        return Ok(false);
    }
    let store = DuckDbStore::open(path).map_err(|e| e.to_string())?;
    match detections_in(&store)? {
        None => Ok(false),
        Some(n) if usize::try_from(n).ok() == Some(detections) => Ok(true),
        Some(n) => Err(format!(
            "`{}` holds {n} detections, not {detections}: remove it or pick another --dir",
            path.display()
        )),
    }
}

/// Fills a new (or empty) bench store in `dir` with `detections` detections; see the
/// module docs.
pub fn fill(dir: &Path, detections: usize) -> Result<Filled, String> {
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio)
        .map_err(|e| format!("cannot create `{}`: {e}", audio.display()))?;
    for (i, (name, seconds)) in CLIPS.iter().enumerate() {
        write_clip(&audio.join(name), *seconds, i)?;
    }
    let store = DuckDbStore::open(&dir.join(STORE_FILE)).map_err(|e| e.to_string())?;
    let end = Utc::now();
    let start = end - TimeDelta::days(365);
    let deployment = Deployment {
        started_on: start,
        ..Deployment::new(DEPLOYMENT)
    };
    store
        .store_deployment(&deployment)
        .map_err(|e| e.to_string())?;
    let n = i64::try_from(detections).map_err(|e| e.to_string())?;
    let recordings = (n / 4).max(1);
    let step_us = 365 * 86_400 * 1_000_000 / recordings;
    let start_us = start.timestamp_micros();
    let deployment_id = deployment.id.to_string();
    let clip = |i: usize| audio.join(CLIPS[i].0).to_string_lossy().replace('\'', "''");
    // Weights 1 / rank^1.1 as cumulative bounds in [0, 1).
    let weights: Vec<f64> = (1..=SPECIES.len())
        .map(|r| 1.0 / (r as f64).powf(1.1))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = 0.0;
    let species_case: String = SPECIES
        .iter()
        .zip(&weights)
        .map(|(name, w)| {
            cumulative += w / total;
            format!("WHEN u < {cumulative:.6} THEN '{name}' ")
        })
        .collect();
    let sql = format!(
        "BEGIN;
CREATE TEMP TABLE bench_rec AS
SELECT i, gen_random_uuid() AS rec_id, gen_random_uuid() AS mo_id,
       (TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_microseconds({start_us}::BIGINT + i * {step_us})) AS created_on,
       CASE WHEN i % 5 = 0 THEN 10.0 ELSE 3.0 END AS duration,
       i % 3 AS variant
FROM range({recordings}) t(i);
INSERT INTO recordings (id, deployment_id, created_on, duration, samplerate, audio_channels,
                        time_expansion, path, gaps, lost_frames)
SELECT rec_id, '{deployment_id}', created_on, duration, {SAMPLERATE}, 1, 1.0,
       CASE WHEN duration = 10.0 THEN (CASE variant WHEN 0 THEN '{c3}' WHEN 1 THEN '{c4}' ELSE '{c5}' END)
            ELSE (CASE variant WHEN 0 THEN '{c0}' WHEN 1 THEN '{c1}' ELSE '{c2}' END) END,
       0, 0
FROM bench_rec;
INSERT INTO model_outputs (id, recording_id, name_model, created_on)
SELECT mo_id, rec_id, 'birdnet', created_on + to_seconds(duration + 1)
FROM bench_rec;
CREATE TEMP TABLE bench_det AS
SELECT gen_random_uuid() AS det_id, r.mo_id, r.duration,
       (hash(j) % 1000000) / 1000000.0 AS u,
       (hash(j + {n}) % 1000000) / 1000000.0 AS v,
       (hash(j + 2 * {n}) % 1000000) / 1000000.0 AS w
FROM range({n}) t(j) JOIN bench_rec r ON r.i = j * {recordings} // {n};
INSERT INTO detections (id, model_output_id, prediction_type, start_time, low_freq, end_time,
                        high_freq, detection_score)
SELECT det_id, mo_id, 'event',
       round(v * (duration - 1.5), 3), round(1000 + w * 4000),
       round(v * (duration - 1.5) + 0.5 + w, 3), round(2000 + w * 9000),
       round(0.1 + 0.9 * ((v + w) / 2), 4)
FROM bench_det;
INSERT INTO detection_tags (detection_id, key, value, confidence_score)
SELECT det_id, 'species', CASE {species_case}ELSE '{last}' END,
       round(0.1 + 0.9 * ((v + w) / 2), 4)
FROM bench_det;
INSERT INTO stage_runs (stage, kind, started_on, finished_on, outcome)
SELECT s.stage, s.kind, (TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_microseconds({end_us}::BIGINT - i * 120000000)),
       (TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_microseconds({end_us}::BIGINT - i * 120000000 + s.ms * 1000)), s.outcome
FROM range(720) t(i),
     (VALUES ('record', 'recording', 3000, 'recorded 3 s'),
             ('detect', 'detection', 900, '4 detections'),
             ('send', 'messaging', 40, '4 messages sent')) s(stage, kind, ms, outcome);
INSERT INTO metrics (name, value, unit, captured_on)
SELECT m.name, m.base + (hash(i) % 100) / 10.0, m.unit,
       (TIMESTAMPTZ '1970-01-01 00:00:00+00' + to_microseconds({end_us}::BIGINT - i * 600000000))
FROM range(144) t(i),
     (VALUES ('cpu_percent', 20.0, '%'), ('memory_rss', 90.0, 'MiB'),
             ('disk_free', 12000.0, 'MiB')) m(name, base, unit);
DROP TABLE bench_det;
DROP TABLE bench_rec;
COMMIT;
CHECKPOINT;",
        c0 = clip(0),
        c1 = clip(1),
        c2 = clip(2),
        c3 = clip(3),
        c4 = clip(4),
        c5 = clip(5),
        last = SPECIES[SPECIES.len() - 1],
        end_us = end.timestamp_micros(),
    );
    let conn = store.reader().map_err(|e| e.to_string())?;
    conn.execute_batch(&sql)
        .map_err(|e| format!("filling the bench store: {e}"))?;
    let detections = detections_in(&store)?.unwrap_or(0);
    let recordings: i64 = conn
        .query_row("SELECT count(*) FROM recordings", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    Ok(Filled {
        recordings,
        detections,
    })
}

/// A mono 16-bit WAV of `seconds`: a tone and a rising chirp every second (`variant`
/// shifts their frequencies), deterministic.
fn write_clip(path: &Path, seconds: f64, variant: usize) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLERATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let error = |e: hound::Error| format!("writing `{}`: {e}", path.display());
    let mut writer = hound::WavWriter::create(path, spec).map_err(error)?;
    let rate = f64::from(SAMPLERATE);
    let base = 2_000.0 + 500.0 * variant as f64;
    for i in 0..(seconds * rate) as usize {
        let t = i as f64 / rate;
        let phase = t.fract();
        let chirp = if phase < 0.3 {
            // 3 kHz → 8 kHz over 0.3 s.
            let f = 3_000.0 + base / 2.0;
            (2.0 * std::f64::consts::PI * (f * phase + 8_333.0 * phase * phase)).sin()
        } else {
            0.0
        };
        let tone = (2.0 * std::f64::consts::PI * base * t).sin();
        let sample = 0.25 * tone + 0.5 * chirp;
        writer
            .write_sample((sample * f64::from(i16::MAX)) as i16)
            .map_err(error)?;
    }
    writer.finalize().map_err(error)
}

/// One URL to time.
#[derive(Debug, Clone)]
pub struct Target {
    pub label: &'static str,
    /// `Page`, `Api` or `Media` (the table's "kind").
    pub kind: &'static str,
    pub path: String,
    /// Extra request header lines (`Range: ...`).
    pub header: Option<&'static str>,
    /// p95 goal in ms; `None`: timed, no goal.
    pub goal_ms: Option<f64>,
    /// Ask with `&width=<n>` changing each time (no cached answer).
    pub vary_width: bool,
}

/// The ids and names the URLs need, picked from the store.
struct Picks {
    species: String,
    recording_id: String,
    detection_id: String,
    date: String,
}

fn pick(store: &DuckDbStore) -> Result<Picks, String> {
    let conn = store.reader().map_err(|e| e.to_string())?;
    let error = |e: duckdb::Error| format!("picking ids from the bench store: {e}");
    // A species in the middle of the list, a 10 s recording with detections (the latest).
    let species: String = conn
        .query_row(
            "SELECT value FROM detection_tags WHERE key = 'species' \
             GROUP BY value ORDER BY count(*) DESC, value LIMIT 1 OFFSET 5",
            [],
            |row| row.get(0),
        )
        .map_err(error)?;
    let (recording_id, detection_id, date): (String, String, String) = conn
        .query_row(
            "SELECT r.id::VARCHAR, det.id::VARCHAR, strftime(r.created_on AT TIME ZONE 'UTC', '%Y-%m-%d') \
             FROM recordings r JOIN model_outputs mo ON mo.recording_id = r.id \
             JOIN detections det ON det.model_output_id = mo.id \
             WHERE r.duration = 10.0 ORDER BY r.created_on DESC, det.id LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .map_err(error)?;
    Ok(Picks {
        species,
        recording_id,
        detection_id,
        date,
    })
}

/// Percent-encodes a path segment or query value (unreserved characters kept).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every page and API URL the bench times, in the table's order.
fn urls(p: &Picks) -> Vec<Target> {
    let page = |label, path: String| Target {
        label,
        kind: "page",
        path,
        header: None,
        goal_ms: Some(150.0),
        vary_width: false,
    };
    let api = |label, path: String| Target {
        kind: "api",
        ..page(label, path)
    };
    let species = encode(&p.species);
    let (rec, det) = (&p.recording_id, &p.detection_id);
    vec![
        page("today", "/".into()),
        page("detections", "/detections".into()),
        page(
            "detections (species)",
            format!("/detections?species={species}"),
        ),
        page("species", format!("/species/{species}")),
        page("recording", format!("/recordings/{rec}")),
        page("station", "/station".into()),
        page("analytics", "/analytics".into()),
        api(
            "api species/daily",
            format!("/api/v1/species/daily?date={}", p.date),
        ),
        api("api detections", "/api/v1/detections?limit=50".into()),
        api("api detection", format!("/api/v1/detections/{det}")),
        api("api recording", format!("/api/v1/recordings/{rec}")),
        Target {
            kind: "media",
            header: Some("Range: bytes=0-"),
            goal_ms: None,
            ..api(
                "api audio (Range)",
                format!("/api/v1/recordings/{rec}/audio"),
            )
        },
        Target {
            kind: "media",
            goal_ms: Some(100.0),
            vary_width: true,
            ..api(
                "api spectrogram 10 s",
                format!("/api/v1/recordings/{rec}/spectrogram.png?height=256"),
            )
        },
        api("api status", "/api/v1/status".into()),
        api("metrics", "/metrics".into()),
    ]
}

/// One GET over a new connection; the status code (0: no answer) and the time until the
/// whole answer was read.
fn get(addr: SocketAddr, path: &str, header: Option<&str>) -> (u16, Duration) {
    let timer = Instant::now();
    let answer = (|| -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let extra = header.map(|h| format!("{h}\r\n")).unwrap_or_default();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n"
        )?;
        let mut body = Vec::new();
        stream.read_to_end(&mut body)?;
        let status = body
            .split(|&b| b == b' ')
            .nth(1)
            .and_then(|code| std::str::from_utf8(code).ok())
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Ok(status)
    })();
    (answer.unwrap_or(0), timer.elapsed())
}

/// What one URL did.
#[derive(Debug, Clone)]
pub struct Measured {
    pub target: Target,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Distinct status codes, sorted.
    pub statuses: Vec<u16>,
}

/// How a URL's answers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// Timed, no goal.
    NoGoal,
    /// Only 404: the page or endpoint is not built.
    NotBuilt,
    /// Anything else but 2xx.
    Error,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::NoGoal => "-",
            Verdict::NotBuilt => "not built (404)",
            Verdict::Error => "ERROR",
        }
    }
}

impl Measured {
    pub fn verdict(&self) -> Verdict {
        if self.statuses == [404] {
            Verdict::NotBuilt
        } else if self.statuses.iter().any(|s| !(200..300).contains(s)) {
            Verdict::Error
        } else {
            match self.target.goal_ms {
                None => Verdict::NoGoal,
                Some(goal) if self.p95_ms <= goal => Verdict::Met,
                Some(_) => Verdict::Missed,
            }
        }
    }
}

/// The nearest-rank percentile `p` (0..1) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    pub filled: Filled,
    pub requests: usize,
    pub rows: Vec<Measured>,
    /// KiB: VmRSS before the server started, after the run, and VmHWM after the run.
    pub rss_before: u64,
    pub rss_after: u64,
    pub rss_peak: u64,
}

/// The RSS goal: 30 MB (28.6 MiB).
const RSS_GOAL_MIB: f64 = 30e6 / 1_048_576.0;

impl Report {
    pub fn overhead_mib(&self) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / 1024.0
    }

    /// Whether every URL answered 2xx or only 404.
    pub fn answered(&self) -> bool {
        self.rows.iter().all(|r| r.verdict() != Verdict::Error)
    }

    pub fn json(&self) -> serde_json::Value {
        let mib = |kib: u64| kib as f64 / 1024.0;
        json!({
            "recordings": self.filled.recordings,
            "detections": self.filled.detections,
            "requests": self.requests,
            "urls": self.rows.iter().map(|r| json!({
                "label": r.target.label,
                "kind": r.target.kind,
                "path": r.target.path,
                "p50_ms": r.p50_ms,
                "p95_ms": r.p95_ms,
                "goal_ms": r.target.goal_ms,
                "statuses": r.statuses,
                "verdict": r.verdict().name(),
            })).collect::<Vec<_>>(),
            "rss_before_mib": mib(self.rss_before),
            "rss_after_mib": mib(self.rss_after),
            "rss_peak_mib": mib(self.rss_peak),
            "rss_overhead_mib": self.overhead_mib(),
            "rss_goal_mib": RSS_GOAL_MIB,
            "rss_goal_met": self.overhead_mib() <= RSS_GOAL_MIB,
        })
    }

    pub fn table(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "url", "kind", "p50 ms", "p95 ms", "goal", "status", "verdict",
        ]);
        for r in &self.rows {
            let statuses: Vec<String> = r.statuses.iter().map(u16::to_string).collect();
            table.add_row(vec![
                r.target.label.to_string(),
                r.target.kind.to_string(),
                format!("{:.1}", r.p50_ms),
                format!("{:.1}", r.p95_ms),
                r.target
                    .goal_ms
                    .map_or("-".to_string(), |g| format!("≤ {g:.0} ms")),
                statuses.join(","),
                r.verdict().name().to_string(),
            ]);
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        format!(
            "serve bench: {} detections in {} recordings, {} requests per URL\n{table}\n\
             RSS before the server {:.1} MiB, after the run {:.1} MiB, peak {:.1} MiB: \
             overhead {:.1} MiB (goal ≤ 30 MB = {RSS_GOAL_MIB:.1} MiB: {})",
            self.filled.detections,
            self.filled.recordings,
            self.requests,
            mib(self.rss_before),
            mib(self.rss_after),
            mib(self.rss_peak),
            self.overhead_mib(),
            if self.overhead_mib() <= RSS_GOAL_MIB {
                "met"
            } else {
                "MISSED"
            }
        )
    }
}

fn own_status() -> memory::Status {
    memory::parse_status(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
}

/// Serves the filled store in `dir` in-process and times every URL; see the module docs.
pub fn measure(dir: &Path, requests: usize, warm_ups: usize) -> Result<Report, String> {
    let path = dir.join(STORE_FILE);
    let store = DuckDbStore::open(&path).map_err(|e| e.to_string())?;
    // Before the bench's own queries: what they keep is counted as the dashboard's.
    let rss_before = own_status().rss;
    let conn = store.reader().map_err(|e| e.to_string())?;
    let count = |sql: &str| -> Result<i64, String> {
        conn.query_row(sql, [], |row| row.get(0))
            .map_err(|e| e.to_string())
    };
    let filled = Filled {
        recordings: count("SELECT count(*) FROM recordings")?,
        detections: count("SELECT count(*) FROM detections")?,
    };
    drop(conn);
    let picks = pick(&store)?;
    let targets = urls(&picks);
    let cache_dir = dir.join("spectrogram-cache");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = acoupi_web::AppState::new(acoupi_web::StateOptions {
        store,
        served: acoupi_web::Served::File { read_only: true },
        telemetry: None,
        settings: None,
        species_key: None,
        cache_dir,
        token: None,
        public: false,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(acoupi_web::serve(listener, state, async {
        let _ = stopped.await;
    }));

    let mut rows = Vec::new();
    let mut width = 600;
    for target in targets {
        let mut times = Vec::with_capacity(requests);
        let mut statuses = Vec::new();
        for i in 0..warm_ups + requests {
            let path = if target.vary_width {
                width += 1;
                format!("{}&width={width}", target.path)
            } else {
                target.path.clone()
            };
            let (status, elapsed) = get(addr, &path, target.header);
            if i >= warm_ups {
                times.push(elapsed.as_secs_f64() * 1000.0);
            }
            statuses.push(status);
        }
        times.sort_by(f64::total_cmp);
        statuses.sort_unstable();
        statuses.dedup();
        rows.push(Measured {
            p50_ms: percentile(&times, 0.5),
            p95_ms: percentile(&times, 0.95),
            statuses,
            target,
        });
    }
    let after = own_status();
    let _ = stop.send(());
    runtime
        .block_on(server)
        .map_err(|e| format!("the dashboard stopped: {e}"))?
        .map_err(|e| format!("the dashboard failed: {e}"))?;
    Ok(Report {
        filled,
        requests,
        rows,
        rss_before,
        rss_after: after.rss,
        rss_peak: after.hwm,
    })
}

/// The store file of the bench folder `dir`.
pub fn store_path(dir: &Path) -> PathBuf {
    dir.join(STORE_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 10.0);
        assert_eq!(percentile(&values, 0.95), 19.0);
        assert_eq!(percentile(&[3.0], 0.95), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(encode("Parus major"), "Parus%20major");
        assert_eq!(encode("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn a_small_fill_matches_sql_and_skews_the_species() {
        let dir = tempfile::tempdir().unwrap();
        let filled = fill(dir.path(), 4_000).unwrap();
        assert_eq!(filled.detections, 4_000);
        assert_eq!(filled.recordings, 1_000);
        assert!(is_filled(&store_path(dir.path()), 4_000).unwrap());
        assert!(is_filled(&store_path(dir.path()), 5_000).is_err());
        let store = DuckDbStore::open(&store_path(dir.path())).unwrap();
        let conn = store.reader().unwrap();
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(one("SELECT count(*) FROM detections_flat"), 4_000);
        assert_eq!(
            one("SELECT count(DISTINCT tag_value) FROM detections_flat"),
            20
        );
        let top =
            one("SELECT count(*) FROM detections_flat GROUP BY tag_value ORDER BY 1 DESC LIMIT 1");
        let bottom =
            one("SELECT count(*) FROM detections_flat GROUP BY tag_value ORDER BY 1 LIMIT 1");
        assert!(top > 10 * bottom, "top {top}, bottom {bottom}");
        // Every detection lies inside its recording, every path is a real file.
        assert_eq!(
            one(
                "SELECT count(*) FROM detections d JOIN model_outputs mo ON mo.id = d.model_output_id \
                 JOIN recordings r ON r.id = mo.recording_id \
                 WHERE d.start_time < 0 OR d.end_time > r.duration OR d.low_freq >= d.high_freq"
            ),
            0
        );
        let mut paths = conn
            .prepare("SELECT DISTINCT path FROM recordings")
            .unwrap();
        let paths: Vec<String> = paths
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(paths.len(), 6);
        for path in paths {
            assert!(Path::new(&path).is_file(), "{path}");
        }
        assert_eq!(
            one("SELECT count(*) FROM recordings WHERE duration = 10.0"),
            200
        );
    }
}

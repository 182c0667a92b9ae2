//! `acoupi reprocess` and `acoupi merge` end to end: archives of the demo's WAV files
//! (plus bad files) in temporary folders, the demo pipeline's detection stage, real
//! DuckDB files and the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::root;
use crate::run::demo_in;

fn acoupi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .output()
        .unwrap()
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn count(db: &Path, sql: &str) -> i64 {
    let db = duckdb::Connection::open(db).unwrap();
    db.query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// An archive of `good` copies of the demo recordings (hard links, named like AudioMoth
/// files, in three site folders), plus, with `bad`, a zero-length file, a truncated WAV
/// and a text file named `.wav`. Returns the archive folder.
fn archive(dir: &Path, good: usize, bad: bool) -> PathBuf {
    let archive = dir.join("archive");
    let sources = ["01_dawn.wav", "02_quiet.wav", "03_song.wav"]
        .map(|n| root().join("pipelines/audio").join(n));
    for i in 0..good {
        let folder = archive.join(format!("site-{}", i % 3));
        std::fs::create_dir_all(&folder).unwrap();
        let name = format!(
            "202606{:02}_{:02}{:02}00.WAV",
            1 + i / 60 % 28,
            i / 60 % 24,
            i % 60
        );
        std::fs::hard_link(&sources[i % 3], folder.join(name)).unwrap();
    }
    if bad {
        let folder = archive.join("bad");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("zero.wav"), b"").unwrap();
        let song = std::fs::read(&sources[2]).unwrap();
        std::fs::write(folder.join("truncated.wav"), &song[..song.len() / 3]).unwrap();
        std::fs::write(
            folder.join("notes.wav"),
            "field notes: heard a nightingale at dawn, not a WAV file\n",
        )
        .unwrap();
    }
    archive
}

/// Runs `acoupi reprocess` and returns its stdout; fails the test on a non-zero status.
fn reprocess(pipeline: &Path, archive: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "reprocess",
        text(pipeline),
        text(archive),
        "--progress",
        "off",
    ];
    args.extend(extra);
    let output = acoupi(&args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// `(recordings, model outputs, detections, messages, reprocessed_files rows)`.
fn counts(db: &Path) -> [i64; 5] {
    [
        "recordings",
        "model_outputs",
        "detections",
        "messages",
        "reprocessed_files",
    ]
    .map(|t| count(db, &format!("SELECT count(*) FROM {t}")))
}

#[test]
fn bad_files_are_reported_and_the_rest_stored_then_a_second_run_skips_everything() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let archive = archive(dir.path(), 9, true);
    let store = dir.path().join("out.duckdb");
    let first = reprocess(
        &pipeline,
        &archive,
        &["--store", text(&store), "--jobs", "3"],
    );
    assert!(
        first.contains(
            "files: 12 found, 12 in this shard, 0 already done, 9 analysed, 0 filtered, 3 bad"
        ),
        "{first}"
    );
    assert!(
        first.contains("bad/zero.wav: empty file (0 bytes)"),
        "{first}"
    );
    assert!(
        first.contains("bad/truncated.wav: truncated: the data chunk declares"),
        "{first}"
    );
    assert!(
        first.contains("bad/notes.wav: not a WAV file (no RIFF/WAVE header)"),
        "{first}"
    );
    assert!(first.contains("real-time factor"), "{first}");
    // 01_dawn has 3 chirps, 02_quiet none, 03_song 2: 3 × (3 + 0 + 2).
    assert_eq!(counts(&store), [9, 9, 15, 6, 12]);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM reprocessed_files WHERE status = 'error' AND error IS NOT NULL AND recording_id IS NULL"
        ),
        3
    );
    // Every good file was dated from its AudioMoth-style name, in Europe/London.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM reprocessed_files WHERE status = 'done' AND time_source = 'file_name'"
        ),
        9
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM recordings WHERE created_on = TIMESTAMPTZ '2026-06-01 00:00:00+01:00' AND ends_with(path, 'site-0/20260601_000000.WAV')"
        ),
        1
    );

    let second = reprocess(&pipeline, &archive, &["--store", text(&store)]);
    assert!(
        second.contains("12 already done, 0 analysed, 0 filtered, 0 bad"),
        "{second}"
    );
    assert_eq!(counts(&store), [9, 9, 15, 6, 12]);

    // --retry-errors tries the bad files again (and only those); a changed parameter is
    // a new fingerprint: everything is analysed again.
    let retried = reprocess(
        &pipeline,
        &archive,
        &["--store", text(&store), "--retry-errors"],
    );
    assert!(
        retried.contains("9 already done, 0 analysed, 0 filtered, 3 bad"),
        "{retried}"
    );
    assert_eq!(counts(&store), [9, 9, 15, 6, 12]);
    let changed = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("threshold = 0.3", "threshold = 0.31");
    assert_ne!(changed, std::fs::read_to_string(&pipeline).unwrap());
    std::fs::write(&pipeline, changed).unwrap();
    let again = reprocess(&pipeline, &archive, &["--store", text(&store)]);
    assert!(again.contains("0 already done, 9 analysed"), "{again}");
}

#[test]
fn shards_cover_every_file_once_and_merge_into_the_unsharded_counts() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let archive = archive(dir.path(), 30, true);
    let whole = dir.path().join("whole.duckdb");
    reprocess(&pipeline, &archive, &["--store", text(&whole)]);

    let mut shards = Vec::new();
    let mut in_shards = 0;
    for i in 1..=3 {
        let shard = format!("{i}/3");
        // Without --store, each shard writes beside the pipeline's store; the third also
        // leaves its results as Parquet.
        let format = if i == 3 { "parquet" } else { "duckdb" };
        let out = reprocess(
            &pipeline,
            &archive,
            &["--shard", &shard, "--jobs", "2", "--format", format],
        );
        let path = dir.path().join(format!("station.shard-{i}-of-3.duckdb"));
        assert!(path.exists(), "{out}");
        in_shards += count(&path, "SELECT count(*) FROM reprocessed_files");
        shards.push(path);
    }
    assert_eq!(in_shards, 33, "every file in exactly one shard");
    // The Parquet folder holds the shard's rows, readable without acoupi.
    let parquet = dir.path().join("station.shard-3-of-3.parquet");
    for table in ["recordings", "detections", "reprocessed_files"] {
        let file = parquet.join(format!("{table}.parquet"));
        let in_parquet = count(
            &dir.path().join("reader.duckdb"),
            &format!("SELECT count(*) FROM read_parquet('{}')", text(&file)),
        );
        assert_eq!(
            in_parquet,
            count(&shards[2], &format!("SELECT count(*) FROM {table}")),
            "{table}"
        );
    }
    assert!(
        !dir.path().join("station.shard-1-of-3.parquet").exists(),
        "--format duckdb writes no Parquet"
    );
    // Merge two store files and the Parquet folder.
    let merged = dir.path().join("merged.duckdb");
    let args = vec![
        "merge",
        text(&merged),
        text(&shards[0]),
        text(&shards[1]),
        text(&parquet),
    ];
    let output = acoupi(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(counts(&merged), counts(&whole));
    assert_eq!(
        count(&merged, "SELECT count(*) FROM detection_tags"),
        count(&whole, "SELECT count(*) FROM detection_tags")
    );
    assert_eq!(
        count(&merged, "SELECT count(*) FROM deployments"),
        1,
        "the shards share one deployment"
    );
    let sql = "SELECT count(DISTINCT path) FROM reprocessed_files";
    assert_eq!(count(&merged, sql), 33);
    // Merging again adds nothing.
    let again = acoupi(&args);
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing new"));
    assert_eq!(counts(&merged), counts(&whole));
    // The same shard of the same archive is the same files, run after run.
    let repeat = dir.path().join("repeat.duckdb");
    reprocess(
        &pipeline,
        &archive,
        &["--shard", "2/3", "--store", text(&repeat)],
    );
    let paths = |db: &Path| {
        let db = duckdb::Connection::open(db).unwrap();
        let mut statement = db
            .prepare("SELECT path FROM reprocessed_files ORDER BY path")
            .unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    };
    assert_eq!(paths(&repeat), paths(&shards[1]));
}

#[cfg(unix)]
#[test]
fn a_sigkill_mid_batch_then_a_rerun_stores_each_file_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let files = 300;
    let archive = archive(dir.path(), files, false);
    let store = dir.path().join("out.duckdb");
    let mut child = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args([
            "reprocess",
            text(&pipeline),
            text(&archive),
            "--store",
            text(&store),
            "--jobs",
            "1",
            "--progress",
            "off",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first committed batch (read through a snapshot), then kill.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut stored = 0;
    while stored == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if !store.exists() {
            continue;
        }
        let query = acoupi(&[
            "query",
            text(&store),
            "SELECT count(*) FROM reprocessed_files",
            "--format",
            "csv",
        ]);
        stored = String::from_utf8_lossy(&query.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
    }
    assert!(
        Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = child.wait();
    let after_kill = count(&store, "SELECT count(*) FROM reprocessed_files");
    assert!(
        after_kill > 0 && after_kill < files as i64,
        "the kill should land mid-batch: {after_kill} of {files} stored"
    );
    // What was committed is whole: a row per recording, an output per recording.
    assert_eq!(count(&store, "SELECT count(*) FROM recordings"), after_kill);
    assert_eq!(
        count(&store, "SELECT count(*) FROM model_outputs"),
        after_kill
    );

    let rerun = reprocess(&pipeline, &archive, &["--store", text(&store)]);
    assert!(
        rerun.contains(&format!(
            "{after_kill} already done, {} analysed",
            files as i64 - after_kill
        )),
        "{rerun}"
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM reprocessed_files"),
        files as i64
    );
    assert_eq!(
        count(&store, "SELECT count(DISTINCT path) FROM reprocessed_files"),
        files as i64
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM recordings"),
        files as i64
    );
    assert_eq!(
        count(&store, "SELECT count(DISTINCT path) FROM recordings"),
        files as i64
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM model_outputs"),
        files as i64
    );
    assert_eq!(count(&store, "SELECT count(*) FROM detections"), 100 * 5);
}

#[test]
fn usage_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let missing = acoupi(&[
        "reprocess",
        text(&pipeline),
        "/no/such/archive",
        "--store",
        text(&dir.path().join("x.duckdb")),
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/archive"));
    let archive = archive(dir.path(), 1, false);
    let stage = acoupi(&[
        "reprocess",
        text(&pipeline),
        text(&archive),
        "--stage",
        "record",
    ]);
    assert_eq!(stage.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stage.stderr).contains(
        "`record` is not a detection stage of the pipeline (detection stages: `detect`)"
    ));
    let shard = acoupi(&[
        "reprocess",
        text(&pipeline),
        text(&archive),
        "--shard",
        "0/4",
    ]);
    assert_eq!(shard.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&shard.stderr).contains("numbered from 1"));
}

#[test]
fn files_a_processing_filter_turns_down_are_filtered_not_bad_and_time_format_wins() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let mut table: toml::Table =
        toml::from_str(&std::fs::read_to_string(&pipeline).unwrap()).unwrap();
    let filter: toml::Table =
        toml::from_str("type = \"processing.min_rms\"\nmin_dbfs = -40.0").unwrap();
    table["stages"]["detect"].as_table_mut().unwrap().insert(
        "filters".into(),
        toml::Value::Array(vec![toml::Value::Table(filter)]),
    );
    std::fs::write(&pipeline, toml::to_string(&table).unwrap()).unwrap();
    let archive = archive(dir.path(), 6, false);
    let store = dir.path().join("out.duckdb");
    // 02_quiet.wav is at -54 dBFS: turned down, its recording kept without an output.
    let out = reprocess(
        &pipeline,
        &archive,
        &["--store", text(&store), "--time-format", "%Y%m%d_%H%M"],
    );
    assert!(
        out.contains("0 already done, 4 analysed, 2 filtered, 0 bad"),
        "{out}"
    );
    assert_eq!(counts(&store), [6, 4, 10, 4, 6]);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM reprocessed_files WHERE status = 'filtered' AND recording_id IS NOT NULL"
        ),
        2
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM reprocessed_files WHERE time_source = 'time_format'"
        ),
        6
    );
}

#[test]
fn flac_files_are_analysed_like_the_wavs_they_were_made_from() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::copy(
        root().join("pipelines/audio/01_dawn.wav"),
        archive.join("20260601_050000.wav"),
    )
    .unwrap();
    std::fs::copy(
        root().join("tests/audio/01_dawn.flac"),
        archive.join("20260601_060000.flac"),
    )
    .unwrap();
    let store = dir.path().join("out.duckdb");
    let out = reprocess(&pipeline, &archive, &["--store", text(&store)]);
    assert!(out.contains("2 analysed, 0 filtered, 0 bad"), "{out}");
    // 01_dawn has three chirps, in either format.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM detections_flat WHERE ends_with(recording_path, '.flac')"
        ),
        3
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM detections_flat WHERE ends_with(recording_path, '.wav')"
        ),
        3
    );
}

#[test]
fn a_guano_file_is_dated_and_time_expanded_by_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    let file = archive.join("bat_pass.wav");
    std::fs::copy(root().join("pipelines/audio/03_song.wav"), &file).unwrap();
    let mut guano = acoupi_engine::guano::Guano::default();
    guano.set("Timestamp", "2024-05-01T22:00:00-04:00");
    guano.set("TE", "10");
    guano.set("Make", "Wildlife Acoustics");
    acoupi_engine::guano::write(&file, &guano).unwrap();
    let pipeline = demo_in(dir.path());
    reprocess(&pipeline, &archive, &[]);
    let db = dir.path().join("station.duckdb");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM recordings WHERE created_on = TIMESTAMPTZ '2024-05-02 02:00:00+00' AND time_expansion = 10"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM reprocessed_files WHERE time_source = 'guano'"
        ),
        1
    );
}

/// `acoupi ARGS` run with its address space capped at `bytes` (`prlimit --as`), so that an
/// unbounded allocation fails (and fails the test) instead of exhausting the machine.
fn under_memory_limit(bytes: u64, args: &[&str]) -> Output {
    let prlimit = Command::new("prlimit").arg("--version").output();
    assert!(
        prlimit.is_ok_and(|o| o.status.success()),
        "this test needs `prlimit` (util-linux) to cap the child's memory"
    );
    Command::new("prlimit")
        .arg(format!("--as={bytes}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .output()
        .unwrap()
}

/// A 44 KB WAV (8-bit mono) whose header says `rate` (and a byte rate to match, which
/// hound checks).
fn wav_declaring(rate: u32) -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 8,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::new(&mut cursor, spec).unwrap();
    (0..44_000).for_each(|i| writer.write_sample((i % 200 - 100) as i8).unwrap());
    writer.finalize().unwrap();
    let mut bytes = cursor.into_inner();
    bytes[24..28].copy_from_slice(&rate.to_le_bytes());
    bytes[28..32].copy_from_slice(&rate.to_le_bytes());
    bytes
}

#[test]
fn absurd_files_are_errors_naming_their_limit_and_decoding_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::copy(
        root().join("pipelines/audio/01_dawn.wav"),
        archive.join("20260601_050000.wav"),
    )
    .unwrap();
    // 10 min of silence at 384 kHz: 52 KB of FLAC, 230 million samples (0.9 GB as i32,
    // which the old reader collected whole, then mixed into 0.9 GB more, and died of under
    // the cap). The 1 h file is the same six times over (analysed in a peak RSS
    // of 74 MB), and too slow for a debug-build test.
    let long = acoupi_audio::testing::silent_flac(384_000, 1, 16, 600 * 384_000);
    assert!(long.len() < 1 << 20, "{} bytes", long.len());
    std::fs::write(archive.join("20260601_060000.flac"), long).unwrap();
    // 44 KB WAVs declaring 2 GHz and 4 GHz: frames of billions of samples in band_energy.
    std::fs::write(archive.join("bogus-2ghz.wav"), wav_declaring(2_000_000_000)).unwrap();
    std::fs::write(archive.join("bogus-4ghz.wav"), wav_declaring(4_000_000_000)).unwrap();
    // A FLAC claiming 2³⁴ samples (it holds one block): over the length limit.
    let mut endless = acoupi_audio::testing::silent_flac(48_000, 1, 16, 65_535);
    let packed = 48_000u64 << 44 | 15 << 36 | 1 << 34;
    endless[18..26].copy_from_slice(&packed.to_be_bytes());
    std::fs::write(archive.join("endless.flac"), endless).unwrap();
    let store = dir.path().join("out.duckdb");
    let args = [
        "reprocess",
        text(&pipeline),
        text(&archive),
        "--store",
        text(&store),
        "--progress",
        "off",
        "--jobs",
        "2",
    ];
    let output = under_memory_limit(1 << 30, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("5 found, 5 in this shard, 0 already done, 2 analysed, 0 filtered, 3 bad"),
        "{stdout}"
    );
    for (file, reason) in [
        (
            "bogus-2ghz.wav",
            "the header's sample rate of 2000000000 Hz is outside the limits (1000 to 1000000 Hz)",
        ),
        (
            "bogus-4ghz.wav",
            "the header's sample rate of 4000000000 Hz is outside the limits (1000 to 1000000 Hz)",
        ),
        ("endless.flac", "over the limit of 4294967296 samples"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(file) && l.contains(reason)),
            "{file}: {reason}\n{stdout}"
        );
        let sql = format!(
            "SELECT count(*) FROM reprocessed_files WHERE status = 'error' AND ends_with(path, '{file}') AND contains(error, '{}')",
            reason.replace('\'', "''")
        );
        assert_eq!(count(&store, &sql), 1, "{sql}");
    }
    // The long file is analysed in bounded memory, like the normal one.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM reprocessed_files WHERE status = 'done'"
        ),
        2
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM recordings WHERE samplerate = 384000 AND duration = 600"
        ),
        1
    );
    // The batch went on and its errors are kept: a rerun skips everything.
    let again = under_memory_limit(1 << 30, &args);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("5 already done, 0 analysed"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

#[test]
fn file_names_with_control_characters_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let archive = dir.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    // A bad file whose name would print a fake report line and clear the terminal.
    let name = "x.wav\n  fake.wav: all good\x1b[2J.wav";
    std::fs::write(archive.join(name), b"not audio").unwrap();
    let out = reprocess(
        &pipeline,
        &archive,
        &["--store", text(&dir.path().join("out.duckdb"))],
    );
    assert!(
        !out.contains('\x1b') && !out.contains("\n  fake.wav"),
        "{out:?}"
    );
    assert!(
        out.contains("/x.wav\\n  fake.wav: all good\\x1b[2J.wav: not a WAV file"),
        "{out}"
    );
}

//! `acoupi run` end to end: the demo pipeline on the real binary, a real DuckDB file and
//! the bundled WAV files, in a temporary folder.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::root;

/// The demo pipeline, rewritten to keep its store and folders in `dir`.
pub fn demo_in(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("pipelines/demo.toml")).unwrap();
    let mut pipeline: toml::Table = toml::from_str(&text).unwrap();
    pipeline["store"]["path"] = "station.duckdb".into();
    pipeline["paths"]["temp"] = "tmp".into();
    pipeline["paths"]["recordings"] = "recordings".into();
    pipeline["components"]["replay"]["folder"] =
        root().join("pipelines/audio").to_str().unwrap().into();
    let path = dir.join("demo.toml");
    std::fs::write(&path, toml::to_string(&pipeline).unwrap()).unwrap();
    path
}

fn count(db: &duckdb::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn once_runs_the_demo_through_the_whole_chain_into_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["run", pipeline.to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("1 recordings, 1 analysed, 3 detections"),
        "summary: {stdout}"
    );
    assert!(
        stderr.contains("stage=record") && stderr.contains("recording="),
        "log lines name stage and recording: {stderr}"
    );

    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM deployments WHERE name = 'demo'"),
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM recordings"), 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM model_outputs WHERE name_model = 'chirp_detector'"
        ),
        1
    );
    // 01_dawn.wav has three chirps.
    assert_eq!(count(&db, "SELECT count(*) FROM detections"), 3);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM messages WHERE message_type = 'detection'"
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM messages WHERE message_type = 'summary'"
        ),
        1
    );
    // Kept by management in the dated tree, and the store knows where.
    let path: String = db
        .query_row("SELECT path FROM recordings", [], |r| r.get(0))
        .unwrap();
    assert!(
        path.contains("/recordings/") && Path::new(&path).exists(),
        "{path}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0,
        "the temp folder is empty"
    );
}

#[test]
fn a_second_run_keeps_the_deployment_and_adds_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    for _ in 0..2 {
        let status = Command::new(env!("CARGO_BIN_EXE_acoupi"))
            .args(["run", pipeline.to_str().unwrap(), "--once"])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM deployments"),
        1,
        "an unchanged [deployment] is reused"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM recordings"), 2);
}

/// A station running the demo in `dir` for up to 2 minutes, and its log lines.
pub struct RunningStation {
    pub child: std::process::Child,
    pub lines: std::io::Lines<BufReader<std::process::ChildStderr>>,
}

impl RunningStation {
    pub fn start(pipeline: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_acoupi"))
            .args(["run", pipeline.to_str().unwrap(), "--for", "120s"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stderr.take().unwrap()).lines();
        RunningStation { child, lines }
    }

    /// Waits (at most 30 s) until `n` log lines contain `marker`; returns how many did.
    pub fn wait_for(&mut self, marker: &str, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = 0;
        while seen < n && Instant::now() < deadline {
            match self.lines.next() {
                Some(Ok(line)) if line.contains(marker) => seen += 1,
                Some(_) => {}
                None => break,
            }
        }
        seen
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    }
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_the_work_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let mut station = RunningStation::start(&pipeline);
    assert_eq!(
        station.wait_for(" recorded ", 2),
        2,
        "the station did not record"
    );
    station.terminate();
    let rest: Vec<String> = station.lines.by_ref().map_while(Result::ok).collect();
    let status = station.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM received")),
        "{rest:?}"
    );

    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    let recordings = count(&db, "SELECT count(*) FROM recordings");
    assert!(recordings >= 2);
    // Every recording made was analysed before exit: one output each, none twice.
    assert_eq!(count(&db, "SELECT count(*) FROM model_outputs"), recordings);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM recordings r WHERE (SELECT count(*) FROM model_outputs o WHERE o.recording_id = r.id) <> 1"
        ),
        0
    );
}

#[test]
fn json_logs_are_one_object_per_line_naming_stage_and_recording() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--once",
            "--log-format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let analysed = lines
        .iter()
        .find(|l| l["fields"]["message"] == "analysed")
        .expect("an `analysed` line");
    assert_eq!(analysed["fields"]["stage"], "detect");
    assert!(
        analysed["fields"]["recording"]
            .as_str()
            .is_some_and(|id| id.len() == 36)
    );
}

#[cfg(unix)]
#[test]
fn sighup_applies_a_valid_pipeline_file_and_keeps_running_on_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let good = std::fs::read_to_string(&pipeline).unwrap();
    let mut station = RunningStation::start(&pipeline);
    let hangup = |station: &RunningStation| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &station.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    assert_eq!(station.wait_for(" recorded ", 1), 1);

    std::fs::write(
        &pipeline,
        good.replace("every = \"2s\"", "every = \"2 parsecs\""),
    )
    .unwrap();
    hangup(&station);
    assert_eq!(
        station.wait_for("reload refused: the pipeline file is invalid", 1),
        1
    );
    assert_eq!(
        station.wait_for(" recorded ", 1),
        1,
        "the old pipeline keeps running"
    );

    std::fs::write(
        &pipeline,
        good.replace("name = \"demo\"", "name = \"demo, moved\""),
    )
    .unwrap();
    hangup(&station);
    assert_eq!(station.wait_for("reloading the pipeline file", 1), 1);
    assert_eq!(
        station.wait_for("started a new deployment", 1),
        1,
        "the new [deployment] is applied"
    );
    assert_eq!(station.wait_for(" recorded ", 1), 1);
    station.terminate();
    let rest: Vec<String> = station.lines.by_ref().map_while(Result::ok).collect();
    assert_eq!(station.child.wait().unwrap().code(), Some(0), "{rest:?}");
    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM deployments"), 2);
    assert!(
        count(
            &db,
            "SELECT count(*) FROM recordings WHERE deployment_id = (SELECT id FROM deployments WHERE name = 'demo, moved')"
        ) > 0
    );
}

#[test]
fn a_required_model_no_stage_runs_stops_the_station_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let text = std::fs::read_to_string(&pipeline).unwrap();
    assert!(text.contains("\"chirp_detector\""), "{text}");
    std::fs::write(
        &pipeline,
        text.replace(
            "required_models = [\"chirp_detector\"]",
            "required_models = [\"chirp_detektor\"]",
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["run", pipeline.to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("stage `manage` has required_models = [\"chirp_detektor\"], but no detection stage runs a model of that name (they run: `chirp_detector`)"),
        "{stderr}"
    );
}

#[test]
fn a_messenger_sending_credentials_in_clear_with_insecure_is_named_in_a_warning_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let mut text = std::fs::read_to_string(&pipeline).unwrap();
    // Built at start, never sent to (no stage uses it): 192.0.2.1 is a documentation address.
    text.push_str(
        "\n[components.lan_server]\ntype = \"messenger.http\"\nurl = \"http://192.0.2.1/api\"\n\
         headers = { Authorization = { env = \"ACOUPI_E2E_TOKEN\" } }\ninsecure = true\n",
    );
    std::fs::write(&pipeline, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["run", pipeline.to_str().unwrap(), "--once"])
        .env("ACOUPI_E2E_TOKEN", "e2e-secret-value")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("INSECURE"))
        .unwrap_or_else(|| panic!("no warning in {stderr}"));
    assert!(
        warning.contains("WARN")
            && warning.contains("`lan_server`")
            && warning.contains("192.0.2.1"),
        "{warning}"
    );
    assert!(
        !stderr.contains("e2e-secret-value"),
        "the secret is never logged: {stderr}"
    );
}

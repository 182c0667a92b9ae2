//! Fault injection on the real binary: SIGKILL at many points of a station that records,
//! analyses, keeps or deletes and sends over HTTP; a receiver answering 500 for a while.
//! After the faults, a clean run, then the invariants: no recording lost or orphaned,
//! every recording analysed once, every detection message kept and delivered, none
//! delivered twice to the receiver's application (the `Idempotency-Key` lets it drop a
//! transport repeat; repeats are counted and printed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::run::demo_in;
use crate::wavs_under;

/// An HTTP receiver on 127.0.0.1 that answers 500 to the first `failures` requests, then
/// 200, and counts deliveries per `Idempotency-Key`.
struct Receiver {
    url: String,
    deliveries: Arc<Mutex<HashMap<String, usize>>>,
    answered_500: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(failures: usize) -> Receiver {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let deliveries = Arc::new(Mutex::new(HashMap::new()));
        let answered_500 = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, a, s) = (deliveries.clone(), answered_500.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                if a.load(Ordering::Relaxed) < failures {
                    a.fetch_add(1, Ordering::Relaxed);
                    let _ = request.respond(
                        tiny_http::Response::from_string("restarting").with_status_code(500),
                    );
                    continue;
                }
                let key = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Idempotency-Key"))
                    .map(|h| h.value.to_string())
                    .unwrap_or_default();
                *d.lock().unwrap().entry(key).or_insert(0) += 1;
                let _ = request.respond(tiny_http::Response::from_string("ok"));
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/messages"),
            deliveries,
            answered_500,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The demo station in `dir`, recording every second, sending detection messages to `url`
/// after each management run (so the drain at a clean stop sends the last ones too).
fn station(dir: &Path, url: &str) -> PathBuf {
    let pipeline = demo_in(dir);
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("every = \"2s\"", "every = \"1s\"");
    let send = format!(
        "\n[stages.send]\nkind = \"messaging\"\nmessengers = [{{ type = \"messenger.http\", url = \"{url}\", timeout = \"2s\" }}]\nafter = \"manage\"\n"
    );
    std::fs::write(&pipeline, text + &send).unwrap();
    pipeline
}

fn acoupi_run(pipeline: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("run")
        .arg(pipeline)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn count(db: &duckdb::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The invariants after a clean run; returns (recordings, messages, transport repeats).
fn check_invariants(dir: &Path, receiver: &Receiver) -> (i64, i64, usize) {
    let db = duckdb::Connection::open(dir.join("station.duckdb")).unwrap();
    let recordings = count(&db, "SELECT count(*) FROM recordings");
    // Every row's file is where the row says, or the row has no path (deleted on purpose).
    let mut statement = db
        .prepare("SELECT path FROM recordings WHERE path IS NOT NULL")
        .unwrap();
    let paths: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for path in &paths {
        assert!(
            Path::new(path).exists(),
            "the store points at a missing file: {path}"
        );
    }
    // A row without a path was deleted on purpose: the saving filter (a detection of at
    // least 0.6) turned it down. A kept recording whose file went missing would show here.
    let confident_without_file = count(
        &db,
        "SELECT count(*) FROM recordings r WHERE r.path IS NULL AND EXISTS (SELECT 1 FROM model_outputs mo JOIN detections d ON d.model_output_id = mo.id \
         WHERE mo.recording_id = r.id AND d.detection_score >= 0.6)",
    );
    assert_eq!(
        confident_without_file, 0,
        "a recording the filter keeps has lost its file"
    );
    // And every kept one is one the filter keeps.
    let kept_unconfident = count(
        &db,
        &format!(
            "SELECT count(*) FROM recordings r WHERE starts_with(r.path, '{}') AND NOT EXISTS \
             (SELECT 1 FROM model_outputs mo JOIN detections d ON d.model_output_id = mo.id WHERE mo.recording_id = r.id AND d.detection_score >= 0.6)",
            dir.join("recordings").display()
        ),
    );
    assert_eq!(
        kept_unconfident, 0,
        "a recording the filter turns down was kept"
    );
    // No file the store does not know, in the recordings tree or the temp folder.
    for file in wavs_under(&dir.join("recordings"))
        .into_iter()
        .chain(wavs_under(&dir.join("tmp")))
    {
        assert!(
            paths.iter().any(|p| Path::new(p) == file),
            "an orphan file: {}",
            file.display()
        );
    }
    // Every recording analysed, exactly once.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM recordings r WHERE (SELECT count(*) FROM model_outputs o WHERE o.recording_id = r.id) <> 1"
        ),
        0,
        "each recording has exactly one model output"
    );
    // Every output with a detection at or above the factory's 0.5 has its message.
    let outputs_with_messages = count(
        &db,
        "SELECT count(DISTINCT mo.id) FROM model_outputs mo JOIN detections d ON d.model_output_id = mo.id WHERE d.detection_score >= 0.5",
    );
    let messages = count(
        &db,
        "SELECT count(*) FROM messages WHERE message_type = 'detection'",
    );
    assert_eq!(
        messages, outputs_with_messages,
        "one detection message per output with a confident detection"
    );
    // Every message delivered, one SUCCESS each; the receiver's application saw each once.
    assert_eq!(
        count(&db, "SELECT count(*) FROM message_status WHERE NOT sent"),
        0,
        "every message delivered"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM (SELECT message_id FROM responses WHERE status = 0 GROUP BY 1 HAVING count(*) > 1)"
        ),
        0,
        "no message has two SUCCESS responses"
    );
    let deliveries = receiver.deliveries.lock().unwrap();
    assert_eq!(
        deliveries.len() as i64,
        messages,
        "the receiver got every message (by idempotency key)"
    );
    let repeats = deliveries.values().map(|n| n - 1).sum();
    (recordings, messages, repeats)
}

#[test]
fn sigkill_at_twenty_points_loses_nothing_and_delivers_each_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0);
    let pipeline = station(dir.path(), &receiver.url);
    for seed in 1..=20u64 {
        let mut child = acoupi_run(&pipeline, &["--for", "60s"]);
        // Kill at a random point (xorshift, seeded) of the first 2.5 s: start-up,
        // recording, analysis, moves, sends.
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
        }
        std::thread::sleep(Duration::from_millis(600 + state % 1900));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut last = acoupi_run(&pipeline, &["--for", "5s"]);
    assert!(last.wait().unwrap().success());
    let (recordings, messages, repeats) = check_invariants(dir.path(), &receiver);
    assert!(
        recordings > 0 && messages > 0,
        "{recordings} recordings, {messages} messages"
    );
    // The receiver's application saw each message once: transport repeats (a kill after
    // the send, before its response was stored) carry the same key and are dropped there.
    println!(
        "20 kills: {recordings} recordings, {messages} messages, 0 lost, 0 duplicates delivered, {repeats} transport repeats dropped by idempotency key"
    );
}

#[test]
fn a_receiver_answering_500_for_a_while_gets_every_message_once_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(6);
    let pipeline = station(dir.path(), &receiver.url);
    // One ERROR ends a messaging run's batch, so six 500s take six runs; on a busy
    // machine that may take more than one station run.
    for _ in 0..6 {
        let mut run = acoupi_run(&pipeline, &["--for", "5s"]);
        assert!(run.wait().unwrap().success());
        if receiver.answered_500.load(Ordering::Relaxed) == 6
            && !receiver.deliveries.lock().unwrap().is_empty()
        {
            break;
        }
    }
    assert_eq!(receiver.answered_500.load(Ordering::Relaxed), 6);
    let (_, messages, repeats) = check_invariants(dir.path(), &receiver);
    assert!(messages > 0);
    assert_eq!(repeats, 0);
    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM responses WHERE status = 2 AND content = 'restarting'"
        ),
        6,
        "each 500 is an ERROR attempt, stored"
    );
}

#[test]
fn a_store_left_by_a_newer_acoupi_is_refused_and_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let mut first = acoupi_run(&pipeline, &["--once"]);
    assert!(first.wait().unwrap().success());
    let db_path = dir.path().join("station.duckdb");
    {
        let db = duckdb::Connection::open(&db_path).unwrap();
        db.execute_batch("INSERT INTO schema_version VALUES (99, now())")
            .unwrap();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("run")
        .arg(&pipeline)
        .arg("--once")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("schema version 99") && stderr.contains("upgrade acoupi"),
        "{stderr}"
    );
    let db = duckdb::Connection::open(&db_path).unwrap();
    assert_eq!(
        count(&db, "SELECT max(version) FROM schema_version"),
        99,
        "the file is not touched"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM recordings"), 1);
}

/// A tmpfs of `size` at `at`, unmounted on drop; `None` where mounting is not allowed.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_temp_disk_fails_each_recording_cleanly_and_the_station_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    // 100 KiB: less than one 129 KiB demo recording.
    let Some(_disk) = Tmpfs::mount(&dir.path().join("tmp"), "100k") else {
        crate::retention::skip_without_root();
        return;
    };
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("run")
        .arg(&pipeline)
        .args(["--for", "5s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let failures = stderr
        .lines()
        .filter(|l| l.contains("recording failed") && l.contains("free of"))
        .count();
    assert!(
        failures >= 2,
        "each attempt fails, is logged with the free space, and the next one is tried: {stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        wavs_under(&dir.path().join("tmp")).is_empty(),
        "no cut-short file is left in the temp folder"
    );
    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM recordings"),
        0,
        "nothing half-written was stored"
    );
}

/// Starts rumqttd on 127.0.0.1:`port` (it runs until the test process ends) and waits for
/// it to listen.
fn start_broker(port: u16) {
    let config = serde_json::json!({
        "id": 0,
        "router": { "max_connections": 10, "max_outgoing_packet_count": 200, "max_segment_size": 10_485_760, "max_segment_count": 10 },
        "v4": { "1": {
            "name": "v4-faults",
            "listen": format!("127.0.0.1:{port}"),
            "next_connection_delay_ms": 1,
            "connections": { "connection_timeout_ms": 5000, "max_payload_size": 1_048_576, "max_inflight_count": 100, "dynamic_filters": true }
        } }
    });
    let config: rumqttd::Config = serde_json::from_value(config).unwrap();
    std::thread::spawn(move || {
        let _ = rumqttd::Broker::new(config).start();
    });
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the broker did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Collects the payloads published on `topic` (QoS 1) into `received`.
fn subscribe(port: u16, topic: &str) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let received = Arc::new(Mutex::new(Vec::new()));
    let (client, mut connection) = rumqttc::Client::new(
        rumqttc::MqttOptions::new("faults-subscriber", "127.0.0.1", port),
        100,
    );
    client.subscribe(topic, rumqttc::QoS::AtLeastOnce).unwrap();
    let sink = received.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _client = client;
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                    sink.lock().unwrap().push(publish.payload.to_vec())
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("subscribed");
    received
}

#[test]
fn a_broker_down_for_a_whole_run_gets_every_message_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::free_local_port();
    let pipeline = demo_in(dir.path());
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let send = format!(
        "\n[stages.send]\nkind = \"messaging\"\nmessengers = [{{ type = \"messenger.mqtt\", host = \"127.0.0.1\", port = {port}, topic = \"faults\", qos = 1, timeout = \"2s\" }}]\nafter = \"manage\"\n"
    );
    std::fs::write(&pipeline, text + &send).unwrap();

    let mut down = acoupi_run(&pipeline, &["--for", "5s"]);
    assert!(
        down.wait().unwrap().success(),
        "the station runs without its broker"
    );
    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    let waiting = count(&db, "SELECT count(*) FROM message_status WHERE NOT sent");
    assert!(waiting >= 1, "messages wait in the store: {waiting}");
    assert!(
        count(&db, "SELECT count(*) FROM responses WHERE status = 2") >= 1,
        "each failed attempt is an ERROR response"
    );
    drop(db);

    start_broker(port);
    let received = subscribe(port, "faults");
    let mut up = acoupi_run(&pipeline, &["--for", "4s"]);
    assert!(up.wait().unwrap().success());
    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    assert_eq!(
        count(&db, "SELECT count(*) FROM message_status WHERE NOT sent"),
        0,
        "everything went once the broker was up"
    );
    let messages = count(&db, "SELECT count(*) FROM messages");
    std::thread::sleep(Duration::from_millis(300));
    let payloads = received.lock().unwrap().clone();
    assert_eq!(
        payloads.len() as i64,
        messages,
        "each message reached the subscriber once"
    );
    let mut unique = payloads.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), payloads.len(), "no duplicates");
}

//! The dashboard served by the real binary: `acoupi run` with `[web]` (a copy of
//! pipelines/dashboard.toml on a free port), `acoupi serve` on its store afterwards, and
//! the validation of a non-loopback `listen` without a token.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_local_port, root};

/// A copy of pipelines/dashboard.toml in `dir` listening on `port` (audio from the
/// repository, store and folders in `dir`).
fn dashboard_pipeline(dir: &Path, listen: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("pipelines/dashboard.toml")).unwrap();
    let audio = root().join("pipelines/audio");
    let text = text
        .replace(
            "listen = \"127.0.0.1:8080\"",
            &format!("listen = \"{listen}\""),
        )
        .replace(
            "folder = \"audio\"",
            &format!("folder = {:?}", audio.to_str().unwrap()),
        )
        .replace("../demo-output/", "out/")
        .replace("#:schema ../schemas/pipeline.schema.json\n", "");
    assert!(text.contains(listen), "the copy must listen on {listen}");
    let path = dir.join("dashboard.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0): status line and headers (lower case), body.
fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: text/html\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    Some((head.to_ascii_lowercase(), body.to_string()))
}

/// Waits (at most 60 s) until the dashboard on `port` answers `/`, or `child` exits.
fn wait_for_page(port: u16, child: &mut Child) -> (String, String) {
    let start = Instant::now();
    loop {
        if let Some(answer) = get(port, "/") {
            return answer;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("acoupi exited ({status}) before serving the dashboard");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no dashboard on port {port}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_page_with_csp(head: &str) {
    assert!(
        head.starts_with("http/1.") && head.contains(" 200"),
        "{head}"
    );
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(head.contains("frame-ancestors 'none'"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
}

fn stop(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn run_serves_the_dashboard_and_serve_serves_its_store_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_local_port();
    let pipeline = dashboard_pipeline(dir.path(), &format!("127.0.0.1:{port}"));
    let mut station = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("run")
        .arg(&pipeline)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (head, body) = wait_for_page(port, &mut station);
    stop(&mut station);
    let mut log = String::new();
    station
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_page_with_csp(&head);
    assert!(body.contains("<nav"), "{body}");
    assert!(
        log.contains(&format!("http://127.0.0.1:{port}/")),
        "the URL is logged: {log}"
    );
    assert!(
        get(port, "/assets/style.css").is_none(),
        "the dashboard stops with the station"
    );

    // The store no station holds now: `acoupi serve` on the pipeline's store.
    let store = dir.path().join("out/dashboard.duckdb");
    assert!(store.exists());
    let port = free_local_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("serve")
        .arg(&store)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (head, _) = wait_for_page(port, &mut serve);
    stop(&mut serve);
    assert_page_with_csp(&head);
}

#[test]
fn serve_refuses_another_machine_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("serve")
        .arg(dir.path().join("none.duckdb"))
        .args(["--listen", "0.0.0.0:8080"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--token-env"), "{stderr}");
}

#[test]
fn a_non_loopback_listen_without_a_token_is_a_validation_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dashboard_pipeline(dir.path(), "0.0.0.0:8080");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("listen = "))
        .unwrap()
        + 1;
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .arg("validate")
        .arg(&pipeline)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("web-token-required"), "{stderr}");
    assert!(
        stderr.contains(&format!("dashboard.toml:{line}:10")),
        "line:col {line}:10 in {stderr}"
    );
}

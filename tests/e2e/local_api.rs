//! The local API with the real binary: while `acoupi run` holds the demo's store,
//! `acoupi query`, `status` and `export` go through `<store>.sock` (no snapshot taken),
//! answer as they do after the station stopped, and every escape of `acoupi query`'s
//! sandbox is refused there too. The socket is 0600, replaces a stale one and is removed
//! on exit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::run::{RunningStation, demo_in};

/// `acoupi ARGS` with `TMPDIR=tmp` (where a snapshot would go) and debug logs.
fn acoupi(tmp: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(args)
        .env("TMPDIR", tmp)
        .env("RUST_LOG", "acoupi=debug")
        .output()
        .unwrap()
}

fn stdout_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

const THROUGH: &str = "through the station's local API";

#[test]
fn query_status_and_export_go_through_the_running_stations_socket() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let p = pipeline.to_str().unwrap();
    let socket = dir.path().join("station.duckdb.sock");
    let tmp = dir.path().join("cli-tmp");
    std::fs::create_dir(&tmp).unwrap();
    // A socket left by a crashed run: nothing answers on it, so it is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());

    let mut station = RunningStation::start(&pipeline);
    assert_eq!(
        station.wait_for(" analysed ", 2),
        2,
        "the station analysed nothing"
    );
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    // Query: through the socket, no snapshot.
    let ids = acoupi(
        &tmp,
        &[
            "query",
            p,
            "SELECT id, duration, samplerate FROM recordings ORDER BY id",
            "--format",
            "csv",
        ],
    );
    assert!(
        String::from_utf8_lossy(&ids.stderr).contains(THROUGH),
        "{}",
        String::from_utf8_lossy(&ids.stderr)
    );
    let live = stdout_ok(&ids);
    assert!(live.lines().count() >= 2, "{live}");
    let listed: Vec<String> = live
        .lines()
        .skip(1)
        .map(|l| format!("'{}'", l.split(',').next().unwrap()))
        .collect();
    let same_rows = format!(
        "SELECT id, duration, samplerate FROM recordings WHERE id IN ({}) ORDER BY id",
        listed.join(", ")
    );
    let table_live = stdout_ok(&acoupi(&tmp, &["query", p, &same_rows]));
    let json_live = stdout_ok(&acoupi(&tmp, &["query", p, &same_rows, "--format", "json"]));

    // The bounds of the exports: what is complete now (recordings are stored in order).
    let bounds = stdout_ok(&acoupi(
        &tmp,
        &[
            "query",
            p,
            "SELECT strftime(max(r.created_on), '%Y-%m-%dT%H:%M:%S.%fZ') FROM recordings r JOIN model_outputs mo ON mo.recording_id = r.id",
            "--format",
            "csv",
        ],
    ));
    let until = bounds.lines().nth(1).unwrap().to_owned();
    let exports = [
        ("recordings", "csv", "r.csv"),
        ("detections", "parquet", "d.parquet"),
        ("detections", "raven", "d.txt"),
    ];
    for (what, format, name) in exports {
        let output = dir.path().join(format!("live-{name}"));
        let out = acoupi(
            &tmp,
            &[
                "export",
                p,
                "--what",
                what,
                "--format",
                format,
                "--until",
                &until,
                "-o",
                output.to_str().unwrap(),
            ],
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains(THROUGH));
        stdout_ok(&out);
    }
    let status = acoupi(&tmp, &["status", p]);
    assert!(String::from_utf8_lossy(&status.stderr).contains(THROUGH));
    assert!(stdout_ok(&status).contains("detections: "));
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "a snapshot was taken"
    );
    // The station wrote nothing outside its folders: its scratch folder is empty again.
    assert_eq!(
        std::fs::read_dir(dir.path().join("station.duckdb.export"))
            .unwrap()
            .count(),
        0
    );

    station.terminate();
    assert!(station.child.wait().unwrap().success());
    assert!(!socket.exists(), "the socket outlived the station");

    // After the stop: the same answers from the file.
    let file = acoupi(&tmp, &["query", p, &same_rows, "--format", "csv"]);
    assert!(!String::from_utf8_lossy(&file.stderr).contains(THROUGH));
    assert_eq!(stdout_ok(&file), live);
    assert_eq!(
        stdout_ok(&acoupi(&tmp, &["query", p, &same_rows])),
        table_live
    );
    assert_eq!(
        stdout_ok(&acoupi(&tmp, &["query", p, &same_rows, "--format", "json"])),
        json_live
    );
    for (what, format, name) in exports {
        let output = dir.path().join(format!("after-{name}"));
        stdout_ok(&acoupi(
            &tmp,
            &[
                "export",
                p,
                "--what",
                what,
                "--format",
                format,
                "--until",
                &until,
                "-o",
                output.to_str().unwrap(),
            ],
        ));
        let live = dir.path().join(format!("live-{name}"));
        // The same rows in the same order: the same bytes (Parquet included).
        let (live, after) = (
            std::fs::read(&live).unwrap(),
            std::fs::read(&output).unwrap(),
        );
        assert!(!live.is_empty(), "{name}");
        assert_eq!(live, after, "{name}");
    }
}

/// The escapes of `acoupi query`'s sandbox, tried on the running station's socket:
/// each exits 1, reads nothing outside the store and writes nothing.
#[test]
fn the_sandbox_holds_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let p = pipeline.to_str().unwrap();
    let tmp = dir.path().join("cli-tmp");
    std::fs::create_dir(&tmp).unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let secret = dir.path().join("secret.csv");
    std::fs::write(&secret, "secret\nroot:x\n").unwrap();
    let quoted = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', "''"));
    let scratch = dir.path().join("station.duckdb.export");
    let escapes = [
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "FROM '/etc/passwd'".to_owned(),
        format!("FROM {}", quoted(&secret)),
        format!("SELECT * FROM read_csv_auto({})", quoted(&secret)),
        "SELECT * FROM read_text('/etc/passwd')".to_owned(),
        "SELECT * FROM read_blob('/etc/passwd')".to_owned(),
        "SELECT * FROM glob('/etc/*')".to_owned(),
        "SELECT getenv('HOME')".to_owned(),
        format!("COPY (SELECT 1) TO {}", quoted(&target.join("x.csv"))),
        format!("COPY recordings TO {}", quoted(&scratch.join("x.csv"))),
        format!("EXPORT DATABASE {}", quoted(&target.join("d"))),
        format!("ATTACH {} AS o", quoted(&target.join("x.duckdb"))),
        "INSTALL httpfs".to_owned(),
        "LOAD httpfs".to_owned(),
        "SET enable_external_access = true".to_owned(),
        "SET allowed_directories = ['/']".to_owned(),
        "DELETE FROM recordings".to_owned(),
        "SELECT 1; DELETE FROM recordings".to_owned(),
        "SELECT * FROM query('DELETE FROM recordings')".to_owned(),
    ];
    let mut station = RunningStation::start(&pipeline);
    assert_eq!(
        station.wait_for(" analysed ", 1),
        1,
        "the station analysed nothing"
    );
    for sql in &escapes {
        let output = acoupi(&tmp, &["query", p, sql]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(THROUGH), "{sql}: {stderr}");
        assert_eq!(output.status.code(), Some(1), "{sql}: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            !stdout.contains("root:") && !stdout.contains("secret"),
            "{sql}: {stdout}"
        );
    }
    let after = stdout_ok(&acoupi(
        &tmp,
        &[
            "query",
            p,
            "SELECT count(*) >= 1 AS kept FROM recordings",
            "--format",
            "csv",
        ],
    ));
    station.terminate();
    assert!(station.child.wait().unwrap().success());
    assert_eq!(after, "kept\ntrue\n");
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "an escape wrote a file"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "a snapshot was taken"
    );
}

//! Crash safety of the store: a process killed with SIGKILL in the middle of a batch of
//! inserts leaves a file that opens and holds only whole model outputs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acoupi_store_duckdb::DuckDbStore;

fn count(db: &duckdb::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |row| row.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[cfg(unix)]
#[test]
fn sigkill_during_inserts_leaves_only_whole_model_outputs() {
    for round in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        // The store benchmark (a tenth of it: 1,000 recordings, then 1,000 model outputs of
        // 5 detections × 2 tags, each output in one transaction).
        let mut child = Command::new(env!("CARGO_BIN_EXE_acoupi"))
            .args([
                "bench",
                "store",
                "--scale",
                "0.1",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let path = dir.path().join("bench.duckdb");
        // Wait until outputs are being written (read through a snapshot while the
        // benchmark holds the file), then kill it at a different point each round.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            if !path.exists() {
                continue;
            }
            let query = Command::new(env!("CARGO_BIN_EXE_acoupi"))
                .args([
                    "query",
                    path.to_str().unwrap(),
                    "SELECT count(*) FROM model_outputs",
                    "--format",
                    "csv",
                ])
                .output()
                .unwrap();
            let written: i64 = String::from_utf8_lossy(&query.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0);
            if written > 0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50 + 150 * round));
        assert!(
            Command::new("kill")
                .args(["-KILL", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let _ = child.wait();

        // The file opens (and migrates nothing new), through the store and raw DuckDB.
        drop(
            DuckDbStore::open(&path)
                .unwrap_or_else(|e| panic!("round {round}: the store does not open: {e}")),
        );
        let db = duckdb::Connection::open(&path).unwrap();
        let outputs = count(&db, "SELECT count(*) FROM model_outputs");
        assert!(
            outputs > 0,
            "round {round}: killed before any output was written; kill later"
        );
        let partial_outputs = count(
            &db,
            "SELECT count(*) FROM model_outputs o WHERE (SELECT count(*) FROM detections d WHERE d.model_output_id = o.id) <> 5",
        );
        let partial_detections = count(
            &db,
            "SELECT count(*) FROM detections d WHERE (SELECT count(*) FROM detection_tags t WHERE t.detection_id = d.id) <> 2",
        );
        let orphans = count(
            &db,
            "SELECT count(*) FROM detections d WHERE NOT EXISTS (SELECT 1 FROM model_outputs o WHERE o.id = d.model_output_id)",
        );
        assert_eq!(
            (partial_outputs, partial_detections, orphans),
            (0, 0, 0),
            "round {round}: {outputs} outputs"
        );
    }
}

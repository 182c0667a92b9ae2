//! GUANO metadata in the recordings `acoupi run` keeps, read back by an independent
//! reader: guano-py, the reference implementation (`pip install guano`; scripts/test.sh
//! installs it).

use std::path::Path;
use std::process::Command;

use crate::run::demo_in;

#[test]
fn kept_recordings_carry_guano_that_guano_py_reads() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["run", pipeline.to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    let (path, id, created): (String, String, String) = db
        .query_row("SELECT path, id::VARCHAR, strftime(created_on AT TIME ZONE 'Europe/London', '%Y-%m-%dT%H:%M:%S') FROM recordings", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap();
    assert!(Path::new(&path).exists());
    let script = "import sys, guano\n\
                  g = guano.GuanoFile(sys.argv[1])\n\
                  print(g['Timestamp'].strftime('%Y-%m-%dT%H:%M:%S'), g['Timestamp'].utcoffset().total_seconds())\n\
                  print(g['Make'], '|', g['Serial'] is not None, '|', g['Samplerate'], '|', g['Loc Position'])\n\
                  print(g['acoupi', 'Deployment'], '|', g['acoupi', 'Recording ID'])";
    let reader = Command::new("python3")
        .args(["-c", script, &path])
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&reader.stderr);
    assert!(
        reader.status.success(),
        "guano-py could not read the file (install it with `pip install guano`): {stderr}"
    );
    let text = String::from_utf8_lossy(&reader.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let (time, offset) = lines[0].split_once(' ').unwrap();
    assert_eq!(time, created, "Timestamp in the deployment timezone");
    assert!(offset == "0.0" || offset == "3600.0", "{offset}");
    assert_eq!(
        lines[1], "acoupi | True | 22050 | (51.752, -1.2577)",
        "{text}"
    );
    assert_eq!(lines[2], format!("demo | {id}"));
}

//! Start-up recovery on the real binary: what a power cut left in the temp folder is
//! stored and analysed, or quarantined with a reason, and reported in one line.

use std::process::Command;

use crate::root;
use crate::run::demo_in;

#[test]
fn a_restart_analyses_what_a_stop_left_and_quarantines_what_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = demo_in(dir.path());
    let temp = dir.path().join("tmp");
    std::fs::create_dir_all(&temp).unwrap();
    // A recording written just before a power cut (never stored), and one cut short.
    std::fs::copy(
        root().join("pipelines/audio/03_song.wav"),
        temp.join("20260621_053000_left.wav"),
    )
    .unwrap();
    let bytes = std::fs::read(root().join("pipelines/audio/01_dawn.wav")).unwrap();
    std::fs::write(
        temp.join("20260621_053010_cut.wav"),
        &bytes[..bytes.len() / 3],
    )
    .unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_acoupi"))
        .args(["run", pipeline.to_str().unwrap(), "--once"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "recovery: 1 unstored recordings stored, 1 quarantined, 1 recordings to analyse"
        ),
        "one line reports the recovery: {stderr}"
    );
    let db = duckdb::Connection::open(dir.path().join("station.duckdb")).unwrap();
    let analysed: i64 = db
        .query_row("SELECT count(DISTINCT r.id) FROM recordings r JOIN model_outputs mo ON mo.recording_id = r.id", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        analysed, 2,
        "the left-over recording and the new one are both analysed"
    );
    assert!(temp.join("quarantine/20260621_053010_cut.wav").exists());
    let reason =
        std::fs::read_to_string(temp.join("quarantine/20260621_053010_cut.wav.reason.txt"))
            .unwrap();
    assert!(reason.contains("cut short"), "{reason}");
    let left = std::fs::read_dir(&temp)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
        .count();
    assert_eq!(
        left, 0,
        "management took both recordings out of the temp folder"
    );
}

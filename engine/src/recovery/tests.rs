use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::tasks::testing::{Calls, FakeStore};

/// A 16-bit mono WAV of `frames` frames at 8 kHz, written with hound.
fn wav(path: &Path, frames: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..frames {
        writer.write_sample((i % 100) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

#[test]
fn unknown_files_are_stored_or_quarantined_and_known_ones_come_back_with_their_models() {
    let dir = tempfile::tempdir().unwrap();
    let (temp, root) = (dir.path().join("tmp"), dir.path().join("recordings"));
    std::fs::create_dir_all(&temp).unwrap();
    std::fs::create_dir_all(root.join("2026")).unwrap();
    let store = Arc::new(FakeStore::new(&Calls::default()));
    // Known, analysed by model m.
    wav(&temp.join("a.wav"), 800);
    store.add_recording(&temp.join("a.wav"), &["m"]);
    // Unknown and readable, with a GUANO timestamp.
    wav(&temp.join("b.wav"), 8_000);
    let mut guano = crate::guano::Guano::default();
    guano.set("Timestamp", "2026-06-21T05:30:00+01:00");
    guano.set("TE", "10");
    crate::guano::write(&temp.join("b.wav"), &guano).unwrap();
    // Unknown and unreadable: empty, text, cut short.
    std::fs::write(temp.join("c.wav"), b"").unwrap();
    std::fs::write(temp.join("d.WAV"), b"not audio at all").unwrap();
    wav(&temp.join("e.wav"), 8_000);
    let bytes = std::fs::read(temp.join("e.wav")).unwrap();
    std::fs::write(temp.join("e.wav"), &bytes[..bytes.len() / 2]).unwrap();
    // Leftovers of interrupted writes; a kept file that is gone; a kept file that is there.
    std::fs::write(temp.join("b.wav.acoupi-guano-partial"), b"half").unwrap();
    std::fs::write(root.join("2026/y.wav.acoupi-partial"), b"half").unwrap();
    // Names acoupi never writes are not its to remove.
    std::fs::write(root.join("2026/notes.partial"), b"mine").unwrap();
    store.add_kept(&root.join("2026/gone.wav"), Utc::now(), &[]);
    std::fs::write(root.join("2026/here.wav"), b"RIFF").unwrap();
    store.add_kept(&root.join("2026/here.wav"), Utc::now(), &[]);

    let (report, waiting) = reconcile(
        &temp,
        &root,
        store.as_ref(),
        &Deployment::new("site"),
        chrono_tz::UTC,
    );
    assert_eq!(
        report,
        RecoveryReport {
            stored: 1,
            quarantined: 3,
            missing: 1,
            partials: 2,
            ..Default::default()
        }
    );
    let waiting: Vec<(String, Vec<String>, f64)> = waiting
        .iter()
        .map(|(r, models)| {
            (
                r.path
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                models.clone(),
                r.duration,
            )
        })
        .collect();
    assert_eq!(
        waiting,
        [
            ("a.wav".into(), vec!["m".to_string()], 3.0),
            ("b.wav".into(), vec![], 1.0)
        ]
    );
    let stored = store.get_recordings_by_path(&[temp.join("b.wav")]).unwrap();
    assert_eq!(
        stored[0].0.created_on,
        Utc.with_ymd_and_hms(2026, 6, 21, 4, 30, 0).unwrap(),
        "time from GUANO"
    );
    assert_eq!(stored[0].0.time_expansion, 10.0);
    for (name, reason) in [
        ("c.wav", "not a readable WAV"),
        ("d.WAV", "not a readable WAV"),
        ("e.wav", "cut short"),
    ] {
        assert!(
            temp.join(QUARANTINE).join(name).exists() && !temp.join(name).exists(),
            "{name} quarantined"
        );
        let text =
            std::fs::read_to_string(temp.join(QUARANTINE).join(format!("{name}.reason.txt")))
                .unwrap();
        assert!(text.contains(reason), "{name}: {text}");
    }
    assert!(
        !temp.join("b.wav.acoupi-guano-partial").exists()
            && !root.join("2026/y.wav.acoupi-partial").exists()
    );
    assert!(root.join("2026/notes.partial").exists());
    let kept = store.get_kept_files(&root).unwrap();
    assert_eq!(
        kept.len(),
        1,
        "the gone file's path is cleared, the other stays"
    );
    assert!(kept[0].path.ends_with("here.wav"));

    // A second start finds nothing new to do.
    let (again, _) = reconcile(
        &temp,
        &root,
        store.as_ref(),
        &Deployment::new("site"),
        chrono_tz::UTC,
    );
    assert_eq!(again, RecoveryReport::default());
}

#[test]
fn a_missing_recordings_root_clears_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FakeStore::new(&Calls::default()));
    let root = dir.path().join("usb-drive");
    store.add_kept(&root.join("a.wav"), Utc::now(), &[]);
    let (report, _) = reconcile(
        &dir.path().join("tmp"),
        &root,
        store.as_ref(),
        &Deployment::new("site"),
        chrono_tz::UTC,
    );
    assert_eq!(report.missing, 0);
    assert_eq!(store.get_kept_files(&root).unwrap().len(), 1);
}

#[test]
fn links_are_not_followed_and_nothing_behind_them_is_removed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let (temp, root, outside) = (
        dir.path().join("tmp"),
        dir.path().join("recordings"),
        dir.path().join("outside"),
    );
    for folder in [&temp, &root, &outside] {
        std::fs::create_dir_all(folder).unwrap();
    }
    // Files acoupi never wrote, and even one of its own names, behind a linked folder.
    for name in ["x.partial", "y.guano-partial", "z.wav.acoupi-partial"] {
        std::fs::write(outside.join(name), b"not yours").unwrap();
    }
    symlink(&outside, root.join("2026")).unwrap();
    symlink(&outside, temp.join("linked")).unwrap();
    symlink(".", root.join("loopA")).unwrap();
    symlink(".", root.join("loopB")).unwrap();
    // A link named like a recording in the temp folder is neither stored nor quarantined.
    symlink(outside.join("x.partial"), temp.join("evil.wav")).unwrap();
    let store = Arc::new(FakeStore::new(&Calls::default()));
    let (report, waiting) = reconcile(
        &temp,
        &root,
        store.as_ref(),
        &Deployment::new("site"),
        chrono_tz::UTC,
    );
    assert_eq!(report, RecoveryReport::default());
    assert!(waiting.is_empty());
    for name in ["x.partial", "y.guano-partial", "z.wav.acoupi-partial"] {
        assert_eq!(
            std::fs::read(outside.join(name)).unwrap(),
            b"not yours",
            "{name}"
        );
    }
    assert!(temp.join("evil.wav").symlink_metadata().is_ok() && !temp.join(QUARANTINE).exists());
}

#[test]
fn a_kept_path_the_guard_refuses_keeps_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(dir.path().join("victim.wav"), b"RIFF").unwrap();
    let store = Arc::new(FakeStore::new(&Calls::default()));
    store.add_kept(&root.join("../victim.wav"), Utc::now(), &[]);
    store.add_kept(&root.join("../gone.wav"), Utc::now(), &[]);
    let (report, _) = reconcile(
        &dir.path().join("tmp"),
        &root,
        store.as_ref(),
        &Deployment::new("site"),
        chrono_tz::UTC,
    );
    assert_eq!((report.refused, report.missing), (2, 0));
    assert_eq!(
        store.get_kept_files(&root).unwrap().len(),
        2,
        "both rows keep their paths"
    );
}

#[test]
fn quarantine_never_overwrites_a_file_already_there() {
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("tmp");
    std::fs::create_dir_all(temp.join(QUARANTINE)).unwrap();
    std::fs::write(temp.join(QUARANTINE).join("c.wav"), b"first").unwrap();
    std::fs::write(
        temp.join(QUARANTINE).join("c.wav.reason.txt"),
        b"first reason",
    )
    .unwrap();
    std::fs::write(
        temp.join(QUARANTINE).join("c_2.wav.reason.txt"),
        b"a reason alone",
    )
    .unwrap();
    std::fs::write(temp.join("c.wav"), b"second").unwrap();
    let store = Arc::new(FakeStore::new(&Calls::default()));
    let (report, _) = reconcile(
        &temp,
        &dir.path().join("recordings"),
        store.as_ref(),
        &Deployment::new("site"),
        chrono_tz::UTC,
    );
    assert_eq!(report.quarantined, 1);
    let read = |name: &str| std::fs::read_to_string(temp.join(QUARANTINE).join(name)).unwrap();
    assert_eq!(
        (read("c.wav"), read("c.wav.reason.txt")),
        ("first".into(), "first reason".into())
    );
    assert_eq!(read("c_2.wav.reason.txt"), "a reason alone");
    assert_eq!(read("c_3.wav"), "second");
    assert!(read("c_3.wav.reason.txt").contains("not a readable WAV"));
}

#[test]
fn a_recovered_recording_keeps_the_id_in_its_guano_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let temp = dir.path().join("tmp");
    std::fs::create_dir_all(&temp).unwrap();
    let store = Arc::new(FakeStore::new(&Calls::default()));
    let taken = store.add_kept(&dir.path().join("recordings/kept.wav"), Utc::now(), &[]);
    let own = uuid::Uuid::new_v4();
    for (name, id) in [
        ("a.wav", own.to_string()),
        ("b.wav", "not-an-id".to_string()),
        ("c.wav", taken.to_string()),
    ] {
        wav(&temp.join(name), 800);
        let mut guano = crate::guano::Guano::default();
        guano.set("acoupi|Recording ID", id);
        crate::guano::write(&temp.join(name), &guano).unwrap();
    }
    let (report, _) = reconcile(
        &temp,
        &dir.path().join("recordings"),
        store.as_ref(),
        &Deployment::new("site"),
        chrono_tz::UTC,
    );
    assert_eq!(report.stored, 3);
    let id_of = |name: &str| {
        store.get_recordings_by_path(&[temp.join(name)]).unwrap()[0]
            .0
            .id
    };
    assert_eq!(id_of("a.wav"), own, "the id the recorder gave it");
    assert_ne!(id_of("b.wav"), own);
    assert_ne!(
        id_of("c.wav"),
        taken,
        "an id another recording has is not reused"
    );
}

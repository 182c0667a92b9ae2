use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::tasks::testing::{Calls, DetectionSpec, FakeStore};

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, day, 6, 0, 0).unwrap()
}

fn file(name: &str, day: u32, best: Option<f64>, tags: &[(&str, f64)]) -> KeptFile {
    KeptFile {
        recording_id: Uuid::new_v4(),
        path: PathBuf::from("/rec").join(name),
        created_on: at(day),
        best_score: best,
        kept: false,
        tags: tags
            .iter()
            .map(|(v, s)| crate::store::TagScore {
                key: "species".into(),
                value: v.to_string(),
                score: *s,
            })
            .collect(),
    }
}

fn names(plan: &RetentionPlan) -> Vec<String> {
    plan.deletions
        .iter()
        .map(|d| d.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// A season's folder: silent clips and clips of three species.
fn season() -> Vec<KeptFile> {
    vec![
        file("1-silent.wav", 1, None, &[]),
        file(
            "2-robin-low.wav",
            2,
            Some(0.55),
            &[("Erithacus rubecula", 0.55)],
        ),
        file("3-owl.wav", 3, Some(0.6), &[("Bubo bubo", 0.6)]),
        file(
            "4-robin-best.wav",
            4,
            Some(0.95),
            &[("Erithacus rubecula", 0.95)],
        ),
        file("5-silent.wav", 5, None, &[]),
        file(
            "6-wren.wav",
            6,
            Some(0.7),
            &[("Troglodytes troglodytes", 0.7)],
        ),
        file(
            "7-robin-mid.wav",
            7,
            Some(0.8),
            &[("Erithacus rubecula", 0.8)],
        ),
    ]
}

#[test]
fn decisions_table() {
    let files = season();
    let sizes = vec![Some(100); files.len()];
    let now = at(20);
    let policy = |f: &dyn Fn(&mut RetentionPolicy)| {
        let mut p = RetentionPolicy::default();
        f(&mut p);
        p
    };
    let cases: Vec<(&str, RetentionPolicy, u64, Vec<&str>, u64)> = vec![
        ("no rule deletes nothing", policy(&|_| {}), 0, vec![], 0),
        (
            "space: silent oldest first, then lowest score",
            policy(&|_| {}),
            350,
            vec![
                "1-silent.wav",
                "5-silent.wav",
                "2-robin-low.wav",
                "3-owl.wav",
            ],
            0,
        ),
        (
            "space: exactly enough stops",
            policy(&|_| {}),
            200,
            vec!["1-silent.wav", "5-silent.wav"],
            0,
        ),
        (
            "space: protected species and folder are skipped",
            policy(&|p| {
                p.protect_species.insert("Bubo bubo".into());
                p.protect_folders.push(PathBuf::from("/rec/5-silent.wav"));
            }),
            300,
            vec!["1-silent.wav", "2-robin-low.wav", "6-wren.wav"],
            0,
        ),
        (
            "space: keep_best 1 protects each species' best",
            policy(&|p| p.keep_best = Some(1)),
            700,
            vec![
                "1-silent.wav",
                "5-silent.wav",
                "2-robin-low.wav",
                "7-robin-mid.wav",
            ],
            300,
        ),
        (
            "keep_best counts only species_key tags",
            policy(&|p| {
                p.keep_best = Some(1);
                p.species_key = Some("call".into());
            }),
            200,
            vec!["1-silent.wav", "5-silent.wav"],
            0,
        ),
        (
            "age: older than 16 days, unless protected",
            policy(&|p| {
                p.max_age = Some(Duration::from_secs(16 * 86_400));
                p.keep_best = Some(1);
            }),
            0,
            vec!["1-silent.wav", "2-robin-low.wav"],
            0,
        ),
        (
            "age first, then space",
            policy(&|p| p.max_age = Some(Duration::from_secs(18 * 86_400))),
            200,
            vec!["1-silent.wav", "5-silent.wav"],
            0,
        ),
    ];
    for (name, policy, shortfall, expected, short) in cases {
        let plan = decide(&policy, &files, &sizes, now, shortfall);
        assert_eq!(names(&plan), expected, "{name}");
        assert_eq!(plan.shortfall, short, "{name}");
    }
}

#[test]
fn keep_best_prefers_the_older_clip_among_equal_scores_and_missing_files_are_cleared() {
    let files = vec![
        file("a.wav", 1, Some(0.9), &[("x", 0.9)]),
        file("b.wav", 2, Some(0.9), &[("x", 0.9)]),
        file("gone.wav", 3, None, &[]),
    ];
    let policy = RetentionPolicy {
        keep_best: Some(1),
        ..Default::default()
    };
    let plan = decide(&policy, &files, &[Some(10), Some(10), None], at(20), 10);
    assert_eq!(names(&plan), ["gone.wav", "b.wav"]);
    assert_eq!(plan.deletions[0].reason, Reason::Missing);
    assert_eq!(
        plan.deletions[1].reason,
        Reason::SpaceLowScore { score: 0.9 }
    );
    assert_eq!(plan.protected, 1);
}

/// A disk of `capacity` bytes whose used space is the size of the files under `root`:
/// deleting a file frees its bytes, as on a real filesystem.
struct FolderDisk {
    root: PathBuf,
    capacity: u64,
}

impl DiskSpace for FolderDisk {
    fn space(&self, _: &Path) -> std::io::Result<Space> {
        let mut used = 0;
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    stack.push(entry.path());
                } else {
                    used += entry.metadata()?.len();
                }
            }
        }
        Ok(Space {
            available: self.capacity.saturating_sub(used),
            total: self.capacity,
        })
    }
    fn same_filesystem(&self, _: &Path, _: &Path) -> bool {
        true
    }
}

/// Five 2,000-byte recordings on a 12,000-byte disk (2,000 free), oldest silent.
fn station(
    min_free: SpaceAmount,
    protect_all: bool,
) -> (tempfile::TempDir, Arc<FakeStore>, Retention) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let store = Arc::new(FakeStore::new(&Calls::default()));
    for day in 1..=5u32 {
        let path = root.join(format!("2026/06/{day:02}.wav"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![0u8; 2000]).unwrap();
        let score = 0.5 + day as f64 / 20.0;
        let detections: &[DetectionSpec<'_>] = if day == 1 {
            &[]
        } else {
            &[(score, &[("species", "Turdus merula", 1.0)])]
        };
        store.add_kept(&path, at(day), detections);
    }
    let mut policy = RetentionPolicy {
        min_free: Some(min_free),
        ..Default::default()
    };
    if protect_all {
        policy.protect_folders.push(root.clone());
    }
    let disk = Arc::new(FolderDisk {
        root: root.clone(),
        capacity: 12_000,
    });
    let retention = Retention::new(policy, root, store.clone(), disk);
    (dir, store, retention)
}

#[test]
fn ensure_room_deletes_silent_then_lowest_until_the_floor_holds() {
    let (dir, store, retention) = station(SpaceAmount::Bytes(5_000), false);
    retention
        .ensure_room(&dir.path().join("tmp"), at(20))
        .unwrap();
    let root = dir.path().join("recordings/2026/06");
    let left: Vec<bool> = (1..=5)
        .map(|d| root.join(format!("{d:02}.wav")).exists())
        .collect();
    assert_eq!(
        left,
        [false, false, true, true, true],
        "the silent one, then the lowest score"
    );
    assert_eq!(store.path_of(0), None, "rows stay, with no path");
    assert_eq!(store.path_of(1), None);
    assert_eq!(store.path_of(2), Some(root.join("03.wav")));
    assert_eq!(retention.disk.space(&root).unwrap().available, 6_000);
    // Room enough now: nothing else goes.
    retention
        .ensure_room(&dir.path().join("tmp"), at(20))
        .unwrap();
    assert!(root.join("03.wav").exists());
}

#[test]
fn ensure_room_refuses_when_everything_left_is_protected() {
    let (dir, _, retention) = station(SpaceAmount::Percent(50.0), true);
    let error = retention
        .ensure_room(&dir.path().join("tmp"), at(20))
        .unwrap_err();
    assert!(
        error.contains("is 2.0 KiB, below min_free 5.9 KiB") && error.contains("protected"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("recordings/2026/06"))
            .unwrap()
            .count(),
        5
    );
}

#[test]
fn the_age_sweep_runs_hourly_and_space_checks_every_time() {
    let (dir, _, mut retention) = station(SpaceAmount::Bytes(0), false);
    retention.policy.max_age = Some(Duration::from_secs(17 * 86_400));
    let report = retention.run_if_due(at(20)).unwrap().expect("first sweep");
    assert_eq!(
        (report.deleted, report.freed),
        (2, 4_000),
        "days 1 and 2 are older than 17 days"
    );
    assert_eq!(
        retention
            .run_if_due(at(20) + chrono::TimeDelta::minutes(30))
            .unwrap(),
        None,
        "not due again within the hour"
    );
    let report = retention
        .run_if_due(at(21) + chrono::TimeDelta::minutes(1))
        .unwrap()
        .expect("an hour later");
    assert_eq!(report.deleted, 2, "days 3 and 4 are now older than 17 days");
    assert!(!dir.path().join("recordings/2026/06/04.wav").exists());
    assert!(dir.path().join("recordings/2026/06/05.wav").exists());
}

#[test]
fn a_missing_root_deletes_nothing() {
    let (dir, _, retention) = station(SpaceAmount::Bytes(100_000), false);
    std::fs::rename(dir.path().join("recordings"), dir.path().join("unmounted")).unwrap();
    assert!(matches!(
        retention.plan(at(20)),
        Err(RetentionError::RootMissing(_))
    ));
    assert_eq!(
        std::fs::read_dir(dir.path().join("unmounted/2026/06"))
            .unwrap()
            .count(),
        5
    );
}

#[test]
fn stored_paths_outside_the_root_or_through_a_link_are_refused_and_keep_their_rows() {
    use std::os::unix::fs::symlink;
    let (dir, store, mut retention) = station(SpaceAmount::Bytes(0), false);
    retention.policy.max_age = Some(Duration::from_secs(86_400));
    let root = dir.path().join("recordings");
    // A row from a merged shard pointing out of the tree, and a day folder replaced by a
    // link to a folder outside.
    std::fs::write(dir.path().join("victim.txt"), b"mine").unwrap();
    let victim = store.add_kept(&root.join("../victim.txt"), at(1), &[]);
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("outside/behind.wav"), b"mine too").unwrap();
    symlink(dir.path().join("outside"), root.join("2026/07")).unwrap();
    let behind = store.add_kept(&root.join("2026/07/behind.wav"), at(2), &[]);

    let plan = retention.plan(at(20)).unwrap();
    let refused: Vec<Uuid> = plan.refused.iter().map(|(id, _)| *id).collect();
    assert_eq!(refused, [victim, behind]);
    assert!(
        matches!(plan.refused[0].1, DeleteError::ParentDir(_))
            && matches!(plan.refused[1].1, DeleteError::Link { .. })
    );
    let text = plan.describe(true);
    assert!(
        text.contains("has a `..` component")
            && text.contains("goes through the symbolic link")
            && text.contains("2 refused"),
        "{text}"
    );
    assert_eq!(
        names(&plan),
        ["01.wav", "02.wav", "03.wav", "04.wav", "05.wav"],
        "the station's own old files go"
    );
    let report = retention.apply(&plan);
    assert_eq!((report.deleted, report.errors), (5, 0));
    assert_eq!(
        std::fs::read(dir.path().join("victim.txt")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(dir.path().join("outside/behind.wav")).unwrap(),
        b"mine too"
    );
    assert_eq!(
        store.path_of(5),
        Some(root.join("../victim.txt")),
        "the row keeps its path"
    );
    assert_eq!(store.path_of(6), Some(root.join("2026/07/behind.wav")));

    // A plan made before the link appeared is checked again when applied.
    let plan = RetentionPlan {
        deletions: vec![Deletion {
            recording_id: behind,
            path: root.join("2026/07/behind.wav"),
            created_on: at(1),
            size: 8,
            reason: Reason::Missing,
        }],
        ..Default::default()
    };
    assert_eq!(retention.apply(&plan).errors, 1);
    assert!(dir.path().join("outside/behind.wav").exists());
}

#[test]
fn a_protected_folder_named_through_a_link_protects_the_same_recordings() {
    let (dir, _, mut retention) = station(SpaceAmount::Bytes(0), false);
    retention.policy.max_age = Some(Duration::from_secs(86_400));
    std::os::unix::fs::symlink(dir.path(), dir.path().join("alias")).unwrap();
    retention.policy.protect_folders = vec![dir.path().join("alias/recordings/2026")];
    let plan = retention.plan(at(20)).unwrap();
    assert_eq!(
        (plan.deletions.len(), plan.protected),
        (0, 5),
        "{}",
        plan.describe(true)
    );
}

//! Balanced shards (`acoupi reprocess --plan`): a plan lists an archive's audio files
//! once, with their sizes, modification times and durations (from the headers), so that
//! workers split the archive by audio duration instead of by path hash, and never walk
//! the archive themselves.
//!
//! The plan does not depend on the shard count: every worker reads the whole plan and
//! computes the same assignment for its count ([`assign`]): files longest first (ties by
//! relative path), each to the shard with the least audio so far (ties to the lowest
//! shard). This greedy longest-first split keeps the shards' total durations within one
//! file of each other: after every step the gap between the fullest and the emptiest
//! shard is at most the longest file. A file whose header could not be read counts as
//! no audio (it costs a worker nothing but an error row).
//!
//! A worker with a plan looks only at its own files (one `stat` each, for the size and
//! modification time resuming compares); a file gone since the plan was written is
//! reported like an unreadable archive entry. Paths in the plan are relative to the
//! archive root, with `/` separators, so the plan works wherever the archive is mounted;
//! one that is absolute or climbs out of the root (`..`) is refused.
//!
//! The file format (Parquet, written by the store crate) is documented in
//! `docs/reprocess.md`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

use super::discovery::{ArchiveFile, DiscoveryError, discover, mtime_ns};
use super::{AudioProbe, Shard};

/// One file of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanEntry {
    /// Relative to the archive root, `/`-separated.
    pub relative: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Seconds of audio, from the header; `None` when the header could not be read.
    pub duration: Option<f64>,
}

/// A plan as [`make_plan`] builds it.
#[derive(Debug, Default)]
pub struct Plan {
    pub entries: Vec<PlanEntry>,
    /// Entries the walk could not read, with why (not in the plan).
    pub unreadable: Vec<(PathBuf, String)>,
}

/// A plan that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the plan's path `{0}` is absolute or leaves the archive root (`..`)")]
    OutsideRoot(String),
    #[error("the plan lists `{0}` twice")]
    Duplicate(String),
}

/// Walks `root` once and reads every audio file's header.
pub fn make_plan(root: &Path, probe: &dyn AudioProbe) -> Result<Plan, DiscoveryError> {
    let found = discover(root)?;
    let entries = found
        .files
        .iter()
        .map(|file| PlanEntry {
            relative: file.relative.clone(),
            size: file.size,
            mtime_ns: file.mtime_ns,
            duration: probe
                .probe(&file.path)
                .ok()
                .filter(|p| p.samplerate > 0)
                .map(|p| p.frames as f64 / f64::from(p.samplerate)),
        })
        .collect();
    Ok(Plan {
        entries,
        unreadable: found.unreadable,
    })
}

/// The shard (1..=count) of each entry, in the entries' order (see the module docs).
pub fn assign(entries: &[PlanEntry], count: u32) -> Vec<u32> {
    let count = count.max(1);
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let weight = |i: usize| entries[i].duration.unwrap_or(0.0).max(0.0);
    order.sort_by(|&a, &b| {
        weight(b)
            .total_cmp(&weight(a))
            .then_with(|| entries[a].relative.cmp(&entries[b].relative))
    });
    // Loads in microseconds: integers order exactly and sum without drift.
    let mut loads: BinaryHeap<Reverse<(u64, u32)>> = (1..=count).map(|s| Reverse((0, s))).collect();
    let mut shards = vec![1; entries.len()];
    for i in order {
        let Some(Reverse((load, shard))) = loads.pop() else {
            break;
        };
        shards[i] = shard;
        let micros = (weight(i) * 1e6).round() as u64;
        loads.push(Reverse((load.saturating_add(micros), shard)));
    }
    shards
}

/// Total seconds of audio per shard (index 0 is shard 1) under [`assign`].
pub fn shard_durations(entries: &[PlanEntry], count: u32) -> Vec<f64> {
    let mut totals = vec![0.0; count.max(1) as usize];
    for (entry, shard) in entries.iter().zip(assign(entries, count)) {
        totals[shard as usize - 1] += entry.duration.unwrap_or(0.0);
    }
    totals
}

/// What a worker takes from a plan: its files (stat'ed now), the number of files in the
/// whole plan, and those of its files it cannot read any more.
#[derive(Debug, Default)]
pub struct Selection {
    pub files: Vec<ArchiveFile>,
    pub found: usize,
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The files of `shard` (all of them without one) under the archive `root`.
pub fn select(
    entries: &[PlanEntry],
    shard: Option<Shard>,
    root: &Path,
) -> Result<Selection, PlanError> {
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let relative = Path::new(&entry.relative);
        if relative.is_absolute()
            || entry.relative.split('/').any(|part| part == "..")
            || relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(PlanError::OutsideRoot(entry.relative.clone()));
        }
        if !seen.insert(entry.relative.as_str()) {
            return Err(PlanError::Duplicate(entry.relative.clone()));
        }
    }
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let shards = shard.map(|s| assign(entries, s.count()));
    let mut selection = Selection {
        found: entries.len(),
        ..Selection::default()
    };
    for (i, entry) in entries.iter().enumerate() {
        if let (Some(shard), Some(shards)) = (shard, &shards)
            && shards[i] != shard.index()
        {
            continue;
        }
        let path = entry
            .relative
            .split('/')
            .fold(root.clone(), |path, part| path.join(part));
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => selection.files.push(ArchiveFile {
                path,
                relative: entry.relative.clone(),
                size: metadata.len(),
                mtime_ns: metadata.modified().map(mtime_ns).unwrap_or(0),
            }),
            Ok(_) => selection
                .unreadable
                .push((path, "in the plan, but not a file now".into())),
            Err(error) => selection.unreadable.push((
                path,
                format!("in the plan, but cannot be read now: {error}"),
            )),
        }
    }
    Ok(selection)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(relative: &str, duration: f64) -> PlanEntry {
        PlanEntry {
            relative: relative.into(),
            size: 100,
            mtime_ns: 0,
            duration: Some(duration),
        }
    }

    /// Mixed lengths, like an archive of 1-minute clips and a few hour-long files.
    fn archive() -> Vec<PlanEntry> {
        (0..200)
            .map(|i| {
                let duration = match i % 17 {
                    0 => 3600.0,
                    1..=3 => 600.0,
                    _ => 5.0 + f64::from(i % 11) * 7.5,
                };
                entry(&format!("site-{}/{i:04}.wav", i % 5), duration)
            })
            .collect()
    }

    #[test]
    fn greedy_longest_first_keeps_shards_within_the_longest_file() {
        let entries = archive();
        let longest = 3600.0;
        let total: f64 = entries.iter().filter_map(|e| e.duration).sum();
        for count in [1, 2, 3, 4, 7, 16, 64, 300] {
            let totals = shard_durations(&entries, count);
            let max = totals.iter().copied().fold(f64::MIN, f64::max);
            let min = totals.iter().copied().fold(f64::MAX, f64::min);
            assert!(max - min <= longest + 1e-6, "{count}: {totals:?}");
            assert!((totals.iter().sum::<f64>() - total).abs() < 1e-6);
        }
        // Far better than the bound when files are small against the shard.
        let totals = shard_durations(&entries, 4);
        let max = totals.iter().copied().fold(f64::MIN, f64::max);
        let min = totals.iter().copied().fold(f64::MAX, f64::min);
        assert!(max - min < 60.0, "{totals:?}");
    }

    #[test]
    fn the_assignment_is_deterministic_and_independent_of_input_order() {
        let entries = archive();
        let mut reversed = entries.clone();
        reversed.reverse();
        let forward: Vec<(String, u32)> = entries
            .iter()
            .map(|e| e.relative.clone())
            .zip(assign(&entries, 7))
            .collect();
        let mut backward: Vec<(String, u32)> = reversed
            .iter()
            .map(|e| e.relative.clone())
            .zip(assign(&reversed, 7))
            .collect();
        backward.reverse();
        assert_eq!(forward, backward);
        // Equal durations: ties go by path, to the lowest shard first.
        let same = [
            entry("b.wav", 1.0),
            entry("a.wav", 1.0),
            entry("c.wav", 1.0),
        ];
        assert_eq!(assign(&same, 2), [2, 1, 1]);
        // Unknown durations weigh nothing but still land somewhere.
        let unknown = PlanEntry {
            duration: None,
            ..entry("bad.wav", 0.0)
        };
        assert_eq!(assign(&[entry("x.wav", 9.0), unknown], 2), [1, 2]);
    }

    #[test]
    fn a_worker_selects_only_its_own_files_and_reports_vanished_ones() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a")).unwrap();
        let entries = vec![
            entry("a/long.wav", 100.0),
            entry("a/short.wav", 10.0),
            entry("b/gone.wav", 5.0),
            entry("mid.wav", 50.0),
        ];
        for name in ["a/long.wav", "a/short.wav", "mid.wav"] {
            std::fs::write(root.join(name), b"12345").unwrap();
        }
        let first = select(&entries, Some(Shard::new(1, 2).unwrap()), root).unwrap();
        let second = select(&entries, Some(Shard::new(2, 2).unwrap()), root).unwrap();
        let names = |s: &Selection| {
            s.files
                .iter()
                .map(|f| f.relative.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&first), ["a/long.wav"]);
        assert_eq!(names(&second), ["a/short.wav", "mid.wav"]);
        assert_eq!(second.unreadable.len(), 1);
        assert!(second.unreadable[0].0.ends_with("b/gone.wav"));
        assert!(second.unreadable[0].1.starts_with("in the plan, but"));
        assert_eq!((first.found, second.files[0].size), (4, 5));
        assert_eq!(select(&entries, None, root).unwrap().files.len(), 3);
    }

    #[test]
    fn paths_leaving_the_root_or_listed_twice_are_refused() {
        let root = Path::new("/archive");
        for bad in [
            "../etc/passwd.wav",
            "/etc/x.wav",
            "a/../../x.wav",
            "./x.wav",
        ] {
            assert_eq!(
                select(&[entry(bad, 1.0)], None, root).unwrap_err(),
                PlanError::OutsideRoot(bad.into()),
                "{bad}"
            );
        }
        assert_eq!(
            select(&[entry("a.wav", 1.0), entry("a.wav", 2.0)], None, root).unwrap_err(),
            PlanError::Duplicate("a.wav".into())
        );
    }
}

//! Finding the audio files of an archive: every `.wav` and `.flac` (any case) under the
//! root, symbolic links followed, in a deterministic order (sorted by path), each with
//! its size, modification time and the path relative to the root with `/` separators
//! (what shards hash).
//!
//! An entry that cannot be read (a folder without permission, a broken link) does not
//! stop the walk; it is listed in [`Discovery::unreadable`] with the reason, and so is a
//! file whose path is not UTF-8 (the store keeps paths as text).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// An audio file (WAV or FLAC) found in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFile {
    /// Absolute path (the root made absolute, then the walk's path under it).
    pub path: PathBuf,
    /// Relative to the root, `/`-separated (non-UTF-8 bytes replaced by U+FFFD).
    pub relative: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (negative before 1970).
    pub mtime_ns: i64,
}

/// What a walk found.
#[derive(Debug, Default)]
pub struct Discovery {
    pub files: Vec<ArchiveFile>,
    /// Entries that could not be read, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The archive root is not a readable folder.
#[derive(Debug, thiserror::Error)]
#[error("cannot read archive folder `{}`: {reason}", root.display())]
pub struct DiscoveryError {
    pub root: PathBuf,
    pub reason: String,
}

/// Walks `root` (see the module docs).
pub fn discover(root: &Path) -> Result<Discovery, DiscoveryError> {
    let fail = |reason: String| DiscoveryError {
        root: root.to_path_buf(),
        reason,
    };
    let root = std::path::absolute(root).map_err(|e| fail(e.to_string()))?;
    let metadata = std::fs::metadata(&root).map_err(|e| fail(e.to_string()))?;
    if !metadata.is_dir() {
        return Err(fail("not a folder".into()));
    }
    let mut found = Discovery::default();
    for entry in walkdir::WalkDir::new(&root)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                let path = error.path().map_or_else(|| root.clone(), Path::to_path_buf);
                found.unreadable.push((path, error.to_string()));
                continue;
            }
        };
        if !entry.file_type().is_file() || !is_audio(entry.path()) {
            continue;
        }
        let path = entry.path().to_path_buf();
        if path.to_str().is_none() {
            found.unreadable.push((
                path,
                "the path is not valid UTF-8 (the store keeps paths as text)".into(),
            ));
            continue;
        }
        match entry.metadata() {
            Ok(metadata) => found.files.push(ArchiveFile {
                relative: relative_text(&root, &path),
                size: metadata.len(),
                mtime_ns: metadata.modified().map(mtime_ns).unwrap_or(0),
                path,
            }),
            Err(error) => found.unreadable.push((path, error.to_string())),
        }
    }
    Ok(found)
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("wav") || e.eq_ignore_ascii_case("flac"))
}

/// `path` relative to `root`, components joined with `/`.
pub fn relative_text(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Nanoseconds since the Unix epoch (saturating).
pub fn mtime_ns(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wav_files_in_sorted_order_with_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/deeper")).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        for name in [
            "b/deeper/z.wav",
            "b/y.WAV",
            "a/x.wav",
            "top.wav",
            "notes.txt",
            "a/x.flac",
            "a/x.mp3",
        ] {
            std::fs::write(root.join(name), b"1234").unwrap();
        }
        let found = discover(root).unwrap();
        let relative: Vec<&str> = found.files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(
            relative,
            [
                "a/x.flac",
                "a/x.wav",
                "b/deeper/z.wav",
                "b/y.WAV",
                "top.wav"
            ]
        );
        assert!(found.unreadable.is_empty());
        let first = &found.files[1];
        assert!(first.path.is_absolute() && first.path.ends_with("a/x.wav"));
        assert_eq!(first.size, 4);
        assert!(first.mtime_ns > 0);
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let error = discover(Path::new("/no/such/archive")).unwrap_err();
        assert!(error.to_string().contains("/no/such/archive"), "{error}");
    }

    #[test]
    fn a_file_as_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("one.wav");
        std::fs::write(&file, b"").unwrap();
        assert!(
            discover(&file)
                .unwrap_err()
                .to_string()
                .contains("not a folder")
        );
    }

    #[test]
    fn mtime_before_the_epoch_is_negative() {
        let before = SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(2);
        assert_eq!(mtime_ns(before), -2_000_000_000);
    }
}

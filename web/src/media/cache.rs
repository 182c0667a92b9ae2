//! The spectrogram cache on disk, under `StateOptions.cache_dir`: one PNG per (recording
//! id, width, height, start, end, the store's detection count for the recording), so a
//! new detection renders anew. Bounded at [`CACHE_BYTES`]: after each write the oldest
//! files (by modification time; a hit touches its file) go until the rest fits.
//!
//! The cache never leaves its folder: names are made here from numbers and a parsed
//! UUID (`spectrogram-<id>-<w>x<h>-<start ms>-<end ms>-<count>.png`), only files of that
//! shape are read or evicted, links are neither read nor removed, and a file is written
//! under a temporary name and renamed into place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use uuid::Uuid;

/// The most the cache holds.
pub(crate) const CACHE_BYTES: u64 = 64 << 20;

const PREFIX: &str = "spectrogram-";
const SUFFIX: &str = ".png";

/// What a cached image is of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Key {
    pub id: Uuid,
    pub width: u32,
    pub height: u32,
    /// Seconds; `end` `None`: to the recording's end.
    pub start: f64,
    pub end: Option<f64>,
    pub detections: u64,
}

impl Key {
    fn file_name(&self) -> String {
        let ms = |s: f64| (s * 1000.0).round() as i64;
        let end = self
            .end
            .map_or_else(|| "end".to_owned(), |e| ms(e).to_string());
        format!(
            "{PREFIX}{}-{}x{}-{}-{end}-{}{SUFFIX}",
            self.id.simple(),
            self.width,
            self.height,
            ms(self.start),
            self.detections
        )
    }
}

/// The cached image of `key`, if any (and touches it, so that it is evicted last).
pub(crate) fn get(dir: &Path, key: &Key) -> Option<Vec<u8>> {
    let path = dir.join(key.file_name());
    let meta = fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let bytes = fs::read(&path).ok()?;
    if let Ok(file) = fs::File::options().write(true).open(&path) {
        let _ = file.set_modified(SystemTime::now());
    }
    Some(bytes)
}

/// Stores `bytes` as `key`'s image, then evicts down to `limit` bytes.
pub(crate) fn put(dir: &Path, key: &Key, bytes: &[u8], limit: u64) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let name = key.file_name();
    let partial = dir.join(format!(".{name}.partial"));
    fs::write(&partial, bytes)?;
    fs::rename(&partial, dir.join(&name))?;
    evict(dir, limit)
}

/// Removes the oldest cached images until the rest holds at most `limit` bytes.
pub(crate) fn evict(dir: &Path, limit: u64) -> io::Result<()> {
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
            continue;
        }
        let meta = fs::symlink_metadata(entry.path())?;
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        files.push((modified, meta.len(), entry.path()));
    }
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    for (_, len, path) in files {
        if total <= limit {
            break;
        }
        match fs::remove_file(&path) {
            Ok(()) => total -= len,
            Err(e) if e.kind() == io::ErrorKind::NotFound => total -= len,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> Key {
        Key {
            id: Uuid::nil(),
            width: 100,
            height: 50,
            start: 0.0,
            end: Some(1.5),
            detections: n,
        }
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("notes.txt");
        fs::write(&other, vec![0u8; 5000]).unwrap();
        for n in 0..5 {
            put(dir.path(), &key(n), &[n as u8; 1000], 3000).unwrap();
            let old = SystemTime::now() - std::time::Duration::from_secs(100 - n);
            let file = fs::File::options()
                .write(true)
                .open(dir.path().join(key(n).file_name()))
                .unwrap();
            file.set_modified(old).unwrap();
        }
        evict(dir.path(), 3000).unwrap();
        let left: Vec<u64> = (0..5)
            .filter(|n| get(dir.path(), &key(*n)).is_some())
            .collect();
        assert_eq!(left, vec![2, 3, 4]);
        assert!(other.exists(), "a file not of the cache stays");
        assert_eq!(get(dir.path(), &key(4)).unwrap(), vec![4u8; 1000]);
    }
}

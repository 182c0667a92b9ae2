//! Free space on the filesystems the station writes to, behind [`DiskSpace`] so that
//! retention can be tested with a disk whose free space a test controls.

use std::io;
use std::path::{Path, PathBuf};

/// Free and total bytes of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged process may still write.
    pub available: u64,
    /// Size of the filesystem.
    pub total: u64,
}

/// Tells how much space the filesystem holding a path has.
pub trait DiskSpace: Send + Sync {
    /// The space of the filesystem holding `path`; a path that does not exist yet is
    /// measured at its nearest existing ancestor (where it would be created).
    fn space(&self, path: &Path) -> io::Result<Space>;
    /// Whether two paths lie on the same filesystem (so deleting from one frees the
    /// other). When unsure, `false`.
    fn same_filesystem(&self, a: &Path, b: &Path) -> bool;
}

/// The real filesystems, through `statvfs` (fs4).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemDisk;

impl DiskSpace for SystemDisk {
    fn space(&self, path: &Path) -> io::Result<Space> {
        let stats = fs4::statvfs(nearest_existing(path))?;
        Ok(Space {
            available: stats.available_space(),
            total: stats.total_space(),
        })
    }

    #[cfg(unix)]
    fn same_filesystem(&self, a: &Path, b: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let device = |p: &Path| std::fs::metadata(nearest_existing(p)).map(|m| m.dev()).ok();
        matches!((device(a), device(b)), (Some(x), Some(y)) if x == y)
    }

    #[cfg(not(unix))]
    fn same_filesystem(&self, _: &Path, _: &Path) -> bool {
        false
    }
}

/// `path` itself when it exists, else its closest existing ancestor (`.` at worst).
pub fn nearest_existing(path: &Path) -> PathBuf {
    let mut current = path;
    loop {
        if current.exists() {
            return current.to_path_buf();
        }
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => return PathBuf::from("."),
        }
    }
}

/// The bytes available for `path`, written for logs ("1.2 GiB free"), or why not known.
pub fn describe_free(disk: &dyn DiskSpace, path: &Path) -> String {
    match disk.space(path) {
        Ok(space) => format!(
            "{} free of {}",
            bytesize::ByteSize(space.available),
            bytesize::ByteSize(space.total)
        ),
        Err(error) => format!("free space unknown ({error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_path_is_measured_where_it_would_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c.wav");
        assert_eq!(nearest_existing(&deep), dir.path());
        let space = SystemDisk.space(&deep).unwrap();
        assert!(space.total > 0 && space.available <= space.total);
        assert!(SystemDisk.same_filesystem(dir.path(), &deep));
        assert!(describe_free(&SystemDisk, &deep).contains("free of"));
    }
}

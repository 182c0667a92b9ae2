//! The station's folders on disk: walks that never follow links, the names of the
//! temporary files acoupi writes, and the one guard every deletion goes through
//! (retention, start-up recovery, management).
//!
//! The temp folder and the recordings tree are the station's own, but a user, a merged
//! shard or a stray link can put things there that must not turn a walk into an endless
//! loop or a deletion into one outside them. So:
//!
//! - **Walks never follow links** ([`walk`]: walkdir with `follow_links(false)`). A
//!   symbolic link found in a tree is reported (the caller logs a warning naming it) and
//!   neither followed, counted nor deleted: `loopA -> .` cannot make a walk endless, and a
//!   size counts each file once. A configured root that is itself a link (a recordings
//!   folder on another drive) is followed: the operator chose it.
//! - **Deletion is guarded** ([`check`], [`remove_file`]). A path is deleted only when it
//!   has no `..` component, lies under one of the given roots (as configured, relative
//!   paths then meaning the same as for the station, or as resolved), every folder between that root and the file is a real folder (no
//!   symbolic link) and the file is a plain file (not a link). The root is canonicalised
//!   and the file removed through the canonical path, after checking once more that its
//!   canonical parent is inside the canonical root. Anything else is refused with a
//!   [`DeleteError`] that names the path and why; the caller logs it and leaves both the
//!   file and its store row as they were (nothing is lost: the row keeps its path).
//! - **Temporary files have names only acoupi writes** ([`partial_path`],
//!   [`is_partial`]): `<file name>.acoupi-partial` for a copy in progress and
//!   `<file name>.acoupi-guano-partial` for a GUANO rewrite, so start-up recovery removes
//!   its own leftovers and never a `notes.partial` of someone else.
//!
//! - **Names and lists**: [`wav_files`] lists the recordings directly in a folder (plain
//!   files only: a link is logged and left out); [`numbered`] gives the next name for a
//!   taken one (`name_2.wav`), for kept and quarantined files alike; [`resolved`] is a
//!   path with every link of its existing part resolved, for comparing two spellings of
//!   one folder (`protect_folders`).
//!
//! What the guard does not close: a check-then-delete race, where someone with write
//! access to the tree swaps a folder for a link in the instant between the check and the
//! unlink. Closing it needs `unlinkat` relative to opened folder handles; the attacks
//! this guard answers (links and stored paths planted beforehand) are all refused.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path was not deleted. The file and its row stay as they were.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteError {
    #[error("`{}` has a `..` component", .0.display())]
    ParentDir(PathBuf),
    #[error("`{}` is outside the station's folders ({roots})", path.display())]
    Outside { path: PathBuf, roots: String },
    #[error("`{}` goes through the symbolic link `{}`, which is not followed", path.display(), link.display())]
    Link { path: PathBuf, link: PathBuf },
    #[error("`{}` is a symbolic link, not a file of the station's", .0.display())]
    IsLink(PathBuf),
    #[error("`{}` is not a plain file", .0.display())]
    NotAFile(PathBuf),
    #[error("`{}`: `{}` is not a folder", path.display(), at.display())]
    NotAFolder { path: PathBuf, at: PathBuf },
    #[error("cannot check `{}`: {error}", path.display())]
    Unreadable { path: PathBuf, error: String },
    #[error("cannot delete `{}`: {error}", path.display())]
    Failed { path: PathBuf, error: String },
}

/// What [`check`] found at a path that may be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A plain file, at this canonical path, of this many bytes.
    File { path: PathBuf, len: u64 },
    /// Nothing there (the file or a folder above it is gone).
    Gone,
}

/// What [`remove_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The file was deleted; it held this many bytes.
    Deleted { len: u64 },
    /// There was nothing to delete.
    Gone,
}

/// Whether `path` may be deleted as a file of the station under one of `roots` (see the
/// module docs), and what is there. A root that does not exist holds nothing.
pub fn check(path: &Path, roots: &[&Path]) -> Result<Found, DeleteError> {
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(DeleteError::ParentDir(path.to_path_buf()));
    }
    for root in roots {
        let Ok(canonical) = root.canonicalize() else {
            continue;
        };
        let Ok(rest) = path
            .strip_prefix(root)
            .or_else(|_| path.strip_prefix(&canonical))
        else {
            continue;
        };
        return check_below(path, &canonical, rest);
    }
    let roots = roots
        .iter()
        .map(|r| format!("`{}`", r.display()))
        .collect::<Vec<_>>()
        .join(", ");
    Err(DeleteError::Outside {
        path: path.to_path_buf(),
        roots,
    })
}

/// Walks `rest` down from `canonical` without following a link.
fn check_below(path: &Path, canonical: &Path, rest: &Path) -> Result<Found, DeleteError> {
    let names: Vec<Component<'_>> = rest.components().collect();
    if names.is_empty() || !names.iter().all(|c| matches!(c, Component::Normal(_))) {
        return Err(DeleteError::NotAFile(path.to_path_buf()));
    }
    let mut at = canonical.to_path_buf();
    for (i, name) in names.iter().enumerate() {
        at.push(name);
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Gone),
            Err(e) => {
                return Err(DeleteError::Unreadable {
                    path: at,
                    error: e.to_string(),
                });
            }
        };
        let last = i + 1 == names.len();
        if meta.file_type().is_symlink() {
            return Err(if last {
                DeleteError::IsLink(path.to_path_buf())
            } else {
                DeleteError::Link {
                    path: path.to_path_buf(),
                    link: at,
                }
            });
        }
        if !last && !meta.is_dir() {
            return Err(DeleteError::NotAFolder {
                path: path.to_path_buf(),
                at,
            });
        }
        if last {
            if !meta.is_file() {
                return Err(DeleteError::NotAFile(path.to_path_buf()));
            }
            // The same once more from the other end: the parent, resolved, is where the
            // walk went (a link swapped in meanwhile would resolve elsewhere).
            let parent = at.parent().unwrap_or(canonical);
            let resolved = parent.canonicalize().map_err(|e| DeleteError::Unreadable {
                path: parent.to_path_buf(),
                error: e.to_string(),
            })?;
            if resolved != parent || !resolved.starts_with(canonical) {
                return Err(DeleteError::Link {
                    path: path.to_path_buf(),
                    link: parent.to_path_buf(),
                });
            }
            return Ok(Found::File {
                path: at,
                len: meta.len(),
            });
        }
    }
    Ok(Found::Gone)
}

/// Deletes the file at `path` when [`check`] allows it; `Gone` when nothing is there.
pub fn remove_file(path: &Path, roots: &[&Path]) -> Result<Removed, DeleteError> {
    match check(path, roots)? {
        Found::Gone => Ok(Removed::Gone),
        Found::File { path: real, len } => match std::fs::remove_file(&real) {
            Ok(()) => Ok(Removed::Deleted { len }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Removed::Gone),
            Err(e) => Err(DeleteError::Failed {
                path: path.to_path_buf(),
                error: e.to_string(),
            }),
        },
    }
}

/// What [`walk`] found under a root.
#[derive(Debug, Default)]
pub struct Walked {
    /// Plain files, with their sizes in bytes.
    pub files: Vec<(PathBuf, u64)>,
    /// Symbolic links met (not followed).
    pub links: Vec<PathBuf>,
    /// Entries that could not be read, with why.
    pub errors: Vec<String>,
}

impl Walked {
    /// Bytes in the plain files found.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, len)| len).sum()
    }
}

/// Everything under `root` at any depth, never following a link (the root itself
/// excepted); a missing root holds nothing.
pub fn walk(root: &Path) -> Walked {
    let mut walked = Walked::default();
    if !root.exists() {
        return walked;
    }
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
    {
        match entry {
            Ok(entry) if entry.file_type().is_symlink() => walked.links.push(entry.into_path()),
            Ok(entry) if entry.file_type().is_file() => match entry.metadata() {
                Ok(meta) => walked.files.push((entry.into_path(), meta.len())),
                Err(e) => walked.errors.push(e.to_string()),
            },
            Ok(_) => {}
            Err(e) => walked.errors.push(e.to_string()),
        }
    }
    walked
}

/// The kinds of temporary file acoupi writes beside a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partial {
    /// A copy across filesystems, before its rename into place (management).
    Copy,
    /// A WAV with its GUANO chunk rewritten, before its rename over the original.
    Guano,
}

impl Partial {
    fn suffix(self) -> &'static str {
        match self {
            Partial::Copy => ".acoupi-partial",
            Partial::Guano => ".acoupi-guano-partial",
        }
    }
}

/// The temporary file of `kind` beside `path`: `<file name>.acoupi-partial` or
/// `<file name>.acoupi-guano-partial`.
pub fn partial_path(path: &Path, kind: Partial) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(kind.suffix());
    path.with_file_name(name)
}

/// Whether `path` has a name [`partial_path`] gives: a non-empty file name then one of
/// the two suffixes, nothing else.
pub fn is_partial(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    [Partial::Copy, Partial::Guano].iter().any(|kind| {
        name.strip_suffix(kind.suffix())
            .is_some_and(|stem| !stem.is_empty())
    })
}

/// The `.wav` files (any case) directly in `dir`, sorted; a missing folder has none. A
/// symbolic link is not a recording of the station's: it is logged and left out.
pub fn wav_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if !path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
        {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            tracing::warn!(link = %path.display(), "a symbolic link in the temp folder is not followed; it is left alone");
        } else if kind.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// How many numbered names (`name_2.wav` …) are tried for a taken name (a kept file, a
/// quarantined one).
pub const MAX_NUMBERED: u32 = 1000;

/// `wanted` for `n = 1`, else `wanted` with `_<n>` before its extension.
pub fn numbered(wanted: &Path, n: u32) -> PathBuf {
    if n == 1 {
        return wanted.to_path_buf();
    }
    let stem = wanted
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match wanted.extension() {
        Some(extension) => format!("{stem}_{n}.{}", extension.to_string_lossy()),
        None => format!("{stem}_{n}"),
    };
    wanted.with_file_name(name)
}

/// The first symbolic link on the way from `root` down to `path` (the part of it that
/// exists; `root` itself may be a link), if any: a destination through a link would put
/// a recording outside the tree.
pub fn link_below(root: &Path, path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(root).ok()?;
    let mut at = root.to_path_buf();
    for name in rest.components() {
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return Some(at),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// `path` with its longest existing part canonicalised (links resolved) and the rest
/// appended as written: two spellings of one folder (through a link, or the resolved
/// form) give the same path. A path none of whose parts can be resolved is returned as
/// it is.
pub fn resolved(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(mut canonical) = existing.canonicalize() {
            canonical.extend(rest.iter().rev());
            return canonical;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn the_guard_deletes_plain_files_under_a_root_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let (root, outside) = (dir.join("recordings"), dir.join("outside"));
        std::fs::create_dir_all(root.join("2026/06")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("2026/06/a.wav"), b"RIFF").unwrap();
        std::fs::write(outside.join("victim.txt"), b"mine").unwrap();
        symlink(&outside, root.join("2026/07")).unwrap();
        symlink(outside.join("victim.txt"), root.join("2026/06/link.wav")).unwrap();
        let roots = [root.as_path()];

        type Expected = fn(&DeleteError) -> bool;
        let cases: [(PathBuf, Expected); 6] = [
            (root.join("../outside/victim.txt"), |e| {
                matches!(e, DeleteError::ParentDir(_))
            }),
            (root.join("2026/07/victim.txt"), |e| {
                matches!(e, DeleteError::Link { .. })
            }),
            (root.join("2026/06/link.wav"), |e| {
                matches!(e, DeleteError::IsLink(_))
            }),
            (outside.join("victim.txt"), |e| {
                matches!(e, DeleteError::Outside { .. })
            }),
            (PathBuf::from("recordings/2026/06/a.wav"), |e| {
                matches!(e, DeleteError::Outside { .. })
            }),
            (root.join("2026"), |e| matches!(e, DeleteError::NotAFile(_))),
        ];
        for (path, expected) in cases {
            let error = remove_file(&path, &roots).unwrap_err();
            assert!(expected(&error), "{path:?}: {error}");
        }
        assert_eq!(std::fs::read(outside.join("victim.txt")).unwrap(), b"mine");
        assert!(
            root.join("2026/06/link.wav").symlink_metadata().is_ok(),
            "the link itself stays"
        );
        assert_eq!(
            remove_file(&root.join("2026/06/gone.wav"), &roots),
            Ok(Removed::Gone)
        );
        assert_eq!(
            remove_file(&root.join("2026/06/a.wav"), &roots),
            Ok(Removed::Deleted { len: 4 })
        );
        assert!(!root.join("2026/06/a.wav").exists());
    }

    #[test]
    fn a_root_given_through_a_link_is_followed_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("drive/rec")).unwrap();
        symlink(dir.path().join("drive"), dir.path().join("data")).unwrap();
        let root = dir.path().join("data/rec");
        std::fs::write(root.join("a.wav"), b"RIFF").unwrap();
        assert!(matches!(
            check(&root.join("a.wav"), &[&root]),
            Ok(Found::File { .. })
        ));
        let real = dir.path().join("drive/rec/a.wav");
        assert_eq!(
            remove_file(&real, &[&root]),
            Ok(Removed::Deleted { len: 4 }),
            "the resolved form of the root is the same root"
        );
    }

    #[test]
    fn walks_do_not_follow_loops_and_count_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/x.wav"), [0u8; 100]).unwrap();
        symlink(".", dir.path().join("loopA")).unwrap();
        symlink(".", dir.path().join("a/loopB")).unwrap();
        let walked = walk(dir.path());
        assert_eq!(walked.bytes(), 100);
        assert_eq!(
            walked.links,
            [dir.path().join("a/loopB"), dir.path().join("loopA")]
        );
    }

    #[test]
    fn partial_names_are_ours_only() {
        let copy = partial_path(Path::new("/r/2026/a.wav"), Partial::Copy);
        assert_eq!(copy, Path::new("/r/2026/a.wav.acoupi-partial"));
        assert!(is_partial(&copy) && is_partial(&partial_path(Path::new("b.WAV"), Partial::Guano)));
        for foreign in [
            "x.partial",
            "y.guano-partial",
            ".acoupi-partial",
            "a.acoupi-partial.txt",
        ] {
            assert!(!is_partial(Path::new(foreign)), "{foreign}");
        }
    }
}

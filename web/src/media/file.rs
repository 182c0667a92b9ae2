//! Opening a Recording's file for the media endpoints: only the path the store holds for
//! that id, never a path from the request.
//!
//! The rules: a deleted file (path NULL) is a 404 saying retention removed it; a path
//! with a `..` component, a symbolic link (the file itself, or — when the station's
//! Settings are known — any folder between its temp/recordings root and the file) and
//! anything that is not a plain file are refused (403); with Settings, a path outside the
//! temp and recordings folders is refused too (`acoupi_engine::folders::check`, the
//! guard retention deletes through). Without Settings (`acoupi serve` on a bare store or
//! a reprocessed archive, whose files live wherever the archive is) only the file itself
//! is checked. The file is opened and its device and inode compared with what the check
//! saw, so a link swapped in between is refused too. Errors name the recording id.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use acoupi_engine::config::Settings;
use acoupi_engine::folders::{Found, check};
use uuid::Uuid;

use crate::WebError;

/// An opened recording file.
#[derive(Debug)]
pub(crate) struct Opened {
    pub file: File,
    pub path: PathBuf,
    pub len: u64,
}

/// The file the store holds as `stored` for recording `id`, opened after the checks in
/// the module docs.
pub(crate) fn open(
    id: Uuid,
    stored: Option<&str>,
    settings: Option<&Settings>,
) -> Result<Opened, WebError> {
    let Some(stored) = stored else {
        return Err(WebError::NotFound(format!(
            "the audio of recording {id} (retention removed its file; the row stays)"
        )));
    };
    let refused = |why: String| WebError::Forbidden(format!("recording {id}: {why}"));
    let mut path = PathBuf::from(stored);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(refused(format!("its path `{stored}` has a `..` component")));
    }
    if let Some(settings) = settings {
        if path.is_relative() {
            path = settings.base_dir.join(&path);
        }
        let roots = [
            settings.temp_dir.as_path(),
            settings.recordings_dir.as_path(),
        ];
        match check(&path, &roots) {
            Ok(Found::File { path: real, .. }) => path = real,
            Ok(Found::Gone) => return Err(missing(id, &path)),
            Err(e) => return Err(refused(e.to_string())),
        }
    }
    let seen = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing(id, &path)),
        Err(e) => return Err(refused(format!("cannot read `{}`: {e}", path.display()))),
    };
    if seen.file_type().is_symlink() {
        return Err(refused(format!(
            "`{}` is a symbolic link, which is not followed",
            path.display()
        )));
    }
    if !seen.is_file() {
        return Err(refused(format!("`{}` is not a plain file", path.display())));
    }
    let file =
        File::open(&path).map_err(|e| refused(format!("cannot open `{}`: {e}", path.display())))?;
    let opened = file
        .metadata()
        .map_err(|e| refused(format!("cannot read `{}`: {e}", path.display())))?;
    if (opened.dev(), opened.ino()) != (seen.dev(), seen.ino()) {
        return Err(refused(format!(
            "`{}` changed while it was opened",
            path.display()
        )));
    }
    Ok(Opened {
        file,
        len: opened.len(),
        path,
    })
}

fn missing(id: Uuid, path: &Path) -> WebError {
    WebError::NotFound(format!(
        "the audio of recording {id} (`{}` is not there)",
        path.display()
    ))
}

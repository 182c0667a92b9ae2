//! Secrets for messengers (passwords, tokens): read when the station starts from an
//! environment variable, or from a file that only its owner can read. A secrets file that
//! other users can read is refused, so a token copied with the wrong permissions is
//! noticed before it leaks; error messages name the variable or file, never the value.

use std::path::Path;

/// The value of environment variable `name`, for `what` (e.g. "password_env").
pub fn from_env(name: &str, what: &str) -> Result<String, String> {
    std::env::var(name).map_err(|e| match e {
        std::env::VarError::NotPresent => format!("{what}: environment variable `{name}` is not set"),
        std::env::VarError::NotUnicode(_) => format!("{what}: environment variable `{name}` is not valid UTF-8"),
    })
}

/// The content of a secrets file (one trailing line break removed), for `what`. Refused
/// when its group or other users may read or write it.
pub fn from_file(path: &Path, what: &str) -> Result<String, String> {
    let metadata = std::fs::metadata(path).map_err(|e| format!("{what}: cannot read `{}`: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{what}: `{}` can be read by other users (mode {mode:03o}); secrets files must be private: run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    let _ = metadata;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what}: cannot read `{}`: {e}", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_private_file_is_read_and_a_shared_one_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(from_file(&path, "password_file").unwrap(), "s3cret");
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = from_file(&path, "password_file").unwrap_err();
            assert!(error.contains(&format!("mode {mode:03o}")) && error.contains("chmod 600") && !error.contains("s3cret"), "{error}");
        }
        let missing = from_file(&dir.path().join("nope"), "password_file").unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn an_unset_variable_is_named() {
        let error = from_env("ACOUPI_TEST_SECRET_UNSET", "password_env").unwrap_err();
        assert_eq!(error, "password_env: environment variable `ACOUPI_TEST_SECRET_UNSET` is not set");
    }
}

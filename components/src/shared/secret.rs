//! Secrets for messengers (passwords, tokens): read when the station starts from an
//! environment variable, or from a file that only its owner can read. A secrets file that
//! other users can read is refused, so a token copied with the wrong permissions is
//! noticed before it leaks; error messages name the variable or file, never the value.
//!
//! Where a secret may go, checked when the pipeline is validated:
//! - never in the pipeline file: no password in a URL, no token in a URL's query string
//!   ([`secret_query_parameter`]), no credential header written as plain text;
//! - never in clear to another machine: a password or secret header over plain `mqtt`
//!   (no `tls`) or `http://` is refused unless the host is this machine
//!   ([`is_loopback_host`]) or the messenger sets `insecure = true`, which logs a warning
//!   naming the messenger at every start;
//! - never into a stored Response or a log: URLs there lose their user name, query and
//!   fragment ([`redact_url`]).

use std::net::IpAddr;
use std::path::Path;

use reqwest::Url;

/// The value of environment variable `name`, for `what` (e.g. "password_env").
pub fn from_env(name: &str, what: &str) -> Result<String, String> {
    std::env::var(name).map_err(|e| match e {
        std::env::VarError::NotPresent => {
            format!("{what}: environment variable `{name}` is not set")
        }
        std::env::VarError::NotUnicode(_) => {
            format!("{what}: environment variable `{name}` is not valid UTF-8")
        }
    })
}

/// The content of a secrets file (one trailing line break removed), for `what`. Refused
/// when its group or other users may read or write it.
pub fn from_file(path: &Path, what: &str) -> Result<String, String> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| format!("{what}: cannot read `{}`: {e}", path.display()))?;
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
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{what}: cannot read `{}`: {e}", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

/// Whether `host` is this machine: `localhost`, an address in 127.0.0.0/8, or `::1`
/// (with or without brackets). Nothing sent to it crosses a network.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Query parameter names taken for a secret (compared in lower case, `-` read as `_`).
pub const SECRET_QUERY_NAMES: &[&str] = &[
    "token",
    "key",
    "api_key",
    "apikey",
    "secret",
    "password",
    "passwd",
    "auth",
    "access_token",
    "sig",
    "signature",
];

/// The first query parameter of `url` that looks like a secret: a name in
/// [`SECRET_QUERY_NAMES`], or one containing `token`, `secret` or `password` (e.g.
/// `auth_token`, `client_secret`), any case.
pub fn secret_query_parameter(url: &Url) -> Option<String> {
    url.query_pairs()
        .map(|(name, _)| name.into_owned())
        .find(|name| {
            let normal = name.to_ascii_lowercase().replace('-', "_");
            SECRET_QUERY_NAMES.contains(&normal.as_str())
                || ["token", "secret", "password"]
                    .iter()
                    .any(|w| normal.contains(w))
        })
}

/// `url` without user name, password, query and fragment: what a Response or a log may
/// show of it.
pub fn redact_url(url: &Url) -> Url {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_and_secret_query_parameters() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "example.org",
            "10.0.0.1",
            "128.0.0.1",
            "::2",
            "localhost.example.org",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let url = |text: &str| Url::parse(text).unwrap();
        for (text, found) in [
            ("https://h/p?token=x", Some("token")),
            ("https://h/p?site=a&API-Key=x", Some("API-Key")),
            ("https://h/p?Sig=x", Some("Sig")),
            ("https://h/p?auth_token=x", Some("auth_token")),
            ("https://h/p?site=north&page=2", None),
            ("https://h/p", None),
        ] {
            assert_eq!(
                secret_query_parameter(&url(text)).as_deref(),
                found,
                "{text}"
            );
        }
        let redacted = redact_url(&url("http://user:pw@example.org:8080/api/m?token=abc#frag"));
        assert_eq!(redacted.as_str(), "http://example.org:8080/api/m");
    }

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
            assert!(
                error.contains(&format!("mode {mode:03o}"))
                    && error.contains("chmod 600")
                    && !error.contains("s3cret"),
                "{error}"
            );
        }
        let missing = from_file(&dir.path().join("nope"), "password_file").unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn an_unset_variable_is_named() {
        let error = from_env("ACOUPI_TEST_SECRET_UNSET", "password_env").unwrap_err();
        assert_eq!(
            error,
            "password_env: environment variable `ACOUPI_TEST_SECRET_UNSET` is not set"
        );
    }
}

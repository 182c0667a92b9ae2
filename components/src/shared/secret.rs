//! Where a messenger's secret may go, checked when the pipeline is validated (the
//! [`Secret`] value itself, `{ env = "NAME" }` or `{ file = "path" }`, and reading it from
//! an owner-only file live in acoupi-engine's `secret.rs`, shared with `[web]`):
//! - never in the pipeline file: no password in a URL, no token in a URL's query string
//!   ([`secret_query_parameter`]), no credential header written as plain text;
//! - never in clear to another machine: a password or secret header over plain `mqtt`
//!   (no `tls`) or `http://` is refused unless the host is this machine
//!   ([`is_loopback_host`]) or the messenger sets `insecure = true`, which logs a warning
//!   naming the messenger at every start;
//! - never into a stored Response or a log: URLs there lose their user name, query and
//!   fragment ([`redact_url`]).

pub use acoupi_engine::secret::{Secret, is_loopback_host};
use reqwest::Url;

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
    fn secret_query_parameters_and_redaction() {
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
}

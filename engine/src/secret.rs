//! Secrets (messenger passwords and tokens, the dashboard's token): one [`Secret`] value,
//! `{ env = "NAME" }` or `{ file = "path" }`, checked while the pipeline is deserialised
//! (so a bad one is reported at its line) and read when the station starts from the
//! environment variable, or from a file that only its owner can read. A secrets file that
//! other users can read is refused, so a token copied with the wrong permissions is
//! noticed before it leaks; error messages name the variable or file, never the value.
//!
//! Where a secret may go over a network (URLs, plain `mqtt`/`http://`) is checked by the
//! messengers (acoupi-components' `shared/secret.rs`); [`is_loopback_host`] is the one
//! test of "this machine" they and `[web]` share.

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer};

use crate::config::Code;
use crate::config::values::invalid;
use crate::registry::BuildContext;

/// Where a secret is read from when the station starts. Written `{ env = "NAME" }` (an
/// environment variable) or `{ file = "path" }` (a file relative to the pipeline file,
/// readable by its owner only: `chmod 600`), one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

impl Secret {
    /// The secret from its two keys, as written: exactly one of them, and a variable name
    /// the environment can hold.
    pub fn from_keys(env: Option<String>, file: Option<PathBuf>) -> Result<Secret, String> {
        match (env, file) {
            (Some(env), None) if env.is_empty() || env.contains(['=', '\0']) => {
                Err(format!("invalid environment variable name `{env}`"))
            }
            (Some(env), None) => Ok(Secret::Env(env)),
            (None, Some(file)) if file.as_os_str().is_empty() => {
                Err("the secrets file name is empty".into())
            }
            (None, Some(file)) => Ok(Secret::File(file)),
            _ => Err("give `env` or `file`, one of them".into()),
        }
    }

    /// Reads the secret now, for `what` (the key that holds it, named in errors, which
    /// never show the value); a file is resolved against the pipeline file.
    pub fn read(&self, ctx: &BuildContext, what: &str) -> Result<String, String> {
        self.read_in(&ctx.settings.base_dir, what)
    }

    /// Reads the secret now, a file resolved against `base_dir` (an absolute path stays).
    pub fn read_in(&self, base_dir: &Path, what: &str) -> Result<String, String> {
        match self {
            Secret::Env(name) => from_env(name, what),
            Secret::File(file) => from_file(&base_dir.join(file), what),
        }
    }

    /// Where it is read from, for messages: "environment variable `X`", "file `path`".
    pub fn source(&self, ctx: &BuildContext) -> String {
        match self {
            Secret::Env(name) => format!("environment variable `{name}`"),
            Secret::File(file) => format!("file `{}`", ctx.resolve(file).display()),
        }
    }
}

/// A secret's keys as written (and their descriptions in the schema).
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SecretKeys {
    /// The name of the environment variable holding the secret.
    env: Option<String>,
    /// A file holding the secret (relative to the pipeline file), mode 600.
    file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table `{ env = \"NAME\" }` or `{ file = \"path\" }`")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Secret, E> {
                Err(invalid(
                    Code::SecretInPipeline,
                    "a password or token is never written in the pipeline file: read it with `{ env = \"NAME\" }` or `{ file = \"path\" }` (a file only its owner can read)",
                ))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Secret, A::Error> {
                let keys = SecretKeys::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Secret::from_keys(keys.env, keys.file).map_err(de::Error::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Read when the station starts: `{ env = \"NAME\" }` (an environment variable) or `{ file = \"path\" }` (a file relative to the pipeline file, mode 600).",
            "oneOf": [
                {
                    "type": "object",
                    "properties": { "env": { "type": "string", "minLength": 1, "description": "The name of the environment variable holding the secret." } },
                    "required": ["env"],
                    "additionalProperties": false
                },
                {
                    "type": "object",
                    "properties": { "file": { "type": "string", "minLength": 1, "description": "A file holding the secret (relative to the pipeline file), mode 600." } },
                    "required": ["file"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
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
    fn a_secret_is_one_of_env_or_file() {
        let secret = |json: &str| serde_json::from_str::<Secret>(json).map_err(|e| e.to_string());
        assert_eq!(
            secret(r#"{"env": "TOKEN"}"#),
            Ok(Secret::Env("TOKEN".into()))
        );
        assert_eq!(
            secret(r#"{"file": "token"}"#),
            Ok(Secret::File("token".into()))
        );
        for (bad, says) in [
            (
                r#"{"env": "T", "file": "t"}"#,
                "give `env` or `file`, one of them",
            ),
            ("{}", "give `env` or `file`, one of them"),
            (r#"{"env": ""}"#, "invalid environment variable name"),
            (
                r#"{"env": "A=B"}"#,
                "invalid environment variable name `A=B`",
            ),
            (r#"{"file": ""}"#, "the secrets file name is empty"),
            (r#"{"value": "x"}"#, "unknown field `value`"),
            (r#""s3cret""#, "never written in the pipeline file"),
        ] {
            let error = secret(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
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

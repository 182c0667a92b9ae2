//! The CLI's side of the local API (`local.rs`): a minimal HTTP/1.1 client over a
//! `std::os::unix::net::UnixStream` (one request per connection, `Connection: close`;
//! a body with `Content-Length` or chunked). A chunked body that ends before its last
//! chunk means the station failed midway: an error, never a silently short result.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::local::socket_path;

/// What can go wrong asking the station.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The station answered with an error (a refused statement, a bad request).
    #[error("{0}")]
    Refused(String),
    #[error("local API: {0}")]
    Io(#[from] std::io::Error),
    #[error("local API: {0}")]
    Protocol(String),
}

/// A station's local API, found answering on its socket.
#[derive(Debug, Clone)]
pub struct LocalClient {
    socket: PathBuf,
}

/// How long the CLI waits for a station to start answering.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl LocalClient {
    /// The local API of the station holding `store`, when its socket answers `ping`.
    pub fn find(store: &Path) -> Option<LocalClient> {
        let client = LocalClient {
            socket: socket_path(store),
        };
        if !client.socket.exists() {
            return None;
        }
        let mut out = Vec::new();
        match client.request("GET", "/local/v1/ping", None, &mut out) {
            Ok(_) if out.starts_with(b"acoupi") => Some(client),
            Ok(_) => None,
            Err(error) => {
                tracing::debug!(socket = %client.socket.display(), %error, "the socket does not answer");
                None
            }
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `acoupi query` on the station: the result in `format` (`table`, `csv`, `json`)
    /// written to `out` as it arrives.
    pub fn query(&self, sql: &str, format: &str, out: &mut dyn Write) -> Result<(), ClientError> {
        let body = serde_json::json!({ "sql": sql, "format": format }).to_string();
        self.request("POST", "/local/v1/query", Some(&body), out)?;
        Ok(())
    }

    /// `acoupi export` on the station: the file's bytes written to `out`; returns the
    /// rows exported.
    pub fn export(
        &self,
        what: &str,
        format: &str,
        since: Option<String>,
        until: Option<String>,
        out: &mut dyn Write,
    ) -> Result<usize, ClientError> {
        let body = serde_json::json!({
            "what": what, "format": format, "since": since, "until": until,
        })
        .to_string();
        let headers = self.request("POST", "/local/v1/export", Some(&body), out)?;
        headers
            .iter()
            .find(|(name, _)| name == "x-acoupi-rows")
            .and_then(|(_, value)| value.parse().ok())
            .ok_or_else(|| ClientError::Protocol("no row count in the answer".into()))
    }

    /// One request; a 2xx body goes to `out`, anything else becomes
    /// [`ClientError::Refused`] with the `error` of its JSON body. Returns the headers
    /// (names in lower case).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<Vec<(String, String)>, ClientError> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()?;
        let mut reader = BufReader::new(stream);
        let status_line = line(&mut reader)?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("bad status line `{status_line}`")))?;
        let mut headers = Vec::new();
        loop {
            let header = line(&mut reader)?;
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let chunked = value("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let length: Option<u64> = value("content-length").and_then(|v| v.parse().ok());
        if (200..300).contains(&status) {
            read_body(&mut reader, chunked, length, out)?;
            return Ok(headers);
        }
        let mut text = Vec::new();
        read_body(&mut reader, chunked, length, &mut text)?;
        let message = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&text)));
        Err(ClientError::Refused(message))
    }
}

fn line(reader: &mut impl BufRead) -> Result<String, ClientError> {
    let mut text = String::new();
    if reader.read_line(&mut text)? == 0 {
        return Err(ClientError::Protocol("the connection closed early".into()));
    }
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

fn read_body(
    reader: &mut impl BufRead,
    chunked: bool,
    length: Option<u64>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    if !chunked {
        match length {
            Some(n) => {
                let copied = std::io::copy(&mut reader.take(n), out)?;
                if copied != n {
                    return Err(ClientError::Protocol("the answer ended early".into()));
                }
            }
            None => {
                std::io::copy(reader, out)?;
            }
        }
        return Ok(());
    }
    let midway = || ClientError::Protocol("the station stopped answering midway".into());
    loop {
        let size_line = line(reader).map_err(|_| midway())?;
        let size_text = size_line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| ClientError::Protocol(format!("bad chunk size `{size_line}`")))?;
        if size == 0 {
            // Trailers, then the blank line.
            while !line(reader).map_err(|_| midway())?.is_empty() {}
            return Ok(());
        }
        let copied = std::io::copy(&mut reader.by_ref().take(size), out)?;
        if copied != size {
            return Err(midway());
        }
        line(reader).map_err(|_| midway())?;
    }
}

//! `messenger.http`: sends each message as the body of an HTTP POST (or PUT) to one URL and
//! turns the answer into a Response. It owns the config (URL, method, headers with values
//! from the environment, timeout, content type), one pooled HTTP client per component, and
//! the mapping from HTTP outcomes to response statuses.
//!
//! ```toml
//! [components.server]
//! type = "messenger.http"
//! url = "https://example.org/api/messages"
//! method = "POST"                # or "PUT"
//! timeout = "5s"
//! content_type = "application/json"
//! # A value is a plain string or read from the environment when the station starts,
//! # so no secret has to be written in the pipeline file.
//! headers = { Authorization = { env = "STATION_TOKEN", prefix = "Bearer " }, X-Site = "north" }
//! ```
//!
//! Secrets (see [`crate::shared::secret`]): a credential header (`Authorization`, `Cookie`, names
//! with `token`, `secret`, `password`, `api-key` or `auth`) must come from `env` or
//! `file`; a URL holding a password or a token in its query string is refused; a secret
//! header over plain `http://` to another machine than this one is refused unless
//! `insecure = true` (then a warning names the messenger at each start). URLs in responses
//! and logs never show their user name or query.
//!
//! The body is the message content as it is: text as UTF-8, bytes unchanged. The content
//! type is sent as `Content-Type` and `Accept`; `headers` may override either.
//!
//! Statuses: a 2xx answer is SUCCESS; a 4xx (the receiver rejects this message) or 3xx
//! (redirects are not followed: a redirected POST would become a GET and lose its body) is
//! FAILED, which backs the message off; a 5xx or 429 (the receiver cannot take messages
//! now: it is down, overloaded or restarting) is ERROR, like a missing link, so the batch
//! waits for the next run and nothing backs off; no answer within `timeout` is TIMEOUT;
//! no connection at all (refused, DNS, TLS) is ERROR. The content of a response is the
//! answer's body for answers (none when empty; cut at 64 KiB with a note saying so,
//! invalid UTF-8 replaced), and the error text otherwise.
//!
//! Failures to reach the server are Responses (ERROR, TIMEOUT), not `SendError`s, so every
//! attempt is recorded in the message store with its reason; the message stays unsent and
//! is retried. `SendError` is kept for a message that cannot be sent at all (a request
//! that cannot be built).
//!
//! The client is blocking: it is built once in `build` (connections are reused between
//! messages) and used from the tasks' blocking threads, never on the async executor, as
//! the `Messenger` trait requires.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::sync::Arc;

use acoupi_engine::component::{Messenger, SendError};
use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::{BoundedDuration, PositiveDuration, invalid};
use acoupi_engine::data::{Message, Response, ResponseStatus};
use acoupi_engine::error_chain;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer};

use crate::shared::secret::Secret;

/// The most of an answer's body kept as a response's content.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Send each message as the body of an HTTP POST or PUT to a URL: 2xx is SUCCESS, 4xx/3xx
/// FAILED (with the answer's body), 5xx/429 ERROR (the receiver is down: tried again next
/// run), no answer in time TIMEOUT, no connection ERROR.
///
/// Header values can be read from environment variables when the station starts, so
/// tokens need not be written in the pipeline file.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpMessengerConfig {
    /// Where messages are sent: an http:// or https:// URL.
    pub url: HttpUrl,
    /// The HTTP method: "POST" or "PUT".
    #[serde(default)]
    #[schemars(default = "default_method")]
    pub method: HttpMethod,
    /// Extra request headers, by name. A value is a string, or `{ env = "NAME" }` to read
    /// it from an environment variable when the station starts, or `{ file = "token" }`
    /// to read it from a file only its owner can read (`chmod 600`), each with an
    /// optional `prefix`, e.g. `{ env = "STATION_TOKEN", prefix = "Bearer " }`; a
    /// variable that is not set or a file others can read stops the station from
    /// starting. These override the `Content-Type` and `Accept` set from `content_type`.
    #[serde(default)]
    #[schemars(default = "no_headers")]
    pub headers: BTreeMap<HeaderKey, HeaderSource>,
    /// How long to wait for the connection and the answer before the attempt is a
    /// TIMEOUT.
    #[serde(default = "default_timeout")]
    #[schemars(default = "default_timeout_text")]
    pub timeout: PositiveDuration,
    /// The media type of the message bodies, sent as `Content-Type` and `Accept`.
    #[serde(default = "default_content_type", deserialize_with = "header_text")]
    #[schemars(default = "default_content_type")]
    pub content_type: String,
    /// Send secret headers over plain `http://` to a host other than this machine.
    /// Without it such a pipeline is refused: anyone on the network path could read the
    /// token. With it, a warning naming this messenger is logged at each start.
    #[serde(default)]
    pub insecure: bool,
}

fn default_method() -> HttpMethod {
    HttpMethod::Post
}
fn no_headers() -> BTreeMap<String, String> {
    BTreeMap::new()
}
fn default_timeout() -> PositiveDuration {
    BoundedDuration(std::time::Duration::from_secs(5))
}
fn default_timeout_text() -> &'static str {
    "5s"
}
fn default_content_type() -> String {
    "application/json".into()
}

/// The HTTP method used to send messages.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
}

impl HttpMethod {
    fn as_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
        }
    }
}

/// An http:// or https:// URL with a host, checked while the pipeline file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let url = Url::parse(text.trim()).map_err(|e| {
            de::Error::custom(format!(
                "invalid URL `{text}` ({e}); write e.g. \"https://example.org/api/messages\""
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(de::Error::custom(format!(
                "invalid URL `{text}`: the scheme is `{}`, expected `http` or `https`",
                url.scheme()
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(de::Error::custom(format!(
                "invalid URL `{text}`: it has no host"
            )));
        }
        if url.password().is_some() {
            // The pipeline file is no place for secrets (it is copied, shared, logged).
            return Err(invalid(
                Code::SecretInPipeline,
                "the URL holds a password: give the credentials as a header read from the environment or a private file, e.g. headers = { Authorization = { env = \"STATION_AUTH\" } }",
            ));
        }
        if let Some(name) = crate::shared::secret::secret_query_parameter(&url) {
            return Err(invalid(
                Code::SecretInPipeline,
                format!(
                    "the URL's query parameter `{name}` looks like a secret: URLs are logged and shown; give it as a header read from the environment or a private file, e.g. headers = {{ Authorization = {{ env = \"STATION_TOKEN\", prefix = \"Bearer \" }} }}"
                ),
            ));
        }
        Ok(HttpUrl(url))
    }
}

impl JsonSchema for HttpUrl {
    fn schema_name() -> Cow<'static, str> {
        "HttpUrl".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "uri",
            "description": "An http:// or https:// URL.",
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://",
            "examples": ["https://example.org/api/messages"]
        })
    }
}

/// The RFC 9110 token characters allowed in a header name.
const HEADER_NAME_PATTERN: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// A header name, checked while the pipeline file is read; kept as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeaderKey(String);

impl<'de> Deserialize<'de> for HeaderKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
            de::Error::custom(format!(
                "invalid header name `{text}`: use letters, digits and `-` (e.g. \"Authorization\", \"X-Station\")"
            ))
        })?;
        Ok(HeaderKey(text))
    }
}

impl JsonSchema for HeaderKey {
    fn schema_name() -> Cow<'static, str> {
        "HeaderName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": HEADER_NAME_PATTERN })
    }
}

impl fmt::Display for HeaderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A header value: the value itself, or a secret read when the station starts.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(untagged)]
pub enum HeaderSource {
    /// The value itself.
    Value(String),
    /// Read from an environment variable or a private file.
    Secret(SecretHeader),
}

/// A header value read when the station starts: a [`Secret`] with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretHeader {
    pub secret: Secret,
    /// Text put before the secret, e.g. "Bearer ".
    pub prefix: String,
}

/// A header value read when the station starts from an environment variable (`env`) or
/// from a file only its owner can read (`file`); give one of them.
#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SecretHeader")]
struct SecretHeaderKeys {
    /// The name of the environment variable holding the value.
    env: Option<String>,
    /// A file holding the value (relative to the pipeline file), mode 600.
    file: Option<std::path::PathBuf>,
    /// Text put before the secret, e.g. "Bearer ".
    #[serde(default)]
    prefix: String,
}

impl JsonSchema for SecretHeader {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        SecretHeaderKeys::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        SecretHeaderKeys::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for HeaderSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = HeaderSource;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a table `{ env = \"NAME\", prefix = \"...\" }` / `{ file = \"path\" }`")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HeaderSource, E> {
                check_header_value(text).map_err(E::custom)?;
                Ok(HeaderSource::Value(text.to_owned()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<HeaderSource, A::Error> {
                let keys =
                    SecretHeaderKeys::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let secret = Secret::from_keys(keys.env, keys.file).map_err(de::Error::custom)?;
                check_header_value(&keys.prefix).map_err(de::Error::custom)?;
                Ok(HeaderSource::Secret(SecretHeader {
                    secret,
                    prefix: keys.prefix,
                }))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn check_header_value(text: &str) -> Result<(), String> {
    HeaderValue::from_str(text).map(drop).map_err(|_| {
        format!(
            "invalid header value `{}`: it must not contain line breaks or control characters",
            text.escape_debug()
        )
    })
}

fn header_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    check_header_value(&text).map_err(de::Error::custom)?;
    Ok(text)
}

/// Whether a header's value is a credential, which must not be written in the pipeline
/// file: `Authorization`, `Proxy-Authorization`, `Cookie`, and names with `token`,
/// `secret`, `password`, `api-key`/`apikey` or `auth` in them (any case).
fn carries_credential(name: &HeaderName) -> bool {
    let name = name.as_str();
    matches!(name, "authorization" | "proxy-authorization" | "cookie")
        || ["token", "secret", "password", "api-key", "apikey", "auth"]
            .iter()
            .any(|word| name.contains(word))
}

impl HttpMessengerConfig {
    /// The host secret headers would cross a network to in clear: the URL's host when the
    /// URL is plain `http://` and the host is not this machine.
    fn clear_host(&self) -> Option<String> {
        let host = self.url.0.host_str()?;
        (self.url.0.scheme() == "http" && !crate::shared::secret::is_loopback_host(host))
            .then(|| host.to_string())
    }

    /// The default headers of every request: Content-Type and Accept from `content_type`,
    /// then `headers` (reading environment variables and secrets files now).
    fn header_map(&self, ctx: &BuildContext) -> Result<HeaderMap, String> {
        let mut map = HeaderMap::new();
        let content_type = HeaderValue::from_str(&self.content_type).map_err(|_| {
            format!(
                "invalid content type `{}`",
                self.content_type.escape_debug()
            )
        })?;
        map.insert(CONTENT_TYPE, content_type.clone());
        map.insert(ACCEPT, content_type);
        let mut seen: Vec<HeaderName> = Vec::new();
        for (key, source) in &self.headers {
            let name = HeaderName::from_bytes(key.0.as_bytes())
                .map_err(|_| format!("invalid header name `{key}`"))?;
            if seen.contains(&name) {
                return Err(format!(
                    "header `{key}` is given twice (header names ignore case)"
                ));
            }
            seen.push(name.clone());
            let value = match source {
                // Credential headers written as text are refused by `check`.
                HeaderSource::Value(text) => HeaderValue::from_str(text)
                    .map_err(|_| format!("header `{key}`: invalid value"))?,
                HeaderSource::Secret(SecretHeader { secret, prefix }) => {
                    let what = format!("header `{key}`");
                    let source = secret.source(ctx);
                    let secret = secret.read(ctx, &what)?;
                    // The message names the source, never its value.
                    let mut value =
                        HeaderValue::from_str(&format!("{prefix}{secret}")).map_err(|_| {
                            format!("{what}: {source} holds line breaks or control characters")
                        })?;
                    value.set_sensitive(true);
                    value
                }
            };
            map.insert(name, value);
        }
        Ok(map)
    }
}

impl ComponentConfig for HttpMessengerConfig {
    const KIND: &'static str = "messenger.http";

    /// Credential headers written as text, and secret headers sent in clear.
    fn check(&self) -> Vec<KeyProblem> {
        let clear_host = self.clear_host().filter(|_| !self.insecure);
        let mut problems = Vec::new();
        for (key, source) in &self.headers {
            let credential = HeaderName::from_bytes(key.0.as_bytes())
                .is_ok_and(|name| carries_credential(&name));
            match source {
                HeaderSource::Value(_) if credential => problems.push(
                    KeyProblem::new(
                        &["headers", &key.0],
                        Code::SecretInPipeline,
                        format!("header `{key}` carries a credential, written in the pipeline file"),
                    )
                    .with_help("read it with { env = \"NAME\" } or { file = \"path\" } (a file only its owner can read)"),
                ),
                HeaderSource::Secret(_) => {
                    if let Some(host) = &clear_host {
                        problems.push(
                            KeyProblem::new(
                                &["headers", &key.0],
                                Code::CredentialsInClear,
                                format!(
                                    "header `{key}` is a secret and would be sent in clear: `url` is plain http:// to `{host}`, another machine"
                                ),
                            )
                            .with_help("use an https:// URL, or set `insecure = true` on this messenger to send it anyway"),
                        );
                    }
                }
                HeaderSource::Value(_) => {}
            }
        }
        problems
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let secrets = self
            .headers
            .values()
            .any(|source| matches!(source, HeaderSource::Secret(_)));
        if let (true, true, Some(host)) = (self.insecure, secrets, self.clear_host()) {
            tracing::warn!(
                messenger = %ctx.instance,
                "INSECURE: messenger `{}` sends its secret headers in clear over http:// to {host} (insecure = true): anyone on the network path can read them; use https://",
                ctx.instance
            );
        }
        let client = reqwest::blocking::Client::builder()
            .default_headers(self.header_map(ctx)?)
            .timeout(self.timeout.0)
            .connect_timeout(self.timeout.0)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("acoupi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", error_chain(&e)))?;
        Ok(Built::Messenger(Arc::new(HttpMessenger::new(
            client,
            self.url.0.clone(),
            self.method.as_reqwest(),
            self.timeout,
        ))))
    }
}

pub struct HttpMessenger {
    client: reqwest::blocking::Client,
    url: Url,
    /// The URL as responses and logs show it: without user name and query.
    shown_url: Url,
    method: reqwest::Method,
    timeout: PositiveDuration,
}

impl HttpMessenger {
    fn new(
        client: reqwest::blocking::Client,
        url: Url,
        method: reqwest::Method,
        timeout: PositiveDuration,
    ) -> Self {
        HttpMessenger {
            shown_url: crate::shared::secret::redact_url(&url),
            client,
            url,
            method,
            timeout,
        }
    }

    /// `error`'s text with its URL redacted.
    fn describe(&self, mut error: reqwest::Error) -> String {
        if let Some(url) = error.url_mut() {
            *url = crate::shared::secret::redact_url(url);
        }
        self.scrub(error_chain(&error))
    }

    /// `text` without the URL's query or password, wherever they appear (an answer's body
    /// may echo the request line).
    fn scrub(&self, text: String) -> String {
        let mut text = text.replace(self.url.as_str(), self.shown_url.as_str());
        for secret in [self.url.query(), self.url.password()]
            .into_iter()
            .flatten()
        {
            if !secret.is_empty() && text.contains(secret) {
                text = text.replace(secret, "[redacted]");
            }
        }
        text
    }
}

impl Messenger for HttpMessenger {
    fn send(&self, message: &Message) -> Result<Response, SendError> {
        let body = message.content.as_bytes().to_vec();
        // Delivery is at least once (a stop between the answer and storing it means the
        // message goes again); the message id as `Idempotency-Key` lets a receiver drop
        // the repeat.
        let request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .header("Idempotency-Key", message.id.to_string())
            .body(body);
        match request.send() {
            Ok(answer) => Ok(self.response(message, answer)),
            Err(error) if error.is_builder() => Err(SendError(format!(
                "cannot build the request to {}: {}",
                self.shown_url,
                self.describe(error)
            ))),
            Err(error) if error.is_timeout() => {
                Ok(
                    Response::new(ResponseStatus::Timeout, message.clone()).with_content(format!(
                        "no answer within {}: {}",
                        self.timeout,
                        self.describe(error)
                    )),
                )
            }
            Err(error) => Ok(Response::new(ResponseStatus::Error, message.clone())
                .with_content(self.describe(error))),
        }
    }
}

impl HttpMessenger {
    /// SUCCESS for 2xx, ERROR for 5xx and 429, FAILED otherwise; the content is the
    /// answer's body.
    fn response(&self, message: &Message, answer: reqwest::blocking::Response) -> Response {
        let code = answer.status();
        let status = if code.is_success() {
            ResponseStatus::Success
        } else if code.is_server_error() || code == reqwest::StatusCode::TOO_MANY_REQUESTS {
            ResponseStatus::Error
        } else {
            ResponseStatus::Failed
        };
        tracing::debug!(url = %self.shown_url, message = %message.id, http_status = code.as_u16(), "HTTP answer");
        let response = Response::new(status, message.clone());
        match read_body(answer) {
            Ok(body) if body.is_empty() => response,
            Ok(body) => response.with_content(self.scrub(body)),
            Err(error) => response.with_content(self.scrub(format!(
                "HTTP {code}; cannot read the answer's body: {}",
                error_chain(&error)
            ))),
        }
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of the body as text, noting when it was cut.
fn read_body(answer: reqwest::blocking::Response) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    answer
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    let truncated = bytes.len() > MAX_BODY_BYTES;
    bytes.truncate(MAX_BODY_BYTES);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if truncated {
        text.push_str(&format!(
            "\n[answer truncated to its first {MAX_BODY_BYTES} bytes]"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use acoupi_engine::config::diagnostics::line_col;
    use acoupi_engine::config::{Code, Pipeline, PipelineErrors};
    use std::sync::mpsc;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    /// A pipeline with one `messenger.http` component named `http`, whose keys are
    /// `component` (its table starts on line 4, so its first key is on line 6).
    fn load(component: &str) -> Result<Pipeline, PipelineErrors> {
        crate::testing::messenger_pipeline(
            "messenger.http",
            "http",
            "test",
            component,
            "pipeline.toml",
        )
    }

    fn build(component: &str) -> Result<Arc<dyn Messenger>, String> {
        crate::testing::build_messenger(&load(component).map_err(|e| e.to_string())?)
    }

    /// What the test server received.
    struct Received {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Received {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A real HTTP server on 127.0.0.1 (random port) that answers ONE request with
    /// `status` and `body` after `delay`, then stops; it gives up after 10 s without one.
    struct TestServer {
        url: String,
        received: mpsc::Receiver<Received>,
        thread: JoinHandle<()>,
    }

    fn serve(status: u16, body: impl Into<Vec<u8>>, delay: Duration) -> TestServer {
        let body = body.into();
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let (sender, received) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let Ok(Some(mut request)) = server.recv_timeout(Duration::from_secs(10)) else {
                return;
            };
            let mut bytes = Vec::new();
            request.as_reader().read_to_end(&mut bytes).unwrap();
            let headers = request
                .headers()
                .iter()
                .map(|h| (h.field.to_string(), h.value.to_string()))
                .collect();
            sender
                .send(Received {
                    method: request.method().to_string(),
                    path: request.url().to_string(),
                    headers,
                    body: bytes,
                })
                .unwrap();
            std::thread::sleep(delay);
            let _ = request.respond(tiny_http::Response::from_data(body).with_status_code(status));
        });
        TestServer {
            url: format!("http://127.0.0.1:{port}/messages"),
            received,
            thread,
        }
    }

    impl TestServer {
        fn config(&self, extra: &str) -> String {
            format!("url = \"{}\"\n{extra}", self.url)
        }

        /// The request it received; waits for the server to finish.
        fn finish(self) -> Received {
            let received = self
                .received
                .recv_timeout(Duration::from_secs(10))
                .expect("the server received no request");
            self.thread.join().unwrap();
            received
        }
    }

    #[test]
    fn a_2xx_answer_is_success_and_the_server_gets_the_body_and_headers() {
        let variable = format!("ACOUPI_TEST_HTTP_TOKEN_{}", std::process::id());
        // SAFETY: the variable's name is unique to this test and process; no other test
        // reads or writes it, and no test thread calls C `getenv` (URLs are IP literals).
        #[allow(unsafe_code, reason = "std::env::set_var is unsafe; see SAFETY above")]
        unsafe {
            std::env::set_var(&variable, "s3cret")
        };
        let server = serve(200, "{\"ok\":true}", Duration::ZERO);
        let messenger = build(&server.config(&format!(
            "headers = {{ X-Station-Token = {{ env = \"{variable}\", prefix = \"Bearer \" }}, X-Site = \"north\" }}"
        )))
        .unwrap();
        let message = Message::new("{\"detections\":[]}");

        let response = messenger.send(&message).unwrap();

        assert_eq!(response.status, ResponseStatus::Success);
        assert_eq!(response.message, message);
        assert_eq!(response.content.as_deref(), Some("{\"ok\":true}"));
        let received = server.finish();
        assert_eq!(
            (received.method.as_str(), received.path.as_str()),
            ("POST", "/messages")
        );
        assert_eq!(received.body, b"{\"detections\":[]}");
        assert_eq!(received.header("Content-Type"), Some("application/json"));
        assert_eq!(received.header("Accept"), Some("application/json"));
        assert_eq!(received.header("X-Station-Token"), Some("Bearer s3cret"));
        assert_eq!(received.header("X-Site"), Some("north"));
        assert_eq!(
            received.header("Idempotency-Key"),
            Some(message.id.to_string().as_str()),
            "receivers can drop a repeat"
        );
    }

    #[test]
    fn a_500_answer_is_an_error_with_the_body_stored() {
        let server = serve(500, "database is down", Duration::ZERO);
        let messenger = build(&server.config("")).unwrap();
        let response = messenger.send(&Message::new("hello")).unwrap();
        assert_eq!(
            response.status,
            ResponseStatus::Error,
            "the receiver is down: tried again next run, no back-off"
        );
        assert_eq!(response.content.as_deref(), Some("database is down"));
        assert_eq!(server.finish().body, b"hello");
    }

    #[test]
    fn a_404_answer_to_a_put_of_bytes_is_failed() {
        let server = serve(404, "", Duration::ZERO);
        let messenger =
            build(&server.config("method = \"PUT\"\ncontent_type = \"application/octet-stream\""))
                .unwrap();
        let response = messenger.send(&Message::new(vec![0u8, 159, 255])).unwrap();
        assert_eq!(response.status, ResponseStatus::Failed);
        assert_eq!(response.content, None);
        let received = server.finish();
        assert_eq!(received.method, "PUT");
        assert_eq!(received.body, [0u8, 159, 255]);
        assert_eq!(
            received.header("Content-Type"),
            Some("application/octet-stream")
        );
    }

    #[test]
    fn a_long_answer_is_truncated() {
        let server = serve(502, "x".repeat(MAX_BODY_BYTES + 10), Duration::ZERO);
        let messenger = build(&server.config("")).unwrap();
        let content = messenger
            .send(&Message::new("hello"))
            .unwrap()
            .content
            .unwrap();
        assert!(content.starts_with(&"x".repeat(MAX_BODY_BYTES)));
        assert!(
            content.ends_with("[answer truncated to its first 65536 bytes]"),
            "{}",
            &content[MAX_BODY_BYTES..]
        );
        server.finish();
    }

    #[test]
    fn no_answer_within_the_timeout_is_timeout() {
        let server = serve(200, "too late", Duration::from_millis(1500));
        let messenger = build(&server.config("timeout = \"300ms\"")).unwrap();
        let start = Instant::now();
        let response = messenger.send(&Message::new("hello")).unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(1400),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            response.status,
            ResponseStatus::Timeout,
            "{:?}",
            response.content
        );
        assert!(
            response
                .content
                .unwrap()
                .starts_with("no answer within 300ms")
        );
        server.finish();
    }

    #[test]
    fn a_closed_port_is_error_with_the_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let messenger = build(&format!("url = \"http://127.0.0.1:{port}/messages\"")).unwrap();
        let response = messenger.send(&Message::new("hello")).unwrap();
        assert_eq!(response.status, ResponseStatus::Error);
        let content = response.content.unwrap();
        assert!(content.to_lowercase().contains("refused"), "{content}");
    }

    #[test]
    fn bad_urls_are_reported_at_their_line() {
        for (url, expected) in [
            (
                "ftp://example.org/x",
                "the scheme is `ftp`, expected `http` or `https`",
            ),
            ("example.org/x", "invalid URL `example.org/x`"),
            ("http://", "invalid URL `http://`"),
        ] {
            let errors = load(&format!("url = \"{url}\"")).unwrap_err();
            assert_eq!(errors.problems.len(), 1, "{errors}");
            let problem = &errors.problems[0];
            assert_eq!(problem.code, Code::InvalidValue, "{errors}");
            assert!(problem.message.contains(expected), "{errors}");
            let span = problem.span.clone().unwrap();
            assert_eq!(line_col(&errors.source, span.start).0, 6, "{errors}");
        }
    }

    #[test]
    fn credentials_written_in_the_pipeline_file_are_refused() {
        for header in [
            "Authorization",
            "x-api-key",
            "X-Station-Token",
            "Cookie",
            "X-Auth-User",
        ] {
            let error = build(&format!(
                "url = \"https://example.org\"\nheaders = {{ \"{header}\" = \"hunter2\" }}"
            ))
            .err()
            .unwrap();
            assert!(
                error.contains("carries a credential") && !error.contains("hunter2"),
                "{header}: {error}"
            );
        }
        assert!(
            build("url = \"https://example.org\"\nheaders = { X-Site = \"north\" }").is_ok(),
            "other headers may be plain text"
        );
        let errors = load("url = \"https://station:hunter2@example.org/api\"").unwrap_err();
        assert!(
            errors.to_string().contains("the URL holds a password"),
            "{errors}"
        );
        assert!(
            load("url = \"https://station@example.org/api\"").is_ok(),
            "a user name alone is no secret"
        );
    }

    #[test]
    fn a_secret_header_in_clear_to_another_machine_is_refused_at_its_key_unless_insecure() {
        let header = "headers = { X-Site = \"north\", Authorization = { env = \"STATION_TOKEN\", prefix = \"Bearer \" } }";
        for url in [
            "http://example.org/api",
            "http://192.168.1.20:8080/api",
            "HTTP://Example.org/api",
        ] {
            let errors = load(&format!("url = \"{url}\"\n{header}")).unwrap_err();
            assert_eq!(errors.problems.len(), 1, "{errors}");
            let problem = &errors.problems[0];
            assert_eq!(problem.code, Code::CredentialsInClear, "{errors}");
            let span = problem.span.clone().unwrap();
            assert_eq!(
                &errors.source[span.clone()],
                "Authorization",
                "the problem points at the header's key: {errors}"
            );
            assert_eq!(line_col(&errors.source, span.start).0, 7, "{errors}");
            assert!(problem.message.contains("in clear"), "{errors}");
        }
        for passes in [
            format!("url = \"https://example.org/api\"\n{header}"),
            format!("url = \"http://example.org/api\"\n{header}\ninsecure = true"),
            format!("url = \"http://localhost:8080/api\"\n{header}"),
            format!("url = \"http://127.0.0.1:8080/api\"\n{header}"),
            format!("url = \"http://[::1]:8080/api\"\n{header}"),
            "url = \"http://example.org/api\"\nheaders = { X-Site = \"north\" }".to_string(),
        ] {
            assert!(
                load(&passes).is_ok(),
                "`{passes}` is refused: {}",
                load(&passes).unwrap_err()
            );
        }
    }

    #[test]
    fn a_token_in_the_url_query_is_refused_at_the_url() {
        for url in [
            "https://example.org/api?token=abc",
            "https://example.org/api?site=north&API_KEY=abc",
            "https://example.org/api?access_token=abc",
        ] {
            let errors = load(&format!("url = \"{url}\"")).unwrap_err();
            assert_eq!(errors.problems.len(), 1, "{errors}");
            assert_eq!(errors.problems[0].code, Code::SecretInPipeline, "{errors}");
            assert!(
                errors.problems[0].message.contains("looks like a secret")
                    && !errors.problems[0].message.contains("abc"),
                "{errors}"
            );
            assert_eq!(
                line_col(
                    &errors.source,
                    errors.problems[0].span.clone().unwrap().start
                ),
                (6, 7),
                "{errors}"
            );
        }
        assert!(load("url = \"https://example.org/api?site=north\"").is_ok());
    }

    /// A messenger for `url` built without validation (which refuses a token in the URL),
    /// as a second line of defence is tested.
    fn unchecked(url: &str, timeout: Duration) -> Arc<dyn Messenger> {
        let config = HttpMessengerConfig {
            url: HttpUrl(Url::parse(url).unwrap()),
            method: HttpMethod::Post,
            headers: BTreeMap::new(),
            timeout: BoundedDuration(timeout),
            content_type: default_content_type(),
            insecure: false,
        };
        let dir = tempfile::tempdir().unwrap();
        match ComponentConfig::build(&config, &crate::testing::context(dir.path(), None)).unwrap() {
            Built::Messenger(messenger) => messenger,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_send_never_stores_the_token_of_the_url() {
        // A server that answers 500 with a body echoing the request line, as many do.
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let thread = std::thread::spawn(move || {
            let Ok(Some(request)) = server.recv_timeout(Duration::from_secs(10)) else {
                return;
            };
            let echo = format!("internal error handling POST {}", request.url());
            let _ = request.respond(tiny_http::Response::from_string(echo).with_status_code(500));
        });
        let secret = "s3cr3t-t0ken";
        let url = format!("http://station:pw-{secret}@127.0.0.1:{port}/messages?token={secret}");
        let messenger = unchecked(&url, Duration::from_secs(5));
        let response = messenger.send(&Message::new("hello")).unwrap();
        assert_eq!(response.status, ResponseStatus::Error);
        let content = response.content.clone().unwrap_or_default();
        assert!(
            content.contains("internal error handling POST /messages"),
            "{content}"
        );
        assert!(
            !content.contains(secret),
            "the token is in the stored response: {content}"
        );
        // (The messaging task stores this Response as it is.)
        thread.join().unwrap();

        // No server: reqwest's error names the URL, without its query or password.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://station:pw-{secret}@127.0.0.1:{closed}/messages?token={secret}");
        let response = unchecked(&url, Duration::from_secs(5))
            .send(&Message::new("hello"))
            .unwrap();
        assert_eq!(response.status, ResponseStatus::Error);
        let content = response.content.unwrap_or_default();
        assert!(
            content.contains(&format!("127.0.0.1:{closed}/messages")) && !content.contains(secret),
            "{content}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported() {
        let errors = load("url = \"https://example.org\"\nretries = 3").unwrap_err();
        assert_eq!(errors.problems.len(), 1, "{errors}");
        assert_eq!(errors.problems[0].code, Code::UnknownKey, "{errors}");
        assert_eq!(
            line_col(
                &errors.source,
                errors.problems[0].span.clone().unwrap().start
            )
            .0,
            7
        );

        for (extra, code) in [
            ("method = \"GET\"", Code::InvalidValue),
            (
                "headers = { Authorization = { env = \"X\", prefx = \"Bearer \" } }",
                Code::UnknownKey,
            ),
            ("headers = { \"Bad Name\" = \"x\" }", Code::InvalidValue),
            ("timeout = \"0s\"", Code::OutOfRange),
        ] {
            let errors = load(&format!("url = \"https://example.org\"\n{extra}")).unwrap_err();
            assert!(
                errors.problems.iter().any(|p| p.code == code),
                "{extra}: {errors}"
            );
        }
    }

    #[test]
    fn defaults_and_a_missing_environment_variable() {
        let pipeline = load("url = \"https://example.org/api\"").unwrap();
        let text = format!("{:?}", pipeline.components[0].settings);
        assert!(
            text.contains("Post") && text.contains("application/json") && text.contains("5s"),
            "{text}"
        );

        let variable = format!("ACOUPI_TEST_HTTP_UNSET_{}", std::process::id());
        let error = build(&format!("url = \"https://example.org\"\nheaders = {{ Authorization = {{ env = \"{variable}\" }} }}"))
            .err()
            .unwrap();
        assert!(
            error.contains(&format!("environment variable `{variable}` is not set")),
            "{error}"
        );
        assert!(error.contains("`http` (messenger.http)"), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn a_header_from_a_private_file_is_sent_and_a_shared_file_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "from-file\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let header = format!(
            "headers = {{ Authorization = {{ file = \"{}\", prefix = \"Token \" }} }}",
            token.display()
        );
        let server = serve(200, "", Duration::ZERO);
        let messenger = build(&server.config(&header)).unwrap();
        assert_eq!(
            messenger.send(&Message::new("{}")).unwrap().status,
            ResponseStatus::Success
        );
        assert_eq!(
            server.finish().header("Authorization"),
            Some("Token from-file")
        );

        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = build(&format!("url = \"https://example.org\"\n{header}"))
            .err()
            .unwrap();
        assert!(
            error.contains("can be read by other users (mode 644)") && !error.contains("from-file"),
            "{error}"
        );
        let both =
            load("url = \"https://example.org\"\nheaders = { A = { env = \"X\", file = \"y\" } }")
                .unwrap_err();
        assert!(both.to_string().contains("give `env` or `file`"), "{both}");
    }
}

//! The few W3C WebDriver commands the browser test needs, over plain HTTP/1.1 to
//! chromedriver on 127.0.0.1 (std's TcpStream and serde_json: no client crate, so no TLS
//! stack, no new licence and no change to the dependency tree).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver error: the command, and what the driver answered.
#[derive(Debug)]
pub struct Error(pub String);

pub type Result<T> = std::result::Result<T, Error>;

pub enum Locator<'a> {
    Css(&'a str),
}

impl Locator<'_> {
    fn body(&self) -> Value {
        match self {
            Locator::Css(css) => json!({ "using": "css selector", "value": css }),
        }
    }
}

/// One browser session.
pub struct Client {
    address: String,
    session: String,
}

/// An element of the current page.
pub struct Element<'a> {
    client: &'a Client,
    id: String,
}

impl Client {
    /// Starts a session on the driver at `url` (`http://127.0.0.1:PORT`).
    pub fn connect(url: &str, capabilities: Value) -> Client {
        let address = url.trim_start_matches("http://").trim_end_matches('/');
        let mut client = Client {
            address: address.to_string(),
            session: String::new(),
        };
        let body = json!({ "capabilities": { "alwaysMatch": capabilities } });
        let value = client
            .call("POST", "/session", Some(&body))
            .unwrap_or_else(|e| panic!("no WebDriver session: {}", e.0));
        client.session = value["sessionId"].as_str().unwrap_or_default().to_string();
        assert!(!client.session.is_empty(), "no session id in {value}");
        client
    }

    /// Sends one command and returns its `value`.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let what = format!("{method} {path}");
        let fail = |e: std::io::Error| Error(format!("{what}: {e}"));
        let mut stream = TcpStream::connect(&self.address).map_err(fail)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(180)))
            .map_err(fail)?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: acoupi-e2e\r\n\
             Accept: */*\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        stream.write_all(request.as_bytes()).map_err(fail)?;
        // chromedriver keeps the connection open after its answer: read up to the end of
        // the body its Content-Length gives, not to the end of the stream.
        let mut answer = Vec::new();
        let mut buffer = [0u8; 65536];
        loop {
            let n = stream.read(&mut buffer).map_err(fail)?;
            answer.extend_from_slice(&buffer[..n]);
            if n == 0 || complete(&answer) {
                break;
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        let (head, rest) = answer
            .split_once("\r\n\r\n")
            .ok_or_else(|| Error(format!("{what}: no HTTP answer: {answer}")))?;
        let payload = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        let status = head.split(' ').nth(1).unwrap_or_default();
        let value: Value =
            serde_json::from_str(&payload).map_err(|e| Error(format!("{what}: {e}: {payload}")))?;
        if status.starts_with('2') {
            Ok(value["value"].clone())
        } else {
            Err(Error(format!("{what}: {status} {}", value["value"])))
        }
    }

    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.session_call("POST", "/url", Some(&json!({ "url": url })))
            .map(drop)
    }

    pub fn refresh(&self) -> Result<()> {
        self.session_call("POST", "/refresh", Some(&json!({})))
            .map(drop)
    }

    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        let body = json!({ "script": script, "args": args });
        self.session_call("POST", "/execute/sync", Some(&body))
    }

    /// Runs `script` with a callback as its last argument, and returns what it passed.
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        let body = json!({ "script": script, "args": args });
        self.session_call("POST", "/execute/async", Some(&body))
    }

    pub fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        let body = json!({ "width": width, "height": height });
        self.session_call("POST", "/window/rect", Some(&body))
            .map(drop)
    }

    /// The viewport as PNG.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let value = self.session_call("GET", "/screenshot", None)?;
        base64(value.as_str().unwrap_or_default())
            .ok_or_else(|| Error("the screenshot is not base64".into()))
    }

    pub fn find(&self, locator: Locator<'_>) -> Result<Element<'_>> {
        let value = self.session_call("POST", "/element", Some(&locator.body()))?;
        self.element(&value)
    }

    fn element(&self, value: &Value) -> Result<Element<'_>> {
        match value[ELEMENT].as_str() {
            Some(id) => Ok(Element {
                client: self,
                id: id.to_string(),
            }),
            None => Err(Error(format!("not an element: {value}"))),
        }
    }

    /// Ends the session (the browser quits).
    pub fn close(self) -> Result<()> {
        self.session_call("DELETE", "", None).map(drop)
    }
}

impl Element<'_> {
    /// The reference to pass to a script (`arguments[i]`).
    pub fn json(&self) -> Value {
        json!({ ELEMENT: self.id })
    }

    pub fn attr(&self, name: &str) -> Result<Option<String>> {
        let value = self.client.session_call(
            "GET",
            &format!("/element/{}/attribute/{name}", self.id),
            None,
        )?;
        Ok(value.as_str().map(str::to_string))
    }

    pub fn click(&self) -> Result<()> {
        self.client
            .session_call(
                "POST",
                &format!("/element/{}/click", self.id),
                Some(&json!({})),
            )
            .map(drop)
    }

    pub fn find(&self, locator: Locator<'_>) -> Result<Element<'_>> {
        let value = self.client.session_call(
            "POST",
            &format!("/element/{}/element", self.id),
            Some(&locator.body()),
        )?;
        self.client.element(&value)
    }
}

/// Whether `answer` holds the whole HTTP answer: its head and as many body bytes as its
/// Content-Length says (a chunked body: up to its last, empty chunk).
fn complete(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let body = answer.len() - end - 4;
    match head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        Some(length) => body >= length,
        None => answer.ends_with(b"0\r\n\r\n"),
    }
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// Standard base64 (with padding) to bytes.
fn base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

#[test]
fn base64_decodes_what_it_should() {
    assert_eq!(base64("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
    assert_eq!(base64("TWFu").unwrap(), b"Man");
    assert_eq!(base64("TWE=").unwrap(), b"Ma");
    assert!(base64("a*b").is_none());
}

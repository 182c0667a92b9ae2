//! The dashboard's security layer, around every route (see docs/dashboard.md, "Security"):
//!
//! - **Token.** With a token (`[web] token_env`/`token_file`, `acoupi serve --token-env`),
//!   every change (any method but GET, HEAD, OPTIONS) needs `Authorization: Bearer
//!   <token>`, and every read too unless `public`; compared in constant time. No cookie is
//!   ever taken for a token, so another site cannot make a browser send it. `/assets/` is
//!   always open (the login page needs its CSS and script).
//! - **Browsers without the header.** A page opened without the token (a read that accepts
//!   HTML and is not an htmx request) answers 401 with a login form; `/assets/acoupi.js`
//!   keeps what the user types in `sessionStorage` (this tab only, gone when it closes),
//!   adds the header to every htmx request, and loads pages through htmx (`hx-boost`).
//!   A token in a URL (`?token=`) is never read: URLs end up in logs and histories.
//! - **No token (a loopback bind only; the pipeline's validation refuses anything else).**
//!   The `Host` header must name this machine (`localhost`, 127.0.0.0/8, `[::1]`), so a
//!   page elsewhere cannot reach the dashboard through a DNS name rebound to 127.0.0.1;
//!   and a change sent by a browser from another origin (`Origin` not the `Host`, or
//!   `Sec-Fetch-Site: cross-site`) is refused, so another site cannot post reviews
//!   through the user's browser. Both answer 403.
//! - **Every response** carries a strict Content-Security-Policy (scripts, styles, media
//!   from the dashboard only; no inline script or `style` attribute; images also from
//!   `data:`; no framing), `X-Content-Type-Options: nosniff` and `Referrer-Policy:
//!   no-referrer`.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{AppState, WebError};

/// The Content-Security-Policy of every response.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The layer (`axum::middleware::from_fn_with_state`): checks the request, then adds the
/// security headers to whatever answers it.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = match refusal(&state, &request) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    };
    add_headers(response.headers_mut());
    response
}

/// Adds the headers every response carries.
pub(crate) fn add_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Whether `method` only reads.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `None` when the request may go on; otherwise the answer that refuses it.
fn refusal(state: &AppState, request: &Request) -> Option<Response> {
    let options = state.options();
    let read = is_read(request.method());
    let headers = request.headers();
    let Some(token) = options.token.as_deref() else {
        return same_machine(headers, read);
    };
    if request.uri().path().starts_with("/assets/") || (read && options.public) {
        return None;
    }
    if bearer(headers).is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes())) {
        return None;
    }
    if read && wants_page(headers) {
        let mut response = crate::pages::layout::login().into_response();
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Some(response);
    }
    Some(WebError::Unauthorized.into_response())
}

/// Without a token: the `Host` must be this machine, and a change must not come from a
/// page of another origin.
fn same_machine(headers: &HeaderMap, read: bool) -> Option<Response> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host.is_empty() && !acoupi_engine::secret::is_loopback_host(host_name(host)) {
        return Some(forbidden(format!(
            "this dashboard answers requests for this machine only (Host `{host}`); set a token to serve other machines"
        )));
    }
    if read {
        return None;
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    let foreign_origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|origin| {
            origin.split_once("://").map(|(_, rest)| rest) != Some(host) || host.is_empty()
        });
    if cross_site || foreign_origin {
        return Some(forbidden(
            "a change from a page of another site is refused".to_string(),
        ));
    }
    None
}

/// The host of a `Host` header (`name:port`, `[v6]:port`, `name`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn forbidden(message: String) -> Response {
    let body = serde_json::json!({ "error": message });
    (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Whether a read is a browser opening a page (not an htmx request, not the API).
fn wants_page(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_none()
        && headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

/// `a == b` in time that depends on their lengths only.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateOptions;
    use crate::{Served, router};
    use acoupi_store_duckdb::DuckDbStore;

    #[test]
    fn secrets_compare_and_hosts_parse() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
        assert_eq!(host_name("evil.example:80"), "evil.example");
    }

    /// A dashboard on an empty store, on 127.0.0.1, with `token` and `public`; its
    /// base URL. The runtime (and the temporary folder) live as long as the test.
    fn serve(
        token: Option<&str>,
        public: bool,
    ) -> (tokio::runtime::Runtime, tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap();
        let state = AppState::new(StateOptions {
            store,
            served: Served::File { read_only: false },
            telemetry: None,
            settings: None,
            species_key: None,
            cache_dir: dir.path().join("cache"),
            token: token.map(str::to_string),
            public,
        });
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, router(state)).await });
        (runtime, dir, url)
    }

    /// Status and headers of a request (blocking client, off the server's runtime).
    fn call(
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let client = reqwest::blocking::Client::new();
        let mut request = client.request(method, url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.text().unwrap())
    }

    fn assert_security_headers(headers: &reqwest::header::HeaderMap, what: &str) {
        assert_eq!(
            headers
                .get("content-security-policy")
                .map(|v| v.to_str().unwrap()),
            Some(CONTENT_SECURITY_POLICY),
            "{what}"
        );
        let csp = CONTENT_SECURITY_POLICY;
        for part in [
            "default-src 'self'",
            "img-src 'self' data:",
            "media-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{part}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(
            headers.get("x-content-type-options").unwrap(),
            "nosniff",
            "{what}"
        );
        assert_eq!(
            headers.get("referrer-policy").unwrap(),
            "no-referrer",
            "{what}"
        );
    }

    #[test]
    fn every_answer_carries_the_security_headers() {
        let (_runtime, _dir, url) = serve(None, false);
        for path in [
            "/assets/style.css",
            "/assets/htmx.min.js",
            "/nothing-here",
            "/api/v1/nothing",
        ] {
            let (status, headers, _) = call(reqwest::Method::GET, &format!("{url}{path}"), &[]);
            assert!(status == 200 || status == 404, "{path}: {status}");
            assert_security_headers(&headers, path);
        }
        // The login page (a page's frame) too.
        let (_runtime, _dir, url) = serve(Some("s3cret"), false);
        let (status, headers, body) = call(
            reqwest::Method::GET,
            &format!("{url}/"),
            &[("accept", "text/html")],
        );
        assert_eq!(status, 401);
        assert_security_headers(&headers, "login");
        assert!(
            body.contains("acoupi-login") && !body.contains("s3cret"),
            "{body}"
        );
    }

    #[test]
    fn assets_have_their_type_and_a_long_cache() {
        let (_runtime, _dir, url) = serve(Some("t"), false);
        for (name, kind) in [
            ("style.css", "text/css"),
            ("htmx.min.js", "text/javascript"),
            ("acoupi.js", "text/javascript"),
        ] {
            let (status, headers, body) =
                call(reqwest::Method::GET, &format!("{url}/assets/{name}"), &[]);
            assert_eq!(status, 200, "{name}: open without the token");
            assert!(
                headers["content-type"].to_str().unwrap().starts_with(kind),
                "{name}"
            );
            assert!(
                headers["cache-control"]
                    .to_str()
                    .unwrap()
                    .contains("max-age=31536000"),
                "{name}"
            );
            assert!(!body.is_empty());
        }
        assert!(crate::assets::names().count() >= 4);
    }

    #[test]
    fn a_token_guards_changes_and_reads_unless_public() {
        let post = reqwest::Method::POST;
        let get = reqwest::Method::GET;
        for public in [false, true] {
            let (_runtime, _dir, url) = serve(Some("s3cret"), public);
            let target = format!("{url}/api/v1/anything");
            // Changes: refused without the token or with a wrong one, in any scheme.
            for headers in [
                &[][..],
                &[("authorization", "Bearer wrong")][..],
                &[("authorization", "Bearer s3cre")][..],
                &[("authorization", "Basic s3cret")][..],
                &[("cookie", "token=s3cret")][..],
            ] {
                let (status, _, body) = call(post.clone(), &target, headers);
                assert_eq!(status, 401, "{headers:?} public={public}");
                assert!(body.contains("Authorization: Bearer"), "{body}");
                assert!(!body.contains("s3cret"), "{body}");
            }
            // With it the request reaches the router (no such route: 404, not 401).
            let (status, _, _) = call(post.clone(), &target, &[("authorization", "Bearer s3cret")]);
            assert_eq!(status, 404, "public={public}");
            // Reads: open when public, else the token too.
            let (status, _, _) = call(get.clone(), &target, &[]);
            assert_eq!(
                status,
                if public { 404 } else { 401 },
                "read, public={public}"
            );
            let (status, _, _) = call(get.clone(), &target, &[("authorization", "bearer s3cret")]);
            assert_eq!(status, 404, "read with the token, public={public}");
        }
    }

    #[test]
    fn without_a_token_only_this_machine_and_its_own_pages_are_served() {
        let (_runtime, _dir, url) = serve(None, false);
        let target = format!("{url}/api/v1/anything");
        let host = url.trim_start_matches("http://").to_string();
        // A name rebound to 127.0.0.1 is refused, reads and changes.
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let (status, _, body) = call(method, &target, &[("host", "evil.example:80")]);
            assert_eq!(status, 403, "{body}");
        }
        // A change from another site's page is refused; from the dashboard's own, or
        // without Origin (curl), it goes through.
        let post = reqwest::Method::POST;
        let (status, _, _) = call(post.clone(), &target, &[("origin", "http://evil.example")]);
        assert_eq!(status, 403);
        let (status, _, _) = call(post.clone(), &target, &[("sec-fetch-site", "cross-site")]);
        assert_eq!(status, 403);
        let own = format!("http://{host}");
        let (status, _, _) = call(post.clone(), &target, &[("origin", own.as_str())]);
        assert_eq!(status, 404);
        let (status, _, _) = call(post, &target, &[]);
        assert_eq!(status, 404);
    }
}

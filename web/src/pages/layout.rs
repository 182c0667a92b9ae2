//! The frame every page shares: head (our CSS, vendored htmx, `acoupi.js`, htmx's
//! config), the header with the navigation, footer; and the login page a browser gets
//! when a token is set and it sent none (see `security.rs`).
//!
//! No inline script and no `style` attribute anywhere (the Content-Security-Policy
//! blocks both): behaviour goes in htmx attributes or `/assets/acoupi.js`, looks in
//! `/assets/style.css` classes. The body is boosted (`hx-boost`): links and forms load
//! through htmx, which is how the token travels when one is set.

use maud::{DOCTYPE, Markup, html};

use crate::assets::VERSION_QUERY;

/// The navigation entries: path and label.
pub(crate) const NAV: &[(&str, &str)] = &[
    ("/", "Today"),
    ("/detections", "Detections"),
    ("/analytics", "Analytics"),
    ("/station", "Station"),
];

/// htmx's settings: no inline indicator styles (CSP), no eval, no inline scripts in
/// swapped content.
const HTMX_CONFIG: &str =
    r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;

/// A whole page: `title`, the navigation with `active` (a path of [`NAV`]) marked, `body`.
pub(crate) fn page(title: &str, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body hx-boost="true" {
                header class="site" {
                    a class="brand" href="/" { "acoupi" }
                    nav {
                        @for (path, label) in NAV {
                            a href=(path) class=[(*path == active).then_some("active")] { (label) }
                        }
                    }
                }
                main { (body) }
                footer class="site" {
                    "acoupi-rs " (env!("CARGO_PKG_VERSION"))
                }
            }
        }
    }
}

/// What a browser gets (with status 401) when a token is needed and it sent none.
pub(crate) fn login() -> Markup {
    page(
        "Sign in",
        "",
        html! {
            h1 { "This dashboard needs its token" }
            p class="muted" {
                "The token is kept in this browser tab only (sessionStorage) and sent with each request as "
                code { "Authorization: Bearer" } "."
            }
            form id="acoupi-login" class="login" {
                label {
                    "Token"
                    input id="acoupi-token" name="token" type="password" autocomplete="current-password" required;
                }
                button class="primary" type="submit" { "Open" }
            }
        },
    )
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=(HTMX_CONFIG);
            title { (title) " · acoupi" }
            link rel="stylesheet" href={ "/assets/style.css" (VERSION_QUERY) };
            script src={ "/assets/htmx.min.js" (VERSION_QUERY) } defer {}
            script src={ "/assets/acoupi.js" (VERSION_QUERY) } defer {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_has_no_inline_script_or_style() {
        let html = page("T", "/", html! { p { "x" } }).into_string();
        assert!(
            html.contains(r#"content="{&quot;includeIndicatorStyles&quot;:false"#),
            "{html}"
        );
        assert!(!html.contains(" style="), "{html}");
        for script in html.split("<script").skip(1) {
            assert!(script.trim_start().starts_with("src="), "{script}");
        }
        assert!(html.contains(r#"class="active""#), "{html}");
    }
}

//! The frame every page shares: head (CSS, vendored htmx), navigation, footer.

use maud::{DOCTYPE, Markup, html};

/// The navigation entries: path and label.
pub(crate) const NAV: &[(&str, &str)] = &[
    ("/", "Today"),
    ("/detections", "Detections"),
    ("/analytics", "Analytics"),
    ("/station", "Station"),
];

/// A whole page: `title`, the navigation with `active` (a path of [`NAV`]) marked, `body`.
#[allow(dead_code)] // The pages call it.
pub(crate) fn page(title: &str, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · acoupi" }
            }
            body {
                nav {
                    @for (path, label) in NAV {
                        a href=(path) class=[(*path == active).then_some("active")] { (label) }
                    }
                }
                main { (body) }
            }
        }
    }
}

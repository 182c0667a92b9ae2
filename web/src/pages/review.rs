//! The review controls every list and the recording page show beside a detection:
//! correct / false positive / unsure and an optional comment, posted with htmx to
//! `POST /api/v1/detections/{id}/review`, whose answer (this same fragment, when the
//! request carries `HX-Request`) replaces the controls: no reload. Without JavaScript
//! the form posts the same fields and the endpoint answers JSON.

use acoupi_store_duckdb::{Review, Verdict};
use maud::{Markup, html};
use uuid::Uuid;

/// The controls of one detection, showing its `latest` review.
pub(crate) fn review_controls(detection_id: Uuid, latest: Option<&Review>) -> Markup {
    let url = format!("/api/v1/detections/{detection_id}/review");
    let current = latest.map(|r| r.verdict);
    html! {
        form class="review" method="post" action=(url) hx-post=(url) hx-swap="outerHTML"
            data-detection=(detection_id) {
            @if let Some(review) = latest {
                span class={ "verdict verdict-" (review.verdict.as_str()) }
                    title=(review.reviewed_on.format("%Y-%m-%d %H:%M UTC")) {
                    (review.verdict.label())
                    @if let Some(reviewer) = &review.reviewer { " (" (reviewer) ")" }
                }
            }
            @for verdict in Verdict::ALL {
                button type="submit" name="verdict" value=(verdict.as_str())
                    class=[(current == Some(verdict)).then_some("active")]
                    aria-pressed=(current == Some(verdict)) {
                    (verdict.label())
                }
            }
            input type="text" name="comment" placeholder="comment" aria-label="comment"
                maxlength="1000" value=[latest.and_then(|r| r.comment.as_deref())];
        }
    }
}

/// The "keep" toggle of a recording (`POST /api/v1/recordings/{id}/keep`): retention
/// never deletes a kept recording.
pub(crate) fn keep_control(recording_id: Uuid, kept: bool) -> Markup {
    let url = format!("/api/v1/recordings/{recording_id}/keep");
    html! {
        form class="keep" method="post" action=(url) hx-post=(url) hx-swap="outerHTML" {
            input type="hidden" name="keep" value=(!kept);
            @if kept {
                span class="kept" { "kept: retention never deletes it" }
                button type="submit" { "stop keeping" }
            } @else {
                button type="submit" title="protect this recording from retention" { "keep" }
            }
        }
    }
}

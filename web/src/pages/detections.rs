//! `/detections`: the filter form (a GET form, so every filtered list is a URL to share;
//! the Today grid links here with `?from=DATE&to=DATE&species=S&hour=H`) and a paged
//! table of detections (species, confidence, time, model, review), each row with a play
//! button for its clip (`/api/v1/recordings/{id}/audio?start=&end=`, played with
//! `preload="none"`, so nothing loads until asked) and a link to its recording. The
//! query parameters are those of `GET /api/v1/detections`; a bad one answers 400.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use maud::{Markup, html};

use crate::api::detections::{Page, parse_params, read_page};
use crate::data::detections::choices;
use crate::data::species_key::species_key;
use crate::pages::layout::page;
use crate::pages::review::review_controls;
use crate::{AppState, WebError};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/detections", get(detections_page))
}

async fn detections_page(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Markup, WebError> {
    let (filter, limit, offset) = parse_params(&state, &params)?;
    let page_data = read_page(&state, filter, limit, offset).await?;
    let configured = state.options().species_key.clone();
    let (species, models) = state
        .read(
            move |conn| match species_key(conn, configured.as_deref())? {
                Some(key) => choices(conn, &key),
                None => Ok((Vec::new(), Vec::new())),
            },
        )
        .await?;
    Ok(page(
        "Detections",
        "/detections",
        html! {
            h1 { "Detections" }
            (filter_form(&params, &species, &models))
            (table(&page_data))
            (pager(&params, &page_data))
        },
    ))
}

fn value<'a>(params: &'a HashMap<String, String>, name: &str) -> &'a str {
    params.get(name).map_or("", String::as_str)
}

fn filter_form(params: &HashMap<String, String>, species: &[String], models: &[String]) -> Markup {
    let chosen = |name: &str, option: &str| value(params, name) == option;
    html! {
        form class="filters" method="get" action="/detections" {
            label { "from " input type="date" name="from" value=(value(params, "from")); }
            label { "to " input type="date" name="to" value=(value(params, "to")); }
            label { "species "
                select name="species" {
                    option value="" { "any" }
                    @for s in species {
                        option value=(s) selected[chosen("species", s)] { (s) }
                    }
                }
            }
            label { "min. confidence "
                input type="number" name="min_confidence" min="0" max="1" step="0.05"
                    value=(value(params, "min_confidence"));
            }
            label { "model "
                select name="model" {
                    option value="" { "any" }
                    @for m in models {
                        option value=(m) selected[chosen("model", m)] { (m) }
                    }
                }
            }
            label { "review "
                select name="review" {
                    @for (v, label) in [("", "any"), ("none", "not reviewed"), ("correct", "correct"),
                        ("false_positive", "false positive"), ("unsure", "unsure")] {
                        option value=(v) selected[chosen("review", v)] { (label) }
                    }
                }
            }
            label { "hour "
                input type="number" name="hour" min="0" max="23" value=(value(params, "hour"));
            }
            @if !value(params, "recording").is_empty() {
                input type="hidden" name="recording" value=(value(params, "recording"));
            }
            button type="submit" { "filter" }
            " " a href="/detections" { "clear" }
        }
    }
}

fn table(page: &Page) -> Markup {
    html! {
        p class="total" { (page.total) " detections" }
        @if !page.rows.is_empty() {
            div class="table-wrap" {
                table class="detections" {
                    thead { tr {
                        th { (page.key.as_deref().unwrap_or("species")) } th { "confidence" } th { "time (UTC)" } th { "model" }
                        th { "clip" } th { "review" }
                    } }
                    tbody {
                        @for (row, review) in &page.rows {
                            tr data-detection=(row.id) {
                                td { a href={ "/species/" (row.tag_value.as_deref().unwrap_or("")) } {
                                    (row.tag_value.as_deref().unwrap_or("")) } }
                                td { (row.confidence.map(|c| format!("{c:.2}")).unwrap_or_default()) }
                                td { a href={ "/recordings/" (row.recording_id) } {
                                    (row.recorded_on.format("%Y-%m-%d %H:%M:%S")) } }
                                td { (row.model) }
                                td {
                                    audio controls preload="none" src=(clip_url(row)) {}
                                }
                                td { (review_controls(row.id, review.as_ref())) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The clip of a detection: its own span, or the whole recording without a location.
fn clip_url(row: &crate::data::detections::DetectionRow) -> String {
    match (row.start_time, row.end_time) {
        (Some(start), Some(end)) => format!(
            "/api/v1/recordings/{}/audio?start={start}&end={end}",
            row.recording_id
        ),
        _ => format!("/api/v1/recordings/{}/audio", row.recording_id),
    }
}

fn pager(params: &HashMap<String, String>, page: &Page) -> Markup {
    let link = |offset: u64| {
        let mut pairs: Vec<(&str, String)> = params
            .iter()
            .filter(|(k, v)| k.as_str() != "offset" && !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.sort();
        pairs.push(("offset", offset.to_string()));
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        format!("/detections?{}", query.join("&"))
    };
    let limit = u64::from(page.limit);
    let end = (page.offset + limit).min(page.total);
    html! {
        nav class="pager" {
            @if page.offset > 0 {
                a rel="prev" href=(link(page.offset.saturating_sub(limit))) { "← newer" }
            }
            " " span { (page.offset.min(page.total) + u64::from(end > page.offset)) "–" (end) " of " (page.total) } " "
            @if end < page.total {
                a rel="next" href=(link(end)) { "older →" }
            }
        }
    }
}

/// Percent-encodes a query parameter's name or value.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

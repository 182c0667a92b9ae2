//! The Recording page (`/recordings/{id}`): the full spectrogram with each detection's
//! box, an audio player, GUANO metadata, gaps and the model outputs with their
//! detections.
//!
//! The boxes are drawn in the PNG (`spectrogram.rs`); their labels, and a link to each
//! detection's clip, are an inline SVG laid over it: an `<image>` of the PNG with
//! `<rect>` and `<text>` elements at the same coordinates (SVG attributes, no style
//! attributes, which the CSP forbids). Ultrasonic recordings (sample rate above 48 kHz)
//! offer time-expanded (×10) and heterodyne (40 kHz, or `?khz=`) playback as links
//! (`?playback=expanded|heterodyne`): the page reloads with the player's source changed,
//! no script needed. Each detection has the review controls (`pages/review.rs`), and the
//! recording its "keep" control, as on the lists.

use std::collections::HashMap;

use acoupi_store_duckdb::Review;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::media::{marks, recording_id};
use crate::api::recording::{RecordingView, view};
use crate::data::reviews::latest_reviews;
use crate::pages::layout::page;
use crate::pages::review::{keep_control, review_controls};
use crate::spectrogram::{BAND, Geometry, Mark};
use crate::{AppState, WebError};

/// The page's spectrogram size.
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 320;
/// Above this sample rate a recording is ultrasonic and gets the bat playback options.
const AUDIBLE_RATE: u32 = 48_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/recordings/{id}", get(recording_page))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    playback: Option<String>,
    khz: Option<f64>,
}

async fn recording_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, WebError> {
    let id = recording_id(&id)?;
    let view = view(&state, id).await?;
    let ids: Vec<uuid::Uuid> = view
        .model_outputs
        .iter()
        .flat_map(|output| output.detections.iter().map(|d| d.id))
        .collect();
    let reviews = state.read(move |conn| latest_reviews(conn, &ids)).await?;
    Ok(page(
        &format!(
            "Recording {}",
            view.recording.created_on.format("%Y-%m-%d %H:%M:%S")
        ),
        "",
        body(&view, &reviews, &query),
    ))
}

fn body(view: &RecordingView, reviews: &HashMap<uuid::Uuid, Review>, query: &PageQuery) -> Markup {
    let r = &view.recording;
    let audio_base = format!("/api/v1/recordings/{}/audio", r.id);
    let ultrasonic = r.samplerate > AUDIBLE_RATE;
    let khz = query
        .khz
        .filter(|k| k.is_finite() && *k > 0.0)
        .unwrap_or(40.0);
    let source = match (ultrasonic, query.playback.as_deref()) {
        (true, Some("expanded")) => format!("{audio_base}?playback=expanded&factor=10"),
        (true, Some("heterodyne")) => format!("{audio_base}?playback=heterodyne&khz={khz}"),
        _ => audio_base.clone(),
    };
    html! {
        h1 { "Recording " (r.created_on.format("%Y-%m-%d %H:%M:%S UTC")) }
        p {
            @if let Some(name) = &r.deployment_name { "Deployment " strong { (name) } " · " }
            (format!("{:.2} s", r.duration)) " · " (r.samplerate) " Hz · "
            (r.audio_channels) " channel(s)"
            @if r.time_expansion != 1.0 { " · time expansion " (r.time_expansion) }
            @if let Some(kept) = r.kept { " · " (if kept { "kept" } else { "not kept" }) }
        }
        @if let Some(kept) = r.kept { (keep_control(r.id, kept)) }
        @if r.path.is_some() {
            (spectrogram(view))
            section.player {
                audio controls preload="metadata" src=(source) {}
                @if ultrasonic {
                    p {
                        "Playback: "
                        a href="?" { "as recorded" } " · "
                        a href="?playback=expanded" { "time-expanded ×10" } " · "
                        a href=(format!("?playback=heterodyne&khz={khz}")) { "heterodyne " (khz) " kHz" }
                    }
                }
            }
        } @else {
            p.notice { "Retention removed this recording's file; its detections stay." }
        }
        h2 { "Gaps" }
        @if r.gaps == 0 && r.lost_frames == 0 {
            p { "None: the recording is gapless." }
        } @else {
            p { (r.gaps) " gap(s), " (r.lost_frames) " frame(s) lost" }
        }
        h2 { "GUANO metadata" }
        @match (&view.guano, &view.guano_error) {
            (Some(fields), _) if !fields.is_empty() => {
                table.guano {
                    @for f in fields { tr { th { (f.key) } td { (f.value) } } }
                }
            }
            (_, Some(error)) => { p { "Not available: " (error) } }
            _ => { p { "None in the file." } }
        }
        h2 { "Model outputs" }
        @if view.model_outputs.is_empty() { p { "None." } }
        @for output in &view.model_outputs {
            h3 { (output.name_model) " · " (output.created_on.format("%Y-%m-%d %H:%M:%S")) }
            @if output.detections.is_empty() {
                p { "No detections." }
            } @else {
                table.detections {
                    thead { tr { th { "Detection" } th { "Time (s)" } th { "Frequency (Hz)" } th { "Score" } th { "Tags" } th { "Clip" } th { "Review" } } }
                    tbody {
                        @for d in &output.detections {
                            tr id=(format!("detection-{}", d.id)) {
                                td { (d.prediction_type) }
                                td { @if let (Some(s), Some(e)) = (d.start_time, d.end_time) { (format!("{s:.2}–{e:.2}")) } @else { "whole recording" } }
                                td { @if let (Some(l), Some(h)) = (d.low_freq, d.high_freq) { (format!("{l:.0}–{h:.0}")) } @else { "—" } }
                                td { (format!("{:.2}", d.detection_score)) }
                                td { @for t in &d.tags { span.tag { (t.key) "=" (t.value) " (" (format!("{:.2}", t.confidence)) ")" } " " } }
                                td {
                                    @if let (Some(s), Some(e), true) = (d.start_time, d.end_time, r.path.is_some()) {
                                        audio controls preload="none" src=(format!("{audio_base}?start={s}&end={e}")) {}
                                    }
                                }
                                td { (review_controls(d.id, reviews.get(&d.id))) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The spectrogram with the labels laid over it (see the module docs).
fn spectrogram(view: &RecordingView) -> Markup {
    let r = &view.recording;
    let g = Geometry {
        width: WIDTH,
        height: HEIGHT,
        start: 0.0,
        end: r.duration.max(1e-6),
        nyquist: f64::from(r.samplerate) / 2.0,
    };
    let src = format!(
        "/api/v1/recordings/{}/spectrogram.png?width={WIDTH}&height={HEIGHT}",
        r.id
    );
    let detections: Vec<_> = view
        .model_outputs
        .iter()
        .flat_map(|o| &o.detections)
        .collect();
    let marks = marks(&view.model_outputs);
    // Each presence mark's rank (its band's row).
    let mut presence = 0u32;
    let ranks: Vec<u32> = marks
        .iter()
        .map(|m| {
            let rank = presence;
            presence += u32::from(matches!(m, Mark::Presence));
            rank
        })
        .collect();
    html! {
        figure.spectrogram {
            svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
                width="100%" role="img" aria-label="Spectrogram with the detections" {
                image href=(src) x="0" y="0" width=(WIDTH) height=(HEIGHT) preserveAspectRatio="none" {}
                @for ((d, mark), rank) in detections.iter().zip(&marks).zip(&ranks) {
                    @match *mark {
                        Mark::Box { start, end, high, low } => {
                            @let (x, y) = (g.x(start), g.y(high));
                            a href=(format!("#detection-{}", d.id)) {
                                rect x=(format!("{x:.1}")) y=(format!("{y:.1}"))
                                    width=(format!("{:.1}", (g.x(end) - x).max(2.0)))
                                    height=(format!("{:.1}", (g.y(low) - y).max(2.0)))
                                    fill="transparent" stroke="none" {
                                    title { (d.label()) }
                                }
                                text x=(format!("{:.1}", x + 3.0)) y=(format!("{:.1}", (y - 4.0).max(12.0)))
                                    fill="#fff" stroke="#000" stroke-width="0.6" font-size="13" font-family="sans-serif" {
                                    (d.label())
                                }
                            }
                        }
                        Mark::Presence => {
                            @let y = rank * (BAND + 1) + BAND + 12;
                            text x="4" y=(y) fill="#fff" stroke="#000" stroke-width="0.6" font-size="13" font-family="sans-serif" {
                                (d.label()) " (whole recording)"
                            }
                        }
                    }
                }
            }
            figcaption { "0 to " (format!("{:.1}", r.duration)) " s; 0 to " (format!("{:.1}", g.nyquist / 1000.0)) " kHz" }
        }
    }
}

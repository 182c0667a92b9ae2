//! The media endpoints, by recording id (never a path):
//!
//! - `GET /api/v1/recordings/{id}/audio`: the file as stored (`audio/wav` or
//!   `audio/flac`), streamed, with HTTP Range (`206`, `Content-Range`, `416`); with
//!   `?start=&end=` (seconds) and/or `?playback=expanded&factor=` or
//!   `?playback=heterodyne&khz=` a WAV clip made in memory (Range works on it too).
//! - `GET /api/v1/recordings/{id}/spectrogram.png?width=&height=&start=&end=`: the
//!   spectrogram with the detections drawn (`spectrogram.rs`), cached on disk
//!   (`media/cache.rs`; `X-Cache: hit|miss` says which). Width 64–2000 (default 1000),
//!   height 32–1000 (default 256).
//!
//! Decoding, rendering and file reads run on blocking threads. An id that is not a UUID
//! is a 400; an unknown one a 404; a file retention deleted a 404 saying so; a refused
//! file (see `media/file.rs`) a 403.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use uuid::Uuid;

use crate::data::recording::{self, RecordingRow};
use crate::media::cache::{self, CACHE_BYTES, Key};
use crate::media::file;
use crate::media::playback::{self, Playback};
use crate::media::range::{Wanted, wanted};
use crate::spectrogram::{self, HEIGHTS, Mark, WIDTHS};
use crate::{AppState, WebError};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/recordings/{id}/audio", get(audio))
        .route(
            "/api/v1/recordings/{id}/spectrogram.png",
            get(spectrogram_png),
        )
}

/// A recording id from the URL: a UUID, nothing else.
pub(crate) fn recording_id(text: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(text)
        .map_err(|_| WebError::BadRequest(format!("`{text}` is not a recording id (a UUID)")))
}

/// The recording row, or a 404 naming the id.
pub(crate) async fn recording_row(state: &AppState, id: Uuid) -> Result<RecordingRow, WebError> {
    state
        .read(move |conn| recording::recording(conn, id))
        .await?
        .ok_or_else(|| WebError::NotFound(format!("recording {id}")))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| WebError::Internal(format!("a media task stopped: {e}")))?
}

#[derive(Debug, Deserialize)]
struct AudioQuery {
    start: Option<f64>,
    end: Option<f64>,
    playback: Option<String>,
    factor: Option<u32>,
    khz: Option<f64>,
}

async fn audio(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<AudioQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let id = recording_id(&id)?;
    let playback = Playback::parse(query.playback.as_deref(), query.factor, query.khz)?;
    let row = recording_row(&state, id).await?;
    let settings = state.options().settings.clone();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let whole_file = query.start.is_none() && query.end.is_none() && playback == Playback::Normal;
    if whole_file {
        let opened =
            blocking(move || file::open(id, row.path.as_deref(), settings.as_deref())).await?;
        let content_type = if acoupi_audio::is_flac(&opened.path) {
            "audio/flac"
        } else {
            "audio/wav"
        };
        let len = opened.len;
        let part = wanted(range.as_deref(), len);
        let (start, end) = match part {
            Wanted::All => (0, len.saturating_sub(1)),
            Wanted::Part { start, end } => (start, end),
            Wanted::Unsatisfiable => return Ok(unsatisfiable(len)),
        };
        let mut file = tokio::fs::File::from_std(opened.file);
        let io = |e: std::io::Error| WebError::Internal(format!("recording {id}: {e}"));
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(io)?;
        let body_len = if len == 0 { 0 } else { end - start + 1 };
        let stream = tokio_util::io::ReaderStream::new(file.take(body_len));
        return Ok(answer(part, len, content_type, Body::from_stream(stream)));
    }
    let (start, end) = (query.start, query.end);
    let bytes = blocking(move || {
        let opened = file::open(id, row.path.as_deref(), settings.as_deref())?;
        drop(opened.file);
        let (rate, samples) = playback::decode_span(&opened.path, start, end)?;
        playback::render(rate, &samples, playback)
    })
    .await?;
    let len = bytes.len() as u64;
    let part = wanted(range.as_deref(), len);
    let body = match part {
        Wanted::All => bytes,
        Wanted::Part { start, end } => bytes[start as usize..=end as usize].to_vec(),
        Wanted::Unsatisfiable => return Ok(unsatisfiable(len)),
    };
    Ok(answer(part, len, "audio/wav", Body::from(body)))
}

/// A 200 or 206 answer of `body` (the part of a `len`-byte whole).
fn answer(part: Wanted, len: u64, content_type: &'static str, body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let body_len = match part {
        Wanted::Part { start, end } => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            end - start + 1
        }
        _ => len,
    };
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    response
}

fn unsatisfiable(len: u64) -> Response {
    let mut response = (
        StatusCode::RANGE_NOT_SATISFIABLE,
        axum::Json(
            serde_json::json!({ "error": format!("the range is past the end ({len} bytes)") }),
        ),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
        .headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response
}

#[derive(Debug, Deserialize)]
struct SpectrogramQuery {
    width: Option<u32>,
    height: Option<u32>,
    start: Option<f64>,
    end: Option<f64>,
}

/// The marks of a recording's detections.
pub(crate) fn marks(outputs: &[recording::OutputRow]) -> Vec<Mark> {
    outputs
        .iter()
        .flat_map(|o| &o.detections)
        .map(
            |d| match (d.start_time, d.end_time, d.low_freq, d.high_freq) {
                (Some(start), Some(end), Some(low), Some(high)) => Mark::Box {
                    start,
                    end,
                    low,
                    high,
                },
                _ => Mark::Presence,
            },
        )
        .collect()
}

async fn spectrogram_png(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SpectrogramQuery>,
) -> Result<Response, WebError> {
    let id = recording_id(&id)?;
    let width = query.width.unwrap_or(1000);
    let height = query.height.unwrap_or(256);
    if !WIDTHS.contains(&width) || !HEIGHTS.contains(&height) {
        return Err(WebError::BadRequest(format!(
            "width={width} height={height}: width is from {} to {}, height from {} to {}",
            WIDTHS.start(),
            WIDTHS.end(),
            HEIGHTS.start(),
            HEIGHTS.end()
        )));
    }
    let (row, outputs, count) = state
        .read(move |conn| {
            let row = recording::recording(conn, id)?;
            let outputs = recording::outputs(conn, id)?;
            Ok((row, outputs, recording::detection_count(conn, id)?))
        })
        .await?;
    let row = row.ok_or_else(|| WebError::NotFound(format!("recording {id}")))?;
    let start = query.start.unwrap_or(0.0);
    let end = query.end;
    let stop = end.unwrap_or(row.duration);
    if !(start.is_finite() && stop.is_finite() && 0.0 <= start && start < stop) {
        return Err(WebError::BadRequest(format!(
            "start={start} end={stop}: 0 ≤ start < end (the recording is {} s)",
            row.duration
        )));
    }
    let key = Key {
        id,
        width,
        height,
        start,
        end,
        detections: count,
    };
    let dir = state.options().cache_dir.clone();
    let settings = state.options().settings.clone();
    let marks = marks(&outputs);
    let (bytes, hit) = blocking(move || {
        if let Some(bytes) = cache::get(&dir, &key) {
            return Ok((bytes, true));
        }
        let opened = file::open(id, row.path.as_deref(), settings.as_deref())?;
        drop(opened.file);
        let bytes = spectrogram::render(&opened.path, width, height, start, end, &marks)?;
        if let Err(e) = cache::put(&dir, &key, &bytes, CACHE_BYTES) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot cache a spectrogram");
        }
        Ok((bytes, false))
    })
    .await?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(
        "x-cache",
        HeaderValue::from_static(if hit { "hit" } else { "miss" }),
    );
    Ok(response)
}

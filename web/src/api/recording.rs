//! `GET /api/v1/recordings/{id}`: a Recording as JSON — its row (with `kept` when the
//! store has that column), the deployment's name, gaps and lost frames, its GUANO fields
//! (read from the file through the same checks as the audio; `null` with
//! `guano_error` saying why when they cannot be read, e.g. retention deleted the file)
//! and its model outputs with their detections and tags.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::api::media::{recording_id, recording_row};
use crate::data::recording::{self, OutputRow, RecordingRow};
use crate::media::file;
use crate::{AppState, WebError};

/// GUANO is read only from files up to this size (it sits in a chunk anywhere in the
/// file, and the reader loads the whole file).
const GUANO_MAX_BYTES: u64 = 256 << 20;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/recordings/{id}", get(recording_json))
}

#[derive(Debug, Serialize)]
pub(crate) struct RecordingView {
    pub recording: RecordingRow,
    pub guano: Option<Vec<GuanoField>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guano_error: Option<String>,
    pub model_outputs: Vec<OutputRow>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GuanoField {
    pub key: String,
    pub value: String,
}

/// Everything the recording's JSON and page show.
pub(crate) async fn view(state: &AppState, id: uuid::Uuid) -> Result<RecordingView, WebError> {
    let row = recording_row(state, id).await?;
    let outputs = state.read(move |conn| recording::outputs(conn, id)).await?;
    let settings = state.options().settings.clone();
    let stored = row.path.clone();
    let guano =
        tokio::task::spawn_blocking(move || guano(id, stored.as_deref(), settings.as_deref()))
            .await
            .map_err(|e| WebError::Internal(format!("reading GUANO stopped: {e}")))?;
    let (guano, guano_error) = match guano {
        Ok(fields) => (Some(fields), None),
        Err(e) => (None, Some(e)),
    };
    Ok(RecordingView {
        recording: row,
        guano,
        guano_error,
        model_outputs: outputs,
    })
}

fn guano(
    id: uuid::Uuid,
    stored: Option<&str>,
    settings: Option<&acoupi_engine::config::Settings>,
) -> Result<Vec<GuanoField>, String> {
    let opened = file::open(id, stored, settings).map_err(|e| e.to_string())?;
    drop(opened.file);
    if acoupi_audio::is_flac(&opened.path) {
        return Ok(Vec::new());
    }
    if opened.len > GUANO_MAX_BYTES {
        return Err(format!(
            "the file is over {} MiB; GUANO is not read from it here",
            GUANO_MAX_BYTES >> 20
        ));
    }
    let guano = acoupi_audio::guano::read(&opened.path).map_err(|e| e.to_string())?;
    Ok(guano
        .map(|g| {
            g.fields()
                .iter()
                .map(|(key, value)| GuanoField {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn recording_json(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<RecordingView>, WebError> {
    let id = recording_id(&id)?;
    Ok(Json(view(&state, id).await?))
}

//! HTTP tests of the media endpoints and the recording page on a real store: Range,
//! clips, bat playback, spectrograms and their cache, and the file checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use acoupi_engine::config::{DeploymentSettings, Settings};
use acoupi_engine::data::{
    BoundingBox, Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi_engine::store::Store;
use acoupi_store_duckdb::DuckDbStore;
use reqwest::blocking::Client;
use uuid::Uuid;

use crate::spectrogram::BOX_COLOUR;
use crate::state::StateOptions;
use crate::{AppState, Served};

struct Station {
    dir: tempfile::TempDir,
    store: DuckDbStore,
    deployment: Deployment,
    base: String,
}

/// A store with no recordings, served on 127.0.0.1 (with `settings` when given).
async fn station(settings: impl FnOnce(&Path) -> Option<Settings>) -> Station {
    let dir = tempfile::tempdir().unwrap();
    let store = DuckDbStore::open(&dir.path().join("store.duckdb")).unwrap();
    let deployment = Deployment::new("media test");
    store.store_deployment(&deployment).unwrap();
    let state = AppState::new(StateOptions {
        store: store.clone(),
        served: Served::File { read_only: false },
        telemetry: None,
        settings: settings(dir.path()).map(Arc::new),
        species_key: None,
        cache_dir: dir.path().join("cache"),
        token: None,
        public: true,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, crate::router(state)).await });
    Station {
        dir,
        store,
        deployment,
        base,
    }
}

impl Station {
    /// Stores a recording of the file at `path` (`seconds` at `rate`) with `detections`.
    fn recording(
        &self,
        path: Option<&Path>,
        rate: u32,
        seconds: f64,
        detections: Vec<Detection>,
    ) -> Uuid {
        let mut recording = Recording::new(self.deployment.clone(), seconds, rate).unwrap();
        if let Some(path) = path {
            recording = recording.with_path(path);
        }
        self.store.store_recording(&recording).unwrap();
        let output = ModelOutput::new("test-model", recording.clone(), detections);
        self.store.store_model_output(&output).unwrap();
        recording.id
    }

    /// A WAV of a 6 kHz tone, and its recording with one boxed detection around it.
    fn tone(&self, name: &str, rate: u32, seconds: f64) -> (Uuid, PathBuf) {
        let path = self.dir.path().join(name);
        acoupi_audio::testing::write_wav(&path, rate, 1, seconds, |t| {
            0.5 * (2.0 * std::f64::consts::PI * 6000.0 * t).sin()
        });
        let detection = Detection::new(PredictionType::Event)
            .with_location(BoundingBox::new(0.25, 4000.0, 0.75, 8000.0).unwrap())
            .with_score(0.9)
            .unwrap()
            .with_tag(PredictedTag::new(Tag::new("species", "Parus major"), 0.8).unwrap());
        (
            self.recording(Some(&path), rate, seconds, vec![detection]),
            path,
        )
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

async fn get(url: String, range: Option<&'static str>) -> Answer {
    tokio::task::spawn_blocking(move || {
        let mut request = Client::new().get(&url);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let response = request.send().unwrap();
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().unwrap().to_vec(),
        }
    })
    .await
    .unwrap()
}

fn wav_spec(bytes: &[u8]) -> (hound::WavSpec, u32) {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    (reader.spec(), reader.duration())
}

#[tokio::test(flavor = "multi_thread")]
async fn audio_is_served_with_ranges() {
    let station = station(|_| None).await;
    let (id, path) = station.tone("a.wav", 8000, 1.0);
    let file = std::fs::read(&path).unwrap();
    let url = format!("{}/api/v1/recordings/{id}/audio", station.base);

    let whole = get(url.clone(), None).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, file);
    assert_eq!(whole.header("content-type"), "audio/wav");
    assert_eq!(whole.header("accept-ranges"), "bytes");

    let first = get(url.clone(), Some("bytes=0-99")).await;
    assert_eq!(first.status, 206);
    assert_eq!(first.body, file[..100]);
    assert_eq!(
        first.header("content-range"),
        format!("bytes 0-99/{}", file.len())
    );

    let suffix = get(url.clone(), Some("bytes=-10")).await;
    assert_eq!(suffix.status, 206);
    assert_eq!(suffix.body, file[file.len() - 10..]);

    let open = get(url.clone(), Some("bytes=100-")).await;
    assert_eq!(open.status, 206);
    assert_eq!(open.body, file[100..]);

    let past = get(url.clone(), Some("bytes=999999-")).await;
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        format!("bytes */{}", file.len())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn clips_and_bat_playback() {
    let station = station(|_| None).await;
    let (id, _) = station.tone("bat.wav", 192_000, 1.0);
    let url = |query: &str| format!("{}/api/v1/recordings/{id}/audio?{query}", station.base);

    let clip = get(url("start=0.25&end=0.75"), None).await;
    assert_eq!(clip.status, 200, "{}", String::from_utf8_lossy(&clip.body));
    let (spec, frames) = wav_spec(&clip.body);
    assert_eq!(
        (spec.sample_rate, spec.channels, frames),
        (192_000, 1, 96_000)
    );

    let part = get(url("start=0.25&end=0.75"), Some("bytes=0-43")).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, clip.body[..44]);

    let expanded = get(url("playback=expanded&factor=10"), None).await;
    let (spec, frames) = wav_spec(&expanded.body);
    assert_eq!((spec.sample_rate, frames), (19_200, 192_000));

    let heterodyne = get(url("playback=heterodyne&khz=40&start=0&end=0.5"), None).await;
    assert_eq!(
        heterodyne.status,
        200,
        "{}",
        String::from_utf8_lossy(&heterodyne.body)
    );
    let (spec, frames) = wav_spec(&heterodyne.body);
    assert_eq!(spec.sample_rate, 44_100);
    assert!((i64::from(frames) - 22_050).abs() <= 1, "{frames} frames");

    let above = get(url("playback=heterodyne&khz=120"), None).await;
    assert_eq!(above.status, 400);
    let empty = get(url("start=0.8&end=0.2"), None).await;
    assert_eq!(empty.status, 400);
}

/// Whether some pixel of the decoded RGB image inside `x0..x1 × y0..y1` has `colour`.
fn has_colour(
    rgb: &[u8],
    width: usize,
    (x0, x1, y0, y1): (usize, usize, usize, usize),
    colour: [u8; 3],
) -> bool {
    (y0..y1).any(|y| (x0..x1).any(|x| rgb[(y * width + x) * 3..][..3] == colour))
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    (info.width, info.height, rgb)
}

#[tokio::test(flavor = "multi_thread")]
async fn spectrograms_show_the_boxes_and_are_cached() {
    let station = station(|_| None).await;
    let (id, _) = station.tone("s.wav", 32_000, 1.0);
    let url = format!(
        "{}/api/v1/recordings/{id}/spectrogram.png?width=200&height=100",
        station.base
    );
    let first = get(url.clone(), None).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.header("content-type"), "image/png");
    assert_eq!(first.header("x-cache"), "miss");
    let (w, h, rgb) = decode_png(&first.body);
    assert_eq!((w, h), (200, 100));
    // The box: 0.25–0.75 s of 1 s (x 50–150), 4–8 kHz of 16 kHz (y 50–75).
    assert!(
        has_colour(&rgb, 200, (48, 53, 50, 75), BOX_COLOUR),
        "the box's left edge"
    );
    assert!(
        !has_colour(&rgb, 200, (0, 40, 0, 100), BOX_COLOUR),
        "nothing left of it"
    );
    // The tone (6 kHz, y 62) is the loudest: the top of the colour map, off the box.
    let row = 62 * 200 * 3;
    assert_eq!(rgb[row + 20 * 3..][..3], [253, 231, 37]);

    // A hit does not render: the cached file is what comes back.
    let cached: Vec<PathBuf> = std::fs::read_dir(station.dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    std::fs::write(&cached[0], b"from the cache").unwrap();
    let second = get(url.clone(), None).await;
    assert_eq!(second.header("x-cache"), "hit");
    assert_eq!(second.body, b"from the cache");

    // Another size is another image.
    let small = get(url.replace("width=200", "width=64"), None).await;
    assert_eq!(small.header("x-cache"), "miss");
    assert_eq!(decode_png(&small.body).0, 64);

    for bad in ["width=10", "width=3000", "height=5", "height=1001"] {
        let answer = get(
            format!(
                "{}/api/v1/recordings/{id}/spectrogram.png?{bad}",
                station.base
            ),
            None,
        )
        .await;
        assert_eq!(answer.status, 400, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_presence_detection_is_a_band_over_the_clip() {
    let station = station(|_| None).await;
    let path = station.dir.path().join("p.wav");
    acoupi_audio::testing::write_wav(&path, 16_000, 1, 1.0, |_| 0.0);
    let presence = Detection::new(PredictionType::Presence)
        .with_score(0.7)
        .unwrap()
        .with_tag(PredictedTag::new(Tag::new("sound", "chirp"), 0.7).unwrap());
    let id = station.recording(Some(&path), 16_000, 1.0, vec![presence]);
    let answer = get(
        format!(
            "{}/api/v1/recordings/{id}/spectrogram.png?width=100&height=50",
            station.base
        ),
        None,
    )
    .await;
    let (_, _, rgb) = decode_png(&answer.body);
    assert!(has_colour(&rgb, 100, (0, 2, 0, 4), BOX_COLOUR));
    assert!(has_colour(&rgb, 100, (98, 100, 0, 4), BOX_COLOUR));
    assert!(!has_colour(&rgb, 100, (0, 100, 10, 50), BOX_COLOUR));
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_links_and_deleted_files() {
    let station = station(|_| None).await;
    let (_, path) = station.tone("real.wav", 8000, 0.5);
    for bad in [
        "..%2Fstore.duckdb",
        "%2Fetc%2Fpasswd",
        "not-a-uuid",
        "real.wav",
    ] {
        for what in ["audio", "spectrogram.png"] {
            let answer = get(
                format!("{}/api/v1/recordings/{bad}/{what}", station.base),
                None,
            )
            .await;
            assert_eq!(answer.status, 400, "{bad} {what}");
        }
        let answer = get(format!("{}/api/v1/recordings/{bad}", station.base), None).await;
        assert_eq!(answer.status, 400, "{bad}");
    }
    let unknown = Uuid::new_v4();
    let answer = get(
        format!("{}/api/v1/recordings/{unknown}/audio", station.base),
        None,
    )
    .await;
    assert_eq!(answer.status, 404);

    let link = station.dir.path().join("link.wav");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let linked = station.recording(Some(&link), 8000, 0.5, Vec::new());
    let answer = get(
        format!("{}/api/v1/recordings/{linked}/audio", station.base),
        None,
    )
    .await;
    assert_eq!(answer.status, 403);
    let error = String::from_utf8_lossy(&answer.body);
    assert!(
        error.contains(&linked.to_string()) && error.contains("symbolic link"),
        "{error}"
    );

    let deleted = station.recording(None, 8000, 0.5, Vec::new());
    for what in ["audio", "spectrogram.png"] {
        let answer = get(
            format!("{}/api/v1/recordings/{deleted}/{what}", station.base),
            None,
        )
        .await;
        assert_eq!(answer.status, 404, "{what}");
        let error = String::from_utf8_lossy(&answer.body);
        assert!(error.contains("retention removed"), "{error}");
    }

    let dotted = station.dir.path().join("sub/../real.wav");
    let dotted = station.recording(Some(&dotted), 8000, 0.5, Vec::new());
    let answer = get(
        format!("{}/api/v1/recordings/{dotted}/audio", station.base),
        None,
    )
    .await;
    assert_eq!(answer.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_settings_only_the_station_folders_are_read() {
    let station = station(|dir| {
        Some(Settings {
            base_dir: dir.to_path_buf(),
            deployment: DeploymentSettings {
                name: "media test".into(),
                latitude: None,
                longitude: None,
                timezone: chrono_tz::Tz::UTC,
            },
            store_path: dir.join("store.duckdb"),
            temp_dir: dir.join("temp"),
            recordings_dir: dir.join("recordings"),
            device_id: None,
            retention: None,
            web: None,
        })
    })
    .await;
    let inside = station.dir.path().join("recordings/kept/a.wav");
    std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
    acoupi_audio::testing::write_wav(&inside, 8000, 1, 0.5, |_| 0.1);
    let inside = station.recording(Some(&inside), 8000, 0.5, Vec::new());
    let answer = get(
        format!("{}/api/v1/recordings/{inside}/audio", station.base),
        None,
    )
    .await;
    assert_eq!(answer.status, 200);

    let (outside, _) = station.tone("outside.wav", 8000, 0.5);
    let answer = get(
        format!("{}/api/v1/recordings/{outside}/audio", station.base),
        None,
    )
    .await;
    assert_eq!(answer.status, 403);
    let error = String::from_utf8_lossy(&answer.body);
    assert!(error.contains("outside the station's folders"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_recording_json_and_page() {
    let station = station(|_| None).await;
    let (id, _) = station.tone("j.wav", 96_000, 1.0);
    let answer = get(format!("{}/api/v1/recordings/{id}", station.base), None).await;
    assert_eq!(answer.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["recording"]["id"], id.to_string());
    assert_eq!(json["recording"]["samplerate"], 96_000);
    assert_eq!(json["recording"]["deployment_name"], "media test");
    let detections = &json["model_outputs"][0]["detections"];
    assert_eq!(detections.as_array().unwrap().len(), 1);
    assert_eq!(detections[0]["tags"][0]["value"], "Parus major");
    assert_eq!(detections[0]["start_time"], 0.25);

    let page = get(format!("{}/recordings/{id}", station.base), None).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains(&format!("/api/v1/recordings/{id}/spectrogram.png")),
        "{html}"
    );
    assert!(html.contains("Parus major 0.80"));
    let detection = detections[0]["id"].as_str().unwrap();
    assert!(
        html.contains(&format!(
            "hx-post=\"/api/v1/detections/{detection}/review\""
        )),
        "each detection has its review controls: {html}"
    );
    assert!(
        html.contains(&format!("hx-post=\"/api/v1/recordings/{id}/keep\"")),
        "the recording has its keep control"
    );
    assert!(
        html.contains("playback=heterodyne"),
        "ultrasonic: bat playback offered"
    );
    let page = get(
        format!("{}/recordings/{id}?playback=expanded", station.base),
        None,
    )
    .await;
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains(&format!(
            "/api/v1/recordings/{id}/audio?playback=expanded&amp;factor=10"
        )),
        "{html}"
    );
}

use chrono::TimeZone;

use super::*;

/// Writes through a partial file beside `path`, as the engine does.
fn write(path: &Path, guano: &Guano) -> Result<(), GuanoError> {
    let partial = path.with_extension("wav.acoupi-guano-partial");
    super::write(path, &partial, guano)
}

/// A 16-bit mono WAV of `samples`, with an optional extra chunk after the data.
fn wav(samples: &[i16], extra: Option<(&[u8; 4], &[u8])>) -> Vec<u8> {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut out = b"RIFF\0\0\0\0WAVE".to_vec();
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    for v in [1u16, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&48_000u32.to_le_bytes());
    out.extend_from_slice(&96_000u32.to_le_bytes());
    for v in [2u16, 16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&data);
    if let Some((id, body)) = extra {
        out.extend_from_slice(id.as_slice());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(0);
        }
    }
    let size = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&size.to_le_bytes());
    out
}

const DEPLOYMENT_ID: &str = "6f1c2b1e-8d1e-4f0a-9a57-0c0d3a2b1f10";
const RECORDING_ID: &str = "0b8e3f4a-5c6d-4e7f-8a9b-1c2d3e4f5a6b";

/// A 3 s recording at 256 kHz, time-expanded 10×, of a deployment with a location.
fn recording() -> RecordingFields<'static> {
    RecordingFields {
        created_on: Utc.with_ymd_and_hms(2026, 6, 21, 4, 30, 0).unwrap()
            + chrono::TimeDelta::microseconds(250),
        timezone: chrono_tz::Europe::London,
        device_id: "pi-0042",
        samplerate: 256_000,
        duration: 3.0,
        time_expansion: 10.0,
        position: Some((51.752, -1.2577)),
        deployment: "Wytham Woods\nplot 3",
        deployment_id: DEPLOYMENT_ID,
        recording_id: RECORDING_ID,
        gaps: 0,
        lost_frames: 0,
    }
}

#[test]
fn written_fields_follow_the_spec_byte_for_byte_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    let original = wav(&[1, -2, 3], None);
    std::fs::write(&path, &original).unwrap();
    let recording = recording();
    let guano = Guano::for_recording(&recording);
    write(&path, &guano).unwrap();

    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(
        u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize,
        bytes.len() - 8,
        "RIFF size"
    );
    assert_eq!(
        &bytes[8..original.len()],
        &original[8..],
        "the audio chunks are untouched"
    );
    let chunk = &bytes[original.len()..];
    assert_eq!(&chunk[..4], b"guan");
    let size = u32::from_le_bytes(chunk[4..8].try_into().unwrap()) as usize;
    let text = std::str::from_utf8(&chunk[8..8 + size]).unwrap();
    let expected = format!(
        "GUANO|Version: 1.0\nTimestamp: 2026-06-21T05:30:00.000250+01:00\nMake: acoupi\nFirmware Version: acoupi-rs {}\n\
         Serial: pi-0042\nSamplerate: 256000\nLength: 3\nTE: 10\nLoc Position: 51.752 -1.2577\n\
         acoupi|Deployment: Wytham Woods\\nplot 3\nacoupi|Deployment ID: {}\nacoupi|Recording ID: {}\n",
        env!("CARGO_PKG_VERSION"),
        DEPLOYMENT_ID,
        RECORDING_ID
    );
    assert_eq!(text, expected);
    assert_eq!(chunk.len(), 8 + size + size % 2, "padded to an even length");

    let back = read(&path).unwrap().expect("a guan chunk");
    assert_eq!(back.timestamp(chrono_tz::UTC), Some(recording.created_on));
    assert_eq!(back.time_expansion(), Some(10.0));
    assert_eq!(back.position(), Some((51.752, -1.2577)));
    assert_eq!(back.get("acoupi|Deployment"), Some("Wytham Woods\nplot 3"));
}

#[test]
fn an_existing_chunk_is_replaced_keeping_the_fields_we_do_not_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("moth.wav");
    let theirs = b"GUANO|Version: 1.0\nMake: Open Acoustic Devices\nModel: AudioMoth\nTemperature Int: 21.5\n";
    std::fs::write(&path, wav(&[0; 5], Some((b"guan", theirs)))).unwrap();
    let mut ours = Guano::default();
    ours.set("Make", "acoupi");
    write(&path, &ours).unwrap();
    write(&path, &ours).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes.windows(4).filter(|w| w == b"guan").count(),
        1,
        "one chunk after two writes"
    );
    let back = read(&path).unwrap().unwrap();
    assert_eq!(back.get("Make"), Some("acoupi"));
    assert_eq!(back.get("Model"), Some("AudioMoth"));
    assert_eq!(back.get("Temperature Int"), Some("21.5"));
}

#[test]
fn timestamps_with_offset_utc_or_local_time() {
    let mut guano = Guano::default();
    let cases = [
        ("2026-06-21T05:30:00+01:00", chrono_tz::UTC, (4, 30)),
        ("2026-06-21T04:30:00Z", chrono_tz::UTC, (4, 30)),
        ("2026-06-21T05:30:00.5", chrono_tz::Europe::London, (4, 30)),
        ("2026-06-21 05:30:00", chrono_tz::UTC, (5, 30)),
    ];
    for (text, local, (h, m)) in cases {
        guano.set("Timestamp", text);
        let t = guano.timestamp(local).unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            t.format("%H:%M").to_string(),
            format!("{h:02}:{m:02}"),
            "{text}"
        );
    }
    guano.set("Timestamp", "yesterday");
    assert_eq!(guano.timestamp(chrono_tz::UTC), None);
}

#[test]
fn files_without_guano_or_not_wav_or_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.wav");
    std::fs::write(&plain, wav(&[1, 2], None)).unwrap();
    assert_eq!(read(&plain).unwrap(), None);
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "not audio").unwrap();
    assert!(matches!(read(&text), Err(GuanoError::NotWav { .. })));
    let mut cut = wav(&[1, 2, 3, 4], None);
    cut.truncate(cut.len() - 3);
    std::fs::write(&plain, &cut).unwrap();
    let error = write(&plain, &Guano::default()).unwrap_err();
    assert!(error.to_string().contains("runs past the end"), "{error}");
    assert_eq!(
        std::fs::read(&plain).unwrap(),
        cut,
        "a file that cannot be read is left as it was"
    );
}

#[test]
fn gaps_are_written_only_when_audio_was_lost_and_read_back() {
    let mut recording = RecordingFields {
        timezone: chrono_tz::UTC,
        device_id: "pi",
        ..recording()
    };
    let clean = Guano::for_recording(&recording);
    assert!(clean.get("acoupi|Gaps").is_none() && clean.get("acoupi|Lost Frames").is_none());
    assert_eq!(clean.gaps(), (0, 0));
    (recording.gaps, recording.lost_frames) = (2, 4_800);
    let gappy = Guano::for_recording(&recording);
    assert_eq!(
        (gappy.get("acoupi|Gaps"), gappy.get("acoupi|Lost Frames")),
        (Some("2"), Some("4800"))
    );
    assert_eq!(Guano::parse(&gappy.to_text()).gaps(), (2, 4_800));
    let mut odd = Guano::default();
    odd.set("acoupi|Gaps", "many");
    assert_eq!(odd.gaps(), (0, 0), "an unreadable value is no gap");
}

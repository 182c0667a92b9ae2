//! GUANO metadata for the engine's recordings: the chunk itself (read, parse, rewrite)
//! lives in [`acoupi_audio::guano`]; this module fills acoupi's fields from a Recording
//! and its Deployment ([`for_recording`]) and rewrites files through acoupi's own
//! temporary-file name ([`write`]), which start-up recovery knows.

use std::path::Path;

pub use acoupi_audio::guano::{Guano, GuanoError, RecordingFields, read};

use crate::data::{Deployment, Recording};

/// The fields acoupi writes for a recording (see [`Guano::for_recording`]): its time in
/// `timezone`, its deployment's name, id and location, and `device_id` as `Serial`.
pub fn for_recording(
    recording: &Recording,
    deployment: &Deployment,
    timezone: chrono_tz::Tz,
    device_id: &str,
) -> Guano {
    let (deployment_id, recording_id) = (deployment.id.to_string(), recording.id.to_string());
    Guano::for_recording(&RecordingFields {
        created_on: recording.created_on,
        timezone,
        device_id,
        samplerate: recording.samplerate,
        duration: recording.duration,
        time_expansion: recording.time_expansion,
        position: deployment.latitude.zip(deployment.longitude),
        deployment: &deployment.name,
        deployment_id: &deployment_id,
        recording_id: &recording_id,
        gaps: recording.gaps,
        lost_frames: recording.lost_frames,
    })
}

/// Writes `guano` into the WAV file (see [`acoupi_audio::guano::write`]) through
/// `<file name>.acoupi-guano-partial` ([`crate::folders::Partial::Guano`]).
pub fn write(path: &Path, guano: &Guano) -> Result<(), GuanoError> {
    let partial = crate::folders::partial_path(path, crate::folders::Partial::Guano);
    acoupi_audio::guano::write(path, &partial, guano)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_recordings_fields_come_from_the_recording_and_its_deployment() {
        let deployment = Deployment::new("Wytham Woods\nplot 3")
            .with_location(51.752, -1.2577)
            .unwrap();
        let mut recording = Recording::new(deployment.clone(), 3.0, 256_000).unwrap();
        recording.created_on = chrono::Utc.with_ymd_and_hms(2026, 6, 21, 4, 30, 0).unwrap()
            + chrono::TimeDelta::microseconds(250);
        recording.time_expansion = 10.0;
        (recording.gaps, recording.lost_frames) = (2, 4_800);
        let guano = for_recording(
            &recording,
            &deployment,
            chrono_tz::Europe::London,
            "pi-0042",
        );
        let expected = format!(
            "GUANO|Version: 1.0\nTimestamp: 2026-06-21T05:30:00.000250+01:00\nMake: acoupi\nFirmware Version: acoupi-rs {}\n\
             Serial: pi-0042\nSamplerate: 256000\nLength: 3\nTE: 10\nLoc Position: 51.752 -1.2577\n\
             acoupi|Deployment: Wytham Woods\\nplot 3\nacoupi|Deployment ID: {}\nacoupi|Recording ID: {}\n\
             acoupi|Gaps: 2\nacoupi|Lost Frames: 4800\n",
            env!("CARGO_PKG_VERSION"),
            deployment.id,
            recording.id
        );
        assert_eq!(guano.to_text(), expected);
    }

    #[test]
    fn a_rewrite_goes_through_acoupis_partial_name_and_leaves_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).unwrap();
        writer.write_sample(1i16).unwrap();
        writer.finalize().unwrap();
        let mut guano = Guano::default();
        guano.set("TE", "10");
        write(&path, &guano).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().time_expansion(), Some(10.0));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.wav"]);
    }
}

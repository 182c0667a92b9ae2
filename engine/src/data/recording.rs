//! Recording: one audio file made during a deployment.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{DataError, Deployment, check_positive};

/// A recording. `duration` (seconds) > 0, `samplerate` (Hz) > 0, `audio_channels` ≥ 1,
/// `time_expansion` > 0; `path` is `null` in JSON until the file exists somewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    #[serde(with = "crate::data::timestamp", default = "Utc::now")]
    pub created_on: DateTime<Utc>,
    pub duration: f64,
    pub samplerate: u32,
    pub deployment: Deployment,
    #[serde(default)]
    pub path: Option<PathBuf>,
    #[serde(default = "one_channel")]
    pub audio_channels: u32,
    #[serde(default = "no_expansion")]
    pub time_expansion: f64,
    /// Gaps in the audio inside this recording or just before it (a device overrun, blocks
    /// the capture thread had to drop, a jump in the device's timestamps); 0 for gapless
    /// audio. Left out of JSON when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gaps: u32,
    /// Frames estimated lost in those gaps (0 when unknown, e.g. an overrun the device
    /// did not time). Left out of JSON when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost_frames: u64,
}

fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn one_channel() -> u32 {
    1
}

fn no_expansion() -> f64 {
    1.0
}

impl Recording {
    /// A mono recording without time expansion or path, created now with a random id.
    pub fn new(deployment: Deployment, duration: f64, samplerate: u32) -> Result<Self, DataError> {
        let recording = Recording {
            id: Uuid::new_v4(),
            created_on: Utc::now(),
            duration,
            samplerate,
            deployment,
            path: None,
            audio_channels: one_channel(),
            time_expansion: no_expansion(),
            gaps: 0,
            lost_frames: 0,
        };
        recording.validate()?;
        Ok(recording)
    }

    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Checks this recording's rules and its deployment's.
    pub fn validate(&self) -> Result<(), DataError> {
        check_positive("duration", self.duration)?;
        check_positive("samplerate", f64::from(self.samplerate))?;
        check_positive("audio_channels", f64::from(self.audio_channels))?;
        check_positive("time_expansion", self.time_expansion)?;
        self.deployment.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording() -> Recording {
        Recording::new(Deployment::new("d"), 3.0, 48_000).unwrap()
    }

    #[test]
    fn defaults() {
        let r = recording();
        assert_eq!(
            (r.audio_channels, r.time_expansion, r.path.clone()),
            (1, 1.0, None)
        );
        assert_eq!((r.duration, r.samplerate), (3.0, 48_000));
        assert_eq!(r.id.get_version_num(), 4);
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn duration_must_be_positive_and_finite() {
        let d = Deployment::new("d");
        assert_eq!(
            Recording::new(d.clone(), 0.0, 48_000).unwrap_err(),
            DataError::NonPositive {
                field: "duration",
                value: 0.0
            }
        );
        assert!(Recording::new(d.clone(), -1.0, 48_000).is_err());
        assert!(Recording::new(d.clone(), f64::NAN, 48_000).is_err());
        assert!(matches!(
            Recording::new(d.clone(), f64::INFINITY, 48_000),
            Err(DataError::NotFinite {
                field: "duration",
                ..
            })
        ));
        assert!(Recording::new(d, 0.001, 48_000).is_ok());
    }

    #[test]
    fn samplerate_must_be_positive() {
        assert_eq!(
            Recording::new(Deployment::new("d"), 3.0, 0).unwrap_err(),
            DataError::NonPositive {
                field: "samplerate",
                value: 0.0
            }
        );
        assert!(Recording::new(Deployment::new("d"), 3.0, 1).is_ok());
    }

    #[test]
    fn channels_and_time_expansion() {
        let mut r = recording();
        r.audio_channels = 0;
        assert_eq!(
            r.validate(),
            Err(DataError::NonPositive {
                field: "audio_channels",
                value: 0.0
            })
        );
        r.audio_channels = 2;
        assert_eq!(r.validate(), Ok(()));
        r.time_expansion = 0.0;
        assert_eq!(
            r.validate(),
            Err(DataError::NonPositive {
                field: "time_expansion",
                value: 0.0
            })
        );
        r.time_expansion = f64::NAN;
        assert!(r.validate().is_err());
        r.time_expansion = 10.0;
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn validate_checks_deployment() {
        let mut r = recording();
        r.deployment.latitude = Some(100.0);
        assert_eq!(r.validate(), Err(DataError::LatitudeOutOfRange(100.0)));
    }

    #[test]
    fn path_is_string_or_null_in_json() {
        let r = recording();
        assert_eq!(
            serde_json::to_value(&r).unwrap()["path"],
            serde_json::Value::Null
        );
        let r = r.with_path("/data/rec.wav");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["path"], "/data/rec.wav");
        assert_eq!(json["audio_channels"], 1);
        let back: Recording = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn json_defaults_for_missing_fields() {
        let r: Recording = serde_json::from_str(
            r#"{"duration":3.0,"samplerate":48000,"created_on":"2026-05-01T06:00:00",
                "deployment":{"name":"d"}}"#,
        )
        .unwrap();
        assert_eq!((r.audio_channels, r.time_expansion, r.path), (1, 1.0, None));
        assert_eq!(r.created_on.to_rfc3339(), "2026-05-01T06:00:00+00:00");
    }
}

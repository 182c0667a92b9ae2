//! The acoupi data model (its documentation, Reference → Data: <https://acoupi.github.io/acoupi/>):
//! deployments, recordings, detections, model outputs, messages, responses and metrics, with
//! validation and their JSON wire format.
//!
//! Every type with rules has `validate(&self) -> Result<(), DataError>`, so values built
//! field by field or deserialised can be checked; constructors that take ranged values
//! validate them. Only [`BoundingBox`] validates during deserialisation. All timestamps
//! are `DateTime<Utc>`, serialised as RFC 3339 with "+00:00" (see [`timestamp`]).

mod deployment;
mod detection;
mod geometry;
mod message;
mod metric;
mod recording;
mod tags;
pub mod timestamp;

pub use deployment::{Deployment, DeviceInfo};
pub use detection::{Detection, ModelOutput, ModelOutputInfo, PRIVACY_TAG_KEY, PredictionType};
pub use geometry::{BoundingBox, TimeInterval};
pub use message::{Content, Message, MessageType, Response, ResponseStatus};
pub use metric::Metric;
pub use recording::Recording;
pub use tags::{PredictedTag, Tag};
pub use timestamp::parse_timestamp;

/// A value of the data model that breaks one of its rules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    #[error("latitude must be within [-90, 90], got {0}")]
    LatitudeOutOfRange(f64),
    #[error("longitude must be within [-180, 180], got {0}")]
    LongitudeOutOfRange(f64),
    /// Also used for integer fields (`samplerate`, `audio_channels`) equal to 0.
    #[error("{field} must be greater than 0, got {value}")]
    NonPositive { field: &'static str, value: f64 },
    #[error("{field} must be finite, got {value}")]
    NotFinite { field: &'static str, value: f64 },
    #[error("{field} must be within [0, 1], got {value}")]
    ScoreOutOfRange { field: &'static str, value: f64 },
    #[error("bounding box end_time ({end_time}) must be greater than start_time ({start_time})")]
    EmptyTimeRange { start_time: f64, end_time: f64 },
    #[error("bounding box high_freq ({high_freq}) must be greater than low_freq ({low_freq})")]
    EmptyFrequencyRange { low_freq: f64, high_freq: f64 },
    #[error(
        "invalid timestamp `{0}`: expected RFC 3339 or a naive YYYY-MM-DDTHH:MM:SS[.fff] (UTC)"
    )]
    InvalidTimestamp(String),
    #[error(
        "unknown response status {0}: expected 0 (SUCCESS), 1 (FAILED), 2 (ERROR) or 3 (TIMEOUT)"
    )]
    UnknownResponseStatus(i32),
}

/// `value` must be > 0 and finite; NaN is rejected.
pub(crate) fn check_positive(field: &'static str, value: f64) -> Result<(), DataError> {
    if value.is_nan() || value <= 0.0 {
        Err(DataError::NonPositive { field, value })
    } else if value.is_infinite() {
        Err(DataError::NotFinite { field, value })
    } else {
        Ok(())
    }
}

/// `value` must lie in [0, 1]; NaN is rejected.
pub(crate) fn check_score(field: &'static str, value: f64) -> Result<(), DataError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(DataError::ScoreOutOfRange { field, value })
    }
}

/// `value` must be finite (JSON cannot carry NaN or infinities).
pub(crate) fn check_finite(field: &'static str, value: f64) -> Result<(), DataError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(DataError::NotFinite { field, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_rejects_zero_negative_nan_and_infinity() {
        assert_eq!(check_positive("x", 0.5), Ok(()));
        assert_eq!(
            check_positive("x", 0.0),
            Err(DataError::NonPositive {
                field: "x",
                value: 0.0
            })
        );
        assert!(matches!(
            check_positive("x", f64::NAN),
            Err(DataError::NonPositive { .. })
        ));
        assert_eq!(
            check_positive("x", f64::INFINITY),
            Err(DataError::NotFinite {
                field: "x",
                value: f64::INFINITY
            })
        );
    }

    #[test]
    fn score_bounds_are_inclusive_and_nan_is_rejected() {
        assert_eq!(check_score("s", 0.0), Ok(()));
        assert_eq!(check_score("s", 1.0), Ok(()));
        assert_eq!(
            check_score("s", 1.01),
            Err(DataError::ScoreOutOfRange {
                field: "s",
                value: 1.01
            })
        );
        assert!(check_score("s", f64::NAN).is_err());
    }

    #[test]
    fn errors_name_field_and_value() {
        let e = DataError::NonPositive {
            field: "duration",
            value: -1.0,
        };
        assert_eq!(e.to_string(), "duration must be greater than 0, got -1");
    }
}

//! BoundingBox (a time/frequency box in a recording) and TimeInterval (a daily window of
//! time of day, which may cross midnight).

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use super::{DataError, check_finite};

/// An immutable box in a recording: seconds from the recording start and Hz, with
/// `end_time > start_time` and `low_freq < high_freq`. JSON form:
/// `{"type":"BoundingBox","coordinates":[start_time, low_freq, end_time, high_freq]}`;
/// deserialising checks the rules (a missing `type` is accepted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BoundingBoxJson", into = "BoundingBoxJson")]
pub struct BoundingBox {
    coordinates: [f64; 4],
}

impl BoundingBox {
    pub fn new(
        start_time: f64,
        low_freq: f64,
        end_time: f64,
        high_freq: f64,
    ) -> Result<Self, DataError> {
        let b = BoundingBox {
            coordinates: [start_time, low_freq, end_time, high_freq],
        };
        b.validate()?;
        Ok(b)
    }

    /// Always `Ok` for a constructed box; kept so every ruled type has `validate`.
    pub fn validate(&self) -> Result<(), DataError> {
        let [start_time, low_freq, end_time, high_freq] = self.coordinates;
        check_finite("start_time", start_time)?;
        check_finite("low_freq", low_freq)?;
        check_finite("end_time", end_time)?;
        check_finite("high_freq", high_freq)?;
        if end_time <= start_time {
            return Err(DataError::EmptyTimeRange {
                start_time,
                end_time,
            });
        }
        if high_freq <= low_freq {
            return Err(DataError::EmptyFrequencyRange {
                low_freq,
                high_freq,
            });
        }
        Ok(())
    }

    /// `[start_time, low_freq, end_time, high_freq]`.
    pub fn coordinates(&self) -> [f64; 4] {
        self.coordinates
    }
    pub fn start_time(&self) -> f64 {
        self.coordinates[0]
    }
    pub fn low_freq(&self) -> f64 {
        self.coordinates[1]
    }
    pub fn end_time(&self) -> f64 {
        self.coordinates[2]
    }
    pub fn high_freq(&self) -> f64 {
        self.coordinates[3]
    }
    pub fn duration(&self) -> f64 {
        self.end_time() - self.start_time()
    }
    pub fn bandwidth(&self) -> f64 {
        self.high_freq() - self.low_freq()
    }
}

#[derive(Serialize, Deserialize)]
struct BoundingBoxJson {
    #[serde(rename = "type", default)]
    kind: BoundingBoxKind,
    coordinates: [f64; 4],
}

#[derive(Default, Serialize, Deserialize)]
enum BoundingBoxKind {
    #[default]
    BoundingBox,
}

impl TryFrom<BoundingBoxJson> for BoundingBox {
    type Error = DataError;
    fn try_from(json: BoundingBoxJson) -> Result<Self, DataError> {
        let [start_time, low_freq, end_time, high_freq] = json.coordinates;
        BoundingBox::new(start_time, low_freq, end_time, high_freq)
    }
}

impl From<BoundingBox> for BoundingBoxJson {
    fn from(b: BoundingBox) -> Self {
        BoundingBoxJson {
            kind: BoundingBoxKind::BoundingBox,
            coordinates: b.coordinates,
        }
    }
}

/// A daily window of time of day. `start > end` means the window crosses midnight.
/// Both ends are included, so `start == end` is a zero-length window containing only
/// that instant (acoupi's `start <= t <= end` rule), never the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeInterval {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl TimeInterval {
    pub fn new(start: NaiveTime, end: NaiveTime) -> Self {
        TimeInterval { start, end }
    }

    pub fn crosses_midnight(&self) -> bool {
        self.start > self.end
    }

    pub fn contains(&self, time: NaiveTime) -> bool {
        if self.crosses_midnight() {
            time >= self.start || time <= self.end
        } else {
            self.start <= time && time <= self.end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn valid_box_and_getters() {
        let b = BoundingBox::new(0.5, 1000.0, 1.5, 8000.0).unwrap();
        assert_eq!(b.coordinates(), [0.5, 1000.0, 1.5, 8000.0]);
        assert_eq!(
            (b.start_time(), b.low_freq(), b.end_time(), b.high_freq()),
            (0.5, 1000.0, 1.5, 8000.0)
        );
        assert_eq!((b.duration(), b.bandwidth()), (1.0, 7000.0));
        assert_eq!(b.validate(), Ok(()));
    }

    #[test]
    fn time_range_must_not_be_empty() {
        assert_eq!(
            BoundingBox::new(1.0, 0.0, 1.0, 10.0).unwrap_err(),
            DataError::EmptyTimeRange {
                start_time: 1.0,
                end_time: 1.0
            }
        );
        assert!(BoundingBox::new(2.0, 0.0, 1.0, 10.0).is_err());
    }

    #[test]
    fn frequency_range_must_not_be_empty() {
        assert_eq!(
            BoundingBox::new(0.0, 10.0, 1.0, 10.0).unwrap_err(),
            DataError::EmptyFrequencyRange {
                low_freq: 10.0,
                high_freq: 10.0
            }
        );
        assert!(BoundingBox::new(0.0, 20.0, 1.0, 10.0).is_err());
    }

    #[test]
    fn nan_and_infinite_coordinates_are_rejected() {
        assert!(matches!(
            BoundingBox::new(f64::NAN, 0.0, 1.0, 10.0),
            Err(DataError::NotFinite {
                field: "start_time",
                ..
            })
        ));
        assert!(matches!(
            BoundingBox::new(0.0, 0.0, 1.0, f64::INFINITY),
            Err(DataError::NotFinite {
                field: "high_freq",
                ..
            })
        ));
    }

    #[test]
    fn json_shape_exact() {
        let b = BoundingBox::new(0.5, 1000.0, 1.5, 8000.0).unwrap();
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"type":"BoundingBox","coordinates":[0.5,1000.0,1.5,8000.0]}"#
        );
        let back: BoundingBox =
            serde_json::from_value(json!({"type":"BoundingBox","coordinates":[0.5,1000,1.5,8000]}))
                .unwrap();
        assert_eq!(back, b);
        let untyped: BoundingBox =
            serde_json::from_value(json!({"coordinates":[0.5,1000,1.5,8000]})).unwrap();
        assert_eq!(untyped, b);
    }

    #[test]
    fn bad_json_is_rejected() {
        let err = serde_json::from_value::<BoundingBox>(
            json!({"type":"BoundingBox","coordinates":[2,0,1,10]}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("end_time"), "{err}");
        assert!(
            serde_json::from_value::<BoundingBox>(
                json!({"type":"BoundingBox","coordinates":[0,10,1,5]})
            )
            .is_err()
        );
        assert!(
            serde_json::from_value::<BoundingBox>(json!({"type":"Box","coordinates":[0,0,1,5]}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<BoundingBox>(
                json!({"type":"BoundingBox","coordinates":[0,0,1]})
            )
            .is_err()
        );
    }

    #[test]
    fn interval_across_midnight() {
        let night = TimeInterval::new(t(22, 0), t(4, 0));
        assert!(night.crosses_midnight());
        assert!(night.contains(t(23, 30)));
        assert!(night.contains(t(3, 0)));
        assert!(night.contains(t(22, 0)) && night.contains(t(4, 0)));
        assert!(!night.contains(t(12, 0)));
        assert!(!night.contains(t(4, 1)));
    }

    #[test]
    fn interval_within_a_day() {
        let day = TimeInterval::new(t(6, 0), t(18, 0));
        assert!(!day.crosses_midnight());
        assert!(day.contains(t(12, 0)));
        assert!(!day.contains(t(23, 30)));
        assert!(!day.contains(t(5, 59)));
    }

    #[test]
    fn zero_length_interval_contains_only_its_instant() {
        let instant = TimeInterval::new(t(12, 0), t(12, 0));
        assert!(instant.contains(t(12, 0)));
        assert!(!instant.contains(t(12, 1)));
        assert!(!instant.contains(t(0, 0)));
    }

    #[test]
    fn interval_json() {
        let i = TimeInterval::new(t(22, 0), t(4, 0));
        assert_eq!(
            serde_json::to_value(i).unwrap(),
            json!({"start":"22:00:00","end":"04:00:00"})
        );
    }
}

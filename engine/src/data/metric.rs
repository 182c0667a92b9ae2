//! Metric: one measured value (e.g. free disk space) reported in heartbeats.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DataError, check_finite};

/// A measured value with its unit, e.g. `"bytes"` or `"percent"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: f64,
    #[serde(with = "crate::data::timestamp", default = "Utc::now")]
    pub captured_on: DateTime<Utc>,
    pub unit: String,
}

impl Metric {
    /// A metric captured now.
    pub fn new(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            value,
            captured_on: Utc::now(),
            unit: unit.into(),
        }
    }

    /// The value must be finite: JSON cannot carry NaN or infinities.
    pub fn validate(&self) -> Result<(), DataError> {
        check_finite("value", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_json_and_validation() {
        let m = Metric::new("disk_free", 1.5e9, "bytes");
        assert_eq!(m.validate(), Ok(()));
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            (json["name"].as_str(), json["unit"].as_str()),
            (Some("disk_free"), Some("bytes"))
        );
        assert_eq!(json["value"], 1.5e9);
        assert_eq!(serde_json::from_value::<Metric>(json).unwrap(), m);
        let nan = Metric::new("cpu", f64::NAN, "percent");
        assert!(matches!(
            nan.validate(),
            Err(DataError::NotFinite { field: "value", .. })
        ));
    }
}

//! Deployment (where and since when a device records) and DeviceInfo (the device's serial).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DataError;

/// The identity of the device; on a Raspberry Pi, its CPU serial.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: String,
}

impl DeviceInfo {
    pub fn new(id: impl Into<String>) -> Self {
        DeviceInfo { id: id.into() }
    }

    /// The `Serial` line of `/proc/cpuinfo` text (Raspberry Pi), if there is a non-empty one.
    pub fn from_cpuinfo(cpuinfo: &str) -> Option<Self> {
        cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            let value = value.trim();
            (key.trim() == "Serial" && !value.is_empty()).then(|| DeviceInfo::new(value))
        })
    }
}

/// A deployment of the device. Latitude and longitude are optional and independent;
/// when present they must lie in [-90, 90] and [-180, 180].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    pub name: String,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(with = "crate::data::timestamp", default = "Utc::now")]
    pub started_on: DateTime<Utc>,
    #[serde(with = "crate::data::timestamp::option", default)]
    pub ended_on: Option<DateTime<Utc>>,
}

impl Deployment {
    /// A new deployment with a random id, no location, started now and not ended.
    pub fn new(name: impl Into<String>) -> Self {
        Deployment {
            id: Uuid::new_v4(),
            name: name.into(),
            latitude: None,
            longitude: None,
            started_on: Utc::now(),
            ended_on: None,
        }
    }

    /// Sets the location, checking both ranges.
    pub fn with_location(mut self, latitude: f64, longitude: f64) -> Result<Self, DataError> {
        check_latitude(latitude)?;
        check_longitude(longitude)?;
        self.latitude = Some(latitude);
        self.longitude = Some(longitude);
        Ok(self)
    }

    pub fn validate(&self) -> Result<(), DataError> {
        self.latitude.map_or(Ok(()), check_latitude)?;
        self.longitude.map_or(Ok(()), check_longitude)
    }
}

fn check_latitude(latitude: f64) -> Result<(), DataError> {
    if (-90.0..=90.0).contains(&latitude) {
        Ok(())
    } else {
        Err(DataError::LatitudeOutOfRange(latitude))
    }
}

fn check_longitude(longitude: f64) -> Result<(), DataError> {
    if (-180.0..=180.0).contains(&longitude) {
        Ok(())
    } else {
        Err(DataError::LongitudeOutOfRange(longitude))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn defaults() {
        let a = Deployment::new("garden");
        let b = Deployment::new("garden");
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.get_version_num(), 4);
        assert_eq!((a.latitude, a.longitude, a.ended_on), (None, None, None));
        assert!((Utc::now() - a.started_on).num_seconds() < 5);
        assert_eq!(a.validate(), Ok(()));
    }

    #[test]
    fn location_ranges() {
        let d = Deployment::new("edge").with_location(-90.0, 180.0).unwrap();
        assert_eq!((d.latitude, d.longitude), (Some(-90.0), Some(180.0)));
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(
            Deployment::new("x").with_location(90.5, 0.0).unwrap_err(),
            DataError::LatitudeOutOfRange(90.5)
        );
        assert_eq!(
            Deployment::new("x").with_location(0.0, -180.5).unwrap_err(),
            DataError::LongitudeOutOfRange(-180.5)
        );
        assert!(matches!(
            Deployment::new("x").with_location(f64::NAN, 0.0),
            Err(DataError::LatitudeOutOfRange(v)) if v.is_nan()
        ));
        assert!(matches!(
            Deployment::new("x").with_location(0.0, f64::NAN),
            Err(DataError::LongitudeOutOfRange(_))
        ));
    }

    #[test]
    fn validate_catches_fields_set_directly() {
        let mut d = Deployment::new("x");
        d.latitude = Some(-91.0);
        assert_eq!(d.validate(), Err(DataError::LatitudeOutOfRange(-91.0)));
        d.latitude = None;
        d.longitude = Some(200.0);
        assert_eq!(d.validate(), Err(DataError::LongitudeOutOfRange(200.0)));
    }

    #[test]
    fn json_with_naive_timestamp_is_utc_and_defaults_apply() {
        let d: Deployment =
            serde_json::from_str(r#"{"name":"pond","started_on":"2026-05-01T06:00:00"}"#).unwrap();
        assert_eq!(
            d.started_on,
            Utc.with_ymd_and_hms(2026, 5, 1, 6, 0, 0).unwrap()
        );
        assert_eq!((d.latitude, d.ended_on), (None, None));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["started_on"], "2026-05-01T06:00:00+00:00");
        assert_eq!(json["ended_on"], serde_json::Value::Null);
        let back: Deployment = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn device_serial_from_cpuinfo() {
        let text =
            "processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 10000000abcdef01\nModel\t: Pi 4\n";
        assert_eq!(
            DeviceInfo::from_cpuinfo(text),
            Some(DeviceInfo::new("10000000abcdef01"))
        );
        assert_eq!(DeviceInfo::from_cpuinfo("processor\t: 0\n"), None);
    }
}

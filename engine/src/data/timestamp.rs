//! Timestamps: parsing (a naive timestamp is taken as UTC) and the serde format used by
//! every timestamp field of the data model, RFC 3339 with offset ("2026-05-01T06:00:00+00:00").
//!
//! Use as `#[serde(with = "crate::data::timestamp")]` on `DateTime<Utc>` fields and
//! `#[serde(with = "crate::data::timestamp::option", default)]` on `Option<DateTime<Utc>>`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serializer};

use super::DataError;

/// Parses RFC 3339 with an offset (converted to UTC), or a naive
/// `YYYY-MM-DDTHH:MM:SS[.fff]` (a space may replace the `T`), taken as UTC.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, DataError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
        .map(|naive| naive.and_utc())
        .ok_or_else(|| DataError::InvalidTimestamp(s.to_owned()))
}

/// The wire form of a timestamp: RFC 3339 with "+00:00".
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339()
}

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(t))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    parse_timestamp(&s).map_err(serde::de::Error::custom)
}

/// The same format for optional timestamps (`null` when absent).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&format_timestamp(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse_timestamp(&s))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn naive_timestamp_is_taken_as_utc() {
        let expected = Utc.with_ymd_and_hms(2026, 5, 1, 6, 0, 0).unwrap();
        assert_eq!(parse_timestamp("2026-05-01T06:00:00").unwrap(), expected);
        assert_eq!(parse_timestamp("2026-05-01 06:00:00").unwrap(), expected);
        let fractional = parse_timestamp("2026-05-01T06:00:00.250").unwrap();
        assert_eq!(fractional.timestamp_subsec_millis(), 250);
        assert_eq!(fractional.timestamp(), expected.timestamp());
    }

    #[test]
    fn offset_timestamp_is_converted_to_utc() {
        let expected = Utc.with_ymd_and_hms(2026, 5, 1, 4, 0, 0).unwrap();
        assert_eq!(
            parse_timestamp("2026-05-01T06:00:00+02:00").unwrap(),
            expected
        );
        assert_eq!(parse_timestamp("2026-05-01T04:00:00Z").unwrap(), expected);
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(
            parse_timestamp("yesterday"),
            Err(DataError::InvalidTimestamp("yesterday".into()))
        );
        assert!(parse_timestamp("2026-13-01T00:00:00").is_err());
    }

    #[test]
    fn formats_with_plus_zero_offset() {
        let t = Utc.with_ymd_and_hms(2026, 5, 1, 6, 0, 0).unwrap();
        assert_eq!(format_timestamp(&t), "2026-05-01T06:00:00+00:00");
    }
}

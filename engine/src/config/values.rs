//! Validated value types used in pipeline files: durations ("10s", "5min"), times of day,
//! timezones, cron expressions, coordinates and scores. Each checks its value while it is
//! deserialised, so a bad value is reported at its own line and column, and each describes
//! itself in the JSON Schema.
//!
//! Durations with an upper bound ([`DurationUpTo`]) keep a typo ("30d" for "30s") from
//! becoming a schedule that never fires or a buffer of days of audio: a schedule's
//! `every` is at most a day ([`ScheduleEvery`]; cron expressions are for anything
//! longer), a recording at most an hour ([`RecordingDuration`]; acoupi records 3 s
//! chunks by default, and a WAV file of an hour at 384 kHz is already 2.7 GB), and a
//! model's analysis frame or input window is bounded by what that model accepts.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Bound, Range};
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveTime;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer};

use super::diagnostics::Code;

/// Builds a deserialisation error carrying a diagnostic code (see `Code::split`); value
/// types of components use it so that their problems get their own code too.
pub fn invalid<E: de::Error>(code: Code, message: impl fmt::Display) -> E {
    E::custom(code.tag(message))
}

/// A value with the byte range it came from in the pipeline file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Located<T>(toml::Spanned<T>);

impl<T> Located<T> {
    pub fn get(&self) -> &T {
        self.0.get_ref()
    }
    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

/// Parses a human duration such as "3s", "10min", "1h 30min", "250ms".
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration `{text}` ({e}); write e.g. \"3s\", \"10min\", \"1h\"")
    })
}

fn duration_schema(description: &str) -> Schema {
    json_schema!({
        "type": "string",
        "description": description,
        "pattern": r"^\s*([0-9]+\s*[a-zA-Zµ]+\s*)+$",
        "examples": ["3s", "10min", "1h"]
    })
}

/// A duration written as a human string ("3s", "10min", "1h"); zero is allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| invalid(Code::InvalidDuration, e))
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        duration_schema("A duration such as \"3s\", \"10min\" or \"1h\".")
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A duration greater than zero, at least `MIN_MS` milliseconds and at most `MAX_SECS`
/// seconds, checked while it is deserialised (so a value out of range is reported at its
/// own line and column). The one bounded duration: [`PositiveDuration`],
/// [`DurationUpTo`] and the named bounds below are this type with its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BoundedDuration<const MIN_MS: u64, const MAX_SECS: u64>(pub Duration);

/// `MAX_SECS` of a duration without an upper bound.
pub const UNBOUNDED_SECS: u64 = u64::MAX;

/// A duration that must be greater than zero.
pub type PositiveDuration = BoundedDuration<0, UNBOUNDED_SECS>;

/// A duration greater than zero and at most `MAX_SECS` seconds.
pub type DurationUpTo<const MAX_SECS: u64> = BoundedDuration<0, MAX_SECS>;

/// A duration of at least `MIN_MS` milliseconds, with no upper bound.
pub type DurationAtLeast<const MIN_MS: u64> = BoundedDuration<MIN_MS, UNBOUNDED_SECS>;

impl<const MIN_MS: u64, const MAX_SECS: u64> BoundedDuration<MIN_MS, MAX_SECS> {
    /// The shortest duration allowed (zero itself is never allowed).
    pub const MIN: Duration = Duration::from_millis(MIN_MS);
    /// The longest duration allowed.
    pub const MAX: Duration = Duration::from_secs(MAX_SECS);

    /// The limits in words, e.g. "greater than zero and at most 1h".
    fn limits() -> String {
        let lower = if MIN_MS == 0 {
            "greater than zero".to_string()
        } else {
            format!("at least {}", humantime::format_duration(Self::MIN))
        };
        if MAX_SECS == UNBOUNDED_SECS {
            lower
        } else {
            format!(
                "{lower} and at most {}",
                humantime::format_duration(Self::MAX)
            )
        }
    }
}

impl<'de, const MIN_MS: u64, const MAX_SECS: u64> Deserialize<'de>
    for BoundedDuration<MIN_MS, MAX_SECS>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let HumanDuration(d) = HumanDuration::deserialize(deserializer)?;
        if d.is_zero() {
            return Err(invalid(
                Code::OutOfRange,
                "duration must be greater than zero",
            ));
        }
        if d < Self::MIN {
            return Err(invalid(
                Code::OutOfRange,
                format!(
                    "duration {} is too short: at least {} is allowed here",
                    humantime::format_duration(d),
                    humantime::format_duration(Self::MIN)
                ),
            ));
        }
        if d > Self::MAX {
            return Err(invalid(
                Code::OutOfRange,
                format!(
                    "duration {} is too long: at most {} is allowed here",
                    humantime::format_duration(d),
                    humantime::format_duration(Self::MAX)
                ),
            ));
        }
        Ok(BoundedDuration(d))
    }
}

impl<const MIN_MS: u64, const MAX_SECS: u64> JsonSchema for BoundedDuration<MIN_MS, MAX_SECS> {
    fn schema_name() -> Cow<'static, str> {
        let (min, max) = (
            humantime::format_duration(Self::MIN),
            humantime::format_duration(Self::MAX),
        );
        match (MIN_MS, MAX_SECS) {
            (0, UNBOUNDED_SECS) => "PositiveDuration".into(),
            (0, _) => format!("DurationUpTo{max}").into(),
            (_, UNBOUNDED_SECS) => format!("DurationAtLeast{min}").into(),
            _ => format!("Duration{min}To{max}").into(),
        }
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        if (MIN_MS, MAX_SECS) == (0, UNBOUNDED_SECS) {
            return duration_schema(
                "A duration greater than zero, such as \"3s\", \"10min\" or \"1h\".",
            );
        }
        duration_schema(&format!(
            "A duration {}, such as \"3s\" or \"10min\".",
            Self::limits()
        ))
    }
}

impl<const MIN_MS: u64, const MAX_SECS: u64> fmt::Display for BoundedDuration<MIN_MS, MAX_SECS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// The longest recording a recorder makes and a model is given, in seconds (1 h).
pub const MAX_RECORDING_SECS: u64 = 3600;

/// A schedule's `every`: greater than zero, at most one day.
pub type ScheduleEvery = DurationUpTo<86_400>;

/// The length of one recording: greater than zero, at most [`MAX_RECORDING_SECS`].
pub type RecordingDuration = DurationUpTo<MAX_RECORDING_SECS>;

/// A time of day, "HH:MM" or "HH:MM:SS", in the deployment's timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(pub NaiveTime);

impl FromStr for TimeOfDay {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        NaiveTime::parse_from_str(text, "%H:%M:%S")
            .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
            .map(TimeOfDay)
            .map_err(|_| format!("invalid time of day `{text}`; write \"HH:MM\" or \"HH:MM:SS\" (00:00 to 23:59:59)"))
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e| invalid(Code::InvalidTime, e))
    }
}

impl JsonSchema for TimeOfDay {
    fn schema_name() -> Cow<'static, str> {
        "TimeOfDay".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A time of day in the deployment's timezone, \"HH:MM\" or \"HH:MM:SS\".",
            "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
            "examples": ["06:00", "22:30"]
        })
    }
}

/// An IANA timezone name such as "Europe/London".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timezone(pub chrono_tz::Tz);

impl Default for Timezone {
    fn default() -> Self {
        Timezone(chrono_tz::UTC)
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.parse::<chrono_tz::Tz>() {
            Ok(tz) => Ok(Timezone(tz)),
            Err(_) => {
                let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
                let hint = super::diagnostics::did_you_mean(&text, names)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                Err(invalid(
                    Code::UnknownTimezone,
                    format!("unknown timezone `{text}`{hint}"),
                ))
            }
        }
    }
}

impl JsonSchema for Timezone {
    fn schema_name() -> Cow<'static, str> {
        "Timezone".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An IANA timezone name.",
            "examples": ["Europe/London", "America/New_York", "UTC"]
        })
    }
}

/// A cron expression, evaluated in the deployment's timezone. Five fields
/// ("min hour day month weekday") as in crontab, or six/seven with seconds (and years)
/// first/last as the `cron` crate reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    pub text: String,
    pub schedule: cron::Schedule,
}

impl FromStr for CronExpr {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let fields = text.split_whitespace().count();
        let full = if fields == 5 {
            format!("0 {text}")
        } else {
            text.to_string()
        };
        cron::Schedule::from_str(&full)
            .map(|schedule| CronExpr {
                text: text.to_string(),
                schedule,
            })
            .map_err(|e| {
                // The cron crate's message repeats the expression with a caret; keep its
                // last line, the reason.
                let message = e.to_string();
                let reason = message
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                format!("invalid cron expression `{text}`: {reason}")
            })
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e| invalid(Code::InvalidCron, e))
    }
}

impl JsonSchema for CronExpr {
    fn schema_name() -> Cow<'static, str> {
        "Cron".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A cron expression in the deployment's timezone: \"min hour day month weekday\", or with seconds first.",
            "examples": ["0 6 * * *", "*/15 * * * *"]
        })
    }
}

/// Checks a number against its bounds (always finite), for [`bounded_f64!`]; the message
/// names the value (`what`) and the range.
pub fn check_f64(
    value: f64,
    lower: Bound<f64>,
    upper: Bound<f64>,
    what: &str,
) -> Result<f64, String> {
    let inside = value.is_finite()
        && match lower {
            Bound::Included(min) => value >= min,
            Bound::Excluded(min) => value > min,
            Bound::Unbounded => true,
        }
        && match upper {
            Bound::Included(max) => value <= max,
            Bound::Excluded(max) => value < max,
            Bound::Unbounded => true,
        };
    if inside {
        return Ok(value);
    }
    let range = match (lower, upper) {
        (Bound::Included(min), Bound::Included(max)) => format!("between {min} and {max}"),
        _ => {
            let parts: Vec<String> = [
                match lower {
                    Bound::Included(min) => Some(format!("at least {min}")),
                    Bound::Excluded(min) => Some(format!("greater than {min}")),
                    Bound::Unbounded => None,
                },
                match upper {
                    Bound::Included(max) => Some(format!("at most {max}")),
                    Bound::Excluded(max) => Some(format!("below {max}")),
                    Bound::Unbounded => None,
                },
            ]
            .into_iter()
            .flatten()
            .collect();
            if parts.is_empty() {
                "a finite number".to_string()
            } else {
                parts.join(" and ")
            }
        }
    };
    Err(format!("{what} {value} is out of range: must be {range}"))
}

/// The JSON Schema of a number within bounds, for [`bounded_f64!`].
pub fn f64_schema(lower: Bound<f64>, upper: Bound<f64>, description: &str) -> Schema {
    let mut schema = json_schema!({ "type": "number" });
    match lower {
        Bound::Included(min) => drop(schema.insert("minimum".into(), min.into())),
        Bound::Excluded(min) => drop(schema.insert("exclusiveMinimum".into(), min.into())),
        Bound::Unbounded => {}
    }
    match upper {
        Bound::Included(max) => drop(schema.insert("maximum".into(), max.into())),
        Bound::Excluded(max) => drop(schema.insert("exclusiveMaximum".into(), max.into())),
        Bound::Unbounded => {}
    }
    if !description.is_empty() {
        schema.insert("description".into(), description.into());
    }
    schema
}

/// Declares an `f64` newtype whose value is finite and within bounds (each a
/// `std::ops::Bound`), checked while it is deserialised, so a value out of range is
/// reported at its own line and column; its schema shows the bounds. `what` names the
/// value in messages (the field's name where the type is one field's). Components use it
/// for ranges of their own:
///
/// ```ignore
/// acoupi_engine::bounded_f64!(
///     /// Detection sensitivity, 0.5 to 1.5.
///     Sensitivity, "sensitivity", Included(0.5), Included(1.5)
/// );
/// ```
#[macro_export]
macro_rules! bounded_f64 {
    ($(#[$doc:meta])* $name:ident, $what:expr, $lower:expr, $upper:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, ::serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub f64);

        impl $name {
            /// The lower and upper bound.
            #[allow(unused_imports)]
            pub const BOUNDS: (::std::ops::Bound<f64>, ::std::ops::Bound<f64>) = {
                use ::std::ops::Bound::*;
                ($lower, $upper)
            };
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <f64 as ::serde::Deserialize>::deserialize(deserializer)?;
                let (lower, upper) = Self::BOUNDS;
                $crate::config::values::check_f64(value, lower, upper, $what)
                    .map($name)
                    .map_err(|e| $crate::config::values::invalid($crate::config::Code::OutOfRange, e))
            }
        }

        impl ::schemars::JsonSchema for $name {
            fn schema_name() -> ::std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut ::schemars::SchemaGenerator) -> ::schemars::Schema {
                let (lower, upper) = Self::BOUNDS;
                $crate::config::values::f64_schema(lower, upper, "")
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

crate::bounded_f64!(
    /// Latitude in decimal degrees, -90 to 90.
    Latitude, "latitude", Included(-90.0), Included(90.0)
);
crate::bounded_f64!(
    /// Longitude in decimal degrees, -180 to 180.
    Longitude, "longitude", Included(-180.0), Included(180.0)
);
crate::bounded_f64!(
    /// A score or threshold between 0 and 1.
    Score, "score", Included(0.0), Included(1.0)
);
crate::bounded_f64!(
    /// A percentage, 0 to 100.
    Percent, "percentage", Included(0.0), Included(100.0)
);
crate::bounded_f64!(
    /// A time expansion factor, greater than 0 (10 for recordings slowed down ten times).
    TimeExpansion, "time_expansion", Excluded(0.0), Unbounded
);

/// Deserialises a count that must be at least 1 as its `NonZero*` type (`P` is the
/// primitive: `nonzero::<_, usize, NonZeroUsize>`); `message` is the problem reported for
/// 0, in the field's words. Components use it through a one-line `deserialize_with`
/// function per field.
pub fn nonzero<'de, D, P, T>(deserializer: D, message: &str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    P: Deserialize<'de>,
    T: TryFrom<P>,
{
    T::try_from(P::deserialize(deserializer)?).map_err(|_| invalid(Code::OutOfRange, message))
}

/// A frequency in Hz, greater than zero.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Hertz(pub f64);

impl<'de> Deserialize<'de> for Hertz {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if value.is_nan() || value <= 0.0 {
            return Err(invalid(
                Code::OutOfRange,
                format!("frequency {value} Hz must be greater than 0"),
            ));
        }
        Ok(Hertz(value))
    }
}

impl JsonSchema for Hertz {
    fn schema_name() -> Cow<'static, str> {
        "Hertz".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "number", "exclusiveMinimum": 0, "description": "A frequency in Hz." })
    }
}

/// A list with at least one item.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct NonEmpty<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NonEmpty<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(deserializer)?;
        if items.is_empty() {
            return Err(invalid(
                Code::EmptyList,
                "the list must have at least one item",
            ));
        }
        Ok(NonEmpty(items))
    }
}

impl<T: JsonSchema> JsonSchema for NonEmpty<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("NonEmpty_{}", T::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "array", "items": generator.subschema_for::<T>(), "minItems": 1 })
    }
}

/// An amount of disk space: bytes with a unit ("2 GB", "500 MiB", "1024") or a share of
/// the filesystem ("10%").
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpaceAmount {
    Bytes(u64),
    /// Percent of the filesystem's size, 0 to 100.
    Percent(f64),
}

impl SpaceAmount {
    /// The amount in bytes on a filesystem of `total` bytes.
    pub fn bytes_of(self, total: u64) -> u64 {
        match self {
            SpaceAmount::Bytes(bytes) => bytes,
            SpaceAmount::Percent(percent) => (total as f64 * percent / 100.0).ceil() as u64,
        }
    }
}

impl fmt::Display for SpaceAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpaceAmount::Bytes(bytes) => write!(f, "{}", bytesize::ByteSize(*bytes)),
            SpaceAmount::Percent(percent) => write!(f, "{percent}%"),
        }
    }
}

impl FromStr for SpaceAmount {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(number) = text.strip_suffix('%') {
            return match number.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(SpaceAmount::Percent(p)),
                Ok(p) => Err(format!("{p}% is out of range: must be between 0% and 100%")),
                Err(_) => Err(format!("invalid percentage `{text}`; write e.g. \"10%\"")),
            };
        }
        text.parse::<bytesize::ByteSize>()
            .map(|size| SpaceAmount::Bytes(size.as_u64()))
            .map_err(|_| {
                format!(
                    "invalid amount of space `{text}`; write e.g. \"2 GB\", \"500 MiB\" or \"10%\""
                )
            })
    }
}

impl<'de> Deserialize<'de> for SpaceAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|e| invalid(Code::InvalidValue, e))
    }
}

impl JsonSchema for SpaceAmount {
    fn schema_name() -> Cow<'static, str> {
        "SpaceAmount".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "Disk space: bytes with a unit (\"2 GB\", \"500 MiB\") or a share of the filesystem (\"10%\").",
            "pattern": r"^\s*[0-9.]+\s*([a-zA-Z]*|%)\s*$",
            "examples": ["2 GB", "10%"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn de<T: serde::de::DeserializeOwned>(toml_value: &str) -> Result<T, String> {
        #[derive(serde::Deserialize)]
        struct W<T> {
            v: T,
        }
        toml::from_str::<W<T>>(&format!("v = {toml_value}"))
            .map(|w| w.v)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(
            de::<HumanDuration>("\"10min\"").map(|d| d.0),
            Ok(Duration::from_secs(600))
        );
        assert_eq!(
            de::<HumanDuration>("\"0s\"").map(|d| d.0),
            Ok(Duration::ZERO)
        );
        assert!(de::<PositiveDuration>("\"0s\"").is_err_and(|e| e.contains("greater than zero")));
        assert!(
            de::<HumanDuration>("\"ten seconds\"").is_err_and(|e| e.contains("invalid duration"))
        );
        assert_eq!(
            de::<ScheduleEvery>("\"1day\"").map(|d| d.0),
            Ok(Duration::from_secs(86_400))
        );
        let long = de::<ScheduleEvery>("\"25h\"").unwrap_err();
        assert!(
            long.contains("too long") && long.contains("at most 1day"),
            "{long}"
        );
        assert!(de::<RecordingDuration>("\"0s\"").is_err_and(|e| e.contains("greater than zero")));
        assert!(de::<RecordingDuration>("\"61min\"").is_err_and(|e| e.contains("at most 1h")));
        assert_eq!(RecordingDuration::schema_name(), "DurationUpTo1h");
        assert_eq!(PositiveDuration::schema_name(), "PositiveDuration");
        assert!(
            de::<DurationAtLeast<1000>>("\"500ms\"")
                .is_err_and(|e| e.contains("too short: at least 1s"))
        );
        assert_eq!(
            de::<DurationAtLeast<1000>>("\"1s\"").map(|d| d.0),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(DurationAtLeast::<1000>::schema_name(), "DurationAtLeast1s");
    }

    #[test]
    fn times_zones_and_cron() {
        assert_eq!(
            de::<TimeOfDay>("\"22:30\"").map(|t| t.0),
            Ok(NaiveTime::from_hms_opt(22, 30, 0).unwrap())
        );
        assert!(de::<TimeOfDay>("\"25:00\"").is_err());
        assert_eq!(
            de::<Timezone>("\"Europe/London\"").map(|t| t.0),
            Ok(chrono_tz::Europe::London)
        );
        let err = de::<Timezone>("\"Europe/Londn\"").unwrap_err();
        assert!(err.contains("did you mean `Europe/London`"), "{err}");
        assert!(de::<CronExpr>("\"0 6 * * *\"").is_ok());
        assert!(de::<CronExpr>("\"0 61 * * *\"").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(de::<Latitude>("51.5").map(|l| l.0), Ok(51.5));
        assert!(de::<Latitude>("95.0").is_err_and(|e| e.contains("out of range")));
        assert!(de::<Longitude>("-181.0").is_err());
        assert!(de::<Score>("1.5").is_err());
        assert!(de::<Score>("1").is_ok());
        assert!(de::<Hertz>("0").is_err());
        assert!(de::<NonEmpty<u32>>("[]").is_err_and(|e| e.contains("at least one")));
        assert_eq!(de::<NonEmpty<u32>>("[1]").map(|l| l.0), Ok(vec![1]));
        assert!(de::<TimeExpansion>("0.0").is_err_and(|e| e.contains("greater than 0")));
        assert!(de::<TimeExpansion>("inf").is_err());
        assert!(de::<Score>("nan").is_err());
        assert_eq!(de::<TimeExpansion>("10").map(|t| t.0), Ok(10.0));
    }

    #[test]
    fn bounds_in_words_and_schema() {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let words = |lower, upper| check_f64(5.0, lower, upper, "x").unwrap_err();
        assert_eq!(
            words(Included(0.0), Excluded(3.0)),
            "x 5 is out of range: must be at least 0 and below 3"
        );
        assert_eq!(
            words(Unbounded, Included(0.0)),
            "x 5 is out of range: must be at most 0"
        );
        assert_eq!(
            words(Included(6.0), Included(9.0)),
            "x 5 is out of range: must be between 6 and 9"
        );
        let schema = f64_schema(Excluded(0.0), Excluded(3.0), "").to_value();
        assert_eq!(
            schema,
            serde_json::json!({ "type": "number", "exclusiveMinimum": 0.0, "exclusiveMaximum": 3.0 })
        );
    }

    #[test]
    fn counts_of_at_least_one() {
        #[derive(Debug, serde::Deserialize)]
        struct W {
            #[serde(deserialize_with = "k")]
            v: std::num::NonZeroUsize,
        }
        fn k<'de, D: Deserializer<'de>>(d: D) -> Result<std::num::NonZeroUsize, D::Error> {
            nonzero::<_, usize, _>(d, "k must be at least 1")
        }
        assert_eq!(
            toml::from_str::<W>("v = 2").map(|w| w.v.get()).ok(),
            Some(2)
        );
        let error = toml::from_str::<W>("v = 0").unwrap_err();
        assert_eq!(
            Code::split(error.message()),
            (Code::OutOfRange, "k must be at least 1".into())
        );
    }

    #[test]
    fn space_amounts() {
        assert_eq!(
            de::<SpaceAmount>("\"2 GB\""),
            Ok(SpaceAmount::Bytes(2_000_000_000))
        );
        assert_eq!(
            de::<SpaceAmount>("\"500MiB\""),
            Ok(SpaceAmount::Bytes(500 << 20))
        );
        assert_eq!(de::<SpaceAmount>("\"1024\""), Ok(SpaceAmount::Bytes(1024)));
        assert_eq!(de::<SpaceAmount>("\"10%\""), Ok(SpaceAmount::Percent(10.0)));
        assert!(de::<SpaceAmount>("\"120%\"").is_err_and(|e| e.contains("out of range")));
        assert!(de::<SpaceAmount>("\"lots\"").is_err_and(|e| e.contains("\"2 GB\"")));
        assert_eq!(SpaceAmount::Percent(10.0).bytes_of(1000), 100);
        assert_eq!(SpaceAmount::Bytes(5).bytes_of(1000), 5);
    }
}

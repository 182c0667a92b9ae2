//! `filter.frequency`: keep recordings made in the first part of every period of the day,
//! e.g. the first 5 minutes of every 30 (acoupi's FrequencySchedule).

use std::sync::Arc;
use std::time::Duration;

use acoupi_engine::component::{ComponentResult, SavingFilter};
use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::PositiveDuration;
use acoupi_engine::data::{ModelOutput, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use chrono::Timelike;

/// Keep a recording made (its `created_on`, on the deployment's local clock) in the first
/// `duration` of every `every`, counted from local midnight: with `duration = "5min"` and
/// `every = "30min"`, those made from 00:00 to 00:04:59, 00:30 to 00:34:59, and so on. This
/// is acoupi's rule `minute % every + second / 60 < duration` with the minute counted
/// from midnight; it differs from acoupi (minute of the hour) only when `every` does not
/// divide an hour. When `every` does not divide a day, the last period before midnight is
/// cut short.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencySavingFilterConfig {
    /// How long the kept part of each period lasts; at most `every`.
    pub duration: PositiveDuration,
    /// The length of each period.
    pub every: PositiveDuration,
}

impl ComponentConfig for FrequencySavingFilterConfig {
    const KIND: &'static str = "filter.frequency";

    fn check(&self) -> Vec<KeyProblem> {
        if self.duration > self.every {
            return vec![KeyProblem::new(
                &["duration"],
                Code::OutOfRange,
                format!(
                    "`duration` ({}) is longer than `every` ({}); it must be at most `every` (equal keeps everything)",
                    self.duration, self.every
                ),
            )];
        }
        Vec::new()
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let (duration, every) = (self.duration.0, self.every.0);
        Ok(Built::SavingFilter(Arc::new(FrequencySavingFilter {
            duration,
            every,
            timezone: ctx.settings.deployment.timezone,
        })))
    }
}

pub struct FrequencySavingFilter {
    duration: Duration,
    every: Duration,
    timezone: chrono_tz::Tz,
}

impl SavingFilter for FrequencySavingFilter {
    fn should_save(&self, recording: &Recording, _: &[ModelOutput]) -> ComponentResult<bool> {
        let time = recording.created_on.with_timezone(&self.timezone).time();
        let since_midnight = u128::from(time.num_seconds_from_midnight()) * 1_000_000_000
            + u128::from(time.nanosecond());
        Ok(since_midnight % self.every.as_nanos().max(1) < self.duration.as_nanos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::recording;
    use chrono::{DateTime, Utc};

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    fn filter(duration: u64, every: u64, timezone: chrono_tz::Tz) -> FrequencySavingFilter {
        FrequencySavingFilter {
            duration: minutes(duration),
            every: minutes(every),
            timezone,
        }
    }

    #[test]
    fn the_first_minutes_of_every_period_are_kept() {
        let utc = chrono_tz::UTC;
        let london = chrono_tz::Europe::London;
        let cases = [
            (filter(5, 30, utc), "2026-06-01T00:00:00Z", true),
            (filter(5, 30, utc), "2026-06-01T00:04:59.999Z", true),
            (filter(5, 30, utc), "2026-06-01T00:05:00Z", false),
            (filter(5, 30, utc), "2026-06-01T00:29:59Z", false),
            (filter(5, 30, utc), "2026-06-01T00:30:00Z", true),
            (filter(5, 30, utc), "2026-06-01T13:34:30Z", true),
            (filter(5, 30, utc), "2026-06-01T13:35:00Z", false),
            (filter(5, 30, utc), "2026-06-01T23:59:59Z", false),
            // Counted from midnight: 45-minute periods start at 00:45, 01:30, 02:15, ...
            (filter(5, 45, utc), "2026-06-01T01:00:00Z", false),
            (filter(5, 45, utc), "2026-06-01T01:31:00Z", true),
            // Equal duration and period keep everything.
            (filter(30, 30, utc), "2026-06-01T00:29:59Z", true),
            // Local clock: 08:02 BST is 07:02 UTC.
            (filter(5, 60, london), "2026-06-01T07:02:00Z", true),
            (filter(5, 60, london), "2026-06-01T07:32:00Z", false),
            (filter(5, 30, london), "2026-06-01T06:47:00Z", false),
            // Clocks forward 2026-03-29 at 01:00 GMT: 01:02 UTC is 02:02 BST.
            (filter(5, 30, london), "2026-03-29T00:59:00Z", false),
            (filter(5, 30, london), "2026-03-29T01:02:00Z", true),
            (filter(5, 60, london), "2026-03-29T01:02:00Z", true),
            // Clocks back 2026-10-25 at 02:00 BST: 01:03 happens twice, kept both times.
            (filter(5, 60, london), "2026-10-25T00:03:00Z", true),
            (filter(5, 60, london), "2026-10-25T01:03:00Z", true),
            (filter(5, 60, london), "2026-10-25T00:40:00Z", false),
        ];
        for (i, (filter, time, expected)) in cases.into_iter().enumerate() {
            let mut r = recording();
            r.created_on = time.parse::<DateTime<Utc>>().unwrap();
            assert_eq!(
                filter.should_save(&r, &[]).unwrap(),
                expected,
                "case {i}: {time}"
            );
        }
    }

    #[test]
    fn duration_longer_than_every_is_rejected() {
        use acoupi_engine::config::values::BoundedDuration;
        let config = |duration: u64, every: u64| FrequencySavingFilterConfig {
            duration: BoundedDuration(minutes(duration)),
            every: BoundedDuration(minutes(every)),
        };
        assert!(config(5, 30).check().is_empty());
        assert!(config(30, 30).check().is_empty());
        let problems = config(31, 30).check();
        let message = &problems[0].message;
        assert_eq!(problems[0].key, ["duration"]);
        assert!(
            message.contains("`duration` (31m) is longer than `every` (30m)"),
            "{message}"
        );
        let message = serde_json::from_str::<FrequencySavingFilterConfig>(
            r#"{"duration": "5min", "every": "0s"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("greater than zero"), "{message}");
    }
}

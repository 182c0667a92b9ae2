//! `condition.time_window`: record only inside daily time windows, in the deployment's
//! timezone (acoupi's IsInInterval / IsInIntervals).

use acoupi_engine::component::{ComponentResult, RecordingCondition};
use acoupi_engine::config::values::{NonEmpty, TimeOfDay};
use acoupi_engine::data::TimeInterval;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Record only inside daily time windows (deployment timezone); a window whose start is
/// after its end crosses midnight.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowConditionConfig {
    /// The windows; recording is allowed inside any of them. Start and end are included.
    pub windows: NonEmpty<Window>,
}

/// A daily window, e.g. `{ start = "06:00", end = "22:30" }` or, across midnight,
/// `{ start = "20:00", end = "04:00" }`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: TimeOfDay,
    pub end: TimeOfDay,
}

impl ComponentConfig for TimeWindowConditionConfig {
    const KIND: &'static str = "condition.time_window";

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let windows = self
            .windows
            .0
            .iter()
            .map(|w| TimeInterval {
                start: w.start.0,
                end: w.end.0,
            })
            .collect();
        Ok(Built::Condition(Arc::new(TimeWindowCondition {
            windows,
            timezone: ctx.settings.deployment.timezone,
        })))
    }
}

pub struct TimeWindowCondition {
    windows: Vec<TimeInterval>,
    timezone: chrono_tz::Tz,
}

impl RecordingCondition for TimeWindowCondition {
    fn should_record(&self, now: DateTime<Utc>) -> ComponentResult<bool> {
        let local = now.with_timezone(&self.timezone).time();
        Ok(self.windows.iter().any(|w| w.contains(local)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveTime, TimeZone};

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn windows_in_the_deployment_timezone_including_across_midnight() {
        let condition = TimeWindowCondition {
            windows: vec![
                TimeInterval {
                    start: t(6, 0),
                    end: t(8, 0),
                },
                TimeInterval {
                    start: t(22, 0),
                    end: t(2, 0),
                },
            ],
            timezone: chrono_tz::Europe::London,
        };
        // Summer time: London is UTC+1.
        let cases = [
            ((2026, 6, 1, 5, 30), true),  // 06:30 local
            ((2026, 6, 1, 7, 30), false), // 08:30 local
            ((2026, 6, 1, 22, 30), true), // 23:30 local
            ((2026, 6, 2, 0, 59), true),  // 01:59 local
            ((2026, 6, 2, 1, 30), false), // 02:30 local
            ((2026, 12, 1, 6, 30), true), // winter, 06:30 local = UTC
        ];
        for ((y, mo, d, h, mi), expected) in cases {
            let now = Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
            assert_eq!(condition.should_record(now).unwrap(), expected, "{now}");
        }
    }

    #[test]
    fn windows_on_the_days_clocks_change_follow_the_local_clock() {
        // Europe/London: on 2026-03-29 01:00 UTC the clocks go from 01:00 GMT to 02:00 BST
        // (local 01:00–02:00 never happens); on 2026-10-25 01:00 UTC they go back from
        // 02:00 BST to 01:00 GMT (local 01:00–02:00 happens twice).
        let condition = TimeWindowCondition {
            windows: vec![
                TimeInterval {
                    start: t(1, 0),
                    end: t(3, 0),
                },
                TimeInterval {
                    start: t(23, 30),
                    end: t(0, 30),
                },
            ],
            timezone: chrono_tz::Europe::London,
        };
        let cases = [
            ((2026, 3, 29, 0, 29), true),   // 00:29 GMT: the window across midnight
            ((2026, 3, 29, 0, 31), false),  // 00:31 GMT
            ((2026, 3, 29, 0, 59), false),  // 00:59 GMT
            ((2026, 3, 29, 1, 0), true),    // 02:00 BST: the window is one real hour long
            ((2026, 3, 29, 2, 0), true),    // 03:00 BST, the end is included
            ((2026, 3, 29, 2, 1), false),   // 03:01 BST
            ((2026, 10, 24, 23, 15), true), // 00:15 BST: across midnight
            ((2026, 10, 25, 0, 0), true),   // 01:00 BST, the first time
            ((2026, 10, 25, 0, 59), true),  // 01:59 BST
            ((2026, 10, 25, 1, 0), true),   // 01:00 GMT, the second time: three real hours
            ((2026, 10, 25, 3, 0), true),   // 03:00 GMT
            ((2026, 10, 25, 3, 1), false),  // 03:01 GMT
        ];
        for ((y, mo, d, h, mi), expected) in cases {
            let now = Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap();
            assert_eq!(
                condition.should_record(now).unwrap(),
                expected,
                "{now} = {}",
                now.with_timezone(&chrono_tz::Europe::London)
            );
        }
    }
}

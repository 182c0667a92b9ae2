//! `filter.time_window`: keep recordings made inside daily time windows, in the
//! deployment's timezone (acoupi's SaveIfInInterval).

use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, SavingFilter};
use acoupi_engine::config::values::NonEmpty;
use acoupi_engine::data::{ModelOutput, Recording, TimeInterval};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use crate::condition::time_window::Window;

/// Keep a recording when it was made (its `created_on`, in the deployment's timezone)
/// inside any of the daily windows; a window whose start is after its end crosses
/// midnight.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowSavingFilterConfig {
    /// The windows, e.g. `[{ start = "05:00", end = "09:00" }]`. Start and end are
    /// included.
    pub windows: NonEmpty<Window>,
}

impl ComponentConfig for TimeWindowSavingFilterConfig {
    const KIND: &'static str = "filter.time_window";

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
        Ok(Built::SavingFilter(Arc::new(TimeWindowSavingFilter {
            windows,
            timezone: ctx.settings.deployment.timezone,
        })))
    }
}

pub struct TimeWindowSavingFilter {
    windows: Vec<TimeInterval>,
    timezone: chrono_tz::Tz,
}

impl SavingFilter for TimeWindowSavingFilter {
    fn should_save(&self, recording: &Recording, _: &[ModelOutput]) -> ComponentResult<bool> {
        let local = recording.created_on.with_timezone(&self.timezone).time();
        Ok(self.windows.iter().any(|w| w.contains(local)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::sun::places::local;
    use crate::testing::recording;
    use chrono::NaiveTime;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn recordings_inside_any_window_in_local_time_are_kept() {
        let tz = chrono_tz::Europe::London;
        let filter = TimeWindowSavingFilter {
            windows: vec![
                TimeInterval {
                    start: t(5, 0),
                    end: t(9, 0),
                },
                TimeInterval {
                    start: t(22, 0),
                    end: t(2, 0),
                },
            ],
            timezone: tz,
        };
        let cases = [
            ("2026-06-01 04:59", false),
            ("2026-06-01 05:00", true),
            ("2026-06-01 09:00", true),
            ("2026-06-01 09:01", false),
            ("2026-06-01 21:59", false),
            ("2026-06-01 22:00", true),
            ("2026-06-02 00:30", true),
            ("2026-06-02 02:00", true),
            ("2026-06-02 02:01", false),
            // The clocks go forward at 01:00 GMT: 00:30 GMT is inside, 05:30 BST too.
            ("2026-03-29 00:30", true),
            ("2026-03-29 02:30", false),
            ("2026-03-29 05:30", true),
            // The clocks go back at 02:00 BST; 04:30 GMT is before the window.
            ("2026-10-25 04:30", false),
            ("2026-10-25 05:30", true),
            ("2026-12-01 08:59", true),
        ];
        for (text, expected) in cases {
            let mut r = recording();
            r.created_on = local(tz, text);
            assert_eq!(filter.should_save(&r, &[]).unwrap(), expected, "{text}");
        }
        // 01:30 happens twice on 2026-10-25 (BST, then GMT): both are inside.
        let mut r = recording();
        for utc in ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"] {
            r.created_on = utc.parse().unwrap();
            assert!(filter.should_save(&r, &[]).unwrap(), "{utc}");
        }
    }
}

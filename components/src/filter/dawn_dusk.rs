//! `filter.dawn_dusk`: keep recordings made in windows around sun events at the
//! deployment's position (acoupi's Before_/After_DawnDuskTimeInterval).

use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, SavingFilter};
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::NonEmpty;
use acoupi_engine::data::{ModelOutput, Recording};
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};

use crate::shared::sun::{SunWindowConfig, SunWindows, check_windows};

/// Keep a recording made (its `created_on`) inside any window around a sun event. acoupi's
/// "30 minutes before dawn" is `{ event = "dawn", before = "30min", after = "0s" }`, its
/// "30 minutes after dusk" `{ event = "dusk", after = "30min" }`. Needs `latitude` and
/// `longitude` in `[deployment]`; a recording whose deployment has its own position is
/// judged there. On a day without the event (polar day or night) its window is empty and
/// nothing made that day is kept by it.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DawnDuskSavingFilterConfig {
    /// The windows; a recording made inside any of them is kept.
    pub windows: NonEmpty<SunWindowConfig>,
}

impl ComponentConfig for DawnDuskSavingFilterConfig {
    const KIND: &'static str = "filter.dawn_dusk";

    fn check(&self) -> Vec<KeyProblem> {
        check_windows(&self.windows)
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let windows = SunWindows::build(&self.windows, ctx)?;
        Ok(Built::SavingFilter(Arc::new(DawnDuskSavingFilter {
            windows,
        })))
    }
}

pub struct DawnDuskSavingFilter {
    windows: SunWindows,
}

impl SavingFilter for DawnDuskSavingFilter {
    fn should_save(&self, recording: &Recording, _: &[ModelOutput]) -> ComponentResult<bool> {
        let deployment = &recording.deployment;
        Ok(match (deployment.latitude, deployment.longitude) {
            (Some(latitude), Some(longitude)) => {
                self.windows
                    .contains_at(recording.created_on, latitude, longitude)
            }
            _ => self.windows.contains(recording.created_on),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::sun::places::{LONDON, LONGYEARBYEN, local};
    use crate::shared::sun::{SunEvent, SunWindow};
    use crate::testing::recording;
    use std::time::Duration;

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    /// acoupi's "before dawn 30 min" and "after dusk 30 min". London civil dawn: 03:55 BST
    /// on 06-21, 06:09 BST on 03-29, 06:07 GMT on 10-25; civil dusk: 22:09 BST on 06-21,
    /// 20:02 BST on 03-29, 17:21 GMT on 10-25.
    #[test]
    fn before_dawn_and_after_dusk() {
        let tz = chrono_tz::Europe::London;
        let filter = DawnDuskSavingFilter {
            windows: SunWindows::new(
                vec![
                    SunWindow {
                        event: SunEvent::Dawn,
                        before: minutes(30),
                        after: Duration::ZERO,
                    },
                    SunWindow {
                        event: SunEvent::Dusk,
                        before: Duration::ZERO,
                        after: minutes(30),
                    },
                ],
                LONDON.0,
                LONDON.1,
                tz,
            ),
        };
        let cases = [
            ("2026-06-21 03:22", false),
            ("2026-06-21 03:28", true),
            ("2026-06-21 03:53", true),
            ("2026-06-21 03:57", false),
            ("2026-06-21 22:07", false),
            ("2026-06-21 22:11", true),
            ("2026-06-21 22:37", true),
            ("2026-06-21 22:41", false),
            ("2026-03-29 05:36", false),
            ("2026-03-29 05:42", true),
            ("2026-03-29 06:07", true),
            ("2026-03-29 06:11", false),
            ("2026-03-29 20:30", true),
            ("2026-03-29 20:35", false),
            ("2026-10-25 05:34", false),
            ("2026-10-25 05:40", true),
            ("2026-10-25 17:23", true),
            ("2026-10-25 17:53", false),
        ];
        for (text, expected) in cases {
            let mut r = recording();
            r.created_on = local(tz, text);
            assert_eq!(filter.should_save(&r, &[]).unwrap(), expected, "{text}");
        }
    }

    /// The recording's own deployment position wins over the configured one: at 78°N in
    /// June there is no dawn, so a London-configured filter keeps nothing from there.
    #[test]
    fn polar_recordings_are_not_kept() {
        let tz = chrono_tz::Europe::London;
        let window = SunWindow {
            event: SunEvent::Dawn,
            before: minutes(12 * 60),
            after: minutes(12 * 60),
        };
        let filter = DawnDuskSavingFilter {
            windows: SunWindows::new(vec![window], LONDON.0, LONDON.1, tz),
        };
        let mut r = recording();
        r.created_on = local(tz, "2026-06-21 03:55");
        assert!(filter.should_save(&r, &[]).unwrap());
        r.deployment = r
            .deployment
            .clone()
            .with_location(LONGYEARBYEN.0, LONGYEARBYEN.1)
            .unwrap();
        for day in ["2026-06-21", "2026-12-21"] {
            for hour in (0..24).step_by(3) {
                let text = format!("{day} {hour:02}:00");
                r.created_on = local(tz, &text);
                assert!(!filter.should_save(&r, &[]).unwrap(), "{text}");
            }
        }
    }
}

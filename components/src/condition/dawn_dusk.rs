//! `condition.dawn_dusk`: record only in windows around sun events (civil dawn, sunrise,
//! sunset, civil dusk) at the deployment's position (acoupi's DawnTimeInterval, from
//! coordinates rather than the timezone name).

use std::sync::Arc;

use acoupi_engine::component::{ComponentResult, RecordingCondition};
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::NonEmpty;
use acoupi_engine::registry::{BuildContext, BuildError, Built, ComponentConfig};
use chrono::{DateTime, Utc};

use crate::shared::sun::{SunWindowConfig, SunWindows, check_windows};

/// Record only around sun events at the deployment's position, e.g.
/// `windows = [{ event = "sunrise", before = "30min", after = "2h" }]`. Needs `latitude`
/// and `longitude` in `[deployment]`. On a day without the event (polar day or night: no
/// sunrise at 78°N in June or December) its window is empty and the condition says no.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DawnDuskConditionConfig {
    /// The windows; recording is allowed inside any of them.
    pub windows: NonEmpty<SunWindowConfig>,
}

impl ComponentConfig for DawnDuskConditionConfig {
    const KIND: &'static str = "condition.dawn_dusk";

    fn check(&self) -> Vec<KeyProblem> {
        check_windows(&self.windows)
    }

    fn build(&self, ctx: &BuildContext) -> Result<Built, BuildError> {
        let windows = SunWindows::build(&self.windows, ctx)?;
        Ok(Built::Condition(Arc::new(DawnDuskCondition { windows })))
    }
}

pub struct DawnDuskCondition {
    windows: SunWindows,
}

impl RecordingCondition for DawnDuskCondition {
    fn should_record(&self, now: DateTime<Utc>) -> ComponentResult<bool> {
        Ok(self.windows.contains(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::sun::places::{LONDON, LONGYEARBYEN, local};
    use crate::shared::sun::{SunEvent, SunWindow};
    use acoupi_engine::registry::BuildContext;
    use std::time::Duration;

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    fn condition(
        place: (f64, f64),
        timezone: chrono_tz::Tz,
        windows: Vec<SunWindow>,
    ) -> DawnDuskCondition {
        DawnDuskCondition {
            windows: SunWindows::new(windows, place.0, place.1, timezone),
        }
    }

    /// 30 min before to 2 h after sunrise, and 1 h before civil dusk to 1 h after, in
    /// London. Sunrise: 04:43 BST on 06-21, 06:43 BST on 03-29 (the clocks go forward at
    /// 01:00 that morning), 06:42 GMT on 10-25 (they go back at 02:00 BST). Civil dusk:
    /// 22:09 BST on 06-21.
    #[test]
    fn london_sunrise_and_dusk_windows() {
        let tz = chrono_tz::Europe::London;
        let c = condition(
            LONDON,
            tz,
            vec![
                SunWindow {
                    event: SunEvent::Sunrise,
                    before: minutes(30),
                    after: minutes(120),
                },
                SunWindow {
                    event: SunEvent::Dusk,
                    before: minutes(60),
                    after: minutes(60),
                },
            ],
        );
        let cases = [
            ("2026-06-21 04:10", false),
            ("2026-06-21 04:16", true),
            ("2026-06-21 06:40", true),
            ("2026-06-21 06:46", false),
            ("2026-06-21 12:00", false),
            ("2026-06-21 21:05", false),
            ("2026-06-21 21:12", true),
            ("2026-06-21 23:06", true),
            ("2026-06-21 23:12", false),
            ("2026-03-29 00:30", false),
            ("2026-03-29 06:10", false),
            ("2026-03-29 06:16", true),
            ("2026-03-29 08:40", true),
            ("2026-03-29 08:46", false),
            ("2026-10-25 06:08", false),
            ("2026-10-25 06:14", true),
            ("2026-10-25 08:38", true),
            ("2026-10-25 08:44", false),
        ];
        for (text, expected) in cases {
            assert_eq!(
                c.should_record(local(tz, text)).unwrap(),
                expected,
                "{text}"
            );
        }
    }

    /// At 78°N there is no sunrise and no civil dusk in June (polar day) or December
    /// (polar night): the condition says no all day. In March both happen.
    #[test]
    fn polar_day_and_night_never_record() {
        let tz = chrono_tz::Arctic::Longyearbyen;
        let c = condition(
            LONGYEARBYEN,
            tz,
            vec![
                SunWindow {
                    event: SunEvent::Sunrise,
                    before: minutes(60),
                    after: minutes(60),
                },
                SunWindow {
                    event: SunEvent::Dusk,
                    before: minutes(60),
                    after: minutes(60),
                },
            ],
        );
        for day in ["2026-06-21", "2026-12-21"] {
            for hour in 0..24 {
                let text = format!("{day} {hour:02}:00");
                assert!(!c.should_record(local(tz, &text)).unwrap(), "{text}");
            }
        }
        // 2026-03-01: sunrise about 08:27 CET.
        assert!(c.should_record(local(tz, "2026-03-01 08:30")).unwrap());
        assert!(!c.should_record(local(tz, "2026-03-01 12:00")).unwrap());
    }

    fn pipeline_with(deployment: &str) -> acoupi_engine::config::Pipeline {
        let source = format!(
            "[deployment]\nname = \"site\"\ntimezone = \"Europe/London\"\n{deployment}\n\n\
             [components.mornings]\ntype = \"condition.dawn_dusk\"\n\
             windows = [{{ event = \"sunrise\", before = \"30min\", after = \"2h\" }}]\n\n\
             [components.archive]\ntype = \"recorder.replay\"\nfolder = \"audio\"\n\n\
             [stages.record]\nkind = \"recording\"\nrecorder = \"archive\"\nconditions = [\"mornings\"]\n\
             schedule = {{ every = \"30s\" }}\n"
        );
        acoupi_engine::config::load_str(
            std::path::Path::new("dawn.toml"),
            &source,
            &crate::registry(),
        )
        .unwrap()
    }

    fn build_mornings(pipeline: &acoupi_engine::config::Pipeline) -> Result<Built, String> {
        let instance = pipeline
            .components
            .iter()
            .find(|c| c.name == "mornings")
            .unwrap();
        let ctx = BuildContext {
            settings: pipeline.settings.clone(),
            instance: instance.name.clone(),
            store: None,
            telemetry: Default::default(),
        };
        instance.settings.build(&ctx).map_err(|e| e.to_string())
    }

    /// (The loader already rejects a `[deployment]` with only one of the two.)
    #[test]
    fn a_pipeline_without_the_deployment_position_fails_to_build() {
        let cases = [
            (
                "",
                Some("`latitude` and `longitude` are missing from `[deployment]`"),
            ),
            ("latitude = 51.5\nlongitude = -0.12", None),
        ];
        for (deployment, expected) in cases {
            let result = build_mornings(&pipeline_with(deployment));
            match (result, expected) {
                (Ok(Built::Condition(_)), None) => {}
                (Err(message), Some(part)) => {
                    assert!(message.contains(part), "{message}");
                    assert!(
                        message.contains("`mornings` (condition.dawn_dusk)"),
                        "{message}"
                    );
                }
                (got, expected) => panic!("{deployment:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}

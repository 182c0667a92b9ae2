//! Sun events (civil dawn, sunrise, sunset, civil dusk) for a position and date, and the
//! windows around them that `condition.dawn_dusk` and `filter.dawn_dusk` share: the
//! `{ event, before, after }` config ([`SunWindowConfig`]), the running window
//! ([`SunWindow`]) and a set of windows at the deployment's position ([`SunWindows`]).
//!
//! Times come from the `sunrise` crate (the sunrise equation; within a minute or so of
//! published tables at mid-latitudes). An event belongs to a date as the crate counts
//! days: the solar day at the position whose mean noon falls on that date.
//!
//! Polar day and polar night: an event that does not happen on a day (no sunrise at 78°N
//! in June or in December, no civil dusk on a white night) has no time, and the window
//! around it is empty that day: no time is inside it, so a condition says no and a filter
//! does not keep. This is logged at debug level.

use std::fmt;
use std::time::Duration;

use acoupi_engine::config::Code;
use acoupi_engine::config::diagnostics::KeyProblem;
use acoupi_engine::config::values::{HumanDuration, NonEmpty};
use acoupi_engine::registry::BuildContext;
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use sunrise::{Coordinates, DawnType, SolarDay, SolarEvent};

/// The longest `before` or `after` of a window: half a day, so that a window never covers
/// a whole day and the days searched around a time always hold the event it belongs to.
pub const MAX_REACH: Duration = Duration::from_secs(12 * 3600);

/// How many local days either side of a time are searched for events. Two, not one: a
/// timezone can be a whole day away from the sun's time (Kiribati's Line Islands keep
/// UTC+14 at longitude 157°W), and a window reaches up to [`MAX_REACH`] from its event.
const SEARCH_DAYS: u64 = 2;

/// A sun event. Dawn and dusk are civil: the sun 6° below the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SunEvent {
    /// Civil dawn: the sun 6° below the horizon, rising.
    Dawn,
    /// Sunrise: the sun's upper rim on the horizon, rising.
    Sunrise,
    /// Sunset: the sun's upper rim on the horizon, setting.
    Sunset,
    /// Civil dusk: the sun 6° below the horizon, setting.
    Dusk,
}

impl SunEvent {
    pub fn name(self) -> &'static str {
        match self {
            SunEvent::Dawn => "dawn",
            SunEvent::Sunrise => "sunrise",
            SunEvent::Sunset => "sunset",
            SunEvent::Dusk => "dusk",
        }
    }

    fn solar_event(self) -> SolarEvent {
        match self {
            SunEvent::Dawn => SolarEvent::Dawn(DawnType::Civil),
            SunEvent::Sunrise => SolarEvent::Sunrise,
            SunEvent::Sunset => SolarEvent::Sunset,
            SunEvent::Dusk => SolarEvent::Dusk(DawnType::Civil),
        }
    }
}

impl fmt::Display for SunEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// When `event` happens at (`latitude`, `longitude`) on `date`, or `None` when it does not
/// happen that day (polar day or night) or the position is out of range.
pub fn event_time(
    event: SunEvent,
    latitude: f64,
    longitude: f64,
    date: NaiveDate,
) -> Option<DateTime<Utc>> {
    let coordinates = Coordinates::new(latitude, longitude)?;
    SolarDay::new(coordinates, date).event_time(event.solar_event())
}

/// A window around a sun event, e.g. `{ event = "sunrise", before = "30min", after = "2h" }`
/// (from 30 minutes before sunrise to 2 hours after it) or, for "30 minutes before dawn",
/// `{ event = "dawn", before = "30min" }`. Both ends are included.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SunWindowConfig {
    /// The sun event the window is anchored to: `dawn` (civil), `sunrise`, `sunset` or
    /// `dusk` (civil).
    pub event: SunEvent,
    /// How long before the event the window opens; at most 12h.
    #[serde(default)]
    #[schemars(default = "zero_text")]
    pub before: HumanDuration,
    /// How long after the event the window closes; at most 12h.
    #[serde(default)]
    #[schemars(default = "zero_text")]
    pub after: HumanDuration,
}

fn zero_text() -> &'static str {
    "0s"
}

/// The problems of a component's `windows` (a reach over 12h, a window of one instant),
/// reported by the loader at `windows` while the pipeline is validated.
pub fn check_windows(windows: &NonEmpty<SunWindowConfig>) -> Vec<KeyProblem> {
    windows
        .0
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.to_window(i).err())
        .map(|message| KeyProblem::new(&["windows"], Code::OutOfRange, message))
        .collect()
}

impl SunWindowConfig {
    /// Checks the reach of the window; `index` names it in messages.
    fn to_window(&self, index: usize) -> Result<SunWindow, String> {
        for (name, value) in [("before", self.before), ("after", self.after)] {
            if value.0 > MAX_REACH {
                return Err(format!(
                    "windows[{index}] ({}): `{name}` is {value}, but a window reaches at most 12h from its event",
                    self.event
                ));
            }
        }
        if self.before.0.is_zero() && self.after.0.is_zero() {
            return Err(format!(
                "windows[{index}] ({}): `before` and `after` are both 0s, so the window is a single instant; give one of them a length, e.g. before = \"30min\"",
                self.event
            ));
        }
        Ok(SunWindow {
            event: self.event,
            before: self.before.0,
            after: self.after.0,
        })
    }
}

/// `[event − before, event + after]` around each day's `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SunWindow {
    pub event: SunEvent,
    pub before: Duration,
    pub after: Duration,
}

impl SunWindow {
    /// Whether `time` lies within `before` of an `event` still to come or `after` of one
    /// just past, at (`latitude`, `longitude`). The events searched are those of the local
    /// day of `time` (in `timezone`) and of the days around it, so windows that cross
    /// midnight work. A day without the event (polar day or night) adds no window; when
    /// the local day itself has none, that is logged at debug level.
    pub fn contains(
        &self,
        time: DateTime<Utc>,
        latitude: f64,
        longitude: f64,
        timezone: chrono_tz::Tz,
    ) -> bool {
        if Coordinates::new(latitude, longitude).is_none() {
            tracing::debug!(
                latitude,
                longitude,
                "position out of range; no sun window applies"
            );
            return false;
        }
        let local_date = time.with_timezone(&timezone).date_naive();
        let before = TimeDelta::from_std(self.before).unwrap_or(TimeDelta::MAX);
        let after = TimeDelta::from_std(self.after).unwrap_or(TimeDelta::MAX);
        let first = local_date
            .checked_sub_days(Days::new(SEARCH_DAYS))
            .unwrap_or(local_date);
        first
            .iter_days()
            .take(2 * SEARCH_DAYS as usize + 1)
            .any(
                |date| match event_time(self.event, latitude, longitude, date) {
                    Some(event) => {
                        let offset = time - event;
                        offset <= after && -offset <= before
                    }
                    None => {
                        if date == local_date {
                            tracing::debug!(
                                event = %self.event,
                                %date,
                                latitude,
                                longitude,
                                "no {} on this day here (polar day or night); its window is empty",
                                self.event
                            );
                        }
                        false
                    }
                },
            )
    }
}

/// Sun windows at the deployment's position, in its timezone.
#[derive(Debug, Clone)]
pub struct SunWindows {
    windows: Vec<SunWindow>,
    latitude: f64,
    longitude: f64,
    timezone: chrono_tz::Tz,
}

impl SunWindows {
    /// Checks the windows and takes the position and timezone from `[deployment]`; an
    /// error names the missing `latitude`/`longitude`.
    pub fn build(windows: &NonEmpty<SunWindowConfig>, ctx: &BuildContext) -> Result<Self, String> {
        let deployment = &ctx.settings.deployment;
        let (latitude, longitude) = match (deployment.latitude, deployment.longitude) {
            (Some(latitude), Some(longitude)) => (latitude, longitude),
            (latitude, longitude) => {
                let missing = match (latitude, longitude) {
                    (None, None) => "`latitude` and `longitude` are",
                    (None, _) => "`latitude` is",
                    _ => "`longitude` is",
                };
                return Err(format!(
                    "sun times depend on where the station is, but {missing} missing from `[deployment]`; \
                     add e.g. `latitude = 51.5` and `longitude = -0.12` there"
                ));
            }
        };
        if Coordinates::new(latitude, longitude).is_none() {
            return Err(format!(
                "`[deployment]` position ({latitude}, {longitude}) is out of range"
            ));
        }
        let windows = windows
            .0
            .iter()
            .enumerate()
            .map(|(i, w)| w.to_window(i))
            .collect::<Result<_, _>>()?;
        Ok(SunWindows {
            windows,
            latitude,
            longitude,
            timezone: ctx.settings.deployment.timezone,
        })
    }

    /// Whether `time` is inside any window at the deployment's position.
    pub fn contains(&self, time: DateTime<Utc>) -> bool {
        self.contains_at(time, self.latitude, self.longitude)
    }

    /// Whether `time` is inside any window at another position (a recording's own).
    pub fn contains_at(&self, time: DateTime<Utc>, latitude: f64, longitude: f64) -> bool {
        self.windows
            .iter()
            .any(|w| w.contains(time, latitude, longitude, self.timezone))
    }

    #[cfg(test)]
    pub fn new(
        windows: Vec<SunWindow>,
        latitude: f64,
        longitude: f64,
        timezone: chrono_tz::Tz,
    ) -> Self {
        SunWindows {
            windows,
            latitude,
            longitude,
            timezone,
        }
    }
}

/// Places and times shared by the tests of the sun components.
#[cfg(test)]
pub(crate) mod places {
    use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

    /// London (latitude, longitude), as timeanddate.com places it.
    pub const LONDON: (f64, f64) = (51.5074, -0.1278);
    /// Longyearbyen, Svalbard, at 78°N: polar day in June, polar night in December.
    pub const LONGYEARBYEN: (f64, f64) = (78.2232, 15.6267);

    /// A local wall-clock time in `tz` ("2026-06-21 04:43"); must exist and be unambiguous.
    pub fn local(tz: chrono_tz::Tz, text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        tz.from_local_datetime(&naive)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::shared::sun::places::{LONDON, LONGYEARBYEN, local};

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Published times for London (NOAA's Solar Calculator, rounded to the minute as
    /// almanacs print them); the crate must agree within 2 minutes (it does within 90 s).
    /// 2026-03-29 and 2026-10-25 are the days the clocks change.
    #[test]
    fn london_times_match_published_tables() {
        use SunEvent::*;
        let tz = chrono_tz::Europe::London;
        let cases = [
            ((2026, 6, 21), Dawn, "2026-06-21 03:55"),
            ((2026, 6, 21), Sunrise, "2026-06-21 04:43"),
            ((2026, 6, 21), Sunset, "2026-06-21 21:22"),
            ((2026, 6, 21), Dusk, "2026-06-21 22:09"),
            ((2026, 12, 21), Sunrise, "2026-12-21 08:04"),
            ((2026, 12, 21), Sunset, "2026-12-21 15:53"),
            ((2026, 3, 29), Dawn, "2026-03-29 06:09"),
            ((2026, 3, 29), Sunrise, "2026-03-29 06:43"),
            ((2026, 3, 29), Sunset, "2026-03-29 19:29"),
            ((2026, 3, 29), Dusk, "2026-03-29 20:02"),
            ((2026, 10, 25), Dawn, "2026-10-25 06:07"),
            ((2026, 10, 25), Sunrise, "2026-10-25 06:42"),
            ((2026, 10, 25), Sunset, "2026-10-25 16:47"),
            ((2026, 10, 25), Dusk, "2026-10-25 17:21"),
        ];
        for ((y, m, d), event, expected) in cases {
            let got = event_time(event, LONDON.0, LONDON.1, date(y, m, d)).unwrap();
            let expected = local(tz, expected);
            let error = (got - expected).num_seconds().abs();
            assert!(
                error <= 120,
                "{event} on {y}-{m}-{d}: got {} (local {}), expected {expected}",
                got,
                got.with_timezone(&tz)
            );
        }
    }

    /// At 78°N the sun neither rises nor sets in midsummer (polar day) or midwinter
    /// (polar night, when even civil twilight never comes): every event is `None`. In
    /// March all four happen.
    #[test]
    fn polar_day_and_night_have_no_events() {
        let (lat, lon) = LONGYEARBYEN;
        let all = [
            SunEvent::Dawn,
            SunEvent::Sunrise,
            SunEvent::Sunset,
            SunEvent::Dusk,
        ];
        for (day, exists) in [
            (date(2026, 6, 21), false),
            (date(2026, 12, 21), false),
            (date(2026, 3, 1), true),
        ] {
            for event in all {
                assert_eq!(
                    event_time(event, lat, lon, day).is_some(),
                    exists,
                    "{event} on {day}"
                );
            }
        }
        // A window around an event that does not happen contains nothing, at any hour.
        let window = SunWindow {
            event: SunEvent::Sunrise,
            before: MAX_REACH,
            after: MAX_REACH,
        };
        let tz = chrono_tz::Arctic::Longyearbyen;
        for text in [
            "2026-06-21 00:00",
            "2026-06-21 06:00",
            "2026-06-21 12:00",
            "2026-12-21 09:00",
            "2026-12-21 12:00",
        ] {
            assert!(!window.contains(local(tz, text), lat, lon, tz), "{text}");
        }
    }

    #[test]
    fn windows_include_both_ends_and_cross_midnight() {
        let tz = chrono_tz::Europe::London;
        let (lat, lon) = LONDON;
        // Sunrise 2026-06-21 is at about 04:43 BST; dusk at about 22:09 BST.
        let sunrise = SunWindow {
            event: SunEvent::Sunrise,
            before: Duration::from_secs(1800),
            after: Duration::from_secs(7200),
        };
        // From 1 h before dusk until 3 h after it: crosses midnight.
        let dusk = SunWindow {
            event: SunEvent::Dusk,
            before: Duration::from_secs(3600),
            after: Duration::from_secs(3 * 3600),
        };
        let exact = event_time(SunEvent::Sunrise, lat, lon, date(2026, 6, 21)).unwrap();
        let cases = [
            (sunrise, exact - TimeDelta::minutes(30), true),
            (
                sunrise,
                exact - TimeDelta::minutes(30) - TimeDelta::seconds(1),
                false,
            ),
            (sunrise, exact + TimeDelta::hours(2), true),
            (
                sunrise,
                exact + TimeDelta::hours(2) + TimeDelta::seconds(1),
                false,
            ),
            (sunrise, local(tz, "2026-06-21 12:00"), false),
            (dusk, local(tz, "2026-06-21 21:00"), false),
            (dusk, local(tz, "2026-06-21 21:30"), true),
            (dusk, local(tz, "2026-06-21 23:59"), true),
            // After midnight: the previous local day's dusk still counts.
            (dusk, local(tz, "2026-06-22 00:30"), true),
            (dusk, local(tz, "2026-06-22 01:05"), true),
            (dusk, local(tz, "2026-06-22 01:15"), false),
        ];
        for (i, (window, time, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                window.contains(time, lat, lon, tz),
                expected,
                "case {i}: {window:?} at {time}"
            );
        }
    }

    /// A timezone a whole day away from the sun's time still finds its events.
    #[test]
    fn far_timezones_find_the_event() {
        let tz = chrono_tz::Pacific::Kiritimati;
        let (lat, lon) = (1.87, -157.4);
        let window = SunWindow {
            event: SunEvent::Sunrise,
            before: Duration::from_secs(600),
            after: Duration::from_secs(600),
        };
        for day in 1..=28 {
            let sunrise = event_time(SunEvent::Sunrise, lat, lon, date(2026, 2, day)).unwrap();
            assert!(window.contains(sunrise, lat, lon, tz), "{sunrise}");
            assert!(
                !window.contains(sunrise + TimeDelta::hours(1), lat, lon, tz),
                "{sunrise}"
            );
        }
    }

    #[test]
    fn window_configs_are_checked() {
        let config = |before: u64, after: u64| SunWindowConfig {
            event: SunEvent::Dawn,
            before: HumanDuration(Duration::from_secs(before)),
            after: HumanDuration(Duration::from_secs(after)),
        };
        let cases = [
            (config(1800, 0), Ok(())),
            (config(0, 43_200), Ok(())),
            (config(0, 0), Err("single instant")),
            (config(43_201, 0), Err("at most 12h")),
            (config(0, 50_000), Err("`after`")),
        ];
        for (i, (config, expected)) in cases.into_iter().enumerate() {
            match (config.to_window(3), expected) {
                (Ok(_), Ok(())) => {}
                (Err(message), Err(part)) => assert!(
                    message.contains(part) && message.contains("windows[3] (dawn)"),
                    "case {i}: {message}"
                ),
                (got, expected) => panic!("case {i}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}

//! When scheduled stages run: acoupi's aligned schedule and cron expressions, as pure
//! functions of the clock so they can be tested exhaustively.
//!
//! Aligned schedule (seed `aligned_schedule`): with `every > 0` and `0 <= offset < every`,
//! the slot of instant `t` is `floor((t - offset) / every)` on the Unix clock, so every=10s
//! offset=5s runs at :05, :15, :25... A run is due when the current slot index exceeds the
//! last run's; the wait until the next run is the start of the next slot minus now. A late
//! run fires once, never once per missed slot.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use crate::config::values::CronExpr;

/// The slot index of `t` for an aligned schedule.
pub fn slot(t: DateTime<Utc>, every: Duration, offset: Duration) -> i64 {
    let nanos = t.timestamp_nanos_opt().unwrap_or(i64::MAX) as i128 - offset.as_nanos() as i128;
    nanos.div_euclid(every.as_nanos().max(1) as i128) as i64
}

/// The start of slot `index`.
pub fn slot_start(index: i64, every: Duration, offset: Duration) -> DateTime<Utc> {
    let nanos = index as i128 * every.as_nanos() as i128 + offset.as_nanos() as i128;
    Utc.timestamp_nanos(nanos.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// The start of the first slot after the one holding `now`.
pub fn next_aligned(now: DateTime<Utc>, every: Duration, offset: Duration) -> DateTime<Utc> {
    slot_start(slot(now, every, offset) + 1, every, offset)
}

/// The aligned schedule's state: the slot of the last run.
#[derive(Debug, Clone, Copy)]
pub struct Aligned {
    pub every: Duration,
    pub offset: Duration,
    last_slot: i64,
}

impl Aligned {
    /// A schedule whose first run is at the next slot boundary after `now`.
    pub fn starting_at(now: DateTime<Utc>, every: Duration, offset: Duration) -> Self {
        Aligned {
            every,
            offset,
            last_slot: slot(now, every, offset),
        }
    }

    /// If a run is due at `now`, records it and returns how many slots were skipped
    /// since the last run (0 when on time).
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Option<u64> {
        let current = slot(now, self.every, self.offset);
        (current > self.last_slot).then(|| {
            let skipped = (current - self.last_slot - 1) as u64;
            self.last_slot = current;
            skipped
        })
    }

    /// When the next run is due.
    pub fn next_due(&self) -> DateTime<Utc> {
        slot_start(self.last_slot + 1, self.every, self.offset)
    }
}

/// The next fire time strictly after `now` of a cron expression evaluated in `timezone`.
pub fn next_cron(
    now: DateTime<Utc>,
    cron: &CronExpr,
    timezone: chrono_tz::Tz,
) -> Option<DateTime<Utc>> {
    cron.schedule
        .after(&now.with_timezone(&timezone))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn aligned_runs_fall_on_offset_plus_multiples_of_every() {
        let secs = Duration::from_secs;
        for (every, offset) in [
            (10, 0),
            (10, 5),
            (10, 9),
            (60, 0),
            (60, 59),
            (3600, 1800),
            (7, 3),
            (1, 0),
            (86_400, 3600),
        ] {
            let (every, offset) = (secs(every), secs(offset));
            for start in [0i64, 1, 4, 5, 6, 9, 1_700_000_003, 1_799_999_999] {
                let now = Utc.timestamp_opt(start, 0).unwrap();
                let next = next_aligned(now, every, offset);
                assert!(next > now, "{every:?}/{offset:?} from {now}");
                assert!(next - now <= chrono::Duration::from_std(every).unwrap());
                let since =
                    (next.timestamp() - offset.as_secs() as i64).rem_euclid(every.as_secs() as i64);
                assert_eq!(
                    since, 0,
                    "{next} is not on a slot boundary for {every:?}/{offset:?}"
                );
            }
        }
        // every 10 s offset 5 s: :05, :15, :25.
        let next = next_aligned(
            at("2026-05-01T06:00:07Z"),
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        assert_eq!(next, at("2026-05-01T06:00:15Z"));
        let next = next_aligned(
            at("2026-05-01T06:00:15Z"),
            Duration::from_secs(10),
            Duration::from_secs(5),
        );
        assert_eq!(next, at("2026-05-01T06:00:25Z"));
    }

    #[test]
    fn a_late_run_fires_once_and_reports_the_skipped_slots() {
        let mut schedule = Aligned::starting_at(
            at("2026-05-01T06:00:01Z"),
            Duration::from_secs(10),
            Duration::ZERO,
        );
        assert_eq!(
            schedule.take_due(at("2026-05-01T06:00:09Z")),
            None,
            "not due before the boundary"
        );
        assert_eq!(schedule.next_due(), at("2026-05-01T06:00:10Z"));
        assert_eq!(schedule.take_due(at("2026-05-01T06:00:10Z")), Some(0));
        assert_eq!(
            schedule.take_due(at("2026-05-01T06:00:10.5Z")),
            None,
            "never twice in a slot"
        );
        // A stall until :55: one run for the :50 slot; :20, :30 and :40 are skipped.
        assert_eq!(schedule.take_due(at("2026-05-01T06:00:55Z")), Some(3));
        assert_eq!(schedule.take_due(at("2026-05-01T06:00:56Z")), None);
        assert_eq!(schedule.next_due(), at("2026-05-01T06:01:00Z"));
    }

    #[test]
    fn cron_follows_the_deployment_timezone_across_dst() {
        let daily_six: CronExpr = "0 6 * * *".parse().unwrap();
        let london = chrono_tz::Europe::London;
        // Before the spring change (29 March 2026): 06:00 GMT = 06:00 UTC.
        assert_eq!(
            next_cron(at("2026-03-28T07:00:00Z"), &daily_six, london),
            Some(at("2026-03-29T05:00:00Z"))
        );
        assert_eq!(
            next_cron(at("2026-03-27T07:00:00Z"), &daily_six, london),
            Some(at("2026-03-28T06:00:00Z"))
        );
        // After the autumn change (25 October 2026): back to UTC.
        assert_eq!(
            next_cron(at("2026-10-24T07:00:00Z"), &daily_six, london),
            Some(at("2026-10-25T06:00:00Z"))
        );
        // 01:30 does not exist on the spring-forward day, and happens twice in autumn.
        let half_one: CronExpr = "30 1 * * *".parse().unwrap();
        let spring = next_cron(at("2026-03-28T12:00:00Z"), &half_one, london).unwrap();
        assert_ne!(
            spring,
            at("2026-03-29T00:30:00Z") + chrono::Duration::hours(1),
            "no 01:30 BST on 29 March"
        );
        let autumn_first = next_cron(at("2026-10-24T12:00:00Z"), &half_one, london).unwrap();
        assert_eq!(autumn_first, at("2026-10-25T00:30:00Z"));
        let after = next_cron(autumn_first, &half_one, london).unwrap();
        assert!(after > autumn_first, "no repeat at the same instant");
    }
}

//! The SQL behind Today, Species, Analytics and `/api/v1/species/daily`: detections of
//! one species key counted per species and per local hour / day.
//!
//! Choices where the issue is silent:
//! - A detection's time is its recording's start plus the detection's `start_time`
//!   (the recording's start when the detection has no location).
//! - Its confidence is the species tag's confidence (`tag_confidence`), the detection's
//!   score when the tag has none; `min_confidence` filters on that.
//! - Local days and hours are the deployment's time zone (`[deployment] timezone` of
//!   the pipeline being served, `StateOptions.settings`); UTC when the pages serve a bare
//!   store file (the `deployments` table keeps no time zone). SQL counts per UTC
//!   quarter hour and Rust maps each quarter hour to its local hour: every time zone's
//!   offset is a whole number of quarter hours, so the counts are exact, DST days
//!   included (a repeated hour counts both, a skipped one stays 0).
//! - Names: BirdNET stores a detection's scientific name under `species` and its
//!   English name under a second tag `common_name`; `common_name` is that tag's value
//!   on the same detections, else the species value itself (other models).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use duckdb::Connection;
use serde::Serialize;

use crate::WebError;

/// Microseconds in a quarter hour, SQL's bucket.
const QUARTER_US: i64 = 15 * 60 * 1_000_000;

/// The latest time SQL's recording filter takes (seconds since the epoch, year ~5100).
const MAX_SECONDS: f64 = 1e11;

/// A detection's time in microseconds since the epoch (see the module docs).
const TIME_US: &str = "(epoch_us(f.recording_created_on) \
     + CAST(round(coalesce(f.start_time, 0) * 1000000) AS BIGINT))";

/// A detection's confidence (see the module docs).
const CONFIDENCE: &str = "coalesce(f.tag_confidence, f.detection_score)";

/// The deployment's time zone: the served pipeline's `[deployment] timezone`, UTC for a
/// bare store file.
pub(crate) fn time_zone(state: &crate::AppState) -> Tz {
    state
        .options()
        .settings
        .as_ref()
        .map_or(chrono_tz::UTC, |settings| settings.deployment.timezone)
}

/// Midnight starting `date` in `tz`, in UTC (the first instant of the day when midnight
/// itself does not exist).
pub(crate) fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    for hour in 0..4 {
        if let Some(time) = date
            .and_hms_opt(hour, 0, 0)
            .and_then(|naive| tz.from_local_datetime(&naive).earliest())
        {
            return time.with_timezone(&Utc);
        }
    }
    date.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// `[from, to)` of local `date`, in microseconds since the epoch.
fn day_range(tz: Tz, from: NaiveDate, to: NaiveDate) -> (i64, i64) {
    let end = to.succ_opt().unwrap_or(to);
    (
        day_start(tz, from).timestamp_micros(),
        day_start(tz, end).timestamp_micros(),
    )
}

/// Local time of `us` microseconds since the epoch.
pub(crate) fn local(tz: Tz, us: i64) -> DateTime<Tz> {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap_or_default()
        .with_timezone(&tz)
}

/// Today's date in `tz`.
pub(crate) fn today(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

/// One species' day, the shape of BirdNET-Go's dashboard.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SpeciesDay {
    pub scientific_name: String,
    pub common_name: String,
    pub count: u64,
    pub hourly_counts: [u64; 24],
    /// RFC 3339 in the deployment's time zone.
    pub first_heard: String,
    pub latest_heard: String,
    pub max_confidence: f64,
}

/// A species' detections in one UTC quarter hour.
struct Bucket {
    species: String,
    common: Option<String>,
    quarter: i64,
    count: u64,
    max_confidence: f64,
    first_us: i64,
    last_us: i64,
}

/// Quarter-hour buckets of `key`'s detections with time in `[from_us, to_us)`,
/// confidence ≥ `min_confidence`, and the species value `species` when given.
fn buckets(
    conn: &Connection,
    key: &str,
    from_us: i64,
    to_us: i64,
    min_confidence: f64,
    species: Option<&str>,
) -> Result<Vec<Bucket>, WebError> {
    // The recording filter (a day of slack for long recordings) lets DuckDB skip row
    // groups; the exact filter is on the detection's time.
    let sql = format!(
        "SELECT species, max(common), t // {QUARTER_US} AS quarter, count(*), max(confidence), \
                min(t), max(t) \
         FROM (SELECT f.tag_value AS species, c.value AS common, {TIME_US} AS t, \
                      {CONFIDENCE} AS confidence \
               FROM detections_flat f \
               LEFT JOIN detection_tags c \
                 ON c.detection_id = f.detection_id AND c.key = 'common_name' \
               WHERE f.tag_key = ? \
                 AND f.recording_created_on >= to_timestamp(?::DOUBLE) \
                 AND f.recording_created_on < to_timestamp(?::DOUBLE) \
                 AND {CONFIDENCE} >= ? \
                 AND (?::VARCHAR IS NULL OR f.tag_value = ?::VARCHAR)) \
         WHERE t >= ? AND t < ? \
         GROUP BY species, quarter"
    );
    let mut statement = conn.prepare(&sql)?;
    let slack = 86_400.0;
    let rows = statement.query_map(
        duckdb::params![
            key,
            (from_us as f64 / 1e6 - slack).clamp(0.0, MAX_SECONDS),
            (to_us as f64 / 1e6).clamp(0.0, MAX_SECONDS),
            min_confidence,
            species,
            species,
            from_us,
            to_us
        ],
        |row| {
            Ok(Bucket {
                species: row.get(0)?,
                common: row.get(1)?,
                quarter: row.get(2)?,
                count: row.get::<_, i64>(3)?.max(0) as u64,
                max_confidence: row.get(4)?,
                first_us: row.get(5)?,
                last_us: row.get(6)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// `GET /api/v1/species/daily`: each species heard on local `date`, most detections
/// first.
pub(crate) fn daily(
    conn: &Connection,
    key: &str,
    tz: Tz,
    date: NaiveDate,
    min_confidence: f64,
) -> Result<Vec<SpeciesDay>, WebError> {
    let (from, to) = day_range(tz, date, date);
    struct Acc {
        common: Option<String>,
        count: u64,
        hourly: [u64; 24],
        first: i64,
        last: i64,
        max: f64,
    }
    let mut by_species: BTreeMap<String, Acc> = BTreeMap::new();
    for b in buckets(conn, key, from, to, min_confidence, None)? {
        let hour = local(tz, b.quarter * QUARTER_US).hour() as usize;
        let acc = by_species.entry(b.species).or_insert(Acc {
            common: None,
            count: 0,
            hourly: [0; 24],
            first: i64::MAX,
            last: i64::MIN,
            max: f64::MIN,
        });
        if acc.common.is_none() {
            acc.common = b.common;
        }
        acc.count += b.count;
        acc.hourly[hour.min(23)] += b.count;
        acc.first = acc.first.min(b.first_us);
        acc.last = acc.last.max(b.last_us);
        acc.max = acc.max.max(b.max_confidence);
    }
    let mut days: Vec<SpeciesDay> = by_species
        .into_iter()
        .map(|(species, acc)| SpeciesDay {
            common_name: acc.common.unwrap_or_else(|| species.clone()),
            scientific_name: species,
            count: acc.count,
            hourly_counts: acc.hourly,
            first_heard: local(tz, acc.first).to_rfc3339(),
            latest_heard: local(tz, acc.last).to_rfc3339(),
            max_confidence: acc.max,
        })
        .collect();
    days.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.scientific_name.cmp(&b.scientific_name))
    });
    Ok(days)
}

/// A detection to list with its clip.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Clip {
    pub id: String,
    pub recording_id: String,
    pub species: String,
    pub confidence: f64,
    /// Microseconds since the epoch.
    pub time_us: i64,
    /// Seconds into the recording.
    pub start: f64,
    pub end: f64,
}

/// Detections of `key` (of `species` when given), ordered by `order` (`time` or
/// `confidence`), newest / best first.
pub(crate) fn clips(
    conn: &Connection,
    key: &str,
    species: Option<&str>,
    by_confidence: bool,
    limit: usize,
) -> Result<Vec<Clip>, WebError> {
    let order = if by_confidence {
        "confidence DESC, t DESC"
    } else {
        "t DESC"
    };
    let sql = format!(
        "SELECT CAST(f.detection_id AS VARCHAR), CAST(f.recording_id AS VARCHAR), f.tag_value, \
                {CONFIDENCE} AS confidence, {TIME_US} AS t, coalesce(f.start_time, 0), \
                coalesce(f.end_time, r.duration) \
         FROM detections_flat f JOIN recordings r ON r.id = f.recording_id \
         WHERE f.tag_key = ? AND (?::VARCHAR IS NULL OR f.tag_value = ?::VARCHAR) \
         ORDER BY {order} LIMIT {limit}"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(duckdb::params![key, species, species], |row| {
        Ok(Clip {
            id: row.get(0)?,
            recording_id: row.get(1)?,
            species: row.get(2)?,
            confidence: row.get(3)?,
            time_us: row.get(4)?,
            start: row.get(5)?,
            end: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Species first heard in `[since, now]` and never in `[season_start, since)`, with the
/// time first heard.
pub(crate) fn new_since(
    conn: &Connection,
    key: &str,
    season_start: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<Vec<(String, i64)>, WebError> {
    let sql = format!(
        "SELECT species, min(t) AS first FROM \
           (SELECT f.tag_value AS species, {TIME_US} AS t FROM detections_flat f \
            WHERE f.tag_key = ? AND f.recording_created_on >= to_timestamp(?::DOUBLE)) \
         WHERE t >= ? GROUP BY species HAVING min(t) >= ? ORDER BY first DESC"
    );
    let start = season_start.timestamp_micros();
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(
        duckdb::params![
            key,
            start as f64 / 1e6 - 86_400.0,
            start,
            since.timestamp_micros()
        ],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One species over the whole store.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpeciesActivity {
    pub common_name: Option<String>,
    pub count: u64,
    pub first_us: i64,
    pub last_us: i64,
    /// Detections per local hour of day.
    pub hourly: [u64; 24],
    /// Detections per local date and hour.
    pub by_day: BTreeMap<NaiveDate, [u64; 24]>,
}

/// Everything Species and Analytics draw for `species`; `None` when it was never heard.
pub(crate) fn activity(
    conn: &Connection,
    key: &str,
    tz: Tz,
    species: &str,
) -> Result<Option<SpeciesActivity>, WebError> {
    let buckets = buckets(
        conn,
        key,
        i64::MIN / 4,
        i64::MAX / 4,
        f64::MIN,
        Some(species),
    )?;
    if buckets.is_empty() {
        return Ok(None);
    }
    let mut activity = SpeciesActivity {
        first_us: i64::MAX,
        last_us: i64::MIN,
        ..SpeciesActivity::default()
    };
    for b in buckets {
        let time = local(tz, b.quarter * QUARTER_US);
        let hour = (time.hour() as usize).min(23);
        if activity.common_name.is_none() {
            activity.common_name = b.common;
        }
        activity.count += b.count;
        activity.hourly[hour] += b.count;
        activity.by_day.entry(time.date_naive()).or_insert([0; 24])[hour] += b.count;
        activity.first_us = activity.first_us.min(b.first_us);
        activity.last_us = activity.last_us.max(b.last_us);
    }
    Ok(Some(activity))
}

/// Every species of `key` with its detection count, most first.
pub(crate) fn species_counts(conn: &Connection, key: &str) -> Result<Vec<(String, u64)>, WebError> {
    let mut statement = conn.prepare(
        "SELECT tag_value, count(*) AS n FROM detections_flat WHERE tag_key = ? \
         GROUP BY tag_value ORDER BY n DESC, tag_value",
    )?;
    let rows = statement.query_map([key], |row| {
        Ok((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The species accumulation curve: for each local date a species was first heard, the
/// distinct species heard up to and including it.
pub(crate) fn accumulation(
    conn: &Connection,
    key: &str,
    tz: Tz,
) -> Result<Vec<(NaiveDate, u64)>, WebError> {
    let sql = format!(
        "SELECT min({TIME_US}) FROM detections_flat f WHERE f.tag_key = ? GROUP BY f.tag_value"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map([key], |row| row.get::<_, i64>(0))?;
    let mut firsts: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    for first in rows {
        *firsts.entry(local(tz, first?).date_naive()).or_default() += 1;
    }
    let mut total = 0;
    Ok(firsts
        .into_iter()
        .map(|(date, new)| {
            total += new;
            (date, total)
        })
        .collect())
}

/// Review verdicts of `species`' detections and their counts; empty while the store has
/// no reviews (`detections_flat.review_verdict` comes with the `reviews` table).
pub(crate) fn review_counts(
    conn: &Connection,
    key: &str,
    species: &str,
) -> Result<Vec<(String, u64)>, WebError> {
    let has_column: i64 = conn.query_row(
        "SELECT count(*) FROM information_schema.columns \
         WHERE table_name = 'detections_flat' AND column_name = 'review_verdict'",
        [],
        |row| row.get(0),
    )?;
    if has_column == 0 {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare(
        "SELECT coalesce(CAST(review_verdict AS VARCHAR), 'unreviewed') AS verdict, count(*) \
         FROM detections_flat WHERE tag_key = ? AND tag_value = ? \
         GROUP BY verdict ORDER BY verdict",
    )?;
    let rows = statement.query_map([key, species], |row| {
        Ok((row.get(0)?, row.get::<_, i64>(1)?.max(0) as u64))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A season: the meteorological season (Mar–May, Jun–Aug, Sep–Nov, Dec–Feb) holding
/// `date`, as its first day.
pub(crate) fn season_start(date: NaiveDate) -> NaiveDate {
    use chrono::Datelike;
    let (year, month) = match date.month() {
        1 | 2 => (date.year() - 1, 12),
        12 => (date.year(), 12),
        m => (date.year(), m - (m - 3) % 3),
    };
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(date)
}

/// Days within which a species first heard this season counts as new.
pub(crate) const NEW_DAYS: i64 = 7;

/// Start of the "new this season" window for local `date`.
pub(crate) fn new_window(tz: Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let season = day_start(tz, season_start(date));
    let since = day_start(tz, date - Duration::days(NEW_DAYS - 1));
    (season, since.max(season))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasons_start_on_the_first_of_march_june_september_december() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(season_start(d(2026, 1, 15)), d(2025, 12, 1));
        assert_eq!(season_start(d(2026, 3, 1)), d(2026, 3, 1));
        assert_eq!(season_start(d(2026, 5, 31)), d(2026, 3, 1));
        assert_eq!(season_start(d(2026, 8, 2)), d(2026, 6, 1));
        assert_eq!(season_start(d(2026, 11, 30)), d(2026, 9, 1));
        assert_eq!(season_start(d(2026, 12, 24)), d(2026, 12, 1));
    }
}

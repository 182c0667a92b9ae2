//! When an archived file was recorded, and where that came from. Sources, first that
//! answers wins:
//!
//! 1. `--time-format` (a chrono strftime pattern such as `SITE_%Y-%m-%d_%H-%M-%S`),
//!    matched anywhere in the file name; with `%z`/`%:z` the offset is read, otherwise
//!    the time is local to the deployment's timezone;
//! 2. the GUANO `Timestamp` (with its offset; without one, local to the deployment's
//!    timezone), as bat detectors and acoupi's own recordings write it;
//! 3. the AudioMoth comment in the WAV's `ICMT` chunk: "Recorded at 05:30:00 21/06/2026
//!    (UTC+1) by AudioMoth ..." (offset from the comment; `(UTC)` or `(UTC-5)` or
//!    `(UTC+5:30)`);
//! 4. `YYYYMMDD_HHMMSS` (or `YYYYMMDDTHHMMSS`) in the file name, as AudioMoth,
//!    Song Meter and most recorders name files, local to the deployment's timezone;
//! 5. the file's modification time.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Where a recording time came from (kept in `reprocessed_files.time_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSource {
    TimeFormat,
    Guano,
    AudioMothComment,
    FileName,
    Mtime,
}

impl TimeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::TimeFormat => "time_format",
            TimeSource::Guano => "guano",
            TimeSource::AudioMothComment => "audiomoth_comment",
            TimeSource::FileName => "file_name",
            TimeSource::Mtime => "mtime",
        }
    }
}

/// What a file offers for dating it.
#[derive(Debug, Clone, Copy)]
pub struct TimeHints<'a> {
    /// The file name (without folders).
    pub file_name: &'a str,
    /// The WAV comment (`ICMT`), if any.
    pub comment: Option<&'a str>,
    /// The GUANO metadata, if any.
    pub guano: Option<&'a crate::guano::Guano>,
    pub mtime: DateTime<Utc>,
}

/// The recording time of a file and its source (see the module docs).
pub fn recorded_at(
    hints: TimeHints<'_>,
    time_format: Option<&str>,
    timezone: Tz,
) -> (DateTime<Utc>, TimeSource) {
    if let Some(time) =
        time_format.and_then(|format| from_pattern(hints.file_name, format, timezone))
    {
        return (time, TimeSource::TimeFormat);
    }
    if let Some(time) = hints.guano.and_then(|g| g.timestamp(timezone)) {
        return (time, TimeSource::Guano);
    }
    if let Some(time) = hints.comment.and_then(from_audiomoth_comment) {
        return (time, TimeSource::AudioMothComment);
    }
    if let Some(time) = from_file_name(hints.file_name, timezone) {
        return (time, TimeSource::FileName);
    }
    (hints.mtime, TimeSource::Mtime)
}

/// A local time in `timezone`; in a DST fold the earlier instant, in a gap none.
fn local(naive: NaiveDateTime, timezone: Tz) -> Option<DateTime<Utc>> {
    timezone
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// A user pattern matched at the first position of `name` where it parses.
pub fn from_pattern(name: &str, format: &str, timezone: Tz) -> Option<DateTime<Utc>> {
    name.char_indices()
        .map(|(i, _)| &name[i..])
        .find_map(|rest| {
            if let Ok((time, _)) = DateTime::<FixedOffset>::parse_and_remainder(rest, format) {
                return Some(time.with_timezone(&Utc));
            }
            NaiveDateTime::parse_and_remainder(rest, format)
                .ok()
                .and_then(|(naive, _)| local(naive, timezone))
        })
}

/// `YYYYMMDD_HHMMSS` or `YYYYMMDDTHHMMSS`, not part of a longer run of digits.
pub fn from_file_name(name: &str, timezone: Tz) -> Option<DateTime<Utc>> {
    let bytes = name.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    (0..bytes.len().saturating_sub(14)).find_map(|i| {
        let end = i + 15;
        let shape = digits(i..i + 8) && matches!(bytes[i + 8], b'_' | b'T') && digits(i + 9..end);
        let bounded = (i == 0 || !bytes[i - 1].is_ascii_digit())
            && bytes.get(end).is_none_or(|b| !b.is_ascii_digit());
        if !(shape && bounded) {
            return None;
        }
        let number = |range: std::ops::Range<usize>| name[range].parse::<u32>().ok();
        let date = NaiveDate::from_ymd_opt(
            name[i..i + 4].parse().ok()?,
            number(i + 4..i + 6)?,
            number(i + 6..i + 8)?,
        )?;
        let time = NaiveTime::from_hms_opt(
            number(i + 9..i + 11)?,
            number(i + 11..i + 13)?,
            number(i + 13..end)?,
        )?;
        local(date.and_time(time), timezone)
    })
}

/// "Recorded at HH:MM:SS DD/MM/YYYY (UTC[±H[:MM]])" from an AudioMoth comment.
pub fn from_audiomoth_comment(comment: &str) -> Option<DateTime<Utc>> {
    let rest = &comment[comment.find("Recorded at ")? + "Recorded at ".len()..];
    let mut parts = rest.splitn(3, ' ');
    let time = parts.next()?;
    let date = parts.next()?;
    let zone = parts.next()?.strip_prefix("(UTC")?;
    let zone = &zone[..zone.find(')')?];
    let time = NaiveTime::parse_from_str(time, "%H:%M:%S%.f").ok()?;
    let date = NaiveDate::parse_from_str(date, "%d/%m/%Y").ok()?;
    let offset_seconds = match zone {
        "" => 0,
        signed => {
            let (sign, amount) = match signed.as_bytes().first()? {
                b'+' => (1, &signed[1..]),
                b'-' => (-1, &signed[1..]),
                _ => return None,
            };
            let (hours, minutes) = amount.split_once(':').unwrap_or((amount, "0"));
            let (hours, minutes) = (hours.parse::<i32>().ok()?, minutes.parse::<i32>().ok()?);
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let offset = FixedOffset::east_opt(offset_seconds)?;
    offset
        .from_local_datetime(&date.and_time(time))
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn hints<'a>(file_name: &'a str, comment: Option<&'a str>) -> TimeHints<'a> {
        TimeHints {
            file_name,
            comment,
            guano: None,
            mtime: utc("2030-01-01T00:00:00Z"),
        }
    }

    const LONDON: Tz = chrono_tz::Europe::London;

    #[test]
    fn audiomoth_comments_with_each_kind_of_offset() {
        let at = |c: &str| from_audiomoth_comment(c);
        assert_eq!(
            at(
                "Recorded at 05:30:00 21/06/2026 (UTC+1) by AudioMoth 24F3190361DA5A34 at medium gain while battery was 4.2V."
            ),
            Some(utc("2026-06-21T04:30:00Z"))
        );
        assert_eq!(
            at("Recorded at 21:00:00 24/02/2019 (UTC) by AudioMoth 24526B065AB6F31C"),
            Some(utc("2019-02-24T21:00:00Z"))
        );
        assert_eq!(
            at("Recorded at 01:00:00 01/01/2026 (UTC-5) by AudioMoth"),
            Some(utc("2026-01-01T06:00:00Z"))
        );
        assert_eq!(
            at("Recorded at 12:00:00 01/01/2026 (UTC+5:30) by AudioMoth"),
            Some(utc("2026-01-01T06:30:00Z"))
        );
        assert_eq!(
            at("Recorded at 12:00:00.250 01/01/2026 (UTC) by AudioMoth"),
            Some(utc("2026-01-01T12:00:00.250Z"))
        );
        for bad in [
            "",
            "Recorded at 25:00:00 01/01/2026 (UTC)",
            "Recorded at 12:00:00 31/02/2026 (UTC)",
            "Recorded at 12:00:00 01/01/2026 UTC",
            "hello",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }

    #[test]
    fn file_names_in_the_deployment_timezone() {
        assert_eq!(
            from_file_name("20260621_053000.WAV", LONDON),
            Some(utc("2026-06-21T04:30:00Z"))
        );
        assert_eq!(
            from_file_name("20260121_053000.wav", LONDON),
            Some(utc("2026-01-21T05:30:00Z"))
        );
        assert_eq!(
            from_file_name("SITE-3_20260621T053000_extra.wav", chrono_tz::UTC),
            Some(utc("2026-06-21T05:30:00Z"))
        );
        for bad in [
            "920260621_053000.wav",
            "20260621_0530001.wav",
            "20261321_053000.wav",
            "20260621-053000.wav",
            "x.wav",
            "2026",
        ] {
            assert_eq!(from_file_name(bad, chrono_tz::UTC), None, "{bad}");
        }
        // 01:30 on 29 March 2026 does not exist in London.
        assert_eq!(from_file_name("20260329_013000.wav", LONDON), None);
    }

    #[test]
    fn user_patterns_anywhere_in_the_name_with_or_without_offset() {
        assert_eq!(
            from_pattern(
                "North_2026-06-21_05-30-00.wav",
                "%Y-%m-%d_%H-%M-%S",
                chrono_tz::UTC
            ),
            Some(utc("2026-06-21T05:30:00Z"))
        );
        assert_eq!(
            from_pattern("N_2026-06-21_05-30-00.wav", "N_%Y-%m-%d_%H-%M-%S", LONDON),
            Some(utc("2026-06-21T04:30:00Z"))
        );
        assert_eq!(
            from_pattern(
                "rec 21.06.2026 05h30 +0200.wav",
                "%d.%m.%Y %Hh%M %z",
                LONDON
            ),
            Some(utc("2026-06-21T03:30:00Z"))
        );
        assert_eq!(
            from_pattern("nothing here.wav", "%Y-%m-%d_%H-%M-%S", LONDON),
            None
        );
    }

    #[test]
    fn sources_in_order_and_mtime_last() {
        let comment = Some("Recorded at 05:30:00 21/06/2026 (UTC) by AudioMoth");
        let named = "20250101_000000.wav";
        assert_eq!(
            recorded_at(hints(named, comment), Some("%Y%m%d_%H%M%S"), chrono_tz::UTC),
            (utc("2025-01-01T00:00:00Z"), TimeSource::TimeFormat)
        );
        assert_eq!(
            recorded_at(hints(named, comment), None, chrono_tz::UTC),
            (utc("2026-06-21T05:30:00Z"), TimeSource::AudioMothComment)
        );
        let mut guano = crate::guano::Guano::default();
        guano.set("Timestamp", "2024-05-01T22:00:00-04:00");
        let with_guano = TimeHints {
            guano: Some(&guano),
            ..hints(named, comment)
        };
        assert_eq!(
            recorded_at(with_guano, None, chrono_tz::UTC),
            (utc("2024-05-02T02:00:00Z"), TimeSource::Guano)
        );
        assert_eq!(
            recorded_at(with_guano, Some("%Y%m%d_%H%M%S"), chrono_tz::UTC).1,
            TimeSource::TimeFormat
        );
        assert_eq!(
            recorded_at(
                hints(named, Some("a comment")),
                Some("%d%m"),
                chrono_tz::UTC
            )
            .1,
            TimeSource::FileName
        );
        assert_eq!(
            recorded_at(hints("take 3.wav", None), None, chrono_tz::UTC),
            (utc("2030-01-01T00:00:00Z"), TimeSource::Mtime)
        );
    }
}

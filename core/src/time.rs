//! Time parsing and calendar arithmetic. Times are UTC everywhere; nothing here reads a clock.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};

/// Why a timestamp could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Looks like a date-time but has no `Z` or `±hh:mm` offset.
    #[error("has no UTC offset (add Z or +hh:mm)")]
    NoOffset,
    /// A date without a time of day.
    #[error("is a date without a time")]
    DateOnly,
    /// Not RFC 3339 at all.
    #[error("is not an RFC 3339 date-time")]
    Malformed,
    /// A leap second (`:60`), which the marketplaces do not accept.
    #[error("is a leap second")]
    LeapSecond,
}

/// Parses an RFC 3339 timestamp with an explicit offset and converts it to UTC.
///
/// Strict: `T` or `t` or a space between date and time, as RFC 3339 allows; four-digit
/// years only; no leap seconds; no missing offset.
pub fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, TimeError> {
    if let Some(t) = parse_plain_utc(s) {
        return Ok(t);
    }
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => {
            if t.nanosecond() >= 1_000_000_000 {
                return Err(TimeError::LeapSecond);
            }
            Ok(t.with_timezone(&Utc))
        }
        Err(_) => {
            let b = s.as_bytes();
            let is_date = |b: &[u8]| {
                b.len() == 10
                    && b.iter().enumerate().all(|(i, c)| {
                        if i == 4 || i == 7 {
                            *c == b'-'
                        } else {
                            c.is_ascii_digit()
                        }
                    })
            };
            if is_date(b) {
                Err(TimeError::DateOnly)
            } else if b.len() >= 19 && b.get(..10).is_some_and(is_date) {
                // A date-time that failed: see whether adding an offset would fix it.
                let with_z = format!("{s}Z");
                if DateTime::parse_from_rfc3339(&with_z).is_ok() {
                    Err(TimeError::NoOffset)
                } else if s.get(17..19) == Some("60") {
                    Err(TimeError::LeapSecond)
                } else {
                    Err(TimeError::Malformed)
                }
            } else {
                Err(TimeError::Malformed)
            }
        }
    }
}

/// Formats a UTC time as RFC 3339 with `Z`, seconds precision unless there are fractions.
pub fn format_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Formats a UTC time to whole seconds (`2026-03-01T10:00:00Z`), truncating fractions.
pub fn format_secs(t: DateTime<Utc>) -> String {
    // The common case, a four-digit year and no leap second, digit by digit: chrono's
    // general writer goes through `fmt` and costs about four times as much. The result is
    // the same (see the test `format_secs_matches_chrono`).
    let n = t.naive_utc();
    let year = n.year();
    if !(0..=9999).contains(&year) || n.nanosecond() >= 1_000_000_000 {
        return t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    }
    let mut b = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            if let Some(slot) = b.get_mut(i) {
                *slot = b'0' + (v % 10) as u8;
            }
            v /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, n.month());
    put(8, 2, n.day());
    put(11, 2, n.hour());
    put(14, 2, n.minute());
    put(17, 2, n.second());
    std::str::from_utf8(&b).map_or_else(
        |_| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        str::to_owned,
    )
}

/// The usual shape `YYYY-MM-DDTHH:MM:SSZ`, read without chrono's general parser. `None` for
/// anything else (other shapes, an impossible date, a leap second): [`parse_rfc3339`] then
/// judges it the general way, so both paths accept the same strings with the same result.
fn parse_plain_utc(s: &str) -> Option<DateTime<Utc>> {
    let &[y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0, s1, b'Z'] =
        s.as_bytes()
    else {
        return None;
    };
    let num = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(&[y0, y1, y2, y3])?).ok()?;
    let date = NaiveDate::from_ymd_opt(year, num(&[mo0, mo1])?, num(&[d0, d1])?)?;
    // `and_hms_opt` refuses a second of 60, which the general path names as a leap second.
    let t = date.and_hms_opt(num(&[h0, h1])?, num(&[mi0, mi1])?, num(&[s0, s1])?)?;
    Some(Utc.from_utc_datetime(&t))
}

/// The start of the clock hour that holds `t`.
pub fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    let floored = secs - secs.rem_euclid(3600);
    Utc.timestamp_opt(floored, 0).single().unwrap_or(t)
}

/// `t` rounded up to a whole second (unchanged when it has no fraction), so that a time shown
/// in whole seconds is never earlier than `t`.
pub fn ceil_second(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.nanosecond() == 0 {
        t
    } else {
        add(t.with_nanosecond(0).unwrap_or(t), Duration::seconds(1))
    }
}

/// Midnight UTC on the first day of the month after the one that holds `t`.
pub fn next_month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    month_start(y, m).unwrap_or(t)
}

/// Midnight UTC on the first day of the month that holds `t`.
pub fn this_month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    month_start(t.year(), t.month()).unwrap_or(t)
}

fn month_start(year: i32, month: u32) -> Option<DateTime<Utc>> {
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| Utc.from_utc_datetime(&n))
}

/// `t + d`, saturating at the ends of chrono's range instead of overflowing.
pub fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(if d < Duration::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Formats a duration for people: `5h 59m`, `12m 30s`, `45s`.
pub fn human_duration(d: Duration) -> String {
    let total = d.num_seconds().unsigned_abs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let body = if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    };
    if d < Duration::zero() {
        format!("-{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_secs_matches_chrono() {
        let chrono_secs = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut t = DateTime::from_timestamp(-62_200_000_000, 0).unwrap();
        let end = DateTime::from_timestamp(253_500_000_000, 0).unwrap();
        // Steps of an odd number of seconds (about 11.6 days) walk every field's digits.
        while t < end {
            assert_eq!(format_secs(t), chrono_secs(t));
            let frac = t + Duration::nanoseconds(999_999_999);
            assert_eq!(format_secs(frac), chrono_secs(frac));
            t += Duration::seconds(1_000_003);
        }
        for s in [
            "2026-03-01T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let t = parse_rfc3339(s).unwrap();
            assert_eq!(format_secs(t), s);
        }
    }

    #[test]
    fn offsets_convert_to_utc() {
        let t = parse_rfc3339("2026-03-01T05:30:00+05:30").unwrap();
        assert_eq!(format_rfc3339(t), "2026-03-01T00:00:00Z");
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(
            parse_rfc3339("2026-03-01T05:30:00"),
            Err(TimeError::NoOffset)
        );
        assert_eq!(parse_rfc3339("2026-03-01"), Err(TimeError::DateOnly));
        assert_eq!(
            parse_rfc3339("2026-12-31T23:59:60Z"),
            Err(TimeError::LeapSecond)
        );
        assert_eq!(
            parse_rfc3339("03/01/2026 10:00:00"),
            Err(TimeError::Malformed)
        );
        assert_eq!(
            parse_rfc3339("10000-01-01T00:00:00Z"),
            Err(TimeError::Malformed)
        );
    }

    #[test]
    fn month_edges() {
        let t = parse_rfc3339("2026-12-31T23:00:00Z").unwrap();
        assert_eq!(format_rfc3339(next_month_start(t)), "2027-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(hour_floor(parse_rfc3339("2026-12-31T23:59:59.9Z").unwrap())),
            "2026-12-31T23:00:00Z"
        );
    }

    #[test]
    fn plain_path_agrees_with_chrono() {
        let mut inputs = vec![
            "2026-03-01T10:00:00Z",
            "2024-02-29T23:59:59Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-12-31T23:59:60Z",
            "2026-12-31T24:00:00Z",
            "2026-12-31T23:60:00Z",
            "2026-13-01T00:00:00Z",
            "2026-00-01T00:00:00Z",
            "2026-01-00T00:00:00Z",
            "2026-01-01t00:00:00Z",
            "2026-01-01T00:00:00z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:0aZ",
            "+026-01-01T00:00:00Z",
        ];
        let owned: Vec<String> = (0..400)
            .map(|i| {
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                    1999 + i % 30,
                    i % 14,
                    i % 33,
                    i % 26,
                    (i * 7) % 61,
                    (i * 13) % 62
                )
            })
            .collect();
        inputs.extend(owned.iter().map(String::as_str));
        for s in inputs {
            let general = DateTime::parse_from_rfc3339(s)
                .ok()
                .filter(|t| t.nanosecond() < 1_000_000_000)
                .map(|t| t.with_timezone(&Utc));
            if let Some(t) = parse_plain_utc(s) {
                assert_eq!(Some(t), general, "{s}");
            }
            assert_eq!(parse_rfc3339(s).ok(), general, "{s}");
        }
    }
}

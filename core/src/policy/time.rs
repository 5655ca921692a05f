//! The `Time` and `Duration` types that policies see.
//!
//! A script never sees the real clock: every time comes from the record, from `ctx.now` (the
//! validation's "now", an argument of the core) or from the script's own `time(..)` /
//! `time_at(..)` calls.
//!
//! A `Time` is an instant plus the UTC offset it is viewed in. Times from the record and
//! `ctx.now` are viewed in UTC; `time("..+05:30")`, `time_at(.., "+05:30")` and
//! `t.in_offset("+05:30")` view it in that offset. The calendar getters (`year`, `day`,
//! `hour`, ..., `days_in_month()`, `end_of_month()`) read the time in its offset; comparisons
//! and differences are by instant, whatever the offsets.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Timelike, Utc,
};
use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, Position, INT};

use crate::time::{format_rfc3339, human_duration, parse_rfc3339};

/// An instant, viewed in a UTC offset. Named `Time` in scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Time(pub(crate) DateTime<FixedOffset>);

/// A signed length of time. Named `Duration` in scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Span(pub(crate) Duration);

type Res<T> = Result<T, Box<EvalAltResult>>;

/// A runtime error raised by a helper.
pub(crate) fn script_error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

impl Time {
    /// A UTC time.
    pub(crate) fn utc(t: DateTime<Utc>) -> Time {
        Time(t.fixed_offset())
    }

    fn offset(self) -> FixedOffset {
        *self.0.offset()
    }

    /// Local midnight on the first day of the month `months_ahead` after this one (0 = this).
    fn month_start(self, months_ahead: u32) -> Res<Time> {
        let (mut y, mut m) = (self.0.year(), self.0.month());
        for _ in 0..months_ahead {
            if m == 12 {
                y += 1;
                m = 1;
            } else {
                m += 1;
            }
        }
        local(self.offset(), y, m, 1, 0, 0, 0)
    }

    fn to_text(self) -> String {
        if self.offset().local_minus_utc() == 0 {
            format_rfc3339(self.0.with_timezone(&Utc))
        } else {
            self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        }
    }
}

/// Parses a UTC offset: `Z`, `UTC` or `±hh:mm` (hours up to 23, minutes up to 59).
pub(crate) fn parse_offset(s: &str) -> Option<FixedOffset> {
    if s == "Z" || s == "z" || s == "UTC" {
        return FixedOffset::east_opt(0);
    }
    let [sign, h1, h2, b':', m1, m2] = *s.as_bytes() else {
        return None;
    };
    let digit = |c: u8| c.is_ascii_digit().then(|| i32::from(c - b'0'));
    let (h, m) = (digit(h1)? * 10 + digit(h2)?, digit(m1)? * 10 + digit(m2)?);
    if h > 23 || m > 59 {
        return None;
    }
    let secs = h * 3600 + m * 60;
    match sign {
        b'+' => FixedOffset::east_opt(secs),
        b'-' => FixedOffset::west_opt(secs),
        _ => None,
    }
}

fn offset_arg(s: &str) -> Res<FixedOffset> {
    parse_offset(s).ok_or_else(|| {
        script_error(format!(
            "{s:?} is not a UTC offset like \"+05:30\", \"-08:00\" or \"Z\""
        ))
    })
}

fn local(off: FixedOffset, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Res<Time> {
    NaiveDate::from_ymd_opt(y, mo, d)
        .and_then(|date| date.and_hms_opt(h, mi, s))
        .and_then(|naive| off.from_local_datetime(&naive).single())
        .map(Time)
        .ok_or_else(|| {
            script_error(format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} is not a valid date and time"
            ))
        })
}

fn time_at(y: INT, mo: INT, d: INT, h: INT, mi: INT, s: INT, off: &str) -> Res<Time> {
    let off = offset_arg(off)?;
    let small = |v: INT| u32::try_from(v).ok();
    match (
        i32::try_from(y).ok().filter(|y| (1..=9999).contains(y)),
        small(mo),
        small(d),
        small(h),
        small(mi),
        small(s),
    ) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => local(off, y, mo, d, h, mi, s),
        _ => Err(script_error(format!(
            "time_at({y}, {mo}, {d}, {h}, {mi}, {s}) is not a valid date and time"
        ))),
    }
}

fn parse_time(s: &str) -> Res<Time> {
    // parse_rfc3339 is the core's strict reader; chrono's keeps the offset it was written in.
    match parse_rfc3339(s) {
        Ok(utc) => Ok(DateTime::parse_from_rfc3339(s)
            .map(Time)
            .unwrap_or(Time::utc(utc))),
        Err(e) => Err(script_error(format!("time({s:?}): {e}"))),
    }
}

fn span(n: INT, unit: &str, make: fn(i64) -> Option<Duration>) -> Res<Span> {
    make(n)
        .map(Span)
        .ok_or_else(|| script_error(format!("{unit}({n}) is out of range")))
}

fn shift(t: Time, d: Duration) -> Res<Time> {
    t.0.checked_add_signed(d)
        .map(Time)
        .ok_or_else(|| script_error("time arithmetic out of range"))
}

/// Registers `Time`, `Duration` and their functions.
pub(crate) fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<Time>("Time")
        .register_type_with_name::<Span>("Duration");

    // Constructors.
    engine
        .register_fn("time", |s: &str| parse_time(s))
        .register_fn("time_at", |y: INT, mo: INT, d: INT, h: INT, mi: INT| {
            time_at(y, mo, d, h, mi, 0, "Z")
        })
        .register_fn(
            "time_at",
            |y: INT, mo: INT, d: INT, h: INT, mi: INT, off: &str| time_at(y, mo, d, h, mi, 0, off),
        )
        .register_fn(
            "time_at",
            |y: INT, mo: INT, d: INT, h: INT, mi: INT, s: INT, off: &str| {
                time_at(y, mo, d, h, mi, s, off)
            },
        )
        .register_fn("days", |n: INT| span(n, "days", Duration::try_days))
        .register_fn("hours", |n: INT| span(n, "hours", Duration::try_hours))
        .register_fn("minutes", |n: INT| {
            span(n, "minutes", Duration::try_minutes)
        })
        .register_fn("seconds", |n: INT| {
            span(n, "seconds", Duration::try_seconds)
        });

    // Calendar fields, read in the time's own offset.
    engine
        .register_get("year", |t: &mut Time| INT::from(t.0.year()))
        .register_get("month", |t: &mut Time| INT::from(t.0.month()))
        .register_get("day", |t: &mut Time| INT::from(t.0.day()))
        .register_get("hour", |t: &mut Time| INT::from(t.0.hour()))
        .register_get("minute", |t: &mut Time| INT::from(t.0.minute()))
        .register_get("second", |t: &mut Time| INT::from(t.0.second()))
        .register_get("weekday", |t: &mut Time| {
            INT::from(t.0.weekday().number_from_monday())
        })
        .register_get("unix", |t: &mut Time| t.0.timestamp())
        .register_get("offset", |t: &mut Time| {
            let secs = t.offset().local_minus_utc();
            let (sign, abs) = if secs < 0 { ('-', -secs) } else { ('+', secs) };
            ImmutableString::from(format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60))
        });

    // Views and calendar helpers.
    engine
        .register_fn("in_offset", |t: &mut Time, off: &str| {
            Ok::<_, Box<EvalAltResult>>(Time(t.0.with_timezone(&offset_arg(off)?)))
        })
        .register_fn("to_utc", |t: &mut Time| Time::utc(t.0.with_timezone(&Utc)))
        .register_fn("days_in_month", |t: &mut Time| -> Res<INT> {
            let (start, next) = (t.month_start(0)?, t.month_start(1)?);
            Ok(next
                .0
                .date_naive()
                .signed_duration_since(start.0.date_naive())
                .num_days())
        })
        .register_fn("start_of_month", |t: &mut Time| t.month_start(0))
        .register_fn("end_of_month", |t: &mut Time| t.month_start(1))
        .register_fn("start_of_day", |t: &mut Time| {
            local(t.offset(), t.0.year(), t.0.month(), t.0.day(), 0, 0, 0)
        })
        .register_fn("to_string", |t: &mut Time| t.to_text())
        .register_fn("to_debug", |t: &mut Time| t.to_text());

    // Arithmetic and comparisons. Times compare by instant, whatever their offsets.
    engine
        .register_fn("+", |t: Time, d: Span| shift(t, d.0))
        .register_fn("+", |d: Span, t: Time| shift(t, d.0))
        .register_fn("-", |t: Time, d: Span| shift(t, -d.0))
        .register_fn("-", |a: Time, b: Time| Span(a.0.signed_duration_since(b.0)))
        .register_fn("==", |a: Time, b: Time| a.0 == b.0)
        .register_fn("!=", |a: Time, b: Time| a.0 != b.0)
        .register_fn("<", |a: Time, b: Time| a.0 < b.0)
        .register_fn("<=", |a: Time, b: Time| a.0 <= b.0)
        .register_fn(">", |a: Time, b: Time| a.0 > b.0)
        .register_fn(">=", |a: Time, b: Time| a.0 >= b.0);

    engine
        .register_fn("+", |a: Span, b: Span| {
            a.0.checked_add(&b.0)
                .map(Span)
                .ok_or_else(|| script_error("duration out of range"))
        })
        .register_fn("-", |a: Span, b: Span| {
            a.0.checked_sub(&b.0)
                .map(Span)
                .ok_or_else(|| script_error("duration out of range"))
        })
        .register_fn("-", |a: Span| Span(-a.0))
        .register_fn("*", |a: Span, n: INT| {
            i32::try_from(n)
                .ok()
                .and_then(|n| a.0.checked_mul(n))
                .map(Span)
                .ok_or_else(|| script_error("duration out of range"))
        })
        .register_fn("abs", |a: Span| Span(a.0.abs()))
        .register_fn("==", |a: Span, b: Span| a == b)
        .register_fn("!=", |a: Span, b: Span| a != b)
        .register_fn("<", |a: Span, b: Span| a < b)
        .register_fn("<=", |a: Span, b: Span| a <= b)
        .register_fn(">", |a: Span, b: Span| a > b)
        .register_fn(">=", |a: Span, b: Span| a >= b)
        .register_get("days", |d: &mut Span| d.0.num_days())
        .register_get("hours", |d: &mut Span| d.0.num_hours())
        .register_get("minutes", |d: &mut Span| d.0.num_minutes())
        .register_get("seconds", |d: &mut Span| d.0.num_seconds())
        .register_fn("to_string", |d: &mut Span| human_duration(d.0))
        .register_fn("to_debug", |d: &mut Span| human_duration(d.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(
            parse_offset("+05:30").map(|o| o.local_minus_utc()),
            Some(19_800)
        );
        assert_eq!(
            parse_offset("-08:00").map(|o| o.local_minus_utc()),
            Some(-28_800)
        );
        assert_eq!(parse_offset("Z").map(|o| o.local_minus_utc()), Some(0));
        assert_eq!(parse_offset("+24:00"), None);
        assert_eq!(parse_offset("05:30"), None);
        assert_eq!(parse_offset("+5:30"), None);
        assert_eq!(parse_offset("+05:3é"), None);
    }
}

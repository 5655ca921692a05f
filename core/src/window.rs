//! Time windows: how far back, how far ahead, and until when a record can still be sent.

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::contract::{Contract, ContractStatus};
use crate::finding::{Code, Finding, Suggestion};
use crate::model::{Marketplace, UsageRecord};
use crate::rules::{aws, azure, gcp};
use crate::settings::{AwsLookback, Settings};
use crate::time::{add, ceil_second, format_secs, human_duration, next_month_start};

/// The last instant at which a record can still be sent (inclusive), and which rule sets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// Last instant (inclusive) at which the marketplace still takes the record.
    #[serde(with = "crate::contract::rfc3339")]
    pub at: DateTime<Utc>,
    /// The rule id that sets it (`aws.lookback`, `aws.post_cancel`, `gcp.lateness`, ...).
    pub rule: String,
    /// False when passing it only earns a warning (Google's one-hour lateness).
    pub hard: bool,
}

/// When the contract stopped taking new usage, if it has (cancelled, ended, or past `ends_at`).
pub fn stop_instant(c: &Contract, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let stop = c.stop_time()?;
    match c.status {
        ContractStatus::Cancelled | ContractStatus::Ended => Some(stop),
        _ if stop <= now => Some(stop),
        _ => None,
    }
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

/// The instant the look-back alone closes for this record (inclusive).
fn lookback_close(rec: &UsageRecord, settings: &Settings) -> Option<(DateTime<Utc>, &'static str)> {
    match rec.marketplace {
        Marketplace::Aws => match settings.aws.lookback {
            // "not accepted 6 hours or more after an event": the last good instant is 1 ns
            // before the 6 hours are up.
            AwsLookback::SixHours => Some((
                add(
                    rec.start_time,
                    secs(aws::LOOKBACK_SECS) - Duration::nanoseconds(1),
                ),
                "aws.lookback",
            )),
            AwsLookback::TwentyFourHours => {
                // "not accepted 24 hours or more after": the last good instant is 1 ns before.
                let day = add(
                    rec.start_time,
                    secs(aws::LOOKBACK_24H_SECS) - Duration::nanoseconds(1),
                );
                let grace = add(
                    next_month_start(rec.start_time),
                    secs(aws::MONTH_END_GRACE_SECS) - Duration::nanoseconds(1),
                );
                Some(if grace < day {
                    (grace, "aws.month_end")
                } else {
                    (day, "aws.lookback")
                })
            }
        },
        // `effectiveStartTime` is the record's own time (see `azure::LOOKBACK_SECS`).
        Marketplace::Azure => Some((
            add(rec.start_time, secs(azure::LOOKBACK_SECS)),
            "azure.lookback",
        )),
        Marketplace::Gcp => None,
    }
}

/// The last instant this record can still be sent, given its contract (if known). A hard
/// deadline (look-back, month-end grace, post-cancel window) always wins; Google's soft
/// one-hour lateness (`hard: false`) is given only when no hard deadline applies.
pub fn deadline(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Deadline {
    let (at, rule, hard) = deadline_of(rec, contract, settings, now, true);
    Deadline {
        at,
        rule: rule.into(),
        hard,
    }
}

/// The last instant before the record becomes out of bounds (hard deadlines only: look-back,
/// month-end grace, post-cancel window). `None` when nothing ever closes it.
pub fn hard_deadline(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Option<Deadline> {
    hard_deadline_of(rec, contract, settings, now).map(|(at, rule)| Deadline {
        at,
        rule: rule.into(),
        hard: true,
    })
}

/// [`hard_deadline`] without building its text: (instant, rule).
fn hard_deadline_of(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, &'static str)> {
    let (at, rule, _) = deadline_of(rec, contract, settings, now, false);
    (at != DateTime::<Utc>::MAX_UTC).then_some((at, rule))
}

/// (instant, rule, hard): see [`deadline`].
fn deadline_of(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
    soft: bool,
) -> (DateTime<Utc>, &'static str, bool) {
    let mut best: Option<(DateTime<Utc>, &'static str, bool)> =
        lookback_close(rec, settings).map(|(at, rule)| (at, rule, true));
    let mut consider = |at: DateTime<Utc>, rule: &'static str, hard: bool| {
        if best.is_none_or(|b| at < b.0) {
            best = Some((at, rule, hard));
        }
    };
    if let Some(stop) = contract.and_then(|c| stop_instant(c, now)) {
        match rec.marketplace {
            Marketplace::Aws => consider(
                add(stop, secs(aws::POST_CANCEL_SECS)),
                "aws.post_cancel",
                true,
            ),
            Marketplace::Gcp => consider(
                add(stop, secs(gcp::POST_CANCEL_SECS)),
                "gcp.post_cancel",
                true,
            ),
            Marketplace::Azure => {}
        }
    }
    // A hard deadline wins over a soft one: the soft lateness is shown only when nothing
    // hard ever closes the record, so a record is never listed "soft" past a hard deadline.
    if soft && best.is_none() && rec.marketplace == Marketplace::Gcp {
        let end = rec.end_time.unwrap_or(rec.start_time);
        best = Some((add(end, secs(gcp::LATENESS_SECS)), "gcp.lateness", false));
    }
    best.unwrap_or((DateTime::<Utc>::MAX_UTC, "", false))
}

/// The first whole second at which a record's start is inside the look-back `rule` at `now`.
fn earliest_allowed_start(rule: &str, settings: &Settings, now: DateTime<Utc>) -> DateTime<Utc> {
    let (span, strict) = match rule {
        "aws.lookback" if settings.aws.lookback == AwsLookback::SixHours => {
            (aws::LOOKBACK_SECS, true)
        }
        "aws.lookback" => (aws::LOOKBACK_24H_SECS, true),
        _ => (azure::LOOKBACK_SECS, false),
    };
    // AWS refuses "N hours or more": exactly N hours old is already refused.
    let edge = add(now, -secs(span));
    ceil_second(if strict {
        add(edge, Duration::nanoseconds(1))
    } else {
        edge
    })
}

/// The time rules. Returns true when no time rule failed (so the time-based warnings apply).
pub(crate) fn check_times(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) -> bool {
    let before = out.len();
    let mp = rec.marketplace;
    let start = rec.start_time;
    // Future and interval.
    match mp {
        Marketplace::Aws | Marketplace::Azure => {
            if start > now {
                out.push(
                    Finding::new(
                        Code::TimestampOutOfBounds,
                        if mp == Marketplace::Aws { "aws.future" } else { "azure.future" },
                        Some("start_time"),
                        format!("start_time {} is in the future (now is {})", format_secs(start), format_secs(now)),
                    )
                    .suggest(
                        format!("the latest allowed start is now, {}; send the record once the usage has happened", format_secs(now)),
                        Suggestion {
                            start_time: Some(now),
                            fallback: "send the record once the usage has happened".into(),
                            ..Suggestion::default()
                        },
                    ),
                );
            }
        }
        Marketplace::Gcp => {
            if let Some(end) = rec.end_time {
                if start >= end {
                    out.push(
                        Finding::new(
                            Code::TimestampOutOfBounds,
                            "gcp.interval",
                            Some("start_time"),
                            format!(
                                "start_time {} is not before end_time {}",
                                format_secs(start),
                                format_secs(end)
                            ),
                        )
                        .hint("Google needs start_time strictly before end_time".into()),
                    );
                }
                let latest = add(now, secs(gcp::MAX_FUTURE_SECS));
                if end > latest {
                    out.push(
                        Finding::new(
                            Code::TimestampOutOfBounds,
                            "gcp.future",
                            Some("end_time"),
                            format!(
                                "end_time {} is more than 5 minutes after now ({})",
                                format_secs(end),
                                format_secs(now)
                            ),
                        )
                        .suggest(
                            format!("end_time may be at most {}", format_secs(latest)),
                            Suggestion {
                                end_time: Some(latest),
                                fallback: "report the interval once it has ended".into(),
                                ..Suggestion::default()
                            },
                        ),
                    );
                }
            }
        }
    }
    // Contract state.
    if let Some(c) = contract {
        let ent = match mp {
            Marketplace::Aws => "aws.entitlement",
            Marketplace::Azure => "azure.entitlement",
            Marketplace::Gcp => "gcp.check",
        };
        match c.status {
            ContractStatus::Pending | ContractStatus::Suspended => out.push(
                Finding::new(
                    Code::CustomerNotEntitled,
                    ent,
                    Some("customer"),
                    format!(
                        "the contract of {} is {}; it cannot receive usage",
                        c.customer,
                        c.status_text()
                    ),
                )
                .hint(if c.status == ContractStatus::Pending {
                    "wait until the subscription is activated, then send".to_owned()
                } else {
                    "hold the usage; it can be sent only if the subscription is reinstated"
                        .to_owned()
                }),
            ),
            _ => {}
        }
        if now < c.starts_at {
            out.push(
                Finding::new(
                    Code::CustomerNotEntitled,
                    ent,
                    Some("customer"),
                    format!(
                        "the contract of {} starts at {}; it has not started yet",
                        c.customer,
                        format_secs(c.starts_at)
                    ),
                )
                .hint(format!("send usage from {} on", format_secs(c.starts_at))),
            );
        } else if start < c.starts_at {
            out.push(
                Finding::new(
                    Code::TimestampOutOfBounds,
                    ent,
                    Some("start_time"),
                    format!(
                        "start_time {} is before the contract's start {}",
                        format_secs(start),
                        format_secs(c.starts_at)
                    ),
                )
                .suggest(
                    format!("earliest allowed start: {}", format_secs(c.starts_at)),
                    Suggestion {
                        start_time: Some(ceil_second(c.starts_at)),
                        fallback: "usage from before the contract started cannot be billed through the marketplace".into(),
                        ..Suggestion::default()
                    },
                ),
            );
        }
        if let Some(stop) = stop_instant(c, now) {
            let rule = match mp {
                Marketplace::Aws => "aws.post_cancel",
                Marketplace::Azure => "azure.post_cancel",
                Marketplace::Gcp => "gcp.post_cancel",
            };
            let what = match (&c.status_word, c.status) {
                (Some(w), _) => format!("ended ({w})"),
                (None, ContractStatus::Cancelled) => "cancelled".to_owned(),
                (None, _) => "ended".to_owned(),
            };
            if start >= stop {
                out.push(
                    Finding::new(
                        Code::TimestampOutOfBounds,
                        rule,
                        Some("start_time"),
                        format!(
                            "start_time {} is at or after the time the contract {what} ({})",
                            format_secs(start),
                            format_secs(stop)
                        ),
                    )
                    .hint(format!(
                        "only usage dated before {} can be billed",
                        format_secs(stop)
                    )),
                );
            } else if let (Marketplace::Gcp, Some(end)) = (mp, rec.end_time) {
                if end > stop {
                    out.push(
                        Finding::new(
                            Code::TimestampOutOfBounds,
                            rule,
                            Some("end_time"),
                            format!(
                                "end_time {} is after the time the contract {what} ({})",
                                format_secs(end),
                                format_secs(stop)
                            ),
                        )
                        .suggest(
                            format!("end the interval at {} at the latest", format_secs(stop)),
                            Suggestion {
                                end_time: Some(stop),
                                fallback: "only usage dated before the cancellation can be billed"
                                    .into(),
                                ..Suggestion::default()
                            },
                        ),
                    );
                }
            }
            let window = match mp {
                Marketplace::Aws => Some(aws::POST_CANCEL_SECS),
                Marketplace::Gcp => Some(gcp::POST_CANCEL_SECS),
                Marketplace::Azure => None,
            };
            if let Some(w) = window {
                let closes = add(stop, secs(w));
                if now > closes {
                    out.push(
                        Finding::new(
                            Code::CustomerNotEntitled,
                            rule,
                            Some("customer"),
                            format!(
                                "the contract {what} at {}; the window for its last usage closed at {}",
                                format_secs(stop),
                                format_secs(closes)
                            ),
                        )
                        .hint("this usage can no longer be billed through the marketplace; settle it with the buyer directly".into()),
                    );
                }
            }
        }
    }
    // Look-back.
    if let Some((closes, rule)) = lookback_close(rec, settings) {
        if now > closes && start <= now {
            let (message, hint) = if rule == "aws.month_end" {
                (
                    format!(
                        "start_time {} belongs to a month whose grace period ended at {}",
                        format_secs(start),
                        format_secs(add(closes, Duration::nanoseconds(1)))
                    ),
                    None,
                )
            } else {
                let span = match rule {
                    "aws.lookback" if settings.aws.lookback == AwsLookback::SixHours => {
                        aws::LOOKBACK_SECS
                    }
                    "aws.lookback" => aws::LOOKBACK_24H_SECS,
                    _ => azure::LOOKBACK_SECS,
                };
                let earliest = earliest_allowed_start(rule, settings, now);
                (
                    format!(
                        "start_time {} is {} before now; {} accepts {}",
                        format_secs(start),
                        human_duration(now - start),
                        if mp == Marketplace::Aws {
                            "AWS"
                        } else {
                            "Microsoft"
                        },
                        if mp == Marketplace::Aws {
                            format!("less than {}", human_duration(secs(span)))
                        } else {
                            format!("at most {}", human_duration(secs(span)))
                        }
                    ),
                    Some(earliest),
                )
            };
            let f = Finding::new(
                Code::TimestampOutOfBounds,
                rule,
                Some("start_time"),
                message,
            );
            out.push(match hint {
                Some(earliest) => f.suggest(
                    format!("earliest allowed start: {}", format_secs(earliest)),
                    Suggestion {
                        start_time: Some(earliest),
                        fallback: "this usage can no longer be sent; settle it with the buyer directly".into(),
                        ..Suggestion::default()
                    },
                ),
                None => f.hint(
                    "the previous month's usage can no longer be sent; settle it with the buyer directly".into(),
                ),
            });
        }
    }
    !out[before..].iter().any(|f| {
        f.code == Code::TimestampOutOfBounds.as_str()
            || f.code == Code::CustomerNotEntitled.as_str()
    })
}

/// `window-closing`, `late-report` and `month-end-cutoff` warnings for a record whose times passed.
pub(crate) fn time_warnings(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) {
    let margin = settings.warning_margin.0;
    // Only a hard deadline makes the record out of bounds; Google's lateness is its own warning.
    let d = hard_deadline_of(rec, contract, settings, now);
    if rec.marketplace == Marketplace::Gcp {
        if let Some(end) = rec.end_time {
            let late = add(end, secs(gcp::LATENESS_SECS));
            if now > late {
                out.push(
                    Finding::new(
                        Code::LateReport,
                        "gcp.lateness",
                        Some("end_time"),
                        format!(
                            "the usage ended at {}, {} ago; Google asks for reports within 1 hour",
                            format_secs(end),
                            human_duration(now - end)
                        ),
                    )
                    .hint("report usage as it happens, at least hourly".into()),
                );
            }
        }
    }
    if let Some((at, rule)) = d.filter(|(at, _)| now <= *at && add(*at, -margin) <= now) {
        out.push(
            Finding::new(
                Code::WindowClosing,
                rule,
                Some("start_time"),
                format!(
                    "this record can be sent only until {} ({} from now)",
                    format_secs(at),
                    human_duration(at - now)
                ),
            )
            .hint(format!("deadline: {}; send it now", format_secs(at))),
        );
    }
    let cutoff = match rec.marketplace {
        Marketplace::Aws => Some((
            add(
                next_month_start(rec.start_time),
                if settings.aws.lookback == AwsLookback::TwentyFourHours {
                    secs(aws::MONTH_END_GRACE_SECS)
                } else {
                    Duration::zero()
                },
            ),
            "aws.month_end",
        )),
        Marketplace::Gcp => Some((pacific_month_cutoff(rec.start_time), "gcp.month_end")),
        Marketplace::Azure => None,
    };
    if let Some((cutoff, rule)) = cutoff {
        if add(cutoff, -margin) <= now {
            let month = if rec.marketplace == Marketplace::Gcp {
                let (y, m) = pacific_invoice_month(rec.start_time);
                format!("{y:04}-{m:02}")
            } else {
                rec.start_time.format("%Y-%m").to_string()
            };
            let (message, hint) = if now >= cutoff {
                (
                    format!("the invoice cutoff for {month} usage was {}: this record is billed on the next invoice", format_secs(cutoff)),
                    "tell the buyer's account team; the amount moves to next month's invoice".to_owned(),
                )
            } else {
                (
                    format!(
                        "the invoice cutoff for {month} usage is {} ({} from now)",
                        format_secs(cutoff),
                        human_duration(cutoff - now)
                    ),
                    format!("send before {} to bill it this month", format_secs(cutoff)),
                )
            };
            out.push(
                Finding::new(Code::MonthEndCutoff, rule, Some("start_time"), message).hint(hint),
            );
        }
    }
}

/// The invoice month of a Google record: the calendar month (year, month) that holds `t` in
/// America/Los_Angeles.
pub fn pacific_invoice_month(t: DateTime<Utc>) -> (i32, u32) {
    match pacific(t) {
        Some(z) => (i32::from(z.year()), u32::from(z.month().unsigned_abs())),
        None => (t.year(), t.month()),
    }
}

/// Google's invoice cutoff for the usage at `t`: 01:00 America/Los_Angeles on day 1 of the
/// month after `t`'s Pacific month, with the real daylight-saving transitions of the bundled
/// tz database (08:00 UTC in PDT, 09:00 UTC in PST).
pub fn pacific_month_cutoff(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = pacific_invoice_month(t);
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let local = i16::try_from(y).ok().and_then(|y| {
        jiff::civil::Date::new(y, i8::try_from(m).ok()?, 1)
            .ok()?
            .at(i8::try_from(gcp::MONTH_END_LOCAL_HOUR).ok()?, 0, 0, 0)
            .to_zoned(LOS_ANGELES.clone())
            .ok()
    });
    match local {
        Some(z) => {
            let ts = z.timestamp();
            DateTime::<Utc>::from_timestamp(ts.as_second(), 0).unwrap_or(t)
        }
        // Outside jiff's range (years beyond ±9999): the standard-time offset.
        None => add(
            next_month_start(t),
            secs((gcp::MONTH_END_LOCAL_HOUR + 8) * 3600),
        ),
    }
}

/// Google's time zone for invoicing, embedded at build time from the tz database (only this
/// zone, a few hundred bytes).
static LOS_ANGELES: jiff::tz::TimeZone = jiff::tz::get!("America/Los_Angeles");

fn pacific(t: DateTime<Utc>) -> Option<jiff::Zoned> {
    let ts = jiff::Timestamp::from_second(t.timestamp()).ok()?;
    Some(ts.to_zoned(LOS_ANGELES.clone()))
}

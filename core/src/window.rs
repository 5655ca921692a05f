//! Time windows: how far back, how far ahead, and until when a record can still be sent.

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::contract::{Contract, ContractStatus};
use crate::finding::{Code, Finding};
use crate::model::{Marketplace, UsageRecord};
use crate::rules::{aws, azure, gcp};
use crate::settings::{AwsLookback, Settings};
use crate::time::{add, format_secs, hour_floor, human_duration, next_month_start};

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
            AwsLookback::SixHours => Some((
                add(rec.start_time, secs(aws::LOOKBACK_SECS)),
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
        Marketplace::Azure => Some((
            add(hour_floor(rec.start_time), secs(azure::LOOKBACK_SECS)),
            "azure.lookback",
        )),
        Marketplace::Gcp => None,
    }
}

/// The last instant this record can still be sent, given its contract (if known). Includes
/// Google's soft one-hour lateness (`hard: false`) when it comes first.
pub fn deadline(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Deadline {
    deadline_of(rec, contract, settings, now, true)
}

/// The last instant before the record becomes out of bounds (hard deadlines only: look-back,
/// month-end grace, post-cancel window). `None` when nothing ever closes it.
pub fn hard_deadline(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Option<Deadline> {
    let d = deadline_of(rec, contract, settings, now, false);
    (d.at != DateTime::<Utc>::MAX_UTC).then_some(d)
}

fn deadline_of(
    rec: &UsageRecord,
    contract: Option<&Contract>,
    settings: &Settings,
    now: DateTime<Utc>,
    soft: bool,
) -> Deadline {
    let mut best: Option<Deadline> = lookback_close(rec, settings).map(|(at, rule)| Deadline {
        at,
        rule: rule.into(),
        hard: true,
    });
    let mut consider = |at: DateTime<Utc>, rule: &str, hard: bool| {
        if best.as_ref().is_none_or(|b| at < b.at) {
            best = Some(Deadline {
                at,
                rule: rule.into(),
                hard,
            });
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
    if soft && rec.marketplace == Marketplace::Gcp {
        let end = rec.end_time.unwrap_or(rec.start_time);
        consider(add(end, secs(gcp::LATENESS_SECS)), "gcp.lateness", false);
    }
    best.unwrap_or(Deadline {
        at: DateTime::<Utc>::MAX_UTC,
        rule: String::new(),
        hard: false,
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
                    .hint(format!("the latest allowed start is now, {}; send the record once the usage has happened", format_secs(now))),
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
                        .hint(format!("end_time may be at most {}", format_secs(latest))),
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
                .hint(format!(
                    "earliest allowed start: {}",
                    format_secs(c.starts_at)
                )),
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
                        .hint(format!(
                            "end the interval at {} at the latest",
                            format_secs(stop)
                        )),
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
                    "the previous month's usage can no longer be sent; settle it with the buyer directly".to_owned(),
                )
            } else {
                let span = match rule {
                    "aws.lookback" if settings.aws.lookback == AwsLookback::SixHours => {
                        aws::LOOKBACK_SECS
                    }
                    "aws.lookback" => aws::LOOKBACK_24H_SECS,
                    _ => azure::LOOKBACK_SECS,
                };
                let earliest = add(now, -secs(span));
                let sent = if mp == Marketplace::Azure {
                    hour_floor(start)
                } else {
                    start
                };
                (
                    format!(
                        "start_time {} is {} before now; {} accepts at most {}",
                        format_secs(sent),
                        human_duration(now - sent),
                        if mp == Marketplace::Aws {
                            "AWS"
                        } else {
                            "Microsoft"
                        },
                        human_duration(secs(span))
                    ),
                    if mp == Marketplace::Azure {
                        format!(
                            "earliest allowed start: {} (the hour is what Microsoft checks)",
                            format_secs(hour_floor(add(earliest, secs(3599))))
                        )
                    } else {
                        format!("earliest allowed start: {}", format_secs(earliest))
                    },
                )
            };
            out.push(
                Finding::new(
                    Code::TimestampOutOfBounds,
                    rule,
                    Some("start_time"),
                    message,
                )
                .hint(hint),
            );
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
    let d = hard_deadline(rec, contract, settings, now);
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
    if let Some(d) = d.filter(|d| now <= d.at && add(d.at, -margin) <= now) {
        out.push(
            Finding::new(
                Code::WindowClosing,
                &d.rule,
                Some("start_time"),
                format!(
                    "this record can be sent only until {} ({} from now)",
                    format_secs(d.at),
                    human_duration(d.at - now)
                ),
            )
            .hint(format!("deadline: {}; send it now", format_secs(d.at))),
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
            let month = rec.start_time.format("%Y-%m");
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

/// 01:00 US Pacific on day 1 of the month after `t`'s: 08:00 UTC when that day is in daylight
/// time (April through November: DST runs from the second Sunday of March to the first Sunday
/// of November, so day 1 of those months at 01:00 is PDT), else 09:00 UTC.
pub fn pacific_month_cutoff(t: DateTime<Utc>) -> DateTime<Utc> {
    let first = next_month_start(t);
    let offset_hours = if (4..=11).contains(&first.month()) {
        7
    } else {
        8
    };
    add(
        first,
        secs((gcp::MONTH_END_LOCAL_HOUR + offset_hours) * 3600),
    )
}

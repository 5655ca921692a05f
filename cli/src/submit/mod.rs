//! Sending ledger rows to a marketplace: batching (the core's [`plan_batches`]), the call-rate
//! limit, retries with backoff and jitter, and every state transition in the ledger.
//!
//! A marketplace plugs in through [`MarketplaceSender`]: "send this batch, tell me what became
//! of each record". [`aws::AwsSender`] is the AWS one, [`azure::AzureSender`] Microsoft's and
//! [`gcp::GcpSender`] Google's; all three reuse the ledger, the state machine and the retry
//! loop unchanged. [`send_all`] sends rows of every marketplace, each through its own sender.

pub mod aws;
pub mod azure;
pub mod exact;
pub mod gcp;
pub mod retry;
pub mod token;

use std::time::Duration;

use chrono::{DateTime, Utc};
use metergate_core::batch::plan_batches;
use metergate_core::window;
use metergate_core::{Contract, ContractSet, Marketplace, Settings, UsageRecord};

use crate::ledger::{Ledger, LedgerError, LedgerRow, Outcome, Status};
pub use retry::{Backoff, RateLimiter};

/// What became of one record of a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordResult {
    /// An end state (accepted, rejected, duplicate, failed) with the marketplace's answer.
    Done(Outcome),
    /// Not processed this time (AWS `UnprocessedRecords`); send it again.
    Retry {
        /// Why, in words.
        reason: String,
    },
}

/// A call that produced no per-record answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Throttling, a 5xx, a timeout or a broken connection: the whole call is tried again.
    Retryable {
        /// The marketplace's error code (`ThrottlingException`, `HTTP 503`, `timeout`).
        answer: String,
        /// Details.
        reason: String,
    },
    /// The marketplace refused the call as a whole (a 4xx such as `InvalidProductCodeException`
    /// or `TimestampOutOfBoundsException`). Every record in it is rejected; nothing is retried.
    Refused {
        /// The error code.
        answer: String,
        /// Details.
        reason: String,
    },
    /// The marketplace refused the call as a whole because of one or more of its records
    /// (AWS `InvalidUsageDimensionException`, `TimestampOutOfBoundsException`, ...), without
    /// saying which. Nothing in the call was recorded. [`send_rows`] splits the call to find
    /// the records at fault; a call of one record is rejected with this answer.
    RefusedForSome {
        /// The error code.
        answer: String,
        /// Details.
        reason: String,
    },
    /// Nothing can be sent (no credentials, no region, access denied): the run stops and the
    /// rows stay in `sending` for the next `resume`.
    Fatal(String),
}

/// A marketplace's submission API: one call per batch, an answer per record.
pub trait MarketplaceSender {
    /// The marketplace this sender talks to.
    fn marketplace(&self) -> Marketplace;
    /// Calls allowed per second (per account and region).
    fn max_calls_per_second(&self) -> u32;
    /// Sends one batch (one product, within the marketplace's size limits), built only from
    /// each row's stored wire values. Returns one result per row, in the rows' order.
    fn send(&mut self, product: &str, rows: &[LedgerRow]) -> Result<Vec<RecordResult>, CallError>;
}

/// The exact wire values for a record, stored in the ledger before sending. Fails when the
/// record cannot be put on its marketplace's wire (e.g. an Azure customer that is no uuid).
pub fn wire_values(
    rec: &UsageRecord,
    contract: Option<&Contract>,
) -> Result<serde_json::Value, String> {
    match rec.marketplace {
        Marketplace::Aws => aws::wire_values(rec, contract),
        Marketplace::Azure => azure::wire_values(rec, contract),
        Marketplace::Gcp => gcp::wire_values(rec, contract),
    }
}

/// The messages of the core's findings, for a wire builder's refusal.
pub fn findings_text(findings: &[metergate_core::Finding]) -> String {
    findings
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// How to reach each marketplace.
#[derive(Clone, Debug, Default)]
pub struct SendOptions {
    /// AWS (endpoint, region, profile).
    pub aws: aws::AwsOptions,
    /// Microsoft (metering endpoint).
    pub azure: azure::AzureOptions,
    /// Google (Service Control endpoint).
    pub gcp: gcp::GcpOptions,
}

/// The sender of one marketplace. Fails when it cannot be set up (no credentials, ...).
pub fn sender_for(
    m: Marketplace,
    opts: &SendOptions,
) -> Result<Box<dyn MarketplaceSender + Send>, String> {
    Ok(match m {
        Marketplace::Aws => Box::new(aws::AwsSender::new(&opts.aws)?),
        Marketplace::Azure => Box::new(azure::AzureSender::new(&opts.azure)?),
        Marketplace::Gcp => Box::new(gcp::GcpSender::new(&opts.gcp)?),
    })
}

/// Sends rows of every marketplace (AWS, then Microsoft, then Google), each through its own
/// sender and call-rate limit, with [`send_rows`]. A marketplace that cannot be reached (no
/// credentials, a refused token, ...) does not stop the others: its rows stay unfinished in
/// the ledger for `resume`, and the reason comes back in the second value.
pub fn send_all(
    ledger: &mut Ledger,
    rows: Vec<LedgerRow>,
    opts: &SendOptions,
    policy: &RetryPolicy,
    log: &mut dyn FnMut(&str),
) -> Result<(RunStats, Vec<(Marketplace, String)>), LedgerError> {
    let mut total = RunStats::default();
    let mut stopped = Vec::new();
    for m in [Marketplace::Aws, Marketplace::Azure, Marketplace::Gcp] {
        let mine: Vec<LedgerRow> = rows
            .iter()
            .filter(|r| r.marketplace == m)
            .cloned()
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut sender = match sender_for(m, opts) {
            Ok(s) => s,
            Err(e) => {
                stopped.push((m, e));
                continue;
            }
        };
        let mut limiter = RateLimiter::new(sender.max_calls_per_second());
        match send_rows(ledger, sender.as_mut(), mine, policy, &mut limiter, log) {
            Ok(stats) => total.add(&stats),
            Err(SubmitError::Fatal(e)) => stopped.push((m, e)),
            Err(SubmitError::Ledger(e)) => return Err(e),
        }
    }
    Ok((total, stopped))
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The marketplace cannot be reached at all; unsent rows stay in the ledger.
    #[error("{0}; unfinished rows stay in the ledger for `metergate resume`")]
    Fatal(String),
}

/// Retry settings.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Calls per batch before its remaining records are marked `failed`.
    pub max_attempts: u32,
    /// Backoff between attempts.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            backoff: Backoff {
                base: Duration::from_millis(100),
                cap: Duration::from_secs(5),
            },
        }
    }
}

/// Counts of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Rows handed to the sender.
    pub rows: u64,
    /// Calls made.
    pub calls: u64,
    /// Calls that were retried (throttling, 5xx, network).
    pub retried_calls: u64,
    /// Records re-sent because the marketplace left them unprocessed.
    pub unprocessed: u64,
    /// Calls refused because of some of their records, and split in two to find them.
    pub split_calls: u64,
    /// Rows that ended accepted.
    pub accepted: u64,
    /// Rows that ended rejected.
    pub rejected: u64,
    /// Rows that ended duplicate.
    pub duplicate: u64,
    /// Rows that ended failed.
    pub failed: u64,
    /// Rows ended `expired`: their window closed before they could be sent.
    #[serde(default)]
    pub expired: u64,
}

impl RunStats {
    /// Adds another run's counts.
    pub fn add(&mut self, o: &RunStats) {
        self.rows += o.rows;
        self.calls += o.calls;
        self.retried_calls += o.retried_calls;
        self.unprocessed += o.unprocessed;
        self.split_calls += o.split_calls;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.duplicate += o.duplicate;
        self.failed += o.failed;
        self.expired += o.expired;
    }

    fn count(&mut self, s: Status) {
        match s {
            Status::Accepted => self.accepted += 1,
            Status::Rejected => self.rejected += 1,
            Status::Duplicate => self.duplicate += 1,
            Status::Failed => self.failed += 1,
            Status::Expired => self.expired += 1,
            Status::Pending | Status::Sending => {}
        }
    }
}

/// Sends rows: plans the calls with the core's batch planner (one product per call, at most
/// 25 records on AWS), keeps under the marketplace's call rate, and records every transition.
/// `log` receives one line per call for `--verbose`.
///
/// A call refused because of some of its records ([`CallError::RefusedForSome`]) is split in
/// two halves, each sent as its own call (and split again while it is refused), until the
/// records at fault stand alone: those are `rejected` with the marketplace's answer, the
/// others go through. Every record keeps its stored wire values, so a half re-sends exactly
/// what the refused call held; a refused call recorded nothing. With `f` faulty records in a
/// call of `n`, this takes at most `1 + 2·f·⌈log2 n⌉` calls, and never more than `2n − 1`.
pub fn send_rows<S: MarketplaceSender + ?Sized>(
    ledger: &mut Ledger,
    sender: &mut S,
    rows: Vec<LedgerRow>,
    policy: &RetryPolicy,
    limiter: &mut RateLimiter,
    log: &mut dyn FnMut(&str),
) -> Result<RunStats, SubmitError> {
    let mut stats = RunStats::default();
    let rows: Vec<LedgerRow> = rows
        .into_iter()
        .filter(|r| r.marketplace == sender.marketplace() && !r.status.is_final())
        .collect();
    stats.rows = rows.len() as u64;
    let recs: Vec<UsageRecord> = rows.iter().map(LedgerRow::usage_record).collect();
    let batches = plan_batches(&recs);
    let mut slots: Vec<Option<LedgerRow>> = rows.into_iter().map(Some).collect();
    for batch in batches {
        let first: Vec<LedgerRow> = batch
            .records
            .iter()
            .filter_map(|i| slots.get_mut(*i).and_then(Option::take))
            .collect();
        // Chunks still to send; a split pushes its right half, then its left half.
        let mut stack = vec![first];
        while let Some(chunk) = stack.pop() {
            if let Some((left, right)) = send_chunk(
                ledger,
                sender,
                &batch.product,
                chunk,
                policy,
                limiter,
                log,
                &mut stats,
            )? {
                stack.push(right);
                stack.push(left);
            }
        }
    }
    Ok(stats)
}

/// Rejects rows with one answer; returns the ledger's (id, outcome) pairs.
fn reject_all(
    rows: &[LedgerRow],
    answer: &str,
    reason: &str,
    stats: &mut RunStats,
) -> Vec<(i64, Outcome)> {
    rows.iter()
        .map(|r| {
            stats.count(Status::Rejected);
            (
                r.id,
                Outcome {
                    status: Status::Rejected,
                    answer: Some(answer.to_owned()),
                    reason: Some(reason.to_owned()),
                    marketplace_record_id: None,
                },
            )
        })
        .collect()
}

/// The two halves of a chunk refused because of some of its records.
type Halves = (Vec<LedgerRow>, Vec<LedgerRow>);

/// Sends one chunk of a batch until every row in it has an end state, retrying what may be
/// retried. Returns the two halves to send instead when the marketplace refused the chunk
/// because of some of its records.
#[allow(clippy::too_many_arguments)]
fn send_chunk<S: MarketplaceSender + ?Sized>(
    ledger: &mut Ledger,
    sender: &mut S,
    product: &str,
    mut todo: Vec<LedgerRow>,
    policy: &RetryPolicy,
    limiter: &mut RateLimiter,
    log: &mut dyn FnMut(&str),
    stats: &mut RunStats,
) -> Result<Option<Halves>, SubmitError> {
    let mut attempt = 0u32;
    let mut last = (String::new(), String::new());
    while !todo.is_empty() {
        attempt += 1;
        let wanted: Vec<i64> = todo.iter().map(|r| r.id).collect();
        // Only the rows this sender claimed go out: another agent on the same ledger may hold
        // (or have ended) the others.
        let ids = ledger.claim(&wanted)?;
        if ids.len() < wanted.len() {
            log(&format!(
                "product {product}: {} of {} records are held or ended by another sender; leaving them to it",
                wanted.len() - ids.len(),
                wanted.len()
            ));
            todo.retain(|r| ids.contains(&r.id));
            if todo.is_empty() {
                break;
            }
        }
        limiter.acquire();
        stats.calls += 1;
        let started = std::time::Instant::now();
        let answer = sender.send(product, &todo);
        let ms = started.elapsed().as_millis();
        match answer {
            Ok(results) => {
                let mut finals = Vec::new();
                let mut again = Vec::new();
                for (row, res) in todo.into_iter().zip(results) {
                    match res {
                        RecordResult::Done(o) => {
                            stats.count(o.status);
                            finals.push((row.id, o));
                        }
                        RecordResult::Retry { reason } => {
                            stats.unprocessed += 1;
                            last = ("UnprocessedRecords".into(), reason);
                            again.push(row);
                        }
                    }
                }
                log(&format!(
                    "call {}: product {product} attempt {attempt}: {} records, {} done, {} unprocessed ({ms} ms)",
                    stats.calls,
                    ids.len(),
                    finals.len(),
                    again.len()
                ));
                ledger.finish(&finals)?;
                todo = again;
            }
            Err(CallError::Retryable { answer, reason }) => {
                log(&format!(
                    "call {}: product {product} attempt {attempt}: {} records: {answer}: {reason} ({ms} ms); will retry",
                    stats.calls,
                    ids.len()
                ));
                stats.retried_calls += 1;
                last = (answer, reason);
            }
            Err(CallError::RefusedForSome { answer, reason }) if todo.len() > 1 => {
                log(&format!(
                    "call {}: product {product} attempt {attempt}: {} records refused: {answer}: {reason}; splitting the call to find the records at fault",
                    stats.calls,
                    ids.len()
                ));
                stats.split_calls += 1;
                let right = todo.split_off(todo.len() / 2);
                return Ok(Some((todo, right)));
            }
            Err(CallError::RefusedForSome { answer, reason }) => {
                log(&format!(
                    "call {}: product {product} attempt {attempt}: 1 record refused: {answer}: {reason}",
                    stats.calls
                ));
                let finals = reject_all(
                    &todo,
                    &answer,
                    &format!("the marketplace refused a call holding only this record: {reason}"),
                    stats,
                );
                ledger.finish(&finals)?;
                todo = Vec::new();
            }
            Err(CallError::Refused { answer, reason }) => {
                log(&format!(
                    "call {}: product {product} attempt {attempt}: {} records refused: {answer}: {reason}",
                    stats.calls,
                    ids.len()
                ));
                let finals = reject_all(
                    &todo,
                    &answer,
                    &format!("the call was refused: {reason}"),
                    stats,
                );
                ledger.finish(&finals)?;
                todo = Vec::new();
            }
            Err(CallError::Fatal(msg)) => return Err(SubmitError::Fatal(msg)),
        }
        if todo.is_empty() {
            break;
        }
        if attempt >= policy.max_attempts {
            let finals: Vec<(i64, Outcome)> = todo
                .iter()
                .map(|r| {
                    stats.count(Status::Failed);
                    (
                        r.id,
                        Outcome {
                            status: Status::Failed,
                            answer: Some(last.0.clone()),
                            reason: Some(format!(
                                "no definite answer after {attempt} calls (last: {}); submit it again or run `metergate resume --retry-failed`",
                                last.1
                            )),
                            marketplace_record_id: None,
                        },
                    )
                })
                .collect();
            ledger.finish(&finals)?;
            break;
        }
        std::thread::sleep(policy.backoff.delay(attempt));
    }
    Ok(None)
}

/// The deadline of a ledger row: the core's [`window::deadline`] with its contract.
pub fn row_deadline(
    row: &LedgerRow,
    contracts: &ContractSet,
    settings: &Settings,
    now: DateTime<Utc>,
) -> window::Deadline {
    let rec = row.usage_record();
    let c = contracts
        .find(rec.marketplace, &rec.product, &rec.customer)
        .map(|(_, c)| c);
    window::deadline(&rec, c, settings, now)
}

/// The end state of an unfinished row whose hard deadline `d` has passed. A row that never
/// left (`pending`) is `expired`, with the deadline and its rule as the reason; a row that
/// may have been handed to the marketplace (`sending`, or `was_sent`) is `failed`: the
/// marketplace may or may not have recorded the earlier call, and calling it `expired` would
/// claim it was never billed.
pub fn late_outcome(row: &LedgerRow, was_sent: bool, d: &window::Deadline) -> Outcome {
    let when = metergate_core::time::format_rfc3339(d.at);
    if was_sent || row.status == Status::Sending {
        Outcome {
            status: Status::Failed,
            answer: Some("metergate".into()),
            reason: Some(format!(
                "its deadline {when} ({}) passed before it could be sent again; the marketplace may or may not have recorded the earlier call",
                d.rule
            )),
            marketplace_record_id: None,
        }
    } else {
        Outcome {
            status: Status::Expired,
            answer: Some("metergate".into()),
            reason: Some(format!(
                "its deadline {when} ({}) passed before it was sent",
                d.rule
            )),
            marketplace_record_id: None,
        }
    }
}

/// Ends, without sending, the unfinished rows whose deadline has passed: a `pending` row is
/// `expired` (it never left), a `sending` row is `failed` (it may or may not have landed);
/// see [`late_outcome`]. Sending them would only earn a refusal, and on AWS one late
/// timestamp refuses the whole call. Rows another live sender holds
/// ([`Ledger::held_elsewhere`]) are left to it: neither ended nor returned. Returns the rows
/// still worth sending and the number ended.
pub fn expire_late(
    ledger: &mut Ledger,
    rows: Vec<LedgerRow>,
    contracts: &ContractSet,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<(Vec<LedgerRow>, usize), LedgerError> {
    let mut keep = Vec::with_capacity(rows.len());
    let mut ended = Vec::new();
    // Rows another live sender holds are its to send or end.
    for r in ledger.without_held_elsewhere(rows)? {
        let d = row_deadline(&r, contracts, settings, now);
        if d.hard && d.at < now {
            ended.push((r.id, late_outcome(&r, false, &d)));
        } else {
            keep.push(r);
        }
    }
    let n = ended.len();
    ledger.finish(&ended)?;
    Ok((keep, n))
}

//! The one entry point: a [`Validator`] (contracts + settings + compiled policies) and the
//! streaming [`Session`] that judges records in input order. The CLI, the WASM package and the
//! submitter all go through here.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::contract::{Contract, ContractId, ContractSet};
use crate::dedup::{DedupState, Origin, Prior, Seen};
use crate::finding::{Code, Finding, Suggestion};
use crate::model::{Field, Marketplace, RawRecord, UsageRecord};
use crate::parse::parse_record;
use crate::policy::{PolicyContext, PolicyError, PolicySet, PolicySource};
use crate::report::{Report, Summary, Verdict};
use crate::rules;
use crate::settings::Settings;
use crate::time::{add, format_secs, hour_floor};
use crate::window::{self, Deadline};

/// Contracts, settings and compiled policies: everything a verdict depends on besides "now"
/// and the dedup history. Build once, judge many records.
#[derive(Clone)]
pub struct Validator {
    contracts: ContractSet,
    settings: Settings,
    policies: PolicySet,
}

/// A key already submitted, fed from a ledger so that re-sends are caught.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
    /// Dimension as the record gave it.
    pub dimension: String,
    /// The record's start time (its hour is the key on AWS and Azure).
    #[serde(with = "crate::contract::rfc3339")]
    pub start_time: DateTime<Utc>,
    /// Google: the interval's end.
    #[serde(
        default,
        with = "crate::contract::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<DateTime<Utc>>,
    /// The quantity that was sent.
    pub quantity: Decimal,
    /// When it was handed to the marketplace, if it was (for the `duplicate-ignored` hint).
    #[serde(
        default,
        with = "crate::contract::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub sent_at: Option<DateTime<Utc>>,
}

impl Validator {
    /// Compiles the policies and keeps everything for judging.
    pub fn new(
        contracts: ContractSet,
        settings: Settings,
        policies: &[PolicySource],
    ) -> Result<Validator, PolicyError> {
        let policies = PolicySet::compile(policies, &settings.params)?;
        Ok(Validator {
            contracts,
            settings,
            policies,
        })
    }

    /// The contracts.
    pub fn contracts(&self) -> &ContractSet {
        &self.contracts
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Starts a streaming session at `now`, with empty dedup state.
    pub fn session(&self, now: DateTime<Utc>) -> Session<'_> {
        Session {
            v: ValidatorRef::Borrowed(self),
            now,
            dedup: DedupState::new(),
            next_index: 0,
            summary: Summary::default(),
        }
    }

    /// Judges a batch in one session and returns every verdict plus the summary.
    pub fn validate(
        &self,
        records: impl IntoIterator<Item = RawRecord>,
        history: &[HistoryEntry],
        now: DateTime<Utc>,
    ) -> Report {
        let mut s = self.session(now);
        for h in history {
            s.add_history(h);
        }
        let verdicts: Vec<Verdict> = records.into_iter().map(|r| s.check(r)).collect();
        Report {
            verdicts,
            summary: s.into_summary(),
        }
    }

    /// The deadline of one record, or `None` when it does not parse.
    pub fn deadline(&self, raw: RawRecord, now: DateTime<Utc>) -> Option<Deadline> {
        let rec = parse_record(raw).ok()?;
        let c = self
            .contracts
            .find(rec.marketplace, &rec.product, &rec.customer)
            .map(|(_, c)| c);
        Some(window::deadline(&rec, c, &self.settings, now))
    }

    /// The findings and the parsed record, or (when it does not parse) the record's id: the
    /// id is moved, never copied, on the way from the input to the verdict.
    fn judge(
        &self,
        mut raw: RawRecord,
        now: DateTime<Utc>,
        dedup: Option<&mut DedupState>,
    ) -> (Vec<Finding>, Result<UsageRecord, Option<String>>) {
        // The record id is never judged (parse_record only moves it across), so it is taken
        // out first and put back into the parsed record.
        let record_id = raw.record_id.take().and_then(|f| match f {
            Field::Text(s) | Field::Number(s) => Some(s),
            Field::Wrong(_) => None,
        });
        let mut rec = match parse_record(raw) {
            Ok(r) => r,
            Err(findings) => return (findings, Err(record_id)),
        };
        rec.record_id = record_id;
        let mut out = Vec::new();
        let checked = rules::check(&rec, &self.contracts, &self.settings, now, &mut out);
        let key = checked
            .contract
            .zip(checked.dimension)
            .and_then(|((cid, _), d)| self.contracts.series(cid, d).map(|series| (cid, series)));
        // A record whose quantity is already invalid is not compared with what was sent: the
        // comparison (and its "carry the quantity" hint) would be meaningless.
        let quantity_ok = !out.iter().any(|f| f.code == Code::InvalidQuantity.as_str());
        let prior = match (&dedup, key) {
            (Some(state), Some((_, series))) if quantity_ok => state.lookup(
                rec.marketplace,
                series,
                rec.start_time,
                rec.end_time,
                rec.quantity,
            ),
            _ => Prior::None,
        };
        if let Some(f) = dedup_finding(&rec, prior, &self.contracts) {
            out.push(f);
        }
        // No hint may propose a record that the core would reject.
        rules::verify_suggestions(&mut rec, &self.contracts, &self.settings, now, &mut out);
        if checked.times_ok {
            window::time_warnings(
                &rec,
                checked.contract.map(|(_, c)| c),
                &self.settings,
                now,
                &mut out,
            );
        }
        if !self.policies.is_empty() {
            let builtin = out.len();
            let ctx = PolicyContext {
                now,
                contract: checked.contract.map(|(_, c)| c),
                findings: &out[..builtin],
            };
            let mut extra = Vec::new();
            self.policies.run(&rec, &ctx, &mut extra);
            out.extend(extra);
        }
        if let (Some(state), Some((cid, series))) = (dedup, key) {
            if !out.iter().any(Finding::is_error) {
                state.insert(
                    rec.marketplace,
                    series,
                    rec.start_time,
                    rec.end_time,
                    Seen {
                        quantity: rec.quantity,
                        contract: cid,
                        origin: Origin::Input,
                    },
                );
            }
        }
        (out, Ok(rec))
    }
}

/// " (first recorded for customer key X, which has the same identity on the wire)" when the
/// key was set by another contract.
fn other_customer(rec: &UsageRecord, seen: &Seen, contracts: &ContractSet) -> String {
    match contracts.get(seen.contract) {
        Some(c) if c.customer != rec.customer => {
            let id = crate::identity::wire_identity(c)
                .map(|w| w.describe())
                .unwrap_or_else(|_| "identity".into());
            format!(
                " (recorded for customer key {}, which goes on the wire with the same {id})",
                crate::parse::shown(&c.customer)
            )
        }
        _ => String::new(),
    }
}

fn dedup_finding(rec: &UsageRecord, prior: Prior, contracts: &ContractSet) -> Option<Finding> {
    let mut f = dedup_finding_of(rec, prior, contracts)?;
    // Name the other customer key in the hint too, when another contract set the key.
    if let Prior::Same(seen) | Prior::Different(seen) = prior {
        match contracts.get(seen.contract) {
            Some(c) if c.customer != rec.customer => {
                let note = format!(
                    "the key was first used by customer key {}, which has the same identity on the wire",
                    crate::parse::shown(&c.customer)
                );
                f.hint = Some(match f.hint.take() {
                    Some(h) => format!("{note}; {h}"),
                    None => note,
                });
            }
            _ => {}
        }
    }
    Some(f)
}

fn dedup_finding_of(rec: &UsageRecord, prior: Prior, contracts: &ContractSet) -> Option<Finding> {
    // Most records have no prior: nothing below (two times and a key text) is needed then.
    if let Prior::None = prior {
        return None;
    }
    let hour = hour_floor(rec.start_time);
    let next = format_secs(add(hour, chrono::Duration::hours(1)));
    let rule = match rec.marketplace {
        Marketplace::Aws => "aws.dedup",
        Marketplace::Azure => "azure.dedup",
        Marketplace::Gcp => "gcp.dedup",
    };
    let key_text = match rec.marketplace {
        Marketplace::Gcp => format!("this interval of {}", rec.dimension),
        _ => format!("the hour {} of {}", format_secs(hour), rec.dimension),
    };
    // The very record the ledger already holds: re-checking it is not an error.
    if let Prior::Same(
        seen @ Seen {
            origin: Origin::History(sent),
            ..
        },
    ) = prior
    {
        let other = other_customer(rec, &seen, contracts);
        let when = match sent {
            Some(t) => format!("it was sent at {}", format_secs(t)),
            None => "it is in the ledger, not yet answered (`metergate resume` finishes it)".into(),
        };
        return Some(
            Finding::new(
                Code::DuplicateIgnored,
                rule,
                Some("start_time"),
                format!(
                    "{key_text} with quantity {} is already in the ledger{other}; this is the same record",
                    seen.quantity
                ),
            )
            .hint(format!("{when}; nothing is left to do, and it is not sent again")),
        );
    }
    match (rec.marketplace, prior) {
        (_, Prior::None) => None,
        (Marketplace::Aws, Prior::Same(seen)) => Some(
            Finding::new(
                Code::DuplicateIgnored,
                rule,
                Some("start_time"),
                format!("{key_text} already has a record of {}{}; AWS bills it once", seen.quantity, other_customer(rec, &seen, contracts)),
            )
            .hint("drop the repeat; it changes nothing".into()),
        ),
        // A zero from the ledger is a heartbeat: it closed the hour (metergate heartbeat, or
        // the agent's heartbeats after the hour plus a grace).
        (Marketplace::Aws, Prior::Different(seen))
            if seen.quantity.is_zero() && matches!(seen.origin, Origin::History(_)) =>
        {
            Some(
                Finding::new(
                    Code::DuplicateRequest,
                    rule,
                    Some("start_time"),
                    format!(
                        "{key_text} was already closed by a heartbeat (a zero-quantity record in the ledger{}); AWS would keep the zero and drop this {}",
                        other_customer(rec, &seen, contracts),
                        rec.quantity
                    ),
                )
                .suggest(
                    format!(
                        "the hour's heartbeat is already sent: carry {} into the hour {next}",
                        rec.quantity
                    ),
                    carry(rec, hour, "the hour's heartbeat is already sent and no later hour can carry it"),
                ),
            )
        }
        (Marketplace::Aws, Prior::Different(seen)) => Some(
            Finding::new(
                Code::DuplicateRequest,
                rule,
                Some("start_time"),
                format!(
                    "{key_text} already has a record of {}{}; AWS would bill only that and drop this {}",
                    seen.quantity,
                    other_customer(rec, &seen, contracts),
                    rec.quantity
                ),
            )
            .suggest(
                format!(
                    "aggregate the hour into one record (metergate aggregate), or if {} is already sent, carry {} into the hour {next}",
                    seen.quantity, rec.quantity
                ),
                carry(rec, hour, "aggregate the hour into one record before it is sent (metergate aggregate); no later hour can carry it"),
            ),
        ),
        (Marketplace::Azure, Prior::Same(seen) | Prior::Different(seen)) => Some(
            Finding::new(
                Code::DuplicateRequest,
                rule,
                Some("start_time"),
                format!(
                    "{key_text} already has an event of {}{}; Microsoft answers Duplicate and keeps the first",
                    seen.quantity,
                    other_customer(rec, &seen, contracts)
                ),
            )
            .suggest(
                format!("aggregate the hour into one event (metergate aggregate), or carry {} into the hour {next}", rec.quantity),
                carry(rec, hour, "aggregate the hour into one event before it is sent (metergate aggregate); no later hour can carry it"),
            ),
        ),
        (Marketplace::Gcp, Prior::Same(seen)) => Some(
            Finding::new(
                Code::DuplicateIgnored,
                rule,
                Some("start_time"),
                format!("{key_text} was already reported with {}{}; Google deduplicates it by operationId", seen.quantity, other_customer(rec, &seen, contracts)),
            )
            .hint("drop the repeat; it changes nothing".into()),
        ),
        (Marketplace::Gcp, Prior::Different(seen)) => Some(
            Finding::new(
                Code::DuplicateRequest,
                rule,
                Some("start_time"),
                format!(
                    "{key_text} was already reported with {}{}; the same operationId would drop this {}",
                    seen.quantity,
                    other_customer(rec, &seen, contracts),
                    rec.quantity
                ),
            )
            .hint("report the difference in the next interval, or aggregate first (metergate aggregate)".into()),
        ),
        (_, Prior::Overlap(s, e)) => Some(
            Finding::new(
                Code::OverlappingInterval,
                "gcp.overlap",
                Some("start_time"),
                format!("the interval overlaps usage of {} already reported for the same consumer ({} to {})", rec.dimension, format_secs(s), format_secs(e)),
            )
            .suggest(
                format!("chain intervals: start this one at {}", format_secs(e)),
                Suggestion {
                    start_time: Some(e),
                    fallback: "report each stretch of usage once: drop or shorten this interval".into(),
                    ..Suggestion::default()
                },
            ),
        ),
    }
}

/// A session's validator: borrowed, or shared (for a session that must own what it uses,
/// like the WASM package's streaming session).
enum ValidatorRef<'v> {
    Borrowed(&'v Validator),
    Shared(std::sync::Arc<Validator>),
}

impl std::ops::Deref for ValidatorRef<'_> {
    type Target = Validator;
    fn deref(&self) -> &Validator {
        match self {
            ValidatorRef::Borrowed(v) => v,
            ValidatorRef::Shared(v) => v,
        }
    }
}

impl Validator {
    /// Starts a session that holds its own reference to the validator (see
    /// [`Validator::session`]).
    pub fn shared_session(v: std::sync::Arc<Validator>, now: DateTime<Utc>) -> Session<'static> {
        Session {
            v: ValidatorRef::Shared(v),
            now,
            dedup: DedupState::new(),
            next_index: 0,
            summary: Summary::default(),
        }
    }
}

/// The carry that a duplicate's hint proposes: the record's quantity, in the next hour.
fn carry(rec: &UsageRecord, hour: DateTime<Utc>, fallback: &str) -> Suggestion {
    Suggestion {
        quantity: Some(rec.quantity),
        start_time: Some(add(hour, chrono::Duration::hours(1))),
        carry: true,
        fallback: fallback.to_owned(),
        ..Suggestion::default()
    }
}

/// Judges records in input order, keeping dedup state between them. Memory grows with the
/// number of distinct keys, never with the number of records.
pub struct Session<'v> {
    v: ValidatorRef<'v>,
    now: DateTime<Utc>,
    dedup: DedupState,
    next_index: u64,
    summary: Summary,
}

impl Session<'_> {
    /// Feeds one key already submitted (from a ledger). Returns false when the entry names no
    /// known contract or dimension, which cannot collide with any acceptable record, or is a
    /// Google entry without `end_time` (Google keys are intervals).
    pub fn add_history(&mut self, h: &HistoryEntry) -> bool {
        let Some((cid, c)) = self
            .v
            .contracts
            .find(h.marketplace, &h.product, &h.customer)
        else {
            return false;
        };
        let Some(dim) = dimension_index(c, h.marketplace, &h.product, &h.dimension) else {
            return false;
        };
        let Some(series) = self.v.contracts.series(cid, dim) else {
            return false;
        };
        if h.marketplace == Marketplace::Gcp && h.end_time.is_none() {
            // Google keys are intervals: without its end the entry matches nothing.
            return false;
        }
        self.dedup.insert(
            h.marketplace,
            series,
            h.start_time,
            h.end_time,
            Seen {
                quantity: h.quantity,
                contract: cid,
                origin: Origin::History(h.sent_at),
            },
        );
        true
    }

    /// Judges the next record.
    pub fn check(&mut self, raw: RawRecord) -> Verdict {
        let (findings, rec) = self.v.judge(raw, self.now, Some(&mut self.dedup));
        let record_id = rec.map_or_else(|id| id, |r| r.record_id);
        self.verdict(findings, record_id)
    }

    /// Judges the next record and also returns it parsed (`None` when it does not parse), for
    /// callers that go on to send it.
    pub fn check_full(&mut self, raw: RawRecord) -> (Verdict, Option<UsageRecord>) {
        let (findings, rec) = self.v.judge(raw, self.now, Some(&mut self.dedup));
        let (record_id, rec) = match rec {
            Ok(rec) => (rec.record_id.clone(), Some(rec)),
            Err(id) => (id, None),
        };
        (self.verdict(findings, record_id), rec)
    }

    fn verdict(&mut self, findings: Vec<Finding>, record_id: Option<String>) -> Verdict {
        let verdict = Verdict::from_findings(self.next_index, record_id, findings);
        self.next_index += 1;
        self.summary.add(&verdict);
        verdict
    }

    /// The counts so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Ends the session, returning the counts.
    pub fn into_summary(self) -> Summary {
        self.summary
    }

    /// The number of dedup keys held.
    pub fn dedup_keys(&self) -> usize {
        self.dedup.len()
    }

    /// "Now" for this session.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Moves the session's clock to `now`, keeping its dedup state: a long-lived session (the
    /// agent's intake) judges each request at the real clock while remembering every key it
    /// has accepted before.
    pub fn set_now(&mut self, now: DateTime<Utc>) {
        self.now = now;
    }
}

impl Validator {
    /// The dedup finding for an accepted record whose key ([`crate::dedup::key_text`]) a
    /// ledger shared by several senders already holds as `first`, written there by another
    /// sender (another agent or `submit` process) after this one's session was built: the
    /// finding the session would have given had it seen `first` in the history
    /// (`duplicate-request` for another quantity; Microsoft: any quantity), its hint saying
    /// that another sender stored the key first. `None` when `first` is the same record
    /// (same quantity, where the marketplace takes the repeat as one).
    pub fn shared_ledger_duplicate(
        &self,
        rec: &UsageRecord,
        first: &HistoryEntry,
    ) -> Option<Finding> {
        let contract = self
            .contracts
            .find(rec.marketplace, &rec.product, &rec.customer)
            .map_or(ContractId::MAX, |(cid, _)| cid);
        let seen = Seen {
            quantity: first.quantity,
            contract,
            origin: Origin::History(first.sent_at),
        };
        let prior = if first.quantity == rec.quantity {
            Prior::Same(seen)
        } else {
            Prior::Different(seen)
        };
        let mut f = dedup_finding(rec, prior, &self.contracts).filter(Finding::is_error)?;
        let note = format!(
            "another sender sharing this ledger (another agent or submit process) already stored {} for this key",
            first.quantity
        );
        f.hint = Some(match f.hint.take() {
            Some(h) => format!("{note}; {h}"),
            None => note,
        });
        Some(f)
    }

    /// The built-in findings of one parsed record alone (no dedup state, no policies, hints
    /// as written): what a suggestion is judged by. See [`crate::finding::Suggestion`].
    pub fn judge_record(&self, rec: &UsageRecord, now: DateTime<Utc>) -> Vec<Finding> {
        let mut out = Vec::new();
        rules::check(rec, &self.contracts, &self.settings, now, &mut out);
        out
    }

    /// Judges one record alone (no dedup state): for a form validated on every keystroke.
    pub fn check_one(&self, raw: RawRecord, now: DateTime<Utc>) -> Verdict {
        let (findings, rec) = self.judge(raw, now, None);
        let record_id = rec.map_or_else(|id| id, |r| r.record_id);
        Verdict::from_findings(0, record_id, findings)
    }
}

fn dimension_index(c: &Contract, mp: Marketplace, product: &str, dimension: &str) -> Option<usize> {
    match mp {
        Marketplace::Gcp => crate::rules::gcp::resolve_metric(product, dimension, c)
            .ok()
            .map(|m| m.index),
        _ => c.dimension(dimension).map(|(i, _)| i),
    }
}

/// Judges a batch with built-in rules only (no policies).
pub fn validate(
    records: &[RawRecord],
    contracts: &ContractSet,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Report {
    let v = Validator {
        contracts: contracts.clone(),
        settings: settings.clone(),
        policies: PolicySet::default(),
    };
    v.validate(records.iter().cloned(), &[], now)
}

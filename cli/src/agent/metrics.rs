//! `GET /metrics`: what the agent has done and what waits, in the Prometheus text format
//! (version 0.0.4), written with the Prometheus project's own client (`prometheus-client`).
//!
//! Two kinds of series:
//! - **Counters** kept in memory since the process started ([`Counters`], held in the
//!   agent's state): calls and errors per marketplace, rows finished per marketplace and
//!   state, the time of the last successful send, records judged at intake per verdict and
//!   finding code. The send loop feeds them with [`Counters::observe`], the intake with
//!   [`Counters::observe_verdicts`].
//! - **Gauges** read from the ledger at scrape time ([`render`]): rows per marketplace and
//!   state, unsuccessful rows per answer code, the unfinished count, the age of the oldest
//!   unfinished row, and the seconds left until the nearest deadline (the core's
//!   [`metergate_core::window::deadline`]). Each is one grouped SQL query.
//!
//! No label ever holds a customer key, a product, a record id or any other value a seller
//! typed for a customer: labels are the marketplace, the ledger state, the marketplace's
//! answer code and the core's finding code, each cut to a short safe alphabet.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use chrono::{DateTime, Utc};
use metergate_core::{window, ContractSet, Marketplace, Settings, Verdict};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::agent::AgentState;
use crate::ledger::{Ledger, LedgerError, LedgerRow};

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What one tick of the send loop did, as metrics and alerts read it. The send loop builds it
/// from the scheduler's report (`agent::scheduler::TickReport`, in `send_loop::metrics_tick`)
/// and hands it to [`after_tick`] with the loop's ledger.
#[derive(Clone, Debug)]
pub struct Tick<'a> {
    /// Rows that reached a final state in this tick, with their status, answer and reason.
    pub finished: &'a [LedgerRow],
    /// Calls made per marketplace in this tick.
    pub calls: BTreeMap<Marketplace, u64>,
    /// Calls that failed (retried, refused, or could not be made) per marketplace.
    pub errors: BTreeMap<Marketplace, u64>,
    /// Per marketplace, when its last successful call of this tick returned.
    pub last_success: BTreeMap<Marketplace, DateTime<Utc>>,
    /// Hourly sums the core refused when their hour closed (nothing is sent for them).
    pub refused_sums: Vec<RefusedSum>,
    /// When the tick ran.
    pub now: DateTime<Utc>,
}

impl<'a> Tick<'a> {
    /// A tick that finished `finished` at `now`, with no calls counted.
    pub fn new(finished: &'a [LedgerRow], now: DateTime<Utc>) -> Tick<'a> {
        Tick {
            finished,
            calls: BTreeMap::new(),
            errors: BTreeMap::new(),
            last_success: BTreeMap::new(),
            refused_sums: Vec::new(),
            now,
        }
    }
}

/// An hourly sum the core refused when its hour closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedSum {
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
    /// Dimension.
    pub dimension: String,
    /// The hour.
    pub hour: DateTime<Utc>,
    /// The error findings' codes.
    pub codes: Vec<String>,
    /// Why, in words.
    pub reason: String,
}

/// A label of one marketplace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MarketLabel {
    marketplace: String,
}

/// A marketplace and a ledger state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    marketplace: String,
    status: String,
}

/// A marketplace, a ledger state and an answer code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabel {
    marketplace: String,
    status: String,
    answer: String,
}

/// A verdict at intake.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: String,
}

/// A finding code and its severity.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FindingLabel {
    code: String,
    severity: String,
}

/// A label value cut to letters, digits and `_.:-`, at most 64 characters (anything else
/// becomes `_`), so that a label can hold a code but never free text.
pub fn label_value(s: &str) -> String {
    let v: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v
    }
}

fn market(m: &str) -> MarketLabel {
    MarketLabel {
        marketplace: label_value(m),
    }
}

/// The agent's counters since the process started. Cheap to update from any thread; clones
/// share the same values.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    ticks: Counter,
    calls: Family<MarketLabel, Counter>,
    errors: Family<MarketLabel, Counter>,
    finished: Family<StateLabel, Counter>,
    last_success: Family<MarketLabel, Gauge>,
    intake: Family<VerdictLabel, Counter>,
    findings: Family<FindingLabel, Counter>,
}

impl Counters {
    /// Empty counters.
    pub fn new() -> Counters {
        Counters::default()
    }

    /// Counts one tick of the send loop: its calls and errors per marketplace, the rows it
    /// finished per state, and (for rows the marketplace took) the time of the last
    /// successful send.
    pub fn observe(&self, tick: &Tick<'_>) {
        self.ticks.inc();
        for (m, n) in &tick.calls {
            self.calls.get_or_create(&market(m.as_str())).inc_by(*n);
        }
        for (m, n) in &tick.errors {
            self.errors.get_or_create(&market(m.as_str())).inc_by(*n);
        }
        for (m, at) in &tick.last_success {
            let g = self.last_success.get_or_create(&market(m.as_str()));
            if g.get() < at.timestamp() {
                g.set(at.timestamp());
            }
        }
        for r in tick.finished {
            self.finished
                .get_or_create(&StateLabel {
                    marketplace: label_value(r.marketplace.as_str()),
                    status: label_value(r.status.as_str()),
                })
                .inc();
            if matches!(r.status.as_str(), "accepted" | "duplicate") {
                let at = r
                    .finished_at
                    .as_deref()
                    .and_then(|t| metergate_core::time::parse_rfc3339(t).ok())
                    .unwrap_or(tick.now)
                    .timestamp();
                let g = self
                    .last_success
                    .get_or_create(&market(r.marketplace.as_str()));
                if g.get() < at {
                    g.set(at);
                }
            }
        }
    }

    /// Counts records judged at intake: one per verdict, and one per finding code and
    /// severity. The verdicts are counted first and added once per label.
    pub fn observe_verdicts<'v>(&self, verdicts: impl IntoIterator<Item = &'v Verdict>) {
        let (mut accepted, mut rejected) = (0u64, 0u64);
        for v in verdicts {
            if v.accepted() {
                accepted += 1;
            } else {
                rejected += 1;
            }
            self.observe_findings(v);
        }
        for (verdict, n) in [("accepted", accepted), ("rejected", rejected)] {
            if n > 0 {
                self.intake
                    .get_or_create(&VerdictLabel {
                        verdict: verdict.into(),
                    })
                    .inc_by(n);
            }
        }
    }

    /// Counts one record judged at intake (see [`Counters::observe_verdicts`]).
    pub fn observe_verdict(&self, v: &Verdict) {
        self.observe_verdicts(std::iter::once(v));
    }

    fn observe_findings(&self, v: &Verdict) {
        for f in &v.findings {
            self.findings
                .get_or_create(&FindingLabel {
                    code: label_value(&f.code),
                    severity: label_value(f.severity.as_str()),
                })
                .inc();
        }
    }
}

/// What the ledger holds at scrape time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LedgerGauges {
    /// Rows per (marketplace, state).
    pub records: Vec<(String, String, u64)>,
    /// Unsuccessful finished rows per (marketplace, state, answer code).
    pub answers: Vec<(String, String, String, u64)>,
    /// Per marketplace: unfinished rows, and the age in seconds of the oldest.
    pub unfinished: Vec<(String, u64, Option<i64>)>,
    /// Per marketplace: seconds from now until the nearest hard deadline of an unfinished
    /// row (negative once passed).
    pub next_deadline: BTreeMap<String, i64>,
}

impl LedgerGauges {
    /// Reads the gauges: four grouped queries, then one core deadline per contract that has
    /// unfinished rows.
    pub fn read(
        ledger: &Ledger,
        contracts: &ContractSet,
        settings: &Settings,
        now: DateTime<Utc>,
    ) -> Result<LedgerGauges, LedgerError> {
        let unfinished = ledger
            .unfinished_by_marketplace()?
            .into_iter()
            .map(|(m, n, oldest)| (m, n, oldest.map(|t| (now - t).num_seconds().max(0))))
            .collect();
        let mut next_deadline: BTreeMap<String, i64> = BTreeMap::new();
        for row in ledger.earliest_unfinished_per_contract()? {
            let rec = row.usage_record();
            let c = contracts
                .find(rec.marketplace, &rec.product, &rec.customer)
                .map(|(_, c)| c);
            let Some(d) = window::hard_deadline(&rec, c, settings, now) else {
                continue;
            };
            let left = (d.at - now).num_seconds();
            let slot = next_deadline
                .entry(row.marketplace.as_str().to_owned())
                .or_insert(left);
            *slot = (*slot).min(left);
        }
        Ok(LedgerGauges {
            records: ledger.counts_by_marketplace()?,
            answers: ledger.counts_by_answer()?,
            unfinished,
            next_deadline,
        })
    }
}

/// The metrics page: the counters plus the ledger's gauges, in the Prometheus text format.
pub fn render(counters: &Counters, gauges: &LedgerGauges) -> String {
    let mut reg = Registry::with_prefix("metergate");
    reg.register(
        "ticks",
        "Ticks of the send loop since the agent started",
        counters.ticks.clone(),
    );
    reg.register(
        "send_calls",
        "Calls made to each marketplace since the agent started",
        counters.calls.clone(),
    );
    reg.register(
        "send_errors",
        "Calls to each marketplace that failed (retried, refused or not made)",
        counters.errors.clone(),
    );
    reg.register(
        "records_finished",
        "Ledger rows the send loop brought to a final state, per marketplace and state",
        counters.finished.clone(),
    );
    reg.register(
        "last_successful_send_timestamp_seconds",
        "Unix time at which a marketplace last accepted a record from this agent",
        counters.last_success.clone(),
    );
    reg.register(
        "intake_records",
        "Records judged at intake since the agent started, per verdict",
        counters.intake.clone(),
    );
    reg.register(
        "intake_findings",
        "Findings at intake since the agent started, per finding code and severity",
        counters.findings.clone(),
    );

    let records = Family::<StateLabel, Gauge>::default();
    for (m, s, n) in &gauges.records {
        records
            .get_or_create(&StateLabel {
                marketplace: label_value(m),
                status: label_value(s),
            })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    reg.register(
        "ledger_records",
        "Rows in the ledger per marketplace and state",
        records,
    );
    let answers = Family::<AnswerLabel, Gauge>::default();
    for (m, s, a, n) in &gauges.answers {
        answers
            .get_or_create(&AnswerLabel {
                marketplace: label_value(m),
                status: label_value(s),
                answer: label_value(a),
            })
            .inc_by(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    reg.register(
        "ledger_unsuccessful_records",
        "Finished rows that did not go through, per marketplace, state and answer code",
        answers,
    );
    let pending = Family::<MarketLabel, Gauge>::default();
    // Every marketplace has a pending count, 0 included, so that rules on it never see a gap.
    for m in Marketplace::ALL {
        pending.get_or_create(&market(m.as_str())).set(0);
    }
    let oldest = Family::<MarketLabel, Gauge>::default();
    for (m, n, age) in &gauges.unfinished {
        pending
            .get_or_create(&market(m))
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
        if let Some(age) = age {
            oldest.get_or_create(&market(m)).set(*age);
        }
    }
    reg.register(
        "pending_records",
        "Rows still to send (pending or sending) per marketplace",
        pending,
    );
    reg.register(
        "oldest_pending_age_seconds",
        "Seconds since the oldest row still to send was written, per marketplace",
        oldest,
    );
    let deadline = Family::<MarketLabel, Gauge>::default();
    for (m, left) in &gauges.next_deadline {
        deadline.get_or_create(&market(m)).set(*left);
    }
    reg.register(
        "next_deadline_seconds",
        "Seconds until the nearest deadline of a row still to send, per marketplace (negative once passed)",
        deadline,
    );

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &reg);
    out
}

/// `GET /metrics` (open: it names no customer). The ledger is read on a blocking thread with
/// a pooled connection ([`AgentState::with_reader`]).
pub async fn get_metrics(State(state): State<Arc<AgentState>>) -> Response {
    let st = Arc::clone(&state);
    let read = tokio::task::spawn_blocking(move || {
        let v = st.validator();
        st.with_reader(|ledger| LedgerGauges::read(ledger, v.contracts(), v.settings(), Utc::now()))
    })
    .await;
    match read {
        Ok(Ok(gauges)) => (
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            render(&state.metrics, &gauges),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "/metrics: cannot read the ledger");
            crate::agent::http::error(StatusCode::SERVICE_UNAVAILABLE, "the ledger cannot be read")
        }
        Err(e) => {
            tracing::error!(error = %e, "/metrics: the reader failed");
            crate::agent::http::error(StatusCode::INTERNAL_SERVER_ERROR, "the reader failed")
        }
    }
}

/// What the send loop calls after each pass (on its own thread, with its own ledger): the
/// counters, the alerts about the rows it finished, and (at most once a minute) the check
/// for silent contracts. Never blocks on the webhook.
pub fn after_tick(state: &AgentState, ledger: &Ledger, tick: &Tick<'_>) {
    state.metrics.observe(tick);
    state.alerts.on_tick(tick);
    let v = state.validator();
    if let Err(e) = state.alerts.check_silent_at_most_every(
        ledger,
        v.contracts(),
        tick.now,
        chrono::Duration::minutes(1),
    ) {
        tracing::error!(error = %e, "alerts: cannot check for silent contracts");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_hold_codes_only() {
        assert_eq!(
            label_value("CustomerNotSubscribed"),
            "CustomerNotSubscribed"
        );
        assert_eq!(label_value("a b\"c\n"), "a_b_c_");
        assert_eq!(label_value(""), "none");
        assert_eq!(label_value(&"x".repeat(100)).len(), 64);
    }
}

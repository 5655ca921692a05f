//! Cost imports: a billing platform's costs become marketplace usage.
//!
//! Many sellers price usage in a billing platform (Orb, Metronome, m3ter, Stripe) and want the
//! marketplace to charge exactly that amount. For each contract, an importer reads the
//! platform's **total** cost so far ([`orb`]: Orb's REST API; [`costs`]: a CSV/JSON export) and
//! hands it to [`plan`], which applies one rule, the core's [`metergate_core::money`]:
//!
//! * the amount owed is the total less what was already billed, and what was billed is read
//!   from the ledger's own rows: the quantities of the contract's rows from this platform
//!   (`source` `orb:<subscription>` or `costs:<file>:<line>`) in any state but `rejected`,
//!   times the dimension's `price` (a refused row bills nothing, so its amount is owed again;
//!   a `failed` row may still be re-sent by `resume --retry-failed`, so it counts);
//! * the owed amount becomes quantity = amount / price in whole units (and whole multiples of
//!   the dimension's `unit`); the rest is carried into the next hour by simply staying owed;
//! * nothing negative is ever sent: a credit (the total went down) stays owed as a negative
//!   amount that later charges offset;
//! * one record per contract and hour: when the ledger already holds usage of the dimension in
//!   the current hour, nothing is added (the amount waits for the next hour), so running an
//!   import twice in one hour adds nothing.
//!
//! The record (dated `now`) is judged by the core like any `submit` input, with the ledger's
//! dedup history and the seller's policies; an accepted record is written to the ledger as a
//! `pending` row with its wire values. Sending is the caller's: `metergate import` sends at
//! once as `submit` does; `serve` leaves the rows to its sender.
//!
//! Which dimension: the contract's one dimension with a `price`, or the one its property
//! `cost_dimension` names. A contract with none gets an error, not a guess.

pub mod costs;
pub mod orb;

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use metergate_core::contract::{Contract, ContractId, Dimension};
use metergate_core::money::{self, CostSplit};
use metergate_core::time::{add, format_rfc3339, hour_floor};
use metergate_core::{Marketplace, RawRecord, UsageRecord, Validator, VerdictKind};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::ledger::db::Exec;
use crate::ledger::{db_err, Enqueued, Ledger, LedgerError, NewRow};

/// The contract property that names the dimension costs are billed on, when a contract has
/// more than one dimension with a `price`.
pub const COST_DIMENSION_PROPERTY: &str = "cost_dimension";

/// The billing platform an import reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Orb's REST API ([`orb`]).
    Orb,
    /// A generic cost export file ([`costs`]).
    Costs,
}

impl Platform {
    /// The name used in the ledger (`source` prefix, `cost_imports.platform`).
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Orb => "orb",
            Platform::Costs => "costs",
        }
    }
}

/// One contract's total cost as the platform reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct CostReading {
    /// The contract, in the validator's contract set.
    pub contract: ContractId,
    /// The total cost so far (since the import's start), in `currency`.
    pub total: Decimal,
    /// The currency of `total` (ISO 4217).
    pub currency: String,
    /// What the platform calls it: the Orb subscription id, or `file:line` of a cost file's
    /// last row for the contract. Goes into the ledger row's `source`.
    pub reference: String,
}

/// A contract whose cost could not be read (a failed API call, bad rows): nothing is
/// imported for it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadFailure {
    /// The contract.
    pub contract: ContractId,
    /// The Orb subscription id or file name.
    pub reference: String,
    /// Why.
    pub message: String,
}

/// What became of one contract in an import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// A record was written to the ledger (or, in a dry run, would be).
    Imported,
    /// The total is what was already billed: nothing to send.
    NothingNew,
    /// Something is owed but less than one unit of the price: carried to a later hour.
    Carried,
    /// The total went down below what was billed: the credit is kept and offsets later
    /// charges; nothing is sent.
    Credit,
    /// The ledger already holds usage of this dimension in the current hour: the amount waits
    /// for the next hour.
    SameHour,
    /// The core rejected the record (its codes are in `detail`); nothing was written.
    Rejected,
    /// The cost could not be read or used (API error, no priced dimension, currency
    /// mismatch): nothing was imported and the ledger is unchanged for this contract.
    Failed,
}

impl Outcome {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Imported => "imported",
            Outcome::NothingNew => "nothing-new",
            Outcome::Carried => "carried",
            Outcome::Credit => "credit",
            Outcome::SameHour => "same-hour",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }

    /// True for the outcomes that make the command exit 1.
    pub fn is_problem(self) -> bool {
        matches!(self, Outcome::Rejected | Outcome::Failed)
    }
}

/// One contract's line in an [`ImportReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContractImport {
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
    /// The Orb subscription id, or the cost file.
    pub reference: String,
    /// The dimension billed.
    pub dimension: Option<String>,
    /// What happened.
    pub outcome: Outcome,
    /// The platform's total cost so far.
    pub total: Option<Decimal>,
    /// The currency of the amounts.
    pub currency: Option<String>,
    /// What earlier imports billed (from the ledger's rows).
    pub billed_before: Decimal,
    /// The quantity written now.
    pub quantity: Decimal,
    /// The money that quantity bills.
    pub billed_now: Decimal,
    /// What is still owed after this import: below one unit of the price, or negative (a
    /// credit still to offset). `total = billed_before + billed_now + carried`.
    pub carried: Decimal,
    /// Why (errors, finding codes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The ledger row written (not in dry runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_id: Option<i64>,
}

/// What one import did, per contract.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// One line per contract considered, in contract order.
    pub contracts: Vec<ContractImport>,
    /// Ledger rows written (0 in a dry run).
    pub rows_written: usize,
}

impl ImportReport {
    /// True when some contract failed or had its record rejected.
    pub fn has_problems(&self) -> bool {
        self.contracts.iter().any(|c| c.outcome.is_problem())
    }

    /// How many contracts ended with this outcome.
    pub fn count(&self, o: Outcome) -> usize {
        self.contracts.iter().filter(|c| c.outcome == o).count()
    }
}

/// The dimension costs are billed on: the one named by the `cost_dimension` property, else
/// the contract's only dimension with a `price`.
pub fn cost_dimension(c: &Contract) -> Result<&Dimension, String> {
    if let Some(name) = c.properties.get(COST_DIMENSION_PROPERTY) {
        let (_, d) = c.dimension(name).ok_or_else(|| {
            format!("property {COST_DIMENSION_PROPERTY} names {name:?}, which is not one of the contract's dimensions")
        })?;
        if d.price.is_none() {
            return Err(format!(
                "dimension {name:?} (property {COST_DIMENSION_PROPERTY}) has no price; give it one, e.g. \"price\": \"0.01\""
            ));
        }
        return Ok(d);
    }
    let priced: Vec<&Dimension> = c.dimensions.iter().filter(|d| d.price.is_some()).collect();
    match priced.as_slice() {
        [d] => Ok(d),
        [] => Err("no dimension has a price, so a cost cannot become a quantity; give the money dimension one, e.g. {\"name\": \"usage_fee\", \"price\": \"0.01\"}".into()),
        _ => Err(format!(
            "{} dimensions have a price; name the one costs go to in the property {COST_DIMENSION_PROPERTY}",
            priced.len()
        )),
    }
}

/// The `source` prefix of a platform's ledger rows.
fn source_prefix(p: Platform) -> String {
    format!("{}:", p.as_str())
}

/// The quantity this platform's imports already put in the ledger for a contract's
/// dimension: rows in every state but `rejected`, summed exactly.
pub fn imported_quantity(
    ledger: &mut Ledger,
    platform: Platform,
    c: &Contract,
    dimension: &str,
) -> Result<Decimal, LedgerError> {
    let path = ledger.path().to_owned();
    let e = db_err(&path);
    let rows = ledger
        .db()
        .query(
            "SELECT id, quantity FROM records WHERE marketplace = ?1 AND product = ?2 \
             AND customer = ?3 AND dimension = ?4 \
             AND substr(source, 1, length(CAST(?5 AS TEXT))) = ?5 AND status != 'rejected'",
            &[
                &c.marketplace.as_str(),
                &c.product,
                &c.customer,
                &dimension,
                &source_prefix(platform),
            ],
        )
        .map_err(&e)?;
    let mut sum = Decimal::ZERO;
    for row in rows {
        let id: i64 = row.get(0).map_err(&e)?;
        let q: String = row.get(1).map_err(&e)?;
        let q = Decimal::from_str(&q).map_err(|err| LedgerError::Corrupt {
            path: path.clone(),
            id,
            message: format!("quantity {q:?}: {err}"),
        })?;
        sum = sum.checked_add(q).ok_or_else(|| LedgerError::Corrupt {
            path: path.clone(),
            id,
            message: "the imported quantities overflow a decimal".into(),
        })?;
    }
    Ok(sum)
}

/// What a platform last reported for a contract (`cost_imports`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportState {
    /// The Orb subscription id (or file).
    pub reference: Option<String>,
    /// Costs are counted from here.
    pub since: String,
    /// Currency.
    pub currency: Option<String>,
    /// The last total seen.
    pub last_total: Option<String>,
    /// When.
    pub last_at: Option<String>,
}

/// The stored state of a contract's imports from this platform.
pub fn import_state(
    ledger: &mut Ledger,
    platform: Platform,
    c: &Contract,
) -> Result<Option<ImportState>, LedgerError> {
    let path = ledger.path().to_owned();
    let e = db_err(&path);
    let row = ledger
        .db()
        .query_opt(
            "SELECT reference, since, currency, last_total, last_at FROM cost_imports \
             WHERE platform = ?1 AND marketplace = ?2 AND product = ?3 AND customer = ?4",
            &[
                &platform.as_str(),
                &c.marketplace.as_str(),
                &c.product,
                &c.customer,
            ],
        )
        .map_err(&e)?;
    row.map(|r| {
        Ok(ImportState {
            reference: r.get(0)?,
            since: r.get(1)?,
            currency: r.get(2)?,
            last_total: r.get(3)?,
            last_at: r.get(4)?,
        })
    })
    .transpose()
    .map_err(&e)
}

fn save_state(
    ledger: &mut Ledger,
    platform: Platform,
    c: &Contract,
    reading: &CostReading,
    since: &str,
    now: DateTime<Utc>,
) -> Result<(), LedgerError> {
    let path = ledger.path().to_owned();
    ledger
        .db()
        .execute(
            "INSERT INTO cost_imports (platform, marketplace, product, customer, reference, \
             since, currency, last_total, last_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (platform, marketplace, product, customer) DO UPDATE SET \
             reference = excluded.reference, currency = excluded.currency, \
             last_total = excluded.last_total, last_at = excluded.last_at",
            &[
                &platform.as_str(),
                &c.marketplace.as_str(),
                &c.product,
                &c.customer,
                &reading.reference,
                &since,
                &reading.currency,
                &reading.total.normalize().to_string(),
                &format_rfc3339(now),
            ],
        )
        .map(|_| ())
        .map_err(db_err(&path))
}

fn line(c: &Contract, reference: &str) -> ContractImport {
    ContractImport {
        marketplace: c.marketplace,
        product: c.product.clone(),
        customer: c.customer.clone(),
        reference: reference.to_owned(),
        dimension: None,
        outcome: Outcome::Failed,
        total: None,
        currency: None,
        billed_before: Decimal::ZERO,
        quantity: Decimal::ZERO,
        billed_now: Decimal::ZERO,
        carried: Decimal::ZERO,
        detail: None,
        ledger_id: None,
    }
}

/// The usage record of an import: the contract's cost dimension, dated `now` (Google: the
/// interval from the hour's start, or the contract's start when later, to `now`).
pub fn cost_record(
    c: &Contract,
    dimension: &str,
    quantity: Decimal,
    now: DateTime<Utc>,
) -> UsageRecord {
    let (start, end) = match c.marketplace {
        Marketplace::Gcp => {
            let start = hour_floor(now).max(c.starts_at).min(now);
            let end = now.max(add(start, Duration::seconds(1)));
            (start, Some(end))
        }
        _ => (now, None),
    };
    UsageRecord {
        marketplace: c.marketplace,
        product: c.product.clone(),
        customer: c.customer.clone(),
        dimension: dimension.to_owned(),
        quantity,
        start_time: start,
        end_time: end,
        record_id: None,
        plan: c.plan.clone(),
        allocations: None,
        attributes: BTreeMap::new(),
    }
}

fn raw_of(r: &UsageRecord) -> RawRecord {
    let mut v = serde_json::json!({
        "marketplace": r.marketplace.as_str(),
        "product": r.product,
        "customer": r.customer,
        "dimension": r.dimension,
        "quantity": r.quantity.normalize().to_string(),
        "start_time": format_rfc3339(r.start_time),
    });
    if let Some(o) = v.as_object_mut() {
        if let Some(e) = r.end_time {
            o.insert("end_time".into(), format_rfc3339(e).into());
        }
        if let Some(p) = &r.plan {
            o.insert("plan".into(), p.clone().into());
        }
    }
    serde_json::from_value(v).unwrap_or_default()
}

/// Turns readings into ledger rows, one contract at a time (see the module docs), and writes
/// them (unless `dry_run`, or without a ledger). Returns the report; a ledger error stops
/// everything, with the rows of contracts already handled written.
///
/// `since` gives, per contract, where its costs are counted from (stored with the state).
pub fn plan(
    mut ledger: Option<&mut Ledger>,
    validator: &Validator,
    platform: Platform,
    readings: Vec<Result<CostReading, ReadFailure>>,
    since: &BTreeMap<ContractId, String>,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<ImportReport, LedgerError> {
    let contracts = validator.contracts();
    let mut session = validator.session(now);
    if let Some(l) = ledger.as_deref() {
        for h in l.history()? {
            session.add_history(&h);
        }
    }
    let mut report = ImportReport::default();
    for reading in readings {
        let reading = match reading {
            Ok(r) => r,
            Err(f) => {
                if let Some(c) = contracts.get(f.contract) {
                    let mut l = line(c, &f.reference);
                    l.detail = Some(f.message);
                    report.contracts.push(l);
                }
                continue;
            }
        };
        let Some(c) = contracts.get(reading.contract) else {
            continue;
        };
        let mut l = line(c, &reading.reference);
        l.total = Some(reading.total);
        l.currency = Some(reading.currency.clone());
        let dim = match cost_dimension(c) {
            Ok(d) => d,
            Err(why) => {
                l.detail = Some(why);
                report.contracts.push(l);
                continue;
            }
        };
        l.dimension = Some(dim.name.clone());
        if !money::same_currency(&reading.currency, dim.currency()) {
            l.detail = Some(format!(
                "the cost is in {}, but the contract prices {} in {}; nothing imported",
                reading.currency,
                dim.name,
                dim.currency()
            ));
            report.contracts.push(l);
            continue;
        }
        let Some(price) = dim.price else {
            continue;
        };
        let sent = match ledger.as_deref_mut() {
            Some(led) => imported_quantity(led, platform, c, &dim.name)?,
            None => Decimal::ZERO,
        };
        let Some(billed_before) = money::billed_amount(sent, price) else {
            l.detail = Some("the amounts overflow a decimal".into());
            report.contracts.push(l);
            continue;
        };
        l.billed_before = billed_before;
        let Some(split) = money::bill_cost(reading.total, billed_before, price, dim.unit) else {
            l.detail = Some("the amounts overflow a decimal".into());
            report.contracts.push(l);
            continue;
        };
        let owed = split.billed + split.carried;
        l.carried = owed;
        let same_hour = match ledger.as_deref() {
            Some(led) => {
                led.has_usage_in_hour(c.marketplace, &c.product, &c.customer, &dim.name, now)?
            }
            None => false,
        };
        if split.quantity.is_zero() || same_hour {
            l.outcome = if same_hour && !split.quantity.is_zero() {
                Outcome::SameHour
            } else if owed < Decimal::ZERO {
                Outcome::Credit
            } else if owed.is_zero() {
                Outcome::NothingNew
            } else {
                Outcome::Carried
            };
            if let Some(led) = ledger.as_deref_mut().filter(|_| !dry_run) {
                save_state(
                    led,
                    platform,
                    c,
                    &reading,
                    since_of(since, reading.contract, c),
                    now,
                )?;
            }
            report.contracts.push(l);
            continue;
        }
        let CostSplit {
            quantity,
            billed,
            carried,
        } = split;
        let record = cost_record(c, &dim.name, quantity, now);
        let (verdict, parsed) = session.check_full(raw_of(&record));
        if verdict.verdict != VerdictKind::Accepted {
            l.outcome = Outcome::Rejected;
            l.detail = Some(
                verdict
                    .findings
                    .iter()
                    .filter(|f| f.is_error())
                    .map(|f| format!("{}: {}", f.code, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            report.contracts.push(l);
            continue;
        }
        let record = parsed.unwrap_or(record);
        let wire = match crate::submit::wire_values(&record, Some(c)) {
            Ok(w) => w,
            Err(why) => {
                l.outcome = Outcome::Rejected;
                l.detail = Some(why);
                report.contracts.push(l);
                continue;
            }
        };
        l.outcome = Outcome::Imported;
        l.quantity = quantity;
        l.billed_now = billed;
        l.carried = carried;
        if let Some(led) = ledger.as_deref_mut().filter(|_| !dry_run) {
            let row = NewRow {
                record,
                source: Some(format!("{}{}", source_prefix(platform), reading.reference)),
                wire,
            };
            // Written before the state: what was billed is read from these rows, so a crash
            // in between loses nothing and bills nothing twice.
            let done = led.enqueue(std::slice::from_ref(&row))?;
            match done.first() {
                Some(Enqueued::New(id)) | Some(Enqueued::Requeued(id)) => {
                    l.ledger_id = Some(*id);
                    report.rows_written += 1;
                }
                Some(Enqueued::Existing(id, status)) => {
                    l.ledger_id = Some(*id);
                    l.detail = Some(format!("the ledger already holds this record ({status})"));
                }
                Some(Enqueued::Conflict(id)) => {
                    l.detail = Some(format!(
                        "not written: ledger row {id}, stored by another sender sharing the ledger, holds this customer, dimension and hour with another quantity (duplicate-request)"
                    ));
                }
                None => {}
            }
            save_state(
                led,
                platform,
                c,
                &reading,
                since_of(since, reading.contract, c),
                now,
            )?;
        }
        report.contracts.push(l);
    }
    Ok(report)
}

fn since_of<'a>(since: &'a BTreeMap<ContractId, String>, id: ContractId, _c: &Contract) -> &'a str {
    since.get(&id).map_or("", String::as_str)
}

/// Writes a report: one line per contract (text), or JSON Lines with a summary line.
pub fn write_report(
    report: &ImportReport,
    platform: Platform,
    json: bool,
    dry_run: bool,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    if json {
        for c in &report.contracts {
            serde_json::to_writer(&mut *out, c)?;
            out.write_all(b"\n")?;
        }
        let summary = serde_json::json!({"summary": {
            "platform": platform.as_str(),
            "contracts": report.contracts.len(),
            "imported": report.count(Outcome::Imported),
            "rows_written": report.rows_written,
            "failed": report.count(Outcome::Failed),
            "rejected": report.count(Outcome::Rejected),
            "dry_run": dry_run,
        }});
        serde_json::to_writer(&mut *out, &summary)?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    for c in &report.contracts {
        let mut text = format!(
            "{} {}/{}/{} ({})",
            c.outcome.as_str(),
            c.marketplace,
            c.product,
            c.customer,
            c.reference
        );
        if let (Some(t), Some(cur)) = (c.total, &c.currency) {
            text.push_str(&format!(
                ": total {t} {cur}, billed before {}, now {} ({} {}), carried {}",
                c.billed_before,
                c.billed_now,
                c.quantity,
                c.dimension.as_deref().unwrap_or("-"),
                c.carried
            ));
        }
        if let Some(d) = &c.detail {
            text.push_str(&format!(": {d}"));
        }
        writeln!(out, "{}", crate::text::clean(&text))?;
    }
    writeln!(
        out,
        "{}: {} contracts: {} imported ({} ledger rows{}), {} failed, {} rejected",
        platform.as_str(),
        report.contracts.len(),
        report.count(Outcome::Imported),
        report.rows_written,
        if dry_run {
            ", dry run: nothing written"
        } else {
            ""
        },
        report.count(Outcome::Failed),
        report.count(Outcome::Rejected)
    )
}

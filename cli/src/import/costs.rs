//! A generic cost export (Metronome, m3ter, Stripe, an in-house system) as CSV, a JSON array
//! or JSON Lines: one row per contract and billing period.
//!
//! Columns (CSV header, or JSON keys), any order:
//!
//! * `contract`: the contract key `marketplace/product/customer`; or `customer`: the
//!   contract's customer key or its property `internal_customer_identifier`, optionally with
//!   `marketplace` and `product` to choose among several contracts;
//! * `amount`: the cost of the period, a decimal (negative for a credit);
//! * `currency`: ISO 4217; it must be the currency of the contract's cost dimension;
//! * `period_end`: the end of the billing period (RFC 3339, or a date `2026-03-31` for
//!   midnight UTC).
//!
//! A period is the unit of truth: its amount in the newest file replaces the amount an
//! earlier file gave for the same contract and `period_end` (stored in `cost_periods`), rows
//! of one file with the same contract and period are added up (line items), and the
//! contract's total is the sum over its periods. So a file with only the latest periods, a
//! full history, or a corrected period all import correctly, and importing a file twice adds
//! nothing. A bad row (unknown contract, a field that does not parse, another currency) gets
//! an error naming the file, line and field and is skipped; the other rows are imported.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use metergate_core::contract::{Contract, ContractId};
use metergate_core::model::Field;
use metergate_core::money;
use metergate_core::time::{format_rfc3339, parse_rfc3339};
use metergate_core::{Marketplace, Validator};
use rust_decimal::Decimal;

use super::{cost_dimension, CostReading, ImportReport, Platform};
use crate::error::CliError;
use crate::input::{InputFormat, InputPath, RecordReader};
use crate::ledger::db::Exec;
use crate::ledger::{db_err, Ledger, LedgerError};

/// The property a `customer` column may also match.
pub const INTERNAL_ID_PROPERTY: &str = "internal_customer_identifier";

/// A bad row: file, line, field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The file as given.
    pub file: String,
    /// 1-based line (CSV: the header is line 1).
    pub line: u64,
    /// The column at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.field, self.message
        )
    }
}

/// One good row.
#[derive(Clone, Debug, PartialEq)]
pub struct CostRow {
    /// 1-based line.
    pub line: u64,
    /// The contract.
    pub contract: ContractId,
    /// The period's amount.
    pub amount: Decimal,
    /// Its currency, uppercase.
    pub currency: String,
    /// The period's end.
    pub period_end: DateTime<Utc>,
}

/// The rows of a file, as text cells by column name.
type Cells = BTreeMap<String, String>;
/// Each row's line and its cells, or why it could not be read.
type CellRows = Vec<(u64, Result<Cells, RowError>)>;

fn read_cells(path: &Path, name: &str) -> Result<CellRows, CliError> {
    let format = InputFormat::from_extension(path).unwrap_or(InputFormat::Csv);
    let mut out = Vec::new();
    if format == InputFormat::Csv {
        let file = std::fs::File::open(path).map_err(|e| CliError::open(name, e))?;
        let mut r = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(file);
        let headers: Vec<String> = r
            .headers()
            .map_err(|e| CliError::Usage(format!("{name}:1: cannot read the header: {e}")))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let mut rec = csv::StringRecord::new();
        loop {
            let line = r.position().line() + 1;
            match r.read_record(&mut rec) {
                Ok(false) => break,
                Ok(true) => {
                    let line = rec.position().map_or(line, |p| p.line());
                    if rec.len() != headers.len() {
                        out.push((
                            line,
                            Err(RowError {
                                file: name.to_owned(),
                                line,
                                field: "row".into(),
                                message: format!(
                                    "{} fields, but the header has {}",
                                    rec.len(),
                                    headers.len()
                                ),
                            }),
                        ));
                        continue;
                    }
                    let cells = headers
                        .iter()
                        .cloned()
                        .zip(rec.iter().map(str::to_owned))
                        .collect();
                    out.push((line, Ok(cells)));
                }
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line());
                    out.push((
                        line,
                        Err(RowError {
                            file: name.to_owned(),
                            line,
                            field: "row".into(),
                            message: e.to_string(),
                        }),
                    ));
                    if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                        break;
                    }
                }
            }
        }
        return Ok(out);
    }
    let input = InputPath::from_arg(path.as_os_str());
    let mut reader = RecordReader::open(&input, format)?;
    while let Some(rec) = reader.next_record()? {
        let line = rec.line;
        let raw = match rec.row {
            metergate_core::input::Row::Record(raw) => raw,
            metergate_core::input::Row::Unreadable { finding, .. } => {
                out.push((
                    line,
                    Err(RowError {
                        file: name.to_owned(),
                        line,
                        field: finding.field.unwrap_or_else(|| "row".into()),
                        message: finding.message,
                    }),
                ));
                continue;
            }
        };
        let mut cells = Cells::new();
        let mut bad = None;
        let mut put = |k: &str, f: Option<&Field>| {
            if let Some(f) = f {
                match f.text() {
                    Some(t) => {
                        cells.insert(k.to_owned(), t.to_owned());
                    }
                    None => {
                        bad.get_or_insert(RowError {
                            file: name.to_owned(),
                            line,
                            field: k.to_owned(),
                            message: "must be a string or a number".into(),
                        });
                    }
                }
            }
        };
        put("marketplace", raw.marketplace.as_ref());
        put("product", raw.product.as_ref());
        put("customer", raw.customer.as_ref());
        for (k, v) in &raw.attributes {
            put(&k.to_ascii_lowercase(), Some(v));
        }
        out.push((line, bad.map_or(Ok(cells), Err)));
    }
    Ok(out)
}

fn parse_period_end(s: &str) -> Option<DateTime<Utc>> {
    parse_rfc3339(s).ok().or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    })
}

fn key(c: &Contract) -> String {
    format!("{}/{}/{}", c.marketplace, c.product, c.customer)
}

/// Finds a row's contract.
fn find_contract(validator: &Validator, cells: &Cells) -> Result<ContractId, (String, String)> {
    let contracts = validator.contracts();
    let get = |k: &str| cells.get(k).map(String::as_str).filter(|s| !s.is_empty());
    if let Some(k) = get("contract") {
        let mut parts = k.splitn(3, '/');
        let (m, p, c) = (parts.next(), parts.next(), parts.next());
        let (Some(m), Some(p), Some(c)) = (m, p, c) else {
            return Err((
                "contract".into(),
                format!("{k:?} is not a contract key marketplace/product/customer"),
            ));
        };
        let m = Marketplace::parse(m).ok_or_else(|| {
            (
                "contract".to_owned(),
                format!("{m:?} is not aws, azure or gcp"),
            )
        })?;
        return contracts
            .find(m, p, c)
            .map(|(id, _)| id)
            .ok_or_else(|| ("contract".into(), format!("no contract {k:?}")));
    }
    let Some(customer) = get("customer") else {
        return Err((
            "contract".into(),
            "neither contract nor customer is given; one names the row's contract".into(),
        ));
    };
    let mp = match get("marketplace") {
        Some(m) => Some(Marketplace::parse(m).ok_or_else(|| {
            (
                "marketplace".to_owned(),
                format!("{m:?} is not aws, azure or gcp"),
            )
        })?),
        None => None,
    };
    let product = get("product");
    let found: Vec<ContractId> = contracts
        .all()
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            (c.customer == customer
                || c.properties.get(INTERNAL_ID_PROPERTY).map(String::as_str) == Some(customer))
                && mp.is_none_or(|m| m == c.marketplace)
                && product.is_none_or(|p| p == c.product)
        })
        .map(|(i, _)| i as ContractId)
        .collect();
    match found.as_slice() {
        [id] => Ok(*id),
        [] => Err((
            "customer".into(),
            format!("no contract has customer or {INTERNAL_ID_PROPERTY} {customer:?}"),
        )),
        many => Err((
            "customer".into(),
            format!(
                "{customer:?} matches {} contracts ({}); add marketplace and product columns, or use contract",
                many.len(),
                many.iter()
                    .filter_map(|id| contracts.get(*id))
                    .map(key)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Reads a cost file: the good rows, and an error for each bad one.
pub fn read_rows(
    path: &Path,
    validator: &Validator,
) -> Result<(Vec<CostRow>, Vec<RowError>), CliError> {
    let name = path.display().to_string();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (line, cells) in read_cells(path, &name)? {
        let cells = match cells {
            Ok(c) => c,
            Err(e) => {
                bad.push(e);
                continue;
            }
        };
        let err = |field: &str, message: String| RowError {
            file: name.clone(),
            line,
            field: field.to_owned(),
            message,
        };
        let contract = match find_contract(validator, &cells) {
            Ok(c) => c,
            Err((field, message)) => {
                bad.push(err(&field, message));
                continue;
            }
        };
        let amount_s = cells.get("amount").map(String::as_str).unwrap_or("");
        let Ok(amount) = Decimal::from_str(amount_s) else {
            bad.push(err(
                "amount",
                if amount_s.is_empty() {
                    "is missing".into()
                } else {
                    format!("{amount_s:?} is not a decimal number")
                },
            ));
            continue;
        };
        let currency = cells.get("currency").map(|s| s.trim()).unwrap_or("");
        if !money::is_currency_code(currency) {
            bad.push(err(
                "currency",
                if currency.is_empty() {
                    "is missing".into()
                } else {
                    format!("{currency:?} is not an ISO 4217 code such as USD")
                },
            ));
            continue;
        }
        let Some(c) = validator.contracts().get(contract) else {
            continue;
        };
        match cost_dimension(c) {
            Ok(d) if !money::same_currency(currency, d.currency()) => {
                bad.push(err(
                    "currency",
                    format!(
                        "{currency}, but contract {} prices {} in {}; convert the amount or fix the contract",
                        key(c),
                        d.name,
                        d.currency()
                    ),
                ));
                continue;
            }
            Ok(_) => {}
            Err(why) => {
                bad.push(err("contract", format!("{}: {why}", key(c))));
                continue;
            }
        }
        let pe = cells.get("period_end").map(String::as_str).unwrap_or("");
        let Some(period_end) = parse_period_end(pe) else {
            bad.push(err(
                "period_end",
                if pe.is_empty() {
                    "is missing".into()
                } else {
                    format!("{pe:?} is not an RFC 3339 time or a date like 2026-03-31")
                },
            ));
            continue;
        };
        good.push(CostRow {
            line,
            contract,
            amount,
            currency: currency.to_ascii_uppercase(),
            period_end,
        });
    }
    Ok((good, bad))
}

fn stored_periods(
    ledger: &mut Ledger,
    c: &Contract,
) -> Result<BTreeMap<String, Decimal>, LedgerError> {
    let path = ledger.path().to_owned();
    let e = db_err(&path);
    let rows = ledger
        .db()
        .query(
            "SELECT period_end, amount FROM cost_periods WHERE marketplace = ?1 \
             AND product = ?2 AND customer = ?3",
            &[&c.marketplace.as_str(), &c.product, &c.customer],
        )
        .map_err(&e)?;
    let mut out = BTreeMap::new();
    for r in rows {
        let pe: String = r.get(0).map_err(&e)?;
        let a: String = r.get(1).map_err(&e)?;
        let a = Decimal::from_str(&a).map_err(|err| LedgerError::Corrupt {
            path: path.clone(),
            id: 0,
            message: format!("cost_periods amount {a:?}: {err}"),
        })?;
        out.insert(pe, a);
    }
    Ok(out)
}

fn save_periods(
    ledger: &mut Ledger,
    c: &Contract,
    periods: &BTreeMap<String, (Decimal, String, u64)>,
    file: &str,
) -> Result<(), LedgerError> {
    let path = ledger.path().to_owned();
    let e = db_err(&path);
    let now = format_rfc3339(Utc::now());
    let tx = ledger.begin()?;
    for (pe, (amount, currency, line)) in periods {
        tx.execute(
            "INSERT INTO cost_periods (marketplace, product, customer, period_end, amount, \
             currency, source, imported_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (marketplace, product, customer, period_end) DO UPDATE SET \
             amount = excluded.amount, currency = excluded.currency, source = excluded.source, \
             imported_at = excluded.imported_at",
            &[
                &c.marketplace.as_str(),
                &c.product,
                &c.customer,
                pe,
                &amount.normalize().to_string(),
                currency,
                &format!("{file}:{line}"),
                &now,
            ],
        )
        .map_err(&e)?;
    }
    tx.commit().map_err(&e)
}

/// Imports a cost file: reads it, merges its periods into the stored ones (unless
/// `dry_run`), and plans each contract's usage ([`super::plan`]). Returns the report and the
/// bad rows.
pub fn import_file(
    ledger: &mut Ledger,
    validator: &Validator,
    path: &Path,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<(ImportReport, Vec<RowError>), CliError> {
    let name = path.display().to_string();
    let (rows, bad) = read_rows(path, validator)?;
    // Per contract, per period end: amount (line items summed), currency, last line.
    let mut by_contract: BTreeMap<ContractId, BTreeMap<String, (Decimal, String, u64)>> =
        BTreeMap::new();
    let mut overflow = Vec::new();
    for r in &rows {
        let slot = by_contract
            .entry(r.contract)
            .or_default()
            .entry(format_rfc3339(r.period_end))
            .or_insert((Decimal::ZERO, r.currency.clone(), r.line));
        match slot.0.checked_add(r.amount) {
            Some(s) => {
                slot.0 = s;
                slot.2 = r.line;
            }
            None => overflow.push(RowError {
                file: name.clone(),
                line: r.line,
                field: "amount".into(),
                message: "the period's amounts overflow a decimal".into(),
            }),
        }
    }
    let mut bad = bad;
    bad.extend(overflow);
    let le = |e: LedgerError| CliError::Usage(e.to_string());
    let mut readings = Vec::new();
    let mut since = BTreeMap::new();
    for (id, periods) in &by_contract {
        let Some(c) = validator.contracts().get(*id) else {
            continue;
        };
        let mut all = stored_periods(ledger, c).map_err(le)?;
        for (pe, (amount, _, _)) in periods {
            all.insert(pe.clone(), *amount);
        }
        let Some(total) = all
            .values()
            .try_fold(Decimal::ZERO, |s, a| s.checked_add(*a))
        else {
            bad.push(RowError {
                file: name.clone(),
                line: periods.values().map(|p| p.2).max().unwrap_or(0),
                field: "amount".into(),
                message: "the contract's total overflows a decimal".into(),
            });
            continue;
        };
        if !dry_run {
            save_periods(ledger, c, periods, &name).map_err(le)?;
        }
        let currency = periods
            .values()
            .next()
            .map(|p| p.1.clone())
            .unwrap_or_default();
        let last = periods.values().map(|p| p.2).max().unwrap_or(0);
        since.insert(*id, format_rfc3339(now));
        readings.push(Ok(CostReading {
            contract: *id,
            total,
            currency,
            reference: format!("{name}:{last}"),
        }));
    }
    let report = super::plan(
        Some(ledger),
        validator,
        Platform::Costs,
        readings,
        &since,
        now,
        dry_run,
    )
    .map_err(le)?;
    bad.sort_by_key(|e| e.line);
    Ok((report, bad))
}

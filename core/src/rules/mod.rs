//! The built-in marketplace rules. One table of constants per marketplace
//! ([`aws`], [`azure`], [`gcp`]); the checks every marketplace shares live here.

pub mod aws;
pub mod azure;
pub mod gcp;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::contract::{Contract, ContractId, ContractSet};
use crate::finding::{Code, Finding, Suggestion};
use crate::model::{Marketplace, UsageRecord};
use crate::parse::shown;
use crate::settings::Settings;
use crate::units::{is_multiple, to_units};
use crate::window;

/// What the record-level rules found out, for the rules that need state (dedup) and policies.
pub(crate) struct Checked<'c> {
    /// The record's contract.
    pub contract: Option<(ContractId, &'c Contract)>,
    /// The index of the dimension within the contract.
    pub dimension: Option<usize>,
    /// True when no time rule failed.
    pub times_ok: bool,
}

/// Runs every stateless rule on a parsed record, in a fixed order, appending findings.
pub(crate) fn check<'c>(
    rec: &UsageRecord,
    contracts: &'c ContractSet,
    settings: &Settings,
    now: DateTime<Utc>,
    out: &mut Vec<Finding>,
) -> Checked<'c> {
    let mp = rec.marketplace;
    if mp == Marketplace::Aws {
        aws::check_product(rec, out);
        aws::check_dimension_form(rec, out);
    }
    let contract = contracts.find(mp, &rec.product, &rec.customer);
    if contract.is_none() {
        out.push(not_entitled(rec, contracts));
    }
    let c = contract.map(|(_, c)| c);
    if let Some((cid, c)) = contract {
        out.extend_from_slice(contracts.identity_findings(cid));
        if mp == Marketplace::Azure {
            azure::check_plan(rec, c, out);
        }
    }
    // Dimension.
    let mut dimension = None;
    if let Some(c) = c {
        if mp == Marketplace::Gcp {
            // One resolution for the short and the full metric name (the wire builder's too).
            match gcp::resolve_metric(&rec.product, &rec.dimension, c) {
                Ok(m) => dimension = Some(m.index),
                Err(e) => match gcp::metric_finding(rec, &e) {
                    Some(f) => out.push(f),
                    None => {
                        let short = gcp::short_metric_name(&rec.product, &rec.dimension);
                        out.push(unknown_dimension(rec, short, c));
                    }
                },
            }
        } else {
            match c.dimension(&rec.dimension) {
                Some((i, _)) => dimension = Some(i),
                None => out.push(unknown_dimension(rec, &rec.dimension, c)),
            }
        }
    }
    let dim = c.zip(dimension).and_then(|(c, i)| c.dimensions.get(i));
    // Quantity.
    let quantity_from = out.len();
    if rec.quantity.is_sign_negative() && !rec.quantity.is_zero() {
        out.push(
            Finding::new(
                Code::InvalidQuantity,
                "all.quantity",
                Some("quantity"),
                format!("quantity {} is negative", rec.quantity),
            )
            .hint("submissions are final: a refund or correction is settled with the marketplace, not with a negative record".into()),
        );
    } else {
        match mp {
            Marketplace::Aws => aws::check_quantity(rec, out),
            Marketplace::Azure => azure::check_quantity(rec, out),
            Marketplace::Gcp => gcp::check_quantity(rec, dim, out),
        }
        if let Some((unit, d)) = dim.and_then(|d| d.unit.map(|u| (u, d))) {
            check_unit(rec.quantity, unit, &d.name, out);
        }
        let integer = match mp {
            Marketplace::Aws => true,
            Marketplace::Azure => false,
            Marketplace::Gcp => {
                dim.and_then(|d| d.kind)
                    .unwrap_or(crate::contract::MetricType::Int)
                    == crate::contract::MetricType::Int
            }
        };
        one_quantity_hint(
            rec,
            integer,
            dim.and_then(|d| d.unit),
            out.get_mut(quantity_from..).unwrap_or_default(),
        );
    }
    // Allocations.
    if let Some(allocs) = &rec.allocations {
        if mp == Marketplace::Aws {
            aws::check_allocations(rec, allocs, out);
        } else {
            out.push(
                Finding::new(
                    Code::InvalidUsageAllocations,
                    "aws.allocations",
                    Some("allocations"),
                    format!("allocations are an AWS feature; {mp} records cannot carry them"),
                )
                .hint("remove the allocations".into()),
            );
        }
    }
    let times_ok = window::check_times(rec, c, settings, now, out);
    Checked {
        contract,
        dimension,
        times_ok,
    }
}

/// Most steps of one unit that [`best_quantity`] walks down to find a whole number.
const MAX_UNIT_STEPS: u32 = 1000;

/// The largest quantity not above `q` that is a whole multiple of `unit` (if any) and, when
/// `integer`, a whole number. `None` when there is none worth suggesting.
pub(crate) fn best_quantity(q: Decimal, integer: bool, unit: Option<Decimal>) -> Option<Decimal> {
    if q.is_sign_negative() {
        return None;
    }
    let Some(u) = unit else {
        return Some(if integer { q.trunc() } else { q }.normalize());
    };
    let mut b = to_units(q, u)?.billable(u);
    if integer {
        let mut steps = 0;
        while !b.fract().is_zero() {
            b = b.checked_sub(u)?;
            steps += 1;
            if steps > MAX_UNIT_STEPS || b.is_sign_negative() {
                return None;
            }
        }
    }
    Some(b.normalize())
}

/// Gives every "not whole" / "not a multiple of the unit" finding on the quantity one and
/// the same hint: the largest quantity that passes all of them, and what to carry. (Two
/// rules used to suggest different quantities for one record: `17.5` with unit 5 got "send
/// 17" and "send 15".)
fn one_quantity_hint(
    rec: &UsageRecord,
    integer: bool,
    unit: Option<Decimal>,
    found: &mut [Finding],
) {
    let q = rec.quantity;
    let fraction = |f: &Finding| match f.rule.as_str() {
        "aws.quantity" | "gcp.metric" => !q.fract().is_zero(),
        "all.unit" => unit.is_some_and(|u| to_units(q, u).is_some() && !is_multiple(q, u)),
        _ => false,
    };
    // Worked out once, and only for a record that has such a finding.
    let mut best = None;
    for f in found
        .iter_mut()
        .filter(|f| f.code == Code::InvalidQuantity.as_str() && fraction(f))
    {
        let fallback = format!(
            "no smaller quantity of this record can be billed on its own: add {} to a later hour's usage of {}",
            q.normalize(),
            rec.dimension
        );
        let best = *best.get_or_insert_with(|| best_quantity(q, integer, unit));
        match best.and_then(|b| q.checked_sub(b).map(|rest| (b, rest))) {
            Some((b, rest)) => {
                *f = f.clone().suggest(
                    format!("send {b} and carry {} into the next hour", rest.normalize()),
                    Suggestion {
                        quantity: Some(b),
                        fallback,
                        ..Suggestion::default()
                    },
                );
            }
            None => f.hint = Some(fallback),
        }
    }
}

/// Judges every suggestion in `found` (see [`Suggestion`]) and replaces a hint whose
/// suggested record the core would reject with its fallback.
pub(crate) fn verify_suggestions(
    rec: &mut UsageRecord,
    contracts: &ContractSet,
    settings: &Settings,
    now: DateTime<Utc>,
    found: &mut [Finding],
) {
    if !found.iter().any(|f| f.suggestion.is_some()) {
        return;
    }
    // Each candidate is the record itself with the suggestion applied, judged and put back:
    // no copy of its text. A suggestion changes only the quantity, the times and (a carry)
    // the allocations, and those are restored after each one.
    let (quantity, start_time, end_time) = (rec.quantity, rec.start_time, rec.end_time);
    // A copy only when there are allocations (rare): a carry clears them.
    let allocations = rec.allocations.clone();
    let mut judged = Vec::new();
    for f in found.iter_mut() {
        let Some(s) = &f.suggestion else { continue };
        let candidate = &mut *rec;
        candidate.quantity = quantity;
        candidate.start_time = start_time;
        candidate.end_time = end_time;
        if candidate.allocations.is_none() && allocations.is_some() {
            candidate.allocations.clone_from(&allocations);
        }
        let at = s.apply_in_place(candidate, now);
        judged.clear();
        check(candidate, contracts, settings, at, &mut judged);
        if !s.accepts(&judged) {
            f.hint = Some(s.fallback.clone());
            f.suggestion = None;
        }
    }
    rec.quantity = quantity;
    rec.start_time = start_time;
    rec.end_time = end_time;
    rec.allocations = allocations;
}

fn check_unit(q: Decimal, unit: Decimal, name: &str, out: &mut Vec<Finding>) {
    let Some(u) = to_units(q, unit) else {
        // Too many digits to split exactly: it cannot be shown to be a whole multiple.
        out.push(
            Finding::new(
                Code::InvalidQuantity,
                "all.unit",
                Some("quantity"),
                format!(
                    "quantity {q} cannot be checked against {name}'s unit {}: too many digits",
                    unit.normalize()
                ),
            )
            .hint(format!(
                "send a whole multiple of {} with fewer digits",
                unit.normalize()
            )),
        );
        return;
    };
    if !u.remainder.is_zero() {
        let below = u.billable(unit).normalize();
        out.push(
            Finding::new(
                Code::InvalidQuantity,
                "all.unit",
                Some("quantity"),
                format!(
                    "quantity {q} is not a whole multiple of {name}'s unit {}",
                    unit.normalize()
                ),
            )
            .hint(format!(
                "nearest valid quantity: {below} (carry {} into the next hour)",
                u.remainder.normalize()
            )),
        );
    }
}

/// Most customers of a product that an unknown customer id is fuzzily compared with (beyond
/// it, only a case-insensitive match is suggested). metergate's own bound, for speed.
pub const FUZZY_CANDIDATES_MAX: usize = 256;

fn not_entitled(rec: &UsageRecord, contracts: &ContractSet) -> Finding {
    let mp = rec.marketplace;
    let f = Finding::new(
        Code::CustomerNotEntitled,
        match mp {
            Marketplace::Aws => "aws.entitlement",
            Marketplace::Azure => "azure.entitlement",
            Marketplace::Gcp => "gcp.check",
        },
        Some("customer"),
        format!(
            "no {mp} contract for customer {} on product {}",
            shown(&rec.customer),
            shown(&rec.product)
        ),
    );
    // A case-only difference is found through an index; a fuzzy match is tried only for
    // products with few customers, so a file full of unknown ids stays linear.
    let customers = contracts.customer_count(mp, &rec.product);
    let suggestion = contracts
        .customer_ignoring_case(mp, &rec.product, &rec.customer)
        .or_else(|| {
            (customers <= FUZZY_CANDIDATES_MAX)
                .then(|| closest(&rec.customer, contracts.customers_iter(mp, &rec.product)))
                .flatten()
        });
    if let Some(best) = suggestion {
        return f.hint(format!("did you mean customer {best}?"));
    }
    let products = contracts.products_of(mp, &rec.customer);
    if let Some(best) = closest(&rec.product, products.iter().copied()) {
        return f.hint(format!("this customer has a contract on product {best}"));
    }
    if customers == 0 && products.is_empty() {
        f.hint(format!(
            "add the contract to the contracts file, or check the marketplace ({mp}) and product"
        ))
    } else {
        f.hint("check the customer id against the marketplace's subscription list".into())
    }
}

fn unknown_dimension(rec: &UsageRecord, name: &str, c: &Contract) -> Finding {
    let f = Finding::new(
        Code::InvalidUsageDimension,
        match rec.marketplace {
            Marketplace::Aws => "aws.dimension",
            Marketplace::Azure => "azure.dimension",
            Marketplace::Gcp => "gcp.metric",
        },
        Some("dimension"),
        format!(
            "dimension {} is not one of the contract's dimensions",
            shown(name)
        ),
    );
    match closest(name, c.dimensions.iter().map(|d| d.name.as_str())) {
        Some(best) => f.hint(format!("did you mean {best}?")),
        None => {
            let all: Vec<&str> = c.dimensions.iter().map(|d| d.name.as_str()).collect();
            f.hint(if all.is_empty() {
                "the contract lists no dimensions".to_owned()
            } else {
                format!("the contract's dimensions are: {}", all.join(", "))
            })
        }
    }
}

/// Longest name, in bytes, that "did you mean" compares. The fuzzy match costs about the
/// product of the two lengths, so longer names (never real identifiers) get no suggestion.
pub const MAX_SUGGEST_LEN: usize = 256;

/// The candidate most like `name`, if it is alike enough to suggest. Names and candidates
/// longer than [`MAX_SUGGEST_LEN`] bytes are not compared.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    if name.len() > MAX_SUGGEST_LEN {
        return None;
    }
    let lower = name.to_lowercase();
    candidates
        .filter(|c| c.len() <= MAX_SUGGEST_LEN)
        .map(|c| {
            // Most ids are lowercase ASCII already: compare them without a lowercased copy.
            let score = if c.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
                strsim::jaro_winkler(&lower, c)
            } else {
                strsim::jaro_winkler(&lower, &c.to_lowercase())
            };
            (c, score)
        })
        .filter(|(_, s)| *s >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(c, _)| c)
}

//! The built-in marketplace rules. One table of constants per marketplace
//! ([`aws`], [`azure`], [`gcp`]); the checks every marketplace shares live here.

pub mod aws;
pub mod azure;
pub mod gcp;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::contract::{Contract, ContractId, ContractSet};
use crate::finding::{Code, Finding};
use crate::model::{Marketplace, UsageRecord};
use crate::parse::shown;
use crate::settings::Settings;
use crate::units::to_units;
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
    if let Some(c) = c {
        match mp {
            Marketplace::Aws => aws::check_identity(c, out),
            Marketplace::Azure => {
                azure::check_identity(c, out);
                azure::check_plan(rec, c, out);
            }
            Marketplace::Gcp => gcp::check_identity(c, out),
        }
    }
    // Dimension.
    let mut dimension = None;
    if let Some(c) = c {
        // The exact name first (a contract may list Google metrics by their full name).
        let name = if mp == Marketplace::Gcp && c.dimension(&rec.dimension).is_none() {
            gcp::metric_name(rec, out)
        } else {
            Some(rec.dimension.as_str())
        };
        if let Some(name) = name {
            match c.dimension(name) {
                Some((i, _)) => dimension = Some(i),
                None => out.push(unknown_dimension(rec, name, c)),
            }
        }
    }
    let dim = c.zip(dimension).and_then(|(c, i)| c.dimensions.get(i));
    // Quantity.
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
            let score = strsim::jaro_winkler(&lower, &c.to_lowercase());
            (c, score)
        })
        .filter(|(_, s)| *s >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(c, _)| c)
}

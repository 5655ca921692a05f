//! Microsoft commercial marketplace (`usageEvent` / `batchUsageEvent`, api-version 2018-08-31).
//!
//! Sources: M1 metering service API doc, M3 metering FAQ, M4 `meteringapi.v1.json`,
//! M5 metered-billing-accelerator, M6 azure-docs issue 41420, M7 authentication doc.

use rust_decimal::Decimal;

use crate::contract::Contract;
use crate::finding::{Code, Finding};
use crate::identity::WireIdentity;
use crate::model::UsageRecord;
use crate::parse::shown;

/// `effectiveStartTime` at most 24 hours before now (`Expired` otherwise). Source: M1, M3.
/// Rule `azure.lookback`. `effectiveStartTime` is the record's own time, as in Microsoft's
/// examples ("if a usage event occurs at 1 PM, you have until 1 PM on the next day", M3), so
/// the look-back and the future check judge that instant; only dedup keys on its clock hour.
pub const LOOKBACK_SECS: i64 = 24 * 3600;
/// Events per `batchUsageEvent` call: 1..=25. Source: M1, M4, M6. Rule `azure.batch`.
pub const MAX_BATCH_EVENTS: usize = 25;
/// Entra ID resource (audience) of the metering API. Source: M4, M7. Rule `azure.auth`.
pub const TOKEN_RESOURCE: &str = "20e940b3-4c77-4b0b-9a53-9e16a1b010a7";
/// API version of the metering API. Source: M4.
pub const API_VERSION: &str = "2018-08-31";

/// The wire identity of a Microsoft contract: `resource_id` (a uuid) XOR `resource_uri`; with
/// neither, the `customer` key as the `resourceId` when it is a uuid.
pub(crate) fn identity(c: &Contract) -> Result<WireIdentity, Vec<Finding>> {
    let rule = "azure.identity";
    let mut out = Vec::new();
    let id = c.resource_id.as_deref().filter(|s| !s.is_empty());
    let uri = c.resource_uri.as_deref().filter(|s| !s.is_empty());
    if id.is_some() && uri.is_some() {
        out.push(
            Finding::new(
                Code::InvalidCustomerIdentifier,
                rule,
                Some("customer"),
                "the contract sets both resource_id and resource_uri; Microsoft takes exactly one"
                    .into(),
            )
            .hint(
                "SaaS offers use resource_id (the subscription id); managed apps use resource_uri"
                    .into(),
            ),
        );
    }
    if let Some(id) = id {
        if !is_uuid(id) {
            out.push(
                Finding::new(
                    Code::InvalidCustomerIdentifier,
                    rule,
                    Some("customer"),
                    format!("resource_id {} is not a uuid", shown(id)),
                )
                .hint(
                    "use the SaaS subscription id, e.g. 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
                        .into(),
                ),
            );
        }
    }
    if id.is_none() && uri.is_none() && !is_uuid(&c.customer) {
        out.push(
            Finding::new(
                Code::InvalidCustomerIdentifier,
                rule,
                Some("customer"),
                format!(
                    "the contract has no resource_id or resource_uri, and the customer key {} is not a uuid that could be the resourceId",
                    shown(&c.customer)
                ),
            )
            .hint("set resource_id (the SaaS subscription id) or resource_uri (a managed application) in the contract".into()),
        );
    }
    if !out.is_empty() {
        return Err(out);
    }
    Ok(match (id, uri) {
        (Some(id), _) => WireIdentity::AzureResourceId(id.to_owned()),
        (None, Some(uri)) => WireIdentity::AzureResourceUri(uri.to_owned()),
        (None, None) => WireIdentity::AzureResourceId(c.customer.clone()),
    })
}

/// True for the 8-4-4-4-12 hex form.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Quantity strictly above zero.
pub(crate) fn check_quantity(rec: &UsageRecord, out: &mut Vec<Finding>) {
    if rec.quantity.is_zero() {
        out.push(
            Finding::new(
                Code::InvalidQuantity,
                "azure.quantity",
                Some("quantity"),
                "quantity 0: Microsoft refuses zero (InvalidQuantity)".into(),
            )
            .hint("leave out hours without usage; Microsoft needs no heartbeats".into()),
        );
    }
}

/// The plan: the record's, or the contract's; they must agree.
pub(crate) fn check_plan(rec: &UsageRecord, c: &Contract, out: &mut Vec<Finding>) {
    match (&rec.plan, &c.plan) {
        (Some(r), Some(p)) if r != p => out.push(
            Finding::new(
                Code::InvalidUsageDimension,
                "azure.dimension",
                Some("plan"),
                format!(
                    "plan {} is not the plan the customer bought ({})",
                    shown(r),
                    shown(p)
                ),
            )
            .hint(format!("use plan {p}")),
        ),
        (None, None) => out.push(
            Finding::new(
                Code::InvalidRecord,
                "azure.dimension",
                Some("plan"),
                "no plan: Microsoft needs planId".into(),
            )
            .hint("give plan in the record or in the contract".into()),
        ),
        _ => {}
    }
}

/// Zero is the only quantity check beyond the common ones; kept as a named helper for tests.
pub fn accepts_quantity(q: Decimal) -> bool {
    q > Decimal::ZERO
}

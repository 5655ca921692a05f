//! Google Cloud Marketplace (Service Control `services.check` / `services.report`).
//!
//! Sources: G1 "configure usage reports", G2 "best practices for reporting", G4 googleapis
//! `servicecontrol/v1` protos, G5 discovery text, G6 ubbagent, G9 consumerId formats.

use rust_decimal::Decimal;

use crate::contract::{Contract, Dimension, MetricType};
use crate::finding::{Code, Finding};
use crate::model::UsageRecord;
use crate::parse::shown;

/// `end_time` may be at most 5 minutes after now. Source: seeds (Tackle). Rule `gcp.future`.
pub const MAX_FUTURE_SECS: i64 = 5 * 60;
/// Report within 1 hour of the usage's end (`late-report` warning). Source: G2. Rule `gcp.lateness`.
pub const LATENESS_SECS: i64 = 3600;
/// After cancellation, usage dated before it may be sent for 1 hour. Source: seeds (Tackle), G2.
/// Rule `gcp.post_cancel`.
pub const POST_CANCEL_SECS: i64 = 3600;
/// Month-end: report by 01:00 US Pacific time on day 1 of the next month. Source: G2.
/// Rule `gcp.month_end`.
pub const MONTH_END_LOCAL_HOUR: i64 = 1;
/// A report request must stay under 1 MB. Source: G4, G5. Rule `gcp.request`.
pub const MAX_REQUEST_BYTES: usize = 1_000_000;
/// Operations per report request: metergate's own cap, to keep retries small (not a Google
/// limit). Rule `gcp.request`.
pub const MAX_OPERATIONS_PER_REPORT: usize = 100;
/// The consumerId prefixes Service Control accepts. Source: G9. Rule `gcp.consumer`.
pub const CONSUMER_PREFIXES: [&str; 5] = [
    "project:",
    "project_number:",
    "api_key:",
    "folders/",
    "organizations/",
];
/// Check errors that end an entitlement for good. Source: G1, G6. Rule `gcp.check`.
pub const FINAL_CHECK_ERRORS: [&str; 3] = [
    "BILLING_DISABLED",
    "SERVICE_NOT_ACTIVATED",
    "PROJECT_DELETED",
];

/// usageReportingId form.
pub(crate) fn check_identity(c: &Contract, out: &mut Vec<Finding>) {
    if let Some(id) = &c.usage_reporting_id {
        let ok = CONSUMER_PREFIXES
            .iter()
            .any(|p| id.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
        if !ok {
            out.push(
                Finding::new(
                    Code::InvalidCustomerIdentifier,
                    "gcp.consumer",
                    Some("customer"),
                    format!(
                        "usage_reporting_id {} is not a Service Control consumerId",
                        shown(id)
                    ),
                )
                .hint(
                    "use the entitlement's usageReportingId, e.g. project_number:123456789".into(),
                ),
            );
        }
    }
}

/// The metric's short name: `service/metric` must name this product's service.
pub(crate) fn metric_name<'r>(rec: &'r UsageRecord, out: &mut Vec<Finding>) -> Option<&'r str> {
    match rec.dimension.split_once('/') {
        None => Some(&rec.dimension),
        Some((service, metric)) if service == rec.product && !metric.is_empty() => Some(metric),
        Some((service, _)) if service == rec.product => {
            out.push(
                Finding::new(
                    Code::InvalidUsageDimension,
                    "gcp.metric",
                    Some("dimension"),
                    format!(
                        "metric {} has no name after the service",
                        shown(&rec.dimension)
                    ),
                )
                .hint(format!("use {}/<metric>", rec.product)),
            );
            None
        }
        Some((service, _)) => {
            out.push(
                Finding::new(
                    Code::InvalidUsageDimension,
                    "gcp.metric",
                    Some("dimension"),
                    format!(
                        "metric {} names service {}, but the product is {}",
                        shown(&rec.dimension),
                        shown(service),
                        shown(&rec.product)
                    ),
                )
                .hint(format!(
                    "use {}/<metric> or the metric's short name",
                    rec.product
                )),
            );
            None
        }
    }
}

/// Significant digits that every double holds exactly as written (`DBL_DIG`): a decimal metric
/// value with at most this many always reaches Google unchanged. Source: IEEE 754 binary64,
/// G4 (`MetricValue.double_value` is a double). Rule `gcp.metric`.
pub const DOUBLE_EXACT_DIGITS: u32 = 15;

/// True when Google, which stores a decimal metric's value as a double, stores `q` as
/// written: the nearest double reads back as the same decimal. (Only a representability test:
/// no arithmetic is done in floating point.)
pub fn double_holds(q: Decimal) -> bool {
    let Ok(d) = q.to_string().parse::<f64>() else {
        return false;
    };
    // Rust prints the shortest decimal that reads back as the same double.
    d.is_finite() && Decimal::from_str_exact(&d.to_string()).is_ok_and(|back| back == q)
}

/// int64 vs double, the int64 range, and a double's precision.
pub(crate) fn check_quantity(rec: &UsageRecord, dim: Option<&Dimension>, out: &mut Vec<Finding>) {
    let q = rec.quantity;
    let kind = dim.and_then(|d| d.kind).unwrap_or(MetricType::Int);
    if kind == MetricType::Decimal && !double_holds(q) {
        let sent = q
            .round_sf_with_strategy(DOUBLE_EXACT_DIGITS, rust_decimal::RoundingStrategy::ToZero)
            .unwrap_or(q)
            .normalize();
        out.push(
            Finding::new(
                Code::InvalidQuantity,
                "gcp.metric",
                Some("quantity"),
                format!(
                    "quantity {q} has more digits than the double Google stores for a decimal metric; Google would bill another amount"
                ),
            )
            .hint(format!(
                "send {sent} (up to {DOUBLE_EXACT_DIGITS} significant digits) and carry {} into the next interval",
                (q - sent).normalize()
            )),
        );
    }
    if kind == MetricType::Int {
        if q.fract() != Decimal::ZERO {
            out.push(
                Finding::new(
                    Code::InvalidQuantity,
                    "gcp.metric",
                    Some("quantity"),
                    format!("quantity {q} is not a whole number, but the metric is int64"),
                )
                .hint(format!("send {} and carry {} into the next interval, or declare the metric type decimal", q.trunc(), q.fract())),
            );
        } else if q > Decimal::from(i64::MAX) {
            out.push(
                Finding::new(
                    Code::InvalidQuantity,
                    "gcp.metric",
                    Some("quantity"),
                    format!("quantity {q} does not fit an int64"),
                )
                .hint(format!(
                    "at most {} per int64 metric value: use a larger unit or declare the metric type decimal",
                    i64::MAX
                )),
            );
        }
    }
}

//! Google Cloud Marketplace (Service Control `services.check` / `services.report`).
//!
//! Sources: G1 "configure usage reports", G2 "best practices for reporting", G4 googleapis
//! `servicecontrol/v1` protos, G5 discovery text, G6 ubbagent, G9 consumerId formats.

use rust_decimal::Decimal;

use crate::contract::{Contract, Dimension, MetricType};
use crate::finding::{Code, Finding};
use crate::identity::WireIdentity;
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
/// The consumerId prefixes Service Control accepts (`projects/<id or number>` too); the id is
/// sent verbatim. Source: G9. Rule `gcp.consumer`.
pub const CONSUMER_PREFIXES: [&str; 6] = [
    "project:",
    "project_number:",
    "projects/",
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

/// True for a Service Control consumerId: one of [`CONSUMER_PREFIXES`] and a non-empty id.
pub fn is_consumer_id(id: &str) -> bool {
    CONSUMER_PREFIXES
        .iter()
        .any(|p| id.strip_prefix(p).is_some_and(|rest| !rest.is_empty()))
}

/// The wire identity of a Google contract: `usage_reporting_id`, else the `customer` key when
/// it is itself a consumerId; either is sent verbatim.
pub(crate) fn identity(c: &Contract) -> Result<WireIdentity, Vec<Finding>> {
    match c.usage_reporting_id.as_deref().filter(|s| !s.is_empty()) {
        Some(id) if is_consumer_id(id) => Ok(WireIdentity::GcpConsumer(id.to_owned())),
        Some(id) => Err(vec![Finding::new(
            Code::InvalidCustomerIdentifier,
            "gcp.consumer",
            Some("customer"),
            format!(
                "usage_reporting_id {} is not a Service Control consumerId",
                shown(id)
            ),
        )
        .hint("use the entitlement's usageReportingId, e.g. project_number:123456789".into())]),
        None if is_consumer_id(&c.customer) => Ok(WireIdentity::GcpConsumer(c.customer.clone())),
        None => Err(vec![Finding::new(
            Code::InvalidCustomerIdentifier,
            "gcp.consumer",
            Some("customer"),
            format!(
                "the contract has no usage_reporting_id, and the customer key {} is not a consumerId Google would take",
                shown(&c.customer)
            ),
        )
        .hint("set usage_reporting_id in the contract: the entitlement's usageReportingId, e.g. project_number:123456789".into())]),
    }
}

/// A metric name without this product's `<service>/` prefix (`svc.example.com/requests` →
/// `requests`); other names are returned as they are.
pub fn short_metric_name<'a>(product: &str, name: &'a str) -> &'a str {
    name.strip_prefix(product)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|m| !m.is_empty())
        .unwrap_or(name)
}

/// The full metric name, `<service>/<metric>`, that goes on the wire as `metricName`.
pub fn full_metric_name(product: &str, name: &str) -> String {
    format!("{product}/{}", short_metric_name(product, name))
}

/// Why a record's metric names no metric of its contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricError {
    /// `<service>/` with nothing after it.
    NoName,
    /// `<other service>/<metric>`.
    OtherService(String),
    /// A well-formed name the contract does not list (the short name).
    NotListed(String),
}

/// A record's metric, resolved against its contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedMetric<'c> {
    /// The index of the contract's dimension.
    pub index: usize,
    /// The contract's dimension.
    pub dimension: &'c Dimension,
    /// `<service>/<metric>`, as sent.
    pub full_name: String,
}

/// The one resolution of a Google record's metric: `requests` and `svc.example.com/requests`
/// name the same metric of product `svc.example.com`, whichever form the contract lists.
/// The core's `gcp.metric` rule and the wire builder both call it.
pub fn resolve_metric<'c>(
    product: &str,
    dimension: &str,
    contract: &'c Contract,
) -> Result<ResolvedMetric<'c>, MetricError> {
    let short = match dimension.split_once('/') {
        None => dimension,
        Some((service, metric)) if service == product && !metric.is_empty() => metric,
        Some((service, _)) if service == product => return Err(MetricError::NoName),
        Some((service, _)) => return Err(MetricError::OtherService(service.to_owned())),
    };
    contract
        .dimensions
        .iter()
        .enumerate()
        .find(|(_, d)| short_metric_name(product, &d.name) == short)
        .map(|(index, d)| ResolvedMetric {
            index,
            dimension: d,
            full_name: format!("{product}/{short}"),
        })
        .ok_or_else(|| MetricError::NotListed(short.to_owned()))
}

/// The finding for a metric that does not resolve; `None` for [`MetricError::NotListed`],
/// which the shared unknown-dimension finding reports.
pub(crate) fn metric_finding(rec: &UsageRecord, e: &MetricError) -> Option<Finding> {
    match e {
        MetricError::NoName => Some(
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
        ),
        MetricError::OtherService(service) => Some(
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
        ),
        MetricError::NotListed(_) => None,
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

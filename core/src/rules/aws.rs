//! AWS Marketplace (SaaS `BatchMeterUsage`): the constants and the checks only AWS has.
//!
//! Sources (see `docs/RULES.md`): A1 = AWS SDK model `marketplace-metering.json`
//! (aws-sdk-js-v3), A4 = AWS Marketplace seller guide, A5 = metering quotas, A6 = API change log,
//! seeds = Tackle/Clazar help pages.

use rust_decimal::Decimal;

use crate::contract::Contract;
use crate::finding::{Code, Finding};
use crate::model::{Allocation, UsageRecord};
use crate::parse::shown;

/// Default look-back: a Timestamp may be at most 6 hours before now.
/// Source: seeds (Tackle "backdated up to 6 hours"); A2, A3, A4. Rule `aws.lookback`.
pub const LOOKBACK_SECS: i64 = 6 * 3600;
/// Look-back of the 24 h profile: records are not accepted "24 hours or more after an event".
/// Source: A1 (BatchMeterUsage documentation). Setting `aws.lookback = "24h"`. Rule `aws.lookback`.
pub const LOOKBACK_24H_SECS: i64 = 24 * 3600;
/// Month-end grace of the 24 h profile: the previous month's usage is accepted until 06:00 UTC
/// on day 1. Source: A1. Rule `aws.month_end`.
pub const MONTH_END_GRACE_SECS: i64 = 6 * 3600;
/// After cancellation or the contract's end, usage dated before it may be sent for 1 hour.
/// Source: seeds (Tackle: "one (1) hour after it was canceled"); A4. Rule `aws.post_cancel`.
pub const POST_CANCEL_SECS: i64 = 3600;
/// Largest quantity: `UsageQuantity` is an integer 0..=2147483647. Source: A1. Rule `aws.quantity`.
pub const MAX_QUANTITY: i64 = 2_147_483_647;
/// Longest dimension name (`UsageDimension` length 1..255). Source: A1. Rule `aws.dimension`.
pub const MAX_DIMENSION_CHARS: usize = 255;
/// Longest ProductCode. Source: A1 (`^[-a-zA-Z0-9/=:_.@]*$`, length ≤ 255). Rule `aws.product`.
pub const MAX_PRODUCT_CHARS: usize = 255;
/// Longest CustomerIdentifier / CustomerAWSAccountId. Source: A1. Rule `aws.identity`.
pub const MAX_CUSTOMER_CHARS: usize = 255;
/// Allocations per record: 1..=2500. Source: A1 (`UsageAllocations`). Rule `aws.allocations`.
pub const MAX_ALLOCATIONS: usize = 2500;
/// Tags per allocation: at most 5. Source: A1 (`TagList`, `InvalidTagException`).
/// Rule `aws.allocations`.
pub const MAX_TAGS: usize = 5;
/// Tag key length 1..=100. Source: A1 (`TagKey`). Rule `aws.allocations`.
pub const MAX_TAG_KEY_CHARS: usize = 100;
/// Tag value length 1..=256. Source: A1 (`TagValue`). Rule `aws.allocations`.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// Records per `BatchMeterUsage` call. Source: A1. Rule `aws.batch`.
pub const MAX_BATCH_RECORDS: usize = 25;
/// A request must be under 1 MB. Source: A1. Rule `aws.batch`.
pub const MAX_BATCH_BYTES: usize = 1_000_000;
/// Calls per second per account and region. Source: A5. Rule `aws.rate`.
pub const MAX_CALLS_PER_SECOND: u32 = 10;
/// `BatchMeterUsage` exceptions that one record causes and that refuse the whole call. The
/// core rejects such records before they are sent, but a stale contract can let one through:
/// the submitter then splits the call in halves until it finds the records at fault, rejects
/// them with the exception's name and sends the others. Source: A1. Rule `aws.batch`.
pub const RECORD_EXCEPTIONS: [&str; 6] = [
    "TimestampOutOfBoundsException",
    "InvalidUsageDimensionException",
    "InvalidLicenseException",
    "InvalidTagException",
    "InvalidUsageAllocationsException",
    "InvalidCustomerIdentifierException",
];
/// `BatchMeterUsage` exceptions about the call as a whole (the product, the API): every
/// record of the call is rejected, and splitting would not help. Source: A1. Rule `aws.batch`.
pub const CALL_EXCEPTIONS: [&str; 2] = ["InvalidProductCodeException", "DisabledApiException"];

fn product_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '=' | ':' | '_' | '.' | '@')
}

/// `^[a-zA-Z0-9+ -=._:\/@]+$` from A1, read literally: ` -=` is the range from space to `=`,
/// and `\/` is an escaped `/` (a backslash is not allowed).
fn tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || (' '..='=').contains(&c)
        || matches!(c, '+' | '.' | '_' | ':' | '/' | '@')
}

/// `ProductCode` length and pattern.
pub(crate) fn check_product(rec: &UsageRecord, out: &mut Vec<Finding>) {
    let p = &rec.product;
    if p.chars().count() > MAX_PRODUCT_CHARS || !p.chars().all(product_char) {
        let cleaned: String = p
            .chars()
            .filter(|c| product_char(*c))
            .take(MAX_PRODUCT_CHARS)
            .collect();
        out.push(
            Finding::new(
                Code::InvalidProductCode,
                "aws.product",
                Some("product"),
                format!("product code {} breaks AWS's pattern (letters, digits and - / = : _ . @, at most 255)", shown(p)),
            )
            .hint(format!("use the product code from the AMMP listing, e.g. {}", shown(&cleaned))),
        );
    }
}

/// Dimension name length.
pub(crate) fn check_dimension_form(rec: &UsageRecord, out: &mut Vec<Finding>) {
    if rec.dimension.chars().count() > MAX_DIMENSION_CHARS {
        out.push(
            Finding::new(
                Code::InvalidUsageDimension,
                "aws.dimension",
                Some("dimension"),
                format!(
                    "dimension is {} characters; AWS allows at most {MAX_DIMENSION_CHARS}",
                    rec.dimension.chars().count()
                ),
            )
            .hint(
                "use the dimension's API name from the product listing (1..255 characters)".into(),
            ),
        );
    }
}

/// CustomerIdentifier XOR CustomerAWSAccountId, account id digits, LicenseArn pattern.
pub(crate) fn check_identity(c: &Contract, out: &mut Vec<Finding>) {
    let rule = "aws.identity";
    if c.customer_identifier.is_some() && c.aws_account_id.is_some() {
        out.push(
            Finding::new(
                Code::InvalidCustomerIdentifier,
                rule,
                Some("customer"),
                "the contract sets both customer_identifier and aws_account_id; AWS takes exactly one".into(),
            )
            .hint("keep aws_account_id + license_arn (required for new SaaS products from 2026-06-01)".into()),
        );
    }
    if let Some(id) = &c.customer_identifier {
        if id.is_empty() || id.chars().count() > MAX_CUSTOMER_CHARS {
            out.push(
                Finding::new(
                    Code::InvalidCustomerIdentifier,
                    rule,
                    Some("customer"),
                    format!(
                        "customer_identifier {} must be 1..=255 characters",
                        shown(id)
                    ),
                )
                .hint("use the CustomerIdentifier that ResolveCustomer returned".into()),
            );
        }
    }
    if let Some(acct) = &c.aws_account_id {
        if acct.is_empty()
            || acct.len() > MAX_CUSTOMER_CHARS
            || !acct.bytes().all(|b| b.is_ascii_digit())
        {
            out.push(
                Finding::new(
                    Code::InvalidCustomerIdentifier,
                    rule,
                    Some("customer"),
                    format!("aws_account_id {} must be digits only", shown(acct)),
                )
                .hint("use the buyer's 12-digit AWS account id from ResolveCustomer".into()),
            );
        }
        if c.license_arn.is_none() {
            out.push(
                Finding::new(
                    Code::InvalidLicense,
                    rule,
                    Some("customer"),
                    "aws_account_id is set without license_arn; BatchMeterUsage needs both".into(),
                )
                .hint("add the LicenseArn that ResolveCustomer returned".into()),
            );
        }
    }
    if let Some(arn) = &c.license_arn {
        if !license_arn_ok(arn) {
            out.push(
                Finding::new(
                    Code::InvalidLicense,
                    rule,
                    Some("customer"),
                    format!("license_arn {} is not a valid ARN", shown(arn)),
                )
                .hint("expected arn:aws:license-manager::<account>:license:l-<id>".into()),
            );
        }
    }
}

/// `^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$` (A1).
pub fn license_arn_ok(arn: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let seg = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-');
    let first_alnum = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_alphabetic() || c == '-'))
        && first_alnum(service)
        && service.len() <= 63
        && service.chars().all(seg)
        && region.len() <= 63
        && region.chars().all(seg)
        && account.len() <= 63
        && account.chars().all(seg)
        && first_alnum(resource)
        && resource.len() <= 1024
        && resource
            .chars()
            .all(|c| seg(c) || matches!(c, ':' | '+' | '=' | ',' | '@'))
}

/// Integer 0..=2147483647.
pub(crate) fn check_quantity(rec: &UsageRecord, out: &mut Vec<Finding>) {
    let q = rec.quantity;
    if q.is_sign_negative() && !q.is_zero() {
        return; // reported by the common rule
    }
    if q.fract() != Decimal::ZERO {
        out.push(
            Finding::new(
                Code::InvalidQuantity,
                "aws.quantity",
                Some("quantity"),
                format!("quantity {q} is not a whole number; AWS meters integers only"),
            )
            .hint(format!(
                "send {} and carry {} into the next hour",
                q.trunc(),
                q.fract()
            )),
        );
    } else if q > Decimal::from(MAX_QUANTITY) {
        out.push(
            Finding::new(
                Code::InvalidQuantity,
                "aws.quantity",
                Some("quantity"),
                format!("quantity {q} is above AWS's maximum {MAX_QUANTITY}"),
            )
            .hint("use a larger unit for this dimension, or split the usage across hours".into()),
        );
    }
}

/// Allocation count, quantities, sum, unique tag sets, tags.
pub(crate) fn check_allocations(rec: &UsageRecord, allocs: &[Allocation], out: &mut Vec<Finding>) {
    let rule = "aws.allocations";
    let bad = |msg: String| {
        Finding::new(
            Code::InvalidUsageAllocations,
            rule,
            Some("allocations"),
            msg,
        )
    };
    if allocs.is_empty() || allocs.len() > MAX_ALLOCATIONS {
        out.push(
            bad(format!(
                "{} allocations; AWS takes 1..={MAX_ALLOCATIONS}",
                allocs.len()
            ))
            .hint(if allocs.is_empty() {
                "leave allocations out, or give at least one".to_owned()
            } else {
                format!("merge allocations into at most {MAX_ALLOCATIONS} tag sets")
            }),
        );
        return;
    }
    let mut sum = Decimal::ZERO;
    let mut sets: Vec<Vec<(&str, &str)>> = Vec::with_capacity(allocs.len());
    let mut tag_errors = 0;
    for (i, a) in allocs.iter().enumerate() {
        if a.quantity.is_sign_negative() && !a.quantity.is_zero()
            || a.quantity.fract() != Decimal::ZERO
            || a.quantity > Decimal::from(MAX_QUANTITY)
        {
            out.push(
                bad(format!(
                    "allocation {i} has quantity {}; each must be an integer 0..={MAX_QUANTITY}",
                    a.quantity
                ))
                .hint(format!(
                    "use a whole number for allocation {i}, e.g. {}",
                    a.quantity
                        .trunc()
                        .max(Decimal::ZERO)
                        .min(Decimal::from(MAX_QUANTITY))
                )),
            );
        }
        sum = sum.saturating_add(a.quantity);
        if a.tags.len() > MAX_TAGS {
            out.push(
                Finding::new(
                    Code::InvalidTag,
                    rule,
                    Some("allocations"),
                    format!(
                        "allocation {i} has {} tags; AWS allows at most {MAX_TAGS}",
                        a.tags.len()
                    ),
                )
                .hint(format!("keep at most {MAX_TAGS} tags per allocation")),
            );
        }
        for t in &a.tags {
            let key_ok = (1..=MAX_TAG_KEY_CHARS).contains(&t.key.chars().count())
                && t.key.chars().all(tag_char);
            let value_ok = (1..=MAX_TAG_VALUE_CHARS).contains(&t.value.chars().count())
                && t.value.chars().all(tag_char);
            if (!key_ok || !value_ok) && tag_errors < 3 {
                tag_errors += 1;
                out.push(
                    Finding::new(
                        Code::InvalidTag,
                        rule,
                        Some("allocations"),
                        format!("allocation {i}: tag {}={} breaks AWS's length or character rules", shown(&t.key), shown(&t.value)),
                    )
                    .hint("keys 1..100 and values 1..256 characters of letters, digits, space and + - = . _ : / @".into()),
                );
            }
        }
        let mut set: Vec<(&str, &str)> = a
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        set.sort_unstable();
        sets.push(set);
    }
    if sum != rec.quantity {
        out.push(
            bad(format!(
                "allocations sum to {sum}, but the record's quantity is {}",
                rec.quantity
            ))
            .hint(format!(
                "make the allocations add up to {} or set quantity to {sum}",
                rec.quantity
            )),
        );
    }
    sets.sort_unstable();
    if sets.windows(2).any(|w| w.first() == w.get(1)) {
        out.push(
            bad("two allocations have the same tag set; each allocation needs a unique one".into())
                .hint("merge allocations with identical tags into one".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_arns() {
        assert!(license_arn_ok(
            "arn:aws:license-manager::123456789012:license:l-0123456789abcdef"
        ));
        assert!(license_arn_ok(
            "arn:aws-us-gov:license-manager::123456789012:license:l-1"
        ));
        assert!(!license_arn_ok("arn:azure:license-manager::1:license:l-1"));
        assert!(!license_arn_ok("license:l-1"));
        assert!(!license_arn_ok("arn:aws:license-manager::1:"));
    }

    #[test]
    fn tag_chars_follow_the_literal_pattern() {
        assert!(tag_char(' ') && tag_char('#') && tag_char('=') && tag_char('@'));
        assert!(!tag_char('>') && !tag_char('é') && !tag_char('\n') && !tag_char('\\'));
    }
}

//! AWS Marketplace notifications.
//!
//! * SNS (topics `aws-mp-subscription-notification-*` and `aws-mp-entitlement-notification-*`):
//!   the SNS envelope (`Type: Notification`, `MessageId`, `TopicArn`, `Timestamp`) carries
//!   `Message`, a JSON string with `action`, `customer-identifier` (or, for newer listings,
//!   `customer-aws-account-id`) and `product-code`. The envelope's `Timestamp` is the event
//!   time, its `MessageId` the key.
//!
//!   | action | effect |
//!   |---|---|
//!   | `subscribe-success` | `active` (a cancellation is undone) |
//!   | `subscribe-fail` | `pending` (no usage) |
//!   | `unsubscribe-pending` | `cancelled` at the event time: about one hour is left for usage dated before it |
//!   | `unsubscribe-success` | `cancelled` (an earlier `unsubscribe-pending` time stands) |
//!   | `entitlement-updated` | recorded; `contracts sync` reads the new entitlements |
//!
//! * EventBridge, source `aws.agreement-marketplace` (`id` is the key, `time` the event time;
//!   `detail.agreement.id`, `detail.acceptor.accountId`, `detail.product.code`):
//!
//!   | detail-type (`- Manufacturer` or `- Proposer`) | effect |
//!   |---|---|
//!   | `Purchase Agreement Created` | `active`; the agreement id becomes the contract's `marketplace_id` |
//!   | `Purchase Agreement Amended`, `License Updated` | recorded |
//!   | `Purchase Agreement Ended` | `ended` when `detail.agreement.status` is `EXPIRED`; recorded when `RENEWED`, `REPLACED` or `SUPERSEDED` (a new agreement follows); else `cancelled` |
//!   | `License Deprovisioned` | `cancelled` (the one-hour final reporting window starts) |

use metergate_core::Marketplace;
use serde_json::Value;

use super::{opt_str, req_str, req_time, Bad, Effect, Event, Target};

/// An SNS envelope from an AWS Marketplace topic.
pub fn parse_sns(v: &Value) -> Result<Event, Bad> {
    let ty = req_str(v, "Type", "")?;
    if ty != "Notification" {
        return Err(Bad::new(
            "Type",
            format!("{ty:?} is not a Notification (confirm SubscriptionConfirmation messages with SNS, not metergate)"),
        ));
    }
    let id = req_str(v, "MessageId", "")?;
    let at = req_time(v, "Timestamp", "")?;
    let text = req_str(v, "Message", "")?;
    let m: Value =
        serde_json::from_str(text).map_err(|e| Bad::new("Message", format!("is not JSON: {e}")))?;
    let action = req_str(&m, "action", "Message.")?;
    let product = req_str(&m, "product-code", "Message.")?.trim().to_owned();
    let customer_identifier = opt_str(&m, "customer-identifier");
    let account_id = opt_str(&m, "customer-aws-account-id");
    if customer_identifier.is_none() && account_id.is_none() {
        return Err(Bad::new(
            "Message.customer-identifier",
            "is missing (and so is customer-aws-account-id)",
        ));
    }
    let effect = match action {
        "subscribe-success" => Effect::Activate,
        "subscribe-fail" => Effect::Pending,
        "unsubscribe-pending" | "unsubscribe-success" => Effect::Cancel,
        "entitlement-updated" => Effect::Record,
        other => {
            return Err(Bad::new(
                "Message.action",
                format!("unknown action {other:?}; expected subscribe-success, subscribe-fail, unsubscribe-pending, unsubscribe-success or entitlement-updated"),
            ))
        }
    };
    Ok(Event {
        marketplace: Marketplace::Aws,
        kind: action.to_owned(),
        key: format!("aws-sns:{id}"),
        at,
        target: Target::AwsCustomer {
            product,
            customer_identifier,
            account_id,
        },
        effect,
        marketplace_id: None,
    })
}

/// An EventBridge event from `aws.agreement-marketplace`.
pub fn parse_eventbridge(v: &Value) -> Result<Event, Bad> {
    let id = req_str(v, "id", "")?;
    let at = req_time(v, "time", "")?;
    let kind = req_str(v, "detail-type", "")?;
    let detail = v
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or_else(|| Bad::new("detail", "is missing or not an object"))?;
    let base = kind
        .strip_suffix(" - Manufacturer")
        .or_else(|| kind.strip_suffix(" - Proposer"))
        .unwrap_or(kind);
    let agreement = detail.get("agreement").cloned().unwrap_or(Value::Null);
    let agreement_id = opt_str(&agreement, "id");
    let status = opt_str(&agreement, "status").unwrap_or_default();
    let account_id = detail.get("acceptor").and_then(|a| opt_str(a, "accountId"));
    let product = detail.get("product").and_then(|p| opt_str(p, "code"));
    let mut marketplace_id = None;
    let effect = match base {
        "Purchase Agreement Created" => {
            marketplace_id = agreement_id.clone();
            if marketplace_id.is_none() {
                return Err(Bad::new("detail.agreement.id", "is missing"));
            }
            Effect::Activate
        }
        "Purchase Agreement Amended" | "License Updated" => Effect::Record,
        "Purchase Agreement Ended" => match status.as_str() {
            "EXPIRED" => Effect::End,
            "RENEWED" | "REPLACED" | "SUPERSEDED" => Effect::Record,
            _ => Effect::Cancel,
        },
        "License Deprovisioned" => Effect::Cancel,
        other => {
            return Err(Bad::new(
                "detail-type",
                format!("unknown event {other:?}; expected Purchase Agreement Created/Amended/Ended or License Updated/Deprovisioned"),
            ))
        }
    };
    if agreement_id.is_none() && (account_id.is_none() || product.is_none()) {
        return Err(Bad::new(
            "detail.agreement.id",
            "is missing, and so is detail.acceptor.accountId with detail.product.code",
        ));
    }
    // A new agreement is not known by its id yet: then its acceptor and product match it.
    let target = Target::AwsAgreement {
        agreement_id,
        account_id,
        product,
    };
    Ok(Event {
        marketplace: Marketplace::Aws,
        kind: kind.to_owned(),
        key: format!("aws-eventbridge:{id}"),
        at,
        target,
        effect,
        marketplace_id,
    })
}

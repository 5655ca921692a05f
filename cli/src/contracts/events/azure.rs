//! Microsoft SaaS fulfillment API v2 webhook bodies.
//!
//! `{"id": <operation id>, "activityId", "publisherId", "offerId", "planId", "quantity",
//! "subscriptionId", "timeStamp", "action", "status", "operationRequestSource",
//! "subscription": {...}}`. `id` (the operation id) is the key, `timeStamp` the event time;
//! `subscriptionId` is matched against the contract's `resource_id` (or `marketplace_id`).
//! Only operations whose `status` is `Succeeded` change a contract; others (`InProgress`,
//! `Failed`, ...) are recorded. Microsoft asks the receiver to confirm a webhook with the
//! Get Operation call before acting on it: `contracts sync` reads the subscription itself.
//!
//! | action | effect |
//! |---|---|
//! | `Unsubscribe` | `cancelled` at `timeStamp`: usage dated before it may still go in within the 24-hour look-back |
//! | `Suspend` | `suspended` |
//! | `Reinstate` | `active` |
//! | `ChangePlan` | the plan becomes `planId` |
//! | `ChangeQuantity` | recorded |
//! | `Renew` | `active` |

use metergate_core::Marketplace;
use serde_json::Value;

use super::{opt_str, req_str, req_time, Bad, Effect, Event, Target};

/// A webhook body.
pub fn parse_webhook(v: &Value) -> Result<Event, Bad> {
    let action = req_str(v, "action", "")?;
    let sub = req_str(v, "subscriptionId", "")?
        .trim()
        .to_ascii_lowercase();
    let at = req_time(v, "timeStamp", "")?;
    let id = req_str(v, "id", "")?;
    let status = opt_str(v, "status").unwrap_or_else(|| "Succeeded".into());
    let effect = match action {
        "Unsubscribe" => Effect::Cancel,
        "Suspend" => Effect::Suspend,
        "Reinstate" | "Renew" => Effect::Activate,
        "ChangePlan" => Effect::Plan(req_str(v, "planId", "")?.to_owned()),
        "ChangeQuantity" => Effect::Record,
        other => {
            return Err(Bad::new(
                "action",
                format!("unknown action {other:?}; expected Unsubscribe, Suspend, Reinstate, ChangePlan, ChangeQuantity or Renew"),
            ))
        }
    };
    let effect = if status == "Succeeded" {
        effect
    } else {
        Effect::Record
    };
    Ok(Event {
        marketplace: Marketplace::Azure,
        kind: action.to_owned(),
        key: format!("azure:{id}:{status}"),
        at,
        target: Target::MarketplaceId(Marketplace::Azure, sub),
        effect,
        marketplace_id: None,
    })
}

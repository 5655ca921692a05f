//! Google Cloud Marketplace Pub/Sub messages (Partner Procurement API notifications).
//!
//! A message is `{"eventId", "eventType", "providerId", "entitlement": {"id", "updateTime",
//! "newPlan", ...}}`, delivered raw (a pull subscription) or wrapped by a push subscription in
//! `{"message": {"data": <base64 of the message>, "messageId", "publishTime", ...},
//! "subscription"}`. `eventId` is the key; `entitlement.updateTime` is the event time (the
//! push envelope's `publishTime` when there is none). The entitlement id is matched against
//! the contract's `marketplace_id`.
//!
//! | eventType | effect |
//! |---|---|
//! | `ENTITLEMENT_CREATION_REQUESTED` | `pending` (not billable until approved and active) |
//! | `ENTITLEMENT_ACTIVE`, `ENTITLEMENT_CANCELLATION_REVERTED` | `active` |
//! | `ENTITLEMENT_PLAN_CHANGED` | the plan becomes `entitlement.newPlan` |
//! | `ENTITLEMENT_PLAN_CHANGE_REQUESTED`, `ENTITLEMENT_PLAN_CHANGE_CANCELLED`, `ENTITLEMENT_PENDING_CANCELLATION`, `ENTITLEMENT_CANCELLING`, `ENTITLEMENT_OFFER_ACCEPTED`, `ENTITLEMENT_RENEWED` | recorded (still billable) |
//! | `ENTITLEMENT_CANCELLED`, `ENTITLEMENT_DELETED` | `cancelled` at the event time: one hour is left for usage dated before it |
//! | `ENTITLEMENT_OFFER_ENDED` | `ended` at the event time |

use base64::Engine;
use chrono::{DateTime, Utc};
use metergate_core::Marketplace;
use serde_json::Value;

use super::{opt_str, req_str, req_time, Bad, Effect, Event, Target};

/// A push envelope: decodes `message.data` and parses the message inside.
pub fn parse_push(v: &Value) -> Result<Event, Bad> {
    let m = v
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| Bad::new("message", "is not an object"))?;
    let data = req_str(m, "data", "message.")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Bad::new("message.data", format!("is not base64: {e}")))?;
    let inner: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Bad::new("message.data", format!("is not a JSON message: {e}")))?;
    let publish = m
        .get("publishTime")
        .map(|_| req_time(m, "publishTime", "message."))
        .transpose()?;
    let message_id = opt_str(m, "messageId").or_else(|| opt_str(m, "message_id"));
    parse_message(&inner, publish, message_id).map_err(|b| Bad {
        field: format!("message.data.{}", b.field),
        message: b.message,
    })
}

/// A raw message (or the one inside a push envelope).
pub fn parse_message(
    v: &Value,
    publish_time: Option<DateTime<Utc>>,
    message_id: Option<String>,
) -> Result<Event, Bad> {
    let kind = req_str(v, "eventType", "")?;
    let ent = v
        .get("entitlement")
        .filter(|e| e.is_object())
        .ok_or_else(|| Bad::new("entitlement", "is missing or not an object"))?;
    let id = req_str(ent, "id", "entitlement.")?.trim().to_owned();
    let at = match (ent.get("updateTime"), publish_time) {
        (Some(_), _) => req_time(ent, "updateTime", "entitlement.")?,
        (None, Some(t)) => t,
        (None, None) => return Err(Bad::new("entitlement.updateTime", "is missing")),
    };
    let key = opt_str(v, "eventId")
        .or(message_id)
        .ok_or_else(|| Bad::new("eventId", "is missing"))?;
    let effect = match kind {
        "ENTITLEMENT_CREATION_REQUESTED" => Effect::Pending,
        "ENTITLEMENT_ACTIVE" | "ENTITLEMENT_CANCELLATION_REVERTED" => Effect::Activate,
        "ENTITLEMENT_PLAN_CHANGED" => Effect::Plan(req_str(ent, "newPlan", "entitlement.")?.to_owned()),
        "ENTITLEMENT_PLAN_CHANGE_REQUESTED"
        | "ENTITLEMENT_PLAN_CHANGE_CANCELLED"
        | "ENTITLEMENT_PENDING_CANCELLATION"
        | "ENTITLEMENT_CANCELLING"
        | "ENTITLEMENT_OFFER_ACCEPTED"
        | "ENTITLEMENT_RENEWED" => Effect::Record,
        "ENTITLEMENT_CANCELLED" | "ENTITLEMENT_DELETED" => Effect::Cancel,
        "ENTITLEMENT_OFFER_ENDED" => Effect::End,
        other => {
            return Err(Bad::new(
                "eventType",
                format!("unknown event type {other:?}; expected one of the ENTITLEMENT_* types of the Partner Procurement API"),
            ))
        }
    };
    Ok(Event {
        marketplace: Marketplace::Gcp,
        kind: kind.to_owned(),
        key: format!("gcp:{key}"),
        at,
        target: Target::MarketplaceId(Marketplace::Gcp, id),
        effect,
        marketplace_id: None,
    })
}

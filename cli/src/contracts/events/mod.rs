//! Lifecycle notifications from the marketplaces, applied to the contract store.
//!
//! [`parse`] recognises an event by its shape and turns it into one [`Event`]: which contract
//! it is about ([`Target`]), what it does to it ([`Effect`]), its own time and a key that is
//! the same when the marketplace delivers it again. [`apply`] then:
//!
//! 1. finds the contract (no match: an error, nothing changes);
//! 2. a replay (the key is already in the history) changes nothing and records nothing;
//! 3. an event older than the contract's `state_at` (the time of the last event or sync that
//!    changed it) is recorded in the history and changes nothing;
//! 4. otherwise the effect is applied, the event's time becomes `state_at` and
//!    `cancelled_at`/`ends_at` where the effect stops the contract, and the whole store is
//!    checked by the core before it is written, in one transaction.
//!
//! States are set with the five canonical words (`pending`, `active`, `suspended`,
//! `cancelled`, `ended`), through the contract's JSON, so the store follows the core's
//! [`Contract`] as it grows.

pub mod aws;
pub mod azure;
pub mod gcp;

use chrono::{DateTime, Utc};
use metergate_core::time::format_rfc3339;
use metergate_core::{Contract, ContractStatus, Marketplace};
use serde::Serialize;
use serde_json::Value;

use super::store::{Cause, Store, StoreError, Write};

/// Which contract an event is about, as the event names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The marketplace's id of the contract (AWS agreement id, Microsoft SaaS subscription
    /// id, Google entitlement id).
    MarketplaceId(Marketplace, String),
    /// AWS: a `customer-identifier` (or account id) of a product code.
    AwsCustomer {
        /// The product code.
        product: String,
        /// `customer-identifier`, when the event has one.
        customer_identifier: Option<String>,
        /// `customer-aws-account-id` / the acceptor's account id, when the event has one.
        account_id: Option<String>,
    },
    /// An AWS agreement id, or else an acceptor account of a product.
    AwsAgreement {
        /// The agreement id.
        agreement_id: Option<String>,
        /// The acceptor's account id.
        account_id: Option<String>,
        /// The product code.
        product: Option<String>,
    },
}

/// What an event does to its contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Billable from now: `active`, no cancellation.
    Activate,
    /// Not live yet (or the purchase failed): `pending`.
    Pending,
    /// `suspended`.
    Suspend,
    /// `cancelled` at the event's time (an earlier cancellation stands).
    Cancel,
    /// `ended` at the event's time.
    End,
    /// A new plan; the state stays.
    Plan(String),
    /// Recorded in the history only (quantity or entitlement changes: run `contracts sync`).
    Record,
}

/// One lifecycle notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Marketplace.
    pub marketplace: Marketplace,
    /// The event's type, as the marketplace writes it (`unsubscribe-pending`, `Suspend`,
    /// `ENTITLEMENT_CANCELLED`, `Purchase Agreement Ended - Manufacturer`).
    pub kind: String,
    /// The same for every delivery of this event.
    pub key: String,
    /// The event's own time.
    pub at: DateTime<Utc>,
    /// Which contract.
    pub target: Target,
    /// What it does.
    pub effect: Effect,
    /// A new marketplace id to remember (a new AWS agreement).
    pub marketplace_id: Option<String>,
}

/// An event that cannot be used: unknown, malformed, or for no stored contract. Exit 2.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON.
    #[error("{source_name}: not JSON: {message}")]
    NotJson {
        /// The file.
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// A shape metergate does not know.
    #[error("{source_name}: unknown event: {message}")]
    Unknown {
        /// The file.
        source_name: String,
        /// What was looked for.
        message: String,
    },
    /// A known shape with a missing or bad field.
    #[error("{source_name}: {kind}: field {field}: {message}")]
    Malformed {
        /// The file.
        source_name: String,
        /// The event's shape.
        kind: String,
        /// The field at fault.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No stored contract matches.
    #[error("{source_name}: {kind}: no contract in the store matches {target}; run `metergate contracts sync` or `contracts import` first")]
    NoContract {
        /// The file.
        source_name: String,
        /// The event type.
        kind: String,
        /// The identity the event carries.
        target: String,
    },
    /// The store failed or refused the change.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A shape error of a known event.
#[derive(Debug)]
pub struct Bad {
    /// The field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Bad {
    /// A bad field.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Bad {
        Bad {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A required string field.
pub fn req_str<'a>(v: &'a Value, field: &str, path: &str) -> Result<&'a str, Bad> {
    match v.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.as_str()),
        Some(Value::String(_)) => Err(Bad::new(format!("{path}{field}"), "is empty")),
        Some(_) => Err(Bad::new(format!("{path}{field}"), "is not a string")),
        None => Err(Bad::new(format!("{path}{field}"), "is missing")),
    }
}

/// An optional string field (empty counts as missing).
pub fn opt_str(v: &Value, field: &str) -> Option<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A required RFC 3339 time field (any fraction of a second).
pub fn req_time(v: &Value, field: &str, path: &str) -> Result<DateTime<Utc>, Bad> {
    let s = req_str(v, field, path)?;
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Bad::new(
                format!("{path}{field}"),
                format!("{s:?} is not an RFC 3339 time: {e}"),
            )
        })
}

/// Recognises and parses one event document (`source_name` names it in errors).
pub fn parse(text: &str, source_name: &str) -> Result<Event, EventError> {
    let v: Value = serde_json::from_str(text).map_err(|e| EventError::NotJson {
        source_name: source_name.to_owned(),
        message: e.to_string(),
    })?;
    let malformed = |kind: &str, b: Bad| EventError::Malformed {
        source_name: source_name.to_owned(),
        kind: kind.to_owned(),
        field: b.field,
        message: b.message,
    };
    if !v.is_object() {
        return Err(EventError::Unknown {
            source_name: source_name.to_owned(),
            message: "an event is a JSON object".into(),
        });
    }
    if v.get("Type").is_some() && v.get("TopicArn").is_some() {
        return aws::parse_sns(&v).map_err(|b| malformed("AWS SNS notification", b));
    }
    if v.get("source").and_then(Value::as_str) == Some("aws.agreement-marketplace") {
        return aws::parse_eventbridge(&v).map_err(|b| malformed("AWS EventBridge event", b));
    }
    if v.get("action").is_some() && v.get("subscriptionId").is_some() {
        return azure::parse_webhook(&v).map_err(|b| malformed("Microsoft webhook", b));
    }
    if v.get("message").is_some_and(|m| m.get("data").is_some()) {
        return gcp::parse_push(&v).map_err(|b| malformed("Google Pub/Sub push message", b));
    }
    if v.get("eventType").is_some() && v.get("entitlement").is_some() {
        return gcp::parse_message(&v, None, None)
            .map_err(|b| malformed("Google Pub/Sub message", b));
    }
    Err(EventError::Unknown {
        source_name: source_name.to_owned(),
        message: "not an AWS SNS notification (Type, TopicArn, Message), an EventBridge event from aws.agreement-marketplace, a Microsoft webhook (action, subscriptionId) or a Google Pub/Sub message (eventType, entitlement; or message.data)".into(),
    })
}

/// What [`apply`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The contract changed.
    Applied,
    /// Recorded; the contract did not change (no effect on it, or nothing new).
    Recorded,
    /// Older than the contract's state: recorded, nothing changed.
    Stale,
    /// Already applied: nothing changed, nothing recorded.
    Replay,
}

/// The result of applying one event, for output.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    /// What happened.
    pub outcome: Outcome,
    /// The event type.
    pub event: String,
    /// The event's time.
    pub at: String,
    /// Marketplace.
    pub marketplace: String,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
    /// The status before.
    pub previous_status: String,
    /// The status after.
    pub status: String,
    /// Why, in words.
    pub note: String,
}

fn describe(t: &Target) -> String {
    match t {
        Target::MarketplaceId(m, id) => format!("{m} id {id:?}"),
        Target::AwsCustomer {
            product,
            customer_identifier,
            account_id,
        } => {
            let who = customer_identifier
                .as_ref()
                .map(|c| format!("customer-identifier {c:?}"))
                .or_else(|| account_id.as_ref().map(|a| format!("account {a:?}")))
                .unwrap_or_else(|| "no customer".into());
            format!("{who} of product-code {product:?}")
        }
        Target::AwsAgreement {
            agreement_id,
            account_id,
            product,
        } => format!(
            "agreement {:?} (acceptor account {:?}, product {:?})",
            agreement_id.as_deref().unwrap_or(""),
            account_id.as_deref().unwrap_or(""),
            product.as_deref().unwrap_or("")
        ),
    }
}

fn matches(t: &Target, c: &Contract) -> bool {
    match t {
        Target::MarketplaceId(m, id) => {
            *m == c.marketplace
                && (c.marketplace_id.as_deref() == Some(id.as_str())
                    || (*m == Marketplace::Azure
                        && c.resource_id
                            .as_deref()
                            .is_some_and(|r| r.eq_ignore_ascii_case(id))))
        }
        Target::AwsCustomer {
            product,
            customer_identifier,
            account_id,
        } => {
            c.marketplace == Marketplace::Aws
                && c.product == *product
                && (customer_identifier.as_deref().is_some_and(|ci| {
                    c.customer_identifier.as_deref() == Some(ci)
                        || (c.customer_identifier.is_none() && c.customer == ci)
                }) || account_id
                    .as_deref()
                    .is_some_and(|a| c.aws_account_id.as_deref() == Some(a)))
        }
        Target::AwsAgreement { .. } => false,
    }
}

fn find<'a>(t: &Target, all: &'a [Contract]) -> Option<&'a Contract> {
    if let Target::AwsAgreement {
        agreement_id,
        account_id,
        product,
    } = t
    {
        if let Some(id) = agreement_id {
            if let Some(c) = all.iter().find(|c| {
                c.marketplace == Marketplace::Aws && c.marketplace_id.as_deref() == Some(id)
            }) {
                return Some(c);
            }
        }
        return match (account_id, product) {
            (Some(a), Some(p)) => all.iter().find(|c| {
                c.marketplace == Marketplace::Aws
                    && c.product == *p
                    && c.aws_account_id.as_deref() == Some(a.as_str())
            }),
            _ => None,
        };
    }
    all.iter().find(|c| matches(t, c))
}

/// The contract after an effect at time `at`, through its JSON.
fn affect(c: &Contract, e: &Event) -> Result<Contract, StoreError> {
    let mut v = serde_json::to_value(c).map_err(|x| StoreError::Invalid(x.to_string()))?;
    let at = format_rfc3339(e.at);
    let Some(o) = v.as_object_mut() else {
        return Err(StoreError::Invalid(
            "a contract is not a JSON object".into(),
        ));
    };
    let set = |o: &mut serde_json::Map<String, Value>, k: &str, val: &str| {
        o.insert(k.to_owned(), Value::String(val.to_owned()));
    };
    match &e.effect {
        Effect::Activate => {
            set(o, "status", ContractStatus::Active.as_str());
            o.remove("cancelled_at");
        }
        Effect::Pending => set(o, "status", ContractStatus::Pending.as_str()),
        Effect::Suspend => set(o, "status", ContractStatus::Suspended.as_str()),
        Effect::Cancel => {
            let keep =
                c.status == ContractStatus::Cancelled && c.cancelled_at.is_some_and(|t| t <= e.at);
            set(o, "status", ContractStatus::Cancelled.as_str());
            if !keep {
                set(o, "cancelled_at", &at);
            }
        }
        Effect::End => {
            set(o, "status", ContractStatus::Ended.as_str());
            if c.ends_at.is_none_or(|t| t > e.at) {
                set(o, "ends_at", &at);
            }
        }
        Effect::Plan(p) => set(o, "plan", p),
        Effect::Record => {}
    }
    if let Some(id) = &e.marketplace_id {
        set(o, "marketplace_id", id);
    }
    serde_json::from_value(v)
        .map_err(|x| StoreError::Invalid(format!("the event leaves an invalid contract: {x}")))
}

/// Applies one event to the store (see the module documentation).
pub fn apply(store: &mut Store, e: &Event, source_name: &str) -> Result<Applied, EventError> {
    let all: Vec<Contract> = store.all()?.into_iter().map(|s| s.contract).collect();
    let stored = store.all()?;
    let Some(c) = find(&e.target, &all).cloned() else {
        return Err(EventError::NoContract {
            source_name: source_name.to_owned(),
            kind: e.kind.clone(),
            target: describe(&e.target),
        });
    };
    let state_at = stored
        .iter()
        .find(|s| {
            s.contract.marketplace == c.marketplace
                && s.contract.product == c.product
                && s.contract.customer == c.customer
        })
        .and_then(|s| s.state_at);
    let mut out = Applied {
        outcome: Outcome::Applied,
        event: e.kind.clone(),
        at: format_rfc3339(e.at),
        marketplace: c.marketplace.to_string(),
        product: c.product.clone(),
        customer: c.customer.clone(),
        previous_status: c.status.to_string(),
        status: c.status.to_string(),
        note: String::new(),
    };
    if store.has_event(&e.key)? {
        out.outcome = Outcome::Replay;
        out.note = "already applied; nothing changed".into();
        return Ok(out);
    }
    let detail = format!("{} {} ({source_name})", e.marketplace, e.kind);
    if let Some(t) = state_at.filter(|t| e.at < *t) {
        store.write(
            Cause::Event,
            &[Write {
                contract: c.clone(),
                previous: Some(c),
                applied: false,
                state_at: None,
                event_key: Some(e.key.clone()),
                event_time: Some(e.at),
                detail,
            }],
        )?;
        out.outcome = Outcome::Stale;
        out.note = format!(
            "older than the contract's state of {}; recorded, nothing changed",
            format_rfc3339(t)
        );
        return Ok(out);
    }
    let new = affect(&c, e)?;
    let changes = new != c;
    store.write(
        Cause::Event,
        &[Write {
            contract: new.clone(),
            previous: Some(c),
            applied: changes,
            state_at: changes.then_some(e.at),
            event_key: Some(e.key.clone()),
            event_time: Some(e.at),
            detail,
        }],
    )?;
    out.status = new.status.to_string();
    if changes {
        out.note = "applied".into();
    } else {
        out.outcome = Outcome::Recorded;
        out.note = match e.effect {
            Effect::Record => "recorded; run `metergate contracts sync` for the new terms".into(),
            _ => "recorded; the contract already says so".into(),
        };
    }
    Ok(out)
}

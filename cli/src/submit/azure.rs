//! Microsoft commercial marketplace: `batchUsageEvent` (api-version 2018-08-31) over HTTPS.
//!
//! A hand-written JSON client (reqwest + rustls): Microsoft publishes no Rust SDK for the
//! metering API, only its OpenAPI description, and every request this client builds is
//! checked against that description by the test suite (Prism).
//!
//! # Endpoint and credentials
//!
//! `POST {endpoint}/batchUsageEvent?api-version=2018-08-31`, where `endpoint` is
//! `--azure-endpoint`, else `$METERGATE_AZURE_ENDPOINT`, else
//! `https://marketplaceapi.microsoft.com/api`. The bearer token is an Entra ID
//! client-credentials token for resource `20e940b3-4c77-4b0b-9a53-9e16a1b010a7`
//! ([`super::token`]), from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
//!
//! # Wire values
//!
//! Each ledger row keeps one usage event exactly as sent ([`AzureWire`]): `resourceId` (a
//! SaaS subscription id) or `resourceUri` (a managed application) from the contract, else the
//! record's customer key as the `resourceId`; `planId` from the record, else the contract;
//! `dimension`; `quantity` (exact decimal text, written verbatim as the JSON number: see
//! [`super::exact`]); and `effectiveStartTime` truncated to the hour. Microsoft keeps one
//! event per resource, dimension and hour, so a re-send after a crash is the very same event,
//! and Microsoft answers it `Duplicate` naming the event it already has.
//!
//! # Answers
//!
//! | item status | ledger |
//! |---|---|
//! | `Accepted` | `accepted`, with Microsoft's `usageEventId` |
//! | `Duplicate` with the same quantity and plan | `accepted` (an earlier call of ours landed), with the original `usageEventId` |
//! | `Duplicate` with another quantity or plan | `duplicate`: the original stands; its id, quantity (and plan) are kept |
//!
//! Answer items are matched to the events sent by resource, dimension, plan and hour, else by
//! resource, dimension and hour alone: Microsoft keeps one event per resource, dimension and
//! hour, and a `Duplicate` echoes the original event, which carries the old `planId` after a
//! plan change within the hour.
//! | `Expired`, `ResourceNotFound`, `ResourceNotAuthorized`, `ResourceNotActive`, `InvalidDimension`, `InvalidQuantity`, `BadArgument` | `rejected` (final) |
//! | `Error`, an unknown status, or no item for the event | sent again |
//!
//! HTTP 5xx, 429, timeouts and broken connections retry the whole call (with the same
//! events). HTTP 400 refuses the call (its events are `rejected`). HTTP 401 renews the token
//! once; HTTP 403 stops the run: the token's app must be the one the offer was published with.

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;

use metergate_core::rules::azure::{is_uuid, API_VERSION, MAX_BATCH_EVENTS};
use metergate_core::time::{format_rfc3339, hour_floor, parse_rfc3339};
use metergate_core::{Contract, Marketplace, UsageRecord};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::exact::json_number;
use super::token::{self, EntraCredentials, EntraTokenClient, Secret};
use super::{CallError, MarketplaceSender, RecordResult};
use crate::ledger::{LedgerRow, Outcome, Status};

/// Replaces the metering endpoint (tests), unless `--azure-endpoint` is given.
pub const ENDPOINT_ENV: &str = "METERGATE_AZURE_ENDPOINT";
/// The metering API's base URL.
pub const DEFAULT_ENDPOINT: &str = "https://marketplaceapi.microsoft.com/api";
/// Calls per second metergate allows itself. Microsoft documents no limit for
/// `batchUsageEvent`; this is a conservative one.
pub const MAX_CALLS_PER_SECOND: u32 = 10;

/// One usage event, exactly as sent, kept in the ledger row's `wire`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureWire {
    /// `resourceId`: a SaaS subscription id (exclusive with `resource_uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// `resourceUri`: a managed application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
    /// `planId`.
    pub plan_id: String,
    /// `dimension`.
    pub dimension: String,
    /// `quantity`, as exact decimal text.
    pub quantity: String,
    /// `effectiveStartTime`: the usage hour, `YYYY-MM-DDTHH:00:00Z`.
    pub effective_start_time: String,
}

impl AzureWire {
    /// The resource the event is for (id or URI), lowercase, as answers carry it back.
    pub fn resource(&self) -> String {
        self.resource_id
            .as_deref()
            .or(self.resource_uri.as_deref())
            .unwrap_or("")
            .to_ascii_lowercase()
    }

    /// The event as Microsoft's `UsageEvent` JSON, with `quantity` exactly as stored (see
    /// [`super::exact`]).
    pub fn event(&self) -> Result<Box<RawValue>, String> {
        let quantity = json_number(&self.quantity)?;
        let ev = UsageEvent {
            resource_id: self.resource_id.as_deref(),
            resource_uri: self.resource_uri.as_deref(),
            quantity: &quantity,
            dimension: &self.dimension,
            effective_start_time: &self.effective_start_time,
            plan_id: &self.plan_id,
        };
        serde_json::value::to_raw_value(&ev).map_err(|e| format!("cannot write the event: {e}"))
    }
}

/// Microsoft's `UsageEvent`, as written on the wire.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_uri: Option<&'a str>,
    quantity: &'a RawValue,
    dimension: &'a str,
    effective_start_time: &'a str,
    plan_id: &'a str,
}

/// Microsoft's `BatchUsageEvent`: `{"request": [UsageEvent, ...]}`.
#[derive(Serialize)]
struct BatchUsageEvent<'a> {
    request: &'a [Box<RawValue>],
}

/// The wire values of an accepted Azure record, given its contract.
pub fn wire_values(rec: &UsageRecord, contract: Option<&Contract>) -> Result<Value, String> {
    let plan_id = rec
        .plan
        .clone()
        .or_else(|| contract.and_then(|c| c.plan.clone()))
        .ok_or_else(|| {
            "no plan: Microsoft needs planId; give plan in the record or the contract".to_owned()
        })?;
    let (resource_id, resource_uri) = match contract {
        Some(c) if c.resource_id.is_some() && c.resource_uri.is_some() => {
            return Err(format!(
                "the contract of {} sets both resource_id and resource_uri; Microsoft takes exactly one",
                c.customer
            ))
        }
        Some(c) if c.resource_id.is_some() => (c.resource_id.clone(), None),
        Some(c) if c.resource_uri.is_some() => (None, c.resource_uri.clone()),
        _ => (Some(rec.customer.clone()), None),
    };
    if let Some(id) = &resource_id {
        if !is_uuid(id) {
            return Err(format!(
                "resourceId {id:?} is not a uuid; set resource_id (the SaaS subscription id) or resource_uri (a managed application) in the contract"
            ));
        }
    }
    if rec.quantity <= Decimal::ZERO {
        return Err(format!(
            "quantity {} is not above zero; Microsoft refuses it",
            rec.quantity
        ));
    }
    let wire = AzureWire {
        resource_id,
        resource_uri,
        plan_id,
        dimension: rec.dimension.clone(),
        quantity: rec.quantity.normalize().to_string(),
        effective_start_time: format_rfc3339(hour_floor(rec.start_time)),
    };
    // The event must build now, not at send time.
    wire.event()?;
    serde_json::to_value(wire).map_err(|e| e.to_string())
}

/// How to reach Microsoft.
#[derive(Clone, Debug, Default)]
pub struct AzureOptions {
    /// `--azure-endpoint` (else `$METERGATE_AZURE_ENDPOINT`, else the public API).
    pub endpoint: Option<String>,
    /// Log each HTTP exchange to stderr, with the token redacted.
    pub verbose: bool,
}

impl AzureOptions {
    /// The base URL in use, without a trailing `/`.
    pub fn resolved_endpoint(&self) -> String {
        self.endpoint
            .clone()
            .or_else(|| std::env::var(ENDPOINT_ENV).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
            .trim_end_matches('/')
            .to_owned()
    }
}

/// The Azure sender.
pub struct AzureSender {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    tokens: EntraTokenClient,
    url: String,
    verbose: bool,
}

/// (resource, dimension, plan, hour) — Microsoft's key of an event.
type EventKey = (String, String, String, i64);

fn wire_key(w: &AzureWire) -> Result<EventKey, String> {
    let t =
        parse_rfc3339(&w.effective_start_time).map_err(|e| format!("effectiveStartTime {e}"))?;
    Ok((
        w.resource(),
        w.dimension.clone(),
        w.plan_id.clone(),
        hour_floor(t).timestamp(),
    ))
}

fn answer_key(item: &Value) -> Option<EventKey> {
    let resource = item["resourceId"]
        .as_str()
        .or(item["resourceUri"].as_str())?
        .to_ascii_lowercase();
    let t = parse_rfc3339(item["effectiveStartTime"].as_str()?).ok()?;
    Some((
        resource,
        item["dimension"].as_str()?.to_owned(),
        item["planId"].as_str().unwrap_or("").to_owned(),
        hour_floor(t).timestamp(),
    ))
}

/// A JSON number as an exact decimal (Microsoft answers quantities as doubles).
fn json_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .ok()
            .or_else(|| Decimal::from_scientific(&n.to_string()).ok()),
        Value::String(s) => Decimal::from_str(s).ok(),
        _ => None,
    }
}

fn final_reason(status: &str) -> Option<&'static str> {
    Some(match status {
        "Expired" => "effectiveStartTime is more than 24 hours ago; Microsoft no longer takes usage for that hour",
        "ResourceNotFound" => "Microsoft knows no SaaS subscription or managed application with this resource id/URI",
        "ResourceNotAuthorized" => "this app may not report usage for the resource (it is another publisher's)",
        "ResourceNotActive" => "the subscription or application is not active (suspended or never activated)",
        "InvalidDimension" => "the dimension is not one of the plan's metered dimensions",
        "InvalidQuantity" => "Microsoft refused the quantity",
        "BadArgument" => "Microsoft refused a field of the event",
        _ => return None,
    })
}

/// What one answer item means for its row.
pub fn item_result(item: &Value, wire: &AzureWire) -> RecordResult {
    let status = item["status"].as_str().unwrap_or("");
    let id = item["usageEventId"].as_str().map(str::to_owned);
    let detail = item["error"]["message"]
        .as_str()
        .map(|m| format!(": {}", token::snippet(m)))
        .unwrap_or_default();
    match status {
        "Accepted" => RecordResult::Done(Outcome {
            status: Status::Accepted,
            answer: Some("Accepted".into()),
            reason: None,
            marketplace_record_id: id,
        }),
        "Duplicate" => {
            let original = &item["error"]["additionalInfo"]["acceptedMessage"];
            let orig_id = original["usageEventId"].as_str().map(str::to_owned).or(id);
            let orig_q = json_decimal(&original["quantity"]);
            let orig_plan = original["planId"]
                .as_str()
                .or(item["planId"].as_str())
                .filter(|p| !p.is_empty());
            let ours = Decimal::from_str(&wire.quantity).ok();
            let same_quantity = matches!((orig_q, ours), (Some(a), Some(b)) if a == b);
            // Another plan is another event (a plan change within the hour), even with the
            // same quantity: this one was not billed.
            let same_plan = orig_plan.is_none_or(|p| p == wire.plan_id);
            if same_quantity && same_plan {
                RecordResult::Done(Outcome {
                    status: Status::Accepted,
                    answer: Some("Duplicate".into()),
                    reason: Some(format!(
                        "Microsoft already had this event with the same quantity (usageEventId {}), from an earlier call",
                        orig_id.as_deref().unwrap_or("unknown")
                    )),
                    marketplace_record_id: orig_id,
                })
            } else {
                let q = orig_q.map_or_else(|| "unknown".to_owned(), |q| q.normalize().to_string());
                let plan = match orig_plan {
                    Some(p) if p != wire.plan_id => format!(" under plan {p}"),
                    _ => String::new(),
                };
                RecordResult::Done(Outcome {
                    status: Status::Duplicate,
                    answer: Some("Duplicate".into()),
                    reason: Some(format!(
                        "Microsoft already has usage event {} for this resource, dimension and hour with quantity {q}{plan}; that one stands and is billed, this event (quantity {}, plan {}) is not",
                        orig_id.as_deref().unwrap_or("unknown"),
                        wire.quantity,
                        wire.plan_id
                    )),
                    marketplace_record_id: orig_id,
                })
            }
        }
        s => match final_reason(s) {
            Some(why) => RecordResult::Done(Outcome {
                status: Status::Rejected,
                answer: Some(s.to_owned()),
                reason: Some(format!("{why}{detail}")),
                marketplace_record_id: id,
            }),
            None => RecordResult::Retry {
                reason: format!(
                    "Microsoft answered {}{detail}",
                    if s.is_empty() { "no status" } else { s }
                ),
            },
        },
    }
}

/// Matches the items of a 200 answer to the rows sent. `sent[i]` is `(row index, wire)`.
pub fn match_answer(
    answer: &Value,
    sent: &[(usize, AzureWire)],
    results: &mut [Option<RecordResult>],
) {
    let mut by_key: HashMap<EventKey, VecDeque<usize>> = HashMap::new();
    for (pos, (_, w)) in sent.iter().enumerate() {
        if let Ok(k) = wire_key(w) {
            by_key.entry(k).or_default().push_back(pos);
        }
    }
    let items = answer["result"].as_array().cloned().unwrap_or_default();
    for item in &items {
        let Some(k) = answer_key(item) else { continue };
        // The exact event first. Else the same resource, dimension and hour under any plan:
        // Microsoft keeps one event per resource, dimension and hour, and a `Duplicate`
        // echoes the original event, whose planId differs after a mid-hour plan change
        // (and some answers leave planId out).
        let pos = match by_key.get_mut(&k).and_then(VecDeque::pop_front) {
            Some(p) => Some(p),
            None => by_key
                .iter_mut()
                .filter(|(kk, v)| kk.0 == k.0 && kk.1 == k.1 && kk.3 == k.3 && !v.is_empty())
                .min_by_key(|(_, v)| v.front().copied())
                .and_then(|(_, v)| v.pop_front()),
        };
        let Some(pos) = pos else { continue };
        if let Some((row, w)) = sent.get(pos) {
            if let Some(slot) = results.get_mut(*row) {
                *slot = Some(item_result(item, w));
            }
        }
    }
}

impl AzureSender {
    /// Reads the Entra ID credentials from the environment and builds the client.
    pub fn new(opts: &AzureOptions) -> Result<AzureSender, String> {
        let creds = EntraCredentials::from_env()?;
        Ok(AzureSender {
            rt: token::runtime()?,
            http: token::http_client()?,
            tokens: EntraTokenClient::new(creds),
            url: format!(
                "{}/batchUsageEvent?api-version={API_VERSION}",
                opts.resolved_endpoint()
            ),
            verbose: opts.verbose,
        })
    }

    /// The batchUsageEvent URL in use.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// One POST of a body, with a bearer token; a 401 renews the token once.
async fn post(
    http: &reqwest::Client,
    tokens: &mut EntraTokenClient,
    url: &str,
    verbose: bool,
    body: &[u8],
) -> Result<(u16, String), CallError> {
    let mut renewed = false;
    loop {
        let tok: Secret = tokens
            .token(http)
            .await
            .map_err(token::TokenError::into_call_error)?;
        let req = http
            .post(url)
            .bearer_auth(tok.expose())
            .header("content-type", "application/json")
            .header("x-ms-requestid", token::random_uuid().to_string())
            .header("x-ms-correlationid", token::random_uuid().to_string())
            .body(body.to_vec())
            .build()
            .map_err(|e| CallError::Fatal(format!("cannot build the request: {e}")))?;
        token::log_request(verbose, &req);
        let answer = http
            .execute(req)
            .await
            .map_err(|e| token::transport_error(&e))?;
        let status = answer.status().as_u16();
        let text = answer
            .text()
            .await
            .map_err(|e| token::transport_error(&e))?;
        token::log_answer(verbose, status, &text);
        if status == 401 && !renewed {
            // The token may have expired in flight: renew it once.
            tokens.invalidate();
            renewed = true;
            continue;
        }
        return Ok((status, text));
    }
}

fn error_code(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = if v["error"].is_object() {
        &v["error"]
    } else {
        &v
    };
    let code = e["code"].as_str().unwrap_or("").to_owned();
    let msg = e["message"]
        .as_str()
        .map(token::snippet)
        .unwrap_or_else(|| token::snippet(body));
    (code, msg)
}

/// What a non-200 answer means for the whole call.
pub fn classify_status(status: u16, body: &str) -> CallError {
    let (code, msg) = error_code(body);
    let answer = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {code}")
    };
    match status {
        401 => CallError::Fatal(format!(
            "Microsoft refused the Entra ID token ({answer}): {msg}; the token must be for resource 20e940b3-4c77-4b0b-9a53-9e16a1b010a7"
        )),
        403 => CallError::Fatal(format!(
            "Microsoft refused the call ({answer}): {msg}; the Entra ID app (AZURE_CLIENT_ID) must be the one registered in the offer's technical configuration in Partner Center, in the tenant that published the offer"
        )),
        408 | 429 | 500..=599 => CallError::Retryable {
            answer,
            reason: msg,
        },
        _ => CallError::Refused {
            answer,
            reason: msg,
        },
    }
}

impl MarketplaceSender for AzureSender {
    fn marketplace(&self) -> Marketplace {
        Marketplace::Azure
    }

    fn max_calls_per_second(&self) -> u32 {
        MAX_CALLS_PER_SECOND
    }

    fn send(&mut self, _product: &str, rows: &[LedgerRow]) -> Result<Vec<RecordResult>, CallError> {
        let mut results: Vec<Option<RecordResult>> = vec![None; rows.len()];
        let mut sent: Vec<(usize, AzureWire)> = Vec::new();
        let mut events = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let built = serde_json::from_value::<AzureWire>(row.wire.clone())
                .map_err(|e| format!("the stored wire values do not read: {e}"))
                .and_then(|w| w.event().map(|ev| (w, ev)));
            match built {
                Ok((w, ev)) => {
                    events.push(ev);
                    sent.push((i, w));
                }
                Err(reason) => {
                    results[i] = Some(RecordResult::Done(Outcome {
                        status: Status::Rejected,
                        answer: Some("metergate".into()),
                        reason: Some(reason),
                        marketplace_record_id: None,
                    }))
                }
            }
        }
        for (chunk_events, chunk_sent) in events
            .chunks(MAX_BATCH_EVENTS)
            .zip(sent.chunks(MAX_BATCH_EVENTS))
        {
            let body = serde_json::to_vec(&BatchUsageEvent {
                request: chunk_events,
            })
            .map_err(|e| CallError::Fatal(format!("cannot write the request: {e}")))?;
            let (status, text) = self.rt.block_on(post(
                &self.http,
                &mut self.tokens,
                &self.url,
                self.verbose,
                &body,
            ))?;
            if status == 200 {
                let v: Value = serde_json::from_str(&text).map_err(|_| CallError::Retryable {
                    answer: "HTTP 200".into(),
                    reason: format!("the answer is not JSON: {}", token::snippet(&text)),
                })?;
                match_answer(&v, chunk_sent, &mut results);
            } else {
                return Err(classify_status(status, &text));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(RecordResult::Retry {
                    reason: "Microsoft's answer had no item for this event".into(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn rec(customer: &str, q: &str) -> UsageRecord {
        UsageRecord {
            marketplace: Marketplace::Azure,
            product: "offer-1".into(),
            customer: customer.into(),
            dimension: "api_calls".into(),
            quantity: Decimal::from_str(q).unwrap(),
            start_time: chrono::Utc
                .with_ymd_and_hms(2026, 3, 1, 10, 17, 42)
                .unwrap(),
            end_time: None,
            record_id: None,
            plan: Some("gold".into()),
            allocations: None,
            attributes: Default::default(),
        }
    }

    const SUB: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

    #[test]
    fn wire_truncates_to_the_hour_and_keeps_quantity_exact() {
        let v = wire_values(&rec(SUB, "12.50"), None).unwrap();
        let w: AzureWire = serde_json::from_value(v).unwrap();
        assert_eq!(w.effective_start_time, "2026-03-01T10:00:00Z");
        assert_eq!(w.quantity, "12.5");
        assert_eq!(w.resource_id.as_deref(), Some(SUB));
        let raw = w.event().unwrap();
        assert!(raw.get().contains(r#""quantity":12.5,"#), "{raw}");
        let ev: Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(ev["planId"], "gold");
        assert!(ev.get("resourceUri").is_none());
    }

    #[test]
    fn wire_refuses_a_customer_that_is_not_a_uuid() {
        assert!(wire_values(&rec("acme", "1"), None).is_err());
        let mut r = rec(SUB, "1");
        r.plan = None;
        assert!(wire_values(&r, None).is_err());
    }

    #[test]
    fn duplicate_with_same_quantity_is_ours_and_other_quantity_is_a_duplicate() {
        let w: AzureWire =
            serde_json::from_value(wire_values(&rec(SUB, "5"), None).unwrap()).unwrap();
        let item = |q: f64| {
            json!({"status": "Duplicate", "resourceId": SUB, "dimension": "api_calls", "planId": "gold",
                   "effectiveStartTime": "2026-03-01T10:00:00Z",
                   "error": {"code": "Conflict", "message": "dup",
                             "additionalInfo": {"acceptedMessage": {"usageEventId": "11111111-2222-3333-4444-555555555555", "quantity": q}}}})
        };
        match item_result(&item(5.0), &w) {
            RecordResult::Done(o) => {
                assert_eq!(o.status, Status::Accepted);
                assert_eq!(
                    o.marketplace_record_id.as_deref(),
                    Some("11111111-2222-3333-4444-555555555555")
                );
            }
            r => panic!("{r:?}"),
        }
        match item_result(&item(7.0), &w) {
            RecordResult::Done(o) => {
                assert_eq!(o.status, Status::Duplicate);
                assert!(o.reason.unwrap().contains(" 7;"));
            }
            r => panic!("{r:?}"),
        }
        match item_result(&json!({"status": "Expired"}), &w) {
            RecordResult::Done(o) => assert_eq!(o.status, Status::Rejected),
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            item_result(&json!({"status": "Error"}), &w),
            RecordResult::Retry { .. }
        ));
    }

    #[test]
    fn a_duplicate_under_the_old_plan_matches_by_resource_dimension_and_hour() {
        let mut r = rec(SUB, "7");
        r.plan = Some("platinum".into());
        let w: AzureWire = serde_json::from_value(wire_values(&r, None).unwrap()).unwrap();
        let original = json!({"usageEventId": "11111111-2222-3333-4444-555555555555",
            "status": "Accepted", "resourceId": SUB, "dimension": "api_calls", "planId": "gold",
            "effectiveStartTime": "2026-03-01T10:00:00Z", "quantity": 5.0});
        let mut item = original.clone();
        item["status"] = json!("Duplicate");
        item["error"] =
            json!({"code": "Conflict", "additionalInfo": {"acceptedMessage": original}});
        let mut results = vec![None];
        match_answer(
            &json!({"result": [item], "count": 1}),
            &[(0, w.clone())],
            &mut results,
        );
        match results[0].take() {
            Some(RecordResult::Done(o)) => {
                assert_eq!(o.status, Status::Duplicate);
                assert_eq!(
                    o.marketplace_record_id.as_deref(),
                    Some("11111111-2222-3333-4444-555555555555")
                );
                let why = o.reason.unwrap();
                assert!(why.contains("quantity 5 under plan gold"), "{why}");
            }
            r => panic!("{r:?}"),
        }
        // The same quantity under the old plan is still not this event.
        let mut r5 = rec(SUB, "5");
        r5.plan = Some("platinum".into());
        let w5: AzureWire = serde_json::from_value(wire_values(&r5, None).unwrap()).unwrap();
        let dup = json!({"status": "Duplicate", "resourceId": SUB, "dimension": "api_calls",
            "planId": "gold", "effectiveStartTime": "2026-03-01T10:00:00Z",
            "error": {"additionalInfo": {"acceptedMessage": {"usageEventId": "x", "planId": "gold", "quantity": 5}}}});
        assert!(
            matches!(item_result(&dup, &w5), RecordResult::Done(o) if o.status == Status::Duplicate)
        );
    }

    #[test]
    fn statuses_of_whole_calls() {
        assert!(matches!(
            classify_status(503, ""),
            CallError::Retryable { .. }
        ));
        assert!(matches!(
            classify_status(429, ""),
            CallError::Retryable { .. }
        ));
        assert!(matches!(classify_status(403, "{}"), CallError::Fatal(_)));
        assert!(matches!(
            classify_status(400, r#"{"code":"BadArgument","message":"x"}"#),
            CallError::Refused { .. }
        ));
    }
}

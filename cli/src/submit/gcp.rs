//! Google Cloud Marketplace: Service Control `services.check`, then `services.report`.
//!
//! # Client
//!
//! The Service Control JSON API is called by hand (reqwest + rustls): two POSTs,
//! `{endpoint}/v1/services/{service}:check` and `:report`. The official
//! `google-cloud-api-servicecontrol-v1` crate was considered and not used: it brings the
//! `gax`/`gax-internal` stack and four generated model crates (api, rpc, logging-type, wkt)
//! for two calls, retries on its own, and hides the raw answer that metergate needs to tell
//! a partial failure (HTTP 200 with `reportErrors`) from an unknown outcome (non-2xx), and to
//! measure the exact request size against the 1 MB limit.
//!
//! Tokens come from the official `google-cloud-auth` crate: Application Default
//! Credentials (a service-account key named by `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
//! ADC file, workload identity, or the metadata server), scope
//! `https://www.googleapis.com/auth/servicecontrol`. For tests, `METERGATE_GCP_TOKEN` gives a
//! static bearer token instead. `METERGATE_GCP_ENDPOINT` replaces
//! `https://servicecontrol.googleapis.com`.
//!
//! # Operations
//!
//! Each ledger row is one operation ([`GcpWire`]) with one metric value, so two values with
//! the same metric and labels never share an operation. Labels: none.
//!
//! ```json
//! {"operationId": "…", "operationName": "<service>/report", "consumerId": "project_number:123",
//!  "startTime": "…", "endTime": "…",
//!  "metricValueSets": [{"metricName": "<service>/<metric>",
//!                       "metricValues": [{"startTime": "…", "endTime": "…", "int64Value": "42"}]}]}
//! ```
//!
//! `consumerId` is the contract's `usage_reporting_id`, else the customer key.
//! `int64Value` (a string, as proto3 JSON writes int64) or `doubleValue` follows the
//! contract dimension's `type` (default `int`). A `doubleValue` is the ledger's exact decimal
//! text, written verbatim as a JSON number ([`super::exact`]); Service Control stores it as a
//! double, and the core rejects a decimal quantity that a double cannot hold exactly as
//! written (rule `gcp.metric`), so what Google bills is what the ledger says.
//!
//! The `operationId` is a UUIDv5 in the fixed namespace [`OPERATION_NAMESPACE`]
//! (`655eaf78-81ba-59c6-985e-a861cd32fa39`, itself UUIDv5(URL namespace,
//! `urn:metergate:gcp:operation-id`)) of the compact JSON array
//! `["<product>","<customer>","<service>/<metric>","<start>","<end>"]` (times in RFC 3339,
//! UTC, `Z`). It is computed before anything is sent and stored in the ledger, so every
//! retry and every resume after a crash re-sends the same id, and Service Control
//! deduplicates it.
//!
//! # Calls and answers
//!
//! Per call (one service, at most 100 operations, under 1 MB): one `services.check` per
//! consumer, with the operation (and operationId) of that consumer's first row in the call,
//! then one `services.report` of every operation whose consumer passed.
//!
//! - check `checkErrors` `BILLING_DISABLED`, `SERVICE_NOT_ACTIVATED`, `PROJECT_DELETED`: the
//!   customer is not entitled; its rows are `rejected` with that code, and not reported.
//!   Other check errors ending in `_UNAVAILABLE` are retried; any other code rejects.
//! - report HTTP 200: every operation not named in `reportErrors` is `accepted` (its
//!   operationId is kept as the marketplace record id); a named one is retried when its
//!   status is transient (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
//!   ABORTED, UNKNOWN, CANCELLED), `accepted` on ALREADY_EXISTS, else `rejected`.
//! - HTTP 5xx, 429, timeouts, broken connections: unknown which operations landed; the whole
//!   call is retried with the same operationIds.
//! - HTTP 400: the request was refused whole (nothing landed): its rows are `rejected`.
//! - HTTP 401/403: the run stops (credentials); rows stay for `resume`.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use google_cloud_auth::credentials::{AccessTokenCredentials, Builder as CredentialsBuilder};
use metergate_core::rules::gcp::{FINAL_CHECK_ERRORS, MAX_REQUEST_BYTES};
use metergate_core::time::format_rfc3339;
use metergate_core::{Contract, Marketplace, MetricType, UsageRecord};
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use uuid::Uuid;

use super::exact::json_number;
use super::token::{self, Secret};
use super::{CallError, MarketplaceSender, RecordResult};
use crate::ledger::{LedgerRow, Outcome, Status};

/// Replaces the Service Control endpoint (tests).
pub const ENDPOINT_ENV: &str = "METERGATE_GCP_ENDPOINT";
/// A static bearer token instead of Application Default Credentials (tests).
pub const TOKEN_ENV: &str = "METERGATE_GCP_TOKEN";
/// Service Control.
pub const DEFAULT_ENDPOINT: &str = "https://servicecontrol.googleapis.com";
/// The OAuth scope of Service Control.
pub const SCOPE: &str = "https://www.googleapis.com/auth/servicecontrol";
/// The namespace of operationIds: UUIDv5(NAMESPACE_URL, "urn:metergate:gcp:operation-id").
pub const OPERATION_NAMESPACE: Uuid = Uuid::from_u128(0x655eaf78_81ba_59c6_985e_a861cd32fa39);
/// Calls (check + report rounds) per second metergate allows itself.
pub const MAX_CALLS_PER_SECOND: u32 = 10;

/// The operationId of a usage interval (see the module documentation).
pub fn operation_id(product: &str, customer: &str, metric: &str, start: &str, end: &str) -> Uuid {
    let name = serde_json::to_string(&[product, customer, metric, start, end]).unwrap_or_default();
    Uuid::new_v5(&OPERATION_NAMESPACE, name.as_bytes())
}

/// One operation, exactly as sent, kept in the ledger row's `wire`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcpWire {
    /// The service (the product).
    pub service: String,
    /// `operationId`.
    pub operation_id: String,
    /// `consumerId`.
    pub consumer_id: String,
    /// `metricName`: `<service>/<metric>`.
    pub metric: String,
    /// `int64` or `double`.
    pub value_type: String,
    /// The value as exact text.
    pub value: String,
    /// `startTime`.
    pub start_time: String,
    /// `endTime`.
    pub end_time: String,
}

impl GcpWire {
    /// The operation as Service Control JSON, with a `doubleValue` written exactly as stored
    /// (see [`super::exact`]); `int64Value` is a JSON string, as proto3 JSON writes int64.
    pub fn operation(&self) -> Result<Box<RawValue>, String> {
        let (int64_value, double_value) = match self.value_type.as_str() {
            "int64" => {
                let v = i64::from_str(&self.value)
                    .map_err(|e| format!("int64 value {:?}: {e}", self.value))?;
                (Some(v.to_string()), None)
            }
            "double" => (None, Some(json_number(&self.value)?)),
            t => return Err(format!("unknown value type {t:?}")),
        };
        let op = Operation {
            operation_id: &self.operation_id,
            operation_name: format!("{}/report", self.service),
            consumer_id: &self.consumer_id,
            start_time: &self.start_time,
            end_time: &self.end_time,
            metric_value_sets: [MetricValueSet {
                metric_name: &self.metric,
                metric_values: [MetricValue {
                    start_time: &self.start_time,
                    end_time: &self.end_time,
                    int64_value,
                    double_value: double_value.as_deref(),
                }],
            }],
        };
        serde_json::value::to_raw_value(&op).map_err(|e| format!("cannot write the operation: {e}"))
    }
}

/// Service Control's `Operation`, as written on the wire (labels: none).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Operation<'a> {
    operation_id: &'a str,
    operation_name: String,
    consumer_id: &'a str,
    start_time: &'a str,
    end_time: &'a str,
    metric_value_sets: [MetricValueSet<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricValueSet<'a> {
    metric_name: &'a str,
    metric_values: [MetricValue<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricValue<'a> {
    start_time: &'a str,
    end_time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    int64_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    double_value: Option<&'a RawValue>,
}

/// `services.check` request body.
#[derive(Serialize)]
struct CheckRequest<'a> {
    operation: &'a RawValue,
}

/// `services.report` request body.
#[derive(Serialize)]
struct ReportRequest<'a> {
    operations: Vec<&'a RawValue>,
}

/// The wire values of an accepted Google record, given its contract.
pub fn wire_values(rec: &UsageRecord, contract: Option<&Contract>) -> Result<Value, String> {
    let end = rec
        .end_time
        .ok_or_else(|| "no end_time: Google needs the usage interval".to_owned())?;
    let (short, metric) = match rec.dimension.split_once('/') {
        Some((svc, m)) if svc == rec.product && !m.is_empty() => (m, rec.dimension.clone()),
        Some(_) => {
            return Err(format!(
                "metric {:?} does not belong to service {:?}",
                rec.dimension, rec.product
            ))
        }
        None => (
            rec.dimension.as_str(),
            format!("{}/{}", rec.product, rec.dimension),
        ),
    };
    let kind = contract
        .and_then(|c| {
            c.dimension(&rec.dimension)
                .or_else(|| c.dimension(short))
                .or_else(|| c.dimension(&metric))
        })
        .and_then(|(_, d)| d.kind)
        .unwrap_or(MetricType::Int);
    let (value_type, value) = match kind {
        MetricType::Int => {
            if !rec.quantity.fract().is_zero() || rec.quantity.to_i64().is_none() {
                return Err(format!(
                    "quantity {} is not a whole int64 value, and the metric is int64",
                    rec.quantity
                ));
            }
            ("int64", rec.quantity.trunc().normalize().to_string())
        }
        MetricType::Decimal => ("double", rec.quantity.normalize().to_string()),
    };
    let consumer_id = contract
        .and_then(|c| c.usage_reporting_id.clone())
        .unwrap_or_else(|| rec.customer.clone());
    let start_time = format_rfc3339(rec.start_time);
    let end_time = format_rfc3339(end);
    let wire = GcpWire {
        service: rec.product.clone(),
        operation_id: operation_id(&rec.product, &rec.customer, &metric, &start_time, &end_time)
            .to_string(),
        consumer_id,
        metric,
        value_type: value_type.into(),
        value,
        start_time,
        end_time,
    };
    wire.operation()?;
    serde_json::to_value(wire).map_err(|e| e.to_string())
}

/// How to reach Google.
#[derive(Clone, Debug, Default)]
pub struct GcpOptions {
    /// Service Control base URL (else `$METERGATE_GCP_ENDPOINT`, else Google's).
    pub endpoint: Option<String>,
    /// Log each HTTP exchange to stderr, with the token redacted.
    pub verbose: bool,
}

impl GcpOptions {
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

enum Auth {
    Static(Secret),
    Adc(Option<AccessTokenCredentials>),
}

impl Auth {
    async fn token(&mut self) -> Result<Secret, CallError> {
        match self {
            Auth::Static(s) => Ok(s.clone()),
            Auth::Adc(slot) => {
                if slot.is_none() {
                    let built = CredentialsBuilder::default()
                        .with_scopes([SCOPE])
                        .build_access_token_credentials()
                        .map_err(|e| {
                            CallError::Fatal(format!(
                                "no Google credentials (set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file): {}",
                                token::error_chain(&e)
                            ))
                        })?;
                    *slot = Some(built);
                }
                let Some(creds) = slot.as_ref() else {
                    return Err(CallError::Fatal("no Google credentials".into()));
                };
                match creds.access_token().await {
                    Ok(t) => Ok(Secret::new(t.token)),
                    Err(e) if e.is_transient() => Err(CallError::Retryable {
                        answer: "token".into(),
                        reason: token::error_chain(&e),
                    }),
                    Err(e) => Err(CallError::Fatal(format!(
                        "Google refused a token: {}",
                        token::error_chain(&e)
                    ))),
                }
            }
        }
    }
}

/// The Google sender.
pub struct GcpSender {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    auth: Auth,
    endpoint: String,
    verbose: bool,
}

/// A google.rpc.Code that may succeed when tried again.
pub fn transient_code(code: i64) -> bool {
    matches!(code, 1 | 2 | 4 | 8 | 10 | 13 | 14)
}

fn rpc_code_name(code: i64) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

/// What a `checkErrors` list means for a consumer's rows; `None` when it passed.
pub fn check_result(answer: &Value) -> Option<RecordResult> {
    let errors = answer["checkErrors"].as_array()?;
    let first = errors.first()?;
    let pick = errors
        .iter()
        .find(|e| FINAL_CHECK_ERRORS.contains(&e["code"].as_str().unwrap_or("")))
        .or_else(|| {
            errors
                .iter()
                .find(|e| !e["code"].as_str().unwrap_or("").ends_with("_UNAVAILABLE"))
        })
        .unwrap_or(first);
    let code = pick["code"].as_str().unwrap_or("UNKNOWN").to_owned();
    let detail = pick["detail"]
        .as_str()
        .map(|d| format!(": {}", token::snippet(d)))
        .unwrap_or_default();
    if FINAL_CHECK_ERRORS.contains(&code.as_str()) {
        Some(RecordResult::Done(Outcome {
            status: Status::Rejected,
            answer: Some(code.clone()),
            reason: Some(format!(
                "the customer is not entitled: services.check answered {code}{detail}; Google takes no usage for it"
            )),
            marketplace_record_id: None,
        }))
    } else if code.ends_with("_UNAVAILABLE") {
        Some(RecordResult::Retry {
            reason: format!("services.check answered {code}{detail}"),
        })
    } else {
        Some(RecordResult::Done(Outcome {
            status: Status::Rejected,
            answer: Some(code.clone()),
            reason: Some(format!("services.check answered {code}{detail}")),
            marketplace_record_id: None,
        }))
    }
}

/// What a 200 report answer means for each operation sent (`ids[i]` is row `rows[i]`'s).
pub fn report_results(answer: &Value, ids: &[String]) -> Vec<RecordResult> {
    let mut errs: HashMap<&str, &Value> = HashMap::new();
    if let Some(list) = answer["reportErrors"].as_array() {
        for e in list {
            if let Some(id) = e["operationId"].as_str() {
                errs.insert(id, &e["status"]);
            }
        }
    }
    ids.iter()
        .map(|id| match errs.get(id.as_str()) {
            None => RecordResult::Done(Outcome {
                status: Status::Accepted,
                answer: Some("OK".into()),
                reason: None,
                marketplace_record_id: Some(id.clone()),
            }),
            Some(st) => {
                let code = st["code"].as_i64().unwrap_or(2);
                let name = rpc_code_name(code);
                let msg = st["message"]
                    .as_str()
                    .map(|m| format!(": {}", token::snippet(m)))
                    .unwrap_or_default();
                if code == 6 {
                    RecordResult::Done(Outcome {
                        status: Status::Accepted,
                        answer: Some(name.into()),
                        reason: Some(format!("Google already had this operation{msg}")),
                        marketplace_record_id: Some(id.clone()),
                    })
                } else if transient_code(code) {
                    RecordResult::Retry {
                        reason: format!("reportErrors: {name}{msg}"),
                    }
                } else {
                    RecordResult::Done(Outcome {
                        status: Status::Rejected,
                        answer: Some(name.into()),
                        reason: Some(format!("Google refused the operation: {name}{msg}")),
                        marketplace_record_id: Some(id.clone()),
                    })
                }
            }
        })
        .collect()
}

/// One report request: the indices of its rows and its exact JSON body.
pub type ReportBody = (Vec<usize>, Vec<u8>);

/// Splits operations into report bodies under [`MAX_REQUEST_BYTES`] (measured exactly).
pub fn split_reports(ops: Vec<(usize, Box<RawValue>)>) -> Result<Vec<ReportBody>, String> {
    let rows: Vec<usize> = ops.iter().map(|(r, _)| *r).collect();
    let body = serde_json::to_vec(&ReportRequest {
        operations: ops.iter().map(|(_, v)| v.as_ref()).collect(),
    })
    .map_err(|e| e.to_string())?;
    if body.len() < MAX_REQUEST_BYTES {
        return Ok(vec![(rows, body)]);
    }
    if ops.len() == 1 {
        return Err(format!(
            "one operation takes {} bytes, over Service Control's 1 MB limit",
            body.len()
        ));
    }
    let mut ops = ops;
    let right = ops.split_off(ops.len() / 2);
    let mut out = split_reports(ops)?;
    out.extend(split_reports(right)?);
    Ok(out)
}

fn google_error(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let status = v["error"]["status"].as_str().unwrap_or("");
    let msg = v["error"]["message"]
        .as_str()
        .map(token::snippet)
        .unwrap_or_else(|| token::snippet(body));
    if status.is_empty() {
        msg
    } else {
        format!("{status}: {msg}")
    }
}

/// What a non-2xx answer means for the whole call.
pub fn classify_status(status: u16, body: &str) -> CallError {
    let reason = google_error(body);
    let answer = format!("HTTP {status}");
    match status {
        401 | 403 => CallError::Fatal(format!(
            "Service Control refused the credentials ({answer}): {reason}; the service account needs the servicemanagement.services.report permission on the service"
        )),
        408 | 429 | 500..=599 => CallError::Retryable { answer, reason },
        _ => CallError::Refused { answer, reason },
    }
}

async fn post(
    http: &reqwest::Client,
    auth: &mut Auth,
    url: &str,
    verbose: bool,
    body: Vec<u8>,
) -> Result<(u16, String), CallError> {
    let tok = auth.token().await?;
    let req = http
        .post(url)
        .bearer_auth(tok.expose())
        .header("content-type", "application/json")
        .body(body)
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
    Ok((status, text))
}

fn rejected(answer: &str, reason: String) -> RecordResult {
    RecordResult::Done(Outcome {
        status: Status::Rejected,
        answer: Some(answer.into()),
        reason: Some(reason),
        marketplace_record_id: None,
    })
}

impl GcpSender {
    /// Builds the client: a static token from `METERGATE_GCP_TOKEN`, else Application
    /// Default Credentials (loaded at the first call).
    pub fn new(opts: &GcpOptions) -> Result<GcpSender, String> {
        let auth = match std::env::var(TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => Auth::Static(Secret::new(t.trim().to_owned())),
            _ => Auth::Adc(None),
        };
        Ok(GcpSender {
            rt: token::runtime()?,
            http: token::http_client()?,
            auth,
            endpoint: opts.resolved_endpoint(),
            verbose: opts.verbose,
        })
    }

    fn url(&self, service: &str, method: &str) -> String {
        format!("{}/v1/services/{service}:{method}", self.endpoint)
    }

    fn call(&mut self, url: &str, body: Vec<u8>) -> Result<(u16, String), CallError> {
        self.rt
            .block_on(post(&self.http, &mut self.auth, url, self.verbose, body))
    }
}

impl MarketplaceSender for GcpSender {
    fn marketplace(&self) -> Marketplace {
        Marketplace::Gcp
    }

    fn max_calls_per_second(&self) -> u32 {
        MAX_CALLS_PER_SECOND
    }

    fn send(&mut self, product: &str, rows: &[LedgerRow]) -> Result<Vec<RecordResult>, CallError> {
        let mut results: Vec<Option<RecordResult>> = vec![None; rows.len()];
        // 1. Operations from the stored wire values.
        let mut ops: Vec<(usize, GcpWire, Box<RawValue>)> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            let built = serde_json::from_value::<GcpWire>(row.wire.clone())
                .map_err(|e| format!("the stored wire values do not read: {e}"))
                .and_then(|w| w.operation().map(|op| (w, op)));
            match built {
                Ok((w, op)) => {
                    if w.service != product {
                        results[i] = Some(rejected(
                            "metergate",
                            format!("the operation is for service {}, not {product}", w.service),
                        ));
                    } else if let Some(first) = seen.get(&w.operation_id) {
                        results[i] = Some(RecordResult::Done(Outcome {
                            status: Status::Duplicate,
                            answer: Some("metergate".into()),
                            reason: Some(format!(
                                "same operationId {} as ledger row {} (same product, customer, metric and interval); Google keeps only one",
                                w.operation_id,
                                rows.get(*first).map_or(0, |r| r.id)
                            )),
                            marketplace_record_id: Some(w.operation_id.clone()),
                        }));
                    } else {
                        seen.insert(w.operation_id.clone(), i);
                        ops.push((i, w, op));
                    }
                }
                Err(reason) => results[i] = Some(rejected("metergate", reason)),
            }
        }
        // 2. services.check, once per consumer, with its first operation.
        let mut by_consumer: BTreeMap<String, usize> = BTreeMap::new();
        for (k, (_, w, _)) in ops.iter().enumerate() {
            by_consumer.entry(w.consumer_id.clone()).or_insert(k);
        }
        let check_url = self.url(product, "check");
        let mut blocked: HashMap<String, RecordResult> = HashMap::new();
        for (consumer, k) in &by_consumer {
            let Some((_, _, op)) = ops.get(*k) else {
                continue;
            };
            let body = serde_json::to_vec(&CheckRequest { operation: op })
                .map_err(|e| CallError::Fatal(format!("cannot write the request: {e}")))?;
            let (status, text) = self.call(&check_url, body)?;
            if (200..300).contains(&status) {
                let v: Value = serde_json::from_str(&text).map_err(|_| CallError::Retryable {
                    answer: format!("HTTP {status}"),
                    reason: format!("the check answer is not JSON: {}", token::snippet(&text)),
                })?;
                if let Some(r) = check_result(&v) {
                    blocked.insert(consumer.clone(), r);
                }
            } else {
                match classify_status(status, &text) {
                    CallError::Refused { answer, reason } => {
                        blocked.insert(
                            consumer.clone(),
                            rejected(&answer, format!("services.check refused: {reason}")),
                        );
                    }
                    other => return Err(other),
                }
            }
        }
        // 3. services.report of the rest, in bodies under 1 MB.
        let mut to_report = Vec::new();
        let mut ids: HashMap<usize, String> = HashMap::new();
        for (i, w, op) in ops {
            match blocked.get(&w.consumer_id) {
                Some(r) => results[i] = Some(r.clone()),
                None => {
                    ids.insert(i, w.operation_id);
                    to_report.push((i, op));
                }
            }
        }
        let bodies = split_reports(to_report).map_err(|e| CallError::Refused {
            answer: "metergate".into(),
            reason: e,
        })?;
        let report_url = self.url(product, "report");
        for (idx, body) in bodies {
            let (status, text) = self.call(&report_url, body)?;
            if (200..300).contains(&status) {
                let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let these: Vec<String> = idx
                    .iter()
                    .map(|i| ids.get(i).cloned().unwrap_or_default())
                    .collect();
                for (i, r) in idx.iter().zip(report_results(&v, &these)) {
                    if let Some(slot) = results.get_mut(*i) {
                        *slot = Some(r);
                    }
                }
            } else {
                match classify_status(status, &text) {
                    CallError::Refused { answer, reason } => {
                        for i in &idx {
                            if let Some(slot) = results.get_mut(*i) {
                                *slot = Some(rejected(
                                    &answer,
                                    format!("services.report refused the request: {reason}"),
                                ));
                            }
                        }
                    }
                    other => return Err(other),
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(RecordResult::Retry {
                    reason: "no answer for this operation".into(),
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
    use metergate_core::ContractSet;
    use rust_decimal::Decimal;
    use serde_json::json;

    fn rec(dim: &str, q: &str) -> UsageRecord {
        UsageRecord {
            marketplace: Marketplace::Gcp,
            product: "svc.example.com".into(),
            customer: "cust-1".into(),
            dimension: dim.into(),
            quantity: Decimal::from_str(q).unwrap(),
            start_time: chrono::Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap(),
            end_time: Some(chrono::Utc.with_ymd_and_hms(2026, 3, 1, 11, 0, 0).unwrap()),
            record_id: None,
            plan: None,
            allocations: None,
            attributes: Default::default(),
        }
    }

    #[test]
    fn namespace_is_derived_as_documented() {
        assert_eq!(
            Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:metergate:gcp:operation-id"),
            OPERATION_NAMESPACE
        );
        // Cross-checked with Python's uuid.uuid5.
        assert_eq!(
            operation_id(
                "svc.example.com",
                "cust-1",
                "svc.example.com/requests",
                "2026-03-01T10:00:00Z",
                "2026-03-01T11:00:00Z"
            )
            .to_string(),
            "e0e8a33a-7d98-5264-8063-301fee0a1976"
        );
    }

    #[test]
    fn short_and_full_metric_names_give_one_operation() {
        let a: GcpWire =
            serde_json::from_value(wire_values(&rec("requests", "5"), None).unwrap()).unwrap();
        let b: GcpWire = serde_json::from_value(
            wire_values(&rec("svc.example.com/requests", "5"), None).unwrap(),
        )
        .unwrap();
        assert_eq!(a.operation_id, b.operation_id);
        assert_eq!(a.operation_id, "e0e8a33a-7d98-5264-8063-301fee0a1976");
        let op: Value = serde_json::from_str(a.operation().unwrap().get()).unwrap();
        assert_eq!(
            op["metricValueSets"][0]["metricName"],
            "svc.example.com/requests"
        );
        assert_eq!(
            op["metricValueSets"][0]["metricValues"][0]["int64Value"],
            "5"
        );
        assert_eq!(op["consumerId"], "cust-1");
        assert_eq!(op["operationName"], "svc.example.com/report");
        assert!(op.get("labels").is_none());
    }

    #[test]
    fn decimal_metrics_send_double_and_consumer_comes_from_the_contract() {
        let cs = ContractSet::from_json(
            r#"[{"marketplace":"gcp","product":"svc.example.com","customer":"cust-1","status":"active",
                "starts_at":"2026-01-01T00:00:00Z","usage_reporting_id":"project_number:42",
                "dimensions":[{"name":"gb","type":"decimal"}]}]"#,
        )
        .unwrap();
        let (_, c) = cs
            .find(Marketplace::Gcp, "svc.example.com", "cust-1")
            .unwrap();
        let w: GcpWire =
            serde_json::from_value(wire_values(&rec("gb", "2.25"), Some(c)).unwrap()).unwrap();
        let raw = w.operation().unwrap();
        assert!(raw.get().contains(r#""doubleValue":2.25}"#), "{raw}");
        let op: Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(op["consumerId"], "project_number:42");
        assert_eq!(
            op["metricValueSets"][0]["metricValues"][0]["doubleValue"].to_string(),
            "2.25"
        );
        assert!(wire_values(&rec("requests", "2.5"), Some(c)).is_err());
    }

    #[test]
    fn check_and_report_answers() {
        let r =
            check_result(&json!({"checkErrors": [{"code": "BILLING_DISABLED", "detail": "x"}]}));
        match r {
            Some(RecordResult::Done(o)) => {
                assert_eq!(o.status, Status::Rejected);
                assert_eq!(o.answer.as_deref(), Some("BILLING_DISABLED"));
            }
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            check_result(&json!({"checkErrors": [{"code": "BILLING_STATUS_UNAVAILABLE"}]})),
            Some(RecordResult::Retry { .. })
        ));
        assert!(check_result(&json!({"operationId": "x"})).is_none());
        let ids = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let out = report_results(
            &json!({"reportErrors": [
                {"operationId": "b", "status": {"code": 14, "message": "later"}},
                {"operationId": "c", "status": {"code": 3, "message": "bad"}}]}),
            &ids,
        );
        assert!(matches!(&out[0], RecordResult::Done(o) if o.status == Status::Accepted));
        assert!(matches!(&out[1], RecordResult::Retry { .. }));
        assert!(matches!(&out[2], RecordResult::Done(o) if o.status == Status::Rejected));
    }

    #[test]
    fn big_reports_are_split_under_one_megabyte() {
        let pad = "x".repeat(300_000);
        let ops: Vec<(usize, Box<RawValue>)> = (0..7)
            .map(|i| {
                (
                    i,
                    serde_json::value::to_raw_value(&json!({"operationId": i, "pad": pad}))
                        .unwrap(),
                )
            })
            .collect();
        let parts = split_reports(ops).unwrap();
        assert!(parts.len() >= 3);
        assert!(parts.iter().all(|(_, b)| b.len() < MAX_REQUEST_BYTES));
        let all: Vec<usize> = parts.iter().flat_map(|(i, _)| i.clone()).collect();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
    }
}

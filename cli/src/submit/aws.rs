//! AWS Marketplace `BatchMeterUsage` through the official `aws-sdk-marketplacemetering`.
//!
//! Credentials and region come from the standard AWS chain (environment, shared config and
//! credential files, SSO, container and instance roles). `--endpoint-url`, `--region` and
//! `--profile` behave as in the AWS CLI, and so do `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_MARKETPLACE_METERING` (read by the SDK's config loader). Requests are
//! SigV4-signed by the SDK; metergate never reads, prints or stores a secret.
//!
//! The SDK's own retries are off: [`super::send_rows`] retries throttling, 5xx and network
//! errors itself, with backoff and jitter, under the 10-calls-per-second limit.
//!
//! # `CustomerIdentifier` and the account-id form
//!
//! A record names its customer either by `CustomerIdentifier` (older integrations) or by
//! `CustomerAWSAccountId` + `LicenseArn`; AWS documents the two as mutually exclusive. The SDK
//! (1.124) types `CustomerIdentifier` as a plain `String` that its builder defaults to `""`,
//! so it always serialises `"CustomerIdentifier":""`, even for a record in the account-id
//! form. metergate does not send that empty field: the [`DropEmptyCustomerIdentifier`]
//! interceptor removes `"CustomerIdentifier":""` from the request body before it is signed,
//! so the signed JSON carries exactly one identity per record. Records in the
//! `CustomerIdentifier` form are unaffected (their identifier is never empty: the core
//! rejects an empty customer).
//!
//! # Whole-call exceptions
//!
//! `BatchMeterUsage` refuses the whole call when one record is at fault
//! (`TimestampOutOfBoundsException`, `InvalidUsageDimensionException`,
//! `InvalidLicenseException`, `InvalidTagException`, `InvalidUsageAllocationsException`,
//! `InvalidCustomerIdentifierException`: [`RECORD_EXCEPTIONS`]), without naming the record.
//! The core stops such records before they are sent, but a contract file can be stale. Such
//! an answer is [`CallError::RefusedForSome`]: [`super::send_rows`] splits the call in halves
//! until the records at fault stand alone, rejects them with the exception's name, and sends
//! the others with their stored wire values. `InvalidProductCodeException` and
//! `DisabledApiException` concern the call itself: every record in it is rejected, unsplit.
//!
//! Which identity a record gets comes from its contract: `customer_identifier` when set,
//! else `aws_account_id` + `license_arn`, else the record's `customer` key itself as the
//! `CustomerIdentifier`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_marketplacemetering::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_marketplacemetering::config::{ConfigBag, Intercept, Region, RuntimeComponents};
use aws_sdk_marketplacemetering::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_marketplacemetering::operation::batch_meter_usage::BatchMeterUsageError;
use aws_sdk_marketplacemetering::types::{
    Tag, UsageAllocation, UsageRecord as SdkRecord, UsageRecordResultStatus,
};
use aws_sdk_marketplacemetering::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_types::body::SdkBody;
use metergate_core::rules::aws::{MAX_CALLS_PER_SECOND, RECORD_EXCEPTIONS};
use metergate_core::time::{format_rfc3339, parse_rfc3339};
use metergate_core::{Contract, Marketplace, UsageRecord};
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use super::{CallError, MarketplaceSender, RecordResult};
use crate::ledger::{LedgerRow, Outcome, Status};

/// The values of one AWS `UsageRecord`, exactly as sent, kept in the ledger row's `wire`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsWire {
    /// `Timestamp`, RFC 3339 with every fraction the input had.
    pub timestamp: String,
    /// `Quantity`.
    pub quantity: i32,
    /// `CustomerIdentifier` (exclusive with the two below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_identifier: Option<String>,
    /// `CustomerAWSAccountId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_aws_account_id: Option<String>,
    /// `LicenseArn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_arn: Option<String>,
    /// `UsageAllocations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations: Option<Vec<AwsAllocation>>,
}

/// One `UsageAllocation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsAllocation {
    /// `AllocatedUsageQuantity`.
    pub quantity: i32,
    /// `Tags` as (key, value).
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

impl AwsWire {
    /// The identity that answers carry back: the account id, else the customer identifier.
    pub fn identity(&self) -> &str {
        self.customer_aws_account_id
            .as_deref()
            .or(self.customer_identifier.as_deref())
            .unwrap_or("")
    }
}

fn int(d: rust_decimal::Decimal, what: &str) -> Result<i32, String> {
    if d.fract().is_zero() {
        if let Some(v) = d.to_i32() {
            return Ok(v);
        }
    }
    Err(format!(
        "{what} {d} is not a whole number from 0 to 2147483647"
    ))
}

/// The wire values of an accepted AWS record, given its contract.
pub fn wire_values(
    rec: &UsageRecord,
    contract: Option<&Contract>,
) -> Result<serde_json::Value, String> {
    let (customer_identifier, customer_aws_account_id, license_arn) = match contract {
        Some(c) if c.customer_identifier.is_some() => (c.customer_identifier.clone(), None, None),
        Some(c) if c.aws_account_id.is_some() => {
            if c.license_arn.is_none() {
                return Err(format!(
                    "the contract of {} has aws_account_id but no license_arn; AWS needs both",
                    c.customer
                ));
            }
            (None, c.aws_account_id.clone(), c.license_arn.clone())
        }
        _ => (Some(rec.customer.clone()), None, None),
    };
    let allocations = rec
        .allocations
        .as_ref()
        .map(|list| {
            list.iter()
                .map(|a| {
                    Ok(AwsAllocation {
                        quantity: int(a.quantity, "allocation quantity")?,
                        tags: a
                            .tags
                            .iter()
                            .map(|t| (t.key.clone(), t.value.clone()))
                            .collect(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .transpose()?;
    let wire = AwsWire {
        timestamp: format_rfc3339(rec.start_time),
        quantity: int(rec.quantity, "quantity")?,
        customer_identifier,
        customer_aws_account_id,
        license_arn,
        allocations,
    };
    serde_json::to_value(wire).map_err(|e| e.to_string())
}

fn sdk_record(row: &LedgerRow) -> Result<(AwsWire, SdkRecord), String> {
    let w: AwsWire = serde_json::from_value(row.wire.clone())
        .map_err(|e| format!("the stored wire values do not read: {e}"))?;
    let t = parse_rfc3339(&w.timestamp).map_err(|e| format!("timestamp {e}"))?;
    let ts =
        aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos());
    let mut b = SdkRecord::builder()
        .timestamp(ts)
        .dimension(row.dimension.clone())
        .quantity(w.quantity);
    if let Some(c) = &w.customer_identifier {
        b = b.customer_identifier(c.clone());
    }
    if let Some(a) = &w.customer_aws_account_id {
        b = b.customer_aws_account_id(a.clone());
    }
    if let Some(l) = &w.license_arn {
        b = b.license_arn(l.clone());
    }
    if let Some(allocs) = &w.allocations {
        for a in allocs {
            let mut ab = UsageAllocation::builder().allocated_usage_quantity(a.quantity);
            for (k, v) in &a.tags {
                ab = ab.tags(
                    Tag::builder()
                        .key(k.clone())
                        .value(v.clone())
                        .build()
                        .map_err(|e| e.to_string())?,
                );
            }
            b = b.usage_allocations(ab.build().map_err(|e| e.to_string())?);
        }
    }
    let rec = b.build().map_err(|e| e.to_string())?;
    Ok((w, rec))
}

/// How to reach AWS.
#[derive(Clone, Debug, Default)]
pub struct AwsOptions {
    /// `--endpoint-url`.
    pub endpoint_url: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
    /// Log each HTTP exchange to stderr, with secrets redacted.
    pub verbose: bool,
}

/// The AWS sender.
pub struct AwsSender {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl AwsSender {
    /// Loads the standard AWS configuration and builds the client.
    pub fn new(opts: &AwsOptions) -> Result<AwsSender, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let shared = rt.block_on(async {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(u) = &opts.endpoint_url {
                loader = loader.endpoint_url(u.clone());
            }
            if let Some(r) = &opts.region {
                loader = loader.region(Region::new(r.clone()));
            }
            if let Some(p) = &opts.profile {
                loader = loader.profile_name(p.clone());
            }
            loader.load().await
        });
        if shared.region().is_none() {
            return Err("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), a region in the AWS config file, or --region".into());
        }
        let mut conf = aws_sdk_marketplacemetering::config::Builder::from(&shared)
            .retry_config(aws_sdk_marketplacemetering::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_marketplacemetering::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .interceptor(DropEmptyCustomerIdentifier);
        if opts.verbose {
            conf = conf.interceptor(VerboseLog);
        }
        Ok(AwsSender {
            rt,
            client: Client::from_conf(conf.build()),
        })
    }
}

fn key(identity: &str, dimension: &str, secs: i64) -> (String, String, i64) {
    (identity.to_owned(), dimension.to_owned(), secs)
}

fn sdk_key(r: &SdkRecord) -> (String, String, i64) {
    let identity = r
        .customer_aws_account_id()
        .filter(|s| !s.is_empty())
        .unwrap_or(r.customer_identifier());
    key(identity, r.dimension(), r.timestamp().secs())
}

const AUTH_CODES: [&str; 8] = [
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AccessDeniedException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "MissingAuthenticationTokenException",
    "IncompleteSignature",
];

fn classify(
    e: SdkError<BatchMeterUsageError, aws_sdk_marketplacemetering::config::http::HttpResponse>,
) -> CallError {
    match e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let err = se.err();
            let code = err.code().unwrap_or("").to_owned();
            let answer = if code.is_empty() {
                format!("HTTP {status}")
            } else {
                code.clone()
            };
            let reason = err
                .message()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned);
            let throttled = matches!(err, BatchMeterUsageError::ThrottlingException(_))
                || code.contains("Throttl")
                || code == "TooManyRequestsException"
                || status == 429;
            let server = matches!(err, BatchMeterUsageError::InternalServiceErrorException(_))
                || status >= 500;
            let per_record = matches!(
                err,
                BatchMeterUsageError::TimestampOutOfBoundsException(_)
                    | BatchMeterUsageError::InvalidUsageDimensionException(_)
                    | BatchMeterUsageError::InvalidLicenseException(_)
                    | BatchMeterUsageError::InvalidTagException(_)
                    | BatchMeterUsageError::InvalidUsageAllocationsException(_)
                    | BatchMeterUsageError::InvalidCustomerIdentifierException(_)
            ) || RECORD_EXCEPTIONS.contains(&code.as_str());
            if throttled || server {
                CallError::Retryable { answer, reason }
            } else if status == 401 || status == 403 || AUTH_CODES.contains(&code.as_str()) {
                CallError::Fatal(format!("AWS refused the credentials: {answer}: {reason}"))
            } else if per_record {
                CallError::RefusedForSome { answer, reason }
            } else {
                CallError::Refused { answer, reason }
            }
        }
        SdkError::TimeoutError(_) => CallError::Retryable {
            answer: "timeout".into(),
            reason: "no answer in time".into(),
        },
        SdkError::DispatchFailure(d) => {
            let credentials = d.as_connector_error().is_some_and(|c| {
                c.is_user()
                    || (c.is_other() && {
                        let dbg = format!("{c:?}");
                        dbg.contains("CredentialsNotLoaded")
                            || dbg.contains("CredentialsError")
                            || dbg.contains("ProviderError")
                    })
            });
            let reason: String = match d.as_connector_error() {
                Some(c) => source_chain(c),
                None => "the request could not be sent".into(),
            };
            if credentials {
                CallError::Fatal(format!(
                    "no usable AWS credentials (environment, shared files, SSO, container or instance role): {}",
                    reason.chars().take(400).collect::<String>()
                ))
            } else {
                CallError::Retryable {
                    answer: "connection".into(),
                    reason: reason.chars().take(300).collect(),
                }
            }
        }
        SdkError::ResponseError(r) => CallError::Retryable {
            answer: format!("HTTP {}", r.raw().status().as_u16()),
            reason: "the answer could not be read".into(),
        },
        e @ SdkError::ConstructionFailure(_) => CallError::Fatal(format!(
            "cannot build the AWS request: {}",
            source_chain(&e)
        )),
        other => CallError::Fatal(format!("AWS call failed: {}", source_chain(&other))),
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl MarketplaceSender for AwsSender {
    fn marketplace(&self) -> Marketplace {
        Marketplace::Aws
    }

    fn max_calls_per_second(&self) -> u32 {
        MAX_CALLS_PER_SECOND
    }

    fn send(&mut self, product: &str, rows: &[LedgerRow]) -> Result<Vec<RecordResult>, CallError> {
        let mut results: Vec<Option<RecordResult>> = vec![None; rows.len()];
        let mut by_key: HashMap<(String, String, i64), VecDeque<usize>> = HashMap::new();
        let mut req = self.client.batch_meter_usage().product_code(product);
        let mut n = 0;
        for (i, row) in rows.iter().enumerate() {
            match sdk_record(row) {
                Ok((w, rec)) => {
                    let secs = rec.timestamp().secs();
                    by_key
                        .entry(key(w.identity(), &row.dimension, secs))
                        .or_default()
                        .push_back(i);
                    req = req.usage_records(rec);
                    n += 1;
                }
                Err(reason) => {
                    results[i] = Some(RecordResult::Done(Outcome {
                        status: Status::Rejected,
                        answer: Some("metergate".into()),
                        reason: Some(reason),
                        marketplace_record_id: None,
                    }));
                }
            }
        }
        if n > 0 {
            let out = self.rt.block_on(req.send()).map_err(classify)?;
            for r in out.results() {
                let Some(rec) = r.usage_record() else {
                    continue;
                };
                let Some(i) = by_key.get_mut(&sdk_key(rec)).and_then(VecDeque::pop_front) else {
                    continue;
                };
                let id = r.metering_record_id().map(str::to_owned);
                let outcome = match r.status() {
                    Some(UsageRecordResultStatus::Success) => Outcome {
                        status: Status::Accepted,
                        answer: Some("Success".into()),
                        reason: None,
                        marketplace_record_id: id,
                    },
                    Some(UsageRecordResultStatus::CustomerNotSubscribed) => Outcome {
                        status: Status::Rejected,
                        answer: Some("CustomerNotSubscribed".into()),
                        reason: Some("the customer is not subscribed to this product".into()),
                        marketplace_record_id: id,
                    },
                    Some(UsageRecordResultStatus::DuplicateRecord) => Outcome {
                        status: Status::Duplicate,
                        answer: Some("DuplicateRecord".into()),
                        reason: Some("AWS already has a record for this customer, dimension and hour with another quantity, and bills that one".into()),
                        marketplace_record_id: id,
                    },
                    other => Outcome {
                        status: Status::Failed,
                        answer: other.map(|s| s.as_str().to_owned()),
                        reason: Some("an answer this metergate does not know".into()),
                        marketplace_record_id: id,
                    },
                };
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(RecordResult::Done(outcome));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or(RecordResult::Retry {
                    reason: "left unprocessed by AWS".into(),
                })
            })
            .collect())
    }
}

/// Removes `"CustomerIdentifier":""` from `BatchMeterUsage` bodies before signing (see the
/// module documentation).
#[derive(Debug)]
pub struct DropEmptyCustomerIdentifier;

/// The body without empty `CustomerIdentifier` members. The SDK writes compact JSON, and a
/// string value cannot hold an unescaped `"`, so the pattern only ever matches a member.
pub fn drop_empty_customer_identifier(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains(r#""CustomerIdentifier":"""#) {
        return None;
    }
    let out = text
        .replace(r#","CustomerIdentifier":"""#, "")
        .replace(r#"{"CustomerIdentifier":"","#, "{")
        .replace(r#"{"CustomerIdentifier":""}"#, "{}");
    Some(out.into_bytes())
}

impl Intercept for DropEmptyCustomerIdentifier {
    fn name(&self) -> &'static str {
        "metergate::DropEmptyCustomerIdentifier"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request_mut();
        let Some(new) = req.body().bytes().and_then(drop_empty_customer_identifier) else {
            return Ok(());
        };
        let len = new.len();
        *req.body_mut() = SdkBody::from(new);
        if req.headers().contains_key("content-length") {
            req.headers_mut().insert("content-length", len.to_string());
        }
        Ok(())
    }
}

/// Headers whose values are secrets (or let one be replayed): never printed.
pub const REDACTED_HEADERS: [&str; 4] = [
    "authorization",
    "x-amz-security-token",
    "cookie",
    "proxy-authorization",
];

/// `--verbose`: each request's method, URL, headers (secrets redacted) and body, and each
/// answer's status, on stderr.
#[derive(Debug)]
pub struct VerboseLog;

impl Intercept for VerboseLog {
    fn name(&self) -> &'static str {
        "metergate::VerboseLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        let mut s = format!("metergate: > {} {}\n", req.method(), req.uri());
        for (name, value) in req.headers().iter() {
            let shown = if REDACTED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                "<redacted>"
            } else {
                value
            };
            s.push_str(&format!("metergate: > {name}: {shown}\n"));
        }
        if let Some(b) = req.body().bytes() {
            s.push_str(&format!("metergate: > {}\n", String::from_utf8_lossy(b)));
        }
        eprint!("{s}");
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        eprintln!("metergate: < HTTP {}", context.response().status().as_u16());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn drops_only_empty_identifiers() {
        let body = br#"{"ProductCode":"p","UsageRecords":[{"Timestamp":1.0,"CustomerIdentifier":"","Dimension":"d","Quantity":1,"CustomerAWSAccountId":"111122223333","LicenseArn":"arn"},{"Timestamp":1.0,"CustomerIdentifier":"c-1","Dimension":"d","Quantity":2}]}"#;
        let out = String::from_utf8(drop_empty_customer_identifier(body).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"ProductCode":"p","UsageRecords":[{"Timestamp":1.0,"Dimension":"d","Quantity":1,"CustomerAWSAccountId":"111122223333","LicenseArn":"arn"},{"Timestamp":1.0,"CustomerIdentifier":"c-1","Dimension":"d","Quantity":2}]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["UsageRecords"].as_array().unwrap().len(), 2);
        assert!(drop_empty_customer_identifier(br#"{"CustomerIdentifier":"x"}"#).is_none());
        assert_eq!(
            drop_empty_customer_identifier(br#"{"CustomerIdentifier":"","a":1}"#).unwrap(),
            br#"{"a":1}"#
        );
    }
}

//! AWS: the Marketplace Agreement API and the Entitlement API, through the official
//! `aws-sdk-marketplaceagreement` and `aws-sdk-marketplaceentitlement`.
//!
//! Both SDKs speak Smithy RPC v2 CBOR (1.124 / 1.126). Credentials and region come from the
//! standard AWS chain, as for `submit` ([`crate::submit::aws`]); `--endpoint-url`,
//! `--region`, `--profile`, `AWS_ENDPOINT_URL` (and the SDKs' per-service
//! `AWS_ENDPOINT_URL_MARKETPLACE_AGREEMENT` / `..._MARKETPLACE_ENTITLEMENT_SERVICE`) behave as
//! in the AWS CLI. Requests are SigV4-signed by the SDKs; nothing here reads or prints a
//! secret. The SDKs' standard retries are on ([`MAX_ATTEMPTS`] attempts, throttling and 5xx).
//!
//! 1. `SearchAgreements` (catalog `AWSMarketplace`, filters `PartyType = Proposer`,
//!    `AgreementType = PurchaseAgreement`), every page;
//! 2. for each agreement of a configured product: `DescribeAgreement` (status, times,
//!    acceptor) and `GetAgreementTerms` (every page; the `dimensionKey`s of its usage-based
//!    and configurable-upfront rate cards are the dimensions);
//! 3. `GetEntitlements` per configured product code, every page: the `LicenseArn` of each
//!    customer account, and dimensions of entitlements the terms did not name.
//!
//! Agreements name the product by its id (`prod-...`), records and entitlements by its code;
//! the config maps them:
//!
//! ```toml
//! [aws.products."<product code>"]
//! product_id = "prod-example"
//! ```
//!
//! An agreement becomes a contract: `product` = the product code, `customer` =
//! `aws_account_id` = the acceptor's account id (a second agreement of one account for one
//! product is keyed `account/agreement`), `marketplace_id` = the agreement id, `license_arn`,
//! `starts_at` = `startTime`, `ends_at` = `endTime`. Status: the core's table
//! ([`metergate_core::status_of`]): `ACTIVE` → active; `CANCELLED`, `TERMINATED` → cancelled
//! at `endTime` (else the sync's time); `EXPIRED`, `ARCHIVED`, `ROLLED_BACK`, ... → ended.
//! A `RENEWED`, `REPLACED` or `SUPERSEDED` agreement whose account has an `ACTIVE` agreement
//! for the same product in the listing is skipped, as the `Purchase Agreement Ended` event
//! with those statuses only records: the newer agreement carries the contract on, and the
//! store moves the contract's `marketplace_id` to it ([`super::apply`] matches an AWS
//! agreement of an unknown id by product and `aws_account_id` when the contract's own
//! agreement is no longer listed). Without such a successor it ends, as the core says.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_marketplaceagreement as agr;
use aws_sdk_marketplaceagreement::error::ProvideErrorMetadata;
use aws_sdk_marketplaceentitlement as ent;
use aws_smithy_types::DateTime as SmithyTime;
use chrono::{DateTime, Utc};
use metergate_core::time::format_rfc3339;
use metergate_core::{ContractStatus, Marketplace};
use serde_json::{json, Value};

use super::{contract_from_json, SyncError, Synced};
use crate::submit::aws::AwsOptions;

/// Attempts per call (the SDKs' standard retry: throttling, 5xx, network errors).
pub const MAX_ATTEMPTS: u32 = 3;
const MAX_PAGES: usize = 100_000;
/// Agreement statuses that mean a newer agreement carries the contract on.
const SUCCEEDED: [&str; 3] = ["RENEWED", "REPLACED", "SUPERSEDED"];

fn fail(message: impl Into<String>) -> SyncError {
    SyncError::Call {
        marketplace: Marketplace::Aws,
        message: message.into(),
    }
}

/// One configured product: its code (records, entitlements) and its id (agreements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// Product code.
    pub code: String,
    /// Product id (`prod-...`).
    pub id: String,
}

/// The `[aws]` section of the config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsSyncConfig {
    /// Configured products.
    pub products: Vec<Product>,
}

impl AwsSyncConfig {
    /// Reads `aws.products` from the config (as JSON).
    pub fn from_value(v: &Value) -> Result<AwsSyncConfig, String> {
        let mut products = Vec::new();
        if let Some(p) = v.get("aws").and_then(|a| a.get("products")) {
            let obj = p
                .as_object()
                .ok_or("aws.products: a table of product codes")?;
            for (code, t) in obj {
                let id = t
                    .get("product_id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .ok_or(format!(
                        "aws.products.{code:?}.product_id: the product id (prod-...) agreements name"
                    ))?;
                products.push(Product {
                    code: code.clone(),
                    id: id.trim().to_owned(),
                });
            }
        }
        Ok(AwsSyncConfig { products })
    }
}

fn call_err<E, R>(op: &str, e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> SyncError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    let what = match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("an error without a code"),
                err.message().unwrap_or("")
            )
        }
        other => crate::submit::token::error_chain(other),
    };
    fail(format!(
        "{op}: {what} (after up to {MAX_ATTEMPTS} attempts)"
    ))
}

fn time(t: Option<&SmithyTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// Every purchase agreement of a configured product, as contracts. Returns them, the calls
/// made (operations sent; the SDKs' retries are not counted) and how many agreements were
/// skipped (no configured product, or renewed, replaced or superseded with a successor).
pub fn fetch(
    cfg: &AwsSyncConfig,
    opts: &AwsOptions,
    now: DateTime<Utc>,
) -> Result<(Vec<Synced>, u64, usize), SyncError> {
    if cfg.products.is_empty() {
        return Err(fail(
            "no products: add [aws.products.\"<product code>\"] product_id = \"prod-...\" to --config (agreements name products by id, records by code)",
        ));
    }
    let rt = crate::submit::token::runtime().map_err(fail)?;
    rt.block_on(async {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(u) = &opts.endpoint_url {
            loader = loader.endpoint_url(u.clone());
        }
        if let Some(r) = &opts.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(p) = &opts.profile {
            loader = loader.profile_name(p.clone());
        }
        let shared = loader.load().await;
        if shared.region().is_none() {
            return Err(fail("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), a region in the AWS config file, or --region"));
        }
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(100));
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .build();
        let agreements = agr::Client::from_conf(
            agr::config::Builder::from(&shared)
                .retry_config(retry.clone())
                .timeout_config(timeouts.clone())
                .build(),
        );
        let entitlements = ent::Client::from_conf(
            ent::config::Builder::from(&shared)
                .retry_config(retry)
                .timeout_config(timeouts)
                .build(),
        );
        let mut calls = 0u64;

        // 1. The seller's purchase agreements.
        let mut summaries = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            calls += 1;
            if opts.verbose {
                eprintln!("metergate: > SearchAgreements next_token={token:?}");
            }
            let page = agreements
                .search_agreements()
                .catalog("AWSMarketplace")
                .filters(agr::types::Filter::builder().name("PartyType").values("Proposer").build())
                .filters(
                    agr::types::Filter::builder()
                        .name("AgreementType")
                        .values("PurchaseAgreement")
                        .build(),
                )
                .max_results(50)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| call_err("SearchAgreements", &e))?;
            summaries.extend(page.agreement_view_summaries().iter().cloned());
            token = page.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        if token.is_some() {
            return Err(fail(format!("SearchAgreements: more than {MAX_PAGES} pages; stopped")));
        }

        // 3 (first, per product): licence ARNs and dimensions by account.
        let mut licences: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut ent_dims: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for p in &cfg.products {
            let mut token: Option<String> = None;
            let mut pages = 0;
            loop {
                pages += 1;
                if pages > MAX_PAGES {
                    return Err(fail(format!("GetEntitlements: more than {MAX_PAGES} pages; stopped")));
                }
                calls += 1;
                if opts.verbose {
                    eprintln!("metergate: > GetEntitlements product_code={} next_token={token:?}", p.code);
                }
                let page = entitlements
                    .get_entitlements()
                    .product_code(&p.code)
                    .set_next_token(token.clone())
                    .max_results(25)
                    .send()
                    .await
                    .map_err(|e| call_err("GetEntitlements", &e))?;
                for e in page.entitlements() {
                    let Some(acct) = e.customer_aws_account_id().filter(|s| !s.is_empty()) else {
                        continue;
                    };
                    let k = (p.code.clone(), acct.to_owned());
                    if let Some(l) = e.license_arn().filter(|s| !s.is_empty()) {
                        licences.entry(k.clone()).or_insert_with(|| l.to_owned());
                    }
                    if let Some(d) = e.dimension().filter(|s| !s.is_empty()) {
                        ent_dims.entry(k).or_default().insert(d.to_owned());
                    }
                }
                token = page.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }

        // 2. Each agreement of a configured product.
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        // (product id, account) of every ACTIVE agreement: the successors of renewed ones.
        let live: BTreeSet<(&str, &str)> = summaries
            .iter()
            .filter(|s| s.status().is_some_and(|w| w.as_str() == "ACTIVE"))
            .filter_map(|s| {
                let acct = s.acceptor().and_then(|a| a.account_id())?;
                let res = s.proposal_summary()?.resources();
                Some(res.iter().filter_map(|r| r.id()).map(move |id| (id, acct)))
            })
            .flatten()
            .collect();
        for s in &summaries {
            let Some(id) = s.agreement_id().filter(|s| !s.is_empty()) else {
                return Err(fail("SearchAgreements: an agreement without an agreementId"));
            };
            let resources: Vec<&str> = s
                .proposal_summary()
                .map(|p| p.resources().iter().filter_map(|r| r.id()).collect())
                .unwrap_or_default();
            let Some(product) = cfg.products.iter().find(|p| resources.contains(&p.id.as_str())) else {
                skipped += 1;
                continue;
            };
            if s
                .status()
                .is_some_and(|w| SUCCEEDED.contains(&w.as_str()))
                && s
                    .acceptor()
                    .and_then(|a| a.account_id())
                    .is_some_and(|a| live.contains(&(product.id.as_str(), a)))
            {
                skipped += 1;
                continue;
            }
            calls += 1;
            let d = agreements
                .describe_agreement()
                .agreement_id(id)
                .send()
                .await
                .map_err(|e| call_err("DescribeAgreement", &e))?;
            let mut dims: BTreeSet<String> = BTreeSet::new();
            let mut token: Option<String> = None;
            let mut pages = 0;
            loop {
                pages += 1;
                if pages > MAX_PAGES {
                    return Err(fail(format!("GetAgreementTerms: more than {MAX_PAGES} pages; stopped")));
                }
                calls += 1;
                let page = agreements
                    .get_agreement_terms()
                    .agreement_id(id)
                    .set_next_token(token.clone())
                    .max_results(50)
                    .send()
                    .await
                    .map_err(|e| call_err("GetAgreementTerms", &e))?;
                for t in page.accepted_terms() {
                    let keys: Vec<&str> = match t {
                        agr::types::AcceptedTerm::UsageBasedPricingTerm(u) => u
                            .rate_cards()
                            .iter()
                            .flat_map(|c| c.rate_card())
                            .filter_map(|i| i.dimension_key())
                            .collect(),
                        agr::types::AcceptedTerm::ConfigurableUpfrontPricingTerm(u) => u
                            .rate_cards()
                            .iter()
                            .flat_map(|c| c.rate_card())
                            .filter_map(|i| i.dimension_key())
                            .collect(),
                        _ => Vec::new(),
                    };
                    dims.extend(keys.into_iter().filter(|k| !k.is_empty()).map(str::to_owned));
                }
                token = page.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            let word = d
                .status()
                .or(s.status())
                .map(|w| w.as_str().to_owned())
                .ok_or_else(|| fail(format!("agreement {id}: no status")))?;
            let status = metergate_core::status_of(Marketplace::Aws, &word)
                .map_err(|e| fail(format!("agreement {id}: {e}")))?;
            let account = d
                .acceptor()
                .or(s.acceptor())
                .and_then(|a| a.account_id())
                .filter(|a| !a.is_empty())
                .ok_or_else(|| fail(format!("agreement {id}: no acceptor account id")))?
                .to_owned();
            let starts_at = time(d.start_time().or(s.start_time()))
                .or(time(d.acceptance_time()))
                .unwrap_or(now);
            let ends_at = time(d.end_time().or(s.end_time()))
                .or((status == ContractStatus::Ended).then_some(now));
            let cancelled_at = (status == ContractStatus::Cancelled)
                .then(|| ends_at.map_or(now, |e| e.min(now)).max(starts_at));
            let k = (product.code.clone(), account.clone());
            if let Some(more) = ent_dims.get(&k) {
                dims.extend(more.iter().cloned());
            }
            let n = seen.entry(k.clone()).or_insert(0);
            *n += 1;
            let customer = if *n > 1 { format!("{account}/{id}") } else { account.clone() };
            let contract = contract_from_json(json!({
                "marketplace": "aws",
                "product": product.code,
                "customer": customer,
                "status": status.as_str(),
                "starts_at": format_rfc3339(starts_at),
                "ends_at": ends_at.map(format_rfc3339),
                "cancelled_at": cancelled_at.map(format_rfc3339),
                "aws_account_id": account,
                "license_arn": licences.get(&k),
                "marketplace_id": id,
                "dimensions": dims.iter().map(|m| json!({"name": m})).collect::<Vec<_>>(),
            }))
            .map_err(|e| fail(format!("agreement {id}: {e}")))?;
            out.push(Synced {
                contract,
                id: id.to_owned(),
            });
        }
        Ok((out, calls, skipped))
    })
}

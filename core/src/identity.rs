//! The identity a marketplace knows a customer by, as it goes on the wire, and the dedup
//! series built on it.
//!
//! [`wire_identity`] is the one place that decides it: the core's identity rules
//! (`aws.identity`, `azure.identity`, `gcp.consumer`) report its errors as findings, and the
//! CLI's wire builders put its answer on the wire. So a record the core accepts always has an
//! identity the submitter can send.
//!
//! | marketplace | identity | from the contract |
//! | --- | --- | --- |
//! | AWS | `CustomerIdentifier` | `customer_identifier`, else the `customer` key (when no `license_arn` is set) |
//! | AWS | `CustomerAWSAccountId` + `LicenseArn` | `aws_account_id` + `license_arn` |
//! | Microsoft | `resourceId` / `resourceUri` | `resource_id` / `resource_uri`, else the `customer` key when it is a uuid |
//! | Google | `consumerId` | `usage_reporting_id`, else the `customer` key when it is a consumerId |
//!
//! A dedup key is what the marketplace keys on ([`series_key`]): AWS product + identity +
//! dimension (+ hour); Microsoft resource + dimension (+ hour); Google consumer + full metric
//! name (+ interval). Two seller customer keys with one wire identity share their keys; one
//! AWS account with two licences has two.

use serde::{Deserialize, Serialize};

use crate::contract::Contract;
use crate::finding::Finding;
use crate::model::Marketplace;
use crate::rules::{aws, azure, gcp};

/// The identity of one contract on its marketplace's wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum WireIdentity {
    /// AWS `CustomerIdentifier`.
    AwsCustomerIdentifier(String),
    /// AWS `CustomerAWSAccountId` + `LicenseArn`.
    AwsAccount {
        /// `CustomerAWSAccountId`.
        account_id: String,
        /// `LicenseArn`.
        license_arn: String,
    },
    /// Microsoft `resourceId` (a SaaS subscription id, a uuid).
    AzureResourceId(String),
    /// Microsoft `resourceUri` (a managed application).
    AzureResourceUri(String),
    /// Google Service Control `consumerId`, verbatim.
    GcpConsumer(String),
}

impl WireIdentity {
    /// The identity as one string for dedup keys: the marketplace's own comparison (Microsoft
    /// resources ignore letter case; the others are exact).
    pub fn key(&self) -> String {
        match self {
            WireIdentity::AwsCustomerIdentifier(c) => format!("cid:{c}"),
            WireIdentity::AwsAccount {
                account_id,
                license_arn,
            } => format!("acct:{account_id}|{license_arn}"),
            WireIdentity::AzureResourceId(id) => format!("id:{}", id.to_ascii_lowercase()),
            WireIdentity::AzureResourceUri(uri) => format!("uri:{}", uri.to_ascii_lowercase()),
            WireIdentity::GcpConsumer(c) => c.clone(),
        }
    }

    /// The identity as people read it (`CustomerAWSAccountId 123456789012 + LicenseArn ...`).
    pub fn describe(&self) -> String {
        match self {
            WireIdentity::AwsCustomerIdentifier(c) => format!("CustomerIdentifier {c}"),
            WireIdentity::AwsAccount {
                account_id,
                license_arn,
            } => format!("CustomerAWSAccountId {account_id} + LicenseArn {license_arn}"),
            WireIdentity::AzureResourceId(id) => format!("resourceId {id}"),
            WireIdentity::AzureResourceUri(uri) => format!("resourceUri {uri}"),
            WireIdentity::GcpConsumer(c) => format!("consumerId {c}"),
        }
    }
}

/// The identity a contract's records go out with, or the findings (`invalid-customer-identifier`
/// / `invalid-license`, on field `customer`) that keep them from being sent.
pub fn wire_identity(c: &Contract) -> Result<WireIdentity, Vec<Finding>> {
    match c.marketplace {
        Marketplace::Aws => aws::identity(c),
        Marketplace::Azure => azure::identity(c),
        Marketplace::Gcp => gcp::identity(c),
    }
}

/// The identity of a record: its contract's [`wire_identity`], or without a contract (which
/// the core rejects, but ledger tools and tests may build wire values for) the identity a
/// contract with no identity fields would give the customer key.
pub fn record_identity(
    mp: Marketplace,
    product: &str,
    customer: &str,
    contract: Option<&Contract>,
) -> Result<WireIdentity, Vec<Finding>> {
    match contract {
        Some(c) => wire_identity(c),
        None => wire_identity(&Contract {
            marketplace: mp,
            product: product.to_owned(),
            customer: customer.to_owned(),
            status: crate::contract::ContractStatus::Active,
            status_word: None,
            starts_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
            ends_at: None,
            cancelled_at: None,
            plan: None,
            customer_identifier: None,
            aws_account_id: None,
            license_arn: None,
            resource_id: None,
            resource_uri: None,
            usage_reporting_id: None,
            marketplace_id: None,
            dimensions: Vec::new(),
            properties: Default::default(),
        }),
    }
}

/// The dedup series of one dimension of a contract with this identity: AWS product, identity
/// and dimension; Microsoft resource and dimension; Google consumer and `<service>/<metric>`.
/// `dimension` is the contract's dimension name (a Google one may be short or full).
pub fn series_key(
    mp: Marketplace,
    product: &str,
    identity: &WireIdentity,
    dimension: &str,
) -> String {
    let id = identity.key();
    match mp {
        Marketplace::Aws => format!("aws\u{0}{product}\u{0}{id}\u{0}{dimension}"),
        Marketplace::Azure => format!("azure\u{0}{id}\u{0}{dimension}"),
        Marketplace::Gcp => format!(
            "gcp\u{0}{id}\u{0}{}",
            gcp::full_metric_name(product, dimension)
        ),
    }
}

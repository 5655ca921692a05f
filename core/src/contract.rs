//! Contracts: who may be billed, for what, and until when.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Marketplace;
use crate::states::{self, StateError};
use crate::time::{format_rfc3339, parse_rfc3339};

/// The state of a buyer's subscription or entitlement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContractStatus {
    /// Bought but not yet live (AWS pending, Azure PendingFulfillmentStart). No usage.
    Pending,
    /// Live: usage can be billed.
    Active,
    /// Suspended (Azure non-payment, ...). No usage.
    Suspended,
    /// Cancelled at `cancelled_at`: earlier usage may still be sent for a short window.
    Cancelled,
    /// Ended at `ends_at` (contract term over): as for cancelled.
    Ended,
}

impl ContractStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractStatus::Pending => "pending",
            ContractStatus::Active => "active",
            ContractStatus::Suspended => "suspended",
            ContractStatus::Cancelled => "cancelled",
            ContractStatus::Ended => "ended",
        }
    }
}

/// The value type of a Google metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// `int64Value` (the default).
    Int,
    /// `doubleValue`.
    Decimal,
}

/// A billable dimension (AWS, Azure) or metric (Google) of a contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// The dimension id exactly as published.
    pub name: String,
    /// The billing unit: quantities must be whole multiples of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Decimal>,
    /// Google metric value type; `int` when absent.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MetricType>,
    /// A money dimension: what one unit of quantity costs (`0.01` for "usage fee in cents").
    /// A cost amount becomes quantity = amount / price; see [`crate::money`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// The currency of `price` (ISO 4217, e.g. `USD`, the default); only with `price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl Dimension {
    /// A dimension with only a name.
    pub fn named(name: impl Into<String>) -> Dimension {
        Dimension {
            name: name.into(),
            unit: None,
            kind: None,
            price: None,
            currency: None,
        }
    }

    /// The currency of `price`: as given, else [`crate::money::DEFAULT_CURRENCY`].
    pub fn currency(&self) -> &str {
        self.currency
            .as_deref()
            .unwrap_or(crate::money::DEFAULT_CURRENCY)
    }
}

/// A buyer's contract for one product on one marketplace.
///
/// In JSON, `status` is one of the five [`ContractStatus`] words or a name the contract's
/// marketplace uses for it (`Subscribed`, `PENDING_CANCELLATION`, `EXPIRED`, ...; the table is
/// [`crate::states`]), in any letter case. [`Contract::status`] holds the state it maps to and
/// [`Contract::status_word`] the word as written, which serialising writes back. An empty
/// identity field (`customer_identifier`, `aws_account_id`, `license_arn`, `resource_id`,
/// `resource_uri`, `usage_reporting_id`) reads as absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ContractDoc", into = "ContractDoc")]
pub struct Contract {
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product code / offer / service name, as records give it.
    pub product: String,
    /// The customer key records use.
    pub customer: String,
    /// Current status, mapped to metergate's five states.
    pub status: ContractStatus,
    /// The status as the contract wrote it, when that is not exactly the lowercase
    /// [`ContractStatus`] word (`Subscribed`, `ACTIVE`, `Active`). Messages and listings show
    /// [`Contract::status_text`].
    pub status_word: Option<String>,
    /// When usage may start.
    #[serde(with = "rfc3339")]
    pub starts_at: DateTime<Utc>,
    /// When the term ends, if it does.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// When it was cancelled; required for status `cancelled`.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The plan bought (Azure planId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// AWS CustomerIdentifier (older integrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_identifier: Option<String>,
    /// AWS CustomerAWSAccountId (with `license_arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
    /// AWS LicenseArn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_arn: Option<String>,
    /// Azure SaaS subscription id (uuid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Azure managed application resource URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
    /// Google entitlement usageReportingId (the Service Control consumerId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_reporting_id: Option<String>,
    /// The marketplace's own id for this contract, used to match lifecycle events and
    /// syncs: the AWS agreement id, the Google entitlement id (for Microsoft the SaaS
    /// subscription id, which is `resource_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketplace_id: Option<String>,
    /// The billable dimensions.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// The seller's own labels (`internal_customer_identifier`, `orb_subscription_id`, ...):
    /// shown in listings and to policies (`ctx.contract.properties`), never sent to a
    /// marketplace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

/// The JSON form of a [`Contract`]: `status` as written.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContractDoc {
    marketplace: Marketplace,
    product: String,
    customer: String,
    status: String,
    #[serde(with = "rfc3339")]
    starts_at: DateTime<Utc>,
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    cancelled_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aws_account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    license_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage_reporting_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    marketplace_id: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    properties: BTreeMap<String, String>,
}

impl ContractDoc {
    /// The contract, or the status word's error.
    fn into_contract(self) -> Result<Contract, StateError> {
        let status = states::status_of(self.marketplace, &self.status)?;
        let status_word = (self.status != status.as_str()).then_some(self.status);
        let mut c = Contract {
            marketplace: self.marketplace,
            product: self.product,
            customer: self.customer,
            status,
            status_word,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            cancelled_at: self.cancelled_at,
            plan: self.plan,
            customer_identifier: self.customer_identifier,
            aws_account_id: self.aws_account_id,
            license_arn: self.license_arn,
            resource_id: self.resource_id,
            resource_uri: self.resource_uri,
            usage_reporting_id: self.usage_reporting_id,
            marketplace_id: self.marketplace_id,
            dimensions: self.dimensions,
            properties: self.properties,
        };
        c.normalize();
        Ok(c)
    }
}

impl TryFrom<ContractDoc> for Contract {
    type Error = StateError;
    fn try_from(d: ContractDoc) -> Result<Contract, StateError> {
        d.into_contract()
    }
}

impl From<Contract> for ContractDoc {
    fn from(c: Contract) -> ContractDoc {
        ContractDoc {
            status: c.status_text().to_owned(),
            marketplace: c.marketplace,
            product: c.product,
            customer: c.customer,
            starts_at: c.starts_at,
            ends_at: c.ends_at,
            cancelled_at: c.cancelled_at,
            plan: c.plan,
            customer_identifier: c.customer_identifier,
            aws_account_id: c.aws_account_id,
            license_arn: c.license_arn,
            resource_id: c.resource_id,
            resource_uri: c.resource_uri,
            usage_reporting_id: c.usage_reporting_id,
            marketplace_id: c.marketplace_id,
            dimensions: c.dimensions,
            properties: c.properties,
        }
    }
}

impl Contract {
    /// The status as the contract wrote it (`Subscribed`), else the lowercase state word.
    pub fn status_text(&self) -> &str {
        self.status_word
            .as_deref()
            .unwrap_or_else(|| self.status.as_str())
    }

    /// Empty identity fields become absent ("empty is unset": the AWS model defaults
    /// CustomerIdentifier to "").
    pub fn normalize(&mut self) {
        for f in [
            &mut self.customer_identifier,
            &mut self.aws_account_id,
            &mut self.license_arn,
            &mut self.resource_id,
            &mut self.resource_uri,
            &mut self.usage_reporting_id,
        ] {
            if f.as_deref() == Some("") {
                *f = None;
            }
        }
    }

    /// The instant after which no new usage may be dated: cancellation, or the term's end.
    pub fn stop_time(&self) -> Option<DateTime<Utc>> {
        match (self.cancelled_at, self.ends_at) {
            (Some(c), Some(e)) => Some(c.min(e)),
            (c, e) => c.or(e),
        }
    }

    /// The dimension with this name.
    pub fn dimension(&self, name: &str) -> Option<(usize, &Dimension)> {
        self.dimensions
            .iter()
            .enumerate()
            .find(|(_, d)| d.name == name)
    }

    /// The identity the marketplace knows this customer by, for display and the wire.
    pub fn identity(&self) -> &str {
        let explicit = match self.marketplace {
            Marketplace::Aws => self
                .customer_identifier
                .as_deref()
                .or(self.aws_account_id.as_deref()),
            Marketplace::Azure => self.resource_id.as_deref().or(self.resource_uri.as_deref()),
            Marketplace::Gcp => self.usage_reporting_id.as_deref(),
        };
        explicit.unwrap_or(&self.customer)
    }
}

/// A contracts file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    /// Not JSON, or a field of the wrong form.
    #[error("line {line}, column {column}: {path}: {message}")]
    Parse {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Where in the document (`[3].starts_at`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A contract that parses but makes no sense.
    #[error("contract {index} ({key}): {field}: {message}")]
    Invalid {
        /// 0-based position in the array.
        index: usize,
        /// `marketplace/product/customer`.
        key: String,
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Two contracts for the same marketplace + product + customer.
    #[error("contract {index} ({key}) repeats contract {first}: one contract per marketplace, product and customer")]
    Duplicate {
        /// 0-based position of the second one.
        index: usize,
        /// 0-based position of the first one.
        first: usize,
        /// `marketplace/product/customer`.
        key: String,
    },
}

/// Index of a contract inside a [`ContractSet`].
pub type ContractId = u32;

/// A dedup series: one wire identity and one dimension (see [`crate::identity::series_key`]).
/// Records of two contracts with the same wire identity share their series.
pub type SeriesId = u32;

/// Contracts, indexed by (marketplace, product, customer) for lookups that do not allocate.
#[derive(Clone, Debug, Default)]
pub struct ContractSet {
    contracts: Vec<Contract>,
    index: [FxHashMap<String, FxHashMap<String, ContractId>>; 3],
    /// The same index by lowercased customer, for "did you mean" hints without a scan.
    lower: [FxHashMap<String, FxHashMap<String, ContractId>>; 3],
    /// Per contract, the dedup series of each dimension; empty when the contract's identity
    /// cannot go on the wire (its records are rejected).
    series: Vec<Vec<SeriesId>>,
    /// Per contract, the group of contracts with the same wire identity (and product, on AWS).
    identity_group: Vec<Option<u32>>,
    /// Per contract, the findings that keep its identity off the wire (empty when it can go
    /// on the wire): worked out once here instead of once per record.
    identity_findings: Vec<Vec<crate::finding::Finding>>,
}

fn mp_slot(m: Marketplace) -> usize {
    match m {
        Marketplace::Aws => 0,
        Marketplace::Azure => 1,
        Marketplace::Gcp => 2,
    }
}

impl ContractSet {
    /// Parses a JSON array of contracts and checks each one.
    pub fn from_json(text: &str) -> Result<ContractSet, ContractError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let docs: Vec<ContractDoc> = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ContractError::Parse {
                line: inner.line(),
                column: inner.column(),
                path,
                message: strip_position(&inner.to_string()),
            }
        })?;
        let mut contracts = Vec::with_capacity(docs.len());
        for (index, d) in docs.into_iter().enumerate() {
            let key = format!("{}/{}/{}", d.marketplace, d.product, d.customer);
            contracts.push(d.into_contract().map_err(|e| ContractError::Invalid {
                index,
                key,
                field: "status",
                message: e.to_string(),
            })?);
        }
        ContractSet::new(contracts)
    }

    /// Builds a set from parsed contracts, checking each one.
    pub fn new(mut contracts: Vec<Contract>) -> Result<ContractSet, ContractError> {
        let mut set = ContractSet::default();
        contracts.iter_mut().for_each(Contract::normalize);
        let mut series_ids: FxHashMap<String, SeriesId> = FxHashMap::default();
        let mut groups: FxHashMap<String, u32> = FxHashMap::default();
        for (i, c) in contracts.iter().enumerate() {
            check_contract(i, c)?;
            let slot = &mut set.index[mp_slot(c.marketplace)];
            let by_customer = slot.entry(c.product.clone()).or_default();
            if let Some(first) = by_customer.get(&c.customer) {
                return Err(ContractError::Duplicate {
                    index: i,
                    first: *first as usize,
                    key: key_of(c),
                });
            }
            by_customer.insert(c.customer.clone(), i as ContractId);
            set.lower[mp_slot(c.marketplace)]
                .entry(c.product.clone())
                .or_default()
                .entry(c.customer.to_lowercase())
                .or_insert(i as ContractId);
            let identity = crate::identity::wire_identity(c);
            let (group, series) = match &identity {
                Ok(id) => {
                    let group_key = match c.marketplace {
                        Marketplace::Aws => format!("aws\u{0}{}\u{0}{}", c.product, id.key()),
                        m => format!("{m}\u{0}{}", id.key()),
                    };
                    let n = groups.len() as u32;
                    let group = *groups.entry(group_key).or_insert(n);
                    let series = c
                        .dimensions
                        .iter()
                        .map(|d| {
                            let key =
                                crate::identity::series_key(c.marketplace, &c.product, id, &d.name);
                            let n = series_ids.len() as SeriesId;
                            *series_ids.entry(key).or_insert(n)
                        })
                        .collect();
                    (Some(group), series)
                }
                Err(_) => (None, Vec::new()),
            };
            set.identity_findings
                .push(identity.err().unwrap_or_default());
            set.identity_group.push(group);
            set.series.push(series);
        }
        set.contracts = contracts;
        Ok(set)
    }

    /// The dedup series of a contract's dimension; `None` when the contract's identity cannot
    /// go on the wire.
    pub fn series(&self, id: ContractId, dimension: usize) -> Option<SeriesId> {
        self.series.get(id as usize)?.get(dimension).copied()
    }

    /// The findings that keep this contract's identity off the wire (see
    /// [`crate::identity::wire_identity`]); empty when it can go on the wire.
    pub fn identity_findings(&self, id: ContractId) -> &[crate::finding::Finding] {
        self.identity_findings
            .get(id as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// The contracts with the same wire identity as this one (itself included), in input
    /// order: their records share dedup keys.
    pub fn same_identity(&self, id: ContractId) -> impl Iterator<Item = (ContractId, &Contract)> {
        let group = self.identity_group.get(id as usize).copied().flatten();
        self.identity_group
            .iter()
            .enumerate()
            .filter(move |(i, g)| **g == group && (group.is_some() || *i == id as usize))
            .filter_map(|(i, _)| self.contracts.get(i).map(|c| (i as ContractId, c)))
    }

    /// Finds the contract for a record's key.
    pub fn find(
        &self,
        m: Marketplace,
        product: &str,
        customer: &str,
    ) -> Option<(ContractId, &Contract)> {
        let id = *self.index[mp_slot(m)].get(product)?.get(customer)?;
        self.contracts.get(id as usize).map(|c| (id, c))
    }

    /// The contract with this id.
    pub fn get(&self, id: ContractId) -> Option<&Contract> {
        self.contracts.get(id as usize)
    }

    /// All contracts, in input order.
    pub fn all(&self) -> &[Contract] {
        &self.contracts
    }

    /// The number of customers with a contract for this product.
    pub fn customer_count(&self, m: Marketplace, product: &str) -> usize {
        self.index[mp_slot(m)]
            .get(product)
            .map_or(0, FxHashMap::len)
    }

    /// A customer of this product whose id differs from `customer` only in letter case.
    pub fn customer_ignoring_case(
        &self,
        m: Marketplace,
        product: &str,
        customer: &str,
    ) -> Option<&str> {
        let id = *self.lower[mp_slot(m)]
            .get(product)?
            .get(&customer.to_lowercase())?;
        self.get(id).map(|c| c.customer.as_str())
    }

    /// The customers that have a contract for this product, unsorted.
    pub fn customers_iter<'a>(
        &'a self,
        m: Marketplace,
        product: &str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.index[mp_slot(m)]
            .get(product)
            .into_iter()
            .flat_map(|c| c.keys().map(String::as_str))
    }

    /// The customers that have a contract for this product, sorted.
    pub fn customers_of(&self, m: Marketplace, product: &str) -> Vec<&str> {
        let mut v: Vec<&str> = self.index[mp_slot(m)]
            .get(product)
            .map(|c| c.keys().map(String::as_str).collect())
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// The products that have a contract with this customer, sorted.
    pub fn products_of(&self, m: Marketplace, customer: &str) -> Vec<&str> {
        let mut v: Vec<&str> = self.index[mp_slot(m)]
            .iter()
            .filter(|(_, cs)| cs.contains_key(customer))
            .map(|(p, _)| p.as_str())
            .collect();
        v.sort_unstable();
        v
    }
}

fn key_of(c: &Contract) -> String {
    format!("{}/{}/{}", c.marketplace, c.product, c.customer)
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

fn check_contract(i: usize, c: &Contract) -> Result<(), ContractError> {
    let bad = |field: &'static str, message: String| ContractError::Invalid {
        index: i,
        key: key_of(c),
        field,
        message,
    };
    if c.product.is_empty() {
        return Err(bad("product", "is empty".into()));
    }
    if c.customer.is_empty() {
        return Err(bad("customer", "is empty".into()));
    }
    let word = match &c.status_word {
        Some(w) => format!("{w} ({})", c.status),
        None => c.status.as_str().to_owned(),
    };
    if c.status == ContractStatus::Cancelled && c.cancelled_at.is_none() {
        return Err(bad(
            "cancelled_at",
            format!("status is {word} but cancelled_at is missing"),
        ));
    }
    if c.status == ContractStatus::Ended && c.ends_at.is_none() && c.cancelled_at.is_none() {
        return Err(bad(
            "ends_at",
            format!("status is {word} but ends_at is missing"),
        ));
    }
    if let Some(t) = c.cancelled_at {
        if t < c.starts_at {
            return Err(bad(
                "cancelled_at",
                format!(
                    "{} is before starts_at {}",
                    format_rfc3339(t),
                    format_rfc3339(c.starts_at)
                ),
            ));
        }
    }
    if let Some(t) = c.ends_at {
        if t <= c.starts_at {
            return Err(bad(
                "ends_at",
                format!(
                    "{} is not after starts_at {}",
                    format_rfc3339(t),
                    format_rfc3339(c.starts_at)
                ),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for d in &c.dimensions {
        if d.name.is_empty() {
            return Err(bad("dimensions", "a dimension has an empty name".into()));
        }
        // Google's short and full metric names are one metric.
        let name = match c.marketplace {
            Marketplace::Gcp => crate::rules::gcp::short_metric_name(&c.product, &d.name),
            _ => d.name.as_str(),
        };
        if !seen.insert(name) {
            return Err(bad(
                "dimensions",
                format!("dimension {:?} is listed twice", d.name),
            ));
        }
        if let Some(u) = d.unit {
            if u <= Decimal::ZERO {
                return Err(bad(
                    "dimensions",
                    format!(
                        "dimension {:?} has unit {u}; a unit must be above zero",
                        d.name
                    ),
                ));
            }
        }
        if let Some(p) = d.price {
            if p <= Decimal::ZERO {
                return Err(bad(
                    "dimensions",
                    format!(
                        "dimension {:?} has price {p}; a price must be above zero",
                        d.name
                    ),
                ));
            }
        }
        if let Some(cur) = &d.currency {
            if d.price.is_none() {
                return Err(bad(
                    "dimensions",
                    format!(
                        "dimension {:?} has a currency but no price; currency is the price's",
                        d.name
                    ),
                ));
            }
            if !crate::money::is_currency_code(cur) {
                return Err(bad(
                    "dimensions",
                    format!(
                        "dimension {:?} has currency {cur:?}; give an ISO 4217 code such as USD",
                        d.name
                    ),
                ));
            }
        }
    }
    if c.properties.keys().any(String::is_empty) {
        return Err(bad("properties", "a property has an empty name".into()));
    }
    Ok(())
}

/// Serde helpers: RFC 3339 with a required offset, through [`parse_rfc3339`].
pub(crate) mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).map_err(|e| serde::de::Error::custom(format_args!("{s:?} {e}")))
    }
}

/// Serde helpers for optional RFC 3339 times.
pub(crate) mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => parse_rfc3339(&s)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format_args!("{s:?} {e}"))),
        }
    }
}

impl fmt::Display for ContractStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

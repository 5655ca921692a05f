//! Seller policies in rhai (stub: being written; see issue 4).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::contract::Contract;
use crate::finding::Finding;
use crate::model::UsageRecord;

/// One policy's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySource {
    /// The policy's name: its file stem. Findings carry `rule = "policy:<name>"`.
    pub name: String,
    /// The rhai source.
    pub source: String,
}

/// A policy set could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Compile error.
    #[error("policy {name}: line {line}, column {column}: {message}")]
    Compile {
        /// Policy name.
        name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// What a policy sees besides the record.
#[derive(Clone, Copy, Debug)]
pub struct PolicyContext<'a> {
    /// The validation's "now".
    pub now: DateTime<Utc>,
    /// The record's contract, if it has one.
    pub contract: Option<&'a Contract>,
    /// The built-in findings already made for this record.
    pub findings: &'a [Finding],
}

/// Compiled policies, run in order.
#[derive(Clone, Default)]
pub struct PolicySet {}

impl PolicySet {
    /// Compiles every policy once.
    pub fn compile(
        sources: &[PolicySource],
        _params: &BTreeMap<String, serde_json::Value>,
    ) -> Result<PolicySet, PolicyError> {
        let _ = sources;
        Ok(PolicySet {})
    }

    /// True when there is no policy.
    pub fn is_empty(&self) -> bool {
        true
    }

    /// Runs every policy on one record, appending their findings to `out`.
    pub fn run(&self, _record: &UsageRecord, _ctx: &PolicyContext<'_>, _out: &mut Vec<Finding>) {}
}

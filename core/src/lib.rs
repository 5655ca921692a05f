//! # metergate-core
//!
//! The marketplace metering rules of AWS Marketplace, the Microsoft commercial marketplace and
//! Google Cloud Marketplace, as one pure library: no I/O, no clock, no randomness. "Now" is
//! always an argument. The CLI and the WASM package both call [`validate`] or a [`Session`],
//! so their verdicts are the same by construction.
//!
//! ```
//! use metergate_core::{validate, ContractSet, RawRecord, Settings, time::parse_rfc3339};
//! let contracts = ContractSet::from_json(r#"[{"marketplace":"aws","product":"prod-a1",
//!   "customer":"cust-1","status":"active","starts_at":"2026-01-01T00:00:00Z",
//!   "dimensions":[{"name":"api_calls"}]}]"#).unwrap();
//! let rec: RawRecord = serde_json::from_str(r#"{"marketplace":"aws","product":"prod-a1",
//!   "customer":"cust-1","dimension":"api_calls","quantity":3,
//!   "start_time":"2026-03-01T10:00:00Z"}"#).unwrap();
//! let now = parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
//! let report = validate(&[rec], &contracts, &Settings::default(), now);
//! assert_eq!(report.summary.accepted, 1);
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod aggregate;
pub mod batch;
pub mod contract;
pub mod csv_reader;
pub mod dedup;
pub mod explain;
pub mod finding;
pub mod heartbeat;
pub mod identity;
pub mod input;
pub mod model;
pub mod money;
pub mod parse;
pub mod policy;
pub mod reference;
pub mod report;
pub mod rules;
pub mod settings;
pub mod states;
pub mod time;
pub mod units;
pub mod validator;
pub mod window;

pub use contract::{
    Contract, ContractError, ContractSet, ContractStatus, Dimension, MetricType, SeriesId,
};
pub use finding::{Code, Finding, Severity};
pub use identity::{record_identity, wire_identity, WireIdentity};
pub use model::{Field, Marketplace, RawRecord, UsageRecord};
pub use policy::{PolicyError, PolicySet, PolicySource};
pub use report::{Report, Summary, Verdict, VerdictKind};
pub use settings::Settings;
pub use states::{status_of, StateError};
pub use validator::{validate, HistoryEntry, Session, Validator};

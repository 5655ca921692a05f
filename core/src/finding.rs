//! Findings: what a rule or policy says about one record.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::UsageRecord;

/// How serious a finding is. Errors reject the record; warnings never do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The record is sent, but someone should look.
    Warning,
    /// The marketplace would reject the record (or the seller's policy does).
    Error,
}

impl Severity {
    /// `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// The stable finding codes (listed in `docs/RULES.md`). Policy findings carry their own code
/// as a string and are not listed here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// A required field is missing, empty or of the wrong form.
    InvalidRecord,
    /// The quantity is not acceptable to the marketplace or the dimension.
    InvalidQuantity,
    /// A time is too old, in the future, or outside the contract.
    TimestampOutOfBounds,
    /// No usable contract for this customer.
    CustomerNotEntitled,
    /// The dimension is not one of the contract's.
    InvalidUsageDimension,
    /// The same dedup key was already sent with another quantity (or at all, on Azure).
    DuplicateRequest,
    /// AWS allocations broken.
    InvalidUsageAllocations,
    /// AWS allocation tag broken.
    InvalidTag,
    /// Marketplace identity fields malformed or conflicting.
    InvalidCustomerIdentifier,
    /// AWS LicenseArn malformed.
    InvalidLicense,
    /// Product identifier malformed.
    InvalidProductCode,
    /// A seller policy could not run for this record.
    PolicyFailed,
    /// AWS idempotent repeat: billed once.
    DuplicateIgnored,
    /// Google: reported more than an hour after the usage ended.
    LateReport,
    /// Google: the interval overlaps another for the same consumer and metric.
    OverlappingInterval,
    /// Valid now, but not for much longer.
    WindowClosing,
    /// The usage's month has closed or is about to close for invoicing.
    MonthEndCutoff,
}

impl Code {
    /// Every built-in code.
    pub const ALL: [Code; 17] = [
        Code::InvalidRecord,
        Code::InvalidQuantity,
        Code::TimestampOutOfBounds,
        Code::CustomerNotEntitled,
        Code::InvalidUsageDimension,
        Code::DuplicateRequest,
        Code::InvalidUsageAllocations,
        Code::InvalidTag,
        Code::InvalidCustomerIdentifier,
        Code::InvalidLicense,
        Code::InvalidProductCode,
        Code::PolicyFailed,
        Code::DuplicateIgnored,
        Code::LateReport,
        Code::OverlappingInterval,
        Code::WindowClosing,
        Code::MonthEndCutoff,
    ];

    /// The stable kebab-case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRecord => "invalid-record",
            Code::InvalidQuantity => "invalid-quantity",
            Code::TimestampOutOfBounds => "timestamp-out-of-bounds",
            Code::CustomerNotEntitled => "customer-not-entitled",
            Code::InvalidUsageDimension => "invalid-usage-dimension",
            Code::DuplicateRequest => "duplicate-request",
            Code::InvalidUsageAllocations => "invalid-usage-allocations",
            Code::InvalidTag => "invalid-tag",
            Code::InvalidCustomerIdentifier => "invalid-customer-identifier",
            Code::InvalidLicense => "invalid-license",
            Code::InvalidProductCode => "invalid-product-code",
            Code::PolicyFailed => "policy-failed",
            Code::DuplicateIgnored => "duplicate-ignored",
            Code::LateReport => "late-report",
            Code::OverlappingInterval => "overlapping-interval",
            Code::WindowClosing => "window-closing",
            Code::MonthEndCutoff => "month-end-cutoff",
        }
    }

    /// The severity a built-in code always has.
    pub fn severity(self) -> Severity {
        match self {
            Code::DuplicateIgnored
            | Code::LateReport
            | Code::OverlappingInterval
            | Code::WindowClosing
            | Code::MonthEndCutoff => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// Looks a code up by its string.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding on one record. Two findings are equal when what they say is (code, severity,
/// field, message, hint, rule): the [`Suggestion`] behind a hint is not part of the result.
#[derive(Clone, Debug, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable code: a built-in one, or a policy's own.
    pub code: String,
    /// Error or warning.
    pub severity: Severity,
    /// The record field at fault, when there is one.
    pub field: Option<String>,
    /// Plain English, naming the values.
    pub message: String,
    /// How to fix it, with concrete values.
    pub hint: Option<String>,
    /// The rule id (`aws.lookback`, ...) or `policy:<name>`.
    pub rule: String,
    /// The concrete record the hint proposes, if it proposes one. The core judges it before
    /// the hint is shown and falls back to a hint without it when it would be rejected; it is
    /// kept (not serialized) so that callers and tests can judge it again.
    #[serde(skip)]
    pub suggestion: Option<Suggestion>,
}

/// What a hint proposes, as changes to the record it is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Suggestion {
    /// Send this quantity instead.
    pub quantity: Option<Decimal>,
    /// Use this start time instead.
    pub start_time: Option<DateTime<Utc>>,
    /// Use this end time instead (Google).
    pub end_time: Option<DateTime<Utc>>,
    /// True for a carry: a new record of `quantity` at `start_time`, sent once that time has
    /// come, and judged as a whole record then. Otherwise only the changed fields must pass.
    pub carry: bool,
    /// The hint to show instead when the suggested record would be rejected.
    pub fallback: String,
}

impl PartialEq for Finding {
    fn eq(&self, other: &Finding) -> bool {
        self.code == other.code
            && self.severity == other.severity
            && self.field == other.field
            && self.message == other.message
            && self.hint == other.hint
            && self.rule == other.rule
    }
}

impl Suggestion {
    /// The record the suggestion proposes, and the "now" to judge it at: a carry is judged
    /// when its hour has come (the later of `now` and its start).
    pub fn apply(&self, rec: &UsageRecord, now: DateTime<Utc>) -> (UsageRecord, DateTime<Utc>) {
        let mut r = rec.clone();
        let at = self.apply_in_place(&mut r, now);
        (r, at)
    }

    /// [`Suggestion::apply`] on a record the caller owns: changes `r` and returns the "now"
    /// to judge it at.
    pub(crate) fn apply_in_place(&self, r: &mut UsageRecord, now: DateTime<Utc>) -> DateTime<Utc> {
        if let Some(q) = self.quantity {
            r.quantity = q;
            if self.carry {
                r.allocations = None;
            }
        }
        if let Some(t) = self.start_time {
            r.start_time = t;
        }
        if let Some(t) = self.end_time {
            r.end_time = Some(t);
        }
        if self.carry {
            now.max(r.start_time)
        } else {
            now
        }
    }

    /// Whether the findings of the suggested record let the suggestion stand: a carry must
    /// be accepted as a whole; a change of fields must leave no error on the fields changed.
    pub fn accepts(&self, findings: &[Finding]) -> bool {
        let changed = |field: Option<&str>| match field {
            Some("quantity") => self.quantity.is_some(),
            Some("start_time") => self.start_time.is_some(),
            Some("end_time") => self.end_time.is_some(),
            _ => false,
        };
        !findings
            .iter()
            .any(|f| f.is_error() && (self.carry || changed(f.field.as_deref())))
    }
}

impl Finding {
    /// A built-in finding, with the code's own severity.
    pub fn new(code: Code, rule: &str, field: Option<&str>, message: String) -> Finding {
        Finding {
            code: code.as_str().to_owned(),
            severity: code.severity(),
            field: field.map(str::to_owned),
            message,
            hint: None,
            rule: rule.to_owned(),
            suggestion: None,
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: String) -> Finding {
        self.hint = Some(hint);
        self
    }

    /// Adds a hint that proposes a concrete record (see [`Suggestion`]).
    pub fn suggest(mut self, hint: String, suggestion: Suggestion) -> Finding {
        self.hint = Some(hint);
        self.suggestion = Some(suggestion);
        self
    }

    /// True for an error finding.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

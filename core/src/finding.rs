//! Findings: what a rule or policy says about one record.

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// One finding on one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
        }
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: String) -> Finding {
        self.hint = Some(hint);
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

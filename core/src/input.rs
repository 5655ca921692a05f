//! Rows as input readers hand them over: a record to judge, or a row that could not be read
//! as one (with the `invalid-record` finding it gets), each with the physical line it starts
//! on. Shared by the core's CSV reader ([`crate::csv_reader`]), the CLI's JSON readers and the
//! WASM package.

use crate::finding::{Code, Finding};
use crate::model::RawRecord;
use crate::parse::RULE_FORM;

/// One input row.
// Records are the common case: boxing them would cost an allocation per row.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Row {
    /// A record to judge.
    Record(RawRecord),
    /// A row that could not be read as a record: it gets a verdict with this finding.
    Unreadable {
        /// An `invalid-record` finding naming the column, or `row`.
        finding: Finding,
        /// The record id, when it could still be read.
        record_id: Option<String>,
    },
}

/// A row with the 1-based physical line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub struct InputRecord {
    /// CSV: the header is line 1. JSON array: the line of the object's `{`. JSONL: the line.
    pub line: u64,
    /// The record, or why it could not be read.
    pub row: Row,
}

/// The `invalid-record` finding of a row an input reader could not read.
pub fn unreadable(field: &str, message: String, hint: &str) -> Finding {
    Finding::new(Code::InvalidRecord, RULE_FORM, Some(field), message).hint(hint.to_owned())
}

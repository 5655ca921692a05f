//! Verdicts and the summary of a run: the wire shape the CLI's JSON lines and the WASM
//! package share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};

/// Accepted or rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    /// No error finding: the record may be sent.
    Accepted,
    /// At least one error finding: the record must not be sent.
    Rejected,
}

impl VerdictKind {
    /// `accepted` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Accepted => "accepted",
            VerdictKind::Rejected => "rejected",
        }
    }
}

/// The verdict on one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// 0-based position in the whole input.
    pub index: u64,
    /// The record's own id, if it had one.
    pub record_id: Option<String>,
    /// Accepted or rejected.
    pub verdict: VerdictKind,
    /// Every finding, built-in rules first, then policies, in rule order.
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// Builds a verdict from findings: rejected if any is an error.
    pub fn from_findings(index: u64, record_id: Option<String>, findings: Vec<Finding>) -> Verdict {
        let verdict = if findings.iter().any(Finding::is_error) {
            VerdictKind::Rejected
        } else {
            VerdictKind::Accepted
        };
        Verdict {
            index,
            record_id,
            verdict,
            findings,
        }
    }

    /// True when accepted.
    pub fn accepted(&self) -> bool {
        self.verdict == VerdictKind::Accepted
    }
}

/// Counts over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Records judged.
    pub records: u64,
    /// Records accepted.
    pub accepted: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Warning findings (on any record).
    pub warnings: u64,
    /// Findings per code, errors and warnings alike.
    pub by_code: BTreeMap<String, u64>,
}

impl Summary {
    /// Counts one verdict in.
    pub fn add(&mut self, v: &Verdict) {
        self.add_parts(v.verdict, &v.findings);
    }

    /// Counts one verdict given by its parts (for callers that keep verdicts in their own
    /// shape).
    pub fn add_parts(&mut self, verdict: VerdictKind, findings: &[crate::Finding]) {
        self.records += 1;
        match verdict {
            VerdictKind::Accepted => self.accepted += 1,
            VerdictKind::Rejected => self.rejected += 1,
        }
        for f in findings {
            if f.severity == Severity::Warning {
                self.warnings += 1;
            }
            if let Some(n) = self.by_code.get_mut(f.code.as_str()) {
                *n += 1;
            } else {
                self.by_code.insert(f.code.clone(), 1);
            }
        }
    }
}

/// Everything a batch call returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// One verdict per record, in input order.
    pub verdicts: Vec<Verdict>,
    /// The counts.
    pub summary: Summary,
}

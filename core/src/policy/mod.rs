//! Seller policies: sandboxed [rhai](https://rhai.rs) scripts that add the seller's own rules.
//!
//! A policy is a rhai source file that defines `fn check(record, ctx)`. For each record, after
//! the built-in rules, the core calls it; the policy reports findings by calling:
//!
//! | function | finding |
//! | --- | --- |
//! | `warn(code, message)`, `warn(code, message, hint)` | a warning |
//! | `reject(code, message)`, `reject(code, message, hint)` | an error: the record is rejected |
//! | `warn_field(field, code, message[, hint])`, `reject_field(..)` | the same, naming a field |
//!
//! Every finding has `rule = "policy:<name>"` (the file stem). `code` must be 1 to
//! [`MAX_CODE_LEN`] characters of `a-z 0-9 - _ : .`, and one call may report at most
//! [`MAX_FINDINGS_PER_CALL`] findings; otherwise the record gets `policy-failed`.
//!
//! ## `record` (read-only)
//!
//! `marketplace` (`"aws"`, `"azure"`, `"gcp"`), `product`, `customer`, `dimension` (strings),
//! `quantity` (decimal: compares and computes with integers too, `record.quantity > 1000`),
//! `start_time` (Time), `end_time` (Time or `()`), `record_id` and `plan` (string or `()`),
//! and `attributes`, the extra input columns: `record.attributes["name"]` or
//! `record.attributes.name` (string or `()` when absent), `"name" in record.attributes`,
//! `.keys()`, `.len()`, `.to_map()`.
//!
//! ## `ctx` (read-only)
//!
//! * `ctx.now`: the validation's "now" (Time). Scripts never see the real clock.
//! * `ctx.contract`: `()` when the record has no contract, else an object with `status`
//!   (`"pending"`, `"active"`, `"suspended"`, `"cancelled"`, `"ended"`), `marketplace`,
//!   `product`, `customer`, `starts_at` (Time), `ends_at`, `cancelled_at`, `stop_time` (Time or
//!   `()`), `plan` (string or `()`), `dimensions` (array of maps `#{name, unit, type, price}`;
//!   `unit` and `price` a decimal or `()`, `type` `"int"`, `"decimal"` or `()`),
//!   `dimension_names` (array of strings), `has_dimension(name)` and `properties` (a map of
//!   the contract's string properties, empty when it has none).
//! * `ctx.params`: this policy's parameters from the settings (`params.<name>`, which must
//!   be a table), as a map: an empty map when there are none. JSON integers become integers,
//!   other numbers decimals, `null` becomes `()`. Each read returns a fresh copy, so read it
//!   once (`let p = ctx.params;`); changing the copy changes nothing else.
//! * `ctx.findings`: the built-in findings already made for this record, an array of maps
//!   `#{code, severity, field, message, hint, rule}` (`severity` is `"error"` or `"warning"`;
//!   `field` and `hint` may be `()`).
//!
//! ## Times and durations
//!
//! A `Time` is an instant viewed in a UTC offset (UTC for record times and `ctx.now`).
//! * Build: `time("2026-03-31T23:45:00+05:30")` (strict RFC 3339; keeps the offset),
//!   `time_at(year, month, day, hour, minute)` (UTC), `time_at(y, mo, d, h, mi, "+05:30")`,
//!   `time_at(y, mo, d, h, mi, second, "+05:30")`. Offsets are `Z`, `UTC` or `±hh:mm`. A bad
//!   string or date is a runtime error, so the record gets `policy-failed`.
//! * Read, in the time's own offset: `year`, `month` (1-12), `day`, `hour`, `minute`,
//!   `second`, `weekday` (ISO: 1 = Monday .. 7 = Sunday), `offset` (`"+05:30"`), `unix`
//!   (seconds since 1970, offset-independent).
//! * `t.in_offset("+05:30")` views the same instant in another offset; `t.to_utc()`.
//! * `t.days_in_month()`, `t.start_of_day()`, `t.start_of_month()`, and `t.end_of_month()`:
//!   midnight starting the next month in the same offset, the month's exclusive end. So the
//!   last 23:45 of the month in India is `t.in_offset("+05:30").end_of_month() - minutes(15)`.
//! * `t.to_string()`: RFC 3339 (`Z` for UTC times).
//! * `==`, `!=`, `<`, `<=`, `>`, `>=` compare instants, whatever the offsets.
//! * `days(n)`, `hours(n)`, `minutes(n)`, `seconds(n)` make a `Duration`; `t + d`, `d + t`,
//!   `t - d`, and `t1 - t2` (a Duration). Durations add, subtract, negate, multiply by an
//!   integer, compare, and read as whole `days`, `hours`, `minutes`, `seconds` (truncated).
//!
//! ## The sandbox
//!
//! The engine has no file, module, clock, print or `eval` access, and every limit is set
//! explicitly, the same in debug, release and WASM builds: see the `MAX_*` constants.
//! Limits count operations, never wall-clock time, so a verdict never depends on the
//! machine. The count covers the operations of callbacks (`reduce`, `map`, `sort`, ...), and
//! builtins whose work grows with text or array sizes count by size (see `cost`). Number
//! functions are parsing, conversions and rounding (see `math`): no `sin`, `cos`, `tan`,
//! `sqrt`, `exp`, `ln` or `log`, whose `rust_decimal` versions can panic.
//! A runtime error or a limit hit becomes one `policy-failed` error finding on that
//! record (and the findings the call made before are dropped); it never stops the run and
//! never changes another record's verdict: no state is carried from one call to the next.
//!
//! Only the functions of a policy are used: statements at the top level of the file are
//! never run (put constants in a function, e.g. `fn cap() { 1000 }`). Closures (`|x| ..`)
//! and `this` are not available: pass a named function instead, as in
//! `ctx.findings.some(Fn("is_error"))` with `fn is_error(f) { f.severity == "error" }`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, ImmutableString, AST};

use crate::contract::Contract;
use crate::finding::{Code, Finding};
use crate::model::{Marketplace, UsageRecord};

mod cost;
mod math;
mod sandbox;
mod script;
mod time;

use script::{CtxShared, CtxView, RecordData, RecordView, Wants};

/// Largest policy source accepted, in bytes. Larger sources are refused before compiling.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Operations one `check` call may run (each expression, statement, loop turn and call
/// counts). Hitting it gives that record `policy-failed`.
pub const MAX_OPERATIONS: u64 = 100_000;
/// Deepest nesting of expressions at the top level of a policy (a compile-time limit).
pub const MAX_EXPR_DEPTH: usize = 32;
/// Deepest nesting of expressions inside a function body (a compile-time limit).
pub const MAX_FUNCTION_EXPR_DEPTH: usize = 32;
/// Deepest nesting of function calls, `check` included: stops runaway recursion.
pub const MAX_CALL_LEVELS: usize = 16;
/// Longest string a policy may build, in bytes; also the most string bytes (map keys
/// included) one array or map may hold.
pub const MAX_STRING_SIZE: usize = 16 * 1024;
/// Most items in an array a policy builds, nested arrays' items included.
pub const MAX_ARRAY_SIZE: usize = 1_024;
/// Most entries in an object map a policy builds, nested maps' entries included.
pub const MAX_MAP_SIZE: usize = 256;
/// Deepest nesting of arrays and maps in one value.
pub const MAX_DATA_DEPTH: usize = 32;
/// Work the sandbox may spend checking data sizes in one call: each read of a variable that
/// holds an array or map walks its items and entries (nested ones included), and the steps
/// add up. Typical policies use a few hundred; reading a full-size array 2,000 times fails.
pub const MAX_DATA_CHECK_STEPS: u64 = 2_000_000;
/// Most variables alive at once in one call (function parameters included).
pub const MAX_VARIABLES: usize = 128;
/// Most functions one policy may define, closures included (a compile-time limit).
pub const MAX_FUNCTIONS: usize = 64;
/// Most findings one `check` call may report; one more gives the record `policy-failed`.
pub const MAX_FINDINGS_PER_CALL: usize = 16;
/// Longest finding code a policy may report. Codes are 1 or more of `a-z 0-9 - _ : .`.
pub const MAX_CODE_LEN: usize = 64;
/// Longest field name `warn_field` / `reject_field` accept, in bytes.
pub const MAX_FIELD_LEN: usize = 128;
/// Longest policy name (file stem), in bytes.
pub const MAX_NAME_LEN: usize = 64;

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
    /// The source does not parse, or breaks a compile-time limit.
    #[error("policy {name}: line {line}, column {column}: {message}")]
    Compile {
        /// Policy name.
        name: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The source is larger than [`MAX_POLICY_BYTES`].
    #[error("policy {name}: the source is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Policy name.
        name: String,
        /// The source's size in bytes.
        size: usize,
        /// [`MAX_POLICY_BYTES`].
        limit: usize,
    },
    /// The source defines no `fn check(record, ctx)` with two parameters.
    #[error("policy {name}: defines no fn check(record, ctx) with two parameters")]
    MissingCheck {
        /// Policy name.
        name: String,
    },
    /// The name is empty, too long, or not usable in `policy:<name>`.
    #[error("policy name {name:?} must be 1 to {MAX_NAME_LEN} characters of letters, digits, '-', '_' and '.'")]
    InvalidName {
        /// Policy name.
        name: String,
    },
    /// Two policies have the same name.
    #[error("policy {name} is given twice")]
    Duplicate {
        /// Policy name.
        name: String,
    },
    /// The policy's parameters cannot be given to a script.
    #[error("policy {name}: params: {message}")]
    Params {
        /// Policy name.
        name: String,
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

struct Compiled {
    name: String,
    rule: String,
    ast: AST,
    params: Arc<Dynamic>,
}

struct Inner {
    engine: Engine,
    policies: Vec<Compiled>,
    /// What the policies can read, so that only that is copied for them.
    wants: Wants,
    /// `aws`, `azure`, `gcp` as rhai strings, made once.
    marketplaces: [ImmutableString; 3],
}

/// Compiled policies, run in order. Cheap to clone; `Send + Sync`.
#[derive(Clone, Default)]
pub struct PolicySet {
    inner: Option<Arc<Inner>>,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl PolicySet {
    /// Compiles every policy once. `params` holds each policy's parameters by name; entries
    /// for names that are not in `sources` are ignored.
    pub fn compile(
        sources: &[PolicySource],
        params: &BTreeMap<String, serde_json::Value>,
    ) -> Result<PolicySet, PolicyError> {
        if sources.is_empty() {
            return Ok(PolicySet::default());
        }
        let engine = sandbox::engine();
        let mut seen = BTreeSet::new();
        let mut policies = Vec::with_capacity(sources.len());
        let mut wants = Wants::default();
        for src in sources {
            let name = src.name.clone();
            if !valid_name(&name) {
                return Err(PolicyError::InvalidName { name });
            }
            if !seen.insert(src.name.as_str()) {
                return Err(PolicyError::Duplicate { name });
            }
            if src.source.len() > MAX_POLICY_BYTES {
                return Err(PolicyError::TooLarge {
                    name,
                    size: src.source.len(),
                    limit: MAX_POLICY_BYTES,
                });
            }
            let mut ast = engine.compile(&src.source).map_err(|e| {
                let pos = e.position();
                PolicyError::Compile {
                    name: name.clone(),
                    line: pos.line().unwrap_or(0),
                    column: pos.position().unwrap_or(0),
                    message: e.err_type().to_string(),
                }
            })?;
            if !ast
                .iter_functions()
                .any(|f| f.name == "check" && f.params.len() == 2)
            {
                return Err(PolicyError::MissingCheck { name });
            }
            ast.clear_statements();
            let empty = serde_json::Value::Object(serde_json::Map::new());
            let params = match params.get(&name) {
                None | Some(serde_json::Value::Null) => &empty,
                Some(v @ serde_json::Value::Object(_)) => v,
                Some(_) => {
                    return Err(PolicyError::Params {
                        name,
                        message: "must be a table (a JSON object)".to_owned(),
                    })
                }
            };
            let params =
                script::json_to_dynamic(params).map_err(|message| PolicyError::Params {
                    name: name.clone(),
                    message,
                })?;
            wants.add(&src.source);
            policies.push(Compiled {
                rule: format!("policy:{name}"),
                name,
                ast,
                params: Arc::new(params),
            });
        }
        let marketplaces = Marketplace::ALL.map(|m| ImmutableString::from(m.as_str()));
        Ok(PolicySet {
            inner: Some(Arc::new(Inner {
                engine,
                policies,
                wants,
                marketplaces,
            })),
        })
    }

    /// True when there is no policy.
    pub fn is_empty(&self) -> bool {
        self.inner.as_ref().is_none_or(|i| i.policies.is_empty())
    }

    /// The policies' names, in run order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner
            .iter()
            .flat_map(|i| i.policies.iter().map(|p| p.name.as_str()))
    }

    /// Runs every policy on one record, appending their findings to `out`. A policy that
    /// fails on this record adds one `policy-failed` error instead of its findings.
    pub fn run(&self, record: &UsageRecord, ctx: &PolicyContext<'_>, out: &mut Vec<Finding>) {
        let Some(inner) = &self.inner else { return };
        if inner.policies.is_empty() {
            return;
        }
        let record = Arc::new(RecordData::new(record, inner.wants, &inner.marketplaces));
        let shared = Arc::new(CtxShared {
            now: ctx.now,
            contract: if inner.wants.contract {
                ctx.contract.cloned()
            } else {
                None
            },
            findings: if inner.wants.findings {
                ctx.findings.to_vec()
            } else {
                Vec::new()
            },
        });
        for policy in &inner.policies {
            run_one(&inner.engine, policy, &record, &shared, out);
        }
    }
}

fn run_one(
    engine: &Engine,
    policy: &Compiled,
    record: &Arc<RecordData>,
    shared: &Arc<CtxShared>,
    out: &mut Vec<Finding>,
) {
    let reset = script::with_collector(|c| {
        c.findings.clear();
        c.failure = None;
        c.check_steps = 0;
        c.ops = 0;
        c.last_progress = 0;
    });
    let result = reset
        .ok_or_else(|| "the findings collector is busy".to_owned())
        .and_then(|()| {
            let args = (
                Dynamic::from(RecordView(Arc::clone(record))),
                Dynamic::from(CtxView {
                    shared: Arc::clone(shared),
                    params: Arc::clone(&policy.params),
                }),
            );
            let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
            script::with_scope(|scope| {
                engine.call_fn_with_options::<Dynamic>(options, scope, &policy.ast, "check", args)
            })
            .map(drop)
            .map_err(|e| sandbox::describe(&e))
        });
    let failure = script::with_collector(|c| {
        // A builtin may drop a callback's error; the count still says the limit was hit.
        let failure = c.failure.take().or(result.err()).or_else(|| {
            (c.ops > MAX_OPERATIONS).then(|| {
                sandbox::describe(&EvalAltResult::ErrorTooManyOperations(rhai::Position::NONE))
            })
        });
        if failure.is_none() {
            out.extend(c.findings.drain(..).map(|mut f| {
                f.rule.clone_from(&policy.rule);
                f
            }));
        }
        c.findings.clear();
        failure
    })
    .unwrap_or_else(|| Some("the findings collector is busy".to_owned()));
    if let Some(why) = failure {
        out.push(
            Finding::new(
                Code::PolicyFailed,
                &policy.rule,
                None,
                format!("policy {} failed on this record: {why}", policy.name),
            )
            .hint(format!(
                "fix policy {} (file {}.rhai) or remove it; the other records were judged as usual",
                policy.name, policy.name
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn policy_set_is_send_sync() {
        assert_send_sync::<PolicySet>();
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("month_end_cutoff"));
        assert!(valid_name("a.b-c"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a:b"));
    }
}

//! What a script sees: `record`, `ctx` and the `warn` / `reject` functions.
//!
//! `record` and `ctx` are custom types with read-only getters over data shared by `Arc`, so a
//! call builds no rhai map: a value is made only when the script reads it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map, Scope, INT};
use rust_decimal::Decimal;

use super::time::{script_error, Time};
use super::{MAX_CODE_LEN, MAX_FIELD_LEN, MAX_FINDINGS_PER_CALL};
use crate::contract::{Contract, MetricType};
use crate::finding::{Finding, Severity};
use crate::model::{Marketplace, UsageRecord};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Which parts of the record and context some policy of a set can read.
///
/// A custom type's properties are reachable only by writing their name after a dot
/// (`record.customer`): getters cannot be called through `Fn(..)`, and these types have no
/// string indexer. So a part whose name appears nowhere in any source cannot be read, and
/// is not copied for the scripts. This keeps per-record allocations to what is used.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Wants {
    marketplace: bool,
    product: bool,
    customer: bool,
    dimension: bool,
    record_id: bool,
    plan: bool,
    attributes: bool,
    pub(crate) contract: bool,
    pub(crate) findings: bool,
}

impl Wants {
    /// Adds what `source` may read.
    pub(crate) fn add(&mut self, source: &str) {
        let has = |word: &str| source.contains(word);
        self.marketplace |= has("marketplace");
        self.product |= has("product");
        self.customer |= has("customer");
        self.dimension |= has("dimension");
        self.record_id |= has("record_id");
        self.plan |= has("plan");
        self.attributes |= has("attributes");
        self.contract |= has("contract");
        self.findings |= has("findings");
    }
}

/// The record as scripts see it: the parts some policy reads, in rhai's own string type so
/// that a getter only bumps a reference count.
pub(crate) struct RecordData {
    marketplace: ImmutableString,
    product: ImmutableString,
    customer: ImmutableString,
    dimension: ImmutableString,
    quantity: Decimal,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    record_id: Option<ImmutableString>,
    plan: Option<ImmutableString>,
    attributes: BTreeMap<String, String>,
}

impl RecordData {
    /// Copies what `wants` says some policy can read. `marketplaces` holds the three names
    /// (aws, azure, gcp), made once per policy set.
    pub(crate) fn new(
        r: &UsageRecord,
        wants: Wants,
        marketplaces: &[ImmutableString; 3],
    ) -> RecordData {
        let text = |on: bool, s: &str| {
            if on {
                ImmutableString::from(s)
            } else {
                ImmutableString::new()
            }
        };
        let opt = |on: bool, s: &Option<String>| {
            if on {
                s.as_deref().map(ImmutableString::from)
            } else {
                None
            }
        };
        let mp = match r.marketplace {
            Marketplace::Aws => 0,
            Marketplace::Azure => 1,
            Marketplace::Gcp => 2,
        };
        RecordData {
            marketplace: if wants.marketplace {
                marketplaces[mp].clone()
            } else {
                ImmutableString::new()
            },
            product: text(wants.product, &r.product),
            customer: text(wants.customer, &r.customer),
            dimension: text(wants.dimension, &r.dimension),
            quantity: r.quantity,
            start_time: r.start_time,
            end_time: r.end_time,
            record_id: opt(wants.record_id, &r.record_id),
            plan: opt(wants.plan, &r.plan),
            attributes: if wants.attributes {
                r.attributes.clone()
            } else {
                BTreeMap::new()
            },
        }
    }
}

/// `record`: one usage record, read-only.
#[derive(Clone)]
pub(crate) struct RecordView(pub(crate) Arc<RecordData>);

/// `record.attributes`: the record's extra input columns, read-only.
#[derive(Clone)]
pub(crate) struct AttributesView(Arc<RecordData>);

/// What every policy sees for one record besides the record itself.
pub(crate) struct CtxShared {
    pub(crate) now: DateTime<Utc>,
    /// Cloned only when some policy of the set mentions `contract`.
    pub(crate) contract: Option<Contract>,
    /// Cloned only when some policy of the set mentions `findings`.
    pub(crate) findings: Vec<Finding>,
}

/// `ctx`: the shared part plus the policy's own parameters.
#[derive(Clone)]
pub(crate) struct CtxView {
    pub(crate) shared: Arc<CtxShared>,
    /// The settings' `params.<name>`, or an empty map.
    pub(crate) params: Arc<Dynamic>,
}

/// `ctx.contract`.
#[derive(Clone)]
pub(crate) struct ContractView(Arc<CtxShared>);

fn text(s: &str) -> Dynamic {
    Dynamic::from(ImmutableString::from(s))
}

fn opt_text(s: Option<&str>) -> Dynamic {
    s.map_or(Dynamic::UNIT, text)
}

fn opt_time(t: Option<DateTime<Utc>>) -> Dynamic {
    t.map_or(Dynamic::UNIT, |t| Dynamic::from(Time::utc(t)))
}

fn opt_decimal(d: Option<Decimal>) -> Dynamic {
    d.map_or(Dynamic::UNIT, Dynamic::from_decimal)
}

impl ContractView {
    fn with<T>(&self, f: impl FnOnce(&Contract) -> T, absent: T) -> T {
        self.0.contract.as_ref().map_or(absent, f)
    }
}

fn finding_map(f: &Finding) -> Dynamic {
    let mut m = Map::new();
    m.insert("code".into(), text(&f.code));
    m.insert("severity".into(), text(f.severity.as_str()));
    m.insert("field".into(), opt_text(f.field.as_deref()));
    m.insert("message".into(), text(&f.message));
    m.insert("hint".into(), opt_text(f.hint.as_deref()));
    m.insert("rule".into(), text(&f.rule));
    Dynamic::from_map(m)
}

fn dimension_maps(c: &Contract) -> Array {
    c.dimensions
        .iter()
        .map(|d| {
            let mut m = Map::new();
            m.insert("name".into(), text(&d.name));
            m.insert("unit".into(), opt_decimal(d.unit));
            let kind = d.kind.map(|k| match k {
                MetricType::Int => "int",
                MetricType::Decimal => "decimal",
            });
            m.insert("type".into(), opt_text(kind));
            m.insert("price".into(), opt_decimal(d.price));
            Dynamic::from_map(m)
        })
        .collect()
}

/// Converts a policy's JSON parameters. Integers that fit an `i64` become INT, other numbers
/// Decimal; `null` becomes `()`.
pub(crate) fn json_to_dynamic(v: &serde_json::Value) -> Result<Dynamic, String> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => {
                let s = n.to_string();
                let d = s
                    .parse::<Decimal>()
                    .or_else(|_| Decimal::from_scientific(&s))
                    .map_err(|_| format!("the number {s} does not fit a decimal"))?;
                Dynamic::from_decimal(d)
            }
        },
        Value::String(s) => text(s),
        Value::Array(a) => Dynamic::from_array(
            a.iter()
                .map(json_to_dynamic)
                .collect::<Result<Array, String>>()?,
        ),
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, v) in o {
                m.insert(k.as_str().into(), json_to_dynamic(v)?);
            }
            Dynamic::from_map(m)
        }
    })
}

/// Findings reported by the running call, and why the call must fail even if the script
/// caught the error (`try { reject("BAD CODE", "") } catch {}` still fails the record).
#[derive(Default)]
pub(crate) struct Collector {
    pub(crate) findings: Vec<Finding>,
    pub(crate) failure: Option<String>,
    /// Steps the size checks of this call have taken (see `MAX_DATA_CHECK_STEPS`).
    pub(crate) check_steps: u64,
    /// Operations this call has run, callbacks and size charges included (see `cost`).
    pub(crate) ops: u64,
    /// rhai's own count at the last operation: it goes back when a callback starts.
    pub(crate) last_progress: u64,
}

thread_local! {
    static COLLECTOR: RefCell<Collector> = RefCell::new(Collector::default());
    /// The scope calls run in, kept to reuse its memory. rhai rewinds it after each call,
    /// and it is cleared before each one, so no variable outlives a call.
    static SCOPE: RefCell<Scope<'static>> = RefCell::new(Scope::new());
}

/// Runs `f` with an empty scope: this thread's reused one, or a new one if it is busy.
pub(crate) fn with_scope<T>(f: impl FnOnce(&mut Scope<'static>) -> T) -> T {
    SCOPE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scope) => {
            scope.clear();
            let out = f(&mut scope);
            scope.clear();
            out
        }
        Err(_) => f(&mut Scope::new()),
    })
}

/// Runs `f` on this thread's collector. A policy call runs on one thread from start to end,
/// so threads never share findings.
pub(crate) fn with_collector<T>(f: impl FnOnce(&mut Collector) -> T) -> Option<T> {
    COLLECTOR.with(|cell| cell.try_borrow_mut().ok().map(|mut c| f(&mut c)))
}

/// A policy's own finding code: 1 to 64 characters of `a-z 0-9 - _ : .`.
pub(crate) fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_LEN
        && code.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b':' | b'.')
        })
}

fn valid_field(field: &str) -> bool {
    !field.is_empty() && field.len() <= MAX_FIELD_LEN && !field.chars().any(char::is_control)
}

fn emit(
    severity: Severity,
    field: Option<&str>,
    code: &str,
    message: &str,
    hint: Option<&str>,
) -> Res<()> {
    let outcome = with_collector(|c| {
        if let Some(why) = &c.failure {
            return Err(why.clone());
        }
        let problem = if !valid_code(code) {
            Some(format!(
                "finding code {code:?} is not 1 to {MAX_CODE_LEN} characters of a-z, 0-9, '-', '_', ':' and '.'"
            ))
        } else if field.is_some_and(|f| !valid_field(f)) {
            Some(format!(
                "field name {:?} is empty, too long or has control characters",
                field.unwrap_or_default()
            ))
        } else if c.findings.len() >= MAX_FINDINGS_PER_CALL {
            Some(format!("reported more than {MAX_FINDINGS_PER_CALL} findings for one record (MAX_FINDINGS_PER_CALL)"))
        } else {
            None
        };
        if let Some(why) = problem {
            c.failure = Some(why.clone());
            return Err(why);
        }
        c.findings.push(Finding {
            code: code.to_owned(),
            severity,
            field: field.map(str::to_owned),
            message: message.to_owned(),
            hint: hint.map(str::to_owned),
            rule: String::new(),
            suggestion: None,
        });
        Ok(())
    });
    match outcome {
        Some(Ok(())) => Ok(()),
        Some(Err(why)) => Err(script_error(why)),
        None => Err(script_error(
            "findings can only be reported while a policy runs",
        )),
    }
}

/// Registers the record and ctx types and the reporting functions.
pub(crate) fn register(engine: &mut Engine) {
    use Severity::{Error, Warning};

    engine
        .register_fn("warn", |code: &str, msg: &str| {
            emit(Warning, None, code, msg, None)
        })
        .register_fn("warn", |code: &str, msg: &str, hint: &str| {
            emit(Warning, None, code, msg, Some(hint))
        })
        .register_fn("reject", |code: &str, msg: &str| {
            emit(Error, None, code, msg, None)
        })
        .register_fn("reject", |code: &str, msg: &str, hint: &str| {
            emit(Error, None, code, msg, Some(hint))
        })
        .register_fn("warn_field", |field: &str, code: &str, msg: &str| {
            emit(Warning, Some(field), code, msg, None)
        })
        .register_fn(
            "warn_field",
            |field: &str, code: &str, msg: &str, hint: &str| {
                emit(Warning, Some(field), code, msg, Some(hint))
            },
        )
        .register_fn("reject_field", |field: &str, code: &str, msg: &str| {
            emit(Error, Some(field), code, msg, None)
        })
        .register_fn(
            "reject_field",
            |field: &str, code: &str, msg: &str, hint: &str| {
                emit(Error, Some(field), code, msg, Some(hint))
            },
        );

    engine
        .register_type_with_name::<RecordView>("Record")
        .register_get("marketplace", |r: &mut RecordView| r.0.marketplace.clone())
        .register_get("product", |r: &mut RecordView| r.0.product.clone())
        .register_get("customer", |r: &mut RecordView| r.0.customer.clone())
        .register_get("dimension", |r: &mut RecordView| r.0.dimension.clone())
        .register_get("quantity", |r: &mut RecordView| r.0.quantity)
        .register_get("start_time", |r: &mut RecordView| Time::utc(r.0.start_time))
        .register_get("end_time", |r: &mut RecordView| opt_time(r.0.end_time))
        .register_get("record_id", |r: &mut RecordView| {
            r.0.record_id.clone().map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_get("plan", |r: &mut RecordView| {
            r.0.plan.clone().map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_get("attributes", |r: &mut RecordView| {
            AttributesView(Arc::clone(&r.0))
        });

    engine
        .register_type_with_name::<AttributesView>("Attributes")
        .register_indexer_get(|a: &mut AttributesView, key: &str| {
            opt_text(a.0.attributes.get(key).map(String::as_str))
        })
        .register_fn("get", |a: &mut AttributesView, key: &str| {
            opt_text(a.0.attributes.get(key).map(String::as_str))
        })
        .register_fn("contains", |a: &mut AttributesView, key: &str| {
            a.0.attributes.contains_key(key)
        })
        .register_fn("len", |a: &mut AttributesView| a.0.attributes.len() as INT)
        .register_fn("is_empty", |a: &mut AttributesView| {
            a.0.attributes.is_empty()
        })
        .register_fn("keys", |a: &mut AttributesView| -> Array {
            a.0.attributes.keys().map(|k| text(k)).collect()
        })
        .register_fn("to_map", |a: &mut AttributesView| -> Map {
            a.0.attributes
                .iter()
                .map(|(k, v)| (k.as_str().into(), text(v)))
                .collect()
        });

    engine
        .register_type_with_name::<CtxView>("Context")
        .register_get("now", |c: &mut CtxView| Time::utc(c.shared.now))
        .register_get("params", |c: &mut CtxView| (*c.params).clone())
        .register_get("contract", |c: &mut CtxView| {
            if c.shared.contract.is_some() {
                Dynamic::from(ContractView(Arc::clone(&c.shared)))
            } else {
                Dynamic::UNIT
            }
        })
        .register_get("findings", |c: &mut CtxView| -> Array {
            c.shared.findings.iter().map(finding_map).collect()
        });

    engine
        .register_type_with_name::<ContractView>("Contract")
        .register_get("marketplace", |c: &mut ContractView| {
            c.with(|c| text(c.marketplace.as_str()), Dynamic::UNIT)
        })
        .register_get("product", |c: &mut ContractView| {
            c.with(|c| text(&c.product), Dynamic::UNIT)
        })
        .register_get("customer", |c: &mut ContractView| {
            c.with(|c| text(&c.customer), Dynamic::UNIT)
        })
        .register_get("status", |c: &mut ContractView| {
            c.with(|c| text(c.status.as_str()), Dynamic::UNIT)
        })
        .register_get("starts_at", |c: &mut ContractView| {
            c.with(|c| opt_time(Some(c.starts_at)), Dynamic::UNIT)
        })
        .register_get("ends_at", |c: &mut ContractView| {
            c.with(|c| opt_time(c.ends_at), Dynamic::UNIT)
        })
        .register_get("cancelled_at", |c: &mut ContractView| {
            c.with(|c| opt_time(c.cancelled_at), Dynamic::UNIT)
        })
        .register_get("stop_time", |c: &mut ContractView| {
            c.with(|c| opt_time(c.stop_time()), Dynamic::UNIT)
        })
        .register_get("plan", |c: &mut ContractView| {
            c.with(|c| opt_text(c.plan.as_deref()), Dynamic::UNIT)
        })
        .register_get("dimensions", |c: &mut ContractView| {
            c.with(dimension_maps, Array::new())
        })
        .register_get("properties", |c: &mut ContractView| -> Map {
            c.with(
                |c| {
                    c.properties
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), text(v)))
                        .collect()
                },
                Map::new(),
            )
        })
        .register_get("dimension_names", |c: &mut ContractView| -> Array {
            c.with(
                |c| c.dimensions.iter().map(|d| text(&d.name)).collect(),
                Array::new(),
            )
        })
        .register_fn("has_dimension", |c: &mut ContractView, name: &str| {
            c.with(|c| c.dimension(name).is_some(), false)
        });
}

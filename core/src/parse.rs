//! From [`RawRecord`] to [`UsageRecord`]: every field checked for form, each failure a
//! finding that names the field.
// A failed parse returns the finding itself; it is built once per bad field, never on the
// happy path, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::finding::{Code, Finding};
use crate::model::{Allocation, Field, Marketplace, RawRecord, UsageRecord};
use crate::time::{parse_rfc3339, TimeError};

/// Rule id for form checks.
pub const RULE_FORM: &str = "all.form";
/// Longest text accepted in any field, in bytes. Longer values are rejected, not truncated.
pub const MAX_FIELD_BYTES: usize = 4096;
/// Most columns a tabular input (CSV) may have: the record's fields plus attributes. Readers
/// refuse a wider header as an input error instead of building thousands of attributes.
pub const MAX_COLUMNS: usize = 1024;

/// Parses a raw record. On failure returns every form finding (never an empty list).
pub fn parse_record(raw: RawRecord) -> Result<UsageRecord, Vec<Finding>> {
    let mut errs = Vec::new();
    for key in &raw.duplicate_keys {
        errs.push(
            Finding::new(
                Code::InvalidRecord,
                RULE_FORM,
                Some(key),
                format!("field {key} is given more than once"),
            )
            .hint(format!("keep one {key} per record")),
        );
    }
    let RawRecord {
        marketplace,
        product,
        customer,
        dimension,
        quantity,
        start_time,
        end_time,
        record_id,
        plan,
        allocations,
        attributes,
        duplicate_keys: _,
    } = raw;

    let marketplace = match ident(marketplace, "marketplace", &mut errs) {
        Some(m) => match Marketplace::parse(&m) {
            Some(m) => Some(m),
            None => {
                let lower = m.trim().to_ascii_lowercase();
                let hint = match Marketplace::parse(&lower) {
                    Some(ok) => format!("write {ok} (lowercase)"),
                    None => "use aws, azure or gcp".to_owned(),
                };
                errs.push(
                    Finding::new(
                        Code::InvalidRecord,
                        RULE_FORM,
                        Some("marketplace"),
                        format!("unknown marketplace {}", shown(&m)),
                    )
                    .hint(hint),
                );
                None
            }
        },
        None => None,
    };
    let product = ident(product, "product", &mut errs);
    let customer = ident(customer, "customer", &mut errs);
    let dimension = ident(dimension, "dimension", &mut errs);
    let quantity = match quantity {
        None => {
            errs.push(missing("quantity"));
            None
        }
        Some(f) => match parse_quantity(&f) {
            Ok(q) => Some(q),
            Err(f) => {
                errs.push(f);
                None
            }
        },
    };
    let start_time = time_field(start_time, "start_time", true, &mut errs);
    let end_time = if marketplace == Some(Marketplace::Gcp) {
        time_field(end_time, "end_time", true, &mut errs)
    } else {
        None
    };
    let plan = match plan {
        Some(p) => ident(Some(p), "plan", &mut errs),
        None => None,
    };
    let record_id = record_id.and_then(|f| match f {
        Field::Text(s) | Field::Number(s) => Some(s),
        Field::Wrong(_) => None,
    });
    let allocations = match allocations {
        None => None,
        Some(v) => match parse_allocations(v) {
            Ok(a) => Some(a),
            Err(f) => {
                errs.push(f);
                None
            }
        },
    };
    // Inserted one by one, in the source map's (sorted) order: cheaper than `collect`, which
    // buffers and sorts, for the few attributes a record has.
    let mut attrs = BTreeMap::new();
    for (k, v) in attributes {
        if let Field::Text(s) | Field::Number(s) = v {
            attrs.insert(k, s);
        }
    }
    let attributes = attrs;

    match (
        marketplace,
        product,
        customer,
        dimension,
        quantity,
        start_time,
    ) {
        (
            Some(marketplace),
            Some(product),
            Some(customer),
            Some(dimension),
            Some(quantity),
            Some(start_time),
        ) if errs.is_empty() => Ok(UsageRecord {
            marketplace,
            product,
            customer,
            dimension,
            quantity,
            start_time,
            end_time,
            record_id,
            plan,
            allocations,
            attributes,
        }),
        _ => Err(errs),
    }
}

fn missing(field: &str) -> Finding {
    Finding::new(
        Code::InvalidRecord,
        RULE_FORM,
        Some(field),
        format!("{field} is missing"),
    )
    .hint(format!("every record needs a {field}"))
}

/// Shows a user value in a message, shortened when long.
pub fn shown(s: &str) -> String {
    if s.len() <= 80 {
        format!("{s:?}")
    } else {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}… ({} bytes)", &s[..end], s.len())
    }
}

fn text_of(f: Field, field: &str, errs: &mut Vec<Finding>) -> Option<String> {
    match f {
        Field::Text(s) | Field::Number(s) => {
            if s.len() > MAX_FIELD_BYTES {
                errs.push(
                    Finding::new(
                        Code::InvalidRecord,
                        RULE_FORM,
                        Some(field),
                        format!(
                            "{field} is {} bytes long; the limit is {MAX_FIELD_BYTES}",
                            s.len()
                        ),
                    )
                    .hint("check the column mapping: this does not look like a real value".into()),
                );
                None
            } else {
                Some(s)
            }
        }
        Field::Wrong(kind) => {
            errs.push(
                Finding::new(
                    Code::InvalidRecord,
                    RULE_FORM,
                    Some(field),
                    format!("{field} is a JSON {kind}"),
                )
                .hint(format!("give {field} as a string")),
            );
            None
        }
    }
}

/// An identifier field: required, no surrounding spaces, no control characters.
fn ident(f: Option<Field>, field: &str, errs: &mut Vec<Finding>) -> Option<String> {
    let Some(f) = f else {
        errs.push(missing(field));
        return None;
    };
    let s = text_of(f, field, errs)?;
    // The common case, printable ASCII only, has neither surrounding spaces nor control
    // characters: one pass over the bytes.
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) {
        return Some(s);
    }
    if s.trim() != s {
        errs.push(
            Finding::new(
                Code::InvalidRecord,
                RULE_FORM,
                Some(field),
                format!("{field} {} has leading or trailing spaces", shown(&s)),
            )
            .hint(format!("write {}", shown(s.trim()))),
        );
        return None;
    }
    if s.chars().any(char::is_control) {
        errs.push(
            Finding::new(
                Code::InvalidRecord,
                RULE_FORM,
                Some(field),
                format!("{field} {} holds control characters", shown(&s)),
            )
            .hint("remove line breaks and tabs from the value".into()),
        );
        return None;
    }
    Some(s)
}

/// Parses a quantity: a plain decimal (`12`, `0.25`, `-3`). No exponent, sign `+`, spaces,
/// thousands separators, hex or decimal comma; each gets a hint with the plain form.
pub fn parse_quantity(f: &Field) -> Result<Decimal, Finding> {
    let bad = |msg: String, hint: Option<String>| {
        let f = Finding::new(Code::InvalidQuantity, RULE_FORM, Some("quantity"), msg);
        match hint {
            Some(h) => f.hint(h),
            None => f.hint("write a plain decimal number such as 12 or 0.25".into()),
        }
    };
    let s = match f {
        Field::Text(s) | Field::Number(s) => s.as_str(),
        Field::Wrong(kind) => {
            return Err(bad(
                format!("quantity is a JSON {kind}, not a number"),
                None,
            ))
        }
    };
    if s.len() > 64 {
        return Err(bad(
            format!("quantity {} is too long to be a quantity", shown(s)),
            None,
        ));
    }
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !plain {
        let t = s.trim();
        let hint = if t != s && parse_quantity(&Field::Text(t.to_owned())).is_ok() {
            Some(format!("remove the spaces: {t}"))
        } else if let Some(rest) = t
            .strip_prefix('+')
            .filter(|r| parse_quantity(&Field::Text((*r).to_owned())).is_ok())
        {
            Some(format!("drop the plus sign: {rest}"))
        } else if t.contains(',')
            && parse_quantity(&Field::Text(t.replacen(',', ".", 1))).is_ok()
            && t.matches(',').count() == 1
        {
            Some(format!(
                "use a dot as the decimal separator: {}",
                t.replacen(',', ".", 1)
            ))
        } else if let Ok(d) = Decimal::from_scientific(t) {
            Some(format!("write it without an exponent: {}", d.normalize()))
        } else if matches!(
            t.to_ascii_lowercase().as_str(),
            "nan" | "inf" | "-inf" | "+inf" | "infinity" | "-infinity"
        ) {
            Some("a quantity must be a finite number".to_owned())
        } else {
            None
        };
        return Err(bad(
            format!("quantity {} is not a plain decimal number", shown(s)),
            hint,
        ));
    }
    // Trailing zeros after the point are not significant: `5.000…0` (40 zeros) is 5, and
    // does not count against the 28-digit limit.
    let exact = Decimal::from_str_exact(s).or_else(|e| match frac {
        Some(f) if f.ends_with('0') => {
            let digits = f.trim_end_matches('0');
            let int_part = &s[..s.len() - body.len() + int.len()];
            if digits.is_empty() {
                Decimal::from_str_exact(int_part)
            } else {
                Decimal::from_str_exact(&format!("{int_part}.{digits}"))
            }
        }
        _ => Err(e),
    });
    exact.map_err(|_| {
        bad(
            format!(
                "quantity {} is out of range (at most 28 significant digits)",
                shown(s)
            ),
            Some("check the value: no marketplace bills a quantity this large or precise".into()),
        )
    })
}

fn time_field(
    f: Option<Field>,
    field: &str,
    required: bool,
    errs: &mut Vec<Finding>,
) -> Option<DateTime<Utc>> {
    let f = match f {
        Some(f) => f,
        None => {
            if required {
                errs.push(missing(field));
            }
            return None;
        }
    };
    let s = text_of(f, field, errs)?;
    match parse_rfc3339(&s) {
        Ok(t) => Some(t),
        Err(e) => {
            let hint = match e {
                TimeError::NoOffset => format!("add the offset, e.g. {}Z for UTC", s.trim()),
                TimeError::DateOnly => format!("give a time too, e.g. {}T00:00:00Z", s.trim()),
                TimeError::LeapSecond => "use :59 instead of :60".to_owned(),
                TimeError::Malformed => tackle_hint(&s).unwrap_or_else(|| {
                    "use RFC 3339 with an offset, e.g. 2026-03-01T10:00:00Z".to_owned()
                }),
            };
            errs.push(
                Finding::new(
                    Code::InvalidRecord,
                    RULE_FORM,
                    Some(field),
                    format!("{field} {} {e}", shown(&s)),
                )
                .hint(hint),
            );
            None
        }
    }
}

/// `mm/dd/yyyy hh:mm:ss` (Tackle's CSV form) → the RFC 3339 spelling, assuming UTC.
fn tackle_hint(s: &str) -> Option<String> {
    let t = chrono::NaiveDateTime::parse_from_str(s.trim(), "%m/%d/%Y %H:%M:%S").ok()?;
    Some(format!(
        "if this is UTC, write {}",
        t.format("%Y-%m-%dT%H:%M:%SZ")
    ))
}

/// Allocations arrive as a JSON array, or as a string holding one (a CSV cell).
fn parse_allocations(v: serde_json::Value) -> Result<Vec<Allocation>, Finding> {
    let bad = |msg: String| {
        Finding::new(
            Code::InvalidUsageAllocations,
            "aws.allocations",
            Some("allocations"),
            msg,
        )
        .hint(
            r#"give a JSON array like [{"quantity":3,"tags":[{"key":"team","value":"a"}]}]"#
                .to_owned(),
        )
    };
    let v = match v {
        serde_json::Value::String(s) => serde_json::from_str(&s)
            .map_err(|e| bad(format!("allocations are not valid JSON: {e}")))?,
        v => v,
    };
    serde_json::from_value::<Vec<RawAllocation>>(v)
        .map_err(|e| bad(format!("allocations have the wrong shape: {e}")))?
        .into_iter()
        .map(|a| {
            let q = parse_quantity(&a.quantity)
                .map_err(|f| bad(format!("an allocation quantity: {}", f.message)))?;
            Ok(Allocation {
                quantity: q,
                tags: a.tags,
            })
        })
        .collect()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllocation {
    quantity: Field,
    #[serde(default)]
    tags: Vec<crate::model::Tag>,
}

impl FromStr for Marketplace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Marketplace::parse(s)
            .ok_or_else(|| format!("unknown marketplace {s:?}: use aws, azure or gcp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<Decimal, Finding> {
        parse_quantity(&Field::Text(s.into()))
    }

    #[test]
    fn quantities() {
        assert_eq!(q("12").unwrap(), Decimal::from(12));
        assert_eq!(q("0.25").unwrap().to_string(), "0.25");
        assert_eq!(q("-0").unwrap(), Decimal::ZERO);
        for bad in [
            "1e3", "NaN", "inf", " 12 ", "+5", "0x10", "1,5", "", ".5", "5.", "1_000",
        ] {
            let f = q(bad).unwrap_err();
            assert_eq!(f.code, "invalid-quantity", "{bad}");
            assert_eq!(f.field.as_deref(), Some("quantity"));
        }
        assert!(q(&"9".repeat(40)).is_err());
        // Trailing zeros are not significant digits.
        assert_eq!(
            q("5.00000000000000000000000000000000000000").unwrap(),
            Decimal::from(5)
        );
        assert_eq!(
            q("10.0000000000000000000000000000").unwrap(),
            Decimal::from(10)
        );
        assert_eq!(
            q("-2.50000000000000000000000000000").unwrap().to_string(),
            "-2.5"
        );
        assert!(q("1.00000000000000000000000000001").is_err());
        assert_eq!(
            q("1,5").unwrap_err().hint.unwrap(),
            "use a dot as the decimal separator: 1.5"
        );
    }

    #[test]
    fn json_numbers_keep_their_value() {
        let r: RawRecord = serde_json::from_str(r#"{"quantity": 12.0}"#).unwrap();
        assert_eq!(
            parse_quantity(r.quantity.as_ref().unwrap()).unwrap(),
            Decimal::from(12)
        );
        let r: RawRecord = serde_json::from_str(r#"{"quantity": 0.1}"#).unwrap();
        assert_eq!(
            parse_quantity(r.quantity.as_ref().unwrap())
                .unwrap()
                .to_string(),
            "0.1"
        );
    }
}

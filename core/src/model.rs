//! The data model: marketplaces, raw input records, and parsed usage records.
//!
//! Input arrives as a [`RawRecord`]: every field as the user wrote it (text or a JSON number),
//! so that a record with a bad field still gets a verdict instead of failing to load. The core
//! turns it into a [`UsageRecord`] (see [`crate::parse`]) before any marketplace rule runs.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// A cloud marketplace that metergate knows the rules of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Marketplace {
    /// AWS Marketplace, SaaS `BatchMeterUsage`.
    Aws,
    /// Microsoft commercial marketplace, `usageEvent` / `batchUsageEvent`.
    Azure,
    /// Google Cloud Marketplace, Service Control `services.report`.
    Gcp,
}

impl Marketplace {
    /// Every marketplace, in a fixed order.
    pub const ALL: [Marketplace; 3] = [Marketplace::Aws, Marketplace::Azure, Marketplace::Gcp];

    /// The lowercase wire name: `aws`, `azure` or `gcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Marketplace::Aws => "aws",
            Marketplace::Azure => "azure",
            Marketplace::Gcp => "gcp",
        }
    }

    /// Parses a wire name. Exact and lowercase: `AWS` is not accepted, so that one spelling
    /// is used everywhere.
    pub fn parse(s: &str) -> Option<Marketplace> {
        match s {
            "aws" => Some(Marketplace::Aws),
            "azure" => Some(Marketplace::Azure),
            "gcp" => Some(Marketplace::Gcp),
            _ => None,
        }
    }
}

impl fmt::Display for Marketplace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One input value as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Field {
    /// A string (a CSV cell, a JSON string).
    Text(String),
    /// A JSON number, kept as its shortest decimal text (`12`, `0.5`, `1e+40`).
    Number(String),
    /// A JSON value of another kind (`true`, an array, an object); holds the kind's name.
    Wrong(&'static str),
}

impl Field {
    /// The text of a string or number; `None` for other kinds.
    pub fn text(&self) -> Option<&str> {
        match self {
            Field::Text(s) | Field::Number(s) => Some(s),
            Field::Wrong(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(Field::Text(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Field, E> {
        Ok(Field::Text(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field, E> {
        Ok(Field::Number(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field, E> {
        Ok(Field::Number(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field, E> {
        Ok(Field::Number(format_f64(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field, E> {
        Ok(Field::Wrong("boolean"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Wrong("array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
        // serde_json (feature `arbitrary_precision`) hands a number over as a one-entry map
        // holding its exact text: keep the digits, never through f64.
        match map.next_key::<String>()? {
            Some(k) if k == JSON_NUMBER_TOKEN => {
                let text: String = map.next_value()?;
                // As without arbitrary precision: a number beyond a double's range (`1e400`)
                // makes the row unreadable rather than a quantity.
                if !text.parse::<f64>().is_ok_and(f64::is_finite) {
                    return Err(de::Error::custom("number out of range"));
                }
                return Ok(Field::Number(json_number_text(text)));
            }
            Some(_) => {
                map.next_value::<IgnoredAny>()?;
            }
            None => return Ok(Field::Wrong("object")),
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Wrong("object"))
    }
}

/// The key under which serde_json's `arbitrary_precision` passes a number's text.
const JSON_NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// A JSON number's text as a plain decimal: `1e-7` becomes `0.0000001` exactly; every other
/// form is kept as written (`12.0`, `9007199254740993.0`). An exponent form that no decimal
/// holds stays as written, and the quantity check names it.
fn json_number_text(text: String) -> String {
    if text.contains(['e', 'E']) {
        if let Ok(d) = rust_decimal::Decimal::from_scientific(&text) {
            return d.to_string();
        }
    }
    text
}

/// Shortest round-trip text of a float, never in exponent form (`1e40` prints all its digits).
/// Non-finite values (which JSON cannot carry, but JS objects can) print as `NaN` / `inf`.
pub fn format_f64(v: f64) -> String {
    // Rust prints floats without an exponent and whole numbers without `.0`.
    format!("{v}")
}

/// A usage record exactly as read from input: every field optional and untyped.
///
/// Absent fields, JSON `null`s and empty strings are all "missing". Keys that are not record
/// fields become [`RawRecord::attributes`], as do the entries of an `attributes` object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RawRecord {
    /// `aws`, `azure` or `gcp`.
    pub marketplace: Option<Field>,
    /// Product code (AWS), offer/product id (Azure), service name (Google).
    pub product: Option<Field>,
    /// The customer key that finds the contract.
    pub customer: Option<Field>,
    /// Dimension (AWS, Azure) or metric (Google) name.
    pub dimension: Option<Field>,
    /// A decimal number or decimal string.
    pub quantity: Option<Field>,
    /// RFC 3339 with an explicit offset.
    pub start_time: Option<Field>,
    /// Google only: the end of the usage interval.
    pub end_time: Option<Field>,
    /// The seller's own id for the record, echoed in verdicts.
    pub record_id: Option<Field>,
    /// Azure plan id.
    pub plan: Option<Field>,
    /// AWS usage allocations, as JSON (an array, or a string holding one).
    pub allocations: Option<serde_json::Value>,
    /// Every other input field, for policies.
    pub attributes: BTreeMap<String, Field>,
    /// Fields given twice in one JSON object (the last one is kept and the record is rejected).
    #[serde(skip)]
    pub duplicate_keys: Vec<String>,
}

/// The names of the record fields that are not attributes, in canonical order.
pub const RECORD_FIELDS: [&str; 10] = [
    "marketplace",
    "product",
    "customer",
    "dimension",
    "quantity",
    "start_time",
    "end_time",
    "record_id",
    "plan",
    "allocations",
];

impl RawRecord {
    /// Sets a known field by name, or an attribute. Empty text counts as missing and changes
    /// nothing (so an empty cell of a repeated column never wipes the value already read).
    /// Returns `false` when the field was already set.
    pub fn set(&mut self, name: &str, value: Field) -> bool {
        let value = match value {
            Field::Text(s) if s.is_empty() => return true,
            v => Some(v),
        };
        let slot = match name {
            "marketplace" => &mut self.marketplace,
            "product" => &mut self.product,
            "customer" => &mut self.customer,
            "dimension" => &mut self.dimension,
            "quantity" => &mut self.quantity,
            "start_time" => &mut self.start_time,
            "end_time" => &mut self.end_time,
            "record_id" => &mut self.record_id,
            "plan" => &mut self.plan,
            "allocations" => {
                let fresh = self.allocations.is_none();
                self.allocations = match value {
                    Some(Field::Text(s)) | Some(Field::Number(s)) => {
                        Some(serde_json::Value::String(s))
                    }
                    Some(Field::Wrong(k)) => Some(serde_json::Value::String(format!("<{k}>"))),
                    None => None,
                };
                return fresh;
            }
            _ => {
                return match value {
                    Some(v) => self.attributes.insert(name.to_owned(), v).is_none(),
                    None => true,
                }
            }
        };
        let fresh = slot.is_none();
        *slot = value;
        fresh
    }

    /// The record id as text, when one was given.
    pub fn record_id_text(&self) -> Option<&str> {
        self.record_id.as_ref().and_then(Field::text)
    }
}

impl<'de> Deserialize<'de> for RawRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RawRecordVisitor)
    }
}

struct RawRecordVisitor;

impl<'de> Visitor<'de> for RawRecordVisitor {
    type Value = RawRecord;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a usage record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRecord, A::Error> {
        let mut rec = RawRecord::default();
        while let Some(key) = map.next_key::<String>()? {
            let fresh = match key.as_str() {
                "allocations" => {
                    let v: serde_json::Value = map.next_value()?;
                    let fresh = rec.allocations.is_none();
                    rec.allocations = if v.is_null() { None } else { Some(v) };
                    fresh
                }
                "attributes" => {
                    let attrs: Option<BTreeMap<String, Option<Field>>> = map.next_value()?;
                    let mut fresh = true;
                    for (k, v) in attrs.into_iter().flatten() {
                        if let Some(v) = v {
                            fresh &= rec.attributes.insert(k, v).is_none();
                        }
                    }
                    fresh
                }
                _ => match map.next_value::<Option<Field>>()? {
                    Some(v) => rec.set(&key, v),
                    None => true,
                },
            };
            if !fresh {
                rec.duplicate_keys.push(key);
            }
        }
        Ok(rec)
    }
}

/// One AWS usage allocation: a share of the record's quantity for a set of tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The allocated quantity (AWS `AllocatedUsageQuantity`).
    pub quantity: Decimal,
    /// The tags that define the bucket; empty for the untagged bucket.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// An AWS allocation tag.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    /// Tag key, 1..=100 characters.
    pub key: String,
    /// Tag value, 1..=256 characters.
    pub value: String,
}

/// A parsed, typed usage record. Every field has the right form; the marketplace rules have
/// not run yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Which marketplace the record is for.
    pub marketplace: Marketplace,
    /// Product code / offer / service name.
    pub product: String,
    /// The customer key that finds the contract.
    pub customer: String,
    /// Dimension or metric name.
    pub dimension: String,
    /// The quantity, exact.
    pub quantity: Decimal,
    /// Usage time (AWS `Timestamp`, Azure `effectiveStartTime` before truncation, Google
    /// `startTime`), in UTC.
    pub start_time: DateTime<Utc>,
    /// Google only: the end of the usage interval, in UTC.
    pub end_time: Option<DateTime<Utc>>,
    /// The seller's id for the record.
    pub record_id: Option<String>,
    /// Azure plan id, if the record names one.
    pub plan: Option<String>,
    /// AWS usage allocations.
    pub allocations: Option<Vec<Allocation>>,
    /// Extra input fields.
    pub attributes: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_changes_nothing() {
        let mut r = RawRecord::default();
        assert!(r.set("plan", Field::Text("gold".into())));
        assert!(r.set("plan", Field::Text(String::new())));
        assert_eq!(r.plan, Some(Field::Text("gold".into())));
        assert!(!r.set("plan", Field::Text("silver".into())));
        assert!(r.set("team", Field::Text(String::new())));
        assert!(r.attributes.is_empty());
    }
}

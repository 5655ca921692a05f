//! Exact decimal quantities in JSON request bodies.
//!
//! The ledger keeps each quantity as exact decimal text, and the Microsoft and Google bodies
//! must carry that very text as a JSON number. A `serde_json::Number` cannot promise it:
//! without serde_json's `arbitrary_precision` feature it holds an `f64`, so
//! `12345678901234567890.5` would go out as `1.2345678901234567e19`; with the feature on, the
//! text survives, but features unify across the workspace, so the wire would depend on what
//! another crate enables. A [`RawValue`] is written out verbatim in both cases, so the bodies
//! are built from typed structs holding the number as a `RawValue`, never through a
//! `serde_json::Value`.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::value::RawValue;

/// True when `text` is a plain JSON number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`. No exponent:
/// the decimal text a `rust_decimal::Decimal` prints.
fn plain_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let int_ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'));
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    int_ok && frac_ok
}

/// A JSON number whose text is exactly `text`, a decimal as the ledger stores it.
pub fn json_number(text: &str) -> Result<Box<RawValue>, String> {
    if !plain_number(text) || Decimal::from_str(text).is_err() {
        return Err(format!("quantity {text:?} is not a plain decimal number"));
    }
    RawValue::from_string(text.to_owned()).map_err(|e| format!("quantity {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[derive(serde::Serialize)]
    struct Holder<'a> {
        q: &'a RawValue,
    }

    #[test]
    fn the_text_goes_out_verbatim() {
        for t in [
            "12345678901234567890.5",
            "0.1",
            "9007199254740993",
            "-3.250",
            "0",
            "79228162514264337593543950335",
        ] {
            let n = json_number(t).unwrap();
            let body = serde_json::to_string(&Holder { q: &n }).unwrap();
            assert_eq!(body, format!("{{\"q\":{t}}}"));
        }
    }

    #[test]
    fn only_plain_decimals() {
        for t in [
            "", "-", "1e5", "01", "1.", ".5", "\"5\"", "true", "5 ", "NaN", "1.2.3",
        ] {
            assert!(json_number(t).is_err(), "{t}");
        }
    }
}

//! The number functions policies may call, in place of rhai's `BasicMathPackage`.
//!
//! rhai's package registers `sin`, `cos` and `tan` over the panicking `rust_decimal`
//! functions (`tan(PI() / 2)` ends the process: a panic cannot be caught on wasm32), and
//! `sqrt`, whose loop asserts and divides with the panicking operators. Transcendental
//! functions have no use in metering rules, so they are left out; what is left (parsing,
//! conversions, rounding) is written here over checked or total `rust_decimal` calls, under
//! the same names as rhai's.

use rhai::{Engine, EvalAltResult, Position, INT};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn arithmetic(message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorArithmetic(message, Position::NONE))
}

fn parse_int_radix(s: &str, radix: INT) -> Res<INT> {
    let Some(r) = u32::try_from(radix).ok().filter(|r| (2..=36).contains(r)) else {
        return Err(arithmetic(format!("Invalid radix: '{radix}'")));
    };
    INT::from_str_radix(s.trim(), r)
        .map_err(|e| arithmetic(format!("Error parsing integer number '{s}': {e}")))
}

fn parse_decimal(s: &str) -> Res<Decimal> {
    s.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(s))
        .map_err(|e| arithmetic(format!("Error parsing decimal number '{s}': {e}")))
}

fn decimal_to_int(x: Decimal) -> Res<INT> {
    x.to_i64()
        .ok_or_else(|| arithmetic(format!("Integer overflow: to_int({x})")))
}

/// Rounds to `digits` places. Negative digits are an error, as in rhai; rounding to more
/// places than the number has returns it unchanged.
fn round_with(x: Decimal, digits: INT, strategy: RoundingStrategy) -> Res<Decimal> {
    if digits < 0 {
        return Err(arithmetic(format!(
            "Invalid number of digits for rounding: {digits}"
        )));
    }
    match u32::try_from(digits) {
        Ok(d) if d < x.scale() => Ok(x.round_dp_with_strategy(d, strategy)),
        _ => Ok(x),
    }
}

/// Registers the number functions.
pub(crate) fn register(engine: &mut Engine) {
    engine
        .register_fn("parse_int", |s: &str| parse_int_radix(s, 10))
        .register_fn("parse_int", parse_int_radix)
        .register_fn("parse_decimal", parse_decimal)
        .register_fn("parse_float", parse_decimal)
        .register_fn("to_int", |x: INT| x)
        .register_fn("to_int", |c: char| INT::from(u32::from(c)))
        .register_fn("to_int", decimal_to_int)
        .register_fn("to_decimal", |x: INT| Decimal::from(x))
        .register_fn("to_decimal", |x: Decimal| x)
        .register_fn("PI", || Decimal::PI)
        .register_fn("E", || Decimal::E);

    // Whole-number parts: total for every decimal (floor and ceiling move towards a number
    // of smaller magnitude than the largest decimal, and never overflow).
    engine
        .register_fn("floor", |x: Decimal| x.floor())
        .register_get("floor", |x: &mut Decimal| x.floor())
        .register_fn("ceiling", |x: Decimal| x.ceil())
        .register_get("ceiling", |x: &mut Decimal| x.ceil())
        .register_fn("round", |x: Decimal| {
            x.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven)
        })
        .register_get("round", |x: &mut Decimal| {
            x.round_dp_with_strategy(0, RoundingStrategy::MidpointNearestEven)
        })
        .register_fn("int", |x: Decimal| x.trunc())
        .register_get("int", |x: &mut Decimal| x.trunc())
        .register_fn("fraction", |x: Decimal| x.fract())
        .register_get("fraction", |x: &mut Decimal| x.fract());

    engine
        .register_fn("round", |x: Decimal, d: INT| {
            round_with(x, d, RoundingStrategy::MidpointNearestEven)
        })
        .register_fn("round_up", |x: Decimal, d: INT| {
            round_with(x, d, RoundingStrategy::AwayFromZero)
        })
        .register_fn("round_down", |x: Decimal, d: INT| {
            round_with(x, d, RoundingStrategy::ToZero)
        })
        .register_fn("round_half_up", |x: Decimal, d: INT| {
            round_with(x, d, RoundingStrategy::MidpointAwayFromZero)
        })
        .register_fn("round_half_down", |x: Decimal, d: INT| {
            round_with(x, d, RoundingStrategy::MidpointTowardZero)
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_total_at_the_extremes() {
        for x in [Decimal::MAX, Decimal::MIN, Decimal::new(i64::MAX, 28)] {
            for d in [0, 1, 27, 28, 29, INT::MAX] {
                for s in [
                    RoundingStrategy::AwayFromZero,
                    RoundingStrategy::ToZero,
                    RoundingStrategy::MidpointAwayFromZero,
                    RoundingStrategy::MidpointTowardZero,
                    RoundingStrategy::MidpointNearestEven,
                ] {
                    assert!(round_with(x, d, s).is_ok());
                }
            }
            let _ = (x.floor(), x.ceil(), x.trunc(), x.fract());
        }
        assert!(round_with(Decimal::ONE, -1, RoundingStrategy::ToZero).is_err());
        assert!(parse_int_radix("10", 37).is_err());
        assert!(parse_int_radix("10", INT::MIN).is_err());
        assert!(decimal_to_int(Decimal::MAX).is_err());
    }
}

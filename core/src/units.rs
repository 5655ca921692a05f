//! Billing units: quantities must be whole multiples of a dimension's unit.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A quantity split into whole units and what is left over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    /// How many whole units fit (`floor(quantity / unit)`, never negative for a
    /// non-negative quantity).
    pub units: Decimal,
    /// `quantity - units * unit`: the part to carry into the next hour.
    pub remainder: Decimal,
}

impl Units {
    /// The largest valid quantity not above the input: `units * unit`. Saturates instead of
    /// overflowing (it cannot overflow for a [`Units`] that [`to_units`] returned).
    pub fn billable(&self, unit: Decimal) -> Decimal {
        self.units.checked_mul(unit).unwrap_or(
            if self.units.is_sign_negative() == unit.is_sign_negative() {
                Decimal::MAX
            } else {
                Decimal::MIN
            },
        )
    }
}

/// Splits `quantity` into whole `unit`s and a remainder, so that
/// `units * unit + remainder == quantity` and `0 <= remainder < unit` (for `unit > 0`).
///
/// Exact: the split is done in integer arithmetic on the two decimals brought to one scale
/// (a `Decimal` division rounds to 28 digits, which could put the floor one unit off and make
/// the remainder negative). Returns `None` when `unit` is not above zero or the exact result
/// (units, remainder, or `units * unit`) does not fit a `Decimal`.
pub fn to_units(quantity: Decimal, unit: Decimal) -> Option<Units> {
    if unit <= Decimal::ZERO {
        return None;
    }
    let scale = quantity.scale().max(unit.scale());
    let widen = |d: Decimal| -> Option<i128> {
        d.mantissa()
            .checked_mul(10i128.checked_pow(scale.checked_sub(d.scale())?)?)
    };
    let q = widen(quantity)?;
    let u = widen(unit)?;
    if u <= 0 {
        return None;
    }
    let rem = q.rem_euclid(u);
    let units = Decimal::try_from_i128_with_scale(q.div_euclid(u), 0).ok()?;
    let remainder = Decimal::try_from_i128_with_scale(rem, scale).ok()?;
    // `units * unit` (the billable part) must be exact too, not rounded to fit 96 bits.
    Decimal::try_from_i128_with_scale(q.checked_sub(rem)?, scale).ok()?;
    Some(Units { units, remainder })
}

/// True when `quantity` is a whole multiple of `unit`.
pub fn is_multiple(quantity: Decimal, unit: Decimal) -> bool {
    to_units(quantity, unit).is_some_and(|u| u.remainder.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn splits() {
        let u = to_units(d("17"), d("5")).unwrap();
        assert_eq!((u.units, u.remainder), (d("3"), d("2")));
        assert_eq!(u.billable(d("5")), d("15"));
        let u = to_units(d("1.3"), d("0.25")).unwrap();
        assert_eq!((u.units, u.remainder), (d("5"), d("0.05")));
        assert!(is_multiple(d("0"), d("5")));
        assert!(to_units(d("1"), d("0")).is_none());
        // Decimal division would round 2 / 0.666…67 up to 3 and leave a negative remainder.
        let unit = d("0.6666666666666666666666666667");
        let u = to_units(d("2"), unit).unwrap();
        assert_eq!(u.units, d("2"));
        assert_eq!(u.units * unit + u.remainder, d("2"));
        assert!(u.remainder >= Decimal::ZERO && u.remainder < unit);
        let u = to_units(d("-7"), d("5")).unwrap();
        assert_eq!((u.units, u.remainder), (d("-2"), d("3")));
    }
}

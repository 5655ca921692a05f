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
    /// The largest valid quantity not above the input: `units * unit`.
    pub fn billable(&self, unit: Decimal) -> Decimal {
        self.units * unit
    }
}

/// Splits `quantity` into whole `unit`s and a remainder, so that
/// `units * unit + remainder == quantity` and `0 <= remainder < unit` (for `unit > 0`).
/// Returns `None` when `unit` is not above zero or the arithmetic would overflow.
pub fn to_units(quantity: Decimal, unit: Decimal) -> Option<Units> {
    if unit <= Decimal::ZERO {
        return None;
    }
    let units = quantity.checked_div(unit)?.floor();
    let remainder = quantity.checked_sub(units.checked_mul(unit)?)?;
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
    }
}

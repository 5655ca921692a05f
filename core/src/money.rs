//! Money dimensions: a cost amount (from a billing platform) becomes a quantity.
//!
//! A dimension that declares `price` (e.g. `0.01` for the common "usage fee in cents"
//! dimension) is billed in money: an amount becomes quantity = amount / price, in whole
//! units of the price (and whole multiples of the dimension's `unit`, when it has one).
//! Whatever does not divide evenly is carried into the next hour, as the unit rule's
//! remainder is (see [`crate::aggregate`]). Nothing negative is ever sent: when the cost
//! went down (a credit), the quantity is 0 and the credit is carried as a negative amount
//! that later charges offset. Decimals throughout, never floats.
//!
//! The delta rule ([`bill_cost`]): a billing platform reports the *total* cost so far; the
//! amount owed now is that total minus what was already billed (the quantities sent times the
//! price), so importing the same total twice bills nothing the second time.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::units::to_units;

/// The currency of a `price` that names none: the marketplaces bill sellers in US dollars.
pub const DEFAULT_CURRENCY: &str = "USD";

/// True for an ISO 4217 code: three ASCII letters (`USD`, `eur`).
pub fn is_currency_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// True when two currency codes name one currency (letter case ignored).
pub fn same_currency(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// What a cost amount becomes on a money dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostSplit {
    /// The quantity to send now: whole units of the price (and of the dimension's unit).
    /// Never negative; 0 when there is nothing to send.
    pub quantity: Decimal,
    /// The money that quantity bills: `quantity * price`.
    pub billed: Decimal,
    /// The amount still to carry into the next hour: `owed - billed`. Between 0 and one step
    /// (price, or price × unit) when something was owed; the whole credit (negative) when the
    /// cost went down.
    pub carried: Decimal,
}

/// Splits an amount owed into the quantity to send and the amount to carry.
///
/// `price` is the dimension's price (above zero), `unit` its billing unit if any: the
/// quantity is then a whole multiple of `unit`. A negative or zero amount sends nothing and
/// carries all of it. `None` when `price` or `unit` is not above zero, or the exact result
/// does not fit a `Decimal`.
pub fn cost_to_quantity(owed: Decimal, price: Decimal, unit: Option<Decimal>) -> Option<CostSplit> {
    if price <= Decimal::ZERO || unit.is_some_and(|u| u <= Decimal::ZERO) {
        return None;
    }
    if owed <= Decimal::ZERO {
        return Some(CostSplit {
            quantity: Decimal::ZERO,
            billed: Decimal::ZERO,
            carried: owed.normalize(),
        });
    }
    let step = match unit {
        Some(u) => price.checked_mul(u)?,
        None => price,
    };
    let split = to_units(owed, step)?;
    let quantity = match unit {
        Some(u) => split.units.checked_mul(u)?,
        None => split.units,
    };
    let billed = split.units.checked_mul(step)?;
    Some(CostSplit {
        quantity: quantity.normalize(),
        billed: billed.normalize(),
        carried: split.remainder.normalize(),
    })
}

/// The money a quantity already sent has billed: `quantity * price`.
pub fn billed_amount(quantity: Decimal, price: Decimal) -> Option<Decimal> {
    quantity.checked_mul(price).map(|d| d.normalize())
}

/// The delta rule: the billing platform's `total` cost so far, less what was already billed
/// (`billed`), split into what to send now and what to carry ([`cost_to_quantity`]). Calling
/// it again with the same total after sending the quantity sends nothing.
pub fn bill_cost(
    total: Decimal,
    billed: Decimal,
    price: Decimal,
    unit: Option<Decimal>,
) -> Option<CostSplit> {
    cost_to_quantity(total.checked_sub(billed)?, price, unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn cents() {
        let s = cost_to_quantity(d("12.345"), d("0.01"), None).unwrap();
        assert_eq!(
            (s.quantity, s.billed, s.carried),
            (d("1234"), d("12.34"), d("0.005"))
        );
        // The carry comes back in the next hour's amount.
        let s2 = bill_cost(d("20.005"), d("12.34"), d("0.01"), None).unwrap();
        assert_eq!((s2.quantity, s2.carried), (d("766"), d("0.005")));
    }

    #[test]
    fn units_of_quantity() {
        // 100 cents a unit of quantity: $3.50 owed sends 300 and carries $0.50.
        let s = cost_to_quantity(d("3.50"), d("0.01"), Some(d("100"))).unwrap();
        assert_eq!(
            (s.quantity, s.billed, s.carried),
            (d("300"), d("3"), d("0.5"))
        );
    }

    #[test]
    fn credits_are_carried_never_sent() {
        let s = bill_cost(d("10"), d("12"), d("0.01"), None).unwrap();
        assert_eq!((s.quantity, s.billed, s.carried), (d("0"), d("0"), d("-2")));
        // A later charge is offset first.
        let s = bill_cost(d("13.5"), d("12"), d("0.01"), None).unwrap();
        assert_eq!(s.quantity, d("150"));
        assert!(cost_to_quantity(d("1"), d("0"), None).is_none());
        assert!(cost_to_quantity(d("1"), d("1"), Some(d("-1"))).is_none());
    }

    #[test]
    fn currencies() {
        assert!(is_currency_code("USD") && is_currency_code("eur"));
        assert!(!is_currency_code("US") && !is_currency_code("US1"));
        assert!(same_currency("usd", "USD"));
    }
}

//! Money and rates.
//!
//! Money is a whole number of pence in an `i64`; every operation that can overflow is
//! checked and returns [`MoneyError`] rather than wrapping or panicking. Rates and shares are
//! basis points (1 bp = 0.01%). Rounding is never implicit: a split of an amount always sums
//! back to the amount (largest remainder), and a percentage of an amount states how it rounds.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount of money in pence. May be negative (a deficit, a deduction, a variance).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Pence(i64);

/// Basis points: 10,000 bp = 100%.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct BasisPoints(u32);

/// Why a money operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount overflows the range of pence")]
    Overflow,
    #[error("cannot split an amount across no weights, or weights that sum to zero")]
    EmptySplit,
    #[error("'{0}' is not an amount in pounds (expected e.g. 1234.56, -12, 1,000.5)")]
    Malformed(String),
    #[error("'{0}' has more than two decimal places")]
    TooPrecise(String),
}

impl Pence {
    pub const ZERO: Pence = Pence(0);
    pub const MAX: Pence = Pence(i64::MAX);

    pub const fn new(pence: i64) -> Self {
        Pence(pence)
    }

    /// Whole pounds, for readable literals in tests and fixtures. Overflow is an error.
    pub fn from_pounds(pounds: i64) -> Result<Self, MoneyError> {
        pounds
            .checked_mul(100)
            .map(Pence)
            .ok_or(MoneyError::Overflow)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn checked_add(self, other: Pence) -> Result<Pence, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Pence)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: Pence) -> Result<Pence, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(Pence)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_neg(self) -> Result<Pence, MoneyError> {
        self.0.checked_neg().map(Pence).ok_or(MoneyError::Overflow)
    }

    /// `self × factor`, e.g. units × price.
    pub fn checked_mul(self, factor: i64) -> Result<Pence, MoneyError> {
        self.0
            .checked_mul(factor)
            .map(Pence)
            .ok_or(MoneyError::Overflow)
    }

    /// Sum of many amounts; an overflow anywhere is an error.
    pub fn checked_sum<I: IntoIterator<Item = Pence>>(items: I) -> Result<Pence, MoneyError> {
        items.into_iter().try_fold(Pence::ZERO, Pence::checked_add)
    }

    /// `self × rate`, rounded half away from zero to the nearest penny.
    pub fn checked_mul_bp(self, rate: BasisPoints) -> Result<Pence, MoneyError> {
        let product = i128::from(self.0) * i128::from(rate.0);
        let denominator = i128::from(BasisPoints::WHOLE.0);
        let half = denominator / 2;
        let rounded = if product >= 0 {
            (product + half) / denominator
        } else {
            (product - half) / denominator
        };
        i64::try_from(rounded)
            .map(Pence)
            .map_err(|_| MoneyError::Overflow)
    }

    /// Splits `self` in proportion to `weights` so that the parts sum exactly to `self`.
    ///
    /// Largest remainder (Hamilton) method: each part gets the floor of its exact share (for a
    /// negative amount, the split is of the magnitude and the parts are negated), and the pence
    /// left over go one each to the parts with the largest remainders, ties to the earlier part.
    /// Deterministic: the same inputs always give the same parts.
    pub fn split(self, weights: &[u64]) -> Result<Vec<Pence>, MoneyError> {
        let total_weight: u128 = weights.iter().map(|w| u128::from(*w)).sum();
        if total_weight == 0 {
            return Err(MoneyError::EmptySplit);
        }
        let magnitude = u128::from(self.0.unsigned_abs());
        let mut parts: Vec<u128> = Vec::with_capacity(weights.len());
        let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
        for (index, weight) in weights.iter().enumerate() {
            // magnitude < 2^64 and weight < 2^64, so the product fits in u128.
            let exact = magnitude * u128::from(*weight);
            parts.push(exact / total_weight);
            remainders.push((exact % total_weight, index));
        }
        let allocated: u128 = parts.iter().sum();
        let mut leftover = magnitude - allocated; // < weights.len(), by construction
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, index) in remainders {
            if leftover == 0 {
                break;
            }
            parts[index] += 1;
            leftover -= 1;
        }
        let negative = self.0 < 0;
        parts
            .into_iter()
            .map(|p| {
                // Each part is at most the magnitude, which came from an i64.
                let p = i128::try_from(p).map_err(|_| MoneyError::Overflow)?;
                let signed = if negative { -p } else { p };
                i64::try_from(signed)
                    .map(Pence)
                    .map_err(|_| MoneyError::Overflow)
            })
            .collect()
    }

    /// Parses pounds as people write them: `1234.56`, `-12`, `1,000.5`, `£250`.
    /// More than two decimal places is an error, never a rounding.
    pub fn parse_pounds(text: &str) -> Result<Pence, MoneyError> {
        let malformed = || MoneyError::Malformed(text.to_string());
        let trimmed = text.trim();
        let (negative, rest) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let rest = rest.strip_prefix('£').unwrap_or(rest);
        let (whole, fraction) = match rest.split_once('.') {
            Some((w, f)) => (w, f),
            None => (rest, ""),
        };
        if whole.is_empty() || !valid_grouping(whole) {
            return Err(malformed());
        }
        if !fraction.chars().all(|c| c.is_ascii_digit()) {
            return Err(malformed());
        }
        if fraction.len() > 2 {
            return Err(MoneyError::TooPrecise(text.to_string()));
        }
        if rest.contains('.') && fraction.is_empty() {
            return Err(malformed());
        }
        let digits: String = whole.chars().filter(|c| *c != ',').collect();
        let pounds: i64 = digits.parse().map_err(|_| MoneyError::Overflow)?;
        let mut pence_part: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| malformed())?
        };
        if fraction.len() == 1 {
            pence_part *= 10;
        }
        let magnitude = pounds
            .checked_mul(100)
            .and_then(|p| p.checked_add(pence_part))
            .ok_or(MoneyError::Overflow)?;
        Ok(Pence(if negative { -magnitude } else { magnitude }))
    }
}

/// Digits, optionally grouped in threes by commas (`1,234,567`).
fn valid_grouping(whole: &str) -> bool {
    if !whole.contains(',') {
        return whole.chars().all(|c| c.is_ascii_digit());
    }
    let groups: Vec<&str> = whole.split(',').collect();
    let first_ok = (1..=3).contains(&groups[0].len());
    first_ok
        && groups.iter().all(|g| g.chars().all(|c| c.is_ascii_digit()))
        && groups[1..].iter().all(|g| g.len() == 3)
}

/// Pounds with thousands separators and two decimals: `-£1,234.56`.
impl fmt::Display for Pence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let pounds = (magnitude / 100).to_string();
        let mut grouped = String::with_capacity(pounds.len() + pounds.len() / 3);
        for (i, c) in pounds.chars().enumerate() {
            if i > 0 && (pounds.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        write!(f, "{sign}£{grouped}.{:02}", magnitude % 100)
    }
}

impl BasisPoints {
    /// 100%.
    pub const WHOLE: BasisPoints = BasisPoints(10_000);
    pub const ZERO: BasisPoints = BasisPoints(0);

    pub const fn new(bp: u32) -> Self {
        BasisPoints(bp)
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    /// True when this is a share of a whole (0..=100%).
    pub const fn is_share(self) -> bool {
        self.0 <= BasisPoints::WHOLE.0
    }

    /// Sums shares without overflow; `None` if the sum exceeds `u32`.
    pub fn checked_sum<I: IntoIterator<Item = BasisPoints>>(items: I) -> Option<BasisPoints> {
        items.into_iter().try_fold(BasisPoints(0), |acc, bp| {
            acc.0.checked_add(bp.0).map(BasisPoints)
        })
    }
}

/// `12.50%`.
impl fmt::Display for BasisPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_pounds_exactly() {
        let cases = [
            ("1234.56", 123_456),
            ("-12", -1_200),
            ("1,000.5", 100_050),
            ("£250", 25_000),
            ("0.01", 1),
            ("-0.10", -10),
            ("72,000,000", 7_200_000_000),
        ];
        for (text, pence) in cases {
            assert_eq!(Pence::parse_pounds(text), Ok(Pence::new(pence)), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_pounds() {
        for text in [
            "", "abc", "1.", ".5", "1,00", "12,3456", "1.2.3", "--1", "1e5", "1 000",
        ] {
            assert!(
                matches!(Pence::parse_pounds(text), Err(MoneyError::Malformed(_))),
                "{text}"
            );
        }
        assert!(matches!(
            Pence::parse_pounds("1.234"),
            Err(MoneyError::TooPrecise(_))
        ));
        assert_eq!(
            Pence::parse_pounds("99999999999999999999"),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn displays_pounds_with_separators() {
        assert_eq!(Pence::new(-720_000_000).to_string(), "-£7,200,000.00");
        assert_eq!(Pence::new(5).to_string(), "£0.05");
        assert_eq!(Pence::new(100_000).to_string(), "£1,000.00");
        assert_eq!(
            Pence::new(i64::MIN).to_string(),
            "-£92,233,720,368,547,758.08"
        );
    }

    #[test]
    fn percentage_rounds_half_away_from_zero() {
        let cquin = Pence::new(31_200_000_000).checked_mul_bp(BasisPoints::new(250));
        assert_eq!(cquin, Ok(Pence::new(780_000_000)));
        assert_eq!(
            Pence::new(5).checked_mul_bp(BasisPoints::new(1_000)),
            Ok(Pence::new(1))
        );
        assert_eq!(
            Pence::new(-5).checked_mul_bp(BasisPoints::new(1_000)),
            Ok(Pence::new(-1))
        );
    }

    #[test]
    fn split_gives_leftover_pence_to_largest_remainders() {
        assert_eq!(
            Pence::new(100).split(&[1, 1, 1]),
            Ok(vec![Pence::new(34), Pence::new(33), Pence::new(33)])
        );
        assert_eq!(
            Pence::new(-100).split(&[1, 1, 1]),
            Ok(vec![Pence::new(-34), Pence::new(-33), Pence::new(-33)])
        );
        assert_eq!(
            Pence::new(54_000_000).split(&[2, 1]),
            Ok(vec![Pence::new(36_000_000), Pence::new(18_000_000)])
        );
        assert_eq!(Pence::new(1).split(&[0, 0]), Err(MoneyError::EmptySplit));
    }

    proptest! {
        #[test]
        fn split_always_sums_to_the_amount(amount in any::<i64>(), weights in prop::collection::vec(0u64..=u64::MAX, 1..12)) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let parts = Pence::new(amount).split(&weights).expect("non-zero weights");
            prop_assert_eq!(parts.len(), weights.len());
            let sum: i128 = parts.iter().map(|p| i128::from(p.get())).sum();
            prop_assert_eq!(sum, i128::from(amount));
            for (part, weight) in parts.iter().zip(&weights) {
                if *weight == 0 { prop_assert_eq!(part.get(), 0); }
            }
        }

        #[test]
        fn arithmetic_errors_instead_of_overflowing(a in any::<i64>(), b in any::<i64>()) {
            let (a, b) = (Pence::new(a), Pence::new(b));
            match a.get().checked_add(b.get()) {
                Some(sum) => prop_assert_eq!(a.checked_add(b), Ok(Pence::new(sum))),
                None => prop_assert_eq!(a.checked_add(b), Err(MoneyError::Overflow)),
            }
            match a.get().checked_sub(b.get()) {
                Some(d) => prop_assert_eq!(a.checked_sub(b), Ok(Pence::new(d))),
                None => prop_assert_eq!(a.checked_sub(b), Err(MoneyError::Overflow)),
            }
            match a.get().checked_mul(b.get()) {
                Some(p) => prop_assert_eq!(a.checked_mul(b.get()), Ok(Pence::new(p))),
                None => prop_assert_eq!(a.checked_mul(b.get()), Err(MoneyError::Overflow)),
            }
        }

        #[test]
        fn display_then_parse_round_trips(amount in (i64::MIN + 1)..i64::MAX) {
            let shown = Pence::new(amount).to_string();
            prop_assert_eq!(Pence::parse_pounds(&shown), Ok(Pence::new(amount)));
        }
    }
}

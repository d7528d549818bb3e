//! Financial years, months and quarters.
//!
//! The NHS financial year runs April to March: `2018/19` starts on 1 April 2018. Months are
//! numbered M1 (April) to M12 (March) and quarters Q1 (M1–M3) to Q4 (M10–M12). A [`Period`]
//! is one month of one year; periods order chronologically.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A financial year, named by the calendar year it starts in (`2018` is `2018/19`).
/// Deserializing checks the range too, so a stored value cannot smuggle in an invalid year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16")]
pub struct FinancialYear(u16);

/// A month of the financial year, 1 (April) to 12 (March).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8")]
pub struct Month(u8);

/// A quarter of the financial year, 1 to 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8")]
pub struct Quarter(u8);

/// One month of one financial year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Period {
    pub year: FinancialYear,
    pub month: Month,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("year {0} is outside 2000..=2999")]
    YearOutOfRange(u32),
    #[error("month {0} is outside 1..=12 (M1 is April)")]
    MonthOutOfRange(u32),
    #[error("quarter {0} is outside 1..=4")]
    QuarterOutOfRange(u32),
    #[error("'{0}' is not a financial year like 2018/19")]
    MalformedYear(String),
    #[error("'{0}' is not a period like 2018/19-M5")]
    MalformedPeriod(String),
}

impl TryFrom<u16> for FinancialYear {
    type Error = PeriodError;

    fn try_from(start_year: u16) -> Result<Self, Self::Error> {
        FinancialYear::new(u32::from(start_year))
    }
}

impl TryFrom<u8> for Month {
    type Error = PeriodError;

    fn try_from(month: u8) -> Result<Self, Self::Error> {
        Month::new(u32::from(month))
    }
}

impl TryFrom<u8> for Quarter {
    type Error = PeriodError;

    fn try_from(quarter: u8) -> Result<Self, Self::Error> {
        Quarter::new(u32::from(quarter))
    }
}

impl FinancialYear {
    pub const FIRST: u16 = 2000;
    pub const LAST: u16 = 2999;

    pub fn new(start_year: u32) -> Result<Self, PeriodError> {
        match u16::try_from(start_year) {
            Ok(y) if (Self::FIRST..=Self::LAST).contains(&y) => Ok(FinancialYear(y)),
            _ => Err(PeriodError::YearOutOfRange(start_year)),
        }
    }

    /// The calendar year the financial year starts in.
    pub const fn start_year(self) -> u16 {
        self.0
    }

    pub fn period(self, month: Month) -> Period {
        Period { year: self, month }
    }

    /// The year after, or `None` past the last supported year.
    pub fn next(self) -> Option<FinancialYear> {
        (self.0 < Self::LAST).then_some(FinancialYear(self.0 + 1))
    }

    /// M1..=M12 of this year, in order.
    pub fn periods(self) -> impl Iterator<Item = Period> {
        Month::all().map(move |month| Period { year: self, month })
    }
}

/// `2018/19`.
impl fmt::Display for FinancialYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:02}", self.0, (self.0 + 1) % 100)
    }
}

/// Accepts `2018/19` (the second part must be the following year) or `2018`.
impl FromStr for FinancialYear {
    type Err = PeriodError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || PeriodError::MalformedYear(text.to_string());
        let (start, end) = match text.split_once('/') {
            Some((s, e)) => (s, Some(e)),
            None => (text, None),
        };
        if start.len() != 4 || !start.chars().all(|c| c.is_ascii_digit()) {
            return Err(malformed());
        }
        let start: u32 = start.parse().map_err(|_| malformed())?;
        let year = FinancialYear::new(start)?;
        if let Some(end) = end {
            let expected = format!("{:02}", (start + 1) % 100);
            if end != expected {
                return Err(malformed());
            }
        }
        Ok(year)
    }
}

impl Month {
    pub fn new(month: u32) -> Result<Self, PeriodError> {
        match u8::try_from(month) {
            Ok(m) if (1..=12).contains(&m) => Ok(Month(m)),
            _ => Err(PeriodError::MonthOutOfRange(month)),
        }
    }

    pub const fn number(self) -> u8 {
        self.0
    }

    pub fn quarter(self) -> Quarter {
        Quarter((self.0 - 1) / 3 + 1)
    }

    /// Zero-based index, for arrays of twelve months.
    pub const fn index(self) -> usize {
        self.0 as usize - 1
    }

    pub fn all() -> impl Iterator<Item = Month> {
        (1..=12).map(Month)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "M{}", self.0)
    }
}

impl Quarter {
    pub fn new(quarter: u32) -> Result<Self, PeriodError> {
        match u8::try_from(quarter) {
            Ok(q) if (1..=4).contains(&q) => Ok(Quarter(q)),
            _ => Err(PeriodError::QuarterOutOfRange(quarter)),
        }
    }

    pub const fn number(self) -> u8 {
        self.0
    }

    /// The last month of the quarter (M3, M6, M9, M12), when it is assessed and accrued.
    pub fn last_month(self) -> Month {
        Month(self.0 * 3)
    }

    pub fn months(self) -> impl Iterator<Item = Month> {
        let first = self.0 * 3 - 2;
        (first..=first + 2).map(Month)
    }

    pub fn all() -> impl Iterator<Item = Quarter> {
        (1..=4).map(Quarter)
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Q{}", self.0)
    }
}

impl Period {
    pub fn new(year: FinancialYear, month: Month) -> Self {
        Period { year, month }
    }

    /// The month after this one, crossing into the next year after M12.
    pub fn next(self) -> Option<Period> {
        if self.month.0 == 12 {
            self.year.next().map(|year| Period {
                year,
                month: Month(1),
            })
        } else {
            Some(Period {
                year: self.year,
                month: Month(self.month.0 + 1),
            })
        }
    }
}

/// `2018/19-M5`.
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.year, self.month)
    }
}

/// Accepts `2018/19-M5` (or `2018/19 M5`).
impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || PeriodError::MalformedPeriod(text.to_string());
        let (year, month) = text.split_once(['-', ' ']).ok_or_else(malformed)?;
        let year: FinancialYear = year.parse()?;
        let month = month.strip_prefix(['M', 'm']).ok_or_else(malformed)?;
        let month: u32 = month.parse().map_err(|_| malformed())?;
        Ok(Period {
            year,
            month: Month::new(month)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_and_periods_parse_and_display() {
        let year: FinancialYear = "2018/19".parse().expect("valid");
        assert_eq!(year.to_string(), "2018/19");
        assert_eq!(
            "1999/00".parse::<FinancialYear>(),
            Err(PeriodError::YearOutOfRange(1999))
        );
        assert!("2018/20".parse::<FinancialYear>().is_err());
        assert_eq!(
            "2099/00".parse::<FinancialYear>().map(|y| y.to_string()),
            Ok("2099/00".to_string())
        );
        let period: Period = "2018/19-M12".parse().expect("valid");
        assert_eq!(period.to_string(), "2018/19-M12");
        assert_eq!(
            period.next().map(|p| p.to_string()),
            Some("2019/20-M1".to_string())
        );
        assert_eq!(
            "2018/19-M13".parse::<Period>(),
            Err(PeriodError::MonthOutOfRange(13))
        );
        assert!("2018/19-5".parse::<Period>().is_err());
    }

    #[test]
    fn quarters_group_months() {
        let m = |n| Month::new(n).expect("valid");
        assert_eq!(m(1).quarter().number(), 1);
        assert_eq!(m(3).quarter().number(), 1);
        assert_eq!(m(4).quarter().number(), 2);
        assert_eq!(m(12).quarter().number(), 4);
        let q3 = Quarter::new(3).expect("valid");
        assert_eq!(
            q3.months().map(|m| m.number()).collect::<Vec<_>>(),
            vec![7, 8, 9]
        );
        assert_eq!(q3.last_month(), m(9));
        assert_eq!(Quarter::new(0), Err(PeriodError::QuarterOutOfRange(0)));
    }

    #[test]
    fn periods_order_chronologically() {
        let p = |s: &str| s.parse::<Period>().expect("valid");
        assert!(p("2018/19-M12") < p("2019/20-M1"));
        assert!(p("2018/19-M2") < p("2018/19-M10"));
    }
}

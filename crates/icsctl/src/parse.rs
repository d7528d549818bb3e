//! Parsers for the human-friendly values on the command line and in scenario files: amounts
//! in pounds (`1234.56`, exact to the penny), percentages (`2.50%`), periods (`2018/19-M5`),
//! and the small `key=value` lists some flags take (`--balance KCCG:income=7000000`).

use std::collections::BTreeMap;

use domain::{BasisPoints, Code, FinancialYear, MemberCode, Pence, Period, Quarter, Text};

pub fn pounds(text: &str) -> Result<Pence, String> {
    Pence::parse_pounds(text).map_err(|e| e.to_string())
}

/// `50%`, `2.5%`, `91.00%` → basis points. More than two decimals is an error.
pub fn percent(text: &str) -> Result<BasisPoints, String> {
    let number = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("'{text}' is not a percentage like 2.50%"))?;
    // A percentage with two decimals is a number of basis points, just as pounds are pence.
    let bp = Pence::parse_pounds(number)
        .map_err(|_| format!("'{text}' is not a percentage like 2.50% (at most two decimals)"))?;
    match u32::try_from(bp.get()) {
        Ok(bp) => Ok(BasisPoints::new(bp)),
        Err(_) => Err(format!("'{text}' is out of range")),
    }
}

pub fn period(text: &str) -> Result<Period, String> {
    text.parse().map_err(|e: domain::PeriodError| e.to_string())
}

pub fn year(text: &str) -> Result<FinancialYear, String> {
    text.parse().map_err(|e: domain::PeriodError| e.to_string())
}

pub fn quarter(text: &str) -> Result<Quarter, String> {
    let number = text.trim_start_matches(['Q', 'q']);
    let n: u32 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a quarter 1..4"))?;
    Quarter::new(n).map_err(|e| e.to_string())
}

pub fn member(text: &str) -> Result<MemberCode, String> {
    MemberCode::parse(text).map_err(|e| format!("member code {e}"))
}

pub fn code(text: &str) -> Result<Code, String> {
    Code::new(text).map_err(|e| format!("code {e}"))
}

pub fn text(text: &str) -> Result<Text, String> {
    Text::new(text).map_err(|e| format!("text {e}"))
}

/// `a=1,b=2` → map; every key must be one of `allowed`, none twice.
pub fn key_values<'a>(
    text: &'a str,
    allowed: &[&str],
) -> Result<BTreeMap<&'a str, &'a str>, String> {
    let mut map = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("'{pair}' is not key=value"))?;
        if !allowed.contains(&key) {
            return Err(format!("'{key}' is not one of {}", allowed.join(", ")));
        }
        if map.insert(key, value).is_some() {
            return Err(format!("'{key}' is given twice"));
        }
    }
    Ok(map)
}

/// A required key of a `key=value` list.
pub fn required<'a>(map: &BTreeMap<&str, &'a str>, key: &str) -> Result<&'a str, String> {
    map.get(key)
        .copied()
        .ok_or_else(|| format!("'{key}=' is missing"))
}

pub fn count(text: &str) -> Result<u64, String> {
    text.replace(',', "")
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_exact_basis_points() {
        assert_eq!(percent("50%"), Ok(BasisPoints::new(5_000)));
        assert_eq!(percent("2.50%"), Ok(BasisPoints::new(250)));
        assert_eq!(percent("2.5%"), Ok(BasisPoints::new(250)));
        assert_eq!(percent("91.00%"), Ok(BasisPoints::new(9_100)));
        assert!(percent("2.505%").is_err());
        assert!(percent("50").is_err());
        assert!(percent("-5%").is_err());
    }

    #[test]
    fn key_values_refuse_unknown_and_repeated_keys() {
        let kv = key_values("units=24000,price=3000", &["units", "price"]).expect("valid");
        assert_eq!(required(&kv, "units"), Ok("24000"));
        assert!(key_values("units=1,units=2", &["units"]).is_err());
        assert!(key_values("colour=red", &["units"]).is_err());
        assert!(key_values("units", &["units"]).is_err());
    }
}

//! Money as finance teams read it: pounds with thousands separators and pence, negatives in
//! brackets (the accounting convention of NHS statements), a trailing space on positives so
//! that right-aligned columns line up on the last digit.

/// `123456789` → `"1,234,567.89 "`; `-156000000` → `"(1,560,000.00)"`; `0` → `"0.00 "`.
pub fn pounds(pence: i64) -> String {
    // i128: |i64::MIN| does not fit in an i64.
    let magnitude = i128::from(pence).unsigned_abs();
    let whole = (magnitude / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let text = format!("{grouped}.{:02}", magnitude % 100);
    if pence < 0 {
        format!("({text})")
    } else {
        format!("{text} ")
    }
}

#[cfg(test)]
mod tests {
    use super::pounds;

    #[test]
    fn pounds_are_grouped_and_negatives_bracketed() {
        assert_eq!(pounds(0), "0.00 ");
        assert_eq!(pounds(5), "0.05 ");
        assert_eq!(pounds(-5), "(0.05)");
        assert_eq!(pounds(99_999), "999.99 ");
        assert_eq!(pounds(100_000), "1,000.00 ");
        assert_eq!(pounds(-156_000_000), "(1,560,000.00)");
        assert_eq!(pounds(106_620_000_000), "1,066,200,000.00 ");
        assert_eq!(pounds(i64::MAX), "92,233,720,368,547,758.07 ");
        assert_eq!(pounds(i64::MIN), "(92,233,720,368,547,758.08)");
    }

    #[test]
    fn right_aligned_columns_line_up_on_the_last_digit() {
        for pence in [-600_000_000i64, 96_000_000, 0, -1] {
            let text = pounds(pence);
            let last_digit = text.rfind(|c: char| c.is_ascii_digit()).expect("digits");
            assert_eq!(text.len() - last_digit, 2, "{text:?}");
        }
    }
}

//! Floats as `INCRBYFLOAT` and `HINCRBYFLOAT` read and write them.
//!
//! Redis adds in 80-bit `long double` and prints the sum with 17 decimals, trailing zeros
//! removed. Skiff adds in 64-bit binary floating point (the same on every replica) and
//! prints the sum rounded to 15 significant digits and to 17 decimals, trailing zeros
//! removed, never in exponent form: the same text as Redis for sums of up to 15 significant
//! digits (`10.5 + 0.1` is `10.6`, `0.1 + 0.2` is `0.3`); larger or finer sums may differ
//! in their last digits, and sums beyond about 1.8e308 are refused where Redis's wider type
//! still holds them.

/// The longest text read as a float (Redis's `MAX_LONG_DOUBLE_CHARS`).
const MAX_FLOAT_CHARS: usize = 5 * 1024;

/// A float as Redis reads one: no surrounding spaces, nothing after the number, not NaN
/// (infinity parses; the sum is checked).
pub(crate) fn parse_float(bytes: &[u8]) -> Option<f64> {
    if bytes.is_empty() || bytes.len() > MAX_FLOAT_CHARS {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let value: f64 = text.parse().ok()?;
    (!value.is_nan()).then_some(value)
}

/// The text of a finite float (see the [module documentation](self)).
pub(crate) fn format_float(value: f64) -> Vec<u8> {
    // 15 significant digits drop binary noise (0.30000000000000004 becomes 0.3).
    let rounded: f64 = format!("{value:.14e}").parse().unwrap_or(value);
    // Display is the shortest text that reads back as the same float, never an exponent.
    let mut text = rounded.to_string();
    if let Some(dot) = text.find('.') {
        if text.len() - dot - 1 > 17 {
            text = format!("{rounded:.17}");
            while text.ends_with('0') {
                text.pop();
            }
            if text.ends_with('.') {
                text.pop();
            }
        }
    }
    if text == "-0" {
        text = "0".to_string();
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_print_as_redis_prints_them() {
        let table: &[(f64, &str)] = &[
            (10.5 + 0.1, "10.6"),
            (0.1 + 0.2, "0.3"),
            (5000.0 + 200.0, "5200"),
            (-0.0, "0"),
            (1e-20, "0"),
            (-1.5, "-1.5"),
            (3.0e-5, "0.00003"),
            (1e20, "100000000000000000000"),
        ];
        for (value, text) in table {
            assert_eq!(format_float(*value), text.as_bytes(), "{value}");
        }
    }

    #[test]
    fn only_plain_numbers_parse() {
        for good in ["1", "-1.5", "5.0e3", ".5", "inf"] {
            assert!(parse_float(good.as_bytes()).is_some(), "{good}");
        }
        for bad in ["", " 1", "1 ", "nan", "1e", "x", "1,5"] {
            assert_eq!(parse_float(bad.as_bytes()), None, "{bad}");
        }
    }
}

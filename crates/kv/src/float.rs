//! Floats as `INCRBYFLOAT` and `HINCRBYFLOAT` read, add and print them: Redis's
//! `long double` (the x87 80-bit format, a 64-bit significand) emulated exactly, so the
//! replies are Redis's byte for byte and the same on every replica whatever its hardware.
//!
//! - Reading (`strtold`): an optional sign, decimal digits with an optional point and
//!   exponent, or `inf`/`infinity`; rounded to the nearest value with a 64-bit significand
//!   (ties to even). No spaces, nothing after the number, not NaN, and no finite text that
//!   overflows or that is not zero yet rounds to zero (Redis refuses those as `ERANGE`).
//!   Hexadecimal floats as `strtold` reads them too: `0x` or `0X`, hexadecimal digits with
//!   an optional point, an optional binary exponent (`p` or `P`, a sign, decimal digits).
//! - Adding: the exact sum rounded to a 64-bit significand (ties to even); past the
//!   format's range it is infinite (the caller refuses it).
//! - Printing (`%.17Lf`, then trailing zeros and the point removed, `-0` as `0`): the exact
//!   value rounded to 17 decimals (ties to even), never an exponent.
//!
//! Subnormal values (below 2^-16382) keep 64 bits here where the hardware keeps fewer; no
//! sum of numbers a client can type at sensible lengths comes near them.

use num_bigint::{BigInt, BigUint, Sign};

/// The longest text read as a float (Redis's `MAX_LONG_DOUBLE_CHARS`).
const MAX_FLOAT_CHARS: usize = 5 * 1024;

/// Bits of an x87 extended significand.
const SIGNIFICAND_BITS: u64 = 64;

/// A value is infinite from 2^16384 on.
const MAX_EXPONENT: i64 = 16384;

/// Nonzero values below 2^-16446 round to zero.
const MIN_EXPONENT: i64 = -16446;

/// A decimal exponent this large or small puts any nonzero number out of range.
const DECIMAL_EXPONENT_LIMIT: i64 = 10_000;

/// An x87 extended value: `(-1)^negative × significand × 2^exponent`, or infinite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LongDouble {
    /// A finite value; `significand` is 0 or has its top (64th) bit set.
    Finite {
        negative: bool,
        significand: u64,
        exponent: i64,
    },
    /// Plus or minus infinity.
    Infinite { negative: bool },
}

impl LongDouble {
    pub(crate) const ZERO: LongDouble = LongDouble::Finite {
        negative: false,
        significand: 0,
        exponent: 0,
    };

    /// Whether the value is finite.
    pub(crate) fn is_finite(&self) -> bool {
        matches!(self, LongDouble::Finite { .. })
    }

    /// `magnitude × 2^exponent` with a sign, rounded to 64 bits (ties to even); infinite
    /// past the range. `inexact` says bits below `magnitude` were already dropped (they
    /// decide a tie).
    fn round(negative: bool, magnitude: BigUint, exponent: i64, inexact: bool) -> LongDouble {
        let bits = magnitude.bits();
        if bits == 0 {
            return LongDouble::ZERO;
        }
        let (significand, exponent) = if bits <= SIGNIFICAND_BITS {
            let shift = SIGNIFICAND_BITS - bits;
            let significand = u64::try_from(magnitude << shift).expect("64 bits");
            (significand, exponent - shift as i64)
        } else {
            let shift = bits - SIGNIFICAND_BITS;
            let kept = &magnitude >> shift;
            let half = magnitude.bit(shift - 1);
            let below_half = inexact
                || (&magnitude & ((BigUint::from(1u8) << (shift - 1)) - 1u8)) != BigUint::ZERO;
            let mut significand = u64::try_from(kept).expect("64 bits");
            let mut exponent = exponent + shift as i64;
            if half && (below_half || significand & 1 == 1) {
                match significand.checked_add(1) {
                    Some(up) => significand = up,
                    None => {
                        significand = 1 << 63;
                        exponent += 1;
                    }
                }
            }
            (significand, exponent)
        };
        if exponent + SIGNIFICAND_BITS as i64 > MAX_EXPONENT {
            return LongDouble::Infinite { negative };
        }
        if exponent + (SIGNIFICAND_BITS as i64) < MIN_EXPONENT {
            return LongDouble::ZERO;
        }
        LongDouble::Finite {
            negative,
            significand,
            exponent,
        }
    }

    /// The exact value as an integer times `2^exponent` (finite values only).
    fn exact(&self) -> Option<(BigInt, i64)> {
        match self {
            LongDouble::Finite {
                negative,
                significand,
                exponent,
            } => {
                let sign = if *negative { Sign::Minus } else { Sign::Plus };
                Some((
                    BigInt::from_biguint(sign, BigUint::from(*significand)),
                    *exponent,
                ))
            }
            LongDouble::Infinite { .. } => None,
        }
    }

    /// The sum, rounded once (ties to even).
    pub(crate) fn add(&self, other: &LongDouble) -> LongDouble {
        let (Some((a, ea)), Some((b, eb))) = (self.exact(), other.exact()) else {
            return match (self, other) {
                (LongDouble::Infinite { negative }, _) | (_, LongDouble::Infinite { negative }) => {
                    LongDouble::Infinite {
                        negative: *negative,
                    }
                }
                _ => unreachable!("one of them is infinite"),
            };
        };
        let low = ea.min(eb);
        let sum = (a << (ea - low) as usize) + (b << (eb - low) as usize);
        let negative = sum.sign() == Sign::Minus;
        LongDouble::round(negative, sum.magnitude().clone(), low, false)
    }
}

/// A float as Redis reads one (see the [module documentation](self)).
pub(crate) fn parse_float(bytes: &[u8]) -> Option<LongDouble> {
    if bytes.is_empty() || bytes.len() > MAX_FLOAT_CHARS {
        return None;
    }
    let (negative, rest) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, bytes),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(LongDouble::Infinite { negative });
    }
    if let Some(hex) = rest.strip_prefix(b"0x").or(rest.strip_prefix(b"0X")) {
        return parse_hex_float(negative, hex);
    }
    let NumberParts {
        whole,
        fraction,
        exponent: exponent_text,
    } = number_parts(rest, b'e', u8::is_ascii_digit)?;
    let mut exponent10: i64 = match exponent_text {
        None => 0,
        Some(text) => clamped_exponent(text, DECIMAL_EXPONENT_LIMIT)?,
    };
    let digits: Vec<u8> = whole.iter().chain(fraction).map(|d| d - b'0').collect();
    let integer = BigUint::from_radix_be(&digits, 10).unwrap_or_default();
    if integer == BigUint::ZERO {
        return Some(LongDouble::Finite {
            negative,
            significand: 0,
            exponent: 0,
        });
    }
    exponent10 -= fraction.len() as i64;
    let value = if exponent10 > DECIMAL_EXPONENT_LIMIT {
        LongDouble::Infinite { negative }
    } else if exponent10 < -DECIMAL_EXPONENT_LIMIT - MAX_FLOAT_CHARS as i64 {
        LongDouble::ZERO
    } else if exponent10 >= 0 {
        let scaled = integer * BigUint::from(10u8).pow(exponent10 as u32);
        LongDouble::round(negative, scaled, 0, false)
    } else {
        // integer / 10^k, with enough quotient bits to round correctly.
        let divisor = BigUint::from(10u8).pow((-exponent10) as u32);
        let shift = (divisor.bits() + SIGNIFICAND_BITS + 2).saturating_sub(integer.bits());
        let numerator = integer << shift;
        let quotient = &numerator / &divisor;
        let inexact = &quotient * &divisor != numerator;
        LongDouble::round(negative, quotient, -(shift as i64), inexact)
    };
    // strtold's ERANGE: a finite text that overflows, or a nonzero one that vanishes.
    match value {
        LongDouble::Infinite { .. } => None,
        LongDouble::Finite { significand: 0, .. } => None,
        finite => Some(finite),
    }
}

/// A number's text, cut in parts.
struct NumberParts<'a> {
    /// The digits before the point.
    whole: &'a [u8],
    /// The digits after it.
    fraction: &'a [u8],
    /// The text after the exponent's letter, if there is one.
    exponent: Option<&'a [u8]>,
}

/// The parts of a number's text: the digits before and after an optional point (at least
/// one in all, each one `is_digit`), and the text after the first `marker` (either case),
/// its exponent, if there is one; `None` if the text is not of that form.
fn number_parts(text: &[u8], marker: u8, is_digit: fn(&u8) -> bool) -> Option<NumberParts<'_>> {
    let (mantissa, exponent) = match text.iter().position(|c| c.eq_ignore_ascii_case(&marker)) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let (whole, fraction) = match mantissa.iter().position(|&c| c == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &[][..]),
    };
    let all_digits = |part: &[u8]| part.iter().all(is_digit);
    if (whole.is_empty() && fraction.is_empty()) || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    Some(NumberParts {
        whole,
        fraction,
        exponent,
    })
}

/// The decimal exponent `digits` (after an optional sign) names, clamped to twice
/// `limit` either way: past the limit the exact exponent does not matter.
fn clamped_exponent(text: &[u8], limit: i64) -> Option<i64> {
    let digits = text
        .strip_prefix(b"-")
        .or(text.strip_prefix(b"+"))
        .unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let significant = &digits[digits.iter().take_while(|&&d| d == b'0').count()..];
    let magnitude = if significant.len() > 8 {
        limit * 2
    } else {
        significant
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
            .min(limit * 2)
    };
    Some(if text.first() == Some(&b'-') {
        -magnitude
    } else {
        magnitude
    })
}

/// A hexadecimal float after its `0x` (`strtold`'s form): hexadecimal digits with an
/// optional point (at least one digit), then an optional `p` exponent of two.
fn parse_hex_float(negative: bool, text: &[u8]) -> Option<LongDouble> {
    let NumberParts {
        whole,
        fraction,
        exponent: exponent_text,
    } = number_parts(text, b'p', u8::is_ascii_hexdigit)?;
    // Beyond this a nonzero value is out of range whatever its digits (at most 5 KiB).
    let limit = MAX_EXPONENT + 4 * MAX_FLOAT_CHARS as i64;
    let exponent2 = match exponent_text {
        None => 0,
        Some(text) => clamped_exponent(text, limit)?,
    };
    let digits: Vec<u8> = whole
        .iter()
        .chain(fraction)
        .map(|&d| (d as char).to_digit(16).expect("checked hexadecimal") as u8)
        .collect();
    let integer = BigUint::from_radix_be(&digits, 16).unwrap_or_default();
    if integer == BigUint::ZERO {
        return Some(LongDouble::ZERO);
    }
    // Each digit after the point is four bits below it.
    let exponent = exponent2 - 4 * fraction.len() as i64;
    match LongDouble::round(negative, integer, exponent, false) {
        // strtold's ERANGE, as for decimal text.
        LongDouble::Infinite { .. } | LongDouble::Finite { significand: 0, .. } => None,
        finite => Some(finite),
    }
}

/// The text of a finite value (`%.17Lf`, trailing zeros and point removed, `-0` as `0`).
pub(crate) fn format_float(value: &LongDouble) -> Vec<u8> {
    let LongDouble::Finite {
        negative,
        significand,
        exponent,
    } = value
    else {
        unreachable!("the caller refuses infinite sums");
    };
    let scale = BigUint::from(10u8).pow(17);
    let magnitude = BigUint::from(*significand);
    // The value in units of 10^-17, rounded to the nearest (ties to even).
    let units = if *exponent >= 0 {
        (magnitude << *exponent as usize) * &scale
    } else {
        let shift = (-*exponent) as usize;
        let scaled = magnitude * &scale;
        let quotient = &scaled >> shift;
        let remainder = &scaled - (&quotient << shift);
        let half = BigUint::from(1u8) << (shift - 1);
        if remainder > half || (remainder == half && quotient.bit(0)) {
            quotient + 1u8
        } else {
            quotient
        }
    };
    if units == BigUint::ZERO {
        return b"0".to_vec();
    }
    let whole = &units / &scale;
    let fraction = format!("{:017}", &units % &scale);
    let fraction = fraction.trim_end_matches('0');
    let mut text = String::new();
    if *negative {
        text.push('-');
    }
    text.push_str(&whole.to_string());
    if !fraction.is_empty() {
        text.push('.');
        text.push_str(fraction);
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        let a = parse_float(a.as_bytes()).expect("a float");
        let b = parse_float(b.as_bytes()).expect("a float");
        String::from_utf8(format_float(&a.add(&b))).expect("ASCII")
    }

    /// Each answer is redis-server 7.0's to `SET k a` then `INCRBYFLOAT k b`.
    #[test]
    fn sums_print_as_redis_prints_them() {
        let table: &[(&str, &str, &str)] = &[
            ("10.50", "0.1", "10.6"),
            ("0.1", "0.2", "0.3"),
            ("10.6", "5.0e3", "5010.60000000000000009"),
            ("0.00000058", "-3949.3050", "-3949.30499941999999991"),
            ("248720", "0.00000084", "248720.00000083999999845"),
            ("-63427", "3.11e12", "3109999936573"),
            ("6.79e9", "9244.9413", "6790009244.94130000006407499"),
            ("0", "1e30", "1000000000000000000024696061952"),
            ("0", "1e-20", "0"),
            ("0", "-0.0", "0"),
            ("1", "-1", "0"),
            ("-1.5", "0", "-1.5"),
            ("9223372036854775807", "0.5", "9223372036854775807.5"),
        ];
        for (a, b, redis) in table {
            assert_eq!(sum(a, b), *redis, "{a} + {b}");
        }
        let max = parse_float(b"1.7976931348623157e308").unwrap();
        assert_eq!(
            String::from_utf8(format_float(&max.add(&max))).unwrap(),
            "359538626972463139991842093548208868096772893888658356970628841530353257046248792709403737216774171128857586838851041378617416726902272110715794556052955234146997955372576789671236326588091188869859074894581254961338834769297758245552436667197907705664206565009503223382416235440319971852753604933726679072768"
        );
    }

    /// Hexadecimal floats, as redis-server 7.0.15 reads them: each pair is `SET k 0`, then
    /// `INCRBYFLOAT k text` and Redis's answer (`None`: `ERR value is not a valid float`).
    #[test]
    fn hexadecimal_floats_read_as_strtold_reads_them() {
        let table: &[(&str, Option<&str>)] = &[
            ("0x10", Some("16")),
            ("-0x10", Some("-16")),
            ("+0x1", Some("1")),
            ("0X1P-2", Some("0.25")),
            ("0x.8", Some("0.5")),
            ("0x1.8p1", Some("3")),
            ("0x1p+3", Some("8")),
            ("0xAbC.dEf", Some("2748.870849609375")),
            ("0x1e1", Some("481")),
            ("0x1.p0", Some("1")),
            ("0x0p0", Some("0")),
            ("-0x0", Some("0")),
            ("0x00001p0", Some("1")),
            ("0x1p00000000000000000000004", Some("16")),
            ("0x0p99999999999999999999", Some("0")),
            ("0x1.00000000000000008p0", Some("1")),
            ("0x.0000000000000000000000001p100", Some("1")),
            ("0x", None),
            ("0x1p", None),
            ("0xp1", None),
            ("0x.p1", None),
            ("0x1q", None),
            ("0x-1", None),
            ("0x10 ", None),
            ("0x1p16384", None),
            ("0x1p-16500", None),
            ("0x1p99999999999999999999", None),
            ("0x1p-99999999999999999999", None),
        ];
        for (text, redis) in table {
            let parsed = parse_float(text.as_bytes());
            let printed = parsed.map(|value| String::from_utf8(format_float(&value)).unwrap());
            assert_eq!(printed.as_deref(), *redis, "{text}");
        }
        assert_eq!(sum("10.6", "0x10"), "26.6");
        assert_eq!(
            parse_float(b"0x1p16383"),
            Some(LongDouble::Finite {
                negative: false,
                significand: 1 << 63,
                exponent: 16383 - 63,
            })
        );
    }

    #[test]
    fn only_plain_numbers_parse() {
        for good in [
            "1",
            "-1.5",
            "5.0e3",
            ".5",
            "5.",
            "+2",
            "inf",
            "-Infinity",
            "1e-4000",
        ] {
            assert!(parse_float(good.as_bytes()).is_some(), "{good}");
        }
        for bad in [
            "", " 1", "1 ", "nan", "1e", "x", "1,5", ".", "1e5000", "1e-5000", "--1",
        ] {
            assert_eq!(parse_float(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_float(b"1e0000000001"), parse_float(b"10"));
        assert_eq!(parse_float(b"1e999999999999"), None);
        let infinite = parse_float(b"inf").unwrap();
        assert!(!infinite.add(&parse_float(b"1").unwrap()).is_finite());
    }
}

//! Kubernetes resource quantities as whole device counts: what a user wrote
//! for an extended resource ("2", "2000m", "1k", "1Ki", "1e3"), read exactly
//! so that a request is never lowered by a misreading.

/// The whole number a quantity stands for; `None` when it is not one (a
/// fraction, a negative, a malformed string, or beyond u64).
pub fn whole(q: &str) -> Option<u64> {
    let q = q.trim();
    let digits_end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(digits_end);
    let num = num.strip_prefix('+').unwrap_or(num);
    if num.is_empty() || num.contains('+') {
        return None;
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    // The value is (int.frac) * 10^exp10 * 2^exp2.
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => (s[1..].parse::<i32>().ok()?, 0),
        _ => return None,
    };
    // An exact integer mantissa: digits without the point, and the point's
    // place folded into the exponent.
    let mantissa: String = format!("{int}{frac}");
    let mut exp10 = exp10.checked_sub(i32::try_from(frac.len()).ok()?)?;
    let mut m: u128 = if mantissa.is_empty() {
        0
    } else {
        mantissa.parse().ok()?
    };
    while exp10 > 0 {
        m = m.checked_mul(10)?;
        exp10 -= 1;
    }
    while exp10 < 0 {
        if m % 10 != 0 {
            return None;
        }
        m /= 10;
        exp10 += 1;
    }
    m = m.checked_mul(1u128.checked_shl(exp2)?)?;
    u64::try_from(m).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_counts_in_every_spelling() {
        for (q, n) in [
            ("2", 2),
            ("0", 0),
            ("+3", 3),
            ("2000m", 2),
            ("1k", 1000),
            ("1Ki", 1024),
            ("1e3", 1000),
            ("1.5k", 1500),
            ("2.0", 2),
            (" 4 ", 4),
        ] {
            assert_eq!(whole(q), Some(n), "{q}");
        }
    }

    #[test]
    fn fractions_and_junk_are_not_counts() {
        for q in [
            "1.5",
            "1500m",
            "-1",
            "",
            "m",
            "1x",
            "1..2",
            "1e",
            "99999999999999999999999",
            "1Ei0",
        ] {
            assert_eq!(whole(q), None, "{q}");
        }
    }
}

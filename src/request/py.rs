//! Python/oslo parsing rules that Nova's answers depend on: `int()`,
//! `strutils.is_int_like`, `strutils.bool_from_string`,
//! `strutils.string_to_bytes` (IEC) and `hardware.parse_cpu_spec`.

use crate::fit::pyset::PySet;

/// Python's `int(str)`: surrounding whitespace, an optional sign, ASCII
/// digits with single underscores between them.
pub fn py_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if !clean.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are allowed by int() for decimal strings ("007" == 7).
    let value: i64 = clean.parse().ok()?;
    Some(if neg { -value } else { value })
}

/// `strutils.is_int_like`: `str(int(v)) == str(v)`.
pub fn is_int_like(text: &str) -> bool {
    py_int(text).is_some_and(|v| v.to_string() == text)
}

/// `strutils.bool_from_string(v, strict=False)`.
pub fn bool_from_string(text: &str) -> bool {
    matches!(
        text.trim().to_lowercase().as_str(),
        "1" | "t" | "true" | "on" | "y" | "yes"
    )
}

/// `strutils.string_to_bytes(text, 'IEC', return_int=True)`.
pub fn string_to_bytes_iec(text: &str) -> Option<i64> {
    // (^[-+]?\d*\.?\d+)([KMGTPEZYRQ]i?)?(b|bit|B)$
    let bytes = text.as_bytes();
    let mut i = 0;
    if i < bytes.len() && (bytes[i] == b'-' || bytes[i] == b'+') {
        i += 1;
    }
    let num_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        i += 1;
    }
    let number = &text[num_start..i];
    // \d*\.?\d+ : at most one dot, at least one digit after it (or digits only).
    let valid_number = match number.split_once('.') {
        None => !number.is_empty(),
        Some((a, b)) => !b.is_empty() && !b.contains('.') && a.bytes().all(|c| c.is_ascii_digit()),
    };
    if !valid_number {
        return None;
    }
    let mut magnitude: f64 = text[..i].parse().ok()?;
    let rest = &text[i..];
    let (exponent, unit) = match rest.as_bytes().first() {
        Some(c) if b"KMGTPEZYRQ".contains(c) => {
            let exp = b"KMGTPEZYRQ".iter().position(|x| x == c).unwrap() as i32 + 1;
            let after = &rest[1..];
            (exp, after.strip_prefix('i').unwrap_or(after))
        }
        _ => (0, rest),
    };
    match unit {
        "b" | "bit" => magnitude /= 8.0,
        "B" => {}
        _ => return None,
    }
    let res = magnitude * 1024f64.powi(exponent);
    Some(res.ceil() as i64)
}

/// `hardware.parse_cpu_spec`: `1-4,^3,6`; the result keeps CPython's set
/// order because Nova iterates it when checking manual NUMA CPU lists.
pub fn parse_cpu_spec(spec: &str) -> Result<PySet, String> {
    let mut ids = PySet::new();
    let mut rejects = PySet::new();
    for rule in spec.split(',') {
        let rule = rule.trim();
        if rule.is_empty() {
            continue;
        }
        if let Some((first, second)) = rule.split_once('-') {
            let (reject, first) = match first.strip_prefix('^') {
                Some(f) => (true, f),
                None => (false, first),
            };
            let (Some(start), Some(end)) = (py_int(first), py_int(second)) else {
                return Err(format!("Invalid range expression '{rule}'"));
            };
            if start > end || start < 0 {
                return Err(format!("Invalid range expression '{rule}'"));
            }
            if end - start > 1 << 16 {
                return Err(format!("Invalid range expression '{rule}'"));
            }
            let range = PySet::from_iter_ordered((start as u32)..=(end as u32));
            if reject {
                rejects.merge(&range)
            } else {
                ids.merge(&range)
            }
        } else if let Some(rest) = rule.strip_prefix('^') {
            match py_int(rest).filter(|v| *v >= 0) {
                Some(v) => rejects.add(v as u32),
                None => return Err(format!("Invalid exclusion expression '{rule}'")),
            }
        } else {
            match py_int(rule).filter(|v| *v >= 0) {
                Some(v) => ids.add(v as u32),
                None => return Err(format!("Invalid inclusion expression '{rule}'")),
            }
        }
    }
    ids.difference_update(&rejects);
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_rules() {
        assert_eq!(py_int(" 12 "), Some(12));
        assert_eq!(py_int("+3"), Some(3));
        assert_eq!(py_int("1_000"), Some(1000));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("0x10"), None);
        assert!(is_int_like("4"));
        assert!(!is_int_like("04"));
        assert!(!is_int_like(" 4"));
    }

    #[test]
    fn iec_sizes() {
        assert_eq!(string_to_bytes_iec("2MB"), Some(2 << 20));
        assert_eq!(string_to_bytes_iec("2MiB"), Some(2 << 20));
        assert_eq!(string_to_bytes_iec("1GB"), Some(1 << 30));
        assert_eq!(string_to_bytes_iec("2Mb"), Some(262144));
        assert_eq!(string_to_bytes_iec("2M"), None);
        assert_eq!(string_to_bytes_iec("2mb"), None);
        assert_eq!(string_to_bytes_iec(".5KB"), Some(512));
    }

    #[test]
    fn cpu_specs() {
        let s = parse_cpu_spec("0-3,^2,6").unwrap();
        let mut v = s.to_vec();
        v.sort();
        assert_eq!(v, vec![0, 1, 3, 6]);
        assert!(parse_cpu_spec("3-1").is_err());
        assert!(parse_cpu_spec("-1").is_err());
        assert!(parse_cpu_spec("a").is_err());
    }
}

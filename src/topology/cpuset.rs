//! CPU list and CPU mask notations: Linux lists (`0-3,8`), sysfs hex masks
//! (`ffffffff,00000000`) and hwloc bitmaps (`0x0000ffff,,0x0`).

use std::fmt::Write;

/// Parses a Linux CPU list such as `0-3,8,10-11` (whitespace and an empty list allowed).
pub fn parse_cpu_list(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.trim().split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let parse = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{s}` in CPU list `{}` is not a CPU number", text.trim()))
        };
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (parse(lo)?, parse(hi)?);
                if hi < lo {
                    return Err(format!("range `{part}` runs backwards"));
                }
                if hi - lo > 1 << 20 {
                    return Err(format!("range `{part}` is implausibly large"));
                }
                out.extend(lo..=hi);
            }
            None => out.push(parse(part)?),
        }
    }
    Ok(out)
}

/// Formats CPU ids as a compact Linux list (`0-3,8`). Input need not be sorted.
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}-{end}");
        }
        i += 1;
    }
    out
}

/// Parses a mask made of comma-separated 32-bit hex words, most significant
/// first, as sysfs `cpumap` and hwloc bitmaps write them. hwloc writes an
/// empty word for zero and may start with `0xf...f` for an infinite set,
/// which is rejected here since a real CPU set is finite.
pub fn parse_hex_mask(text: &str) -> Result<Vec<u32>, String> {
    let words: Vec<&str> = text.trim().split(',').collect();
    let mut out = Vec::new();
    for (pos, word) in words.iter().rev().enumerate() {
        let word = word.trim();
        let digits = word
            .strip_prefix("0x")
            .or_else(|| word.strip_prefix("0X"))
            .unwrap_or(word);
        if digits.is_empty() {
            continue;
        }
        if digits.eq_ignore_ascii_case("f...f") {
            return Err(format!("mask `{}` is infinite", text.trim()));
        }
        let value = u64::from_str_radix(digits, 16)
            .map_err(|_| format!("`{word}` in mask `{}` is not a hex word", text.trim()))?;
        // sysfs words are 32 bits; tolerate wider hex by taking all of its bits.
        let base =
            u32::try_from(pos * 32).map_err(|_| format!("mask `{}` too long", text.trim()))?;
        for bit in 0..64u32 {
            if value & (1u64 << bit) != 0 {
                out.push(base + bit);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(format_cpu_list(&[11, 0, 1, 2, 3, 8, 10]), "0-3,8,10-11");
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
    }

    #[test]
    fn masks() {
        assert_eq!(parse_hex_mask("0x00000003").unwrap(), vec![0, 1]);
        assert_eq!(parse_hex_mask("00000001,00000000").unwrap(), vec![32]);
        assert_eq!(parse_hex_mask("0x10000000,,,0x0").unwrap(), vec![124]);
        assert!(parse_hex_mask("0xf...f,0x1").is_err());
        assert!(parse_hex_mask("zz").is_err());
    }
}

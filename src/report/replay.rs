//! `numasim replay`: a trace scheduled exactly as Nova's replayer does
//! (`tests/data/replay/REPLAY.md`), through the simulator's own event loop,
//! scheduler and fit engine in `nova` mode. This module formats its output
//! the way Python's `json.dumps` does, so files compare byte for byte.

use crate::request::GuestTopology;
use crate::sim::{Decision, Observer, Simulation};
use crate::workload::trace::TraceRow;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

/// Python's `repr(float)`: shortest round-trip digits, scientific notation
/// below 1e-4 and from 1e16, always a `.0` on integral values.
pub fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Where Python's repr is positional (1e-4 <= |x| < 1e16) it is Rust's
    // shortest round-trip Display, with `.0` on whole numbers.
    if (1e-4..1e16).contains(&x.abs()) {
        let mut s = format!("{x}");
        if !s.contains('.') {
            s.push_str(".0");
        }
        return s;
    }
    let sci = format!("{x:e}"); // e.g. "4.282e3", "-1.5e-5"
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let point = exp as usize + 1;
            if digits.len() <= point {
                out.push_str(&digits);
                out.push_str(&"0".repeat(point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// Python's `json.dumps` of a string (ensure_ascii).
pub fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Python's `json.dumps` of a JSON value with default separators, keys in
/// the value's own order.
pub fn py_json(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => py_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => py_str(s),
        Value::Array(a) => format!("[{}]", a.iter().map(py_json).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The `cells` list of a placement line, keys in Nova's replayer order:
/// guest_cell, host_cell, pcpus, cpu_pinning, pagesize_kb, memory_mb.
fn cells_line(fitted: &GuestTopology) -> String {
    let mut out = String::from("[");
    for (i, c) in fitted.cells.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let pcpus: Vec<String> = c.pcpuset.iter().map(u32::to_string).collect();
        let _ = write!(
            out,
            "{{\"guest_cell\": {i}, \"host_cell\": {}, \"pcpus\": [{}], \"cpu_pinning\": ",
            c.id,
            pcpus.join(", ")
        );
        match &c.cpu_pinning {
            // Nova's replayer writes vCPU keys in numeric order.
            Some(m) if !m.is_empty() => {
                let pairs: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                let _ = write!(out, "{{{}}}", pairs.join(", "));
            }
            _ => out.push_str("null"),
        }
        match c.pagesize {
            Some(p) => {
                let _ = write!(out, ", \"pagesize_kb\": {p}");
            }
            None => out.push_str(", \"pagesize_kb\": null"),
        }
        let _ = write!(out, ", \"memory_mb\": {}}}", c.memory_mb);
    }
    out.push(']');
    out
}

/// Counts of the replay summary (tests/data/replay/REPLAY.md).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReplaySummary {
    pub guests: u64,
    pub placed: u64,
    pub rejected: u64,
    pub rejected_pct: f64,
    pub errors: u64,
    pub numa_arrivals: u64,
    pub non_numa_arrivals: u64,
    pub departures_applied: u64,
    pub still_placed: u64,
    pub fit_calls: u64,
    pub claims: u64,
    pub frees: u64,
    pub rejected_by_flavor: BTreeMap<String, u64>,
    pub arrivals_by_flavor: BTreeMap<String, u64>,
    pub accounting_ok: bool,
    pub wall_s: f64,
}

/// Writes one line per arrival and keeps the summary counts.
pub struct ReplayWriter<W: Write> {
    pub out: W,
    pub summary: ReplaySummary,
    pub io_error: Option<std::io::Error>,
    numa_rows: std::collections::HashSet<usize>,
}

impl<W: Write> ReplayWriter<W> {
    pub fn new(out: W) -> Self {
        ReplayWriter {
            out,
            summary: ReplaySummary::default(),
            io_error: None,
            numa_rows: Default::default(),
        }
    }
}

impl<W: Write> Observer for ReplayWriter<W> {
    fn arrival(&mut self, t: f64, row: &TraceRow, decision: &Decision, sim: &Simulation) {
        let flavor = &sim.catalog().flavors[row.flavor].name;
        let s = &mut self.summary;
        s.guests += 1;
        *s.arrivals_by_flavor.entry(flavor.clone()).or_default() += 1;
        let mut line = format!("{{\"id\": {}, \"t\": {}, ", py_str(&row.id), py_float(t));
        match decision {
            Decision::Placed { host, binding } => {
                s.placed += 1;
                let cells = match binding.fitted() {
                    Some(f) => {
                        s.numa_arrivals += 1;
                        s.claims += 1;
                        self.numa_rows.insert(row.row);
                        cells_line(f)
                    }
                    None => {
                        s.non_numa_arrivals += 1;
                        "null".into()
                    }
                };
                let _ = write!(
                    line,
                    "\"host\": {}, \"cells\": {cells}}}",
                    py_str(&sim.hosts[*host].name)
                );
            }
            Decision::Rejected { error } => {
                s.rejected += 1;
                *s.rejected_by_flavor.entry(flavor.clone()).or_default() += 1;
                line.push_str("\"host\": null, \"cells\": null");
                if let Some(e) = error {
                    s.errors += 1;
                    let _ = write!(
                        line,
                        ", \"error\": {{\"phase\": {}, \"kind\": {}, \"message\": {}}}",
                        py_str(e.phase.as_str()),
                        py_str(e.kind),
                        py_str(&e.message)
                    );
                } else if sim.requests_numa(row) {
                    s.numa_arrivals += 1;
                } else {
                    s.non_numa_arrivals += 1;
                }
                line.push('}');
            }
            Decision::OomKilled { .. } => unreachable!("replays do not model pages"),
        }
        line.push('\n');
        if self.io_error.is_none()
            && let Err(e) = self.out.write_all(line.as_bytes())
        {
            self.io_error = Some(e);
        }
    }

    fn departure(&mut self, _t: f64, row: usize, _sim: &Simulation) {
        self.summary.departures_applied += 1;
        if self.numa_rows.remove(&row) {
            self.summary.frees += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_repr() {
        for (x, s) in [
            (4.282, "4.282"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (1.5e-7, "1.5e-07"),
            (-2.5, "-2.5"),
            (6266.031, "6266.031"),
        ] {
            assert_eq!(py_float(x), s);
        }
    }

    #[test]
    fn python_json_strings() {
        assert_eq!(py_str("a\"b\\é"), "\"a\\\"b\\\\\\u00e9\"");
    }
}

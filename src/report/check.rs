//! `numasim check`: compare a run's `summary.csv` with a baseline's and
//! report regressions beyond tolerances, as a Markdown table and JUnit XML.
//! Pure: takes the CSV texts, returns the report.

use super::metrics::Worse;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The metrics checked: every judged metric of the registry that has a
/// direction, each with the direction in which it gets worse.
pub fn checked() -> impl Iterator<Item = (&'static str, Worse)> {
    super::metrics::judging()
        .filter(|m| m.worse != Worse::Neither)
        .map(|m| (m.name, m.worse))
}

/// The tolerance of a metric without one given: one unit of its last
/// printed digit (what differs between machines' libm), none for counts.
fn default_tolerance(metric: &str) -> Tolerance {
    let decimals = super::metrics::find(metric).map_or(9, |m| m.decimals);
    Tolerance::Abs(if decimals == 0 {
        0.0
    } else {
        10f64.powi(-(decimals as i32))
    })
}

/// How much worse a metric may get: absolute or relative to the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    Abs(f64),
    Rel(f64),
}

impl Tolerance {
    /// `abs:0.01` or `rel:0.05`.
    pub fn parse(text: &str) -> Result<Tolerance, String> {
        let (kind, value) = text
            .split_once(':')
            .ok_or_else(|| format!("tolerance `{text}`: expected abs:VALUE or rel:VALUE"))?;
        let v: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("tolerance `{text}`: `{value}` is not a non-negative number"))?;
        match kind {
            "abs" => Ok(Tolerance::Abs(v)),
            "rel" => Ok(Tolerance::Rel(v)),
            other => Err(format!(
                "tolerance `{text}`: `{other}` is neither abs nor rel"
            )),
        }
    }

    fn allowed(self, baseline: f64) -> f64 {
        match self {
            Tolerance::Abs(a) => a,
            Tolerance::Rel(r) => r * baseline.abs(),
        }
    }

    fn describe(self) -> String {
        match self {
            Tolerance::Abs(a) => format!("abs {a}"),
            Tolerance::Rel(r) => format!("rel {r}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub policy: String,
    pub metric: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    pub tolerance: Tolerance,
    pub regressed: bool,
}

/// Per-policy means over seeds of every numeric column.
fn means(csv_text: &str, what: &str) -> Result<BTreeMap<String, BTreeMap<String, f64>>, String> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = r.headers().map_err(|e| format!("{what}: {e}"))?.clone();
    let policy_col = headers
        .iter()
        .position(|h| h == "policy")
        .ok_or_else(|| format!("{what}: no `policy` column; expected a numasim summary.csv"))?;
    let mut sums: BTreeMap<String, (BTreeMap<String, f64>, usize)> = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{what}: {e}"))?;
        let line = rec.position().map_or(0, |p| p.line());
        let policy = rec.get(policy_col).unwrap_or("").to_string();
        let entry = sums.entry(policy).or_default();
        entry.1 += 1;
        for (name, _) in checked() {
            let Some(col) = headers.iter().position(|h| h == name) else {
                continue;
            };
            let v: f64 = rec
                .get(col)
                .unwrap_or("")
                .parse()
                .map_err(|_| format!("{what}: line {line}: {name} is not a number"))?;
            *entry.0.entry(name.to_string()).or_default() += v;
        }
    }
    Ok(sums
        .into_iter()
        .map(|(p, (s, n))| (p, s.into_iter().map(|(k, v)| (k, v / n as f64)).collect()))
        .collect())
}

/// Compares `current` with `baseline` (summary.csv texts).
pub fn compare(
    current: &str,
    baseline: &str,
    tolerances: &BTreeMap<String, Tolerance>,
) -> Result<Vec<Row>, String> {
    let cur = means(current, "results summary.csv")?;
    let base = means(baseline, "baseline summary.csv")?;
    let mut rows = Vec::new();
    for (policy, bm) in &base {
        for (metric, worse) in checked() {
            let Some(&b) = bm.get(metric) else { continue };
            let tol = tolerances
                .get(metric)
                .copied()
                .unwrap_or_else(|| default_tolerance(metric));
            let c = cur.get(policy).and_then(|m| m.get(metric)).copied();
            let regressed = match c {
                // Missing or not a number (on either side): a failure, never a pass.
                None => true,
                Some(c) if !c.is_finite() || !b.is_finite() => true,
                Some(c) => {
                    let delta = if worse == Worse::Up { c - b } else { b - c };
                    delta > tol.allowed(b)
                }
            };
            rows.push(Row {
                policy: policy.clone(),
                metric: metric.to_string(),
                baseline: Some(b),
                current: c,
                tolerance: tol,
                regressed,
            });
        }
    }
    Ok(rows)
}

fn num(v: Option<f64>) -> String {
    v.map_or("missing".into(), |x| format!("{x:.6}"))
}

pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| policy | metric | baseline | current | tolerance | result |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            r.policy,
            r.metric,
            num(r.baseline),
            num(r.current),
            r.tolerance.describe(),
            if r.regressed { "**REGRESSED**" } else { "ok" }
        );
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn junit(rows: &[Row]) -> String {
    let failures = rows.iter().filter(|r| r.regressed).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"numasim check\" tests=\"{}\" failures=\"{failures}\">\n",
        rows.len()
    );
    for r in rows {
        let name = xml_escape(&format!("{}.{}", r.policy, r.metric));
        if r.regressed {
            let msg = xml_escape(&format!(
                "{} went from {} to {} (tolerance {})",
                r.metric,
                num(r.baseline),
                num(r.current),
                r.tolerance.describe()
            ));
            let _ = writeln!(
                out,
                "  <testcase classname=\"numasim\" name=\"{name}\"><failure message=\"{msg}\"/></testcase>"
            );
        } else {
            let _ = writeln!(out, "  <testcase classname=\"numasim\" name=\"{name}\"/>");
        }
    }
    out.push_str("</testsuite>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "scenario,policy,seed,rejection_rate,mem_alloc_mean\nq,a,1,0.10,0.50\nq,a,2,0.20,0.70\n";

    #[test]
    fn regressions_respect_direction_and_tolerance() {
        let none = BTreeMap::new();
        let same = compare(BASE, BASE, &none).unwrap();
        assert!(same.iter().all(|r| !r.regressed));
        let better = "scenario,policy,seed,rejection_rate,mem_alloc_mean\nq,a,1,0.05,0.80\n";
        assert!(
            compare(better, BASE, &none)
                .unwrap()
                .iter()
                .all(|r| !r.regressed)
        );
        let worse = "scenario,policy,seed,rejection_rate,mem_alloc_mean\nq,a,1,0.16,0.59\n";
        let rows = compare(worse, BASE, &none).unwrap();
        assert!(rows.iter().all(|r| r.regressed), "{rows:?}");
        let mut tol = BTreeMap::new();
        tol.insert(
            "rejection_rate".to_string(),
            Tolerance::parse("abs:0.02").unwrap(),
        );
        tol.insert(
            "mem_alloc_mean".to_string(),
            Tolerance::parse("rel:0.05").unwrap(),
        );
        assert!(
            compare(worse, BASE, &tol)
                .unwrap()
                .iter()
                .all(|r| !r.regressed)
        );
        let missing = "scenario,policy,seed,rejection_rate,mem_alloc_mean\nq,b,1,0.1,0.6\n";
        assert!(
            compare(missing, BASE, &none)
                .unwrap()
                .iter()
                .all(|r| r.regressed && r.current.is_none())
        );
        assert!(junit(&rows).contains("failures=\"2\""));
        assert!(markdown(&rows).contains("**REGRESSED**"));
        assert!(Tolerance::parse("pct:3").is_err());
    }
}

//! Which policy wins on which metric: for every metric the table shows
//! that judges a policy (it has a worse direction), the best and the worst
//! policy by their mean over seeds, with the best one's 95% interval when
//! there are several seeds. Worded in `words`; used by the terminal's
//! verdict line and the HTML report.

use super::metrics::{METRICS, Metric, Shown, Worse};
use super::stats::mean_ci95;
use crate::experiment::run::RunResult;

/// One metric's standing of the policies.
#[derive(Debug, Clone)]
pub struct Standing {
    pub metric: &'static Metric,
    pub best: String,
    pub best_mean: f64,
    /// The best policy's 95% interval (several seeds only).
    pub best_interval: Option<(f64, f64)>,
    pub worst: String,
    pub worst_mean: f64,
    /// Other policies as good as the best (equal means).
    pub tied: Vec<String>,
}

/// The policies in the order they first appear, each with its results.
pub fn by_policy(results: &[RunResult]) -> Vec<(&str, Vec<&RunResult>)> {
    let mut out: Vec<(&str, Vec<&RunResult>)> = Vec::new();
    for r in results {
        match out.iter_mut().find(|(p, _)| *p == r.policy) {
            Some((_, rs)) => rs.push(r),
            None => out.push((&r.policy, vec![r])),
        }
    }
    out
}

/// Standings on every shown, judged metric on which the policies differ;
/// none with a single policy.
pub fn standings(results: &[RunResult]) -> Vec<Standing> {
    let policies: PolicyRuns = by_policy(results)
        .into_iter()
        .map(|(p, rs)| {
            let runs = rs
                .iter()
                .map(|r| METRICS.iter().map(|m| (m.value)(&r.metrics)).collect())
                .collect();
            (p.to_string(), runs)
        })
        .collect();
    standings_of(&policies)
}

/// Per policy, per run, every registry metric in registry order (a sweep's
/// records carry them so).
pub type PolicyRuns = Vec<(String, Vec<Vec<f64>>)>;

/// `standings` from values.
pub fn standings_of(policies: &PolicyRuns) -> Vec<Standing> {
    if policies.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (col, m) in METRICS.iter().enumerate() {
        if m.shown == Shown::No || !m.judged || m.worse == Worse::Neither {
            continue;
        }
        // (policy, mean, interval)
        type Stat<'a> = (&'a str, f64, Option<(f64, f64)>);
        let stats: Vec<Stat> = policies
            .iter()
            .filter_map(|(p, runs)| {
                let values: Vec<f64> = runs.iter().filter_map(|r| r.get(col).copied()).collect();
                mean_ci95(&values).map(|ci| (p.as_str(), ci.mean, ci.interval()))
            })
            .collect();
        if stats.len() < 2 {
            continue;
        }
        // Better first; ties keep the policies' order.
        let better = |a: f64, b: f64| match m.worse {
            Worse::Up => a < b,
            _ => a > b,
        };
        let mut best = 0;
        let mut worst = 0;
        for (i, s) in stats.iter().enumerate() {
            if better(s.1, stats[best].1) {
                best = i;
            }
            if better(stats[worst].1, s.1) {
                worst = i;
            }
        }
        if stats[best].1 == stats[worst].1 {
            continue;
        }
        out.push(Standing {
            metric: m,
            best: stats[best].0.to_string(),
            best_mean: stats[best].1,
            best_interval: stats[best].2,
            worst: stats[worst].0.to_string(),
            worst_mean: stats[worst].1,
            tied: stats
                .iter()
                .enumerate()
                .filter(|(i, s)| *i != best && s.1 == stats[best].1)
                .map(|(_, s)| s.0.to_string())
                .collect(),
        });
    }
    out
}

//! `numasim capacity`: the smallest fleet, in hosts of the scenario's mix,
//! that meets every target in the conservative bound of its 95% confidence
//! interval over the scenario's seeds. Bisection over the host count, with
//! the workload held fixed: an `offered_load` is turned into the arrival
//! rate it gives on the scenario's own fleet, so shrinking the fleet raises
//! the load instead of shrinking the workload with it.

use crate::experiment::run::{self, Overrides, RunError};
use crate::experiment::scenario::Scenario;
use crate::report::stats::{MeanCi, mean_ci95};
use crate::sim::metrics::RunMetrics;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error("{0}")]
    Input(String),
    /// A run failed (its error says whether the input or numasim is at fault).
    #[error("{context}{error}")]
    Run { context: String, error: RunError },
}

impl CapacityError {
    /// Whether numasim itself is at fault (exit 3).
    pub fn is_internal(&self) -> bool {
        matches!(self, CapacityError::Run { error, .. } if error.is_internal())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    AtMost,
    AtLeast,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub metric: String,
    pub bound: Bound,
    pub value: f64,
}

/// The value of a judged registry metric (`None` for other names).
pub fn metric_value(m: &RunMetrics, name: &str) -> Option<f64> {
    crate::report::metrics::judging()
        .find(|x| x.name == name)
        .map(|x| (x.value)(m))
}

impl Target {
    /// `rejection_rate<=0.01`, `mem_alloc_mean>=0.6`.
    pub fn parse(text: &str) -> Result<Target, String> {
        let (metric, bound, value) = if let Some((m, v)) = text.split_once("<=") {
            (m, Bound::AtMost, v)
        } else if let Some((m, v)) = text.split_once(">=") {
            (m, Bound::AtLeast, v)
        } else {
            return Err(format!("`{text}`: expected METRIC<=VALUE or METRIC>=VALUE"));
        };
        let metric = metric.trim();
        if metric_value(&RunMetrics::default(), metric).is_none() {
            let names: Vec<&str> = crate::report::metrics::judging().map(|m| m.name).collect();
            return Err(format!(
                "`{text}`: unknown metric `{metric}`; expected one of {}",
                names.join(", ")
            ));
        }
        let value: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("`{text}`: `{}` is not a number", value.trim()))?;
        Ok(Target {
            metric: metric.to_string(),
            bound,
            value,
        })
    }

    /// Met when the whole confidence interval is on the right side.
    fn met(&self, ci: &MeanCi) -> bool {
        match self.bound {
            Bound::AtMost => ci.high <= self.value,
            Bound::AtLeast => ci.low >= self.value,
        }
    }

    fn show(&self) -> String {
        let op = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        format!("{}{op}{}", self.metric, self.value)
    }
}

/// One fleet size tried.
#[derive(Debug, Clone)]
pub struct Trial {
    pub hosts: usize,
    pub cis: Vec<MeanCi>,
    pub pass: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub policy: String,
    pub seeds: usize,
    pub targets: Vec<Target>,
    /// Sorted by host count.
    pub trials: Vec<Trial>,
    pub answer: usize,
    pub arrivals_per_hour: Option<f64>,
}

/// Bisection over the fleet size for the scenario at `path`, one policy.
pub fn plan(
    path: &Path,
    targets: &[Target],
    policy: Option<&str>,
    max_hosts: Option<usize>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Plan, CapacityError> {
    let e = |error| CapacityError::Run {
        context: String::new(),
        error,
    };
    if targets.is_empty() {
        return Err(CapacityError::Input("give at least one --target".into()));
    }
    let base = run::prepare(path, &Overrides::default()).map_err(e)?;
    let mut scenario: Scenario = base.scenario.clone();
    let names: Vec<String> = scenario.policies.iter().map(|p| p.name()).collect();
    let chosen = match policy {
        None => 0,
        Some(p) => names.iter().position(|n| n == p).ok_or_else(|| {
            CapacityError::Input(format!(
                "policy `{p}`: the scenario's policies are {}",
                names.join(", ")
            ))
        })?,
    };
    scenario.policies = vec![scenario.policies[chosen].clone()];
    let rate = base.synthetic_arrivals_per_hour();
    if let (Some(rate), Some(syn)) = (rate, scenario.workload.synthetic.as_mut()) {
        syn.arrivals_per_hour = Some(rate);
        syn.offered_load = None;
    }
    let start = base.hosts.len();
    let max_hosts = max_hosts.unwrap_or(start * 64).max(1);
    let mut tried: BTreeMap<usize, Trial> = BTreeMap::new();
    let mut evaluate = |n: usize| -> Result<bool, CapacityError> {
        if let Some(t) = tried.get(&n) {
            return Ok(t.pass);
        }
        progress(n);
        let ov = Overrides {
            hosts: Some(n),
            ..Overrides::default()
        };
        let p = run::prepare_scenario(scenario.clone(), path, &ov).map_err(e)?;
        let results = p.run_all(&|| {}).map_err(e)?;
        let mut cis = Vec::new();
        for t in targets {
            let values: Vec<f64> = results
                .iter()
                .filter_map(|r| metric_value(&r.metrics, &t.metric))
                .collect();
            cis.push(mean_ci95(&values).ok_or_else(|| {
                CapacityError::Input(format!("{}: no finite values at {n} hosts", t.metric))
            })?);
        }
        let pass = targets.iter().zip(&cis).all(|(t, ci)| t.met(ci));
        tried.insert(
            n,
            Trial {
                hosts: n,
                cis,
                pass,
            },
        );
        Ok(pass)
    };
    // Bracket: a failing size below (0 stands for "no hosts") and a passing one above.
    let (mut lo, mut hi) = if evaluate(start)? {
        (0, start)
    } else {
        let mut lo = start;
        let mut n = start;
        loop {
            if n >= max_hosts {
                return Err(CapacityError::Input(format!(
                    "no fleet of up to {max_hosts} hosts meets {} (raise --max-hosts)",
                    targets
                        .iter()
                        .map(Target::show)
                        .collect::<Vec<_>>()
                        .join(" and ")
                )));
            }
            n = (n * 2).min(max_hosts);
            if evaluate(n)? {
                break (lo, n);
            }
            lo = n;
        }
    };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if evaluate(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Plan {
        policy: names[chosen].clone(),
        seeds: scenario.seeds.len(),
        targets: targets.to_vec(),
        trials: tried.into_values().collect(),
        answer: hi,
        arrivals_per_hour: rate,
    })
}

impl Plan {
    /// The sizes tried, as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = String::from("| hosts |");
        for t in &self.targets {
            let _ = write!(out, " {} (mean [95% CI]) |", t.metric);
        }
        out.push_str(" meets targets |\n|---:|");
        for _ in &self.targets {
            out.push_str("---|");
        }
        out.push_str(":---:|\n");
        for tr in &self.trials {
            let _ = write!(out, "| {} |", tr.hosts);
            for ci in &tr.cis {
                match ci.interval() {
                    Some((low, high)) => {
                        let _ = write!(out, " {:.4} [{low:.4}, {high:.4}] |", ci.mean);
                    }
                    None => {
                        let _ = write!(out, " {:.4} (one run) |", ci.mean);
                    }
                }
            }
            let _ = writeln!(out, " {} |", if tr.pass { "yes" } else { "no" });
        }
        out
    }

    pub fn csv(&self) -> String {
        let mut out = String::from("hosts,metric,target,n,mean,ci95_low,ci95_high,meets\n");
        for tr in &self.trials {
            for (t, ci) in self.targets.iter().zip(&tr.cis) {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{:.6},{},{}",
                    tr.hosts,
                    t.metric,
                    t.show().replace(&t.metric, ""),
                    ci.n,
                    ci.mean,
                    ci.interval()
                        .map_or_else(|| ",".to_string(), |(l, h)| format!("{l:.6},{h:.6}")),
                    t.met(ci)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse_nonsense() {
        let t = Target::parse("rejection_rate<=0.01").unwrap();
        assert_eq!(
            (t.metric.as_str(), t.bound, t.value),
            ("rejection_rate", Bound::AtMost, 0.01)
        );
        let t = Target::parse(" mem_alloc_mean >= 0.5 ").unwrap();
        assert_eq!(t.bound, Bound::AtLeast);
        assert!(
            Target::parse("rejection_rate<0.01")
                .unwrap_err()
                .contains("expected METRIC<=")
        );
        assert!(
            Target::parse("speed<=1")
                .unwrap_err()
                .contains("unknown metric `speed`")
        );
        assert!(
            Target::parse("rejection_rate<=lots")
                .unwrap_err()
                .contains("not a number")
        );
    }

    #[test]
    fn a_target_is_met_only_by_the_whole_interval() {
        let t = Target::parse("rejection_rate<=0.01").unwrap();
        let ci = |low, high| MeanCi {
            n: 3,
            mean: (low + high) / 2.0,
            std: 0.0,
            low,
            high,
        };
        assert!(t.met(&ci(0.0, 0.01)));
        assert!(!t.met(&ci(0.0, 0.011)));
        let t = Target::parse("mem_alloc_mean>=0.5").unwrap();
        assert!(t.met(&ci(0.5, 0.9)) && !t.met(&ci(0.49, 0.9)));
    }
}

//! `numasim bench`: whole runs at several fleet sizes and guest counts, one
//! policy at a time on one thread: the event loop alone, and what `numasim
//! run` does for the same run (every rejection's reasons, the CSVs
//! written), with events per second, placements per second, fit calls per
//! second and peak memory (of the loop). The figures go to
//! `benches/results/` with the machine they ran on.

use crate::error::Locate;
use crate::experiment::run::{self, Overrides, RunError};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchRow {
    pub hosts: usize,
    pub guests: u64,
    pub policy: String,
    /// The event loop alone (no rejection reasons, no files).
    pub wall_s: f64,
    /// What `numasim run` does for the same run: the loop with every
    /// rejection's reasons, then its CSVs written.
    pub command_s: f64,
    pub events: u64,
    pub placements: u64,
    pub fit_calls: u64,
    /// Peak resident memory during the run (Linux; `None` elsewhere).
    pub peak_rss_mb: Option<f64>,
}

impl BenchRow {
    pub fn us_per_event(&self) -> f64 {
        self.wall_s * 1e6 / self.events.max(1) as f64
    }
}

/// Linux: resets the peak-RSS mark (`VmHWM`) so the next reading is this run's.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs the scenario at each (hosts, guests), each policy (or the one
/// named), first seed, single-threaded; `progress` hears each row.
pub fn bench(
    scenario_file: &Path,
    hosts: &[usize],
    guests: &[u64],
    policy: Option<&str>,
    progress: &mut dyn FnMut(&BenchRow),
) -> Result<Vec<BenchRow>, RunError> {
    let base = run::prepare(scenario_file, &Overrides::default())?;
    if base.scenario.workload.synthetic.is_none() && !guests.is_empty() {
        return Err(
            RunError::input("guest counts need a synthetic workload").in_file(scenario_file)
        );
    }
    let names: Vec<String> = base.scenario.policies.iter().map(|p| p.name()).collect();
    let chosen: Vec<usize> = match policy {
        None => (0..names.len()).collect(),
        Some(p) => vec![names.iter().position(|n| n == p).ok_or_else(|| {
            RunError::input(format!(
                "policy `{p}`: the scenario's policies are {}",
                names.join(", ")
            ))
        })?],
    };
    let default_guests = base
        .scenario
        .workload
        .synthetic
        .as_ref()
        .map_or(0, |s| s.guests);
    let guests = if guests.is_empty() {
        vec![default_guests]
    } else {
        guests.to_vec()
    };
    let seed = base.scenario.seeds[0];
    let base_scenario = base.scenario.clone();
    // The scenario's own fleet is not needed any more: out of the memory figures.
    drop(base);
    let mut rows = Vec::new();
    for &h in hosts {
        for &g in &guests {
            let mut scenario = base_scenario.clone();
            if let Some(s) = scenario.workload.synthetic.as_mut() {
                s.guests = g;
            }
            let ov = Overrides {
                hosts: Some(h),
                ..Overrides::default()
            };
            let mut prepared = run::prepare_scenario(scenario, scenario_file, &ov)?;
            for &p in &chosen {
                prepared.explain_rejections = true;
                let start = Instant::now();
                let r = prepared.run_one(p, seed)?;
                let out = tempfile::tempdir().map_err(RunError::input)?;
                // What `numasim run` writes, its report included.
                let from = crate::report::html::Provenance {
                    scenario_text: "",
                    command_line: "numasim bench",
                };
                crate::report::summary::write_run(
                    out.path(),
                    &prepared,
                    std::slice::from_ref(&r),
                    Some(&from),
                )?;
                let command_s = start.elapsed().as_secs_f64();
                drop(r);
                prepared.explain_rejections = false;
                reset_peak_rss();
                let start = Instant::now();
                let r = prepared.run_one(p, seed)?;
                let row = BenchRow {
                    hosts: prepared.hosts.len(),
                    guests: g,
                    policy: r.policy.clone(),
                    wall_s: start.elapsed().as_secs_f64(),
                    command_s,
                    events: r.events,
                    placements: r.placements,
                    fit_calls: r.metrics.fit_calls,
                    peak_rss_mb: peak_rss_mb(),
                };
                progress(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// The rows as a Markdown table.
pub fn table(rows: &[BenchRow]) -> String {
    let mut out = String::from(
        "| hosts | guests | policy | loop (s) | run with outputs (s) | run / loop | events | events/s | µs/event | placements/s | fit calls/s | peak RSS (MB) |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let per_s = |n: u64| n as f64 / r.wall_s.max(1e-9);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.0} | {:.0} | {} |",
            r.hosts,
            r.guests,
            r.policy,
            r.wall_s,
            r.command_s,
            r.command_s / r.wall_s.max(1e-9),
            r.events,
            per_s(r.events),
            r.us_per_event(),
            per_s(r.placements),
            per_s(r.fit_calls),
            r.peak_rss_mb
                .map_or("n/a".to_string(), |m| format!("{m:.0}")),
        );
    }
    out
}

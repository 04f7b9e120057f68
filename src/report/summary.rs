//! What `numasim run` writes and prints: `summary.csv`, `timeseries.csv`,
//! `rejections.csv`, `rejections_by_flavor.csv` and the comparison table.

use crate::error::Locate;
use crate::experiment::run::{Prepared, RunError, RunResult};
use crate::sim::metrics::RunMetrics;
use std::fmt::Write as _;

pub const SUMMARY_HEADER: &str = "scenario,policy,seed,guests,placed,rejected,rejection_rate,cpu_alloc_mean,mem_alloc_mean,hosts_in_use_mean,spanning_guests,remote_access_fraction,mean_latency_factor,p95_latency_factor,oom_kills,errors,skipped_rows,fit_calls,cost_model,spilled_guests,spilled_gb,late_oom_kills,late_spilled_guests,late_spilled_gb,mean_time_to_late_kill_s,remote_time_weighted,latency_time_weighted,numad_moves,migrated_gb,migration_s";

pub fn summary_csv(scenario: &str, cost_model: &str, results: &[RunResult]) -> String {
    let mut out = String::from(SUMMARY_HEADER);
    out.push('\n');
    for r in results {
        let m = &r.metrics;
        let _ = writeln!(
            out,
            "{scenario},{},{},{},{},{},{:.6},{:.6},{:.6},{:.3},{},{:.6},{:.6},{:.6},{},{},{},{},{cost_model},{},{:.3},{},{},{:.3},{:.1},{:.6},{:.6},{},{:.3},{:.1}",
            r.policy,
            r.seed,
            m.guests,
            m.placed,
            m.rejected,
            m.rejection_rate(),
            m.cpu_alloc_mean,
            m.mem_alloc_mean,
            m.hosts_in_use_mean,
            m.spanning_guests,
            m.remote_access_fraction,
            m.mean_latency_factor,
            m.p95_latency_factor,
            m.oom_kills,
            m.errors,
            r.skipped_rows,
            m.fit_calls,
            m.spilled_guests,
            m.spilled_mb / 1024.0,
            m.late_oom_kills,
            m.late_spilled_guests,
            m.late_spilled_mb / 1024.0,
            m.mean_time_to_late_kill_s,
            m.remote_time_weighted,
            m.latency_time_weighted,
            m.numad_moves,
            m.migrated_mb / 1024.0,
            m.migration_s,
        );
    }
    out
}

pub fn timeseries_csv(results: &[RunResult]) -> String {
    let mut out =
        String::from("policy,seed,t_s,running,cpu_alloc,mem_alloc,hosts_in_use,placed,rejected\n");
    for r in results {
        for s in &r.samples {
            let _ = writeln!(
                out,
                "{},{},{:.1},{},{:.6},{:.6},{},{},{}",
                r.policy,
                r.seed,
                s.t,
                s.running,
                s.cpu_alloc,
                s.mem_alloc,
                s.hosts_in_use,
                s.placed,
                s.rejected
            );
        }
    }
    out
}

/// One row per rejected (or at once OOM-killed) guest, with the reason
/// aggregated over the hosts.
pub fn rejections_csv(results: &[RunResult], prepared: &Prepared) -> Result<String, RunError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| RunError::input(format!("rejections.csv: {e}"));
    w.write_record(["policy", "seed", "guest", "arrival_s", "flavor", "reason"])
        .map_err(io)?;
    for r in results {
        for x in &r.rejections {
            w.write_record([
                r.policy.as_str(),
                &r.seed.to_string(),
                &x.guest,
                &format!("{:.3}", x.arrival_s),
                &prepared.catalog.flavors[x.flavor].name,
                &crate::report::words::rejection(&x.why, |h| prepared.hosts[h].name.as_str()),
            ])
            .map_err(io)?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| RunError::input(format!("rejections.csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| RunError::input(format!("rejections.csv: {e}")))
}

pub fn rejections_by_flavor_csv(results: &[RunResult]) -> String {
    let mut out = String::from("policy,seed,flavor,rejected\n");
    for r in results {
        for (f, n) in &r.metrics.rejected_by_flavor {
            let _ = writeln!(out, "{},{},{f},{n}", r.policy, r.seed);
        }
    }
    out
}

/// Policies side by side: means over seeds.
pub fn comparison_table(results: &[RunResult]) -> String {
    let mut policies: Vec<&str> = Vec::new();
    for r in results {
        if !policies.contains(&r.policy.as_str()) {
            policies.push(&r.policy);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<30} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>9} {:>8} {:>7} {:>9}",
        "policy",
        "seeds",
        "rejected",
        "cpu",
        "mem",
        "spanning",
        "remote",
        "latency",
        "p95 lat",
        "oom",
        "late oom",
        "remote~t",
        "moves",
        "migr GB"
    );
    for p in policies {
        let rs: Vec<&RunResult> = results.iter().filter(|r| r.policy == p).collect();
        let n = rs.len() as f64;
        let mean =
            |f: &dyn Fn(&RunMetrics) -> f64| rs.iter().map(|r| f(&r.metrics)).sum::<f64>() / n;
        let _ = writeln!(
            out,
            "{:<30} {:>5} {:>8.2}% {:>7.1}% {:>7.1}% {:>8.1} {:>7.1}% {:>8.3} {:>8.3} {:>6.1} {:>9.1} {:>7.1}% {:>7.1} {:>9.1}",
            p,
            rs.len(),
            100.0 * mean(&|m| m.rejection_rate()),
            100.0 * mean(&|m| m.cpu_alloc_mean),
            100.0 * mean(&|m| m.mem_alloc_mean),
            mean(&|m| m.spanning_guests as f64),
            100.0 * mean(&|m| m.remote_access_fraction),
            mean(&|m| m.mean_latency_factor),
            mean(&|m| m.p95_latency_factor),
            mean(&|m| m.oom_kills as f64),
            mean(&|m| m.late_oom_kills as f64),
            100.0 * mean(&|m| m.remote_time_weighted),
            mean(&|m| m.numad_moves as f64),
            mean(&|m| m.migrated_mb / 1024.0),
        );
    }
    out
}

/// Writes `numasim run`'s four CSVs into `out` (created if needed), each
/// atomically.
pub fn write_run(
    out: &std::path::Path,
    prepared: &Prepared,
    results: &[RunResult],
) -> Result<(), RunError> {
    use super::output::write_atomically;
    let io = |e: super::output::OutputError| RunError::input(e);
    std::fs::create_dir_all(out)
        .map_err(|e| RunError::input(format!("cannot create: {e}")).in_file(out))?;
    let cal = prepared
        .scenario
        .cost
        .calibration()
        .map_err(RunError::input)?;
    let cost_model = if cal.is_default() {
        "slit/10"
    } else {
        "calibrated"
    };
    let name = &prepared.scenario.name;
    write_atomically(
        &out.join("summary.csv"),
        summary_csv(name, cost_model, results).as_bytes(),
    )
    .map_err(io)?;
    write_atomically(
        &out.join("timeseries.csv"),
        timeseries_csv(results).as_bytes(),
    )
    .map_err(io)?;
    write_atomically(
        &out.join("rejections.csv"),
        rejections_csv(results, prepared)?.as_bytes(),
    )
    .map_err(io)?;
    write_atomically(
        &out.join("rejections_by_flavor.csv"),
        rejections_by_flavor_csv(results).as_bytes(),
    )
    .map_err(io)?;
    Ok(())
}

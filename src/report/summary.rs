//! What `numasim run` writes and prints: `summary.csv`, `timeseries.csv`,
//! `rejections.csv`, `rejections_by_flavor.csv` and the comparison table.

use super::metrics::{METRICS, Metric, Shown, legend};
use crate::error::Locate;
use crate::experiment::run::{Prepared, RunError, RunResult};
use std::fmt::Write as _;

/// One row per (policy, seed): the run's identity, then every metric of
/// the registry (`report::metrics`) in its order and precision.
pub fn summary_csv(scenario: &str, cost_model: &str, results: &[RunResult]) -> String {
    let mut out = String::from("scenario,policy,seed,cost_model");
    for m in METRICS {
        out.push(',');
        out.push_str(m.name);
    }
    out.push('\n');
    for r in results {
        let mut fields = vec![
            scenario.to_string(),
            r.policy.clone(),
            r.seed.to_string(),
            cost_model.to_string(),
        ];
        fields.extend(METRICS.iter().map(|m| m.format(&r.metrics)));
        out.push_str(&csv_line(&fields));
    }
    out
}

/// One CSV line, fields quoted where they need it.
pub fn csv_line(fields: &[String]) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    w.write_record(fields).expect("writing to memory");
    String::from_utf8(w.into_inner().expect("memory")).expect("utf-8 in, utf-8 out")
}

pub fn timeseries_csv(results: &[RunResult]) -> String {
    let mut out = String::from(
        "policy,seed,t_s,running,cpu_alloc,mem_alloc,hosts_in_use,placed,rejected,stranded_cpu,stranded_mem,stranded_hosts\n",
    );
    for r in results {
        for s in &r.samples {
            let _ = writeln!(
                out,
                "{},{},{:.1},{},{:.6},{:.6},{},{},{},{:.6},{:.6},{}",
                r.policy,
                r.seed,
                s.t,
                s.running,
                s.cpu_alloc,
                s.mem_alloc,
                s.hosts_in_use,
                s.placed,
                s.rejected,
                s.stranded_cpu,
                s.stranded_mem,
                s.stranded_hosts
            );
        }
    }
    out
}

/// Per host of each run: how often it took no flavor of the catalog
/// (at the window's sampling instants) and the free CPUs and memory it
/// stranded, as means over all the instants; summed over the hosts, the
/// means are the fleet's `stranded_cpu_mean` / `stranded_mem_mean` times
/// its capacity.
pub fn stranded_by_host_csv(results: &[RunResult], prepared: &Prepared) -> String {
    let mut out = String::from(
        "policy,seed,host,window_samples,stranded_samples,stranded_share,stranded_cpus_mean,stranded_mem_mb_mean\n",
    );
    for r in results {
        let n = r.window_samples.max(1) as f64;
        for (h, st) in prepared.hosts.iter().zip(&r.stranded_by_host) {
            let _ = writeln!(
                out,
                "{},{},{},{},{},{:.6},{:.3},{:.1}",
                r.policy,
                r.seed,
                h.name,
                r.window_samples,
                st.samples,
                st.samples as f64 / n,
                st.cpus as f64 / n,
                st.mem_mb as f64 / n,
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

/// Policies side by side: means over seeds of the registry's table
/// columns, then a legend of the short column names.
pub fn comparison_table(results: &[RunResult]) -> String {
    let policies = super::verdict::by_policy(results);
    let shown: Vec<&Metric> = METRICS.iter().filter(|m| m.shown != Shown::No).collect();
    let width = |m: &Metric| m.short.len().max(8);
    let name_width = policies
        .iter()
        .map(|p| p.0.len())
        .max()
        .unwrap_or(0)
        .max(30);
    let mut out = format!("{:<name_width$} {:>5}", "policy", "seeds");
    for m in &shown {
        let _ = write!(out, " {:>w$}", m.short, w = width(m));
    }
    out.push('\n');
    for (p, rs) in policies {
        let _ = write!(out, "{:<name_width$} {:>5}", p, rs.len());
        for m in &shown {
            let mean = rs.iter().map(|r| (m.value)(&r.metrics)).sum::<f64>() / rs.len() as f64;
            let cell = super::words::metric_value(m, mean);
            let _ = write!(out, " {:>w$}", cell, w = width(m));
        }
        out.push('\n');
    }
    out.push_str(&legend());
    out.push('\n');
    out
}

/// Writes `numasim run`'s four CSVs into `out` (created if needed), each
/// atomically.
pub fn write_run(
    out: &std::path::Path,
    prepared: &Prepared,
    results: &[RunResult],
    report: Option<&super::html::Provenance>,
) -> Result<(), RunError> {
    use super::output::write_atomically;
    let io = |e: super::output::OutputError| RunError::input(e);
    super::output::output_dir(out).map_err(io)?;
    // The set of files is complete only with the marker, written last; an
    // earlier run's files go first, so a kill leaves no mix of two runs.
    for name in std::iter::once(COMPLETE).chain(RUN_FILES) {
        match std::fs::remove_file(out.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(
                    RunError::input(format!("cannot replace: {e}")).in_file(&out.join(name))
                );
            }
            _ => {}
        }
    }
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
    write_atomically(
        &out.join("stranded_by_host.csv"),
        stranded_by_host_csv(results, prepared).as_bytes(),
    )
    .map_err(io)?;
    let mut written: Vec<&str> = RUN_FILES[..RUN_FILES.len() - 1].to_vec();
    if let Some(from) = report {
        let html = super::html::run_report(prepared, results, from)
            .map_err(|e| RunError::internal(format!("report.html: {e}")))?;
        write_atomically(&out.join("report.html"), html.as_bytes()).map_err(io)?;
        written.push("report.html");
    }
    write_atomically(
        &out.join(COMPLETE),
        format!("{}\n", written.join("\n")).as_bytes(),
    )
    .map_err(io)?;
    Ok(())
}

/// What `numasim run` writes (the report last, unless `--no-report`), and
/// the marker written after them, listing them.
pub const RUN_FILES: [&str; 6] = [
    "summary.csv",
    "timeseries.csv",
    "rejections.csv",
    "rejections_by_flavor.csv",
    "stranded_by_host.csv",
    "report.html",
];
pub const COMPLETE: &str = "numasim-run.complete";

/// Whether `dir` holds a complete run's results (its marker is there).
pub fn is_complete(dir: &std::path::Path) -> bool {
    dir.join(COMPLETE).is_file()
}

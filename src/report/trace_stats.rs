//! `numasim trace stats` for people: the text report and the demand charts.

use crate::workload::stats::{TraceStats, hosts_needed};
use std::fmt::Write as _;

/// Draws concurrent vCPUs and memory per hour: `BASE-vcpus` and
/// `BASE-memory`, PNG and SVG each.
pub fn plot_demand(
    s: &TraceStats,
    name: &str,
    base: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>, crate::report::plot::PlotError> {
    use crate::report::plot::{Chart, Legend, Series, write_chart};
    let stem = base
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| "demand".into());
    let mut written = Vec::new();
    for (what, unit, pick, scale) in [
        ("vcpus", "concurrent vCPUs (hourly peak)", 1usize, 1.0),
        (
            "memory",
            "concurrent memory, GiB (hourly peak)",
            2usize,
            1.0 / 1024.0,
        ),
    ] {
        let points = s
            .demand_by_hour
            .iter()
            .map(|&(h, v, m)| {
                (
                    h as f64,
                    if pick == 1 { v as f64 } else { m as f64 } * scale,
                )
            })
            .collect();
        let chart = Chart {
            title: format!("{name}: concurrent demand over time"),
            x_label: "trace time (hours)".into(),
            y_label: unit.into(),
            series: vec![Series {
                label: if pick == 1 {
                    "vCPUs".into()
                } else {
                    "memory".into()
                },
                points,
                band: Vec::new(),
            }],
            y_from_zero: true,
            legend: Legend::UpperRight,
        };
        written.extend(write_chart(
            &chart,
            &base.with_file_name(format!("{stem}-{what}")),
        )?);
    }
    Ok(written)
}

pub fn text(s: &TraceStats, host: Option<(&str, i64, i64)>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "guests: {} over {:.1} h ({} censored: no departure)",
        s.guests,
        s.span_s / 3600.0,
        s.censored
    );
    let _ = writeln!(
        o,
        "arrivals per hour: mean {:.1}, peak {}",
        s.arrivals_per_hour_mean, s.arrivals_per_hour_peak
    );
    let _ = writeln!(
        o,
        "lifetime (uncensored): mean {:.0} s, p50 {:.0} s, p90 {:.0} s, p99 {:.0} s",
        s.lifetime_mean_s, s.lifetime_p50_s, s.lifetime_p90_s, s.lifetime_p99_s
    );
    let _ = writeln!(
        o,
        "concurrent vCPUs: peak {}, mean {:.1}",
        s.peak_vcpus, s.mean_vcpus
    );
    let _ = writeln!(
        o,
        "concurrent memory: peak {} MB, mean {:.0} MB",
        s.peak_memory_mb, s.mean_memory_mb
    );
    let mut mix: Vec<(&String, &u64)> = s.flavor_mix.iter().collect();
    mix.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let _ = writeln!(o, "flavor mix:");
    const SHOWN: usize = 20;
    for (name, n) in mix.iter().take(SHOWN) {
        let _ = writeln!(
            o,
            "  {name:<24} {n:>8} {:>6.1}%",
            100.0 * **n as f64 / s.guests.max(1) as f64
        );
    }
    if mix.len() > SHOWN {
        let rest: u64 = mix.iter().skip(SHOWN).map(|(_, n)| **n).sum();
        let _ = writeln!(
            o,
            "  ... {} more flavors      {rest:>8} {:>6.1}% (all of them: --format json)",
            mix.len() - SHOWN,
            100.0 * rest as f64 / s.guests.max(1) as f64
        );
    }
    if let Some((name, cpus, mem)) = host {
        let (by_cpu, by_mem) = hosts_needed(s, cpus, mem);
        let _ = writeln!(
            o,
            "hosts of `{name}` ({cpus} CPUs, {mem} MB) the peak needs: {} (CPU: {by_cpu}, memory: {by_mem}; no overcommit, perfect packing)",
            by_cpu.max(by_mem)
        );
    }
    o
}

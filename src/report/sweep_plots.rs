//! The charts of a sweep, drawn from its run records (so shards merged and a
//! single run draw the same charts): rejection rate, remote-access fraction
//! and latency factor against the x parameter with 95% bands; memory
//! allocated over time and the CDF of per-guest latency factors at the
//! largest x.

use crate::experiment::sweep::{Manifest, PlotSpec, RunRecord, SweepError, metric_column};
use crate::report::plot::{Chart, Legend, Series, write_chart};
use crate::report::stats::mean_ci95;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A series: every record that differs only in x and seed.
struct Group {
    label: String,
    /// x -> record indices.
    by_x: BTreeMap<OrdF64, Vec<usize>>,
}

/// x values and times, totally ordered.
use crate::sim::engine::OrderedTime as OrdF64;

fn short(param: &str) -> &str {
    param.rsplit('.').next().unwrap_or(param)
}

/// The x parameter: the one asked for, or the first whose values are all numbers.
fn x_param(manifest: &Manifest, records: &[RunRecord], plot: &PlotSpec) -> Option<usize> {
    let numeric = |i: usize| records.iter().all(|r| r.params[i].parse::<f64>().is_ok());
    match &plot.x {
        Some(x) => manifest
            .params
            .iter()
            .position(|p| p == x)
            .filter(|&i| numeric(i)),
        None => (0..manifest.params.len()).find(|&i| numeric(i)),
    }
}

fn series_groups(manifest: &Manifest, records: &[RunRecord], x: Option<usize>) -> Vec<Group> {
    let mut groups: Vec<(String, Group)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut parts = vec![r.policy.clone()];
        for (pi, p) in manifest.params.iter().enumerate() {
            if Some(pi) != x && !p.starts_with("policy.") {
                parts.push(format!("{}={}", short(p), r.params[pi]));
            }
        }
        let key = parts.join(", ");
        let xv = x.and_then(|xi| r.params[xi].parse().ok()).unwrap_or(0.0);
        let pos = match groups.iter().position(|g| g.0 == key) {
            Some(p) => p,
            None => {
                groups.push((
                    key.clone(),
                    Group {
                        label: key,
                        by_x: BTreeMap::new(),
                    },
                ));
                groups.len() - 1
            }
        };
        groups[pos].1.by_x.entry(OrdF64(xv)).or_default().push(i);
    }
    groups.into_iter().map(|g| g.1).collect()
}

fn metric(records: &[RunRecord], idx: &[usize], name: &str) -> Vec<f64> {
    let col = metric_column(name).expect("a registry metric");
    idx.iter()
        .filter_map(|&i| records[i].metrics.get(col)?.parse().ok())
        .collect()
}

pub fn draw_all(
    out: &Path,
    manifest: &Manifest,
    records: &[RunRecord],
    plot: &PlotSpec,
) -> Result<Vec<PathBuf>, SweepError> {
    let x = x_param(manifest, records, plot);
    let groups = series_groups(manifest, records, x);
    let draw = |chart: &Chart, file: &str| {
        write_chart(chart, &out.join(file)).map_err(|e| SweepError::Input(e.to_string()))
    };
    let mut written = Vec::new();
    let name = &manifest.name;
    if let Some(xi) = x {
        let x_label = plot
            .x_label
            .clone()
            .unwrap_or_else(|| short(&manifest.params[xi]).replace('_', " "));
        for (metric_name, scale, file) in [
            ("rejection_rate", 100.0, "rejection_vs_load"),
            ("remote_access_fraction", 100.0, "remote_vs_load"),
            ("mean_latency_factor", 1.0, "latency_vs_load"),
        ] {
            // Labels from the metric registry: its name in words and unit.
            let m = crate::report::metrics::find(metric_name).expect("a registry metric");
            let what = m.name.replace('_', " ");
            let unit = if scale == 100.0 {
                m.unit.replace("fraction of ", "% of ")
            } else {
                m.unit.to_string()
            };
            let y_label = format!("{what} ({unit})");
            let series = groups
                .iter()
                .map(|g| {
                    let mut points = Vec::new();
                    let mut band = Vec::new();
                    for (xv, idx) in &g.by_x {
                        if let Some(ci) = mean_ci95(&metric(records, idx, metric_name)) {
                            points.push((xv.0, ci.mean * scale));
                            if let Some((low, high)) = ci.interval() {
                                band.push((xv.0, low * scale, high * scale));
                            }
                        }
                    }
                    Series {
                        label: g.label.clone(),
                        points,
                        band,
                    }
                })
                .collect();
            let chart = Chart {
                title: format!(
                    "{name}: {what} vs {} (mean, 95% CI)",
                    short(&manifest.params[xi]).replace('_', " ")
                ),
                x_label: x_label.clone(),
                y_label,
                series,
                y_from_zero: scale > 1.0,
                legend: Legend::UpperLeft,
            };
            written.extend(draw(&chart, file)?);
        }
    }
    // At the largest x (the most loaded point): utilisation over time and
    // the latency CDF, averaged over seeds.
    let at_max: Vec<(&str, &Vec<usize>)> = groups
        .iter()
        .filter_map(|g| {
            g.by_x
                .iter()
                .next_back()
                .map(|(_, idx)| (g.label.as_str(), idx))
        })
        .collect();
    let where_ = match x {
        Some(xi) => {
            let max = groups
                .iter()
                .filter_map(|g| g.by_x.keys().next_back())
                .map(|v| v.0)
                .fold(f64::NEG_INFINITY, f64::max);
            format!(" at {} = {max}", short(&manifest.params[xi]))
        }
        None => String::new(),
    };
    let time_series = at_max
        .iter()
        .map(|(label, idx)| {
            let mut sums: BTreeMap<OrdF64, (f64, usize)> = BTreeMap::new();
            for &i in idx.iter() {
                for row in &records[i].timeseries {
                    let f: Vec<&str> = row.split(',').collect();
                    if let (Some(Ok(t)), Some(Ok(mem))) = (
                        f.first().map(|v| v.parse::<f64>()),
                        f.get(3).map(|v| v.parse::<f64>()),
                    ) {
                        let e = sums.entry(OrdF64(t / 3600.0)).or_insert((0.0, 0));
                        e.0 += mem * 100.0;
                        e.1 += 1;
                    }
                }
            }
            Series {
                label: label.to_string(),
                points: sums
                    .iter()
                    .map(|(t, (s, n))| (t.0, s / *n as f64))
                    .collect(),
                band: Vec::new(),
            }
        })
        .collect();
    written.extend(draw(
        &Chart {
            title: format!("{name}: memory allocated over time{where_} (mean over seeds)"),
            x_label: "simulated time (hours)".into(),
            y_label: "fleet memory allocated (%)".into(),
            series: time_series,
            y_from_zero: true,
            legend: Legend::LowerRight,
        },
        "utilisation_over_time",
    )?);
    let cdf = at_max
        .iter()
        .map(|(label, idx)| {
            let runs: Vec<Vec<f64>> = idx
                .iter()
                .map(|&i| {
                    records[i]
                        .latency_quantiles
                        .iter()
                        .filter_map(|q| q.parse().ok())
                        .collect()
                })
                .filter(|q: &Vec<f64>| !q.is_empty())
                .collect();
            let steps = runs.first().map_or(0, Vec::len);
            let points = (0..steps)
                .map(|k| {
                    let mean = runs.iter().map(|q| q[k]).sum::<f64>() / runs.len() as f64;
                    (mean, k as f64 / (steps - 1).max(1) as f64)
                })
                .collect();
            Series {
                label: label.to_string(),
                points,
                band: Vec::new(),
            }
        })
        .collect();
    written.extend(draw(
        &Chart {
            title: format!("{name}: per-guest latency factor CDF{where_}"),
            x_label: "memory latency factor (× local access)".into(),
            y_label: "fraction of guests at or below".into(),
            series: cdf,
            y_from_zero: true,
            legend: Legend::LowerRight,
        },
        "latency_cdf",
    )?);
    Ok(written)
}

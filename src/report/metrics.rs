//! The metric registry: every metric numasim reports, defined once — its
//! name (the CSV column), unit, definition, how it is aggregated, which way
//! is worse, how it is printed, and how it is read from a run. `summary.csv`,
//! the sweep CSVs and charts, `capacity` targets, `check`, the terminal
//! table and its legend, and `numasim metrics` all come from this list.

use crate::sim::metrics::RunMetrics;
use std::fmt::Write as _;

/// How a metric is made from a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Guests (or events) counted in the measured window.
    Count,
    /// A count divided by the guests of the window.
    Rate,
    /// Averaged over time in the window (weighted by how long each state lasted).
    TimeWeighted,
    /// Averaged over the guests placed in the window, at placement.
    PerGuest,
    /// Summed over the window.
    Total,
    /// Describes the run, not the policy (work done, input skipped).
    Run,
}

impl Aggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Count => "count",
            Aggregation::Rate => "rate",
            Aggregation::TimeWeighted => "time-weighted mean",
            Aggregation::PerGuest => "mean over placed guests",
            Aggregation::Total => "total",
            Aggregation::Run => "about the run",
        }
    }
}

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worse {
    Up,
    Down,
    /// Neither: it describes, it does not judge (moves, migrated memory).
    Neither,
}

/// How the terminal table shows a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Not in the table.
    No,
    /// As a percentage with this many decimals.
    Percent(usize),
    /// As a number with this many decimals.
    Fixed(usize),
}

#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The CSV column and the name `capacity --target` and `check` use.
    pub name: &'static str,
    /// The terminal table's short column title.
    pub short: &'static str,
    pub unit: &'static str,
    pub definition: &'static str,
    pub aggregation: Aggregation,
    pub worse: Worse,
    /// Decimals in the CSVs (0: an integer).
    pub decimals: usize,
    pub shown: Shown,
    /// It measures the policy (sweeps give it a confidence interval;
    /// capacity targets and checks may name it), rather than describing the
    /// run (guests, outcome counts whose rates are listed, work done).
    pub judged: bool,
    pub value: fn(&RunMetrics) -> f64,
}

impl Metric {
    /// The value as the CSVs write it.
    pub fn format(&self, m: &RunMetrics) -> String {
        format!("{:.*}", self.decimals, (self.value)(m))
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Every metric, in the order of the CSV columns.
pub const METRICS: &[Metric] = &[
    Metric {
        name: "guests",
        short: "guests",
        unit: "guests",
        definition: "guests that arrived in the measured window (warmup_s to the end): placed + rejected + killed_at_start",
        aggregation: Aggregation::Run,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::No,
        judged: false,
        value: |m| m.guests as f64,
    },
    Metric {
        name: "placed",
        short: "placed",
        unit: "guests",
        definition: "guests placed on a host and kept at placement",
        aggregation: Aggregation::Count,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::No,
        judged: false,
        value: |m| m.placed as f64,
    },
    Metric {
        name: "rejected",
        short: "rejected#",
        unit: "guests",
        definition: "guests no host took: the scheduler refused them, or the request was invalid",
        aggregation: Aggregation::Count,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::No,
        judged: false,
        value: |m| m.rejected as f64,
    },
    Metric {
        name: "killed_at_start",
        short: "killed",
        unit: "guests",
        definition: "guests placed, then OOM-killed at once: their pages did not fit their nodes (strict mode)",
        aggregation: Aggregation::Count,
        worse: Worse::Up,
        decimals: 0,
        shown: Shown::No,
        judged: true,
        value: |m| m.killed_at_start as f64,
    },
    Metric {
        name: "rejection_rate",
        short: "rejected",
        unit: "fraction of guests",
        definition: "rejected / guests",
        aggregation: Aggregation::Rate,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::Percent(2),
        judged: true,
        value: |m| ratio(m.rejected, m.guests),
    },
    Metric {
        name: "killed_at_start_rate",
        short: "killed",
        unit: "fraction of guests",
        definition: "killed_at_start / guests",
        aggregation: Aggregation::Rate,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::Percent(2),
        judged: true,
        value: |m| ratio(m.killed_at_start, m.guests),
    },
    Metric {
        name: "cpu_alloc_mean",
        short: "cpu",
        unit: "fraction of physical CPUs",
        definition: "claimed vCPUs and pinned pCPUs over the fleet's physical CPUs (each counted once); above 1 with CPU overcommit",
        aggregation: Aggregation::TimeWeighted,
        worse: Worse::Down,
        decimals: 6,
        shown: Shown::Percent(1),
        judged: true,
        value: |m| m.cpu_alloc_mean,
    },
    Metric {
        name: "mem_alloc_mean",
        short: "mem",
        unit: "fraction of memory",
        definition: "claimed guest memory over the fleet's memory offered to guests",
        aggregation: Aggregation::TimeWeighted,
        worse: Worse::Down,
        decimals: 6,
        shown: Shown::Percent(1),
        judged: true,
        value: |m| m.mem_alloc_mean,
    },
    Metric {
        name: "hosts_in_use_mean",
        short: "hosts",
        unit: "hosts",
        definition: "hosts with at least one guest",
        aggregation: Aggregation::TimeWeighted,
        worse: Worse::Neither,
        decimals: 3,
        shown: Shown::No,
        judged: true,
        value: |m| m.hosts_in_use_mean,
    },
    Metric {
        name: "stranded_cpu_mean",
        short: "strand cpu",
        unit: "fraction of physical CPUs",
        definition: "free CPUs on hosts that can take no flavor of the catalog (what is free sits on the wrong cells or beside an exhausted resource), sampled at timeseries_interval_s",
        aggregation: Aggregation::TimeWeighted,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::Percent(1),
        judged: true,
        value: |m| m.stranded_cpu_mean,
    },
    Metric {
        name: "stranded_mem_mean",
        short: "strand mem",
        unit: "fraction of memory",
        definition: "free memory on hosts that can take no flavor of the catalog, sampled at timeseries_interval_s",
        aggregation: Aggregation::TimeWeighted,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::Percent(1),
        judged: true,
        value: |m| m.stranded_mem_mean,
    },
    Metric {
        name: "spanning_guests",
        short: "spanning",
        unit: "guests",
        definition: "placed guests whose vCPUs or pages are on more than one host cell",
        aggregation: Aggregation::Count,
        worse: Worse::Up,
        decimals: 0,
        shown: Shown::Fixed(1),
        judged: true,
        value: |m| m.spanning_guests as f64,
    },
    Metric {
        name: "remote_access_fraction",
        short: "remote",
        unit: "fraction of accesses",
        definition: "memory accesses to a remote cell, from where a guest's vCPUs run and its pages sit at placement",
        aggregation: Aggregation::PerGuest,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::Percent(1),
        judged: true,
        value: |m| m.remote_access_fraction,
    },
    Metric {
        name: "mean_latency_factor",
        short: "latency",
        unit: "x local latency",
        definition: "mean memory access latency relative to local, priced from SLIT distances (or a calibration table)",
        aggregation: Aggregation::PerGuest,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::Fixed(3),
        judged: true,
        value: |m| m.mean_latency_factor,
    },
    Metric {
        name: "p95_latency_factor",
        short: "p95 lat",
        unit: "x local latency",
        definition: "95th percentile over placed guests of the latency factor",
        aggregation: Aggregation::PerGuest,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::Fixed(3),
        judged: true,
        value: |m| m.p95_latency_factor,
    },
    Metric {
        name: "spilled_guests",
        short: "spilled",
        unit: "guests",
        definition: "NUMA guests with pages outside their own host cells at placement (preferred spills, interleave of one-cell guests)",
        aggregation: Aggregation::Count,
        worse: Worse::Up,
        decimals: 0,
        shown: Shown::No,
        judged: true,
        value: |m| m.spilled_guests as f64,
    },
    Metric {
        name: "spilled_gb",
        short: "spilled GB",
        unit: "GiB",
        definition: "memory of those guests outside their own host cells",
        aggregation: Aggregation::Total,
        worse: Worse::Up,
        decimals: 3,
        shown: Shown::No,
        judged: true,
        value: |m| m.spilled_mb / 1024.0,
    },
    Metric {
        name: "late_oom_kills",
        short: "late oom",
        unit: "guests",
        definition: "running guests OOM-killed when their memory grew (flavors.growth) and the new pages found no room",
        aggregation: Aggregation::Count,
        worse: Worse::Up,
        decimals: 0,
        shown: Shown::Fixed(1),
        judged: true,
        value: |m| m.late_oom_kills as f64,
    },
    Metric {
        name: "late_spilled_guests",
        short: "late spilled",
        unit: "guests",
        definition: "running guests whose grown memory landed outside their own cells",
        aggregation: Aggregation::Count,
        worse: Worse::Up,
        decimals: 0,
        shown: Shown::No,
        judged: true,
        value: |m| m.late_spilled_guests as f64,
    },
    Metric {
        name: "late_spilled_gb",
        short: "late spilled GB",
        unit: "GiB",
        definition: "grown memory that landed outside its guests' own cells",
        aggregation: Aggregation::Total,
        worse: Worse::Up,
        decimals: 3,
        shown: Shown::No,
        judged: true,
        value: |m| m.late_spilled_mb / 1024.0,
    },
    Metric {
        name: "mean_time_to_late_kill_s",
        short: "age at kill",
        unit: "s",
        definition: "mean age of the guests at their late OOM kill",
        aggregation: Aggregation::PerGuest,
        worse: Worse::Neither,
        decimals: 1,
        shown: Shown::No,
        judged: true,
        value: |m| m.mean_time_to_late_kill_s,
    },
    Metric {
        name: "remote_time_weighted",
        short: "remote~t",
        unit: "fraction of accesses",
        definition: "remote access fraction of the running guests, each with its current cost, averaged over running guest-time (sees numad's moves and autonuma's migrations)",
        aggregation: Aggregation::TimeWeighted,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::Percent(1),
        judged: true,
        value: |m| m.remote_time_weighted,
    },
    Metric {
        name: "latency_time_weighted",
        short: "latency~t",
        unit: "x local latency",
        definition: "latency factor of the running guests averaged over running guest-time",
        aggregation: Aggregation::TimeWeighted,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::No,
        judged: true,
        value: |m| m.latency_time_weighted,
    },
    Metric {
        name: "pci_devices",
        short: "pci dev",
        unit: "devices",
        definition: "PCI devices (pci_passthrough:alias) given to the guests placed in the window",
        aggregation: Aggregation::Count,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::No,
        judged: false,
        value: |m| m.pci_devices as f64,
    },
    Metric {
        name: "pci_local_devices",
        short: "pci local#",
        unit: "devices",
        definition: "of those, devices on one of the guest's own host cells",
        aggregation: Aggregation::Count,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::No,
        judged: false,
        value: |m| m.pci_local_devices as f64,
    },
    Metric {
        name: "pci_remote_devices",
        short: "pci remote#",
        unit: "devices",
        definition: "of those, devices on another socket than the guest's cells (or on a node the firmware does not name); the rest are on the same socket",
        aggregation: Aggregation::Count,
        worse: Worse::Up,
        decimals: 0,
        shown: Shown::No,
        judged: true,
        value: |m| m.pci_remote_devices as f64,
    },
    Metric {
        name: "pci_local_fraction",
        short: "pci local",
        unit: "fraction of devices",
        definition: "PCI devices on one of their guest's own host cells, of all given (0 when none was given)",
        aggregation: Aggregation::PerGuest,
        worse: Worse::Down,
        decimals: 6,
        shown: Shown::No,
        judged: true,
        value: |m| m.pci_local_fraction,
    },
    Metric {
        name: "device_access_factor",
        short: "dev cost",
        unit: "x local device access",
        definition: "mean cost of reaching a guest's PCI device from its own cells, priced from SLIT distances through cost.device_calibration (1 = local; 0 when no device was given)",
        aggregation: Aggregation::PerGuest,
        worse: Worse::Up,
        decimals: 6,
        shown: Shown::No,
        judged: true,
        value: |m| m.device_access_factor,
    },
    Metric {
        name: "numad_moves",
        short: "moves",
        unit: "moves",
        definition: "running guests moved to another nodeset by a rebalancing policy (numad)",
        aggregation: Aggregation::Count,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::Fixed(1),
        judged: true,
        value: |m| m.numad_moves as f64,
    },
    Metric {
        name: "migrated_gb",
        short: "migr GB",
        unit: "GiB",
        definition: "guest memory migrated between nodes by numad and autonuma",
        aggregation: Aggregation::Total,
        worse: Worse::Neither,
        decimals: 3,
        shown: Shown::Fixed(1),
        judged: true,
        value: |m| m.migrated_mb / 1024.0,
    },
    Metric {
        name: "migration_s",
        short: "migr s",
        unit: "s",
        definition: "time those migrations take at migrate_mb_per_s",
        aggregation: Aggregation::Total,
        worse: Worse::Neither,
        decimals: 1,
        shown: Shown::No,
        judged: true,
        value: |m| m.migration_s,
    },
    Metric {
        name: "errors",
        short: "errors",
        unit: "guests",
        definition: "rejected guests whose request was invalid (Nova refuses it before scheduling)",
        aggregation: Aggregation::Run,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::No,
        judged: false,
        value: |m| m.errors as f64,
    },
    Metric {
        name: "skipped_rows",
        short: "skipped",
        unit: "rows",
        definition: "bad trace rows skipped (--skip-bad-rows)",
        aggregation: Aggregation::Run,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::No,
        judged: false,
        value: |m| m.skipped_rows as f64,
    },
    Metric {
        name: "fit_calls",
        short: "fits",
        unit: "calls",
        definition: "calls of the fit engine (work done, for benchmarks)",
        aggregation: Aggregation::Run,
        worse: Worse::Neither,
        decimals: 0,
        shown: Shown::No,
        judged: false,
        value: |m| m.fit_calls as f64,
    },
];

/// The metric named `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// The names of the metrics that judge a policy (targets, checks, CIs).
pub fn judging() -> impl Iterator<Item = &'static Metric> {
    METRICS.iter().filter(|m| m.judged)
}

/// The terminal table's columns, with the legend line explaining them.
pub fn legend() -> String {
    let items: Vec<String> = METRICS
        .iter()
        .filter(|m| m.shown != Shown::No)
        .map(|m| format!("{} = {} ({})", m.short, m.name, m.unit))
        .collect();
    format!("columns: {}; means over seeds", items.join("; "))
}

/// `numasim metrics`: every metric with its unit, aggregation, direction
/// and definition, as a Markdown table.
pub fn markdown() -> String {
    let mut out = String::from(
        "| column | unit | aggregation | worse when | definition |\n|---|---|---|---|---|\n",
    );
    for m in METRICS {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            m.name,
            m.unit,
            m.aggregation.as_str(),
            match m.worse {
                Worse::Up => "higher",
                Worse::Down => "lower",
                Worse::Neither => "—",
            },
            m.definition
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_the_outcomes_partition_guests() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        let m = RunMetrics {
            guests: 10,
            placed: 6,
            rejected: 3,
            killed_at_start: 1,
            ..Default::default()
        };
        let v = |n: &str| (find(n).unwrap().value)(&m);
        assert_eq!(
            v("placed") + v("rejected") + v("killed_at_start"),
            v("guests")
        );
        assert_eq!(v("rejection_rate"), 0.3);
        assert_eq!(v("killed_at_start_rate"), 0.1);
        assert!(!find("fit_calls").unwrap().judged);
        assert!(find("rejection_rate").unwrap().judged);
    }
}

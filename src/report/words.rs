//! Sentences made from the simulator's values: refusals, rejections and
//! bindings, as `explain`, `rejections.csv` and the terminal show them.
//! The core returns values; this is the one place that words them.

use crate::sim::binding::Binding;
use crate::sim::fleet::HostModel;
use crate::sim::refusal::{CellShort, FitShortfall, Refusal, Rejection};
use std::fmt;

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Generic words, so that hosts aggregate; per-host amounts are in the host list.
        match self {
            Refusal::InvalidRequest(e) => write!(f, "invalid request: {e}"),
            Refusal::HostVcpus { asked, ratio, .. } => {
                write!(
                    f,
                    "no room for {asked} more vCPUs at cpu_allocation_ratio {ratio}"
                )
            }
            Refusal::HostMemory {
                asked_mb, ratio, ..
            } => write!(
                f,
                "no room for {asked_mb} MB more at ram_allocation_ratio {ratio}"
            ),
            Refusal::NoNodeWithMemory { binding, .. } => {
                write!(f, "no node with room for the guest's memory ({binding})")
            }
            Refusal::MissingNodes { nodeset } => {
                write!(f, "no NUMA nodes {nodeset:?} (manual nodeset)")
            }
            Refusal::NoFit(FitShortfall::Unexplained) => write!(f, "no fitting host cells"),
            Refusal::NoFit(FitShortfall::NotTogether) => write!(
                f,
                "cells fit one by one but not together (distinct cells, thread policy or page size)"
            ),
            Refusal::NoFit(FitShortfall::Cell { short, .. }) => write!(f, "{short}"),
            Refusal::Placement { class, asked } => write!(
                f,
                "Placement: no room for {asked} {class} (capacity less reserved, at its allocation ratio)"
            ),
            Refusal::PlacementTrait { name, required } => write!(
                f,
                "Placement: trait {name} {}",
                if *required {
                    "required, host lacks it"
                } else {
                    "forbidden, host has it"
                }
            ),
            Refusal::Filter { filter } => write!(f, "refused by {filter}"),
            Refusal::PciNotLocal { asked } => write!(
                f,
                "no {asked} free PCI device(s) near cells that fit the guest (PCI NUMA affinity policy)"
            ),
            Refusal::PciDevices { asked } => {
                write!(
                    f,
                    "no {asked} free PCI device(s) matching the guest's aliases"
                )
            }
        }
    }
}

impl fmt::Display for CellShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CellShort::Pcpus { asked } => write!(f, "no cell with {asked} free pCPUs"),
            CellShort::SharedCpus { asked } => write!(f, "no cell with {asked} shared CPUs"),
            CellShort::CpuRatio { asked, ratio } => write!(
                f,
                "no cell with room for {asked} more vCPUs at cpu_allocation_ratio {ratio}"
            ),
            CellShort::PageMemory { asked_mb, page_kb } => {
                write!(f, "no cell with {asked_mb} MB free in {page_kb} KiB pages")
            }
            CellShort::LargePageMemory { asked_mb } => {
                write!(f, "no cell with {asked_mb} MB free in large pages")
            }
            CellShort::Memory { asked_mb } => write!(f, "no cell with {asked_mb} MB free memory"),
        }
    }
}

/// "reason on N hosts; reason on M hosts", most frequent first (ties: by words).
pub fn refusals(groups: &[(Refusal, usize)]) -> String {
    let mut list: Vec<(String, usize)> = groups.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    list.iter()
        .map(|(r, n)| format!("{r} on {n} host{}", if *n == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a guest was not placed, in one line; `host_name` names hosts by index.
pub fn rejection<'a>(why: &Rejection, host_name: impl Fn(usize) -> &'a str) -> String {
    match why {
        Rejection::InvalidRequest(e) => format!("invalid request: {e}"),
        Rejection::NoHost(groups) => refusals(groups),
        Rejection::OomKilledAtStart { host, mode } => format!(
            "placed on {}, then OOM-killed: its pages did not fit its nodes ({} mode)",
            host_name(*host),
            mode.as_str()
        ),
    }
}

/// Where a plain guest runs under policy `policy`, in words; `None` for
/// guests Nova's fit placed (their cells say it).
pub fn binding(policy: &str, binding: &Binding, model: &HostModel) -> Option<String> {
    let what = match policy {
        "numad" => "numad's advice",
        "manual" => "the flavor's numatune",
        "cpuset-auto" => "cpuset=auto",
        "autonuma" => "automatic NUMA balancing",
        "nova" | "closest" | "float" => "no binding",
        other => other,
    };
    Some(match binding {
        Binding::Cells(_) => return None,
        Binding::Numatune { tuning, .. } => format!(
            "{what}: vCPUs and memory ({}) on host nodes {:?}",
            tuning.mode.as_str(),
            tuning.nodeset
        ),
        Binding::Node(node) => format!(
            "{what}: vCPUs on host node {}, pages following",
            model.cell_ids[*node]
        ),
        Binding::Float => {
            format!("{what}: vCPUs float over all host nodes, pages where they run")
        }
    })
}

/// Warnings for flavors no host of the fleet takes: one line per flavor
/// and reason, naming every policy under which it happens.
pub fn unplaceable(
    list: &[crate::experiment::run::Unplaceable],
    catalog: &crate::workload::model::Catalog,
) -> Vec<String> {
    let mut lines: Vec<(usize, String, Vec<&str>)> = Vec::new();
    for u in list {
        let why = refusals(&u.reasons);
        let why = format!(
            "{why} (one empty-handed host of each of the fleet's {} model{} asked)",
            u.host_models,
            if u.host_models == 1 { "" } else { "s" }
        );
        match lines
            .iter_mut()
            .find(|(f, w, _)| *f == u.flavor && *w == why)
        {
            Some((_, _, policies)) => policies.push(&u.policy),
            None => lines.push((u.flavor, why, vec![&u.policy])),
        }
    }
    lines
        .into_iter()
        .map(|(f, why, policies)| {
            format!(
                "flavor `{}` fits no host of the fleet under {}: every one of its guests will be refused: {why}",
                catalog.flavors[f].name,
                policies.join(", ")
            )
        })
        .collect()
}

/// A metric's value as the terminal table shows it.
pub fn metric_value(m: &crate::report::metrics::Metric, v: f64) -> String {
    use crate::report::metrics::Shown;
    match m.shown {
        Shown::Percent(d) => format!("{:.d$}%", 100.0 * v),
        Shown::Fixed(d) => format!("{v:.d$}"),
        Shown::No => format!("{v}"),
    }
}

/// One standing in a sentence: "lowest rejection rate: spread-preferred
/// at 0.00% (95% CI 0.00%-0.00%), against 1.54% for spread-strict".
pub fn standing(s: &crate::report::verdict::Standing) -> String {
    use crate::report::metrics::Worse;
    let m = s.metric;
    let most = if m.worse == Worse::Up {
        "lowest"
    } else {
        "highest"
    };
    let ci = s
        .best_interval
        .map(|(lo, hi)| {
            format!(
                " (95% CI {} to {})",
                metric_value(m, lo),
                metric_value(m, hi)
            )
        })
        .unwrap_or_default();
    let tied = if s.tied.is_empty() {
        String::new()
    } else {
        format!(", tied with {}", s.tied.join(", "))
    };
    format!(
        "{most} {}: {} at {}{ci}{tied}, against {} for {}",
        m.name.replace('_', " "),
        s.best,
        metric_value(m, s.best_mean),
        metric_value(m, s.worst_mean),
        s.worst
    )
}

/// The terminal's one-line verdict: the first standings, briefly.
pub fn verdict_line(standings: &[crate::report::verdict::Standing]) -> Option<String> {
    let parts: Vec<String> = standings
        .iter()
        .take(4)
        .map(|s| {
            format!(
                "{}: {} {} (worst {} {})",
                s.metric.short,
                s.best,
                metric_value(s.metric, s.best_mean),
                s.worst,
                metric_value(s.metric, s.worst_mean)
            )
        })
        .collect();
    (!parts.is_empty()).then(|| format!("verdict (best per metric): {}", parts.join("; ")))
}

/// A rejection's main reason, without host counts or names: the refusal
/// most hosts gave, the invalid request, or the kill at start.
pub fn main_reason(why: &Rejection) -> String {
    match why {
        Rejection::InvalidRequest(_) => "invalid request".into(),
        Rejection::NoHost(groups) => groups
            .iter()
            .max_by_key(|(_, n)| *n)
            .map_or_else(|| "no host".into(), |(r, _)| r.to_string()),
        Rejection::OomKilledAtStart { mode, .. } => {
            format!(
                "OOM-killed at start: its pages did not fit its nodes ({} mode)",
                mode.as_str()
            )
        }
    }
}

/// Nova's weighing of the passing hosts as a table: per host, its total
/// weight and each weigher's normalised score (times the multiplier in the
/// header), best first, as far as `show` rows.
pub fn weighing(
    w: &crate::sim::explain::Weighed,
    verdicts: &[crate::sim::explain::HostVerdict],
    show: usize,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let name = |h: usize| {
        verdicts
            .iter()
            .find(|v| v.host == h)
            .map_or_else(|| format!("host {h}"), |v| v.name.clone())
    };
    if w.ranked.is_empty() {
        return out;
    }
    if w.ranked.len() == 1 {
        let _ = writeln!(
            out,
            "weighing: one host passed, Nova takes it unweighed ({})",
            name(w.ranked[0].0)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "weighing ({} hosts passed; weight = sum of multiplier x normalised score; ties keep fleet order):",
        w.ranked.len()
    );
    let mut header = format!("  {:>3}  {:<20} {:>10}", "#", "host", "weight");
    for (name, m) in w.weighers.iter().zip(&w.multipliers) {
        let _ = write!(header, "  {:>22}", format!("{name} x{m}"));
    }
    let _ = writeln!(out, "{header}");
    for (k, (h, total, scores)) in w.ranked.iter().enumerate().take(show) {
        let mut line = format!("  {:>3}. {:<20} {:>10.6}", k + 1, name(*h), total);
        for s in scores {
            let _ = write!(line, "  {s:>22.6}");
        }
        let _ = writeln!(out, "{line}");
    }
    if w.ranked.len() > show {
        let _ = writeln!(out, "  ... {} more (--show N)", w.ranked.len() - show);
    }
    if w.weighers.is_empty() {
        let _ = writeln!(out, "  (no enabled weigher tells these hosts apart)");
    }
    out
}

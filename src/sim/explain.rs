//! Why a guest landed where it did, or why no host took it: every host of
//! the fleet checked for the arriving guest, in the order the strategy
//! tries them, with the first reason each one fails on, then the reasons
//! aggregated the way a person reads them ("no cell with 6 free pCPUs on 37
//! hosts; too little free memory on 12"). The model is the per-plugin
//! report of the kube-scheduler-simulator. Reasons are worked out from the
//! hosts' cells without changing anything.

use super::engine::Simulation;
use crate::fit::host::{HostCell, HostTopology};
use crate::request::{CpuPolicy, GuestCell, GuestTopology};
use std::collections::BTreeMap;

/// One host's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct HostVerdict {
    pub host: usize,
    pub name: String,
    /// Free RAM (MB) as the spread/pack weigher sees it.
    pub free_ram_mb: i64,
    /// `None`: the host passes (the fit found cells); `Some`: why not.
    pub failure: Option<String>,
    /// Host cells the guest's cells would get (passing NUMA guests).
    pub cells: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub guest: String,
    pub flavor: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub numa_cells: usize,
    pub strategy: String,
    /// Every host, in the order the strategy tries them.
    pub verdicts: Vec<HostVerdict>,
}

impl Explanation {
    pub fn passing(&self) -> impl Iterator<Item = &HostVerdict> {
        self.verdicts.iter().filter(|v| v.failure.is_none())
    }

    /// "reason on N hosts; reason on M hosts", most frequent first.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.verdicts {
            if let Some(f) = &v.failure {
                *counts.entry(f.as_str()).or_default() += 1;
            }
        }
        let mut list: Vec<(&str, usize)> = counts.into_iter().collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        list.iter()
            .map(|(r, n)| format!("{r} on {n} host{}", if *n == 1 { "" } else { "s" }))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Why one guest cell fits on no host cell: the reason shared by the most
/// host cells, in words with the amounts asked.
fn cell_reason(
    host: &HostTopology,
    g: &GuestCell,
    ratio: f64,
    check_memory: bool,
) -> Option<String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for h in &host.cells {
        match why_not(h, g, ratio, check_memory) {
            None => return None,
            Some(r) => *reasons.entry(r).or_default() += 1,
        }
    }
    reasons
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(r, _)| r)
}

fn why_not(h: &HostCell, g: &GuestCell, ratio: f64, check_memory: bool) -> Option<String> {
    let pins = CpuPolicy::pins(g.cpu_policy);
    let reserved = g.cpuset_reserved.as_ref().map_or(0, |r| r.len());
    if pins && h.avail_pcpus() < g.pcpuset.len() + reserved {
        return Some(format!(
            "no cell with {} free pCPUs",
            g.pcpuset.len() + reserved
        ));
    }
    if CpuPolicy::floats(g.cpu_policy) && !g.cpuset.is_empty() {
        if g.cpuset.len() > h.cpuset().len() {
            return Some(format!("no cell with {} shared CPUs", g.cpuset.len()));
        }
        let used = (h.cpu_usage + g.cpuset.len() as i64) as f64;
        if used > h.cpuset().len() as f64 * ratio {
            return Some(format!(
                "no cell with room for {} more vCPUs at cpu_allocation_ratio {ratio}",
                g.cpuset.len()
            ));
        }
    }
    match g.pagesize {
        Some(size) if size > 0 => {
            if h.can_fit_pagesize(size, g.memory_mb * 1024, true) != Some(true) {
                return Some(format!(
                    "no cell with {} MB free in {} KiB pages",
                    g.memory_mb, size
                ));
            }
        }
        Some(s) if s < 0 && s != crate::request::MEMPAGES_SMALL => {
            let any = h
                .mempages
                .iter()
                .filter(|p| p.size_kb > 4 || s == crate::request::MEMPAGES_ANY)
                .any(|p| h.can_fit_pagesize(p.size_kb, g.memory_mb * 1024, true) == Some(true));
            if !any {
                return Some(format!(
                    "no cell with {} MB free in large pages",
                    g.memory_mb
                ));
            }
        }
        _ => {
            if check_memory && h.avail_memory() < g.memory_mb {
                return Some(format!("no cell with {} MB free memory", g.memory_mb));
            }
        }
    }
    None
}

impl Simulation {
    /// Every host's verdict for `row` arriving now; changes nothing.
    pub fn explain(&mut self, row: &crate::trace::TraceRow) -> Explanation {
        let flavor = self.catalog().flavors[row.flavor].clone();
        let request = self.request_for_explain(row);
        let (request, invalid) = match request {
            Ok(r) => (r, None),
            Err(e) => (None, Some(e)),
        };
        let vcpus = request.as_ref().map_or(flavor.vcpus, |t| {
            t.cells.iter().map(|c| c.cpuset.len() as i64).sum()
        });
        let mut verdicts = Vec::new();
        for i in self.host_order() {
            let h = &self.hosts[i];
            let mut v = HostVerdict {
                host: i,
                name: h.name.clone(),
                free_ram_mb: h.free_ram(),
                failure: None,
                cells: Vec::new(),
            };
            if let Some(e) = &invalid {
                v.failure = Some(format!("invalid request: {e}"));
            } else if let Some(reason) =
                self.host_level_reason(i, vcpus, flavor.memory_mb, request.is_some(), row.flavor)
            {
                v.failure = Some(reason);
            } else if let Some(t) = &request {
                match self.fit_for_explain(i, t) {
                    Some(f) => v.cells = f.cells.iter().map(|c| c.id).collect(),
                    None => {
                        let ratio = self
                            .limits_for(i)
                            .map_or(f64::INFINITY, |l| l.cpu_allocation_ratio);
                        let check_memory = self.checks_cell_memory();
                        let reason = t
                            .cells
                            .iter()
                            .find_map(|g| cell_reason(&self.hosts[i].topo, g, ratio, check_memory))
                            .unwrap_or_else(|| {
                                "cells fit one by one but not together (distinct cells, thread policy or page size)".into()
                            });
                        v.failure = Some(reason);
                    }
                }
            }
            verdicts.push(v);
        }
        Explanation {
            guest: row.id.clone(),
            flavor: flavor.name,
            vcpus,
            memory_mb: flavor.memory_mb,
            numa_cells: request
                .as_ref()
                .map_or(0, |t: &GuestTopology| t.cells.len()),
            strategy: self.config.strategy.as_str().to_string(),
            verdicts,
        }
    }
}

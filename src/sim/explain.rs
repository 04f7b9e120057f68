//! Why a guest landed where it did, or why no host took it: every host of
//! the fleet checked for the arriving guest with the scheduler's own host
//! check ([`Simulation::check_host`]), in the order the strategy tries
//! them, each with its verdict, then the refusals grouped by reason. The
//! model is the per-plugin report of the kube-scheduler-simulator.
//! Verdicts are values; `report::words` turns them into sentences.

use super::engine::Simulation;
use super::fleet::SimHost;
use super::policy::{GuestView, Verdict};
use super::refusal::{CellShort, FitShortfall, Refusal, group};
use crate::fit::host::{HostCell, HostTopology};
use crate::request::{CpuPolicy, GuestCell, GuestTopology, RequestError};
use crate::workload::model::TraceRow;

/// One host's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct HostVerdict {
    pub host: usize,
    pub name: String,
    /// Free RAM (MB) as the spread/pack weigher sees it.
    pub free_ram_mb: i64,
    /// `None`: the host passes; `Some`: why not.
    pub failure: Option<Refusal>,
    /// Host cells the guest's cells would get (passing NUMA guests).
    pub cells: Vec<i64>,
}

impl HostVerdict {
    pub(crate) fn new(host: usize, h: &SimHost, verdict: Verdict) -> HostVerdict {
        let (failure, cells) = match verdict {
            Ok(binding) => (
                None,
                binding
                    .fitted()
                    .map(|f| f.cells.iter().map(|c| c.id).collect())
                    .unwrap_or_default(),
            ),
            Err(r) => (Some(r), Vec::new()),
        };
        HostVerdict {
            host,
            name: h.name.clone(),
            free_ram_mb: h.free_ram(),
            failure,
            cells,
        }
    }
}

/// Nova's weighing of the hosts that passed (`strategy = "nova"`): the
/// weighers that can change an order, their multipliers, and per host the
/// total weight and each weigher's normalised score, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighed {
    pub weighers: Vec<&'static str>,
    pub multipliers: Vec<f64>,
    /// `(host, total weight, normalised score per weigher)`; the scores are
    /// empty when one host passed (Nova does not weigh a single host).
    pub ranked: Vec<(usize, f64, Vec<f64>)>,
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
    /// Nova's scheduler only: how the passing hosts weigh.
    pub weighed: Option<Weighed>,
}

impl Explanation {
    pub(crate) fn new(
        sim: &Simulation,
        guest: &GuestView,
        verdicts: Vec<HostVerdict>,
    ) -> Explanation {
        let request = guest.numa_request(&*sim.config.policy);
        Explanation {
            guest: guest.row.id.clone(),
            flavor: guest.flavor.name.clone(),
            vcpus: guest.vcpus,
            memory_mb: guest.memory_mb,
            numa_cells: request.map_or(0, |t: &GuestTopology| t.cells.len()),
            strategy: sim.config.strategy.as_str().to_string(),
            verdicts,
            weighed: None,
        }
    }

    /// An invalid request: every host refuses it for that reason.
    pub(crate) fn invalid(sim: &Simulation, row: &TraceRow, e: RequestError) -> Explanation {
        let flavor = &sim.catalog().flavors[row.flavor];
        Explanation {
            guest: row.id.clone(),
            flavor: flavor.name.clone(),
            vcpus: flavor.vcpus,
            memory_mb: flavor.memory_mb,
            numa_cells: 0,
            strategy: sim.config.strategy.as_str().to_string(),
            verdicts: sim
                .host_order()
                .map(|i| {
                    HostVerdict::new(i, &sim.hosts[i], Err(Refusal::InvalidRequest(e.clone())))
                })
                .collect(),
            weighed: None,
        }
    }

    pub fn passing(&self) -> impl Iterator<Item = &HostVerdict> {
        self.verdicts.iter().filter(|v| v.failure.is_none())
    }

    /// The refusals grouped by reason, with the number of hosts giving each.
    pub fn refusals(&self) -> Vec<(Refusal, usize)> {
        group(self.verdicts.iter().filter_map(|v| v.failure.clone()))
    }
}

/// Why Nova's fit found no cells for `guest` on `host`: the first guest
/// cell that fits on no host cell, with what most host cells lack (ties:
/// what Nova checks first), or else that the cells do not fit together.
pub fn fit_shortfall(
    host: &HostTopology,
    guest: &GuestTopology,
    cpu_ratio: f64,
    check_memory: bool,
) -> FitShortfall {
    guest
        .cells
        .iter()
        .enumerate()
        .find_map(|(i, g)| {
            cell_short(host, g, cpu_ratio, check_memory).map(|short| FitShortfall::Cell {
                guest_cell: i,
                short,
            })
        })
        .unwrap_or(FitShortfall::NotTogether)
}

/// What most host cells lack for guest cell `g` (ties: what Nova checks
/// first); `None` if some host cell has it all.
fn cell_short(
    host: &HostTopology,
    g: &GuestCell,
    ratio: f64,
    check_memory: bool,
) -> Option<CellShort> {
    let mut counts: Vec<(CellShort, usize)> = Vec::new();
    for h in &host.cells {
        let short = why_not(h, g, ratio, check_memory)?;
        match counts.iter_mut().find(|(s, _)| *s == short) {
            Some((_, n)) => *n += 1,
            None => counts.push((short, 1)),
        }
    }
    // Most host cells first; ties go to what Nova checks first.
    counts
        .into_iter()
        .min_by_key(|(s, n)| (std::cmp::Reverse(*n), s.check_order()))
        .map(|(s, _)| s)
}

/// The first thing (in Nova's check order) host cell `h` lacks for guest cell `g`.
fn why_not(h: &HostCell, g: &GuestCell, ratio: f64, check_memory: bool) -> Option<CellShort> {
    let pins = CpuPolicy::pins(g.cpu_policy);
    let reserved = g.cpuset_reserved.as_ref().map_or(0, |r| r.len());
    if pins && h.avail_pcpus() < g.pcpuset.len() + reserved {
        return Some(CellShort::Pcpus {
            asked: g.pcpuset.len() + reserved,
        });
    }
    if CpuPolicy::floats(g.cpu_policy) && !g.cpuset.is_empty() {
        if g.cpuset.len() > h.cpuset().len() {
            return Some(CellShort::SharedCpus {
                asked: g.cpuset.len(),
            });
        }
        let used = (h.cpu_usage + g.cpuset.len() as i64) as f64;
        if used > h.cpuset().len() as f64 * ratio {
            return Some(CellShort::CpuRatio {
                asked: g.cpuset.len(),
                ratio,
            });
        }
    }
    match g.pagesize {
        Some(size) if size > 0 => {
            if h.can_fit_pagesize(size, g.memory_mb * 1024, true) != Some(true) {
                return Some(CellShort::PageMemory {
                    asked_mb: g.memory_mb,
                    page_kb: size,
                });
            }
        }
        Some(s) if s < 0 && s != crate::request::MEMPAGES_SMALL => {
            let any = h
                .mempages
                .iter()
                .filter(|p| p.size_kb > 4 || s == crate::request::MEMPAGES_ANY)
                .any(|p| h.can_fit_pagesize(p.size_kb, g.memory_mb * 1024, true) == Some(true));
            if !any {
                return Some(CellShort::LargePageMemory {
                    asked_mb: g.memory_mb,
                });
            }
        }
        _ => {
            if check_memory && h.avail_memory() < g.memory_mb {
                return Some(CellShort::Memory {
                    asked_mb: g.memory_mb,
                });
            }
        }
    }
    None
}

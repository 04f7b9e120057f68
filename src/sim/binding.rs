//! A placed guest's binding on its host: where its vCPUs run and which
//! cells its pages target. Every placement policy produces one of these
//! variants, and everything downstream (page placement, growth, cost, the
//! per-cell loads numad and autonuma read) works from this one value.

use super::fleet::HostModel;
use super::memory::{Demand, MemoryMode};
use crate::request::GuestTopology;

/// An operator's (or numad's) `<numatune>`: host NUMA node ids and the memory mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualTuning {
    pub nodeset: Vec<i64>,
    pub mode: MemoryMode,
}

/// How one guest is bound on its host.
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// Nova's fit: each guest cell on a host cell, pinned or floating
    /// within it, memory in the run's mode (`nova`, `closest`).
    Cells(GuestTopology),
    /// No binding: vCPUs float over the whole host, pages land where they
    /// run (`float`, a guest without a NUMA topology, autonuma at start).
    Float,
    /// vCPUs confined to one host cell (by position), memory unbound so
    /// pages follow them and spill by distance (`cpuset-auto`, a settled
    /// autonuma guest).
    Node(usize),
    /// vCPUs over a nodeset's CPUs and memory in the tuning's mode over it;
    /// `guest_cells` virtual cells mapped onto its nodes in turn (0: none)
    /// (`manual`, `numad`).
    Numatune {
        tuning: ManualTuning,
        guest_cells: usize,
    },
}

impl Binding {
    /// The fitted guest topology, for guests Nova's fit placed.
    pub fn fitted(&self) -> Option<&GuestTopology> {
        match self {
            Binding::Cells(t) => Some(t),
            _ => None,
        }
    }

    /// The host cells (positions) the guest counts as its own: pages
    /// elsewhere are spilled.
    pub fn own_cells(&self, model: &HostModel) -> Vec<usize> {
        match self {
            Binding::Cells(f) => f
                .cells
                .iter()
                .filter_map(|c| model.cell_index(c.id))
                .collect(),
            Binding::Node(node) => vec![*node],
            Binding::Numatune { tuning, .. } => nodeset_cells(model, tuning),
            Binding::Float => (0..model.cell_ids.len()).collect(),
        }
    }

    /// vCPUs the guest runs per host cell (`vcpus`: the guest's vCPU claim).
    pub fn cpu_cells(&self, model: &HostModel, vcpus: i64) -> Vec<f64> {
        let n = model.cell_ids.len();
        match self {
            Binding::Cells(f) => {
                let mut out = vec![0.0; n];
                for c in &f.cells {
                    if let Some(p) = model.cell_index(c.id) {
                        out[p] += (c.cpuset.len() + c.pcpuset.len()) as f64;
                    }
                }
                out
            }
            Binding::Node(node) => {
                let mut out = vec![0.0; n];
                out[*node] = vcpus as f64;
                out
            }
            Binding::Numatune { tuning, .. } => {
                vcpus_by_cpus(model, &nodeset_cells(model, tuning), vcpus as f64)
            }
            Binding::Float => vcpus_by_cpus(model, &(0..n).collect::<Vec<_>>(), vcpus as f64),
        }
    }

    /// The page demands of `touched_mb` of the guest's memory under the run's mode.
    pub fn demands(&self, model: &HostModel, touched_mb: f64, mode: MemoryMode) -> Vec<Demand> {
        match self {
            Binding::Numatune {
                tuning,
                guest_cells,
            } => numatune_demands(model, tuning, *guest_cells, touched_mb),
            Binding::Cells(f) => fitted_demands(model, f, touched_mb, mode),
            // vCPUs confined to one cell, memory unbound: pages there, spilling.
            Binding::Node(node) => vec![Demand {
                targets: vec![(*node, 1.0)],
                mb: touched_mb,
                may_spill: true,
                reserved: false,
            }],
            Binding::Float => {
                // Local allocation where the vCPUs run: in proportion to CPUs.
                let n = model.cell_ids.len();
                let total: f64 = model.cpus_per_cell.iter().map(|&c| f64::from(c)).sum();
                let targets: Vec<(usize, f64)> = if total > 0.0 {
                    (0..n)
                        .filter(|&c| model.cpus_per_cell[c] > 0)
                        .map(|c| (c, f64::from(model.cpus_per_cell[c]) / total))
                        .collect()
                } else {
                    (0..n).map(|c| (c, 1.0 / n as f64)).collect()
                };
                vec![Demand {
                    targets,
                    mb: touched_mb,
                    may_spill: true,
                    reserved: false,
                }]
            }
        }
    }
}

/// The host cell positions of a tuning's nodeset (nodes the host lacks are skipped).
pub fn nodeset_cells(model: &HostModel, tuning: &ManualTuning) -> Vec<usize> {
    tuning
        .nodeset
        .iter()
        .filter_map(|id| model.cell_index(*id))
        .collect()
}

/// `vcpus` floating over `cells` (host cell positions), each cell taking its
/// share of their CPUs: the per-cell load of an unpinned guest.
pub fn vcpus_by_cpus(model: &HostModel, cells: &[usize], vcpus: f64) -> Vec<f64> {
    let cpus: f64 = cells
        .iter()
        .map(|&c| f64::from(model.cpus_per_cell[c]))
        .sum();
    let mut out = vec![0.0; model.cell_ids.len()];
    if cpus > 0.0 {
        for &c in cells {
            out[c] = vcpus * f64::from(model.cpus_per_cell[c]) / cpus;
        }
    }
    out
}

/// Pages under a `<numatune>`: with guest virtual cells, each cell on the
/// nodeset's nodes in turn (strict: there only; preferred: spilling;
/// interleave: over the whole nodeset); without, the whole guest over the
/// nodeset (strict: in proportion to the nodes' CPUs; preferred: the first
/// node, spilling; interleave: evenly). Only `strict` never leaves the
/// nodeset: Linux allocates an interleaved page on its node's zonelist
/// without the nodemask, so a full node falls back to the nearest one.
pub fn numatune_demands(
    model: &HostModel,
    t: &ManualTuning,
    guest_cells: usize,
    touched_mb: f64,
) -> Vec<Demand> {
    let nodes = nodeset_cells(model, t);
    let even = |set: &[usize]| -> Vec<(usize, f64)> {
        set.iter().map(|&c| (c, 1.0 / set.len() as f64)).collect()
    };
    let by_cpus = |set: &[usize]| -> Vec<(usize, f64)> {
        let total: f64 = set.iter().map(|&c| f64::from(model.cpus_per_cell[c])).sum();
        if total > 0.0 {
            set.iter()
                .map(|&c| (c, f64::from(model.cpus_per_cell[c]) / total))
                .collect()
        } else {
            even(set)
        }
    };
    let demand = |targets, mb, may_spill| Demand {
        targets,
        mb,
        may_spill,
        reserved: false,
    };
    if nodes.is_empty() {
        return Vec::new();
    }
    if guest_cells == 0 {
        return vec![match t.mode {
            MemoryMode::Strict => demand(by_cpus(&nodes), touched_mb, false),
            MemoryMode::Preferred => demand(vec![(nodes[0], 1.0)], touched_mb, true),
            MemoryMode::Interleave => demand(even(&nodes), touched_mb, true),
        }];
    }
    let per_cell = touched_mb / guest_cells as f64;
    (0..guest_cells)
        .map(|i| {
            let node = nodes[i % nodes.len()];
            match t.mode {
                MemoryMode::Strict => demand(vec![(node, 1.0)], per_cell, false),
                MemoryMode::Preferred => demand(vec![(node, 1.0)], per_cell, true),
                MemoryMode::Interleave => demand(even(&nodes), per_cell, true),
            }
        })
        .collect()
}

/// Pages of a guest Nova's fit placed: each guest cell's share on its host
/// cell in the run's mode; hugepage-backed cells on the pages the fit reserved.
fn fitted_demands(
    model: &HostModel,
    f: &GuestTopology,
    touched_mb: f64,
    mode: MemoryMode,
) -> Vec<Demand> {
    let n = model.cell_ids.len();
    let total_mem: f64 = f
        .cells
        .iter()
        .map(|c| c.memory_mb as f64)
        .sum::<f64>()
        .max(1.0);
    let own: Vec<usize> = f
        .cells
        .iter()
        .filter_map(|c| model.cell_index(c.id))
        .collect();
    f.cells
        .iter()
        .zip(&own)
        .map(|(c, &p)| {
            let mb = touched_mb * c.memory_mb as f64 / total_mem;
            // Hugepage-backed cells were reserved per cell by the fit.
            let hugepages = c.pagesize.is_some_and(|s| s > 4);
            let own_cell = |may_spill, reserved| Demand {
                targets: vec![(p, 1.0)],
                mb,
                may_spill,
                reserved,
            };
            match mode {
                _ if hugepages => own_cell(false, true),
                MemoryMode::Strict => own_cell(false, false),
                MemoryMode::Preferred => own_cell(true, false),
                MemoryMode::Interleave => {
                    let set: Vec<usize> = if own.len() > 1 {
                        own.clone()
                    } else {
                        (0..n).collect()
                    };
                    let share = 1.0 / set.len() as f64;
                    Demand {
                        targets: set.into_iter().map(|c| (c, share)).collect(),
                        mb,
                        may_spill: true,
                        reserved: false,
                    }
                }
            }
        })
        .collect()
}

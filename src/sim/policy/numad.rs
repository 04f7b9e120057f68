//! `numad`: numad(8)'s advice, as libvirt asks it for `<vcpu
//! placement='auto'>` (`numad -w CPUS:MB`). Each node's available CPUs and
//! memory are what is left under the target utilisation (`-u`, 85 % by
//! default); the node with the largest product of the two comes first, then
//! nodes in order of SLIT distance from it until the request's CPUs and
//! memory fit; vCPUs and memory (in the run's mode) are bound there. A
//! guest is a plain guest (host-level check only). Every `interval_s` numad
//! looks again at the hosts that changed; it moves a guest when the new
//! advice uses fewer nodes, or when the guest's current nodes are
//! oversubscribed and the advised ones are not, and its pages then migrate
//! to the new nodeset if they fit there.

use super::{
    Change, Entry, GuestView, HostView, PlacementPolicy, PolicyParams, Rebalancing, RunningGuest,
    Schedule, Step, Verdict,
};
use crate::fit::FitError;
use crate::sim::binding::{Binding, ManualTuning, nodeset_cells, numatune_demands, vcpus_by_cpus};
use crate::sim::memory::{MemoryMode, place};
use std::sync::Arc;

pub const ENTRY: Entry = Entry {
    name: "numad",
    about: "numad's advice (<vcpu placement='auto'>), re-advised every interval",
    takes_numatunes: false,
    build: |p: &PolicyParams| {
        Arc::new(Numad {
            rebalancing: p.rebalancing.clone(),
            mode: p.memory_mode.unwrap_or(MemoryMode::Strict),
        })
    },
};

#[derive(Debug, Clone)]
pub struct Numad {
    pub rebalancing: Rebalancing,
    /// The mode numad's nodeset binds memory in.
    pub mode: MemoryMode,
}

impl Numad {
    /// numad's advice on `host` as a numatune, given the vCPU load and free
    /// memory per cell it sees.
    fn advice(
        &self,
        host: &HostView,
        load: &[f64],
        free: &[f64],
        vcpus: f64,
        mb: f64,
    ) -> Option<ManualTuning> {
        let h = host.host;
        let model = &h.model;
        let total: Vec<f64> = h.topo.cells.iter().map(|c| c.memory_mb as f64).collect();
        let nodes = numad_nodes(
            &Nodes {
                cpus: &model.cpus_per_cell,
                total_mb: &total,
                distances: &model.distances,
                load,
                free_mb: free,
            },
            vcpus,
            mb,
            self.rebalancing.numad_target_utilization,
        )?;
        Some(ManualTuning {
            nodeset: nodes.iter().map(|&c| model.cell_ids[c]).collect(),
            mode: self.mode,
        })
    }
}

impl PlacementPolicy for Numad {
    fn libvirt_auto_placement(&self) -> bool {
        true
    }

    fn bind(&self, host: &HostView, guest: &GuestView) -> Result<Verdict, FitError> {
        let advice = self.advice(
            host,
            host.cpu_load,
            host.free_mb,
            guest.vcpus as f64,
            guest.touched_mb,
        );
        Ok(Ok(match advice {
            Some(tuning) => Binding::Numatune {
                tuning,
                guest_cells: 0,
            },
            // No node has CPUs: nothing to bind to.
            None => Binding::Float,
        }))
    }

    fn reads_cpu_load(&self) -> bool {
        true
    }

    fn schedule(&self) -> Schedule {
        Schedule::HostScans {
            interval_s: self.rebalancing.numad_interval_s,
        }
    }

    fn rebalance(&self, host: &HostView, guest: &RunningGuest) -> Step {
        let model = &host.host.model;
        let vcpus = guest.vcpus as f64;
        let resident: f64 = guest.pages.iter().sum();
        // The host as numad sees it for this guest: its own pages count as free.
        let free: Vec<f64> = host
            .free_mb
            .iter()
            .zip(guest.pages)
            .map(|(f, v)| f + v)
            .collect();
        let Some(advice) = self.advice(host, host.cpu_load, &free, vcpus, resident) else {
            return Step::Stay;
        };
        let current = match guest.binding {
            Binding::Numatune { tuning, .. } => nodeset_cells(model, tuning),
            _ => Vec::new(),
        };
        let advised = nodeset_cells(model, &advice);
        if !numad_moves(
            &current,
            &advised,
            &model.cpus_per_cell,
            host.cpu_load,
            vcpus,
        ) {
            return Step::Stay;
        }
        let demands = numatune_demands(model, &advice, 0, resident);
        // No room for the pages in the new nodeset: numad stays put.
        let Some(placed) = place(&free, &model.distances, &demands) else {
            return Step::Stay;
        };
        let pages: Vec<f64> = (0..free.len())
            .map(|c| placed.iter().map(|d| d[c]).sum())
            .collect();
        Step::Change(Change {
            binding: Binding::Numatune {
                tuning: advice,
                guest_cells: 0,
            },
            pages,
            cpu_cells: vcpus_by_cpus(model, &advised, vcpus),
            moved: true,
            scan_pos_mb: guest.scan_pos_mb,
            last: false,
        })
    }
}

/// One host's cells as numad sees them.
pub struct Nodes<'a> {
    /// CPUs per cell.
    pub cpus: &'a [u32],
    /// Total memory per cell, MB.
    pub total_mb: &'a [f64],
    pub distances: &'a [Vec<u32>],
    /// vCPUs already running per cell.
    pub load: &'a [f64],
    pub free_mb: &'a [f64],
}

/// numad's choice of nodes (cell positions, ascending) for `vcpus` and
/// `mb`; `None` when no cell has CPUs.
pub fn numad_nodes(
    nodes: &Nodes,
    vcpus: f64,
    mb: f64,
    target_utilization: f64,
) -> Option<Vec<usize>> {
    let Nodes {
        cpus,
        total_mb,
        distances,
        load,
        free_mb,
    } = *nodes;
    let n = cpus.len();
    let avail_cpu = |c: usize| (f64::from(cpus[c]) * target_utilization - load[c]).max(0.0);
    let avail_mb = |c: usize| (free_mb[c] - total_mb[c] * (1.0 - target_utilization)).max(0.0);
    let score = |c: usize| avail_cpu(c) * avail_mb(c);
    let first =
        (0..n)
            .filter(|&c| cpus[c] > 0)
            .fold(None, |best: Option<usize>, c| match best {
                Some(b) if score(b) >= score(c) => Some(b),
                _ => Some(c),
            })?;
    let mut chosen = vec![first];
    let (mut have_cpu, mut have_mb) = (avail_cpu(first), avail_mb(first));
    let mut rest: Vec<usize> = (0..n).filter(|&c| c != first).collect();
    // Nearest first; among equals, the better-scoring node.
    rest.sort_by(|&a, &b| {
        distances[first][a]
            .cmp(&distances[first][b])
            .then(score(b).total_cmp(&score(a)))
            .then(a.cmp(&b))
    });
    for c in rest {
        if have_cpu >= vcpus && have_mb >= mb {
            break;
        }
        chosen.push(c);
        have_cpu += avail_cpu(c);
        have_mb += avail_mb(c);
    }
    chosen.sort_unstable();
    Some(chosen)
}

/// Whether numad moves a guest from `current` to `advised`: fewer nodes, or
/// out of oversubscribed CPUs (`load` without the guest) into room.
pub fn numad_moves(
    current: &[usize],
    advised: &[usize],
    cpus: &[u32],
    load: &[f64],
    vcpus: f64,
) -> bool {
    if current == advised {
        return false;
    }
    let oversubscribed = |set: &[usize]| {
        let have: f64 = set.iter().map(|&c| f64::from(cpus[c])).sum();
        let used: f64 = set.iter().map(|&c| load[c]).sum();
        used + vcpus > have
    };
    advised.len() < current.len() || (oversubscribed(current) && !oversubscribed(advised))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slit4() -> Vec<Vec<u32>> {
        vec![
            vec![10, 12, 21, 21],
            vec![12, 10, 21, 21],
            vec![21, 21, 10, 12],
            vec![21, 21, 12, 10],
        ]
    }

    #[test]
    fn numad_takes_the_best_node_then_the_nearest() {
        let cpus = [8, 8, 8, 8];
        let total = [16384.0; 4];
        // Node 2 is the emptiest; the request needs two nodes' CPUs.
        let load = [4.0, 4.0, 0.0, 2.0];
        let free = [8000.0, 8000.0, 16000.0, 12000.0];
        let slit = slit4();
        let nodes = Nodes {
            cpus: &cpus,
            total_mb: &total,
            distances: &slit,
            load: &load,
            free_mb: &free,
        };
        let one = numad_nodes(&nodes, 4.0, 4096.0, 0.85);
        assert_eq!(one, Some(vec![2]));
        let two = numad_nodes(&nodes, 10.0, 4096.0, 0.85);
        // Node 3 is at 12 from node 2, nodes 0 and 1 at 21.
        assert_eq!(two, Some(vec![2, 3]));
        // 85 % of 8 CPUs = 6.8 per node; 14 vCPUs need three nodes' worth,
        // node 2 (6.8) + 3 (4.8) + the better of 0 and 1 at 21 (tie: 0).
        let three = numad_nodes(&nodes, 14.0, 4096.0, 0.85);
        assert_eq!(three, Some(vec![0, 2, 3]));
    }

    #[test]
    fn numad_moves_only_to_fewer_nodes_or_out_of_contention() {
        let cpus = [8, 8];
        assert!(numad_moves(&[0, 1], &[1], &cpus, &[0.0, 0.0], 4.0));
        assert!(!numad_moves(&[0], &[1], &cpus, &[2.0, 0.0], 4.0));
        assert!(numad_moves(&[0], &[1], &cpus, &[6.0, 0.0], 4.0));
        assert!(!numad_moves(&[1], &[1], &cpus, &[0.0, 8.0], 4.0));
    }
}

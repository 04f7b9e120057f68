//! `autonuma`: Linux automatic NUMA balancing (`kernel.numa_balancing`).
//! The guest starts as `float` places it (vCPUs float, pages where they
//! run); the scheduler then settles its threads on a preferred node (the
//! one holding most of its pages among those with room for its vCPUs) and
//! the NUMA hinting faults migrate its remote pages there at the scan rate:
//! the scanner walks the guest's memory in passes of `scan_mb_per_s` per
//! second, and the remote pages it finds move. A guest with more vCPUs than
//! a node has idle CPUs never settles (the balancing cannot help it).

use super::{
    Change, Entry, GuestView, HostView, PlacementPolicy, PolicyParams, Rebalancing, RunningGuest,
    Schedule, Step, Verdict,
};
use crate::fit::FitError;
use crate::sim::binding::Binding;
use std::sync::Arc;

pub const ENTRY: Entry = Entry {
    name: "autonuma",
    about: "Linux automatic NUMA balancing: vCPUs settle, remote pages migrate",
    takes_numatunes: false,
    build: |p: &PolicyParams| {
        Arc::new(Autonuma {
            rebalancing: p.rebalancing.clone(),
        })
    },
};

#[derive(Debug, Clone)]
pub struct Autonuma {
    pub rebalancing: Rebalancing,
}

impl PlacementPolicy for Autonuma {
    fn bind(&self, _host: &HostView, _guest: &GuestView) -> Result<Verdict, FitError> {
        Ok(Ok(Binding::Float))
    }

    fn reads_cpu_load(&self) -> bool {
        true
    }

    fn schedule(&self) -> Schedule {
        Schedule::GuestSteps {
            every_s: self.rebalancing.autonuma_tick_s,
        }
    }

    fn rebalance(&self, host: &HostView, guest: &RunningGuest) -> Step {
        let cpus = &host.host.model.cpus_per_cell;
        let vcpus = guest.vcpus as f64;
        let node = match guest.binding {
            Binding::Node(node) => *node,
            _ => match autonuma_preferred(cpus, host.cpu_load, guest.pages, host.free_mb, vcpus) {
                Some(node) => node,
                // Larger than any node's idle CPUs: it never settles.
                None => return Step::Done,
            },
        };
        let r = &self.rebalancing;
        let total: f64 = guest.pages.iter().sum();
        let scanned = r.autonuma_scan_mb_per_s * r.autonuma_tick_s;
        let unscanned = total - guest.scan_pos_mb;
        let moving = autonuma_step(guest.pages, node, host.free_mb[node], scanned, unscanned);
        let scan_pos_mb = if scanned >= unscanned {
            0.0
        } else {
            guest.scan_pos_mb + scanned
        };
        let mut pages = guest.pages.to_vec();
        for (c, mb) in moving.iter().enumerate() {
            pages[c] -= mb;
        }
        pages[node] += moving.iter().sum::<f64>();
        let mut cpu_cells = vec![0.0; pages.len()];
        cpu_cells[node] = vcpus;
        // autonuma stops once every page is local.
        let remote_left = pages.iter().sum::<f64>() - pages[node];
        Step::Change(Change {
            binding: Binding::Node(node),
            pages,
            cpu_cells,
            moved: false,
            scan_pos_mb,
            last: remote_left <= 1e-9,
        })
    }
}

/// autonuma's preferred node for a guest: among cells whose idle CPUs hold
/// its vCPUs, the one with most of its pages, then most free memory, then
/// the first. `load` excludes the guest.
pub fn autonuma_preferred(
    cpus: &[u32],
    load: &[f64],
    pages: &[f64],
    free_mb: &[f64],
    vcpus: f64,
) -> Option<usize> {
    let key = |c: usize| (pages.get(c).copied().unwrap_or(0.0), free_mb[c]);
    (0..cpus.len())
        .filter(|&c| f64::from(cpus[c]) - load[c] >= vcpus)
        .fold(None, |best: Option<usize>, c| match best {
            Some(b) => {
                let (kb, kc) = (key(b), key(c));
                if kc.0 > kb.0 || (kc.0 == kb.0 && kc.1 > kb.1) {
                    Some(c)
                } else {
                    Some(b)
                }
            }
            None => Some(c),
        })
}

/// One autonuma step: how many MB move from each cell to `node`. The
/// scanner walks the guest's address space in passes; this step scans
/// `scanned_mb` of the `unscanned_mb` left in the pass, and since remote
/// pages are spread evenly over what is left, that share of them faults
/// and moves, as far as `node` has free memory (taken from each remote
/// cell in proportion to what it holds). A whole pass finds every page.
pub fn autonuma_step(
    pages: &[f64],
    node: usize,
    node_free_mb: f64,
    scanned_mb: f64,
    unscanned_mb: f64,
) -> Vec<f64> {
    let total: f64 = pages.iter().sum();
    let remote: f64 = total - pages[node];
    let mut out = vec![0.0; pages.len()];
    if remote <= 1e-9 || unscanned_mb <= 0.0 {
        return out;
    }
    let share = (scanned_mb / unscanned_mb).min(1.0);
    let moving = (remote * share).min(node_free_mb.max(0.0));
    for (c, &mb) in pages.iter().enumerate() {
        if c != node {
            out[c] = moving * mb / remote;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autonuma_settles_where_the_pages_are_and_moves_remote_pages_at_the_scan_rate() {
        let cpus = [4, 4];
        let pages = [1000.0, 3000.0];
        let free = [5000.0, 5000.0];
        assert_eq!(
            autonuma_preferred(&cpus, &[0.0, 0.0], &pages, &free, 4.0),
            Some(1)
        );
        // Node 1 busy: node 0 even though the pages are elsewhere.
        assert_eq!(
            autonuma_preferred(&cpus, &[0.0, 1.0], &pages, &free, 4.0),
            Some(0)
        );
        assert_eq!(
            autonuma_preferred(&cpus, &[0.0, 0.0], &pages, &free, 5.0),
            None
        );
        // 512 of 4000 MB scanned: that share (12.8 %) of the 1000 remote MB moves.
        let moved = autonuma_step(&pages, 1, 5000.0, 512.0, 4000.0);
        assert!((moved[0] - 128.0).abs() < 1e-9 && moved[1] == 0.0);
        // The rest of a pass finds all that is left.
        let moved = autonuma_step(&pages, 1, 5000.0, 512.0, 400.0);
        assert!((moved[0] - 1000.0).abs() < 1e-9);
        // No room on the node: nothing moves.
        assert_eq!(autonuma_step(&pages, 1, 0.0, 512.0, 4000.0), vec![0.0, 0.0]);
    }
}

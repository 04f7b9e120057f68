//! Where a guest's pages physically land under libvirt's `<numatune>`
//! memory modes, given what the cells already hold.
//!
//! Model (stated in ARCHITECTURE.md): each host cell holds at most its
//! memory in resident pages; a guest touches `touched_fraction` of its
//! memory at start and keeps it resident until it leaves.
//! - `strict`: a guest cell's pages only on its host cell; if they do not
//!   fit, the kernel OOM-kills the guest (the KVM-on-NUMA article's case).
//! - `preferred`: on the guest cell's host cell first, then the other cells
//!   in order of SLIT distance (ties: cell order).
//! - `interleave`: evenly over the nodeset (the guest's host cells, or all
//!   cells for a guest confined to one), spilling by distance when full.
//! - no guest NUMA topology: local allocation where the vCPUs run, i.e. in
//!   proportion to the cells' CPUs, spilling by distance.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemoryMode {
    Strict,
    Preferred,
    Interleave,
}

impl MemoryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryMode::Strict => "strict",
            MemoryMode::Preferred => "preferred",
            MemoryMode::Interleave => "interleave",
        }
    }
}

/// One slice of guest memory to place: which host cell it belongs to (by
/// position), how many MB, and where it may go.
#[derive(Debug, Clone, PartialEq)]
pub struct Demand {
    /// Host cell positions the slice targets, with the share of the slice each gets.
    pub targets: Vec<(usize, f64)>,
    pub mb: f64,
    /// Spill to other cells when the targets are full (everything but strict).
    pub may_spill: bool,
    /// Hugepages the fit already reserved on the target cell: placed there
    /// without touching the general free memory.
    pub reserved: bool,
}

/// For each demand, the MB placed per host cell; `None` if the guest must
/// be killed.
pub type Placement = Vec<Vec<f64>>;

/// Places demands on cells with `free[c]` MB of free physical memory.
pub fn place(free: &[f64], distances: &[Vec<u32>], demands: &[Demand]) -> Option<Placement> {
    let n = free.len();
    let mut left: Vec<f64> = free.to_vec();
    let mut out = Vec::with_capacity(demands.len());
    for d in demands {
        let mut placed = vec![0.0; n];
        if d.reserved {
            for &(cell, share) in &d.targets {
                placed[cell] += d.mb * share;
            }
            out.push(placed);
            continue;
        }
        let mut overflow = 0.0;
        for &(cell, share) in &d.targets {
            let want = d.mb * share;
            let take = want.min(left[cell].max(0.0));
            left[cell] -= take;
            placed[cell] += take;
            overflow += want - take;
        }
        if overflow <= 1e-9 {
            out.push(placed);
            continue;
        }
        if !d.may_spill {
            return None;
        }
        // Spill from the first target, nearest cells first.
        let origin = d.targets.first().map_or(0, |t| t.0);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&c| (distances[origin][c], c));
        for c in order {
            let take = overflow.min(left[c].max(0.0));
            left[c] -= take;
            placed[c] += take;
            overflow -= take;
            if overflow <= 1e-9 {
                break;
            }
        }
        if overflow > 1e-9 {
            return None;
        }
        out.push(placed);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_by_two() -> Vec<Vec<u32>> {
        vec![vec![10, 21], vec![21, 10]]
    }

    #[test]
    fn strict_kills_when_the_cell_is_full() {
        let d = [Demand {
            targets: vec![(0, 1.0)],
            mb: 3000.0,
            may_spill: false,
            reserved: false,
        }];
        assert_eq!(
            place(&[4000.0, 4000.0], &two_by_two(), &d),
            Some(vec![vec![3000.0, 0.0]])
        );
        assert_eq!(place(&[2000.0, 4000.0], &two_by_two(), &d), None);
    }

    #[test]
    fn preferred_spills_to_the_nearest_cell() {
        let dist = vec![vec![10, 12, 20], vec![12, 10, 20], vec![20, 20, 10]];
        let d = [Demand {
            targets: vec![(2, 1.0)],
            mb: 3000.0,
            may_spill: true,
            reserved: false,
        }];
        assert_eq!(
            place(&[4000.0, 4000.0, 1000.0], &dist, &d),
            Some(vec![vec![2000.0, 0.0, 1000.0]])
        );
        let d = [Demand {
            targets: vec![(0, 1.0)],
            mb: 3000.0,
            may_spill: true,
            reserved: false,
        }];
        assert_eq!(
            place(&[1000.0, 1500.0, 4000.0], &dist, &d),
            Some(vec![vec![1000.0, 1500.0, 500.0]])
        );
        assert_eq!(place(&[1000.0, 500.0, 500.0], &dist, &d), None);
    }

    #[test]
    fn interleave_splits_evenly() {
        let d = [Demand {
            targets: vec![(0, 0.5), (1, 0.5)],
            mb: 3000.0,
            may_spill: true,
            reserved: false,
        }];
        assert_eq!(
            place(&[4000.0, 4000.0], &two_by_two(), &d),
            Some(vec![vec![1500.0, 1500.0]])
        );
        assert_eq!(
            place(&[4000.0, 1000.0], &two_by_two(), &d),
            Some(vec![vec![2000.0, 1000.0]])
        );
    }
}

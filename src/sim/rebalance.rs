//! The two placements that keep working after a guest starts: numad's
//! advice (and its periodic re-advice) and Linux's automatic NUMA
//! balancing. Pure functions over one host's per-cell state; the engine
//! applies what they decide.
//!
//! Models and what they reproduce (also in ARCHITECTURE.md):
//! - numad (numad(8), the daemon libvirt asks with `numad -w CPUS:MB` for
//!   `<vcpu placement='auto'>`): each node's available CPUs and memory are
//!   what is left under the target utilisation (`-u`, 85 % by default); the
//!   node with the largest product of the two comes first, then nodes in
//!   order of SLIT distance from it until the request's CPUs and memory fit.
//!   Every `interval_s` numad looks again; it moves a guest when the new
//!   advice uses fewer nodes, or when the guest's current nodes are
//!   oversubscribed and the advised ones are not, and the pages then
//!   migrate to the new nodeset.
//! - autonuma (`kernel.numa_balancing`): the guest starts as libvirt's
//!   default places it (vCPUs float, pages where the vCPUs run); the
//!   scheduler then settles its threads on a preferred node (the one holding
//!   most of its pages among those with room for its vCPUs) and the NUMA
//!   hinting faults migrate its remote pages there at the scan rate: the
//!   scanner walks the guest's memory in passes of `scan_mb_per_s` per
//!   second, and the remote pages it finds move. A guest with more vCPUs than a node has idle
//!   CPUs never settles (the balancing cannot help it).

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

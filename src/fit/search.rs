//! `numa_fit_instance_to_host`: order the host cells, then look for the
//! first ordering (in `itertools.permutations` order) whose every pair fits
//! and which satisfies the PCI and network requests.
//!
//! Nova walks every permutation. numasim gets the same answer without that:
//! - `Mode::Clean` evaluates each (host cell, guest cell) pair once and
//!   prunes every prefix that cannot be completed (a bipartite matching of
//!   the remaining guest cells onto the remaining host cells), so a search
//!   that fails, fails in polynomial time.
//! - `Mode::Nova` replays Nova's walk with its caches and mutations, but
//!   skips the permutations that provably repeat a walk that changed nothing
//!   (same prefix up to the failing position, same state), and stops as soon
//!   as some guest cell is refused by every host cell in the cache.

use super::cell::{CellFit, fit_cell};
use super::host::{HostCell, HostTopology, Limits, NetworkMetadata, PciPool, PciRequest};
use super::pci;
use super::{FitError, Mode};
use crate::request::{CpuPolicy, GuestCell, GuestTopology};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    pub mode: Mode,
    /// `[compute] packing_host_numa_cells_allocation_strategy`.
    pub pack: bool,
}

/// PCI pools of the host and requests of the guest, if any.
#[derive(Debug, Clone, Default)]
pub struct PciContext<'a> {
    /// `Some` when the host reports PCI stats (even with no pools).
    pub pools: Option<&'a [PciPool]>,
    pub requests: &'a [PciRequest],
}

/// Host cell indices in the order Nova tries them.
fn ordered_cells(
    host: &HostTopology,
    guest: &GuestTopology,
    pci: &PciContext,
    pack: bool,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..host.cells.len()).collect();
    if host.cells.len() <= guest.cells.len() {
        return order;
    }
    let cells = &host.cells;
    // Python's sorted(reverse=True) is stable: equal keys keep their order.
    let sort = |order: &mut Vec<usize>, key: &dyn Fn(&HostCell) -> i64, descending: bool| {
        order.sort_by(|&a, &b| {
            let (ka, kb) = (key(&cells[a]), key(&cells[b]));
            if descending { kb.cmp(&ka) } else { ka.cmp(&kb) }
        });
    };
    sort(&mut order, &|c| c.avail_memory(), !pack);
    if matches!(guest.cells[0].cpu_policy, None | Some(CpuPolicy::Shared)) {
        sort(&mut order, &|c| c.cpu_usage, pack);
    } else {
        sort(&mut order, &|c| c.avail_pcpus() as i64, !pack);
    }
    if let Some(pools) = pci.pools {
        sort(
            &mut order,
            &|c| pci::count_on_node(pools, c.id),
            !pci.requests.is_empty(),
        );
    }
    order
}

/// `_numa_cells_support_network_metadata`.
fn network_ok(host: &HostTopology, chosen: &[usize], wanted: &NetworkMetadata) -> bool {
    let mut required: Vec<&String> = wanted.physnets.iter().collect();
    if !required.is_empty() {
        for &i in chosen {
            if let Some(nm) = &host.cells[i].network_metadata {
                required.retain(|p| !nm.physnets.contains(p));
            }
        }
        for c in &host.cells {
            if let Some(nm) = &c.network_metadata
                && required.iter().any(|p| nm.physnets.contains(p))
            {
                return false;
            }
        }
    }
    if wanted.tunneled {
        if chosen.iter().any(|&i| {
            host.cells[i]
                .network_metadata
                .as_ref()
                .is_some_and(|n| n.tunneled)
        }) {
            return true;
        }
        if host
            .cells
            .iter()
            .any(|c| c.network_metadata.as_ref().is_some_and(|n| n.tunneled))
        {
            return false;
        }
    }
    true
}

struct Checks<'a> {
    host: &'a HostTopology,
    pci: &'a PciContext<'a>,
    network: Option<&'a NetworkMetadata>,
}

impl Checks<'_> {
    fn whole_placement_ok(&self, chosen_hosts: &[usize], chosen_cells: &[&GuestCell]) -> bool {
        if !self.pci.requests.is_empty()
            && let Some(pools) = self.pci.pools
        {
            let ids: Vec<i64> = chosen_cells.iter().map(|c| c.id).collect();
            if !pci::support_requests(pools, self.pci.requests, &ids, &self.host.cells) {
                return false;
            }
        }
        if let Some(nm) = self.network
            && !network_ok(self.host, chosen_hosts, nm)
        {
            return false;
        }
        true
    }
}

/// `numa_fit_instance_to_host`: the fitted guest topology (cells carry the
/// host cell id, page size, pinning), or `None`.
pub fn fit_instance_to_host(
    host: &HostTopology,
    guest: &GuestTopology,
    limits: Option<&Limits>,
    pci: &PciContext,
    opts: &FitOptions,
) -> Result<Option<GuestTopology>, FitError> {
    if host.cells.is_empty() || guest.cells.is_empty() || host.cells.len() < guest.cells.len() {
        return Ok(None);
    }
    let order = ordered_cells(host, guest, pci, opts.pack);
    let checks = Checks {
        host,
        pci,
        network: limits.and_then(|l| l.network_metadata.as_ref()),
    };
    match opts.mode {
        Mode::Nova => nova_walk(host, guest, limits, &order, &checks),
        Mode::Clean => clean_search(host, guest, limits, &order, &checks),
    }
}

/// Advances a k-permutation of `0..n` (in lexicographic order) by changing
/// position `pos` and resetting everything after it. `false` when exhausted.
fn advance(perm: &mut [usize], n: usize, mut pos: usize) -> bool {
    loop {
        let used: Vec<bool> = {
            let mut u = vec![false; n];
            for &p in &perm[..pos] {
                u[p] = true;
            }
            u
        };
        if let Some(next) = (perm[pos] + 1..n).find(|&c| !used[c]) {
            perm[pos] = next;
            let mut used = used;
            used[next] = true;
            let mut free = (0..n).filter(|&c| !used[c]);
            for slot in perm[pos + 1..].iter_mut() {
                *slot = free.next().expect("k <= n");
            }
            return true;
        }
        if pos == 0 {
            return false;
        }
        pos -= 1;
    }
}

/// Nova's loop, literally, minus walks that provably repeat.
fn nova_walk(
    host: &HostTopology,
    guest: &GuestTopology,
    limits: Option<&Limits>,
    order: &[usize],
    checks: &Checks,
) -> Result<Option<GuestTopology>, FitError> {
    let n = order.len();
    let k = guest.cells.len();
    let mut cells: Vec<GuestCell> = guest.cells.clone();
    let mut fit_cache: HashSet<(i64, i64)> = HashSet::new();
    let mut not_fit_cache: HashSet<(i64, i64)> = HashSet::new();
    let host_ids: Vec<i64> = host.cells.iter().map(|c| c.id).collect();
    let isolate_emulator = guest.emulator_threads_isolated();
    let mut perm: Vec<usize> = (0..k).collect();
    loop {
        // A guest cell refused by every host cell under its current id can
        // never fit again (its id only changes when it fits): no permutation
        // can succeed.
        if cells
            .iter()
            .any(|c| host_ids.iter().all(|&h| not_fit_cache.contains(&(h, c.id))))
        {
            return Ok(None);
        }
        let mut changed = false;
        let mut chosen: Vec<usize> = Vec::with_capacity(k);
        let mut broke_at = None;
        for (g, &p) in perm.iter().enumerate() {
            let h = order[p];
            let hc = &host.cells[h];
            let key = (hc.id, cells[g].id);
            if not_fit_cache.contains(&key) {
                broke_at = Some(g);
                break;
            }
            if fit_cache.contains(&key) {
                if cells[g].id != hc.id {
                    cells[g].id = hc.id;
                    changed = true;
                }
                chosen.push(h);
                continue;
            }
            let reserved = usize::from(isolate_emulator && chosen.is_empty());
            let before = cells[g].clone();
            let fit = fit_cell(hc, &mut cells[g], limits, reserved, Mode::Nova)?;
            changed |= cells[g] != before;
            if fit == CellFit::NoFit {
                changed |= not_fit_cache.insert(key);
                broke_at = Some(g);
                break;
            }
            changed |= fit_cache.insert(key);
            chosen.push(h);
        }
        if broke_at.is_none() {
            let refs: Vec<&GuestCell> = cells.iter().collect();
            if checks.whole_placement_ok(&chosen, &refs) {
                return Ok(Some(GuestTopology {
                    cells,
                    emulator_threads_policy: guest.emulator_threads_policy,
                }));
            }
        }
        let pos = match broke_at {
            // Nothing changed: every permutation sharing this prefix would
            // walk the same way and break at the same place.
            Some(g) if !changed => g,
            _ => k - 1,
        };
        if !advance(&mut perm, n, pos) {
            return Ok(None);
        }
    }
}

/// Pair evaluations of the clean search: each (host cell position, guest
/// cell) pair once, on a fresh copy of the request's cell.
struct CleanPairs<'a> {
    host: &'a HostTopology,
    guest: &'a GuestTopology,
    limits: Option<&'a Limits>,
    order: &'a [usize],
    memo: HashMap<(usize, usize), Option<GuestCell>>,
}

impl CleanPairs<'_> {
    fn fits(&mut self, p: usize, g: usize) -> Result<bool, FitError> {
        if let Some(r) = self.memo.get(&(p, g)) {
            return Ok(r.is_some());
        }
        let mut cell = self.guest.cells[g].clone();
        // Emulator threads go with guest cell 0, which is always placed first.
        let reserved = usize::from(self.guest.emulator_threads_isolated() && g == 0);
        let fit = fit_cell(
            &self.host.cells[self.order[p]],
            &mut cell,
            self.limits,
            reserved,
            Mode::Clean,
        )?;
        let ok = fit == CellFit::Fits;
        self.memo.insert((p, g), ok.then_some(cell));
        Ok(ok)
    }
}

/// Cache-free search, depth-first in permutation order, pruning prefixes
/// whose remaining guest cells cannot be matched to the remaining host cells.
fn clean_search(
    host: &HostTopology,
    guest: &GuestTopology,
    limits: Option<&Limits>,
    order: &[usize],
    checks: &Checks,
) -> Result<Option<GuestTopology>, FitError> {
    let n = order.len();
    let k = guest.cells.len();
    let mut pairs = CleanPairs {
        host,
        guest,
        limits,
        order,
        memo: HashMap::new(),
    };
    let mut perm: Vec<usize> = Vec::with_capacity(k);
    let mut used = vec![false; n];
    let mut next_candidate = vec![0usize; k + 1];
    loop {
        let depth = perm.len();
        if depth == k {
            let chosen_hosts: Vec<usize> = perm.iter().map(|&p| order[p]).collect();
            let cells: Vec<GuestCell> = perm
                .iter()
                .enumerate()
                .map(|(g, &p)| pairs.memo[&(p, g)].clone().expect("fits"))
                .collect();
            let refs: Vec<&GuestCell> = cells.iter().collect();
            if checks.whole_placement_ok(&chosen_hosts, &refs) {
                return Ok(Some(GuestTopology {
                    cells,
                    emulator_threads_policy: guest.emulator_threads_policy,
                }));
            }
            let p = perm.pop().expect("k >= 1");
            used[p] = false;
            continue;
        }
        let mut advanced = false;
        while next_candidate[depth] < n {
            let p = next_candidate[depth];
            next_candidate[depth] += 1;
            if used[p] || !pairs.fits(p, depth)? {
                continue;
            }
            used[p] = true;
            if completable(&used, depth + 1, k, n, &mut pairs)? {
                perm.push(p);
                next_candidate[depth + 1] = 0;
                advanced = true;
                break;
            }
            used[p] = false;
        }
        if !advanced {
            let Some(p) = perm.pop() else { return Ok(None) };
            used[p] = false;
        }
    }
}

/// Whether guest cells `from..k` can each get a distinct unused host cell
/// they fit on (Kuhn's augmenting paths; k and n are at most a few dozen).
fn completable(
    used: &[bool],
    from: usize,
    k: usize,
    n: usize,
    pairs: &mut CleanPairs,
) -> Result<bool, FitError> {
    let mut owner: Vec<Option<usize>> = vec![None; n];
    for g in from..k {
        let mut seen = vec![false; n];
        if !augment(g, used, &mut owner, &mut seen, n, pairs)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn augment(
    g: usize,
    used: &[bool],
    owner: &mut [Option<usize>],
    seen: &mut [bool],
    n: usize,
    pairs: &mut CleanPairs,
) -> Result<bool, FitError> {
    for p in 0..n {
        if used[p] || seen[p] || !pairs.fits(p, g)? {
            continue;
        }
        seen[p] = true;
        let free = match owner[p] {
            None => true,
            Some(other) => augment(other, used, owner, seen, n, pairs)?,
        };
        if free {
            owner[p] = Some(g);
            return Ok(true);
        }
    }
    Ok(false)
}

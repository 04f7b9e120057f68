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
//!   as no future walk can succeed (`provably_hopeless`).

use super::cell::{CellFit, Rules, fit_cell, may_fit};
use super::host::{HostCell, HostTopology, Limits, NetworkMetadata, PciPool, PciRequest};
use super::pci;
use super::{FitError, Mode};
use crate::request::{CpuPolicy, GuestCell, GuestTopology};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub mode: Mode,
    /// `[compute] packing_host_numa_cells_allocation_strategy`.
    pub pack: bool,
    /// Nova's per-cell memory checks (see `cell::Rules`).
    pub cell_memory: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            mode: Mode::Nova,
            pack: false,
            cell_memory: true,
        }
    }
}

impl FitOptions {
    fn rules(&self) -> Rules {
        Rules {
            mode: self.mode,
            cell_memory: self.cell_memory,
        }
    }
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
        let keys: Vec<i64> = cells.iter().map(key).collect();
        order.sort_by(|&a, &b| {
            if descending {
                keys[b].cmp(&keys[a])
            } else {
                keys[a].cmp(&keys[b])
            }
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
    // A one-cell guest is checked against each host cell afresh (no cache can
    // hit), so if no cell passes the mutation-free checks, nothing fits.
    if guest.cells.len() == 1 {
        let reserved = usize::from(guest.emulator_threads_isolated());
        if !host
            .cells
            .iter()
            .any(|h| may_fit(h, &guest.cells[0], limits, reserved, opts.rules()))
        {
            return Ok(None);
        }
    }
    let order = ordered_cells(host, guest, pci, opts.pack);
    let checks = Checks {
        host,
        pci,
        network: limits.and_then(|l| l.network_metadata.as_ref()),
    };
    match opts.mode {
        Mode::Nova => nova_walk(host, guest, limits, &order, &checks, opts.rules()),
        Mode::Clean => clean_search(host, guest, limits, &order, &checks, opts.rules()),
    }
}

/// Beyond Nova, which ignores distances: among the orderings of host cells
/// that fit (checked as in `Mode::Clean`), the one whose host cells are
/// closest together — the smallest sum of SLIT distances over pairs of guest
/// cells — ties going to the first in Nova's order. `distances` is indexed
/// by host cell position. A one-cell guest gets the clean first fit.
/// Branch and bound: a prefix whose cost already reaches the best is cut,
/// and so is one whose remaining guest cells cannot be matched.
pub fn fit_closest(
    host: &HostTopology,
    guest: &GuestTopology,
    limits: Option<&Limits>,
    distances: &[Vec<u32>],
    opts: &FitOptions,
) -> Result<Option<GuestTopology>, FitError> {
    let clean = FitOptions {
        mode: Mode::Clean,
        ..opts.clone()
    };
    if guest.cells.len() < 2 || host.cells.len() < guest.cells.len() {
        return fit_instance_to_host(host, guest, limits, &PciContext::default(), &clean);
    }
    let order = ordered_cells(host, guest, &PciContext::default(), opts.pack);
    let n = order.len();
    let k = guest.cells.len();
    let mut pairs = CleanPairs {
        rules: clean.rules(),
        host,
        guest,
        limits,
        order: &order,
        memo: HashMap::new(),
    };
    let pair_cost = |a: usize, b: usize| {
        u64::from(distances[order[a]][order[b]]) + u64::from(distances[order[b]][order[a]])
    };
    let mut best: Option<(u64, Vec<usize>)> = None;
    let mut perm: Vec<usize> = Vec::with_capacity(k);
    let mut used = vec![false; n];
    let mut costs: Vec<u64> = vec![0];
    let mut next_candidate = vec![0usize; k + 1];
    loop {
        let depth = perm.len();
        let cost = *costs.last().expect("root cost");
        if depth == k {
            if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                best = Some((cost, perm.clone()));
            }
            let p = perm.pop().expect("k >= 2");
            used[p] = false;
            costs.pop();
            continue;
        }
        let mut advanced = false;
        while next_candidate[depth] < n {
            let p = next_candidate[depth];
            next_candidate[depth] += 1;
            if used[p] || !pairs.fits(p, depth)? {
                continue;
            }
            let added: u64 = perm.iter().map(|&q| pair_cost(q, p)).sum();
            if best.as_ref().is_some_and(|(b, _)| cost + added >= *b) {
                continue;
            }
            used[p] = true;
            if completable(&used, depth + 1, k, n, &mut pairs)? {
                perm.push(p);
                costs.push(cost + added);
                next_candidate[depth + 1] = 0;
                advanced = true;
                break;
            }
            used[p] = false;
        }
        if !advanced {
            let Some(p) = perm.pop() else { break };
            used[p] = false;
            costs.pop();
        }
    }
    Ok(best.map(|(_, perm)| GuestTopology {
        cells: perm
            .iter()
            .enumerate()
            .map(|(g, &p)| pairs.memo[&(p, g)].clone().expect("fits"))
            .collect(),
        emulator_threads_policy: guest.emulator_threads_policy,
    }))
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
    rules: Rules,
) -> Result<Option<GuestTopology>, FitError> {
    let n = order.len();
    let k = guest.cells.len();
    let mut cells: Vec<GuestCell> = guest.cells.clone();
    if k == 1 {
        return single_cell_walk(host, guest, cells, limits, order, checks, rules);
    }
    let mut fit_cache: HashSet<(i64, i64)> = HashSet::new();
    let mut not_fit_cache: HashSet<(i64, i64)> = HashSet::new();

    let isolate_emulator = guest.emulator_threads_isolated();
    let mut perm: Vec<usize> = (0..k).collect();
    let mut walks: u64 = 0;
    loop {
        walks += 1;
        // Nova would go on walking; stop once no walk can ever succeed.
        if walks.is_multiple_of(HOPELESS_CHECK_EVERY)
            && provably_hopeless(
                host,
                &cells,
                guest,
                &fit_cache,
                &not_fit_cache,
                limits,
                rules,
            )?
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
            let fit = fit_cell(hc, &mut cells[g], limits, reserved, rules)?;
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

/// Nova's walk for a one-cell guest: each host cell id occurs once, so every
/// key is new and every step is a fresh check (no cache can hit); the cell's
/// mutations (page size lock, pinning) still carry from one step to the next.
fn single_cell_walk(
    host: &HostTopology,
    guest: &GuestTopology,
    mut cells: Vec<GuestCell>,
    limits: Option<&Limits>,
    order: &[usize],
    checks: &Checks,
    rules: Rules,
) -> Result<Option<GuestTopology>, FitError> {
    let reserved = usize::from(guest.emulator_threads_isolated());
    for &h in order {
        if fit_cell(&host.cells[h], &mut cells[0], limits, reserved, rules)? == CellFit::NoFit {
            continue;
        }
        let refs: Vec<&GuestCell> = cells.iter().collect();
        if checks.whole_placement_ok(&[h], &refs) {
            return Ok(Some(GuestTopology {
                cells,
                emulator_threads_policy: guest.emulator_threads_policy,
            }));
        }
    }
    Ok(None)
}

/// How often (in walks) the Nova walk checks whether it can still succeed.
/// Unit tests check at every walk, so the property tests exercise it.
const HOPELESS_CHECK_EVERY: u64 = if cfg!(test) { 1 } else { 32 };

/// Whether no future walk of Nova's loop can succeed, whatever its order.
///
/// A walk succeeds only if every guest cell `g` sits on a distinct host
/// cell `h` whose key `(h.id, id of g)` is not in the no-fit cache and is,
/// or can become, a fit: already in the fit cache, or put there by a fresh
/// check of some guest cell that can carry that id. A guest cell's id only
/// ever becomes the id of a host cell it fits on (or, for pinned cells, of a
/// host cell where its vCPUs were packed before a later check refused it),
/// and the no-fit cache only grows, so the fixpoint below over-approximates
/// every future walk; if it
/// leaves no perfect matching of guest cells to host cells, Nova returns
/// `None`. Fresh checks are evaluated on copies, with every page size the
/// request could still be locked to.
fn provably_hopeless(
    host: &HostTopology,
    cells: &[GuestCell],
    request: &GuestTopology,
    fit_cache: &HashSet<(i64, i64)>,
    not_fit_cache: &HashSet<(i64, i64)>,
    limits: Option<&Limits>,
    rules: Rules,
) -> Result<bool, FitError> {
    let n = host.cells.len();
    let k = cells.len();
    let mut sizes: Vec<i64> = host
        .cells
        .iter()
        .flat_map(|c| c.mempages.iter().map(|p| p.size_kb))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let isolate = request.emulator_threads_isolated();
    let mut fresh = vec![vec![false; n]; k];
    for (g, row) in fresh.iter_mut().enumerate() {
        let reserved = usize::from(isolate && g == 0);
        // Sentinel sizes (small/large/any) are locked on the first page-size fit.
        let unlocked = cells[g].pagesize.is_some_and(|p| p < 0);
        for (h, slot) in row.iter_mut().enumerate() {
            let mut trial = cells[g].clone();
            let mut ok =
                fit_cell(&host.cells[h], &mut trial, limits, reserved, rules)? == CellFit::Fits;
            if !ok && unlocked {
                for &s in &sizes {
                    let mut t = cells[g].clone();
                    t.pagesize = Some(s);
                    if fit_cell(&host.cells[h], &mut t, limits, reserved, rules)? == CellFit::Fits {
                        ok = true;
                        break;
                    }
                }
            }
            *slot = ok;
        }
    }
    let host_ids: Vec<i64> = host.cells.iter().map(|c| c.id).collect();
    let mut ids: Vec<HashSet<i64>> = cells.iter().map(|c| HashSet::from([c.id])).collect();
    let mut possible = vec![vec![false; n]; k];
    loop {
        let mut grew = false;
        for g in 0..k {
            // A pinned cell takes the host cell's id as soon as its vCPUs are
            // packed there, even if a later check (limits) refuses it.
            let takes_id_on_any_check = CpuPolicy::pins(cells[g].cpu_policy);
            for h in 0..n {
                let hid = host_ids[h];
                let mut reached = false;
                let mut fits = false;
                for &x in &ids[g] {
                    if not_fit_cache.contains(&(hid, x)) {
                        continue;
                    }
                    reached = true;
                    if fit_cache.contains(&(hid, x))
                        || (0..k).any(|o| ids[o].contains(&x) && fresh[o][h])
                    {
                        fits = true;
                        break;
                    }
                }
                if fits && !possible[g][h] {
                    possible[g][h] = true;
                    grew = true;
                }
                if (fits || (reached && takes_id_on_any_check)) && ids[g].insert(hid) {
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }
    let mut owner: Vec<Option<usize>> = vec![None; n];
    for g in 0..k {
        let mut seen = vec![false; n];
        if !place(g, &possible, &mut owner, &mut seen) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Kuhn's augmenting path over a boolean compatibility matrix.
fn place(g: usize, possible: &[Vec<bool>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for h in 0..owner.len() {
        if possible[g][h] && !seen[h] {
            seen[h] = true;
            if owner[h].is_none_or(|o| place(o, possible, owner, seen)) {
                owner[h] = Some(g);
                return true;
            }
        }
    }
    false
}

/// Pair evaluations of the clean search: each (host cell position, guest
/// cell) pair once, on a fresh copy of the request's cell.
struct CleanPairs<'a> {
    rules: Rules,
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
            self.rules,
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
    rules: Rules,
) -> Result<Option<GuestTopology>, FitError> {
    let n = order.len();
    let k = guest.cells.len();
    let mut pairs = CleanPairs {
        rules,
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

#[cfg(test)]
mod tests {
    //! The fast searches against the exhaustive ones they replace.
    use super::*;
    use crate::fit::host::MemPages;
    use crate::request::{MEMPAGES_ANY, MEMPAGES_LARGE, MEMPAGES_SMALL, ThreadPolicy};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// All k-permutations of `0..n` in `itertools.permutations` order.
    fn permutations(n: usize, k: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        let mut perm: Vec<usize> = (0..k).collect();
        loop {
            out.push(perm.clone());
            if !advance(&mut perm, n, k - 1) {
                return out;
            }
        }
    }

    /// Nova's loop exactly as written: every permutation, caches, mutation.
    fn nova_exhaustive(
        host: &HostTopology,
        guest: &GuestTopology,
        limits: Option<&Limits>,
    ) -> Option<GuestTopology> {
        if host.cells.len() < guest.cells.len() {
            return None;
        }
        let order = ordered_cells(host, guest, &PciContext::default(), false);
        let mut cells = guest.cells.clone();
        let (mut fit_cache, mut not_fit) = (HashSet::new(), HashSet::new());
        for perm in permutations(order.len(), cells.len()) {
            let mut chosen = 0;
            for (g, &p) in perm.iter().enumerate() {
                let hc = &host.cells[order[p]];
                let key = (hc.id, cells[g].id);
                if not_fit.contains(&key) {
                    break;
                }
                if fit_cache.contains(&key) {
                    cells[g].id = hc.id;
                    chosen += 1;
                    continue;
                }
                let reserved = usize::from(guest.emulator_threads_isolated() && chosen == 0);
                if fit_cell(hc, &mut cells[g], limits, reserved, Rules::nova()).unwrap()
                    == CellFit::NoFit
                {
                    not_fit.insert(key);
                    break;
                }
                fit_cache.insert(key);
                chosen += 1;
            }
            if chosen == cells.len() {
                return Some(GuestTopology {
                    cells,
                    emulator_threads_policy: guest.emulator_threads_policy,
                });
            }
        }
        None
    }

    /// Every permutation, every pair checked on a fresh copy.
    fn clean_exhaustive(
        host: &HostTopology,
        guest: &GuestTopology,
        limits: Option<&Limits>,
    ) -> Option<GuestTopology> {
        if host.cells.len() < guest.cells.len() {
            return None;
        }
        let order = ordered_cells(host, guest, &PciContext::default(), false);
        'perm: for perm in permutations(order.len(), guest.cells.len()) {
            let mut cells = Vec::new();
            for (g, &p) in perm.iter().enumerate() {
                let mut c = guest.cells[g].clone();
                let reserved = usize::from(guest.emulator_threads_isolated() && g == 0);
                if fit_cell(
                    &host.cells[order[p]],
                    &mut c,
                    limits,
                    reserved,
                    Rules {
                        mode: Mode::Clean,
                        cell_memory: true,
                    },
                )
                .unwrap()
                    == CellFit::NoFit
                {
                    continue 'perm;
                }
                cells.push(c);
            }
            return Some(GuestTopology {
                cells,
                emulator_threads_policy: guest.emulator_threads_policy,
            });
        }
        None
    }

    fn host_cell() -> impl Strategy<Value = HostCell> {
        (
            0i64..6,
            2usize..6,
            1u32..3,
            0i64..3,
            0u32..3,
            prop::bool::ANY,
            0i64..3,
        )
            .prop_map(|(id, cores, threads, mem_gb, pinned, hugepages, usage)| {
                let base = id as u32 * 16;
                let all: Vec<u32> = (0..cores as u32 * threads).map(|i| base + i).collect();
                let siblings: Vec<Vec<u32>> = (0..cores as u32)
                    .map(|c| (0..threads).map(|t| base + t * cores as u32 + c).collect())
                    .collect();
                let (cpus, pcpus) = all.split_at(all.len() / 3);
                let pinned: Vec<u32> = pcpus.iter().copied().take(pinned as usize).collect();
                let memory = 1024 * (mem_gb + 1);
                let mut pages = vec![MemPages {
                    size_kb: 4,
                    total: memory * 256,
                    used: usage * 20000,
                    reserved: 0,
                }];
                if hugepages {
                    pages.push(MemPages {
                        size_kb: 2048,
                        total: (mem_gb + 1) * 256,
                        used: 0,
                        reserved: 0,
                    });
                }
                let mut c = HostCell::from_lists(
                    id,
                    cpus,
                    pcpus,
                    memory,
                    usage,
                    usage * 128,
                    &pinned,
                    &siblings,
                    pages,
                );
                c.socket = Some(id % 2);
                c
            })
    }

    fn guest() -> impl Strategy<Value = GuestTopology> {
        let cell = (0i64..6, 0usize..2, 0usize..2, 1i64..3, 0usize..6, 0usize..4);
        (
            prop::collection::vec(cell, 1..4),
            0usize..3,
            prop::bool::weighted(0.2),
        )
            .prop_map(|(cells, policy, emu)| {
                let cpu_policy = [None, Some(CpuPolicy::Dedicated), Some(CpuPolicy::Mixed)][policy];
                let mut next = 0u32;
                let cells = cells
                    .into_iter()
                    .map(|(id, shared, pinned, mem, page, thread)| {
                        let mut take = |n: usize| -> BTreeSet<u32> {
                            let s = (next..next + n as u32).collect();
                            next += n as u32;
                            s
                        };
                        let (cpuset, pcpuset) = match cpu_policy {
                            None => (take(shared + 1), BTreeSet::new()),
                            Some(CpuPolicy::Dedicated) => (BTreeSet::new(), take(pinned + 1)),
                            _ => (take(shared + 1), take(pinned + 1)),
                        };
                        GuestCell {
                            id,
                            cpuset,
                            pcpuset,
                            memory_mb: mem * 256,
                            pagesize: [
                                None,
                                Some(MEMPAGES_SMALL),
                                Some(MEMPAGES_LARGE),
                                Some(MEMPAGES_ANY),
                                Some(2048),
                                Some(4),
                            ][page],
                            cpu_policy,
                            cpu_thread_policy: if cpu_policy.is_some() {
                                [
                                    None,
                                    Some(ThreadPolicy::Prefer),
                                    Some(ThreadPolicy::Isolate),
                                    Some(ThreadPolicy::Require),
                                ][thread]
                            } else {
                                None
                            },
                            cpu_pinning: None,
                            cpuset_reserved: None,
                        }
                    })
                    .collect();
                let emulator_threads_policy = (emu && cpu_policy.is_some())
                    .then_some(crate::request::EmulatorPolicy::Isolate);
                GuestTopology {
                    cells,
                    emulator_threads_policy,
                }
            })
    }

    fn host() -> impl Strategy<Value = HostTopology> {
        prop::collection::vec(host_cell(), 1..6).prop_map(|mut cells| {
            // Distinct ids, kept in the generated (possibly unsorted) order.
            let mut seen = BTreeSet::new();
            cells.retain(|c| seen.insert(c.id));
            HostTopology { cells }
        })
    }

    thread_local! { static STATS: std::cell::RefCell<(u32, u32)> = const { std::cell::RefCell::new((0, 0)) }; }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn nova_walk_equals_nova_exhaustive(host in host(), guest in guest(), limited in prop::bool::ANY) {
            let limits = limited.then_some(Limits { cpu_allocation_ratio: 2.0, ram_allocation_ratio: 1.0, network_metadata: None });
            let fast = fit_instance_to_host(&host, &guest, limits.as_ref(), &PciContext::default(), &FitOptions::default()).unwrap();
            let slow = nova_exhaustive(&host, &guest, limits.as_ref());
            STATS.with(|s| { let mut s = s.borrow_mut(); s.0 += 1; if slow.is_some() { s.1 += 1; } });
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn clean_search_equals_clean_exhaustive(host in host(), guest in guest(), limited in prop::bool::ANY) {
            let limits = limited.then_some(Limits { cpu_allocation_ratio: 2.0, ram_allocation_ratio: 1.0, network_metadata: None });
            let opts = FitOptions { mode: Mode::Clean, ..FitOptions::default() };
            let fast = fit_instance_to_host(&host, &guest, limits.as_ref(), &PciContext::default(), &opts).unwrap();
            prop_assert_eq!(fast, clean_exhaustive(&host, &guest, limits.as_ref()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn closest_is_the_cheapest_fitting_ordering(host in host(), guest in guest(), seed in 0u64..1000) {
            let n = host.cells.len();
            // A symmetric SLIT-like matrix from the seed.
            let d: Vec<Vec<u32>> = (0..n).map(|i| (0..n).map(|j| if i == j { 10 } else { 11 + ((seed + (i.min(j) * 7 + i.max(j) * 3) as u64) % 20) as u32 }).collect()).collect();
            let got = fit_closest(&host, &guest, None, &d, &FitOptions::default()).unwrap();
            // Exhaustive: every fitting ordering, the cheapest, first on ties.
            let order = ordered_cells(&host, &guest, &PciContext::default(), false);
            let mut best: Option<(u64, Vec<i64>)> = None;
            if host.cells.len() >= guest.cells.len() {
                'perm: for perm in permutations(order.len(), guest.cells.len()) {
                    for (g, &p) in perm.iter().enumerate() {
                        let mut c = guest.cells[g].clone();
                        let reserved = usize::from(guest.emulator_threads_isolated() && g == 0);
                        if fit_cell(&host.cells[order[p]], &mut c, None, reserved, Rules { mode: Mode::Clean, cell_memory: true }).unwrap() == CellFit::NoFit {
                            continue 'perm;
                        }
                    }
                    let cost: u64 = if guest.cells.len() < 2 { 0 } else {
                        (0..perm.len()).flat_map(|a| (0..a).map(move |b| (a, b))).map(|(a, b)| u64::from(d[order[perm[a]]][order[perm[b]]] + d[order[perm[b]]][order[perm[a]]])).sum()
                    };
                    if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                        best = Some((cost, perm.iter().map(|&p| host.cells[order[p]].id).collect()));
                    }
                    if guest.cells.len() < 2 { break; }
                }
            }
            prop_assert_eq!(got.map(|t| t.cells.iter().map(|c| c.id).collect::<Vec<_>>()), best.map(|b| b.1));
        }
    }

    #[test]
    fn generated_cases_are_not_trivial() {
        // Run the property once more and make sure both outcomes occur.
        nova_walk_equals_nova_exhaustive();
        STATS.with(|s| {
            let (total, fits) = *s.borrow();
            assert!(
                fits * 10 > total && fits * 10 < total * 9,
                "{fits} of {total} fit"
            );
        });
    }

    #[test]
    fn permutations_follow_itertools_order() {
        let p = permutations(3, 2);
        assert_eq!(
            p,
            vec![
                vec![0, 1],
                vec![0, 2],
                vec![1, 0],
                vec![1, 2],
                vec![2, 0],
                vec![2, 1]
            ]
        );
    }
}

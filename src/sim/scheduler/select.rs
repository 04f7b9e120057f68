//! Weighing and choosing, as Nova's `HostWeightHandler` and
//! `_get_sorted_hosts` do, two ways:
//!
//! - [`rank_all`]: Nova's own procedure over every surviving host (each
//!   weigher's raw weights clamped, normalised over the survivors,
//!   multiplied and summed in weigher order; a stable sort, descending).
//!   It is the reference, and what `explain` shows.
//! - [`HostIndex`]: the same choice without weighing every host. A host's
//!   weight is a sum of terms, each monotone in one per-host quantity once
//!   the normalisation bounds are known, and those bounds are the
//!   quantities' extremes over the survivors. A segment tree over the
//!   fleet keeps each quantity's minimum and maximum (and each resource
//!   class's largest room) per subtree, so the extremes and then the
//!   hosts in descending weight come out of best-first searches that test
//!   only the hosts they reach. Float weights are computed with the same
//!   operations in the same order for a host and for a subtree's bound, and
//!   rounding is monotone, so a bound is never below any weight beneath it:
//!   the order found is exactly the full scan's, ties included (equal
//!   weights keep fleet order). A property test compares the two.

use super::placement::{Amounts, NovaHost};
use super::{Quantity, SchedulerConfig, Weigher, quantity};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One weigher that can change an order: its quantity and multiplier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Term {
    pub weigher: Weigher,
    pub quantity: Quantity,
    pub multiplier: f64,
    pub minval: Option<f64>,
}

/// The enabled weighers that read a quantity varying between hosts, in
/// summation order. Weighers that give every host the same weight
/// normalise to 0 and add nothing, so they are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Weighing {
    pub terms: Vec<Term>,
}

/// A term's normalisation over the survivors: `(max(v, minval) - lo) / (hi - lo)`, 0 when `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Norm {
    pub lo: f64,
    pub hi: f64,
}

impl Weighing {
    pub fn new(config: &SchedulerConfig) -> Weighing {
        let terms = config
            .weighting()
            .into_iter()
            .filter(|&(_, m)| m != 0.0)
            .filter_map(|(w, m)| {
                Some(Term {
                    weigher: w,
                    quantity: quantity(w)?,
                    multiplier: m,
                    minval: w.minval(),
                })
            })
            .collect();
        Weighing { terms }
    }

    /// Without the terms whose quantity is the same on every host and never
    /// changes in a run (hypervisor version, failed builds, free disk while
    /// no guest asks for disk, free PCI devices while no guest asks for
    /// some): they normalise to 0 everywhere.
    pub fn without_constant(
        mut self,
        hosts: &[NovaHost],
        disk_changes: bool,
        pci_changes: bool,
    ) -> Weighing {
        self.terms.retain(|t| {
            let fixed = match t.quantity {
                Quantity::HypervisorVersion | Quantity::FailedBuilds => true,
                Quantity::FreeDiskMb => !disk_changes,
                Quantity::PciWeight => !pci_changes,
                _ => false,
            };
            let first = hosts.first().map(|h| value(h, t.quantity));
            !fixed || hosts.iter().any(|h| Some(value(h, t.quantity)) != first)
        });
        self
    }

    /// The term's normalised weight for raw value `v`.
    fn normalised(term: &Term, norm: Norm, v: f64) -> f64 {
        if norm.lo == norm.hi {
            return 0.0;
        }
        let v = term.minval.map_or(v, |m| v.max(m));
        (v - norm.lo) / (norm.hi - norm.lo)
    }

    /// The total weight from per-term raw values (a host's, or a subtree's
    /// extremes for a bound), summed as Nova sums it.
    pub fn weight(&self, norms: &[Norm], value: impl Fn(usize) -> f64) -> f64 {
        let mut w = 0.0;
        for (k, term) in self.terms.iter().enumerate() {
            w += term.multiplier * Self::normalised(term, norms[k], value(k));
        }
        w
    }

    /// Each term's normalised weight (before the multiplier) for a host.
    pub fn scores(&self, norms: &[Norm], host: &NovaHost) -> Vec<f64> {
        self.terms
            .iter()
            .zip(norms)
            .map(|(t, &n)| Self::normalised(t, n, value(host, t.quantity)))
            .collect()
    }

    /// A term's normalisation from the raw extremes over the survivors.
    fn norm(term: &Term, min: f64, max: f64) -> Norm {
        match term.minval {
            Some(m) => Norm {
                lo: m,
                hi: max.max(m),
            },
            None => Norm { lo: min, hi: max },
        }
    }
}

/// A host's raw value of a quantity.
pub fn value(host: &NovaHost, q: Quantity) -> f64 {
    match q {
        Quantity::FreeRamMb => host.free_ram_mb() as f64,
        Quantity::FreeVcpus => host.free_vcpus(),
        Quantity::FreeDiskMb => host.free_disk_mb() as f64,
        Quantity::NumInstances => host.num_instances as f64,
        Quantity::HypervisorVersion => host.compute.hypervisor_version as f64,
        Quantity::FailedBuilds => host.compute.failed_builds as f64,
        Quantity::PciWeight => (100 - host.free_pci.min(99)) as f64,
    }
}

/// Survivors (fleet order) ranked as Nova ranks them: `(host, weight)`,
/// descending, stable. With one survivor Nova does not weigh (weight 0).
pub fn rank_all(
    weighing: &Weighing,
    hosts: &[NovaHost],
    survivors: &[usize],
) -> (Vec<Norm>, Vec<(usize, f64)>) {
    if survivors.len() <= 1 {
        return (Vec::new(), survivors.iter().map(|&h| (h, 0.0)).collect());
    }
    let norms: Vec<Norm> = weighing
        .terms
        .iter()
        .map(|t| {
            let vals = survivors.iter().map(|&h| value(&hosts[h], t.quantity));
            let (min, max) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
            Weighing::norm(t, min, max)
        })
        .collect();
    let mut ranked: Vec<(usize, f64)> = survivors
        .iter()
        .map(|&h| {
            let host = &hosts[h];
            let w = weighing.weight(&norms, |k| value(host, weighing.terms[k].quantity));
            (h, w)
        })
        .collect();
    ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));
    (norms, ranked)
}

/// The host `_get_sorted_hosts` returns first, from the best hosts in
/// rank order (all of them, or at least what [`enough`] asks for).
pub fn choose(config: &SchedulerConfig, ranked: &[(usize, f64)], rng: &mut PyRandom) -> Choice {
    let mut order: Vec<(usize, f64)> = ranked.to_vec();
    if config.shuffle_best_same_weighed_hosts && !order.is_empty() {
        let best = order[0].1;
        let tied = order.iter().take_while(|h| h.1 == best).count();
        rng.shuffle(&mut order[..tied]);
    }
    let subset = config.host_subset_size.min(order.len());
    let k = rng.choice(subset);
    Choice {
        host: order[k].0,
        weight: order[k].1,
    }
}

use super::pyrandom::PyRandom;

/// The chosen host and its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub host: usize,
    pub weight: f64,
}

/// Per-subtree extremes of the quantities the weighing reads: over the
/// hosts (with each resource class's largest room, to skip subtrees where
/// Placement has no candidate), for the survivors' extremes; and over the
/// distinct host states (the quantities' values), for the ranking. Hosts
/// in one state weigh the same, so a busy fleet's thousands of hosts tied
/// at the best weight are one leaf, and their fleet order is a sorted set.
#[derive(Debug, Clone)]
pub struct HostIndex {
    quantities: Vec<Quantity>,
    hosts: Tree,
    states: Tree,
    slot_of: HashMap<Vec<u64>, usize>,
    /// Per state slot: its hosts in fleet order, and its values.
    members: Vec<BTreeSet<usize>>,
    values: Vec<Vec<f64>>,
    free_slots: Vec<usize>,
    host_slot: Vec<usize>,
}

use std::collections::{BTreeSet, HashMap};

/// Projection directions: `LAMBDA[k] = 2^(k/2 - 24)`, RAM MB per unit of
/// free vCPU from 2^-24 to 2^23.5, which covers any normalisation and
/// multiplier ratio in practice; outside it the box bound is used alone.
const DIRECTIONS: usize = 96;

fn lambda(k: usize) -> f64 {
    LAMBDAS.with(|l| l[k])
}

thread_local! {
    static LAMBDAS: [f64; DIRECTIONS] = std::array::from_fn(|k| (k as f64 / 2.0 - 24.0).exp2());
}

/// A segment tree over leaves that each hold a point (a value per
/// quantity) or nothing: per node the minimum and maximum of each
/// quantity, the number of points, optionally the largest room per
/// resource class, and optionally, when the RAM and CPU weighers both count
/// (positive multipliers, clamped at 0), the largest
/// `max(ram, 0) + LAMBDA[k] * max(cpu, 0)` per direction `k`. A box of
/// per-quantity maxima bounds a subtree loosely when its best-RAM and
/// best-CPU points differ, which on a busy fleet is nearly every subtree;
/// the projections bound it close to its best point in any direction
/// between two of theirs.
#[derive(Debug, Clone)]
struct Tree {
    size: usize,
    q: usize,
    max: Vec<f64>,
    min: Vec<f64>,
    live: Vec<u32>,
    room: Vec<f64>,
    pair: Option<(usize, usize)>,
    proj: Vec<f64>,
}

impl Tree {
    fn new(leaves: usize, q: usize, rooms: bool, pair: Option<(usize, usize)>) -> Tree {
        let size = leaves.next_power_of_two().max(1);
        Tree {
            size,
            q,
            max: vec![f64::NEG_INFINITY; 2 * size * q],
            min: vec![f64::INFINITY; 2 * size * q],
            live: vec![0; 2 * size],
            room: if rooms {
                vec![f64::NEG_INFINITY; 2 * size * ROOMS]
            } else {
                Vec::new()
            },
            pair,
            proj: if pair.is_some() {
                vec![f64::NEG_INFINITY; 2 * size * DIRECTIONS]
            } else {
                Vec::new()
            },
        }
    }

    /// Sets leaf `i` (`None`: empty) without updating its ancestors.
    fn put(&mut self, i: usize, point: Option<(&[f64], [f64; ROOMS])>) {
        let (q, node) = (self.q, self.size + i);
        self.live[node] = u32::from(point.is_some());
        for k in 0..q {
            let v = point.map(|p| p.0[k]);
            self.max[node * q + k] = v.unwrap_or(f64::NEG_INFINITY);
            self.min[node * q + k] = v.unwrap_or(f64::INFINITY);
        }
        if !self.room.is_empty() {
            for c in 0..ROOMS {
                self.room[node * ROOMS + c] = point.map_or(f64::NEG_INFINITY, |p| p.1[c]);
            }
        }
        if let Some((r, c)) = self.pair {
            for k in 0..DIRECTIONS {
                self.proj[node * DIRECTIONS + k] = point.map_or(f64::NEG_INFINITY, |p| {
                    p.0[r].max(0.0) + lambda(k) * p.0[c].max(0.0)
                });
            }
        }
    }

    fn pull(&mut self, node: usize) {
        let (q, l, r) = (self.q, 2 * node, 2 * node + 1);
        self.live[node] = self.live[l] + self.live[r];
        for k in 0..q {
            self.max[node * q + k] = self.max[l * q + k].max(self.max[r * q + k]);
            self.min[node * q + k] = self.min[l * q + k].min(self.min[r * q + k]);
        }
        if !self.room.is_empty() {
            for c in 0..ROOMS {
                self.room[node * ROOMS + c] =
                    self.room[l * ROOMS + c].max(self.room[r * ROOMS + c]);
            }
        }
        if self.pair.is_some() {
            for k in 0..DIRECTIONS {
                self.proj[node * DIRECTIONS + k] =
                    self.proj[l * DIRECTIONS + k].max(self.proj[r * DIRECTIONS + k]);
            }
        }
    }

    fn build(&mut self) {
        for node in (1..self.size).rev() {
            self.pull(node);
        }
    }

    /// Sets leaf `i` and updates its ancestors.
    fn set(&mut self, i: usize, point: Option<(&[f64], [f64; ROOMS])>) {
        self.put(i, point);
        let mut node = (self.size + i) / 2;
        while node >= 1 {
            self.pull(node);
            node /= 2;
        }
    }

    /// Whether some point below `node` might be a candidate of some query
    /// and have a cell with `need.cell_pcpus` free dedicated CPUs.
    fn may_fit(&self, node: usize, need: &Need) -> bool {
        // A need of 0 asks nothing (a cell's room may be negative when overcommitted).
        let has = |amount: i64, slot: usize| {
            amount == 0 || amount as f64 <= self.room[node * ROOMS + slot]
        };
        self.live[node] > 0
            && (self.room.is_empty()
                || (has(need.cell_pcpus, CELL_PCPUS)
                    && has(need.cell_hugepages_mb, CELL_HUGEPAGES)
                    && has(need.cell_memory_mb, CELL_MEMORY)
                    && has(need.cell_pinned_memory_mb, CELL_PINNED_MEMORY)
                    && need.queries.iter().any(|a| {
                        a.amounts.iter().enumerate().all(|(c, &amount)| {
                            amount == 0 || self.room[node * ROOMS + c] >= amount as f64
                        })
                    })))
    }

    /// The leftmost leaf position below `node`.
    fn first(&self, node: usize) -> usize {
        let mut n = node;
        while n < self.size {
            n *= 2;
        }
        n - self.size
    }

    /// Best-first over the tree by `key(node)`; calls `visit(leaf, key)`
    /// for each point reached, in key order (equal keys: leftmost first),
    /// until it returns `false`.
    fn search(
        &self,
        need: &Need,
        key: impl Fn(usize) -> f64,
        mut visit: impl FnMut(usize, f64) -> bool,
    ) {
        let mut heap = BinaryHeap::new();
        if !self.may_fit(1, need) {
            return;
        }
        let entry = |node: usize| Entry {
            key: key(node),
            first: self.first(node),
            node,
            leaf: node >= self.size,
        };
        heap.push(entry(1));
        while let Some(e) = heap.pop() {
            if e.leaf {
                if !visit(e.node - self.size, e.key) {
                    return;
                }
                continue;
            }
            for child in [2 * e.node, 2 * e.node + 1] {
                if self.may_fit(child, need) {
                    heap.push(entry(child));
                }
            }
        }
    }

    /// An upper bound of `a * max(ram, 0) / ram_hi + b * max(cpu, 0) / cpu_hi`
    /// over the points below `node` from its projections (`None` when the
    /// direction is outside the grid), with a relative margin far above
    /// the rounding of either computation.
    fn pair_bound(&self, node: usize, a: f64, ram_hi: f64, b: f64, cpu_hi: f64) -> Option<f64> {
        let (wr, wc) = (a / ram_hi, b / cpu_hi);
        let direction = wc / wr;
        let pos = (direction.log2() + 24.0) * 2.0;
        if !(pos >= 0.0 && pos < (DIRECTIONS - 1) as f64) {
            return None;
        }
        let k = pos.floor() as usize;
        let (lo, hi) = (lambda(k), lambda(k + 1));
        // direction = alpha * lo + (1 - alpha) * hi, and for c >= 0:
        // r + direction * c <= alpha * M[k] + (1 - alpha) * M[k + 1].
        let alpha = ((hi - direction) / (hi - lo)).clamp(0.0, 1.0);
        let m = alpha * self.proj[node * DIRECTIONS + k]
            + (1.0 - alpha) * self.proj[node * DIRECTIONS + k + 1];
        let bound = wr * m;
        Some(bound + bound.abs() * 1e-9 + 1e-300)
    }
}

/// A best-first search entry: larger key first; at equal keys the smaller
/// first leaf position, and a subtree before the leaf starting there.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    key: f64,
    first: usize,
    node: usize,
    leaf: bool,
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .total_cmp(&other.key)
            .then(other.first.cmp(&self.first))
            .then(other.leaf.cmp(&self.leaf))
    }
}

impl HostIndex {
    pub fn new(weighing: &Weighing, hosts: &[NovaHost]) -> HostIndex {
        let mut quantities: Vec<Quantity> = Vec::new();
        for t in &weighing.terms {
            if !quantities.contains(&t.quantity) {
                quantities.push(t.quantity);
            }
        }
        let slot_of_weigher = |w: Weigher| {
            weighing
                .terms
                .iter()
                .find(|t| t.weigher == w && t.multiplier > 0.0 && t.minval == Some(0.0))
                .and_then(|t| quantities.iter().position(|&x| x == t.quantity))
        };
        let pair = slot_of_weigher(Weigher::Ram).zip(slot_of_weigher(Weigher::Cpu));
        let (n, q) = (hosts.len(), quantities.len());
        let mut index = HostIndex {
            hosts: Tree::new(n, q, true, None),
            states: Tree::new(n, q, false, pair),
            slot_of: HashMap::new(),
            members: vec![BTreeSet::new(); n],
            values: vec![Vec::new(); n],
            free_slots: (0..n).rev().collect(),
            host_slot: vec![usize::MAX; n],
            quantities,
        };
        for (i, h) in hosts.iter().enumerate() {
            let values = index.point(h);
            index.hosts.put(i, Some((&values, rooms(h))));
            index.enter(i, values, false);
        }
        index.hosts.build();
        index.states.build();
        index
    }

    fn point(&self, host: &NovaHost) -> Vec<f64> {
        self.quantities.iter().map(|&q| value(host, q)).collect()
    }

    /// Puts host `i` into the state slot of `values` (creating it).
    fn enter(&mut self, i: usize, values: Vec<f64>, update: bool) {
        let key: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        let slot = match self.slot_of.get(&key) {
            Some(&s) => s,
            None => {
                let s = self.free_slots.pop().expect("at most one state per host");
                self.slot_of.insert(key, s);
                if update {
                    self.states.set(s, Some((&values, [0.0; ROOMS])));
                } else {
                    self.states.put(s, Some((&values, [0.0; ROOMS])));
                }
                self.values[s] = values;
                s
            }
        };
        self.members[slot].insert(i);
        self.host_slot[i] = slot;
    }

    /// Host `i` changed (a claim or a release).
    pub fn update(&mut self, i: usize, host: &NovaHost) {
        let values = self.point(host);
        self.hosts.set(i, Some((&values, rooms(host))));
        let old = self.host_slot[i];
        if self.values[old] == values {
            return;
        }
        self.members[old].remove(&i);
        if self.members[old].is_empty() {
            let key: Vec<u64> = self.values[old].iter().map(|v| v.to_bits()).collect();
            self.slot_of.remove(&key);
            self.states.set(old, None);
            self.free_slots.push(old);
        }
        self.enter(i, values, true);
    }

    /// The survivors' largest (or smallest) value of quantity `k`: the
    /// first host that `passes` in that order.
    fn extreme(
        &self,
        need: &Need,
        k: usize,
        largest: bool,
        passes: &mut impl FnMut(usize) -> bool,
    ) -> Option<f64> {
        let q = self.quantities.len();
        let tree = &self.hosts;
        let mut found = None;
        tree.search(
            need,
            |node| {
                if largest {
                    tree.max[node * q + k]
                } else {
                    -tree.min[node * q + k]
                }
            },
            |host, key| {
                if passes(host) {
                    found = Some(if largest { key } else { -key });
                    false
                } else {
                    true
                }
            },
        );
        found
    }

    /// The hosts that pass, best first, as [`rank_all`] orders them: the
    /// best `host_subset_size` (all that pass, if fewer), and with
    /// shuffling every host tied with the best. `passes` must be the test
    /// (placement and filters) the full scan applies; `queries` skip host
    /// subtrees where no host has room for any of them.
    pub fn rank(
        &self,
        weighing: &Weighing,
        config: &SchedulerConfig,
        need: &Need,
        mut passes: impl FnMut(usize) -> bool,
    ) -> (Vec<Norm>, Vec<(usize, f64)>) {
        let q = self.quantities.len();
        let slots: Vec<usize> = weighing
            .terms
            .iter()
            .map(|t| {
                self.quantities
                    .iter()
                    .position(|&x| x == t.quantity)
                    .expect("every term's quantity is indexed")
            })
            .collect();
        // The survivors' extremes, per quantity the terms need.
        let mut norms = Vec::with_capacity(weighing.terms.len());
        for (t, &k) in weighing.terms.iter().zip(&slots) {
            let Some(max) = self.extreme(need, k, true, &mut passes) else {
                return (Vec::new(), Vec::new());
            };
            let min = match t.minval {
                Some(_) => max,
                None => self.extreme(need, k, false, &mut passes).unwrap_or(max),
            };
            norms.push(Weighing::norm(t, min, max));
        }
        // The RAM and CPU terms, when both normalise over a positive range.
        let pair_terms = self.states.pair.and_then(|(r, c)| {
            let rk = slots.iter().position(|&s| s == r)?;
            let ck = slots.iter().position(|&s| s == c)?;
            let (rn, cn) = (norms[rk], norms[ck]);
            (rn.lo == 0.0 && rn.hi > 0.0 && cn.lo == 0.0 && cn.hi > 0.0).then_some((
                rk,
                ck,
                rn.hi,
                cn.hi,
                weighing.terms[rk].multiplier,
                weighing.terms[ck].multiplier,
            ))
        });
        let tree = &self.states;
        let bound = |node: usize| {
            let extreme = |k: usize| {
                let s = slots[k];
                if weighing.terms[k].multiplier >= 0.0 {
                    tree.max[node * q + s]
                } else {
                    tree.min[node * q + s]
                }
            };
            // The box: every term at its best value in the subtree, summed
            // as a host's weight is (rounding is monotone, so never below
            // the weight of a state beneath). A leaf's box is its weight.
            let boxed = weighing.weight(&norms, extreme);
            if node >= tree.size {
                return boxed;
            }
            let Some((rk, ck, ram_hi, cpu_hi, a, b)) = pair_terms else {
                return boxed;
            };
            let Some(pair) = tree.pair_bound(node, a, ram_hi, b, cpu_hi) else {
                return boxed;
            };
            let mut rest = 0.0;
            for (k, t) in weighing.terms.iter().enumerate() {
                if k != rk && k != ck {
                    rest += t.multiplier * Weighing::normalised(t, norms[k], extreme(k));
                }
            }
            let tighter = rest + pair;
            boxed.min(tighter + tighter.abs() * 1e-9 + 1e-300)
        };
        let subset = config.host_subset_size;
        let shuffle = config.shuffle_best_same_weighed_hosts;
        let mut ranked: Vec<(usize, f64)> = Vec::new();
        // States of equal weight come one after another; their hosts are
        // merged into fleet order before they are tested.
        let mut group: Vec<usize> = Vec::new();
        let mut group_weight = f64::NAN;
        let mut take_group = |group: &mut Vec<usize>, w: f64, ranked: &mut Vec<(usize, f64)>| {
            // One state (the common case): its hosts in order, read only as
            // far as needed; several: merged into fleet order.
            let hosts: Box<dyn Iterator<Item = usize>> = if group.len() == 1 {
                Box::new(self.members[group[0]].iter().copied())
            } else {
                let mut all: Vec<usize> = group
                    .iter()
                    .flat_map(|&s| self.members[s].iter().copied())
                    .collect();
                all.sort_unstable();
                Box::new(all.into_iter())
            };
            let top_group = ranked.first().is_none_or(|f| f.1 == w);
            let mut done = false;
            for h in hosts {
                let leaf = self.hosts.size + h;
                if !self.hosts.may_fit(leaf, need) {
                    continue;
                }
                if passes(h) {
                    ranked.push((h, w));
                    // With shuffling, every host tied with the best is needed.
                    if ranked.len() >= subset && !(shuffle && top_group) {
                        done = true;
                        break;
                    }
                }
            }
            group.clear();
            done || ranked.len() >= subset
        };
        let mut done = false;
        let everything = Need {
            queries: &[],
            cell_pcpus: 0,
            cell_hugepages_mb: 0,
            cell_memory_mb: 0,
            cell_pinned_memory_mb: 0,
        };
        tree.search(&everything, bound, |slot, w| {
            if !group.is_empty()
                && w != group_weight
                && take_group(&mut group, group_weight, &mut ranked)
            {
                done = true;
                return false;
            }
            group.push(slot);
            group_weight = w;
            true
        });
        if !done && !group.is_empty() {
            take_group(&mut group, group_weight, &mut ranked);
        }
        (norms, ranked)
    }
}

fn rooms(h: &NovaHost) -> [f64; ROOMS] {
    [
        h.room(0),
        h.room(1),
        h.room(2),
        h.room(3),
        h.cell_pcpus_free as f64,
        h.cell_hugepages_free_mb as f64,
        h.cell_memory_free_mb as f64,
        h.cell_pinned_memory_free_mb as f64,
    ]
}

/// Per host: the room of each resource class, then the most free
/// dedicated CPUs of one cell, then the most free memory in one pool of
/// large pages of one cell, then the most free memory of one cell.
const ROOMS: usize = 8;
const CELL_PCPUS: usize = 4;
const CELL_HUGEPAGES: usize = 5;
const CELL_MEMORY: usize = 6;
const CELL_PINNED_MEMORY: usize = 7;

/// What a host must have to pass: room for one of Placement's queries,
/// and (when the NUMA filter runs Nova's fit) a cell with `cell_pcpus` free
/// dedicated CPUs, one with a pool of large pages holding
/// `cell_hugepages_mb` and one with `cell_memory_mb` free, which Nova's fit
/// requires of some host cell for each pinned, large-page or (when it
/// checks cell memory) plain guest cell. All are necessary conditions, so
/// leaving out hosts that lack them changes nothing.
#[derive(Debug, Clone, Copy)]
pub struct Need<'a> {
    pub queries: &'a [Amounts],
    pub cell_pcpus: i64,
    pub cell_hugepages_mb: i64,
    pub cell_memory_mb: i64,
    /// A pinned guest cell's memory in small pages (no overcommit).
    pub cell_pinned_memory_mb: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::scheduler::placement::{ComputeNode, GuestUsage, Inventory};
    use proptest::prelude::*;

    fn host(
        mem: i64,
        mem_used: i64,
        vcpus: i64,
        vcpus_used: i64,
        extra: (i64, i64, i64),
    ) -> NovaHost {
        let inv = |total: i64, ratio: f64| {
            Some(Inventory {
                total,
                reserved: 0,
                allocation_ratio: ratio,
            })
        };
        NovaHost {
            inventory: [inv(vcpus, 4.0), None, inv(mem, 1.5), None],
            used: [vcpus_used, 0, mem_used, 0],
            hyperthreading: true,
            compute: ComputeNode {
                hypervisor_version: extra.0,
                failed_builds: extra.1,
                ..ComputeNode::default()
            },
            vcpus,
            memory_mb: mem,
            vcpus_used,
            memory_mb_used: mem_used,
            local_gb_used: 0,
            num_instances: extra.2,
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.5,
            free_pci: (mem_used / 1024) % 3,
            cell_pcpus_free: 0,
            cell_hugepages_free_mb: 0,
            cell_memory_free_mb: 0,
            cell_pinned_memory_free_mb: 0,
        }
    }

    fn arb_host() -> impl Strategy<Value = NovaHost> {
        // Small value ranges so that ties (the hard part) are common.
        (
            prop::sample::select(vec![4096i64, 8192, 16384]),
            0i64..24,
            prop::sample::select(vec![4i64, 8, 16]),
            0i64..40,
            (0i64..3, 0i64..2, 0i64..6),
        )
            .prop_map(|(mem, used_gb, vcpus, vused, extra)| {
                host(
                    mem,
                    used_gb * 1024,
                    vcpus,
                    vused,
                    (extra.0 * 1000, extra.1, extra.2),
                )
            })
    }

    fn arb_config() -> impl Strategy<Value = SchedulerConfig> {
        (
            prop::collection::vec(
                prop::sample::select(vec![-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0]),
                Weigher::ALL.len(),
            ),
            1usize..5,
            any::<bool>(),
            prop::collection::vec(any::<bool>(), Weigher::ALL.len()),
        )
            .prop_map(|(mults, subset, shuffle, enabled)| {
                let mut c = SchedulerConfig::default();
                for (w, m) in Weigher::ALL.iter().zip(mults) {
                    c.multipliers.insert(*w, m);
                }
                c.weighers = Weigher::ALL
                    .iter()
                    .zip(enabled)
                    .filter(|(_, e)| *e)
                    .map(|(w, _)| *w)
                    .collect();
                c.host_subset_size = subset;
                c.shuffle_best_same_weighed_hosts = shuffle;
                c
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]
        /// The index finds the hosts, the weights and the choice of Nova's
        /// full scan, also after claims and releases change hosts.
        #[test]
        fn index_equals_full_scan(
            mut hosts in prop::collection::vec(arb_host(), 1..40),
            config in arb_config(),
            pass in prop::collection::vec(any::<bool>(), 40),
            ask in (1i64..6, prop::sample::select(vec![512i64, 2048, 4096, 9000])),
            moves in prop::collection::vec((0usize..40, any::<bool>()), 0..12),
            seed in 0u64..1000,
        ) {
            let weighing = Weighing::new(&config);
            let mut index = HostIndex::new(&weighing, &hosts);
            let query = Amounts { amounts: [ask.0, 0, ask.1, 0], ..Amounts::default() };
            let guest = GuestUsage { vcpus: ask.0, memory_mb: ask.1, ..GuestUsage::default() };
            for step in 0..=moves.len() {
                let passes = |i: usize| pass[i] && hosts[i].candidate(&query);
                let survivors: Vec<usize> = (0..hosts.len()).filter(|&i| passes(i)).collect();
                let (_, full) = rank_all(&weighing, &hosts, &survivors);
                let need = Need {
                    queries: &[query],
                    cell_pcpus: 0,
                    cell_hugepages_mb: 0,
                    cell_memory_mb: 0,
                    cell_pinned_memory_mb: 0,
                };
                let (_, fast) = index.rank(&weighing, &config, &need, passes);
                prop_assert!(fast.len() <= full.len());
                prop_assert!(fast.len() >= config.host_subset_size.min(full.len()));
                if config.shuffle_best_same_weighed_hosts && !full.is_empty() {
                    let tied = full.iter().take_while(|h| h.1 == full[0].1).count();
                    prop_assert!(fast.len() >= tied);
                }
                if survivors.len() > 1 {
                    prop_assert_eq!(&fast[..], &full[..fast.len()]);
                } else {
                    let f: Vec<usize> = fast.iter().map(|h| h.0).collect();
                    prop_assert_eq!(f, survivors.clone());
                }
                if !full.is_empty() {
                    let a = choose(&config, &full, &mut PyRandom::new(seed));
                    let b = choose(&config, &fast, &mut PyRandom::new(seed));
                    prop_assert_eq!(a.host, b.host);
                }
                if let Some(&(h, claim)) = moves.get(step) {
                    let h = h % hosts.len();
                    let alloc = [ask.0, 0, ask.1, 0];
                    hosts[h].apply(&alloc, &guest, 0, if claim { 1 } else { -1 });
                    index.update(h, &hosts[h]);
                }
            }
        }
    }
}

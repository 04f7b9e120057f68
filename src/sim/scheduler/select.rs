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
    /// changes in a run (hypervisor version, failed builds, and free disk
    /// while no guest asks for disk): they normalise to 0 everywhere.
    pub fn without_constant(mut self, hosts: &[NovaHost], disk_changes: bool) -> Weighing {
        self.terms.retain(|t| {
            let fixed = match t.quantity {
                Quantity::HypervisorVersion | Quantity::FailedBuilds => true,
                Quantity::FreeDiskMb => !disk_changes,
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

/// How many ranked hosts the choice needs: the best `host_subset_size`,
/// and with shuffling every host tied with the best.
pub fn enough(config: &SchedulerConfig, ranked: &[(usize, f64)], exhausted: bool) -> bool {
    if exhausted {
        return true;
    }
    if ranked.len() < config.host_subset_size {
        return false;
    }
    !config.shuffle_best_same_weighed_hosts
        || ranked.last().map(|l| l.1) < ranked.first().map(|f| f.1)
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

/// Per-subtree extremes of the quantities the weighing reads and the
/// largest room per resource class, over the fleet in fleet order.
#[derive(Debug, Clone)]
pub struct HostIndex {
    quantities: Vec<Quantity>,
    size: usize,
    n: usize,
    /// `[node * q + k]`.
    max: Vec<f64>,
    min: Vec<f64>,
    /// `[node * 4 + class]`.
    room: Vec<f64>,
}

/// A best-first search entry: larger key first; at equal keys the smaller
/// first fleet position, and a subtree before the leaf starting there.
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
        let n = hosts.len();
        let size = n.next_power_of_two().max(1);
        let q = quantities.len();
        let mut index = HostIndex {
            quantities,
            size,
            n,
            max: vec![f64::NEG_INFINITY; 2 * size * q],
            min: vec![f64::INFINITY; 2 * size * q],
            room: vec![f64::NEG_INFINITY; 2 * size * 4],
        };
        for (i, h) in hosts.iter().enumerate() {
            index.set_leaf(i, h);
        }
        for node in (1..size).rev() {
            index.pull(node);
        }
        index
    }

    fn set_leaf(&mut self, i: usize, host: &NovaHost) {
        let node = self.size + i;
        let q = self.quantities.len();
        for k in 0..q {
            let v = value(host, self.quantities[k]);
            self.max[node * q + k] = v;
            self.min[node * q + k] = v;
        }
        for class in 0..4 {
            self.room[node * 4 + class] = host.room(class);
        }
    }

    fn pull(&mut self, node: usize) {
        let q = self.quantities.len();
        let (l, r) = (2 * node, 2 * node + 1);
        for k in 0..q {
            self.max[node * q + k] = self.max[l * q + k].max(self.max[r * q + k]);
            self.min[node * q + k] = self.min[l * q + k].min(self.min[r * q + k]);
        }
        for c in 0..4 {
            self.room[node * 4 + c] = self.room[l * 4 + c].max(self.room[r * 4 + c]);
        }
    }

    /// Host `i` changed (a claim or a release).
    pub fn update(&mut self, i: usize, host: &NovaHost) {
        self.set_leaf(i, host);
        let mut node = (self.size + i) / 2;
        while node >= 1 {
            self.pull(node);
            node /= 2;
        }
    }

    /// Whether some host below `node` might be a candidate of some query.
    fn may_fit(&self, node: usize, queries: &[Amounts]) -> bool {
        queries.iter().any(|a| {
            a.amounts
                .iter()
                .enumerate()
                .all(|(c, &amount)| amount == 0 || self.room[node * 4 + c] >= amount as f64)
        })
    }

    /// The leftmost fleet position below `node`.
    fn first(&self, node: usize) -> usize {
        let mut n = node;
        while n < self.size {
            n *= 2;
        }
        n - self.size
    }

    /// Best-first over the tree by `key(node)`; calls `visit(host, key)`
    /// for each host reached, in key order, until it returns `false`.
    fn search(
        &self,
        queries: &[Amounts],
        key: impl Fn(usize) -> f64,
        mut visit: impl FnMut(usize, f64) -> bool,
    ) {
        let mut heap = BinaryHeap::new();
        if self.n == 0 || !self.may_fit(1, queries) {
            return;
        }
        let push = |heap: &mut BinaryHeap<Entry>, node: usize| {
            let leaf = node >= self.size;
            heap.push(Entry {
                key: key(node),
                first: self.first(node),
                node,
                leaf,
            });
        };
        push(&mut heap, 1);
        while let Some(e) = heap.pop() {
            if e.leaf {
                if !visit(e.node - self.size, e.key) {
                    return;
                }
                continue;
            }
            for child in [2 * e.node, 2 * e.node + 1] {
                if (child >= self.size && child - self.size >= self.n)
                    || !self.may_fit(child, queries)
                {
                    continue;
                }
                push(&mut heap, child);
            }
        }
    }

    /// The first host (in descending `sign * quantity k`) that `passes`.
    fn extreme(
        &self,
        queries: &[Amounts],
        k: usize,
        largest: bool,
        passes: &mut impl FnMut(usize) -> bool,
    ) -> Option<f64> {
        let q = self.quantities.len();
        let mut found = None;
        self.search(
            queries,
            |node| {
                if largest {
                    self.max[node * q + k]
                } else {
                    -self.min[node * q + k]
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

    /// The hosts that pass, best first, as [`rank_all`] orders them, as
    /// far as [`enough`] asks. `passes` must be the same test (placement and
    /// filters) the full scan applies; `queries` prune subtrees in which no
    /// host has room for any of them.
    pub fn rank(
        &self,
        weighing: &Weighing,
        config: &SchedulerConfig,
        queries: &[Amounts],
        mut passes: impl FnMut(usize) -> bool,
    ) -> (Vec<Norm>, Vec<(usize, f64)>) {
        let q = self.quantities.len();
        let slot = |t: &Term| {
            self.quantities
                .iter()
                .position(|&x| x == t.quantity)
                .expect("every term's quantity is indexed")
        };
        // The survivors' extremes, per quantity the terms need.
        let mut norms = Vec::with_capacity(weighing.terms.len());
        for t in &weighing.terms {
            let k = slot(t);
            let Some(max) = self.extreme(queries, k, true, &mut passes) else {
                return (Vec::new(), Vec::new());
            };
            let min = match t.minval {
                Some(_) => max,
                None => self.extreme(queries, k, false, &mut passes).unwrap_or(max),
            };
            norms.push(Weighing::norm(t, min, max));
        }
        let slots: Vec<usize> = weighing.terms.iter().map(slot).collect();
        let mut ranked: Vec<(usize, f64)> = Vec::new();
        let mut exhausted = true;
        self.search(
            queries,
            |node| {
                weighing.weight(&norms, |k| {
                    let t = &weighing.terms[k];
                    let s = slots[k];
                    if t.multiplier >= 0.0 {
                        self.max[node * q + s]
                    } else {
                        self.min[node * q + s]
                    }
                })
            },
            |host, w| {
                if passes(host) {
                    ranked.push((host, w));
                    if enough(config, &ranked, false) {
                        exhausted = false;
                        return false;
                    }
                }
                true
            },
        );
        let _ = exhausted;
        (norms, ranked)
    }
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
                let (_, fast) = index.rank(&weighing, &config, &[query], passes);
                prop_assert!(fast.len() <= full.len());
                prop_assert!(enough(&config, &fast, fast.len() == full.len()));
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
                    hosts[h].apply(&alloc, &guest, if claim { 1 } else { -1 });
                    index.update(h, &hosts[h]);
                }
            }
        }
    }
}

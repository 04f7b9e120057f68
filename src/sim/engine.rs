//! The event loop and the Nova-like scheduler.
//!
//! Events: arrivals come from the trace stream (rows in arrival order);
//! departures wait in a priority queue. Tie order, as Nova's replayer
//! sorts: by time; at equal times departures before arrivals; then trace
//! row order. One run is single-threaded and deterministic: the only
//! randomness is a ChaCha8 generator seeded from the run's seed.

use super::cost::{CellAccess, guest_cost};
use super::fleet::SimHost;
use super::memory::{Demand, MemoryMode, place};
use crate::fit::search::{PciContext, fit_closest};
use crate::fit::{FitOptions, Limits, Mode, apply_usage, fit_instance_to_host};
use crate::request::{GuestTopology, ImageProps, RequestError, numa_get_constraints};
use crate::trace::{Catalog, TraceRow};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};

/// How the scheduler picks among hosts that pass the filters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Most free RAM (Nova's default RAM weigher); ties to fleet order.
    Spread,
    /// Least free RAM; ties to fleet order.
    Pack,
    /// First passing host in fleet order.
    FirstFit,
    /// Uniformly among passing hosts (Nova's `host_subset_size` = all), seeded.
    Random,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Spread => "spread",
            Strategy::Pack => "pack",
            Strategy::FirstFit => "first-fit",
            Strategy::Random => "random",
        }
    }
}

/// Which guests get the host-level (placement) CPU and RAM check.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum HostCheck {
    /// Only guests without a NUMA topology (NUMA guests get the fit only).
    NonNuma,
    /// Every guest, as real Nova asks placement before NUMATopologyFilter.
    All,
}

/// How a guest lands on host cells once a host is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Nova's fit: the first fitting ordering of host cells.
    #[default]
    Nova,
    /// Beyond Nova: among the fitting orderings, the one whose host cells
    /// are closest together by SLIT (`fit::search::fit_closest`).
    Closest,
    /// No NUMA placement (Nova before the NUMA spec; libvirt's default):
    /// extra specs are ignored, vCPUs float over the whole host and pages
    /// land where the vCPUs run (local allocation, in proportion to CPUs).
    Float,
    /// `virt-install --cpuset=auto` (the libvirt affinity post): the node
    /// with the most free memory that can hold the guest's touched memory;
    /// vCPUs confined to its CPUs; no memory binding, so pages follow the
    /// CPUs there and spill by distance when it fills. Extra specs ignored.
    CpusetAuto,
    /// An operator's explicit `<numatune>` per flavor (oVirt's NUMA tuning):
    /// vCPUs pinned to a nodeset's CPUs, memory in a mode over it, guest
    /// virtual NUMA cells mapped onto its nodes in turn. Nova's fit unused.
    Manual,
    /// numad's advice (`<vcpu placement='auto'>`): the best-scoring node
    /// and the nearest ones until the guest fits, vCPUs and memory (in the
    /// policy's mode) bound there; re-advised every interval, moving the
    /// guest and migrating its pages (`sim::rebalance`).
    Numad,
    /// Linux automatic NUMA balancing: placed as `float`, then the vCPUs
    /// settle on one node and remote pages migrate there at the scan rate.
    Autonuma,
}

/// numad's and autonuma's parameters, and the page migration rate that
/// prices their moves.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rebalancing {
    /// numad's scan interval (`numad -i`, 15 s by default).
    pub numad_interval_s: f64,
    /// numad's target utilisation per node (`numad -u`, 85 % by default).
    pub numad_target_utilization: f64,
    /// How often the simulation advances autonuma (a modelling step).
    pub autonuma_tick_s: f64,
    /// MB of a guest's memory the kernel scans per second
    /// (`numa_balancing_scan_size_mb` 256 per `scan_period_min_ms` 1000).
    pub autonuma_scan_mb_per_s: f64,
    /// Page migration throughput, to turn migrated MB into time.
    pub migrate_mb_per_s: f64,
}

impl Default for Rebalancing {
    fn default() -> Self {
        Rebalancing {
            numad_interval_s: 15.0,
            numad_target_utilization: 0.85,
            autonuma_tick_s: 10.0,
            autonuma_scan_mb_per_s: 256.0,
            migrate_mb_per_s: 1000.0,
        }
    }
}

/// A flavor's manual NUMA tuning: host NUMA node ids and the memory mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualTuning {
    pub nodeset: Vec<i64>,
    pub mode: MemoryMode,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Nova => "nova",
            Placement::Closest => "closest",
            Placement::Float => "float",
            Placement::CpusetAuto => "cpuset-auto",
            Placement::Manual => "manual",
            Placement::Numad => "numad",
            Placement::Autonuma => "autonuma",
        }
    }

    /// Whether guests keep their NUMA topology (Nova's models) or are placed
    /// as plain guests (libvirt's own models).
    pub(crate) fn uses_numa_topology(self) -> bool {
        matches!(self, Placement::Nova | Placement::Closest)
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub strategy: Strategy,
    pub host_check: HostCheck,
    /// `None`: no overcommit limits and no host-level check.
    pub limits: Option<Limits>,
    pub fit_mode: Mode,
    /// `None`: pages are not modelled (Nova-exact replays); otherwise the
    /// mode decides admission and where pages land.
    pub memory_mode: Option<MemoryMode>,
    /// Fraction of its memory each guest touches, per catalog flavor.
    pub touched_fraction: Vec<f64>,
    pub calibration: super::cost::Calibration,
    /// How guests are put on host cells (Nova's fit, or another model).
    pub placement: Placement,
    /// `manual`: the operator's numatune per catalog flavor (`None`: the
    /// flavor has none and floats).
    pub manual: Vec<Option<ManualTuning>>,
    /// Memory growth per catalog flavor (empty: none grows).
    pub growth: Vec<Option<Growth>>,
    /// numad's and autonuma's parameters.
    pub rebalancing: Rebalancing,
    /// Guests with a virtual NUMA topology keep each vCPU's accesses in its
    /// own guest cell; otherwise (the default) every vCPU touches all of
    /// the guest's memory uniformly.
    pub numa_aware_guests: bool,
    pub seed: u64,
}

/// What happened to an arrival.
#[derive(Debug, Clone)]
pub enum Decision<'a> {
    /// `fitted`: the guest's topology on the host, for NUMA guests.
    Placed {
        host: usize,
        fitted: Option<&'a GuestTopology>,
    },
    /// No host passed, or the request is invalid (`error`).
    Rejected { error: Option<RequestError> },
    /// Placed, then killed at once: its pages did not fit (strict mode).
    OomKilled { host: usize },
}

/// What a placed guest costs: from where its vCPUs run and its pages sit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuestCost {
    /// Fraction of accesses to a remote cell.
    pub remote: f64,
    /// Mean access latency relative to local.
    pub latency: f64,
    /// vCPUs or pages on more than one host cell.
    pub spans: bool,
    /// MB of a NUMA guest's pages outside its own host cells (spilled).
    pub spilled_mb: f64,
}

/// Receives the simulation's events. All methods have empty defaults.
pub trait Observer {
    fn arrival(&mut self, _t: f64, _row: &TraceRow, _decision: &Decision, _sim: &Simulation) {}
    /// A placed guest's cost, right after placement.
    fn guest_cost(&mut self, _t: f64, _row: &TraceRow, _cost: &GuestCost) {}
    fn departure(&mut self, _t: f64, _row: usize, _sim: &Simulation) {}
    /// A running guest's touched memory grew (`flavors.growth`).
    fn growth(&mut self, _t: f64, _row: usize, _outcome: GrowthOutcome, _sim: &Simulation) {}
    /// Whether to work out why each rejected guest was rejected (costs a
    /// check of every host per rejection).
    fn wants_reasons(&self) -> bool {
        false
    }
    /// Why a guest was rejected or killed at once, in words aggregated over hosts.
    fn rejection_reason(&mut self, _t: f64, _row: &TraceRow, _flavor: &str, _reason: &str) {}
    /// numad or autonuma acted on a running guest (its cost is already updated).
    fn rebalance(&mut self, _t: f64, _row: usize, _outcome: Rebalanced, _sim: &Simulation) {}
}

/// What one numad or autonuma step did to a guest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebalanced {
    /// numad moved the guest to another nodeset.
    pub moved: bool,
    /// MB of its pages that migrated.
    pub migrated_mb: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("trace: {0}")]
    Trace(#[from] crate::trace::CsvError),
    #[error("fit engine: {0}")]
    Fit(#[from] crate::fit::FitError),
    #[error("usage accounting on host {host}: {source}")]
    Usage {
        host: String,
        source: crate::fit::UsageError,
    },
    #[error("trace row {0}: more than 2^32 rows or running guests in one run")]
    TooLarge(usize),
}

struct Placed {
    host: usize,
    fitted: Option<GuestTopology>,
    vcpu: i64,
    mem: i64,
    /// Resident MB per host cell.
    pages: Vec<f64>,
    /// Trace row: queue entries for a slot that was freed and reused are stale.
    row: usize,
    flavor: usize,
    arrival_s: f64,
    /// `cpuset-auto`'s node; `manual`'s tuning and guest cell count.
    confined: Option<usize>,
    manual: Option<(ManualTuning, usize)>,
    /// vCPUs this guest runs per host cell (numad and autonuma only; empty otherwise).
    cpu_cells: Vec<f64>,
    /// Its current cost, while running (`None`: not costed).
    cost: Option<(f64, f64)>,
    /// autonuma: MB of its memory scanned in the current pass.
    scan_pos_mb: f64,
    /// numad: the host's state version at its last advice (the same state
    /// gives the same advice, so a step on an unchanged host is skipped).
    advised_version: Option<u64>,
}

/// Marks a queue entry as a memory-growth event rather than a departure.
const GROWTH: u32 = 1 << 31;
/// Marks a queue entry as a numad or autonuma step.
const TICK: u32 = 1 << 30;
/// Marks a queue entry as a numad scan of one host (the slot bits hold the host).
const HOST_SCAN: u32 = 1 << 29;
const SLOT_BITS: u32 = HOST_SCAN - 1;

/// A flavor's memory growth: from its touched fraction at start to `to`,
/// after an exponentially distributed delay (mean `mean_delay_s`), drawn
/// per guest from the run's seed and the guest's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub to: f64,
    pub mean_delay_s: f64,
}

/// What growing did to a guest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrowthOutcome {
    /// The new pages fit; `spilled_mb` of them outside the guest's own cells.
    Grew { spilled_mb: f64 },
    /// They did not: the kernel killed the guest, `after_s` into its life.
    Killed { after_s: f64 },
}

/// Fleet state and scheduler for one run.
pub struct Simulation {
    pub hosts: Vec<SimHost>,
    pub config: SimConfig,
    /// Free physical MB per host cell (pages modelling only).
    pub free_mb: Vec<Vec<f64>>,
    catalog: Catalog,
    requests: HashMap<RequestKey, CachedRequest>,
    /// Placed guests in a slab: departures carry their slot.
    placed: Vec<Option<Placed>>,
    free_slots: Vec<usize>,
    running: usize,
    /// (departure time, trace row, slot), in (time, row) order.
    departures: super::queue::DepartureQueue,
    /// Hosts ordered for the strategy: (key, fleet index); first passing wins.
    order: BTreeSet<(i64, usize)>,
    rng: ChaCha8Rng,
    pub now: f64,
    pub fit_calls: u64,
    /// Events processed, for throughput figures: arrivals, departures, placements.
    pub arrivals: u64,
    pub departures_done: u64,
    pub placements: u64,
    /// `cpuset-auto`: the host cell the guest being placed is confined to.
    cpuset_node: Option<usize>,
    /// `manual`: the tuning of the guest being placed and its virtual cells.
    manual_now: Option<(ManualTuning, usize)>,
    /// Per-demand page placement of the guest being placed (for its cost).
    last_demands: Vec<Vec<f64>>,
    /// Fleet-wide claimed CPUs (floating vCPUs plus pinned pCPUs) and memory.
    pub claimed_cpus: i64,
    pub claimed_mem: i64,
    /// Guests per host, for hosts in use.
    guests_on: Vec<u32>,
    /// The largest `total_mem * (ram_allocation_ratio - 1)` of the fleet
    /// (at least 0); `None` if some host has no limits (no RAM check).
    max_ram_slack: Option<i64>,
    pub hosts_in_use: usize,
    /// vCPUs running per host cell (numad's and autonuma's view; only kept
    /// under those placements).
    cpu_load: Vec<Vec<f64>>,
    /// Bumped whenever a host's claims, pages or loads change.
    host_version: Vec<u64>,
    /// numad: the slots of the guests on each host, and whether a scan of
    /// the host is already queued.
    guests_by_host: Vec<Vec<usize>>,
    scan_pending: Vec<bool>,
    /// Sums of the current remote fraction and latency factor over the
    /// costed running guests, and their count: the time-weighted costs.
    pub running_remote: f64,
    pub running_latency: f64,
    pub running_costed: u64,
}

/// A request is computed once per (flavor, image properties).
type RequestKey = (usize, Vec<(String, String)>);
type CachedRequest = std::sync::Arc<Result<Option<GuestTopology>, RequestError>>;

/// A time (seconds) ordered totally, for priority queues of events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderedTime(pub f64);
impl Eq for OrderedTime {}
impl PartialOrd for OrderedTime {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrderedTime {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Simulation {
    pub fn new(hosts: Vec<SimHost>, catalog: Catalog, config: SimConfig) -> Simulation {
        let free_mb = hosts
            .iter()
            .map(|h| h.topo.cells.iter().map(|c| c.memory_mb as f64).collect())
            .collect();
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut sim = Simulation {
            hosts,
            config,
            free_mb,
            catalog,
            requests: HashMap::new(),
            placed: Vec::new(),
            free_slots: Vec::new(),
            running: 0,
            departures: super::queue::DepartureQueue::new(),
            order: BTreeSet::new(),
            rng,
            now: 0.0,
            fit_calls: 0,
            arrivals: 0,
            departures_done: 0,
            placements: 0,
            last_demands: Vec::new(),
            cpuset_node: None,
            manual_now: None,
            claimed_cpus: 0,
            claimed_mem: 0,
            guests_on: Vec::new(),
            max_ram_slack: None,
            hosts_in_use: 0,
            cpu_load: Vec::new(),
            host_version: Vec::new(),
            guests_by_host: Vec::new(),
            scan_pending: Vec::new(),
            running_remote: 0.0,
            running_latency: 0.0,
            running_costed: 0,
        };
        sim.cpu_load = sim
            .hosts
            .iter()
            .map(|h| vec![0.0; h.model.cell_ids.len()])
            .collect();
        sim.guests_on = vec![0; sim.hosts.len()];
        sim.host_version = vec![0; sim.hosts.len()];
        sim.scan_pending = vec![false; sim.hosts.len()];
        sim.guests_by_host = vec![Vec::new(); sim.hosts.len()];
        sim.max_ram_slack = sim
            .hosts
            .iter()
            .map(|h| {
                sim.limits_of(h)
                    .map(|l| (h.total_mem as f64 * (l.ram_allocation_ratio - 1.0)).ceil() as i64)
            })
            .try_fold(0i64, |acc, s| s.map(|s| acc.max(s)));
        for i in 0..sim.hosts.len() {
            sim.order.insert(sim.order_key(i));
        }
        sim
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn order_key(&self, i: usize) -> (i64, usize) {
        let free = self.hosts[i].free_ram();
        match self.config.strategy {
            Strategy::Spread => (-free, i),
            Strategy::Pack => (free, i),
            Strategy::FirstFit | Strategy::Random => (0, i),
        }
    }

    /// Runs a whole trace, then the departures left.
    pub fn run(
        &mut self,
        rows: impl Iterator<Item = Result<TraceRow, crate::trace::CsvError>>,
        obs: &mut dyn Observer,
    ) -> Result<(), SimError> {
        self.run_arrivals(rows, obs)?;
        self.drain(obs)
    }

    /// Runs every arrival of the trace (and the departures due before the last one).
    pub fn run_arrivals(
        &mut self,
        rows: impl Iterator<Item = Result<TraceRow, crate::trace::CsvError>>,
        obs: &mut dyn Observer,
    ) -> Result<(), SimError> {
        for row in rows {
            let row = row?;
            self.advance_to(row.arrival_s, false, obs)?;
            self.arrive(row, obs)?;
        }
        Ok(())
    }

    /// Processes the departures left after the last arrival.
    pub fn drain(&mut self, obs: &mut dyn Observer) -> Result<(), SimError> {
        self.advance_to(f64::INFINITY, true, obs)
    }

    /// Processes departures due at or before `t` (all of them if `all`).
    pub fn advance_to(
        &mut self,
        t: f64,
        all: bool,
        obs: &mut dyn Observer,
    ) -> Result<(), SimError> {
        while let Some((OrderedTime(dt), row, slot)) = self.departures.peek() {
            if !all && dt > t {
                break;
            }
            self.departures.pop();
            self.now = dt;
            let growth = slot & GROWTH != 0;
            let tick = slot & TICK != 0;
            if slot & HOST_SCAN != 0 {
                // After the last arrival nothing is measured: let the scans lapse.
                if !all {
                    self.numad_scan((slot & SLOT_BITS) as usize, obs);
                }
                continue;
            }
            let (row, slot) = (row as usize, (slot & SLOT_BITS) as usize);
            let live = self
                .placed
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|p| p.row == row);
            if !live {
                // The guest was killed earlier; its slot may hold another now.
                continue;
            }
            if growth {
                let outcome = self.grow(slot)?;
                obs.growth(dt, row, outcome, self);
                continue;
            }
            if tick {
                // After the last arrival nothing is measured: let the steps lapse.
                if all {
                    continue;
                }
                let (outcome, next) = self.rebalance(slot);
                if let Some(next) = next {
                    self.departures
                        .push((OrderedTime(dt + next), row as u32, slot as u32 | TICK));
                }
                obs.rebalance(dt, row, outcome, self);
                continue;
            }
            self.departures_done += 1;
            self.depart(slot)?;
            obs.departure(dt, row, self);
        }
        Ok(())
    }

    /// The row's guest topology, computed once per (flavor, image properties).
    fn request_for(&mut self, row: &TraceRow) -> CachedRequest {
        let key = (row.flavor, row.image_props.clone());
        if let Some(r) = self.requests.get(&key) {
            return r.clone();
        }
        let flavor = &self.catalog.flavors[row.flavor];
        let r = std::sync::Arc::new(
            ImageProps::from_pairs(&row.image_props)
                .and_then(|image| numa_get_constraints(flavor, &image)),
        );
        self.requests.insert(key, r.clone());
        r
    }

    fn limits_of<'a>(&'a self, h: &'a SimHost) -> Option<&'a Limits> {
        h.limits.as_ref().or(self.config.limits.as_ref())
    }

    fn host_level_ok(&self, h: &SimHost, vcpus: i64, mem: i64) -> bool {
        match self.limits_of(h) {
            None => true,
            Some(l) => {
                (h.vcpu_used + vcpus) as f64 <= h.total_cpus as f64 * l.cpu_allocation_ratio
                    && (h.mem_used + mem) as f64 <= h.total_mem as f64 * l.ram_allocation_ratio
            }
        }
    }

    fn arrive(&mut self, row: TraceRow, obs: &mut dyn Observer) -> Result<(), SimError> {
        self.now = row.arrival_s;
        self.arrivals += 1;
        let (flavor_vcpus, flavor_mem) = {
            let f = &self.catalog.flavors[row.flavor];
            (f.vcpus, f.memory_mb)
        };
        let cached = self.request_for(&row);
        let request = match cached.as_ref() {
            Ok(r) => r.as_ref(),
            Err(e) => {
                if obs.wants_reasons() {
                    let flavor = &self.catalog.flavors[row.flavor].name;
                    obs.rejection_reason(
                        row.arrival_s,
                        &row,
                        flavor,
                        &format!("invalid request: {e}"),
                    );
                }
                let decision = Decision::Rejected {
                    error: Some(e.clone()),
                };
                obs.arrival(row.arrival_s, &row, &decision, self);
                return Ok(());
            }
        };
        self.manual_now = match self.config.placement {
            Placement::Manual => self
                .config
                .manual
                .get(row.flavor)
                .cloned()
                .flatten()
                .map(|t| (t, request.map_or(0, |r| r.cells.len()))),
            _ => None,
        };
        let request = if self.config.placement.uses_numa_topology() {
            request
        } else {
            None
        };
        let (vcpus, mem) = match request {
            None => (flavor_vcpus, flavor_mem),
            Some(t) => (
                t.cells.iter().map(|c| c.cpuset.len() as i64).sum(),
                flavor_mem,
            ),
        };
        let relaxed = matches!(
            self.config.memory_mode,
            Some(MemoryMode::Preferred | MemoryMode::Interleave)
        );
        let check_numa = self.config.host_check == HostCheck::All || relaxed;
        let opts = FitOptions {
            mode: self.config.fit_mode,
            pack: false,
            cell_memory: !relaxed,
        };
        let mut passing: Vec<(usize, Option<GuestTopology>)> = Vec::new();
        let mut fit_calls = 0;
        // Hosts are ordered by free RAM for spread and pack. When the
        // host-level RAM check applies, a host passes only if its free RAM is
        // at least `mem - slack` (slack: what its RAM ratio adds above 1), so
        // below `mem - max slack` no host can pass: spread stops there, pack
        // starts there. Decisions are those of the full scan.
        let ram_checked = request.is_none() || check_numa;
        let floor = (ram_checked && self.max_ram_slack.is_some())
            .then(|| mem - self.max_ram_slack.unwrap_or(0));
        let start = match (self.config.strategy, floor) {
            (Strategy::Pack, Some(f)) => (f, 0),
            _ => (i64::MIN, 0),
        };
        for &(key, i) in self.order.range(start..) {
            if let (Strategy::Spread, Some(f)) = (self.config.strategy, floor)
                && -key < f
            {
                break;
            }
            let h = &self.hosts[i];
            let fitted = match &request {
                None => {
                    if !self.host_level_ok(h, vcpus, mem) {
                        continue;
                    }
                    if self.config.placement == Placement::CpusetAuto
                        && self.cpuset_auto_node(i, row.flavor, flavor_mem).is_none()
                    {
                        continue;
                    }
                    if let Some((t, _)) = &self.manual_now
                        && t.nodeset.iter().any(|id| h.model.cell_index(*id).is_none())
                    {
                        continue;
                    }
                    None
                }
                Some(t) => {
                    if check_numa && !self.host_level_ok(h, vcpus, mem) {
                        continue;
                    }
                    fit_calls += 1;
                    let fitted = if self.config.placement == Placement::Closest {
                        fit_closest(&h.topo, t, self.limits_of(h), &h.model.distances, &opts)?
                    } else {
                        fit_instance_to_host(
                            &h.topo,
                            t,
                            self.limits_of(h),
                            &PciContext::default(),
                            &opts,
                        )?
                    };
                    match fitted {
                        Some(f) => Some(f),
                        None => continue,
                    }
                }
            };
            passing.push((i, fitted));
            if self.config.strategy != Strategy::Random {
                break;
            }
        }
        self.fit_calls += fit_calls;
        let chosen = match self.config.strategy {
            Strategy::Random if !passing.is_empty() => {
                let k = self.rng.random_range(0..passing.len());
                Some(passing.swap_remove(k))
            }
            _ => passing.into_iter().next(),
        };
        let Some((host, fitted)) = chosen else {
            if obs.wants_reasons() {
                let reason = self.explain(&row).summary();
                obs.rejection_reason(
                    row.arrival_s,
                    &row,
                    &self.catalog.flavors[row.flavor].name,
                    &reason,
                );
            }
            obs.arrival(
                row.arrival_s,
                &row,
                &Decision::Rejected { error: None },
                self,
            );
            return Ok(());
        };
        self.cpuset_node = match self.config.placement {
            Placement::CpusetAuto => self.cpuset_auto_node(host, row.flavor, flavor_mem),
            _ => None,
        };
        if self.config.placement == Placement::Numad {
            let mb = flavor_mem as f64 * self.touched(row.flavor);
            self.manual_now = self.numad_tuning(
                host,
                &self.cpu_load[host],
                &self.free_mb[host],
                vcpus as f64,
                mb,
            );
        }
        self.change_usage(host, &fitted, vcpus, mem, false, None)?;
        let pages = self.place_pages(host, &fitted, flavor_mem, row.flavor);
        let Some(pages) = pages else {
            // The kernel kills the guest: release what was claimed.
            self.change_usage(host, &fitted, vcpus, mem, true, None)?;
            if obs.wants_reasons() {
                let reason = format!(
                    "placed on {}, then OOM-killed: its pages did not fit its nodes ({} mode)",
                    self.hosts[host].name,
                    self.config.memory_mode.map_or("strict", MemoryMode::as_str)
                );
                obs.rejection_reason(
                    row.arrival_s,
                    &row,
                    &self.catalog.flavors[row.flavor].name,
                    &reason,
                );
            }
            obs.arrival(row.arrival_s, &row, &Decision::OomKilled { host }, self);
            return Ok(());
        };
        let cost = if self.config.memory_mode.is_some() {
            let cost = self.cost_of(host, &fitted);
            obs.guest_cost(row.arrival_s, &row, &cost);
            Some((cost.remote, cost.latency))
        } else {
            None
        };
        let vcpu_claim = match &fitted {
            Some(f) => f.cells.iter().map(|c| c.cpuset.len() as i64).sum(),
            None => vcpus,
        };
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.placed.push(None);
            self.placed.len() - 1
        });
        let key = u32::try_from(row.row)
            .ok()
            .zip(u32::try_from(slot).ok().filter(|s| s & !SLOT_BITS == 0))
            .ok_or(SimError::TooLarge(row.row))?;
        if let Some(d) = row.departure_s {
            self.departures.push((OrderedTime(d), key.0, key.1));
        }
        if let Some(g) = self.growth_time(&row) {
            self.departures
                .push((OrderedTime(g), key.0, key.1 | GROWTH));
        }
        if let Some(step) = self.rebalance_step() {
            self.departures
                .push((OrderedTime(row.arrival_s + step), key.0, key.1 | TICK));
        }
        let cpu_cells = self.cpu_cells_of(host, &fitted, vcpu_claim);
        if let Some((remote, latency)) = cost {
            self.running_remote += remote;
            self.running_latency += latency;
            self.running_costed += 1;
        }
        if !cpu_cells.is_empty() {
            for (load, v) in self.cpu_load[host].iter_mut().zip(&cpu_cells) {
                *load += v;
            }
        }
        if self.config.placement == Placement::Numad {
            self.guests_by_host[host].push(slot);
        }
        self.running += 1;
        self.placements += 1;
        self.placed[slot] = Some(Placed {
            host,
            fitted,
            vcpu: vcpu_claim,
            mem,
            pages,
            row: row.row,
            flavor: row.flavor,
            arrival_s: row.arrival_s,
            confined: self.cpuset_node,
            manual: self.manual_now.clone(),
            cpu_cells,
            cost,
            scan_pos_mb: 0.0,
            advised_version: None,
        });
        let fitted = self.placed[slot].as_ref().and_then(|p| p.fitted.as_ref());
        obs.arrival(
            row.arrival_s,
            &row,
            &Decision::Placed { host, fitted },
            self,
        );
        Ok(())
    }

    // --- What `explain` needs, computed exactly as `arrive` decides. ---

    /// The guest topology the scheduler works with (none under libvirt's own placements).
    pub(crate) fn request_for_explain(
        &mut self,
        row: &TraceRow,
    ) -> Result<Option<GuestTopology>, RequestError> {
        let cached = self.request_for(row);
        match cached.as_ref() {
            Ok(r) if self.config.placement.uses_numa_topology() => Ok(r.clone()),
            Ok(_) => Ok(None),
            Err(e) => Err(e.clone()),
        }
    }

    /// Hosts in the order the strategy tries them.
    pub(crate) fn host_order(&self) -> Vec<usize> {
        self.order.iter().map(|&(_, i)| i).collect()
    }

    pub(crate) fn limits_for(&self, host: usize) -> Option<&Limits> {
        self.limits_of(&self.hosts[host])
    }

    /// Whether memory is checked per cell (strict) or per host (relaxed modes).
    pub(crate) fn checks_cell_memory(&self) -> bool {
        !matches!(
            self.config.memory_mode,
            Some(MemoryMode::Preferred | MemoryMode::Interleave)
        )
    }

    /// Why the host-level check (allocation ratios) refuses, if it applies and does.
    pub(crate) fn host_level_reason(
        &self,
        host: usize,
        vcpus: i64,
        mem: i64,
        has_topology: bool,
        flavor: usize,
    ) -> Option<String> {
        let h = &self.hosts[host];
        let check =
            !has_topology || self.config.host_check == HostCheck::All || !self.checks_cell_memory();
        if let (true, Some(l)) = (check, self.limits_of(h)) {
            // Generic words, so that hosts aggregate; the numbers are in the host list.
            if (h.vcpu_used + vcpus) as f64 > h.total_cpus as f64 * l.cpu_allocation_ratio {
                return Some(format!(
                    "no room for {vcpus} more vCPUs at cpu_allocation_ratio {}",
                    l.cpu_allocation_ratio
                ));
            }
            if (h.mem_used + mem) as f64 > h.total_mem as f64 * l.ram_allocation_ratio {
                return Some(format!(
                    "no room for {mem} MB more at ram_allocation_ratio {}",
                    l.ram_allocation_ratio
                ));
            }
        }
        if self.config.placement == Placement::CpusetAuto
            && self.cpuset_auto_node(host, flavor, mem).is_none()
        {
            return Some("no node with room for the guest's memory (cpuset=auto)".into());
        }
        if let Some(Some(t)) = self.config.manual.get(flavor)
            && t.nodeset.iter().any(|id| h.model.cell_index(*id).is_none())
        {
            return Some(format!("no NUMA nodes {:?} (manual nodeset)", t.nodeset));
        }
        None
    }

    /// The fit (or `closest`) on one host, as `arrive` runs it; errors count as no fit.
    pub(crate) fn fit_for_explain(&self, host: usize, t: &GuestTopology) -> Option<GuestTopology> {
        let h = &self.hosts[host];
        let opts = FitOptions {
            mode: self.config.fit_mode,
            pack: false,
            cell_memory: self.checks_cell_memory(),
        };
        let fitted = if self.config.placement == Placement::Closest {
            fit_closest(&h.topo, t, self.limits_of(h), &h.model.distances, &opts)
        } else {
            fit_instance_to_host(&h.topo, t, self.limits_of(h), &PciContext::default(), &opts)
        };
        fitted.ok().flatten()
    }

    /// Physical CPUs and memory (MB) of the whole fleet.
    pub fn capacity(&self) -> (i64, i64) {
        let cpus = self
            .hosts
            .iter()
            .map(|h| {
                h.topo
                    .cells
                    .iter()
                    .map(|c| (c.cpuset().len() + c.pcpuset().len()) as i64)
                    .sum::<i64>()
            })
            .sum();
        let mem = self.hosts.iter().map(|h| h.total_mem).sum();
        (cpus, mem)
    }

    fn count_claim(
        &mut self,
        host: usize,
        fitted: &Option<GuestTopology>,
        vcpus: i64,
        mem: i64,
        sign: i64,
    ) {
        let cpus = match fitted {
            Some(f) => f
                .cells
                .iter()
                .map(|c| {
                    (c.cpuset.len()
                        + c.pcpuset.len()
                        + c.cpuset_reserved.as_ref().map_or(0, |r| r.len()))
                        as i64
                })
                .sum(),
            None => vcpus,
        };
        self.claimed_cpus += sign * cpus;
        self.claimed_mem += sign * mem;
        let before = self.guests_on[host];
        self.guests_on[host] = (i64::from(before) + sign) as u32;
        match (before, self.guests_on[host]) {
            (0, 1) => self.hosts_in_use += 1,
            (1, 0) => self.hosts_in_use -= 1,
            _ => {}
        }
    }

    /// Claims (`free == false`) or releases a guest's usage on a host: the
    /// fit engine's cell accounting, the host-level counters, the fleet
    /// totals and the host's place in the index; a release also returns the
    /// guest's resident pages.
    fn change_usage(
        &mut self,
        host: usize,
        fitted: &Option<GuestTopology>,
        vcpus: i64,
        mem: i64,
        free: bool,
        pages: Option<&[f64]>,
    ) -> Result<(), SimError> {
        let sign = if free { -1 } else { 1 };
        self.count_claim(host, fitted, vcpus, mem, sign);
        self.order.remove(&self.order_key(host));
        self.host_changed(host);
        let h = &mut self.hosts[host];
        let vcpu = match fitted {
            Some(f) => {
                apply_usage(&mut h.topo, f, free).map_err(|source| SimError::Usage {
                    host: h.name.clone(),
                    source,
                })?;
                f.cells.iter().map(|c| c.cpuset.len() as i64).sum::<i64>()
            }
            None => vcpus,
        };
        h.vcpu_used += sign * vcpu;
        h.mem_used += sign * mem;
        if let Some(p) = pages {
            for (free_mb, used) in self.free_mb[host].iter_mut().zip(p) {
                *free_mb += used;
            }
        }
        self.order.insert(self.order_key(host));
        Ok(())
    }

    /// The fraction of its memory a guest of `flavor` touches at start.
    fn touched(&self, flavor: usize) -> f64 {
        self.config
            .touched_fraction
            .get(flavor)
            .copied()
            .unwrap_or(1.0)
    }

    /// Takes the guest out of `slot` and returns its claims and pages (a
    /// departure or a kill).
    fn release(&mut self, slot: usize) -> Result<Option<Placed>, SimError> {
        let Some(p) = self.placed.get_mut(slot).and_then(Option::take) else {
            return Ok(None);
        };
        self.free_slots.push(slot);
        self.running -= 1;
        let on_host = &mut self.guests_by_host[p.host];
        if let Some(i) = on_host.iter().position(|&s| s == slot) {
            on_host.swap_remove(i);
        }
        for (load, v) in self.cpu_load[p.host].iter_mut().zip(&p.cpu_cells) {
            *load -= v;
        }
        if let Some((remote, latency)) = p.cost {
            self.running_remote -= remote;
            self.running_latency -= latency;
            self.running_costed -= 1;
        }
        self.change_usage(p.host, &p.fitted, p.vcpu, p.mem, true, Some(&p.pages))?;
        Ok(Some(p))
    }

    /// When a guest's memory grows, if its flavor grows and before it leaves.
    fn growth_time(&self, row: &TraceRow) -> Option<f64> {
        let g = self.config.growth.get(row.flavor)?.as_ref()?;
        let touched = self.touched(row.flavor);
        if g.to <= touched || self.config.memory_mode.is_none() {
            return None;
        }
        // Its own stream, so growth never shifts the scheduler's random draws.
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.config.seed ^ (row.row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let u: f64 = rng.random();
        let t = row.arrival_s - g.mean_delay_s * (1.0 - u).ln();
        row.departure_s.is_none_or(|d| t < d).then_some(t)
    }

    /// The guest in `slot` touches more memory: place the new pages as its
    /// memory mode places pages, or kill it when they do not fit.
    fn grow(&mut self, slot: usize) -> Result<GrowthOutcome, SimError> {
        let Some(p) = self.placed.get(slot).and_then(Option::as_ref) else {
            return Ok(GrowthOutcome::Grew { spilled_mb: 0.0 });
        };
        let (host, flavor) = (p.host, p.flavor);
        let touched = self.touched(flavor);
        let to = self.config.growth[flavor]
            .as_ref()
            .map_or(touched, |g| g.to);
        let extra = (to - touched).max(0.0) * self.catalog.flavors[flavor].memory_mb as f64;
        let mode = self.config.memory_mode.unwrap_or(MemoryMode::Strict);
        let model = self.hosts[host].model.clone();
        let demands: Vec<Demand> = match &p.manual {
            Some((t, cells)) => manual_demands(&model, t, *cells, extra),
            None => demands_for(&model, &p.fitted, extra, mode, p.confined),
        }
        .into_iter()
        // Hugepage-backed cells were reserved whole by the fit: nothing grows there.
        .filter(|d| !d.reserved)
        .collect();
        let own: Vec<usize> = match (&p.fitted, p.confined, &p.manual) {
            (Some(f), _, _) => f
                .cells
                .iter()
                .filter_map(|c| model.cell_index(c.id))
                .collect(),
            (None, Some(node), _) => vec![node],
            (None, None, Some((t, _))) => t
                .nodeset
                .iter()
                .filter_map(|id| model.cell_index(*id))
                .collect(),
            (None, None, None) => (0..model.cell_ids.len()).collect(),
        };
        match place(&self.free_mb[host], &model.distances, &demands) {
            Some(added) => {
                let mut spilled_mb = 0.0;
                self.host_changed(host);
                let p = self.placed[slot].as_mut().expect("checked above");
                for placed in &added {
                    for (c, mb) in placed.iter().enumerate() {
                        self.free_mb[host][c] -= mb;
                        if let Some(x) = p.pages.get_mut(c) {
                            *x += mb;
                        }
                        if !own.contains(&c) {
                            spilled_mb += mb;
                        }
                    }
                }
                // Its new pages change what it costs (guests without a NUMA topology).
                self.recost(slot);
                Ok(GrowthOutcome::Grew { spilled_mb })
            }
            None => {
                let arrival_s = self.release(slot)?.map_or(self.now, |p| p.arrival_s);
                Ok(GrowthOutcome::Killed {
                    after_s: self.now - arrival_s,
                })
            }
        }
    }

    /// `cpuset-auto`'s node on a host: among cells with CPUs, the one with
    /// the most free memory that holds the guest's touched memory (ties: the
    /// first); `None` when no cell can.
    fn cpuset_auto_node(&self, host: usize, flavor: usize, flavor_mem: i64) -> Option<usize> {
        let touched = self.touched(flavor);
        let need = flavor_mem as f64 * touched;
        let model = &self.hosts[host].model;
        let free = &self.free_mb[host];
        (0..free.len())
            .filter(|&c| model.cpus_per_cell.get(c).is_some_and(|&n| n > 0) && free[c] >= need)
            .fold(None, |best: Option<usize>, c| match best {
                Some(b) if free[b] >= free[c] => Some(b),
                _ => Some(c),
            })
    }

    /// vCPUs per host cell of the guest being placed (empty when pages are
    /// not modelled): its fitted cells, its confinement, its nodeset by
    /// CPUs, or the whole host by CPUs.
    fn cpu_cells_of(&self, host: usize, fitted: &Option<GuestTopology>, vcpus: i64) -> Vec<f64> {
        // Only numad and autonuma read the per-cell load: spare the others the allocation.
        if !self.keeps_loads() {
            return Vec::new();
        }
        let model = &self.hosts[host].model;
        let n = model.cell_ids.len();
        let mut out = vec![0.0; n];
        match (fitted, self.cpuset_node, &self.manual_now) {
            (Some(f), _, _) => {
                for c in &f.cells {
                    if let Some(p) = model.cell_index(c.id) {
                        out[p] += (c.cpuset.len() + c.pcpuset.len()) as f64;
                    }
                }
            }
            (None, Some(node), _) => out[node] = vcpus as f64,
            (None, None, Some((t, _))) => {
                let cells: Vec<usize> = t
                    .nodeset
                    .iter()
                    .filter_map(|id| model.cell_index(*id))
                    .collect();
                out = vcpus_by_cpus(model, &cells, vcpus as f64);
            }
            (None, None, None) => {
                out = vcpus_by_cpus(model, &(0..n).collect::<Vec<_>>(), vcpus as f64);
            }
        }
        out
    }

    /// The interval to a guest's next autonuma step, if it has them.
    fn rebalance_step(&self) -> Option<f64> {
        self.config.memory_mode?;
        (self.config.placement == Placement::Autonuma)
            .then_some(self.config.rebalancing.autonuma_tick_s)
            .filter(|s| *s > 0.0)
    }

    /// Whether guests' per-cell vCPU loads are kept (numad and autonuma read them).
    fn keeps_loads(&self) -> bool {
        self.config.memory_mode.is_some()
            && matches!(
                self.config.placement,
                Placement::Numad | Placement::Autonuma
            )
    }

    /// Records that a host's claims, pages or loads changed; under numad,
    /// makes sure a scan of the host is due at numad's next wake-up.
    fn host_changed(&mut self, host: usize) {
        self.host_version[host] += 1;
        if self.config.placement != Placement::Numad
            || self.config.memory_mode.is_none()
            || self.scan_pending[host]
        {
            return;
        }
        let interval = self.config.rebalancing.numad_interval_s;
        let next = ((self.now / interval).floor() + 1.0) * interval;
        self.scan_pending[host] = true;
        self.departures
            .push((OrderedTime(next), u32::MAX, HOST_SCAN | host as u32));
    }

    /// numad wakes up and re-advises the guests of a host that changed,
    /// in trace order.
    fn numad_scan(&mut self, host: usize, obs: &mut dyn Observer) {
        self.scan_pending[host] = false;
        let mut guests: Vec<(usize, usize)> = self.guests_by_host[host]
            .iter()
            .filter_map(|&slot| self.placed[slot].as_ref().map(|p| (p.row, slot)))
            .collect();
        guests.sort_unstable();
        for (row, slot) in guests {
            let (outcome, _) = self.rebalance(slot);
            obs.rebalance(self.now, row, outcome, self);
        }
    }

    /// numad's advice on `host` as a numatune in the policy's memory mode,
    /// given the vCPU load and free memory per cell it sees (for a running
    /// guest, without its own share).
    fn numad_tuning(
        &self,
        host: usize,
        load: &[f64],
        free: &[f64],
        vcpus: f64,
        mb: f64,
    ) -> Option<(ManualTuning, usize)> {
        let model = &self.hosts[host].model;
        let total: Vec<f64> = self.hosts[host]
            .topo
            .cells
            .iter()
            .map(|c| c.memory_mb as f64)
            .collect();
        let nodes = super::rebalance::numad_nodes(
            &super::rebalance::Nodes {
                cpus: &model.cpus_per_cell,
                total_mb: &total,
                distances: &model.distances,
                load,
                free_mb: free,
            },
            vcpus,
            mb,
            self.config.rebalancing.numad_target_utilization,
        )?;
        Some((
            ManualTuning {
                nodeset: nodes.iter().map(|&c| model.cell_ids[c]).collect(),
                mode: self.config.memory_mode.unwrap_or(MemoryMode::Strict),
            },
            0,
        ))
    }

    /// One numad or autonuma step for the guest in `slot`: what it did and
    /// when the next step is due (`None`: no more).
    fn rebalance(&mut self, slot: usize) -> (Rebalanced, Option<f64>) {
        let none = Rebalanced {
            moved: false,
            migrated_mb: 0.0,
        };
        let next = self.rebalance_step();
        let Some(p) = self.placed.get(slot).and_then(Option::as_ref) else {
            return (none, None);
        };
        let host = p.host;
        if self.config.placement == Placement::Numad {
            let version = self.host_version[host];
            let p = self.placed[slot].as_mut().expect("checked above");
            if p.advised_version == Some(version) {
                return (none, next);
            }
            p.advised_version = Some(version);
        }
        let p = self.placed[slot].as_ref().expect("checked above");
        let model = self.hosts[host].model.clone();
        let mut load = self.cpu_load[host].clone();
        for (l, v) in load.iter_mut().zip(&p.cpu_cells) {
            *l -= v;
        }
        let vcpus = p.vcpu as f64;
        let mut scan_pos = p.scan_pos_mb;
        let (new_pages, new_cpu, new_confined, new_manual, moved) = match self.config.placement {
            Placement::Numad => {
                let resident: f64 = p.pages.iter().sum();
                // The host as numad sees it for this guest: its own pages count as free.
                let mut free = self.free_mb[host].clone();
                for (f, v) in free.iter_mut().zip(&p.pages) {
                    *f += v;
                }
                let Some(advice) = self.numad_tuning(host, &load, &free, vcpus, resident) else {
                    return (none, next);
                };
                let cells = |t: &ManualTuning| -> Vec<usize> {
                    t.nodeset
                        .iter()
                        .filter_map(|id| model.cell_index(*id))
                        .collect()
                };
                let current = p.manual.as_ref().map(|(t, _)| cells(t)).unwrap_or_default();
                let advised = cells(&advice.0);
                if !super::rebalance::numad_moves(
                    &current,
                    &advised,
                    &model.cpus_per_cell,
                    &load,
                    vcpus,
                ) {
                    return (none, next);
                }
                let demands = manual_demands(&model, &advice.0, 0, resident);
                // No room for the pages in the new nodeset: numad stays put.
                let Some(placed) = place(&free, &model.distances, &demands) else {
                    return (none, next);
                };
                let pages: Vec<f64> = (0..free.len())
                    .map(|c| placed.iter().map(|d| d[c]).sum())
                    .collect();
                let cpu = vcpus_by_cpus(&model, &advised, vcpus);
                (pages, cpu, None, Some(advice), true)
            }
            Placement::Autonuma => {
                let node = match p.confined {
                    Some(node) => node,
                    None => match super::rebalance::autonuma_preferred(
                        &model.cpus_per_cell,
                        &load,
                        &p.pages,
                        &self.free_mb[host],
                        vcpus,
                    ) {
                        Some(node) => node,
                        // Larger than any node's idle CPUs: it never settles.
                        None => return (none, None),
                    },
                };
                let r = &self.config.rebalancing;
                let total: f64 = p.pages.iter().sum();
                let scanned = r.autonuma_scan_mb_per_s * r.autonuma_tick_s;
                let unscanned = total - p.scan_pos_mb;
                let moving = super::rebalance::autonuma_step(
                    &p.pages,
                    node,
                    self.free_mb[host][node],
                    scanned,
                    unscanned,
                );
                scan_pos = if scanned >= unscanned {
                    0.0
                } else {
                    p.scan_pos_mb + scanned
                };
                let mut pages = p.pages.clone();
                for (c, mb) in moving.iter().enumerate() {
                    pages[c] -= mb;
                }
                pages[node] += moving.iter().sum::<f64>();
                let mut cpu = vec![0.0; pages.len()];
                cpu[node] = vcpus;
                (pages, cpu, Some(node), None, false)
            }
            _ => return (none, None),
        };
        self.host_changed(host);
        let p = self.placed[slot].as_mut().expect("checked above");
        let mut migrated_mb = 0.0;
        for (c, (old, new)) in p.pages.iter().zip(&new_pages).enumerate() {
            migrated_mb += (old - new).max(0.0);
            self.free_mb[host][c] += old - new;
        }
        for (c, (old, new)) in p.cpu_cells.iter().zip(&new_cpu).enumerate() {
            self.cpu_load[host][c] += new - old;
        }
        p.pages = new_pages;
        p.cpu_cells = new_cpu;
        p.scan_pos_mb = scan_pos;
        if new_confined.is_some() {
            p.confined = new_confined;
        }
        if new_manual.is_some() {
            p.manual = new_manual;
        }
        let remote_left: f64 = match p.confined {
            Some(node) => p.pages.iter().sum::<f64>() - p.pages[node],
            None => 0.0,
        };
        self.recost(slot);
        // autonuma stops once every page is local.
        let next = if self.config.placement == Placement::Autonuma && remote_left <= 1e-9 {
            None
        } else {
            next
        };
        (Rebalanced { moved, migrated_mb }, next)
    }

    /// Recomputes a running guest's cost from where it runs now.
    fn recost(&mut self, slot: usize) {
        let Some(p) = self.placed.get(slot).and_then(Option::as_ref) else {
            return;
        };
        if p.cost.is_none() || p.fitted.is_some() {
            return;
        }
        let host = p.host;
        self.last_demands = vec![p.pages.clone()];
        self.cpuset_node = p.confined;
        self.manual_now = p.manual.clone();
        let cost = self.cost_of(host, &None);
        self.cpuset_node = None;
        self.manual_now = None;
        let p = self.placed[slot].as_mut().expect("checked above");
        if let Some((remote, latency)) = p.cost {
            self.running_remote += cost.remote - remote;
            self.running_latency += cost.latency - latency;
        }
        p.cost = Some((cost.remote, cost.latency));
    }

    fn depart(&mut self, slot: usize) -> Result<(), SimError> {
        self.release(slot)?;
        Ok(())
    }

    /// Where the guest's pages land; `None` = OOM kill. Without page
    /// modelling every guest gets an empty placement.
    fn place_pages(
        &mut self,
        host: usize,
        fitted: &Option<GuestTopology>,
        flavor_mem: i64,
        flavor_idx: usize,
    ) -> Option<Vec<f64>> {
        let Some(mode) = self.config.memory_mode else {
            return Some(Vec::new());
        };
        let h = &self.hosts[host];
        let model = h.model.clone();
        let n = model.cell_ids.len();
        let touched = self.touched(flavor_idx);
        let demands = if let Some((t, cells)) = &self.manual_now {
            manual_demands(&model, t, *cells, flavor_mem as f64 * touched)
        } else {
            demands_for(
                &model,
                fitted,
                flavor_mem as f64 * touched,
                mode,
                self.cpuset_node,
            )
        };
        let placed = place(&self.free_mb[host], &model.distances, &demands)?;
        // Only general memory is tracked as free/used; reserved hugepages are the fit's.
        let total: Vec<f64> = (0..n)
            .map(|c| {
                placed
                    .iter()
                    .zip(&demands)
                    .filter(|(_, d)| !d.reserved)
                    .map(|(p, _)| p[c])
                    .sum()
            })
            .collect();
        for (free, used) in self.free_mb[host].iter_mut().zip(&total) {
            *free -= used;
        }
        self.last_demands = placed;
        Some(total)
    }

    fn cost_of(&self, host: usize, fitted: &Option<GuestTopology>) -> GuestCost {
        let model = &self.hosts[host].model;
        let n = model.cell_ids.len();
        let cpu_total: f64 = model.cpus_per_cell.iter().map(|&c| f64::from(c)).sum();
        let share = |v: &[f64]| -> Vec<f64> {
            let s: f64 = v.iter().sum();
            if s > 0.0 {
                v.iter().map(|x| x / s).collect()
            } else {
                vec![0.0; v.len()]
            }
        };
        let cells: Vec<CellAccess> = match fitted {
            Some(f) => f
                .cells
                .iter()
                .zip(&self.last_demands)
                .map(|(c, placed)| {
                    let mut cpu = vec![0.0; n];
                    if let Some(p) = model.cell_index(c.id) {
                        cpu[p] = 1.0;
                    }
                    CellAccess {
                        vcpus: (c.cpuset.len() + c.pcpuset.len()) as f64,
                        cpu_share: cpu,
                        mem_share: share(placed),
                    }
                })
                .collect(),
            None => {
                let on_nodeset = |c: usize| {
                    self.manual_now.as_ref().is_some_and(|(t, _)| {
                        t.nodeset.iter().any(|id| model.cell_index(*id) == Some(c))
                    })
                };
                let nodeset_cpus: f64 = (0..n)
                    .filter(|&c| on_nodeset(c))
                    .map(|c| f64::from(model.cpus_per_cell[c]))
                    .sum();
                let cpu: Vec<f64> = match self.cpuset_node {
                    Some(node) => (0..n).map(|c| f64::from(u8::from(c == node))).collect(),
                    None if self.manual_now.is_some() && nodeset_cpus > 0.0 => (0..n)
                        .map(|c| {
                            if on_nodeset(c) {
                                f64::from(model.cpus_per_cell[c]) / nodeset_cpus
                            } else {
                                0.0
                            }
                        })
                        .collect(),
                    None => model
                        .cpus_per_cell
                        .iter()
                        .map(|&c| f64::from(c) / cpu_total.max(1.0))
                        .collect(),
                };
                let mem: Vec<f64> = self
                    .last_demands
                    .first()
                    .map(|p| share(p))
                    .unwrap_or_else(|| vec![0.0; n]);
                vec![CellAccess {
                    vcpus: 1.0,
                    cpu_share: cpu,
                    mem_share: mem,
                }]
            }
        };
        let cells = if self.config.numa_aware_guests || cells.len() < 2 {
            cells
        } else {
            merge_accesses(&cells, &self.last_demands)
        };
        let (remote, latency) = guest_cost(&cells, &model.distances, &self.config.calibration);
        let touched_cells: BTreeSet<usize> = self
            .last_demands
            .iter()
            .flat_map(|p| {
                p.iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(c, _)| c)
            })
            .collect();
        let cpu_cells: BTreeSet<usize> = cells
            .iter()
            .flat_map(|c| {
                c.cpu_share
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0.0)
                    .map(|(i, _)| i)
            })
            .collect();
        let spans = touched_cells.len() > 1 || cpu_cells.len() > 1;
        let spilled_mb = match fitted {
            Some(f) => {
                let own: BTreeSet<usize> = f
                    .cells
                    .iter()
                    .filter_map(|c| model.cell_index(c.id))
                    .collect();
                self.last_demands
                    .iter()
                    .flat_map(|p| p.iter().enumerate())
                    .filter(|(c, _)| !own.contains(c))
                    .map(|(_, mb)| mb)
                    .sum()
            }
            None => 0.0,
        };
        GuestCost {
            remote,
            latency,
            spans,
            spilled_mb,
        }
    }

    /// Whether the row's request has a guest NUMA topology (valid requests only).
    pub fn requests_numa(&self, row: &TraceRow) -> bool {
        matches!(
            self.requests
                .get(&(row.flavor, row.image_props.clone()))
                .map(|r| r.as_ref()),
            Some(Ok(Some(_)))
        )
    }

    /// Whether every host's cell memory usage equals its initial usage plus
    /// the memory of the NUMA guests on it (Nova's accounting invariant).
    pub fn accounting_ok(&self) -> bool {
        let mut numa_mem = vec![0i64; self.hosts.len()];
        let mut numa_cpu = vec![0i64; self.hosts.len()];
        for p in self.placed.iter().flatten() {
            if p.fitted.is_some() {
                numa_mem[p.host] += p.mem;
                numa_cpu[p.host] += p.vcpu;
            }
        }
        self.hosts.iter().enumerate().all(|(i, h)| {
            let cells = &h.topo.cells;
            let mem: i64 = cells.iter().map(|c| c.memory_usage_mb).sum();
            let cpu: i64 = cells.iter().map(|c| c.cpu_usage).sum();
            mem == h.initial_cell_mem + numa_mem[i]
                && cpu == h.initial_cell_cpu + numa_cpu[i]
                && h.vcpu_used >= 0
                && h.mem_used >= 0
                && cells.iter().all(|c| {
                    c.cpu_usage >= 0
                        && c.memory_usage_mb >= 0
                        && c.mempages.iter().all(|p| p.used >= 0)
                })
        })
    }

    /// Where a running guest without a NUMA topology runs, in words (its
    /// nodeset and memory mode, its node, or floating); `None` for NUMA
    /// guests and guests not running. Scans the running guests.
    pub fn binding_of(&self, row: usize) -> Option<String> {
        let p = self.placed.iter().flatten().find(|p| p.row == row)?;
        if p.fitted.is_some() {
            return None;
        }
        let model = &self.hosts[p.host].model;
        let what = match self.config.placement {
            Placement::Numad => "numad's advice",
            Placement::Manual => "the flavor's numatune",
            Placement::CpusetAuto => "cpuset=auto",
            Placement::Autonuma => "automatic NUMA balancing",
            _ => "no binding",
        };
        Some(match (&p.manual, p.confined) {
            (Some((t, _)), _) => format!(
                "{what}: vCPUs and memory ({}) on host nodes {:?}",
                t.mode.as_str(),
                t.nodeset
            ),
            (None, Some(node)) => format!(
                "{what}: vCPUs on host node {}, pages following",
                model.cell_ids[node]
            ),
            (None, None) => {
                format!("{what}: vCPUs float over all host nodes, pages where they run")
            }
        })
    }

    /// Guests currently placed.
    pub fn running(&self) -> usize {
        self.running
    }
}

/// `vcpus` floating over `cells` (host cell positions), each cell taking its
/// share of their CPUs: the per-cell load of an unpinned guest.
fn vcpus_by_cpus(model: &super::fleet::HostModel, cells: &[usize], vcpus: f64) -> Vec<f64> {
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

/// One access pattern for a whole guest: vCPU shares weighted by each
/// cell's vCPUs, memory shares over all of its pages (`placed`: MB per host
/// cell for each guest cell).
fn merge_accesses(cells: &[CellAccess], placed: &[Vec<f64>]) -> Vec<CellAccess> {
    let total: f64 = cells.iter().map(|c| c.vcpus).sum::<f64>().max(1e-12);
    let n = cells[0].cpu_share.len();
    let mut cpu = vec![0.0; n];
    for c in cells {
        for (acc, share) in cpu.iter_mut().zip(&c.cpu_share) {
            *acc += c.vcpus / total * share;
        }
    }
    let mut mem: Vec<f64> = (0..n).map(|i| placed.iter().map(|p| p[i]).sum()).collect();
    let sum: f64 = mem.iter().sum();
    if sum > 0.0 {
        mem.iter_mut().for_each(|m| *m /= sum);
    }
    vec![CellAccess {
        vcpus: total,
        cpu_share: cpu,
        mem_share: mem,
    }]
}

/// The page demands of a placed guest under a memory mode.
/// Pages under an operator's numatune: with guest virtual cells, each cell
/// on the nodeset's nodes in turn (strict: there only; preferred: spilling;
/// interleave: over the whole nodeset); without, the whole guest over the
/// nodeset (strict: in proportion to the nodes' CPUs; preferred: the first
/// node, spilling; interleave: evenly). Only `strict` never leaves the
/// nodeset: Linux allocates an interleaved page on its node's zonelist
/// without the nodemask, so a full node falls back to the nearest one.
fn manual_demands(
    model: &super::fleet::HostModel,
    t: &ManualTuning,
    guest_cells: usize,
    touched_mb: f64,
) -> Vec<Demand> {
    let nodes: Vec<usize> = t
        .nodeset
        .iter()
        .filter_map(|id| model.cell_index(*id))
        .collect();
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

fn demands_for(
    model: &super::fleet::HostModel,
    fitted: &Option<GuestTopology>,
    touched_mb: f64,
    mode: MemoryMode,
    confined_to: Option<usize>,
) -> Vec<Demand> {
    let n = model.cell_ids.len();
    match fitted {
        // vCPUs confined to one cell, memory unbound: pages there, spilling.
        None if confined_to.is_some() => vec![Demand {
            targets: vec![(confined_to.unwrap_or(0), 1.0)],
            mb: touched_mb,
            may_spill: true,
            reserved: false,
        }],
        None => {
            // Local allocation where the vCPUs run: in proportion to CPUs.
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
        Some(f) => {
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
    }
}

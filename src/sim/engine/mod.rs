//! The event loop and the scheduler.
//!
//! Events: arrivals come from the trace stream (rows in arrival order);
//! departures wait in a priority queue. Tie order, as Nova's replayer
//! sorts: by time; at equal times departures before arrivals; then trace
//! row order. One run is single-threaded and deterministic: the only
//! randomness is a ChaCha8 generator seeded from the run's seed.
//!
//! The loop knows placement policies only through
//! [`PlacementPolicy`](super::policy::PlacementPolicy); every host check
//! goes through [`Simulation::check_host`].

mod claims;
mod nova;
mod room;
mod running;

use super::binding::Binding;
use super::config::{HostCheck, SimConfig, Strategy};
use super::cost::price;
use super::fleet::SimHost;
use super::memory::MemoryMode;
use super::observer::{Decision, Observer};
use super::policy::{GuestView, HostView, Schedule, Verdict};
use super::refusal::{FitShortfall, Refusal, Rejection};
use crate::fit::host::PciRequest;
use crate::fit::{FitError, FitOptions, Limits};
use crate::request::{GuestTopology, ImageProps, RequestError, numa_get_constraints};
use crate::workload::model::{Catalog, TraceRow};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("trace: {0}")]
    Trace(#[from] crate::workload::model::CsvError),
    #[error("fit engine: {0}")]
    Fit(#[from] FitError),
    #[error("usage accounting on host {host}: {source}")]
    Usage {
        host: String,
        source: crate::fit::UsageError,
    },
    #[error("trace row {0}: more than 2^32 rows or running guests in one run")]
    TooLarge(usize),
}

impl SimError {
    /// Whether the error is numasim's own (an invariant broke), not the input's.
    pub fn is_internal(&self) -> bool {
        matches!(self, SimError::Fit(_) | SimError::Usage { .. })
    }
}

struct Placed {
    host: usize,
    binding: Binding,
    vcpu: i64,
    mem: i64,
    /// Resident MB per host cell.
    pages: Vec<f64>,
    /// Trace row: queue entries for a slot that was freed and reused are stale.
    row: usize,
    flavor: usize,
    arrival_s: f64,
    /// vCPUs this guest runs per host cell (only for policies that read
    /// loads; empty otherwise).
    cpu_cells: Vec<f64>,
    /// Its current cost, while running (`None`: not costed).
    cost: Option<(f64, f64)>,
    /// autonuma: MB of its memory scanned in the current pass.
    scan_pos_mb: f64,
    /// Host scans: the host's state version at its last step (the same
    /// state gives the same advice, so a step on an unchanged host is skipped).
    advised_version: Option<u64>,
    /// Nova's scheduler: the Placement allocation and tracker usage claimed.
    nova: Option<([i64; 4], crate::sim::scheduler::placement::GuestUsage)>,
    /// PCI devices taken: (pool index, count).
    pci_taken: Vec<(usize, i64)>,
}

/// Marks a queue entry as a memory-growth event rather than a departure.
const GROWTH: u32 = 1 << 31;
/// Marks a queue entry as a per-guest rebalancing step.
const TICK: u32 = 1 << 30;
/// Marks a queue entry as a scan of one host (the slot bits hold the host).
const HOST_SCAN: u32 = 1 << 29;
const SLOT_BITS: u32 = HOST_SCAN - 1;

/// Fleet state and scheduler for one run.
pub struct Simulation {
    pub hosts: Vec<SimHost>,
    pub config: SimConfig,
    /// Free physical MB per host cell (pages modelling only).
    pub free_mb: Vec<Vec<f64>>,
    catalog: Catalog,
    requests: HashMap<RequestKey, CachedRequest>,
    /// Requests of rows without image properties, by flavor.
    plain_requests: Vec<Option<CachedRequest>>,
    /// Placed guests in a slab: departures carry their slot.
    placed: Vec<Option<Placed>>,
    free_slots: Vec<usize>,
    running: usize,
    /// (departure time, trace row, slot), in (time, row) order.
    departures: super::queue::DepartureQueue,
    /// Hosts ordered for the strategy: (key, fleet index); first passing wins.
    order: BTreeSet<(i64, usize)>,
    /// One probe guest per valid catalog flavor, smallest first: what
    /// `stranded` tries on each host.
    probes: Vec<(TraceRow, Option<GuestTopology>)>,
    /// Scratch: the refusals of the current arrival's scan (reasons only),
    /// and which hosts it checked.
    refused: Vec<(usize, Refusal)>,
    seen: std::cell::Cell<Vec<bool>>,
    /// Each host's current key in `order`.
    order_keys: Vec<i64>,
    /// The policy keeps guests' NUMA topologies (asked once: the scheduler
    /// needs it for every host it checks).
    numa_policy: bool,
    /// The policy orders hosts itself (`PlacementPolicy::host_key`).
    policy_orders_hosts: bool,
    /// The policy reads per-cell loads and pages are modelled.
    keeps_loads: bool,
    /// When the policy rebalances (`Never` when pages are not modelled).
    schedule: Schedule,
    rng: ChaCha8Rng,
    pub now: f64,
    pub fit_calls: u64,
    /// Events processed, for throughput figures: arrivals, departures, placements.
    pub arrivals: u64,
    pub departures_done: u64,
    pub placements: u64,
    /// Fleet-wide claimed CPUs (floating vCPUs plus pinned pCPUs) and memory.
    pub claimed_cpus: i64,
    pub claimed_mem: i64,
    /// Guests per host, for hosts in use.
    guests_on: Vec<u32>,
    /// The largest `total_mem * (ram_allocation_ratio - 1)` of the fleet
    /// (at least 0); `None` if some host has no limits (no RAM check).
    max_ram_slack: Option<i64>,
    /// Hosts counted by vCPU room, for the reasons of skipped hosts.
    vcpu_room: Option<room::VcpuRoom>,
    pub hosts_in_use: usize,
    /// vCPUs running per host cell (only kept when `keeps_loads`).
    cpu_load: Vec<Vec<f64>>,
    /// Bumped whenever a host's claims, pages or loads change.
    host_version: Vec<u64>,
    /// Host scans: the slots of the guests on each host, and whether a scan
    /// of the host is already queued.
    guests_by_host: Vec<Vec<usize>>,
    scan_pending: Vec<bool>,
    /// Sums of the current remote fraction and latency factor over the
    /// costed running guests, and their count: the time-weighted costs.
    pub running_remote: f64,
    pub running_latency: f64,
    pub running_costed: u64,
    /// Nova's view of the fleet (`Strategy::Nova` only).
    nova: Option<nova::NovaState>,
    /// PCI requests per flavor (rows without image properties), and per
    /// (flavor, image properties) for rows with some.
    pci_plain: Vec<Result<Vec<PciRequest>, RequestError>>,
    pci_by_image: HashMap<RequestKey, Result<Vec<PciRequest>, RequestError>>,
}

/// Capacity no flavor of the catalog can use (`Simulation::stranded`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stranded {
    /// Hosts that can take no flavor.
    pub hosts: usize,
    /// Their free physical CPUs and free memory (MB).
    pub cpus: i64,
    pub mem_mb: i64,
}

/// A request is computed once per (flavor, image properties).
type RequestKey = (usize, Vec<(String, String)>);
type CachedRequest = Arc<Result<Option<GuestTopology>, RequestError>>;

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

/// The host lacks the guest's PCI devices at all (wherever they sit; the
/// NUMA affinity is the fit's, for policies that use Nova's fit).
pub(super) fn pci_refusal(h: &SimHost, guest: &GuestView) -> Option<Refusal> {
    (!guest.pci.is_empty()
        && !crate::fit::pci::support_requests(&h.pci, guest.pci, &[], &h.topo.cells))
    .then(|| Refusal::PciDevices {
        asked: guest.pci.iter().map(|r| r.count).sum(),
    })
}

impl Simulation {
    pub fn new(hosts: Vec<SimHost>, catalog: Catalog, config: SimConfig) -> Simulation {
        let free_mb = hosts
            .iter()
            .map(|h| h.topo.cells.iter().map(|c| c.memory_mb as f64).collect())
            .collect();
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        let paged = config.memory_mode.is_some();
        let numa_policy = config.policy.uses_numa_topology();
        let keeps_loads = paged && config.policy.reads_cpu_load();
        let schedule = match config.policy.schedule() {
            Schedule::GuestSteps { every_s } if paged && every_s > 0.0 => {
                Schedule::GuestSteps { every_s }
            }
            Schedule::HostScans { interval_s } if paged && interval_s > 0.0 => {
                Schedule::HostScans { interval_s }
            }
            _ => Schedule::Never,
        };
        let n = hosts.len();
        let cpu_load = hosts
            .iter()
            .map(|h| vec![0.0; h.model.cell_ids.len()])
            .collect();
        let mut sim = Simulation {
            hosts,
            config,
            free_mb,
            catalog,
            requests: HashMap::new(),
            plain_requests: Vec::new(),
            placed: Vec::new(),
            free_slots: Vec::new(),
            running: 0,
            departures: super::queue::DepartureQueue::new(),
            order: BTreeSet::new(),
            order_keys: vec![0; n],
            refused: Vec::new(),
            seen: Default::default(),
            probes: Vec::new(),
            numa_policy,
            policy_orders_hosts: false,
            keeps_loads,
            schedule,
            rng,
            now: 0.0,
            fit_calls: 0,
            arrivals: 0,
            departures_done: 0,
            placements: 0,
            claimed_cpus: 0,
            claimed_mem: 0,
            guests_on: vec![0; n],
            max_ram_slack: None,
            vcpu_room: None,
            hosts_in_use: 0,
            cpu_load,
            host_version: vec![0; n],
            guests_by_host: vec![Vec::new(); n],
            scan_pending: vec![false; n],
            running_remote: 0.0,
            running_latency: 0.0,
            running_costed: 0,
            nova: None,
            pci_plain: Vec::new(),
            pci_by_image: HashMap::new(),
        };
        sim.pci_plain = sim
            .catalog
            .flavors
            .iter()
            .map(|f| {
                ImageProps::from_pairs(&[]).and_then(|image| {
                    crate::request::pci::pci_requests(f, &image, &sim.config.pci_aliases)
                })
            })
            .collect();
        if sim.config.strategy == Strategy::Nova {
            // Nova's initial ratios where the run gives none, for the fit's
            // limits and Placement's inventories alike.
            if sim.config.limits.is_none() && sim.hosts.iter().any(|h| h.limits.is_none()) {
                sim.config.limits = Some(Limits {
                    cpu_allocation_ratio: 4.0,
                    ram_allocation_ratio: 1.0,
                    network_metadata: None,
                });
            }
            let sched = sim.config.scheduler.clone();
            let nova_hosts = sim
                .hosts
                .iter()
                .map(|h| {
                    let l = sim.limits_of(h);
                    let cpu = sched
                        .cpu_allocation_ratio
                        .or(l.map(|l| l.cpu_allocation_ratio))
                        .unwrap_or(4.0);
                    let ram = sched
                        .ram_allocation_ratio
                        .or(l.map(|l| l.ram_allocation_ratio))
                        .unwrap_or(1.0);
                    let mut nh =
                        crate::sim::scheduler::NovaHost::new(&h.topo, h.compute, &sched, cpu, ram);
                    nh.free_pci = h.pci.iter().map(|p| p.count).sum();
                    nh
                })
                .collect();
            let pci_changes = sim
                .pci_plain
                .iter()
                .any(|r| r.as_ref().is_ok_and(|r| !r.is_empty()));
            sim.nova = Some(nova::NovaState::new(
                sched,
                nova_hosts,
                sim.config.seed,
                pci_changes,
            ));
        }
        sim.max_ram_slack = sim
            .hosts
            .iter()
            .map(|h| {
                sim.limits_of(h)
                    .map(|l| (h.total_mem as f64 * (l.ram_allocation_ratio - 1.0)).ceil() as i64)
            })
            .try_fold(0i64, |acc, s| s.map(|s| acc.max(s)));
        let largest_request = sim.catalog.flavors.iter().map(|f| f.vcpus).max();
        sim.vcpu_room = room::VcpuRoom::new(
            sim.hosts.iter().map(|h| {
                sim.limits_of(h).map(|l| {
                    (
                        l.cpu_allocation_ratio,
                        l.ram_allocation_ratio,
                        h.total_cpus,
                        h.vcpu_used,
                    )
                })
            }),
            largest_request.unwrap_or(0),
        );
        let mut probes: Vec<(TraceRow, Option<GuestTopology>)> = sim
            .catalog
            .flavors
            .iter()
            .enumerate()
            .filter_map(|(f, flavor)| {
                let request = ImageProps::from_pairs(&[])
                    .and_then(|image| numa_get_constraints(flavor, &image))
                    .ok()?;
                let row = TraceRow {
                    row: 0,
                    line: 0,
                    id: String::new(),
                    arrival_s: 0.0,
                    departure_s: None,
                    flavor: f,
                    image_props: Vec::new(),
                };
                Some((row, request))
            })
            .collect();
        probes.sort_by_key(|(row, _)| {
            let f = &sim.catalog.flavors[row.flavor];
            (f.memory_mb, f.vcpus, row.flavor)
        });
        sim.probes = probes;
        sim.policy_orders_hosts = n > 0 && sim.config.policy.host_key(&sim.host_view(0)).is_some();
        for i in 0..n {
            sim.order_keys[i] = sim.order_key(i);
            sim.order.insert((sim.order_keys[i], i));
        }
        sim
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    fn order_key(&self, i: usize) -> i64 {
        if self.policy_orders_hosts {
            return self.config.policy.host_key(&self.host_view(i)).unwrap_or(0);
        }
        let free = self.hosts[i].free_ram();
        match self.config.strategy {
            Strategy::Spread => -free,
            Strategy::Pack => free,
            Strategy::FirstFit | Strategy::Random | Strategy::Nova => 0,
        }
    }

    /// Host `i` as a policy sees it.
    fn host_view(&self, i: usize) -> HostView<'_> {
        HostView {
            index: i,
            host: &self.hosts[i],
            limits: self.limits_of(&self.hosts[i]),
            free_mb: &self.free_mb[i],
            cpu_load: &self.cpu_load[i],
            fit: self.fit_options(),
            memory_mode: self.config.memory_mode,
            pci: &self.hosts[i].pci,
        }
    }

    /// How the fit runs: memory is checked per cell under strict (and
    /// without a page model), per host under the relaxed modes.
    fn fit_options(&self) -> FitOptions {
        FitOptions {
            mode: self.config.fit_mode,
            pack: false,
            cell_memory: self.checks_cell_memory(),
        }
    }

    /// Runs a whole trace, then the departures left.
    pub fn run(
        &mut self,
        rows: impl Iterator<Item = Result<TraceRow, crate::workload::model::CsvError>>,
        obs: &mut dyn Observer,
    ) -> Result<(), SimError> {
        self.run_arrivals(rows, obs)?;
        self.drain(obs)
    }

    /// Runs every arrival of the trace (and the departures due before the last one).
    pub fn run_arrivals(
        &mut self,
        rows: impl Iterator<Item = Result<TraceRow, crate::workload::model::CsvError>>,
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
                    self.scan_host((slot & SLOT_BITS) as usize, obs);
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
                let (outcome, again) = self.rebalance(slot);
                if let (true, Schedule::GuestSteps { every_s }) = (again, self.schedule) {
                    self.departures.push((
                        OrderedTime(dt + every_s),
                        row as u32,
                        slot as u32 | TICK,
                    ));
                }
                obs.rebalance(dt, row, outcome, self);
                continue;
            }
            self.departures_done += 1;
            self.release(slot)?;
            obs.departure(dt, row, self);
        }
        Ok(())
    }

    /// The row's PCI requests (empty when they are invalid: `ensure_pci`
    /// refuses those rows first).
    fn pci_requests_of(&self, row: &TraceRow) -> &[PciRequest] {
        let r = if row.image_props.is_empty() {
            self.pci_plain.get(row.flavor)
        } else {
            self.pci_by_image
                .get(&(row.flavor, row.image_props.clone()))
                .or(self.pci_plain.get(row.flavor))
        };
        r.and_then(|r| r.as_deref().ok()).unwrap_or(&[])
    }

    /// Computes the row's PCI requests (cached); the error when they are invalid.
    fn ensure_pci(&mut self, row: &TraceRow) -> Result<(), RequestError> {
        let flavor = &self.catalog.flavors[row.flavor];
        if row.image_props.is_empty() || flavor.spec("pci_passthrough:alias").is_none() {
            return self.pci_plain[row.flavor].clone().map(|_| ());
        }
        let key = (row.flavor, row.image_props.clone());
        if !self.pci_by_image.contains_key(&key) {
            let r = ImageProps::from_pairs(&row.image_props).and_then(|image| {
                crate::request::pci::pci_requests(flavor, &image, &self.config.pci_aliases)
            });
            self.pci_by_image.insert(key.clone(), r);
        }
        self.pci_by_image[&key].clone().map(|_| ())
    }

    /// The row's guest topology, computed once per (flavor, image properties).
    fn request_for(&mut self, row: &TraceRow) -> CachedRequest {
        // Most rows have no image properties: one slot per flavor, no hashing.
        if row.image_props.is_empty() {
            if let Some(Some(r)) = self.plain_requests.get(row.flavor) {
                return r.clone();
            }
            let flavor = &self.catalog.flavors[row.flavor];
            let r = Arc::new(
                ImageProps::from_pairs(&[]).and_then(|image| numa_get_constraints(flavor, &image)),
            );
            if self.plain_requests.len() <= row.flavor {
                self.plain_requests.resize(row.flavor + 1, None);
            }
            self.plain_requests[row.flavor] = Some(r.clone());
            return r;
        }
        let key = (row.flavor, row.image_props.clone());
        if let Some(r) = self.requests.get(&key) {
            return r.clone();
        }
        let flavor = &self.catalog.flavors[row.flavor];
        let r = Arc::new(
            ImageProps::from_pairs(&row.image_props)
                .and_then(|image| numa_get_constraints(flavor, &image)),
        );
        self.requests.insert(key, r.clone());
        r
    }

    fn limits_of<'a>(&'a self, h: &'a SimHost) -> Option<&'a Limits> {
        h.limits.as_ref().or(self.config.limits.as_ref())
    }

    /// Whether memory is checked per cell (strict) or per host (relaxed modes).
    fn checks_cell_memory(&self) -> bool {
        !matches!(
            self.config.memory_mode,
            Some(MemoryMode::Preferred | MemoryMode::Interleave)
        )
    }

    /// The guest as policies see it. `request` is Nova's request for the row.
    fn guest_view<'a>(
        &'a self,
        row: &'a TraceRow,
        request: Option<&'a GuestTopology>,
    ) -> GuestView<'a> {
        let flavor = &self.catalog.flavors[row.flavor];
        let vcpus = match request.filter(|_| self.numa_policy) {
            // What placement counts for a NUMA guest: its floating vCPUs.
            Some(t) => t.cells.iter().map(|c| c.cpuset.len() as i64).sum(),
            None => flavor.vcpus,
        };
        GuestView {
            row,
            flavor,
            flavor_index: row.flavor,
            request,
            vcpus,
            memory_mb: flavor.memory_mb,
            touched_mb: flavor.memory_mb as f64 * self.touched(row.flavor),
            pci: self.pci_requests_of(row),
        }
    }

    /// Whether the host-level check (allocation ratios) applies to `guest`:
    /// always for plain guests; for NUMA guests with `host_check = all`, or
    /// when memory is checked per host (relaxed modes).
    fn host_level_applies(&self, guest: &GuestView) -> bool {
        guest.request.filter(|_| self.numa_policy).is_none()
            || self.config.host_check == HostCheck::All
            || !self.checks_cell_memory()
    }

    /// The host-level check: the host's vCPUs and memory at its allocation ratios.
    fn host_level_refusal(&self, h: &SimHost, vcpus: i64, mem: i64) -> Option<Refusal> {
        let l = self.limits_of(h)?;
        let cpu_room = h.total_cpus as f64 * l.cpu_allocation_ratio;
        if (h.vcpu_used + vcpus) as f64 > cpu_room {
            return Some(Refusal::HostVcpus {
                asked: vcpus,
                ratio: l.cpu_allocation_ratio,
            });
        }
        let mem_room = h.total_mem as f64 * l.ram_allocation_ratio;
        if (h.mem_used + mem) as f64 > mem_room {
            return Some(Refusal::HostMemory {
                asked_mb: mem,
                ratio: l.ram_allocation_ratio,
            });
        }
        None
    }

    /// The one host check: whether host `i` takes `guest` under the run's
    /// policy, and how it would be bound there. The scheduler, `explain`
    /// and the rejection reasons all ask this. `fit_calls` counts the fits
    /// run (policy binds of NUMA guests).
    pub fn check_host(
        &self,
        i: usize,
        guest: &GuestView,
        fit_calls: &mut u64,
    ) -> Result<Verdict, FitError> {
        let h = &self.hosts[i];
        if self.host_level_applies(guest)
            && let Some(r) = self.host_level_refusal(h, guest.vcpus, guest.memory_mb)
        {
            return Ok(Err(r));
        }
        if let Some(r) = pci_refusal(h, guest) {
            return Ok(Err(r));
        }
        if guest.request.filter(|_| self.numa_policy).is_some() {
            *fit_calls += 1;
        }
        self.config.policy.bind(&self.host_view(i), guest)
    }

    fn arrive(&mut self, row: TraceRow, obs: &mut dyn Observer) -> Result<(), SimError> {
        self.now = row.arrival_s;
        self.arrivals += 1;
        let cached = self.request_for(&row);
        let pci_error = match cached.as_ref() {
            Ok(_) => self.ensure_pci(&row).err(),
            Err(_) => None,
        };
        let checked = match (cached.as_ref(), pci_error) {
            (Ok(r), None) => Ok(r.as_ref()),
            (Ok(_), Some(e)) => Err(e),
            (Err(e), _) => Err(e.clone()),
        };
        let request = match checked {
            Ok(r) => r,
            Err(e) => {
                let e = &e;
                if obs.wants_reasons() {
                    obs.rejection(row.arrival_s, &row, &Rejection::InvalidRequest(e.clone()));
                }
                let decision = Decision::Rejected {
                    error: Some(e.clone()),
                };
                obs.arrival(row.arrival_s, &row, &decision, self);
                return Ok(());
            }
        };
        let mut fit_calls = 0;
        // Refusals met in the scan, kept (unworded, unanalysed) only when
        // the observer wants reasons: if no host passes, they are the reasons.
        let want_reasons = obs.wants_reasons();
        let mut refused = std::mem::take(&mut self.refused);
        refused.clear();
        let mut nova_claim = None;
        let (mut chosen, vcpus, mem, touched_mb) = if self.nova.is_some() {
            let pick = self.nova_choose(
                &row,
                request,
                &mut fit_calls,
                want_reasons.then_some(&mut refused),
            )?;
            let guest = self.guest_view(&row, request);
            let chosen = match pick {
                Some(p) => {
                    nova_claim = Some((p.alloc, p.usage));
                    vec![(p.host, p.binding)]
                }
                None => Vec::new(),
            };
            (chosen, guest.vcpus, guest.memory_mb, guest.touched_mb)
        } else {
            let guest = self.guest_view(&row, request);
            // Hosts are ordered by free RAM for spread and pack. When the
            // host-level RAM check applies, a host passes only if its free RAM is
            // at least `mem - slack` (slack: what its RAM ratio adds above 1), so
            // below `mem - max slack` no host can pass: spread stops there, pack
            // starts there. Decisions are those of the full scan.
            let strategy = (!self.policy_orders_hosts).then_some(self.config.strategy);
            let floor = (self.host_level_applies(&guest) && self.max_ram_slack.is_some())
                .then(|| guest.memory_mb - self.max_ram_slack.unwrap_or(0));
            let start = match (strategy, floor) {
                (Some(Strategy::Pack), Some(f)) => (f, 0),
                _ => (i64::MIN, 0),
            };
            let mut passing: Vec<(usize, Binding)> = Vec::new();
            for &(key, i) in self.order.range(start..) {
                if let (Some(Strategy::Spread), Some(f)) = (strategy, floor)
                    && -key < f
                {
                    break;
                }
                match self.check_host(i, &guest, &mut fit_calls)? {
                    Ok(binding) => {
                        passing.push((i, binding));
                        if self.config.strategy != Strategy::Random {
                            break;
                        }
                    }
                    Err(r) if want_reasons => refused.push((i, r)),
                    Err(_) => {}
                }
            }
            (passing, guest.vcpus, guest.memory_mb, guest.touched_mb)
        };
        self.fit_calls += fit_calls;
        let chosen = match self.config.strategy {
            Strategy::Random if !chosen.is_empty() => {
                let k = self.rng.random_range(0..chosen.len());
                Some(chosen.swap_remove(k))
            }
            _ => chosen.into_iter().next(),
        };
        let Some((host, binding)) = chosen else {
            if want_reasons && self.nova.is_some() {
                let guest = self.guest_view(&row, request);
                let analysed = refused
                    .iter()
                    .map(|(i, r)| self.analysed(*i, &guest, r.clone()));
                let groups = super::refusal::group(analysed);
                obs.rejection(row.arrival_s, &row, &Rejection::NoHost(groups));
            } else if want_reasons {
                let groups = self.reasons_after_scan(&row, request, &refused);
                obs.rejection(row.arrival_s, &row, &Rejection::NoHost(groups));
            }
            self.refused = refused;
            obs.arrival(
                row.arrival_s,
                &row,
                &Decision::Rejected { error: None },
                self,
            );
            return Ok(());
        };
        self.refused = refused;
        self.change_usage(host, binding.fitted(), vcpus, mem, false, None)?;
        let pci_taken = self.take_devices(host, &row, &binding);
        let devices: i64 = pci_taken.iter().map(|t| t.1).sum();
        if let Some((alloc, usage)) = &nova_claim {
            self.nova_apply(host, alloc, usage, devices, 1);
        }
        let Some((pages, by_demand)) = self.place_pages(host, &binding, touched_mb) else {
            // The kernel kills the guest: release what was claimed.
            self.change_usage(host, binding.fitted(), vcpus, mem, true, None)?;
            self.give_back_devices(host, &pci_taken);
            if let Some((alloc, usage)) = &nova_claim {
                self.nova_apply(host, alloc, usage, devices, -1);
            }
            if obs.wants_reasons() {
                let mode = self.config.memory_mode.unwrap_or(MemoryMode::Strict);
                obs.rejection(
                    row.arrival_s,
                    &row,
                    &Rejection::OomKilledAtStart { host, mode },
                );
            }
            obs.arrival(row.arrival_s, &row, &Decision::OomKilled { host }, self);
            return Ok(());
        };
        let cost = if self.config.memory_mode.is_some() {
            let cost = price(
                &self.hosts[host].model,
                &binding,
                &by_demand,
                self.config.numa_aware_guests,
                &self.config.calibration,
            );
            obs.guest_cost(row.arrival_s, &row, &cost);
            if !pci_taken.is_empty() {
                let h = &self.hosts[host];
                let sockets: Vec<Option<i64>> = h.topo.cells.iter().map(|c| c.socket).collect();
                let taken: Vec<(Option<i64>, i64)> = pci_taken
                    .iter()
                    .map(|&(p, n)| (h.pci[p].numa_node, n))
                    .collect();
                let used = super::cost::device_use(
                    &h.model,
                    &sockets,
                    &binding.own_cells(&h.model),
                    &taken,
                    &self.config.device_calibration,
                );
                obs.devices(row.arrival_s, &row, &used);
            }
            Some((cost.remote, cost.latency))
        } else {
            None
        };
        let vcpu_claim = match binding.fitted() {
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
        if let Schedule::GuestSteps { every_s } = self.schedule {
            self.departures
                .push((OrderedTime(row.arrival_s + every_s), key.0, key.1 | TICK));
        }
        let cpu_cells = if self.keeps_loads {
            binding.cpu_cells(&self.hosts[host].model, vcpu_claim)
        } else {
            Vec::new()
        };
        if let Some((remote, latency)) = cost {
            self.running_remote += remote;
            self.running_latency += latency;
            self.running_costed += 1;
        }
        for (load, v) in self.cpu_load[host].iter_mut().zip(&cpu_cells) {
            *load += v;
        }
        if let Schedule::HostScans { .. } = self.schedule {
            self.guests_by_host[host].push(slot);
        }
        self.running += 1;
        self.placements += 1;
        self.placed[slot] = Some(Placed {
            host,
            binding,
            vcpu: vcpu_claim,
            mem,
            pages,
            row: row.row,
            flavor: row.flavor,
            arrival_s: row.arrival_s,
            cpu_cells,
            cost,
            scan_pos_mb: 0.0,
            advised_version: None,
            nova: nova_claim,
            pci_taken,
        });
        let binding = &self.placed[slot].as_ref().expect("just placed").binding;
        obs.arrival(
            row.arrival_s,
            &row,
            &Decision::Placed { host, binding },
            self,
        );
        Ok(())
    }

    /// Every host's verdict for `row` arriving now, in the order the
    /// strategy tries them; changes nothing.
    pub fn explain(&mut self, row: &TraceRow) -> super::explain::Explanation {
        let cached = self.request_for(row);
        match cached.as_ref() {
            Ok(request) => self.explain_with(row, request.as_ref()),
            Err(e) => super::explain::Explanation::invalid(self, row, e.clone()),
        }
    }

    fn explain_with(
        &self,
        row: &TraceRow,
        request: Option<&GuestTopology>,
    ) -> super::explain::Explanation {
        let guest = self.guest_view(row, request);
        if let Some((verdicts, weighed)) = self.explain_nova(&guest) {
            let verdicts = verdicts
                .into_iter()
                .enumerate()
                .map(|(i, v)| {
                    let v = v.map_err(|r| self.analysed(i, &guest, r));
                    super::explain::HostVerdict::new(i, &self.hosts[i], v)
                })
                .collect();
            let mut x = super::explain::Explanation::new(self, &guest, verdicts);
            x.weighed = Some(weighed);
            return x;
        }
        let mut fit_calls = 0;
        let verdicts = self
            .host_order()
            .map(|i| {
                // An error of the fit engine counts as no fit here.
                let verdict = self
                    .check_host(i, &guest, &mut fit_calls)
                    .unwrap_or(Err(Refusal::NoFit(FitShortfall::Unexplained)));
                let verdict = verdict.map_err(|r| self.analysed(i, &guest, r));
                super::explain::HostVerdict::new(i, &self.hosts[i], verdict)
            })
            .collect();
        super::explain::Explanation::new(self, &guest, verdicts)
    }

    /// A refusal with the fit's shortfall worked out (what the scheduler's
    /// hot path leaves unanalysed).
    fn analysed(&self, i: usize, guest: &GuestView, r: Refusal) -> Refusal {
        match (r, guest.request.filter(|_| self.numa_policy)) {
            (Refusal::NoFit(FitShortfall::Unexplained), Some(t)) => {
                let h = &self.hosts[i];
                let ratio = self
                    .limits_of(h)
                    .map_or(f64::INFINITY, |l| l.cpu_allocation_ratio);
                if let Some(r) = pci_refusal(h, guest) {
                    return r;
                }
                // The devices exist; if the guest fits once they are left
                // out, their NUMA affinity policy is what refused it.
                let fits_without_devices = !guest.pci.is_empty()
                    && crate::fit::fit_instance_to_host(
                        &h.topo,
                        t,
                        self.limits_of(h),
                        &Default::default(),
                        &self.fit_options(),
                    )
                    .is_ok_and(|f| f.is_some());
                if fits_without_devices {
                    return Refusal::PciNotLocal {
                        asked: guest.pci.iter().map(|r| r.count).sum(),
                    };
                }
                Refusal::NoFit(super::explain::fit_shortfall(
                    &h.topo,
                    t,
                    ratio,
                    self.checks_cell_memory(),
                ))
            }
            (r, _) => r,
        }
    }

    /// Why no host took a guest, grouped: the refusals the scan met, and
    /// for the hosts it skipped (below the RAM floor) their host-level
    /// refusal; the same as `explain`'s, without checking every host again.
    fn reasons_after_scan(
        &self,
        row: &TraceRow,
        request: Option<&GuestTopology>,
        scanned: &[(usize, Refusal)],
    ) -> Vec<(Refusal, usize)> {
        let guest = self.guest_view(row, request);
        let mut seen = self.seen.take();
        seen.clear();
        seen.resize(self.hosts.len(), false);
        for &(i, _) in scanned {
            seen[i] = true;
        }
        let from_scan = scanned
            .iter()
            .map(|(i, r)| self.analysed(*i, &guest, r.clone()));
        // The skipped hosts (below the RAM floor; thousands per refusal on a
        // full fleet) each fail the host-level check: counted per reason
        // from the room index, or host by host where it does not answer.
        let applies = self.host_level_applies(&guest);
        let mut below_floor: Vec<(Refusal, usize)> = Vec::new();
        let mut unexpected = Vec::new();
        let counted = applies
            .then_some(self.vcpu_room.as_ref())
            .flatten()
            .and_then(|room| self.skipped_by_room(room, &guest, scanned));
        match counted {
            Some(counts) => below_floor = counts,
            None => {
                for (i, h) in self.hosts.iter().enumerate() {
                    if seen[i] {
                        continue;
                    }
                    match self
                        .host_level_refusal(h, guest.vcpus, guest.memory_mb)
                        .filter(|_| applies)
                    {
                        Some(r) => match below_floor.iter().position(|(g, _)| g.same_reason(&r)) {
                            Some(k) => below_floor[k].1 += 1,
                            None => below_floor.push((r, 1)),
                        },
                        // A skipped host always fails the host-level check;
                        // checking it fully keeps this right should that
                        // ever change.
                        None => unexpected.push(i),
                    }
                }
            }
        }
        let skipped = unexpected.into_iter().filter_map(|i| {
            self.check_host(i, &guest, &mut 0)
                .ok()
                .and_then(Result::err)
                .map(|r| self.analysed(i, &guest, r))
        });
        let mut groups = super::refusal::group(from_scan.chain(skipped));
        for (r, n) in below_floor {
            match groups.iter_mut().find(|(g, _)| g.same_reason(&r)) {
                Some((_, m)) => *m += n,
                None => groups.push((r, n)),
            }
        }
        self.seen.set(seen);
        groups
    }

    /// The host-level refusals of the hosts the scan did not meet, per
    /// reason, counted from the room index (see `room`); `None` when the
    /// index cannot answer for this request.
    fn skipped_by_room(
        &self,
        room: &room::VcpuRoom,
        guest: &GuestView,
        scanned: &[(usize, Refusal)],
    ) -> Option<Vec<(Refusal, usize)>> {
        let mut met = vec![(0usize, 0usize); room.classes.len()];
        for (i, r) in scanned {
            let c = room.class_of(*i);
            met[c].0 += 1;
            if matches!(r, Refusal::HostVcpus { .. }) {
                met[c].1 += 1;
            }
        }
        let mut out = Vec::new();
        for (c, class) in room.classes.iter().enumerate() {
            let (met_hosts, met_vcpus) = met[c];
            // Checked: an index out of step with the hosts falls back to
            // the host-by-host count rather than a wrong one.
            let for_vcpus = room
                .refused_for_vcpus(c, guest.vcpus)?
                .checked_sub(met_vcpus)?;
            let for_memory = class.hosts.checked_sub(met_hosts + for_vcpus)?;
            if for_vcpus > 0 {
                let asked = guest.vcpus;
                let ratio = class.cpu_ratio;
                out.push((Refusal::HostVcpus { asked, ratio }, for_vcpus));
            }
            if for_memory > 0 {
                let (asked_mb, ratio) = (guest.memory_mb, class.ram_ratio);
                out.push((Refusal::HostMemory { asked_mb, ratio }, for_memory));
            }
        }
        Some(out)
    }

    /// Hosts in the order the scheduler tries them.
    pub fn host_order(&self) -> impl Iterator<Item = usize> + '_ {
        self.order.iter().map(|&(_, i)| i)
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
                    .map(|c| c.physical_cpus() as i64)
                    .sum::<i64>()
            })
            .sum();
        let mem = self.hosts.iter().map(|h| h.total_mem).sum();
        (cpus, mem)
    }

    /// The fraction of its memory a guest of `flavor` touches at start.
    fn touched(&self, flavor: usize) -> f64 {
        self.config
            .touched_fraction
            .get(flavor)
            .copied()
            .unwrap_or(1.0)
    }

    /// Whether the row's request has a guest NUMA topology (valid requests only).
    pub fn requests_numa(&self, row: &TraceRow) -> bool {
        let cached = if row.image_props.is_empty() {
            self.plain_requests.get(row.flavor).and_then(Option::as_ref)
        } else {
            self.requests.get(&(row.flavor, row.image_props.clone()))
        };
        matches!(cached.map(|r| r.as_ref()), Some(Ok(Some(_))))
    }

    /// Whether every host's cell memory usage equals its initial usage plus
    /// the memory of the NUMA guests on it (Nova's accounting invariant).
    pub fn accounting_ok(&self) -> bool {
        let mut numa_mem = vec![0i64; self.hosts.len()];
        let mut numa_cpu = vec![0i64; self.hosts.len()];
        for p in self.placed.iter().flatten() {
            if p.binding.fitted().is_some() {
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

    /// The host and binding of a running guest (by trace row); scans the
    /// running guests.
    pub fn binding_of(&self, row: usize) -> Option<(usize, &Binding)> {
        let p = self.placed.iter().flatten().find(|p| p.row == row)?;
        Some((p.host, &p.binding))
    }

    /// Stranded capacity now: the free CPUs and memory of the hosts on which
    /// no flavor of the catalog can be placed (by the run's one host check),
    /// because what is free sits on the wrong cells or beside an exhausted
    /// resource. Free CPUs: physical CPUs not claimed by floating vCPUs or
    /// pinned; free memory: memory not claimed.
    pub fn stranded(&self) -> Stranded {
        let mut out = Stranded::default();
        for (_, cpus, mem_mb) in self.stranded_hosts() {
            out.hosts += 1;
            out.cpus += cpus;
            out.mem_mb += mem_mb;
        }
        out
    }

    /// The hosts that take no flavor of the catalog now, with their free
    /// CPUs and memory (MB): `stranded`, host by host.
    pub fn stranded_hosts(&self) -> impl Iterator<Item = (usize, i64, i64)> + '_ {
        self.hosts.iter().enumerate().filter_map(|(i, h)| {
            let takes_some = self.probes.iter().any(|(row, request)| {
                let guest = self.guest_view(row, request.as_ref());
                matches!(self.check_host(i, &guest, &mut 0), Ok(Ok(_)))
            });
            if takes_some {
                return None;
            }
            let pinned: i64 = h
                .topo
                .cells
                .iter()
                .map(|c| c.pinned_cpus.len() as i64)
                .sum();
            let physical: i64 = h.topo.cells.iter().map(|c| c.physical_cpus() as i64).sum();
            let cpus = (physical - pinned - h.vcpu_used).max(0);
            Some((i, cpus, (h.total_mem - h.mem_used).max(0)))
        })
    }

    /// Guests currently placed.
    pub fn running(&self) -> usize {
        self.running
    }
}

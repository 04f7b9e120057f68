//! Placement policies: how a guest is bound on a host, which hosts a
//! policy prefers, and what it does to running guests afterwards.
//!
//! A policy is one type implementing [`PlacementPolicy`]; the event loop
//! knows nothing else about it. Scenario files name policies through a
//! [`Registry`]: the built-in ones are registered in [`Registry::builtin`],
//! one line each, and a program using numasim as a library registers its
//! own the same way (`examples/best_fit_policy.rs`).
//!
//! What the engine does around a policy, for every policy alike: the
//! host-level check (allocation ratios) before [`PlacementPolicy::bind`];
//! the choice among the hosts that pass (the scenario's strategy, unless the
//! policy orders hosts itself with [`PlacementPolicy::host_key`]); claiming
//! the fit's cells; placing pages by the returned [`Binding`] and the
//! memory mode (an OOM kill when strict pages do not fit); pricing; and,
//! when the policy has a [`Schedule`], calling
//! [`PlacementPolicy::rebalance`] and applying the [`Step`] it returns.

mod autonuma;
mod closest;
mod cpuset_auto;
mod float;
mod manual;
mod nova;
mod numad;

pub use autonuma::{Autonuma, autonuma_preferred, autonuma_step};
pub use closest::Closest;
pub use cpuset_auto::CpusetAuto;
pub use float::Float;
pub use manual::Manual;
pub use nova::Nova;
pub use numad::{Nodes, Numad, numad_moves, numad_nodes};

use super::binding::{Binding, ManualTuning};
use super::fleet::SimHost;
use super::memory::MemoryMode;
use super::refusal::Refusal;
use crate::fit::{FitError, FitOptions, Limits};
use crate::request::{Flavor, GuestTopology};
use crate::workload::model::TraceRow;
use std::sync::Arc;

/// A host as a policy sees it, read-only.
pub struct HostView<'a> {
    /// Position in the fleet.
    pub index: usize,
    pub host: &'a SimHost,
    /// The overcommit limits that apply to this host (`None`: none).
    pub limits: Option<&'a Limits>,
    /// Free physical MB per host cell (the page model's; empty when pages
    /// are not modelled).
    pub free_mb: &'a [f64],
    /// vCPUs running per host cell (kept only for policies whose
    /// [`PlacementPolicy::reads_cpu_load`] says so; zeros otherwise). In
    /// [`PlacementPolicy::rebalance`], without the guest's own vCPUs.
    pub cpu_load: &'a [f64],
    /// How Nova's fit runs in this simulation (mode, per-cell memory checks).
    pub fit: FitOptions,
    /// The run's memory mode (`None`: pages are not modelled).
    pub memory_mode: Option<MemoryMode>,
    /// Its PCI device pools (free counts).
    pub pci: &'a [crate::fit::host::PciPool],
}

/// An arriving guest as a policy sees it.
pub struct GuestView<'a> {
    pub row: &'a TraceRow,
    /// Its catalog flavor and the flavor's index in the catalog.
    pub flavor: &'a Flavor,
    pub flavor_index: usize,
    /// Nova's NUMA request for it (flavor + image), whether or not the
    /// policy uses NUMA topologies.
    pub request: Option<&'a GuestTopology>,
    /// vCPUs and memory the host-level check counted.
    pub vcpus: i64,
    pub memory_mb: i64,
    /// MB of its memory it touches at start.
    pub touched_mb: f64,
    /// Its PCI device requests (`pci_passthrough:alias`).
    pub pci: &'a [crate::fit::host::PciRequest],
}

/// The PCI pools and requests Nova's fit sees: the host's pools when it
/// has devices or the guest asks for some (a host without devices then
/// offers none), else none (the fit's cell order is Nova's plain one).
pub fn pci_context<'a>(
    host: &HostView<'a>,
    guest: &GuestView<'a>,
) -> crate::fit::search::PciContext<'a> {
    let reports = !host.pci.is_empty() || !guest.pci.is_empty();
    crate::fit::search::PciContext {
        pools: reports.then_some(host.pci),
        requests: guest.pci,
    }
}

impl GuestView<'_> {
    /// The request the fit places: `Some` only under policies that keep
    /// guests' NUMA topologies.
    pub fn numa_request(&self, policy: &dyn PlacementPolicy) -> Option<&GuestTopology> {
        self.request.filter(|_| policy.uses_numa_topology())
    }
}

/// Either how the guest would be bound on the host, or why the host does not take it.
pub type Verdict = Result<Binding, Refusal>;

/// When the engine calls [`PlacementPolicy::rebalance`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Never: the binding at placement is final.
    Never,
    /// At wake-ups every `interval_s` (multiples of it), for each guest of
    /// each host that changed since its previous scan, in trace order (numad).
    HostScans { interval_s: f64 },
    /// Every `every_s` per guest from its arrival, until the policy says it
    /// is done (autonuma).
    GuestSteps { every_s: f64 },
}

/// A running guest, for [`PlacementPolicy::rebalance`].
pub struct RunningGuest<'a> {
    pub binding: &'a Binding,
    /// Resident MB per host cell.
    pub pages: &'a [f64],
    /// Its vCPU claim.
    pub vcpus: i64,
    /// MB of its memory scanned in the current pass (autonuma's scanner).
    pub scan_pos_mb: f64,
}

/// What one rebalancing step does to a guest.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing changes now; later steps may.
    Stay,
    /// Nothing changes, and no later step will (the guest needs no more).
    Done,
    /// The guest's binding, pages and vCPUs change.
    Change(Change),
}

/// A guest's new state after a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub binding: Binding,
    /// Resident MB per host cell.
    pub pages: Vec<f64>,
    /// vCPUs per host cell.
    pub cpu_cells: Vec<f64>,
    /// It moved to another nodeset (counted as a move; page migration is
    /// counted from the pages either way).
    pub moved: bool,
    pub scan_pos_mb: f64,
    /// No further step is needed.
    pub last: bool,
}

/// A placement policy. Implementations are pure: they read the views and
/// return values; the engine applies them.
pub trait PlacementPolicy: Send + Sync {
    /// Guests keep their virtual NUMA topology and Nova's fit places them
    /// (`nova`, `closest`); otherwise every guest is a plain guest and only
    /// the host-level check admits it.
    fn uses_numa_topology(&self) -> bool {
        false
    }

    /// Whether `guest` can go on `host`, and how it would be bound there.
    /// Called only for hosts that passed the host-level check, and for
    /// every such host the scheduler or `explain` considers, so it must not
    /// change anything. An `Err` is an internal failure of the fit engine.
    fn bind(&self, host: &HostView, guest: &GuestView) -> Result<Verdict, FitError>;

    /// libvirt places the guest itself, asking numad (`<vcpu
    /// placement='auto'>`, `<numatune><memory placement='auto'>`): the
    /// domain XML names no nodes, the binding is numasim's prediction of
    /// numad's answer.
    fn libvirt_auto_placement(&self) -> bool {
        false
    }

    /// The policy's own host order: hosts are tried by ascending key
    /// (ties: fleet order), recomputed after every claim and release on
    /// the host. `None` (the default) keeps the scenario's strategy.
    fn host_key(&self, _host: &HostView) -> Option<i64> {
        None
    }

    /// Whether [`HostView::cpu_load`] must be kept (it costs an update per
    /// placement and departure).
    fn reads_cpu_load(&self) -> bool {
        false
    }

    /// When [`PlacementPolicy::rebalance`] runs (only when pages are modelled).
    fn schedule(&self) -> Schedule {
        Schedule::Never
    }

    /// One rebalancing step for a running guest on `host` (whose
    /// `cpu_load` excludes the guest's own vCPUs).
    fn rebalance(&self, _host: &HostView, _guest: &RunningGuest) -> Step {
        Step::Done
    }
}

/// numad's and autonuma's parameters, and the page migration rate that
/// prices their moves.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, schemars::JsonSchema)]
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

/// What a scenario gives a policy when it is built.
#[derive(Debug, Clone, Default)]
pub struct PolicyParams {
    /// An operator's numatune per catalog flavor (`manual`; `None`: the
    /// flavor has none); empty when the scenario gives no `manual` table.
    pub numatunes: Vec<Option<ManualTuning>>,
    pub rebalancing: Rebalancing,
    /// The run's memory mode (numad binds memory in it).
    pub memory_mode: Option<MemoryMode>,
}

/// Why a policy could not be built from a scenario's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("unknown placement policy `{name}`; expected one of {known}")]
    Unknown { name: String, known: String },
    #[error("policy `{name}` takes no `manual` numatunes")]
    NoNumatunes { name: String },
    #[error("policy `{name}` needs `manual` numatunes (flavor name or `*` -> nodeset and mode)")]
    NeedsNumatunes { name: String },
}

/// Builds a policy from its parameters.
pub type Factory = fn(&PolicyParams) -> Arc<dyn PlacementPolicy>;

/// One registered policy.
#[derive(Clone)]
pub struct Entry {
    pub name: &'static str,
    /// One line for `--help` and the README.
    pub about: &'static str,
    /// It reads the scenario's `manual` numatunes (and needs them).
    pub takes_numatunes: bool,
    pub build: Factory,
}

/// The policies a scenario can name, by name.
#[derive(Clone)]
pub struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// No policies at all (for a program that wants only its own).
    pub fn empty() -> Registry {
        Registry {
            entries: Vec::new(),
        }
    }

    /// numasim's own policies.
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        r.register(nova::ENTRY);
        r.register(closest::ENTRY);
        r.register(float::ENTRY);
        r.register(cpuset_auto::ENTRY);
        r.register(manual::ENTRY);
        r.register(numad::ENTRY);
        r.register(autonuma::ENTRY);
        r
    }

    /// Adds a policy (replacing one of the same name).
    pub fn register(&mut self, entry: Entry) {
        self.entries.retain(|e| e.name != entry.name);
        self.entries.push(entry);
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Result<&Entry, PolicyError> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| PolicyError::Unknown {
                name: name.to_string(),
                known: self
                    .entries
                    .iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Builds the policy `name` from its parameters.
    pub fn build(
        &self,
        name: &str,
        params: &PolicyParams,
    ) -> Result<Arc<dyn PlacementPolicy>, PolicyError> {
        let entry = self.get(name)?;
        // The scenario gave a `manual` table (one entry per catalog flavor).
        let given = !params.numatunes.is_empty();
        match (entry.takes_numatunes, given) {
            (false, true) => Err(PolicyError::NoNumatunes {
                name: name.to_string(),
            }),
            (true, false) => Err(PolicyError::NeedsNumatunes {
                name: name.to_string(),
            }),
            _ => Ok((entry.build)(params)),
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::builtin()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.name))
            .finish()
    }
}

/// The host cell (position) among those with CPUs with the most free
/// memory that holds `need_mb` (ties: the first); `None` when none can.
pub fn emptiest_cell_holding(host: &HostView, need_mb: f64) -> Option<usize> {
    let cpus = &host.host.model.cpus_per_cell;
    let free = host.free_mb;
    (0..free.len())
        .filter(|&c| cpus.get(c).is_some_and(|&n| n > 0) && free[c] >= need_mb)
        .fold(None, |best: Option<usize>, c| match best {
            Some(b) if free[b] >= free[c] => Some(b),
            _ => Some(c),
        })
}

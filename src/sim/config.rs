//! One run's settings: the scheduler's strategy and host check, limits,
//! the fit mode, the memory mode, the placement policy, memory growth,
//! the cost model's knobs and the seed.

use super::memory::MemoryMode;
use super::policy::{Nova, PlacementPolicy};
use crate::fit::{Limits, Mode};
use std::sync::Arc;

/// How the scheduler picks among hosts that pass the filters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
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
    /// Nova's scheduler as configured (`[scheduler]`): Placement's
    /// inventories, the filters, the weighers normalised over the
    /// survivors, and a seeded choice among the best `host_subset_size`.
    Nova,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::Spread,
        Strategy::Pack,
        Strategy::FirstFit,
        Strategy::Random,
        Strategy::Nova,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Spread => "spread",
            Strategy::Pack => "pack",
            Strategy::FirstFit => "first-fit",
            Strategy::Random => "random",
            Strategy::Nova => "nova",
        }
    }
}

/// Which guests get the host-level (placement) CPU and RAM check.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum HostCheck {
    /// Only guests without a NUMA topology (NUMA guests get the fit only).
    NonNuma,
    /// Every guest, as real Nova asks placement before NUMATopologyFilter.
    All,
}

impl HostCheck {
    pub const ALL: [HostCheck; 2] = [HostCheck::NonNuma, HostCheck::All];

    pub fn as_str(self) -> &'static str {
        match self {
            HostCheck::NonNuma => "non-numa",
            HostCheck::All => "all",
        }
    }
}

/// One run's settings. Build it with struct update syntax from
/// [`SimConfig::default`] (Nova's fit, spread, no limits, no page model).
#[derive(Clone)]
pub struct SimConfig {
    pub strategy: Strategy,
    pub host_check: HostCheck,
    /// `None`: no overcommit limits and no host-level check.
    pub limits: Option<Limits>,
    pub fit_mode: Mode,
    /// `None`: pages are not modelled (Nova-exact replays); otherwise the
    /// mode decides admission and where pages land.
    pub memory_mode: Option<MemoryMode>,
    /// Fraction of its memory each guest touches, per catalog flavor (1 when absent).
    pub touched_fraction: Vec<f64>,
    pub calibration: super::cost::Calibration,
    /// SLIT distance to measured cost of reaching a PCI device across nodes.
    pub device_calibration: super::cost::Calibration,
    /// How guests are put on host cells (`sim::policy`).
    pub policy: Arc<dyn PlacementPolicy>,
    /// Memory growth per catalog flavor (empty: none grows).
    pub growth: Vec<Option<Growth>>,
    /// Page migration throughput, MB/s, to turn migrated MB into time.
    pub migrate_mb_per_s: f64,
    /// Guests with a virtual NUMA topology keep each vCPU's accesses in its
    /// own guest cell; otherwise (the default) every vCPU touches all of
    /// the guest's memory uniformly.
    pub numa_aware_guests: bool,
    /// The operator's `[pci] alias` definitions flavors' `pci_passthrough:alias` names.
    pub pci_aliases: Arc<Vec<crate::request::pci::PciAlias>>,
    /// Nova's scheduler options, for `Strategy::Nova`.
    pub scheduler: Arc<super::scheduler::SchedulerConfig>,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            strategy: Strategy::Spread,
            host_check: HostCheck::All,
            limits: None,
            fit_mode: Mode::Nova,
            memory_mode: None,
            touched_fraction: Vec::new(),
            calibration: Default::default(),
            device_calibration: Default::default(),
            policy: Arc::new(Nova),
            growth: Vec::new(),
            migrate_mb_per_s: super::policy::Rebalancing::default().migrate_mb_per_s,
            numa_aware_guests: false,
            pci_aliases: Default::default(),
            scheduler: Default::default(),
            seed: 0,
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("strategy", &self.strategy)
            .field("host_check", &self.host_check)
            .field("memory_mode", &self.memory_mode)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

/// A flavor's memory growth: from its touched fraction at start to `to`,
/// after an exponentially distributed delay (mean `mean_delay_s`), drawn
/// per guest from the run's seed and the guest's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub to: f64,
    pub mean_delay_s: f64,
}

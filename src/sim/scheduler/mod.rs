//! Nova's scheduling path as Nova 34 configures it: Placement's inventory
//! check, the enabled filters, the weighers with their multipliers and
//! Nova's normalisation, and the random choice among the best
//! `host_subset_size` hosts. The configuration speaks Nova's option names
//! (`filter_scheduler.ram_weight_multiplier`, ...), so an operator's
//! `nova.conf` values carry over unchanged.
//!
//! - `placement`: the Placement stand-in (inventories per resource class,
//!   the capacity check, the request a guest makes, the fallback query).
//! - `select`: weighing, the full scan Nova does (the reference), and the
//!   index that finds the same host without evaluating every host.
//! - `pyrandom`: CPython's `random.Random`, which Nova's choice draws from.

pub mod placement;
pub mod pyrandom;
pub mod select;

pub use placement::{Inventory, NovaHost, ResourceRequest};
pub use pyrandom::PyRandom;
pub use select::{Choice, HostIndex, Need, Weighing};

/// A scheduler filter (`[filter_scheduler] enabled_filters`) numasim models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    AllHosts,
    /// Refuses hosts whose service is disabled or forced down.
    Compute,
    /// Passes: flavors with `capabilities:` or unscoped extra specs are
    /// refused when the scheduler is configured (not modelled).
    ComputeCapabilities,
    /// Passes: guests carry no architecture / hypervisor image properties here.
    ImageProperties,
    /// Pass: no server groups, hints or availability zones are modelled.
    ServerGroupAntiAffinity,
    ServerGroupAffinity,
    SameHost,
    DifferentHost,
    AvailabilityZone,
    /// The NUMA fit with the host's limits (the fit engine).
    NumaTopology,
    /// `num_instances < max_instances_per_host`.
    NumInstances,
    /// `num_io_ops < max_io_ops_per_host` (builds complete instantly: 0).
    IoOps,
    /// The guest's PCI requests against the host's device pools.
    PciPassthrough,
}

impl Filter {
    pub const ALL: [Filter; 13] = [
        Filter::AllHosts,
        Filter::Compute,
        Filter::ComputeCapabilities,
        Filter::ImageProperties,
        Filter::ServerGroupAntiAffinity,
        Filter::ServerGroupAffinity,
        Filter::SameHost,
        Filter::DifferentHost,
        Filter::AvailabilityZone,
        Filter::NumaTopology,
        Filter::NumInstances,
        Filter::IoOps,
        Filter::PciPassthrough,
    ];

    /// Nova's class name.
    pub fn name(self) -> &'static str {
        match self {
            Filter::AllHosts => "AllHostsFilter",
            Filter::Compute => "ComputeFilter",
            Filter::ComputeCapabilities => "ComputeCapabilitiesFilter",
            Filter::ImageProperties => "ImagePropertiesFilter",
            Filter::ServerGroupAntiAffinity => "ServerGroupAntiAffinityFilter",
            Filter::ServerGroupAffinity => "ServerGroupAffinityFilter",
            Filter::SameHost => "SameHostFilter",
            Filter::DifferentHost => "DifferentHostFilter",
            Filter::AvailabilityZone => "AvailabilityZoneFilter",
            Filter::NumaTopology => "NUMATopologyFilter",
            Filter::NumInstances => "NumInstancesFilter",
            Filter::IoOps => "IoOpsFilter",
            Filter::PciPassthrough => "PciPassthroughFilter",
        }
    }

    pub fn by_name(name: &str) -> Option<Filter> {
        let short = name.rsplit('.').next().unwrap_or(name);
        Filter::ALL.into_iter().find(|f| f.name() == short)
    }

    /// Nova 34's default `enabled_filters` plus `NUMATopologyFilter`, in that order.
    pub const DEFAULT: [Filter; 6] = [
        Filter::Compute,
        Filter::ComputeCapabilities,
        Filter::ImageProperties,
        Filter::ServerGroupAntiAffinity,
        Filter::ServerGroupAffinity,
        Filter::NumaTopology,
    ];
}

/// A weigher (`[filter_scheduler] weight_classes`), in the order
/// `all_weighers` yields them sorted by module and class name (the order
/// weights are summed in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weigher {
    SoftAffinity,
    SoftAntiAffinity,
    BuildFailure,
    Cpu,
    CrossCell,
    Disk,
    HypervisorVersion,
    ImageProperties,
    IoOps,
    Metrics,
    NumInstances,
    Pci,
    Ram,
}

impl Weigher {
    pub const ALL: [Weigher; 13] = [
        Weigher::SoftAffinity,
        Weigher::SoftAntiAffinity,
        Weigher::BuildFailure,
        Weigher::Cpu,
        Weigher::CrossCell,
        Weigher::Disk,
        Weigher::HypervisorVersion,
        Weigher::ImageProperties,
        Weigher::IoOps,
        Weigher::Metrics,
        Weigher::NumInstances,
        Weigher::Pci,
        Weigher::Ram,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Weigher::SoftAffinity => "ServerGroupSoftAffinityWeigher",
            Weigher::SoftAntiAffinity => "ServerGroupSoftAntiAffinityWeigher",
            Weigher::BuildFailure => "BuildFailureWeigher",
            Weigher::Cpu => "CPUWeigher",
            Weigher::CrossCell => "CrossCellWeigher",
            Weigher::Disk => "DiskWeigher",
            Weigher::HypervisorVersion => "HypervisorVersionWeigher",
            Weigher::ImageProperties => "ImagePropertiesWeigher",
            Weigher::IoOps => "IoOpsWeigher",
            Weigher::Metrics => "MetricsWeigher",
            Weigher::NumInstances => "NumInstancesWeigher",
            Weigher::Pci => "PCIWeigher",
            Weigher::Ram => "RAMWeigher",
        }
    }

    pub fn by_name(name: &str) -> Option<Weigher> {
        let short = name.rsplit('.').next().unwrap_or(name);
        Weigher::ALL.into_iter().find(|w| w.name() == short)
    }

    /// The option that sets its multiplier (`SECTION.KEY`).
    pub fn option(self) -> &'static str {
        match self {
            Weigher::SoftAffinity => "filter_scheduler.soft_affinity_weight_multiplier",
            Weigher::SoftAntiAffinity => "filter_scheduler.soft_anti_affinity_weight_multiplier",
            Weigher::BuildFailure => "filter_scheduler.build_failure_weight_multiplier",
            Weigher::Cpu => "filter_scheduler.cpu_weight_multiplier",
            Weigher::CrossCell => "filter_scheduler.cross_cell_move_weight_multiplier",
            Weigher::Disk => "filter_scheduler.disk_weight_multiplier",
            Weigher::HypervisorVersion => "filter_scheduler.hypervisor_version_weight_multiplier",
            Weigher::ImageProperties => "filter_scheduler.image_props_weight_multiplier",
            Weigher::IoOps => "filter_scheduler.io_ops_weight_multiplier",
            Weigher::Metrics => "metrics.weight_multiplier",
            Weigher::NumInstances => "filter_scheduler.num_instances_weight_multiplier",
            Weigher::Pci => "filter_scheduler.pci_weight_multiplier",
            Weigher::Ram => "filter_scheduler.ram_weight_multiplier",
        }
    }

    /// Nova 34's default multiplier option value.
    pub fn default_multiplier(self) -> f64 {
        match self {
            Weigher::BuildFailure | Weigher::CrossCell => 1_000_000.0,
            Weigher::IoOps => -1.0,
            Weigher::NumInstances | Weigher::ImageProperties => 0.0,
            _ => 1.0,
        }
    }

    /// `minval`: the RAM, CPU, disk and I/O weighers clamp raw weights at 0
    /// and normalise by the maximum alone; the others normalise min-max.
    pub fn minval(self) -> Option<f64> {
        matches!(
            self,
            Weigher::Ram | Weigher::Cpu | Weigher::Disk | Weigher::IoOps
        )
        .then_some(0.0)
    }
}

/// The per-host quantity a weigher reads (`None`: the weigher gives every
/// host the same weight here, so it never changes an order).
pub fn quantity(w: Weigher) -> Option<Quantity> {
    match w {
        Weigher::Ram => Some(Quantity::FreeRamMb),
        Weigher::Cpu => Some(Quantity::FreeVcpus),
        Weigher::Disk => Some(Quantity::FreeDiskMb),
        Weigher::NumInstances => Some(Quantity::NumInstances),
        Weigher::HypervisorVersion => Some(Quantity::HypervisorVersion),
        Weigher::BuildFailure => Some(Quantity::FailedBuilds),
        Weigher::Pci => Some(Quantity::PciWeight),
        // No server groups, cross-cell moves, metrics, image-property
        // weighing or I/O in flight here:
        // every host weighs the same, which normalises to 0.
        Weigher::SoftAffinity
        | Weigher::SoftAntiAffinity
        | Weigher::CrossCell
        | Weigher::ImageProperties
        | Weigher::IoOps
        | Weigher::Metrics => None,
    }
}

/// What a weigher reads from a host state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantity {
    FreeRamMb,
    FreeVcpus,
    FreeDiskMb,
    NumInstances,
    HypervisorVersion,
    FailedBuilds,
    /// `100 - min(free PCI devices, 99)`: the PCI weigher's raw weight.
    PciWeight,
}

/// The scheduler's configuration, Nova's options with Nova's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub filters: Vec<Filter>,
    /// Weighers in summation order.
    pub weighers: Vec<Weigher>,
    /// Multiplier option values that differ from Nova's defaults.
    pub multipliers: std::collections::BTreeMap<Weigher, f64>,
    pub host_subset_size: usize,
    pub shuffle_best_same_weighed_hosts: bool,
    /// `None`: Placement returns every candidate.
    pub max_placement_results: Option<usize>,
    pub reserved_host_memory_mb: i64,
    pub reserved_host_cpus: i64,
    pub reserved_host_disk_mb: i64,
    /// `None`: the run's limits (scenario or `--limits`).
    pub cpu_allocation_ratio: Option<f64>,
    pub ram_allocation_ratio: Option<f64>,
    pub disk_allocation_ratio: f64,
    pub disable_fallback_pcpu_query: bool,
    pub max_instances_per_host: i64,
    pub max_io_ops_per_host: i64,
    /// Weigh every surviving host, as Nova does, instead of the index (the
    /// same choices, slower; `replay --full-scan` checks that).
    pub full_scan: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            filters: Filter::DEFAULT.to_vec(),
            weighers: Weigher::ALL.to_vec(),
            multipliers: Default::default(),
            host_subset_size: 1,
            shuffle_best_same_weighed_hosts: false,
            max_placement_results: None,
            reserved_host_memory_mb: 512,
            reserved_host_cpus: 0,
            reserved_host_disk_mb: 0,
            cpu_allocation_ratio: None,
            ram_allocation_ratio: None,
            disk_allocation_ratio: 1.0,
            disable_fallback_pcpu_query: false,
            max_instances_per_host: 50,
            max_io_ops_per_host: 8,
            full_scan: false,
        }
    }
}

/// A configuration value numasim refuses, with the option's name.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("`{key}`: unknown option (known: {known})")]
    UnknownOption { key: String, known: String },
    #[error("`{key}` = `{value}`: expected {expected}")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("unknown filter `{name}` (known: {known})")]
    UnknownFilter { name: String, known: String },
    #[error("unknown weigher `{name}` (known: all, {known})")]
    UnknownWeigher { name: String, known: String },
    #[error(
        "ImagePropertiesWeigher with a non-zero multiplier reads the instances' images, which numasim does not model"
    )]
    ImagePropsWeigher,
}

/// The options `SchedulerConfig::set` takes, `SECTION.KEY` as in nova.conf.
pub const OPTIONS: [&str; 26] = [
    "filter_scheduler.ram_weight_multiplier",
    "filter_scheduler.cpu_weight_multiplier",
    "filter_scheduler.disk_weight_multiplier",
    "filter_scheduler.io_ops_weight_multiplier",
    "filter_scheduler.hypervisor_version_weight_multiplier",
    "filter_scheduler.num_instances_weight_multiplier",
    "filter_scheduler.pci_weight_multiplier",
    "filter_scheduler.build_failure_weight_multiplier",
    "filter_scheduler.cross_cell_move_weight_multiplier",
    "filter_scheduler.soft_affinity_weight_multiplier",
    "filter_scheduler.soft_anti_affinity_weight_multiplier",
    "filter_scheduler.image_props_weight_multiplier",
    "metrics.weight_multiplier",
    "filter_scheduler.host_subset_size",
    "filter_scheduler.shuffle_best_same_weighed_hosts",
    "filter_scheduler.max_instances_per_host",
    "filter_scheduler.max_io_ops_per_host",
    "scheduler.max_placement_results",
    "DEFAULT.reserved_host_memory_mb",
    "DEFAULT.reserved_host_cpus",
    "DEFAULT.reserved_host_disk_mb",
    "DEFAULT.cpu_allocation_ratio",
    "DEFAULT.ram_allocation_ratio",
    "DEFAULT.disk_allocation_ratio",
    "workarounds.disable_fallback_pcpu_query",
    "filter_scheduler.enabled_filters",
];

impl SchedulerConfig {
    /// The multiplier Nova applies for `w` (BuildFailureWeigher negates its option).
    pub fn multiplier(&self, w: Weigher) -> f64 {
        let option = self
            .multipliers
            .get(&w)
            .copied()
            .unwrap_or_else(|| w.default_multiplier());
        if w == Weigher::BuildFailure {
            -option
        } else {
            option
        }
    }

    /// The enabled weighers with their multipliers, in summation order.
    pub fn weighting(&self) -> Vec<(Weigher, f64)> {
        self.weighers
            .iter()
            .map(|&w| (w, self.multiplier(w)))
            .collect()
    }

    /// `all` or a comma-separated list of class names (short or dotted).
    pub fn set_weighers_by_name(&mut self, list: &str) -> Result<(), ConfigError> {
        if list.trim() == "all" {
            self.weighers = Weigher::ALL.to_vec();
            return Ok(());
        }
        let mut ws = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "nova.scheduler.weights.all_weighers" || name == "all" {
                ws.extend(Weigher::ALL);
                continue;
            }
            ws.push(
                Weigher::by_name(name).ok_or_else(|| ConfigError::UnknownWeigher {
                    name: name.into(),
                    known: Weigher::ALL.map(Weigher::name).join(", "),
                })?,
            );
        }
        if ws.is_empty() {
            return Err(ConfigError::BadValue {
                key: "filter_scheduler.weight_classes".into(),
                value: list.into(),
                expected: "`all` or a list of weigher class names",
            });
        }
        self.weighers = ws;
        Ok(())
    }

    /// A comma-separated list of filter class names (short or dotted).
    pub fn set_filters_by_name(&mut self, list: &str) -> Result<(), ConfigError> {
        let mut fs = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            fs.push(
                Filter::by_name(name).ok_or_else(|| ConfigError::UnknownFilter {
                    name: name.into(),
                    known: Filter::ALL.map(Filter::name).join(", "),
                })?,
            );
        }
        self.filters = fs;
        Ok(())
    }

    /// One `SECTION.KEY = VALUE` option, as `nova.conf` would set it
    /// (`DEFAULT` for options without a group).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.trim();
        let canonical = match key.split_once('.') {
            Some((s, k)) if s.eq_ignore_ascii_case("default") => format!("DEFAULT.{k}"),
            _ => key.to_string(),
        };
        let bad = |expected: &'static str| ConfigError::BadValue {
            key: canonical.clone(),
            value: value.into(),
            expected,
        };
        let float = || -> Result<f64, ConfigError> {
            value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad("a finite number"))
        };
        let count = |min: i64| -> Result<i64, ConfigError> {
            value
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|&x| x >= min)
                .ok_or_else(|| {
                    bad(if min > 0 {
                        "a positive integer"
                    } else {
                        "a non-negative integer"
                    })
                })
        };
        let boolean = || -> Result<bool, ConfigError> {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(bad("true or false")),
            }
        };
        if let Some(w) = Weigher::ALL.into_iter().find(|w| w.option() == canonical) {
            let m = float()?;
            if w == Weigher::ImageProperties && m != 0.0 {
                return Err(ConfigError::ImagePropsWeigher);
            }
            self.multipliers.insert(w, m);
            return Ok(());
        }
        match canonical.as_str() {
            "filter_scheduler.host_subset_size" => {
                self.host_subset_size = count(1)? as usize;
            }
            "filter_scheduler.shuffle_best_same_weighed_hosts" => {
                self.shuffle_best_same_weighed_hosts = boolean()?;
            }
            "filter_scheduler.max_instances_per_host" => {
                self.max_instances_per_host = count(1)?;
            }
            "filter_scheduler.max_io_ops_per_host" => self.max_io_ops_per_host = count(0)?,
            "scheduler.max_placement_results" => {
                self.max_placement_results = Some(count(1)? as usize);
            }
            "DEFAULT.reserved_host_memory_mb" => self.reserved_host_memory_mb = count(0)?,
            "DEFAULT.reserved_host_cpus" => self.reserved_host_cpus = count(0)?,
            "DEFAULT.reserved_host_disk_mb" => self.reserved_host_disk_mb = count(0)?,
            "DEFAULT.cpu_allocation_ratio" => {
                self.cpu_allocation_ratio =
                    Some(positive(float()?).ok_or_else(|| bad("a positive number"))?);
            }
            "DEFAULT.ram_allocation_ratio" => {
                self.ram_allocation_ratio =
                    Some(positive(float()?).ok_or_else(|| bad("a positive number"))?);
            }
            "DEFAULT.disk_allocation_ratio" => {
                self.disk_allocation_ratio =
                    positive(float()?).ok_or_else(|| bad("a positive number"))?;
            }
            "workarounds.disable_fallback_pcpu_query" => {
                self.disable_fallback_pcpu_query = boolean()?;
            }
            "filter_scheduler.enabled_filters" => self.set_filters_by_name(value)?,
            "filter_scheduler.weight_classes" => self.set_weighers_by_name(value)?,
            _ => {
                return Err(ConfigError::UnknownOption {
                    key: canonical.clone(),
                    known: OPTIONS.join(", "),
                });
            }
        }
        Ok(())
    }

    /// The run's limits with the ratio options applied (they are also the
    /// NUMA filter's limits); Nova's initial ratios where neither gives one.
    pub fn apply_ratios(&self, limits: &mut Option<crate::fit::Limits>) {
        if self.cpu_allocation_ratio.is_none() && self.ram_allocation_ratio.is_none() {
            return;
        }
        let l = limits.get_or_insert(crate::fit::Limits {
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            network_metadata: None,
        });
        if let Some(r) = self.cpu_allocation_ratio {
            l.cpu_allocation_ratio = r;
        }
        if let Some(r) = self.ram_allocation_ratio {
            l.ram_allocation_ratio = r;
        }
    }

    /// Whether Placement's candidate list is cut before the filters see it.
    pub fn truncates(&self, hosts: usize) -> bool {
        self.max_placement_results.is_some_and(|n| n < hosts)
    }

    /// Whether the choice needs Nova's full scan (the index does not model
    /// a truncated candidate list).
    pub fn scans_all(&self, hosts: usize) -> bool {
        self.full_scan || self.truncates(hosts)
    }
}

fn positive(x: f64) -> Option<f64> {
    (x > 0.0).then_some(x)
}

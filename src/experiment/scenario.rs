//! Scenario files (TOML): the fleet, the flavors, the workload, the
//! policies to compare, seeds, window and outputs. Parsing is strict:
//! unknown keys and wrong types are errors naming the key and the line.
//! File paths are relative to the scenario's directory; resolving and
//! reading them is the runner's job (`run`), not this module's.

use crate::sim::cost::Calibration;
use crate::sim::memory::MemoryMode;
use crate::sim::{HostCheck, Strategy};
use crate::topology::synth::SynthSpec;
use crate::workload::synthetic::{Lifetime, Synthetic};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Data the scenario reads that is not shipped, and how to make it
    /// (commands): said when one of its input files is missing.
    #[serde(default)]
    pub needs: Option<String>,
    /// One replication per seed.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// Measured window: arrivals from `warmup_s` to `horizon_s` (seconds).
    #[serde(default)]
    pub warmup_s: f64,
    #[serde(default)]
    pub horizon_s: Option<f64>,
    pub fleet: Vec<FleetEntry>,
    pub flavors: Flavors,
    pub workload: Workload,
    pub policies: Vec<PolicySpec>,
    /// Nova's `[pci] alias` entries: what flavors' `pci_passthrough:alias`
    /// names (`[[pci_alias]]`).
    #[serde(default)]
    pub pci_alias: Vec<PciAliasSpec>,
    /// Nova's scheduler options for the policies with `strategy = "nova"`
    /// (a policy's own `scheduler` table overrides keys of this one).
    #[serde(default)]
    pub scheduler: Option<super::scheduler::SchedulerSpec>,
    #[serde(default)]
    pub cost: CostSpec,
    #[serde(default)]
    pub output: OutputSpec,
}

fn default_seeds() -> Vec<u64> {
    vec![1]
}

impl Scenario {
    /// The `[[pci_alias]]` entries as the request code takes them.
    pub fn pci_aliases(&self) -> Vec<crate::request::pci::PciAlias> {
        self.pci_alias
            .iter()
            .map(|a| crate::request::pci::PciAlias {
                name: a.name.clone(),
                vendor_id: a.vendor_id.clone(),
                product_id: a.product_id.clone(),
                device_type: a.device_type.clone(),
                numa_policy: a.numa_policy.clone(),
            })
            .collect()
    }

    /// The scheduler configuration of policy `i` (`strategy = "nova"`):
    /// Nova's defaults, then `[scheduler]`, then the policy's own table.
    pub fn scheduler_for(
        &self,
        i: usize,
    ) -> Result<crate::sim::scheduler::SchedulerConfig, String> {
        let base = self.scheduler.clone().unwrap_or_default();
        let spec = match &self.policies[i].scheduler {
            Some(own) => base.overridden_by(own),
            None => base,
        };
        spec.config()
    }

    /// Every file a run of the scenario reads (host captures, node lists,
    /// flavors, traces), relative paths taken from `base`, sorted.
    pub fn input_files(&self, base: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut inputs: Vec<std::path::PathBuf> = self
            .fleet
            .iter()
            .filter_map(|f| {
                f.file
                    .clone()
                    .or_else(|| f.nodes.as_ref().map(|n| n.file.clone()))
            })
            .chain(self.flavors.file.clone())
            .chain(self.workload.trace.clone())
            .chain(self.workload.twin.as_ref().map(|t| t.trace.clone()))
            .map(|f| base.join(f))
            .collect();
        inputs.sort();
        inputs.dedup();
        inputs
    }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetEntry {
    /// A preset name (`numasim topology presets`).
    #[serde(default)]
    pub preset: Option<String>,
    /// A captured topology file (any format `topology show` reads).
    #[serde(default)]
    pub file: Option<String>,
    /// A synthetic host description.
    #[serde(default)]
    pub synthetic: Option<SynthSpec>,
    /// A public trace's node list: one host model per distinct size.
    #[serde(default)]
    pub nodes: Option<NodeList>,
    /// How many hosts (not with `nodes`, which counts them itself).
    #[serde(default)]
    pub count: usize,
    #[serde(default)]
    pub config: HostConfigSpec,
    /// PCI devices of each host of the entry, per NUMA node.
    #[serde(default)]
    pub pci: Vec<PciSpec>,
    /// Nova's `[pci] device_spec`: which of a captured host's PCI devices
    /// Nova tracks (by vendor and product); the others are not pools.
    #[serde(default)]
    pub device_spec: Vec<DeviceSpec>,
}

/// A group of identical PCI devices on one host NUMA node.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PciSpec {
    /// A `[[pci_alias]]` name: the devices get its vendor, product and type.
    #[serde(default)]
    pub alias: Option<String>,
    /// Vendor id (hex, `8086`), without `alias`.
    #[serde(default)]
    pub vendor_id: Option<String>,
    /// Product id (hex, `154c`), without `alias`.
    #[serde(default)]
    pub product_id: Option<String>,
    /// `type-PCI`, `type-PF` or `type-VF` (default: the alias's, else `type-PCI`).
    #[serde(default)]
    pub dev_type: Option<String>,
    /// The host NUMA node (cell id) the devices are attached to.
    pub numa_node: i64,
    pub count: u32,
}

/// One `[pci] device_spec` entry.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub vendor_id: String,
    pub product_id: String,
}

/// One `[pci] alias` entry.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PciAliasSpec {
    pub name: String,
    pub vendor_id: String,
    pub product_id: String,
    /// `type-PCI`, `type-PF` or `type-VF`; absent: any.
    #[serde(default)]
    pub device_type: Option<String>,
    /// `required`, `legacy`, `preferred` or `socket` (the flavor's or image's
    /// `hw:pci_numa_affinity_policy` wins).
    #[serde(default)]
    pub numa_policy: Option<String>,
}

/// The PCI device types Nova knows.
pub const DEVICE_TYPES: [&str; 3] = ["type-PCI", "type-PF", "type-VF"];

/// A node list of a public trace as a fleet. Public traces give each
/// node's CPUs and memory but not its NUMA layout: each node becomes a host
/// of `sockets` NUMA nodes (one per socket), its logical CPUs and memory
/// split evenly, `threads_per_core` threads per core where the split allows.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeList {
    pub file: String,
    pub format: NodeListFormat,
    #[serde(default = "two")]
    pub sockets: u32,
    #[serde(default = "two")]
    pub threads_per_core: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum NodeListFormat {
    /// `openb_node_list_*.csv`: `sn,cpu_milli,memory_mib,gpu,model`.
    #[serde(rename = "alibaba-gpu-2023")]
    AlibabaGpu2023,
}

fn two() -> u32 {
    2
}

/// Nova host configuration for a fleet entry.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostConfigSpec {
    #[serde(default = "four")]
    pub cpu_allocation_ratio: f64,
    #[serde(default = "one")]
    pub ram_allocation_ratio: f64,
    /// CPU list (`0-9,40-49`) for `[compute] cpu_shared_set`.
    #[serde(default)]
    pub cpu_shared_set: Option<String>,
    /// CPU list for `[compute] cpu_dedicated_set`.
    #[serde(default)]
    pub cpu_dedicated_set: Option<String>,
    #[serde(default)]
    pub reserved_host_memory_mb: u64,
}

impl Default for HostConfigSpec {
    fn default() -> Self {
        HostConfigSpec {
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            cpu_shared_set: None,
            cpu_dedicated_set: None,
            reserved_host_memory_mb: 0,
        }
    }
}

fn four() -> f64 {
    4.0
}
fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flavors {
    /// A catalog CSV (`name,vcpus,memory_mb,extra_specs`).
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub list: Vec<FlavorSpec>,
    /// Fraction of its memory a guest of each flavor touches.
    #[serde(default)]
    pub touched_fraction: BTreeMap<String, f64>,
    /// The touched fraction of flavors `touched_fraction` does not name.
    #[serde(default = "one")]
    pub default_touched_fraction: f64,
    /// NUMA shapes for flavors that have none (public traces give vCPUs and
    /// memory only): the first rule a guest's flavor matches, and whose
    /// share the guest draws, adds its extra specs to that guest.
    #[serde(default)]
    pub shapes: Vec<ShapeRule>,
    /// Memory that grows during a guest's life: flavor name (or `*`) ->
    /// `{ to = 0.95, mean_delay_s = 7200 }` (touched fraction reached after
    /// an exponential delay), what turns `strict` into OOM kills and
    /// `preferred` into spills over time.
    #[serde(default)]
    pub growth: BTreeMap<String, GrowthSpec>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrowthSpec {
    pub to: f64,
    pub mean_delay_s: f64,
}

/// `{ min_vcpus = 8, extra_specs = "hw:numa_nodes=2" }`,
/// `{ share = 0.2, extra_specs = "hw:cpu_policy=dedicated", name = "pinned" }`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShapeRule {
    #[serde(default)]
    pub min_vcpus: Option<i64>,
    #[serde(default)]
    pub max_vcpus: Option<i64>,
    #[serde(default)]
    pub min_memory_mb: Option<i64>,
    #[serde(default)]
    pub max_memory_mb: Option<i64>,
    /// Fraction of the matching guests that get the shape (by guest id and seed).
    #[serde(default = "one")]
    pub share: f64,
    pub extra_specs: String,
    /// Suffix of the shaped flavors' names (`m1.large+<name>`); default `shape<N>`.
    #[serde(default)]
    pub name: Option<String>,
}

impl ShapeRule {
    pub fn matches(&self, vcpus: i64, memory_mb: i64) -> bool {
        self.min_vcpus.is_none_or(|m| vcpus >= m)
            && self.max_vcpus.is_none_or(|m| vcpus <= m)
            && self.min_memory_mb.is_none_or(|m| memory_mb >= m)
            && self.max_memory_mb.is_none_or(|m| memory_mb <= m)
    }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorSpec {
    pub name: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    #[serde(default)]
    pub extra_specs: String,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// A trace CSV (`id,arrival_s,departure_s,flavor[,image_props]`).
    #[serde(default)]
    pub trace: Option<String>,
    #[serde(default)]
    pub synthetic: Option<Synthetic>,
    /// A synthetic twin of a trace (`twin`): its arrival rate, lifetimes and
    /// flavor mix, arrivals scaled by `load`.
    #[serde(default)]
    pub twin: Option<TwinSpec>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TwinSpec {
    /// A native trace whose flavors are in the scenario's catalog.
    pub trace: String,
    /// Arrival rate factor: 2.0 is twice the trace's traffic.
    #[serde(default = "one")]
    pub load: f64,
    /// Guests to generate (default: the trace's count times `load`).
    #[serde(default)]
    pub guests: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[serde(default = "spread")]
    pub strategy: Strategy,
    #[serde(default = "strict")]
    pub memory_mode: MemoryMode,
    #[serde(default)]
    pub fit_mode: crate::fit::Mode,
    #[serde(default = "all")]
    pub host_check: HostCheck,
    /// A placement policy's name in the registry (`sim::policy::Registry`):
    /// `nova` (the default), `closest`, `float`, `cpuset-auto`, `manual`,
    /// `numad`, `autonuma`, or one a program registered.
    #[serde(default = "nova")]
    pub placement: String,
    /// A label for tables and CSVs instead of the generated name.
    #[serde(default)]
    pub name: Option<String>,
    /// `placement = "manual"`: flavor name (or `*` for the others) -> the
    /// operator's numatune, `{ nodeset = "0-1", mode = "interleave" }`.
    #[serde(default)]
    pub manual: BTreeMap<String, ManualSpec>,
    /// `numad` and `autonuma`: intervals, scan rate, migration throughput.
    #[serde(default)]
    pub rebalancing: crate::sim::policy::Rebalancing,
    /// `strategy = "nova"`: this policy's scheduler options, over the
    /// scenario's `[scheduler]`.
    #[serde(default)]
    pub scheduler: Option<super::scheduler::SchedulerSpec>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualSpec {
    /// Host NUMA node ids, as in libvirt's `nodeset` (`0-1,3`).
    pub nodeset: String,
    pub mode: MemoryMode,
}

fn nova() -> String {
    "nova".into()
}
fn spread() -> Strategy {
    Strategy::Spread
}
fn strict() -> MemoryMode {
    MemoryMode::Strict
}
fn all() -> HostCheck {
    HostCheck::All
}

impl Default for PolicySpec {
    /// What an empty `[[policies]]` entry means: Nova's fit, spread, strict.
    fn default() -> Self {
        PolicySpec {
            strategy: spread(),
            memory_mode: strict(),
            fit_mode: Default::default(),
            host_check: all(),
            placement: nova(),
            name: None,
            manual: BTreeMap::new(),
            rebalancing: Default::default(),
            scheduler: None,
        }
    }
}

impl PolicySpec {
    /// `spread-strict`, `pack-interleave-clean`, ...
    pub fn name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let mut n = format!("{}-{}", self.strategy.as_str(), self.memory_mode.as_str());
        if self.fit_mode == crate::fit::Mode::Clean {
            n.push_str("-clean");
        }
        if self.placement != "nova" {
            n.push('-');
            n.push_str(&self.placement);
        }
        n
    }
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostSpec {
    /// SLIT value (as a string key) -> measured latency ratio.
    #[serde(default)]
    pub calibration: BTreeMap<String, f64>,
    /// A shipped calibration table instead (`xeon-scalable-2s`,
    /// `nehalem-ep-2s`, `xeon-e7-4s`; sources in `sim::cost::PLATFORMS`).
    #[serde(default)]
    pub platform: Option<String>,
    /// Guests with a virtual NUMA topology keep accesses inside each guest
    /// cell (a NUMA-aware guest kernel). Default: accesses are uniform over
    /// all of the guest's memory.
    #[serde(default)]
    pub numa_aware_guests: bool,
    /// SLIT value (as a string key) -> measured cost of reaching a PCI
    /// device from that distance (DMA and interrupts crossing nodes), e.g.
    /// `{ "21" = 1.3 }` from a NIC's throughput or latency measured local
    /// and remote on your platform. Default: SLIT / 10, as for memory.
    #[serde(default)]
    pub device_calibration: BTreeMap<String, f64>,
}

impl CostSpec {
    /// The device calibration (`device_calibration`), checked as memory's.
    pub fn device_calibration(&self) -> Result<Calibration, String> {
        calibration_points(&self.device_calibration, "cost.device_calibration")
    }

    pub fn calibration(&self) -> Result<Calibration, String> {
        if let Some(name) = &self.platform {
            if !self.calibration.is_empty() {
                return Err("cost: give `platform` or `calibration`, not both".into());
            }
            return Calibration::of_platform(name).ok_or_else(|| {
                let names: Vec<&str> = crate::sim::cost::PLATFORMS.iter().map(|p| p.name).collect();
                format!(
                    "cost.platform: unknown platform `{name}`; expected one of {}",
                    names.join(", ")
                )
            });
        }
        calibration_points(&self.calibration, "cost.calibration")
    }
}

/// A SLIT -> ratio table from the scenario, checked; errors name `key`.
fn calibration_points(table: &BTreeMap<String, f64>, key: &str) -> Result<Calibration, String> {
    let mut points = Vec::new();
    for (k, v) in table {
        let slit: u32 = k.parse().ok().filter(|s| *s >= 10).ok_or_else(|| {
            format!("{key}: key `{k}` is not a SLIT value (an integer, 10 or more)")
        })?;
        if !v.is_finite() || *v <= 0.0 {
            return Err(format!("{key}.{k}: {v} is not a positive ratio"));
        }
        points.push((slit, *v));
    }
    points.sort_by_key(|p| p.0);
    Ok(Calibration { points })
}

impl CostSpec {}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default)]
    pub dir: Option<String>,
    /// Time-series sampling interval, seconds.
    #[serde(default = "hour")]
    pub timeseries_interval_s: f64,
}

impl Default for OutputSpec {
    fn default() -> Self {
        OutputSpec {
            dir: None,
            timeseries_interval_s: 3600.0,
        }
    }
}

fn hour() -> f64 {
    3600.0
}

/// The shortest rebalancing step and time-series interval (seconds).
pub const MIN_STEP_S: f64 = 0.1;
/// The smallest arrival rate or offered load: below it a run is endless.
pub const MIN_RATE: f64 = 1e-6;

/// A scenario that parsed but says something impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

impl Scenario {
    /// Parses and checks a scenario; errors carry the TOML line and key.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text)
            .map_err(|e| ScenarioError(e.to_string().trim_end().to_string()))?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError(m));
        // The name becomes a directory under results/: one path component.
        let name_ok = !self.name.is_empty()
            && self.name != "."
            && self.name != ".."
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
        if !name_ok {
            return bad(format!(
                "name = `{}`: expected letters, digits, `.`, `_`, `-` or `+` (it names the results directory)",
                self.name
            ));
        }
        if !(self.warmup_s.is_finite() && self.warmup_s >= 0.0) {
            return bad(format!(
                "warmup_s = {}: expected a number of seconds, 0 or more",
                self.warmup_s
            ));
        }
        if let Some(h) = self.horizon_s
            && !(h.is_finite() && h > 0.0)
        {
            return bad(format!(
                "horizon_s = {h}: expected a positive number of seconds"
            ));
        }
        if self.seeds.is_empty() {
            return bad("seeds: give at least one seed".into());
        }
        if self.fleet.is_empty() {
            return bad("fleet: give at least one [[fleet]] entry".into());
        }
        for (i, f) in self.fleet.iter().enumerate() {
            let sources = usize::from(f.preset.is_some())
                + usize::from(f.file.is_some())
                + usize::from(f.synthetic.is_some())
                + usize::from(f.nodes.is_some());
            if sources != 1 {
                return bad(format!(
                    "fleet[{i}]: give exactly one of `preset`, `file`, `synthetic` and `nodes`"
                ));
            }
            match (&f.nodes, f.count) {
                (None, 0) => {
                    return bad(format!(
                        "fleet[{i}].count: give the number of hosts (1 or more)"
                    ));
                }
                (Some(_), c) if c > 0 => {
                    return bad(format!(
                        "fleet[{i}]: `count` does not go with `nodes` (the node list counts its hosts)"
                    ));
                }
                (Some(n), _) if n.sockets == 0 || n.threads_per_core == 0 => {
                    return bad(format!(
                        "fleet[{i}].nodes: sockets and threads_per_core must be 1 or more"
                    ));
                }
                _ => {}
            }
            for (key, v) in [
                ("cpu_allocation_ratio", f.config.cpu_allocation_ratio),
                ("ram_allocation_ratio", f.config.ram_allocation_ratio),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    return bad(format!(
                        "fleet[{i}].config.{key} = {v}: expected a positive number"
                    ));
                }
            }
        }
        for (i, p) in self.policies.iter().enumerate() {
            let r = &p.rebalancing;
            let positive = [
                ("numad_interval_s", r.numad_interval_s),
                ("autonuma_tick_s", r.autonuma_tick_s),
                ("autonuma_scan_mb_per_s", r.autonuma_scan_mb_per_s),
                ("migrate_mb_per_s", r.migrate_mb_per_s),
            ];
            for (key, v) in positive {
                if !(v.is_finite() && v > 0.0) {
                    return bad(format!(
                        "policies[{i}].rebalancing.{key} = {v}: expected a positive number"
                    ));
                }
            }
            // Steps of numad and autonuma are events: a step below a
            // tenth of a second only makes a run endless.
            for (key, v) in [
                ("numad_interval_s", r.numad_interval_s),
                ("autonuma_tick_s", r.autonuma_tick_s),
            ] {
                if v < MIN_STEP_S {
                    return bad(format!(
                        "policies[{i}].rebalancing.{key} = {v}: expected at least {MIN_STEP_S} s"
                    ));
                }
            }
            if !(r.numad_target_utilization > 0.0 && r.numad_target_utilization <= 1.0) {
                return bad(format!(
                    "policies[{i}].rebalancing.numad_target_utilization = {}: expected a fraction in (0, 1]",
                    r.numad_target_utilization
                ));
            }
            for (flavor, m) in &p.manual {
                if crate::topology::parse_cpu_list(&m.nodeset).map_or(true, |l| l.is_empty()) {
                    return bad(format!(
                        "policies[{i}].manual.\"{flavor}\".nodeset = `{}`: expected node ids such as 0-1,3",
                        m.nodeset
                    ));
                }
            }
        }
        for (i, a) in self.pci_alias.iter().enumerate() {
            if self.pci_alias[..i].iter().any(|b| b.name == a.name) {
                return bad(format!("pci_alias[{i}].name = `{}`: defined twice", a.name));
            }
            if let Some(t) = &a.device_type
                && !DEVICE_TYPES.contains(&t.as_str())
            {
                return bad(format!(
                    "pci_alias[{i}].device_type = `{t}`: expected one of {}",
                    DEVICE_TYPES.join(", ")
                ));
            }
            if let Some(p) = &a.numa_policy
                && !crate::request::PCI_POLICIES.contains(&p.as_str())
            {
                return bad(format!(
                    "pci_alias[{i}].numa_policy = `{p}`: expected one of {}",
                    crate::request::PCI_POLICIES.join(", ")
                ));
            }
        }
        for (i, f) in self.fleet.iter().enumerate() {
            for (k, d) in f.pci.iter().enumerate() {
                let at = format!("fleet[{i}].pci[{k}]");
                match (&d.alias, &d.vendor_id, &d.product_id) {
                    (Some(a), None, None) => {
                        if !self.pci_alias.iter().any(|x| &x.name == a) {
                            return bad(format!(
                                "{at}.alias = `{a}`: no [[pci_alias]] has that name"
                            ));
                        }
                    }
                    (None, Some(_), Some(_)) => {}
                    _ => {
                        return bad(format!(
                            "{at}: give either `alias` or both `vendor_id` and `product_id`"
                        ));
                    }
                }
                if let Some(t) = &d.dev_type
                    && !DEVICE_TYPES.contains(&t.as_str())
                {
                    return bad(format!(
                        "{at}.dev_type = `{t}`: expected one of {}",
                        DEVICE_TYPES.join(", ")
                    ));
                }
                if d.count > 1 << 16 {
                    return bad(format!("{at}.count = {}: expected at most 65536", d.count));
                }
            }
        }
        for (i, p) in self.policies.iter().enumerate() {
            if p.scheduler.is_some() && p.strategy != Strategy::Nova {
                return bad(format!(
                    "policies[{i}].scheduler: Nova's scheduler options need strategy = \"nova\" (it is \"{}\")",
                    p.strategy.as_str()
                ));
            }
            if p.strategy == Strategy::Nova
                && let Err(e) = self.scheduler_for(i)
            {
                return bad(format!("policies[{i}] scheduler: {e}"));
            }
        }
        if self.policies.is_empty() {
            return bad("policies: give at least one [[policies]] entry".into());
        }
        let sources = usize::from(self.workload.trace.is_some())
            + usize::from(self.workload.synthetic.is_some())
            + usize::from(self.workload.twin.is_some());
        if sources != 1 {
            return bad(
                "workload: give exactly one of `trace`, `[workload.synthetic]` and `[workload.twin]`"
                    .into(),
            );
        }
        if let Some(t) = &self.workload.twin
            && !(t.load.is_finite() && t.load > 0.0)
        {
            return bad(format!(
                "workload.twin.load = {}: expected a positive factor",
                t.load
            ));
        }
        if let Some(syn) = &self.workload.synthetic {
            if syn.arrivals_per_hour.is_some() == syn.offered_load.is_some() {
                return bad("workload.synthetic: give exactly one of `arrivals_per_hour` and `offered_load`".into());
            }
            for (key, v) in [
                ("arrivals_per_hour", syn.arrivals_per_hour),
                ("offered_load", syn.offered_load),
            ] {
                if let Some(v) = v
                    && !(v.is_finite() && v >= MIN_RATE)
                {
                    return bad(format!(
                        "workload.synthetic.{key} = {v}: expected a positive number, at least {MIN_RATE}"
                    ));
                }
            }
            if syn.mix.is_empty()
                || syn.mix.values().any(|w| !w.is_finite() || *w < 0.0)
                || syn.mix.values().sum::<f64>() <= 0.0
            {
                return bad(
                    "workload.synthetic.mix: weights must be non-negative and not all zero".into(),
                );
            }
            let life_ok = match &syn.lifetime {
                Lifetime::Exponential { mean_s } => mean_s.is_finite() && *mean_s > 0.0,
                Lifetime::Lognormal { median_s, sigma } => {
                    median_s.is_finite() && *median_s > 0.0 && sigma.is_finite() && *sigma >= 0.0
                }
                Lifetime::Empirical { sorted_s } => !sorted_s.is_empty(),
            };
            if !life_ok {
                return bad("workload.synthetic.lifetime: mean/median must be positive and sigma non-negative".into());
            }
        }
        if self.flavors.file.is_none() && self.flavors.list.is_empty() {
            return bad("flavors: give `file` or [[flavors.list]] entries".into());
        }
        for (name, g) in &self.flavors.growth {
            let valid =
                (0.0..=1.0).contains(&g.to) && g.mean_delay_s > 0.0 && g.mean_delay_s.is_finite();
            if !valid {
                return bad(format!(
                    "flavors.growth.\"{name}\": `to` must be a fraction in [0, 1] and `mean_delay_s` positive"
                ));
            }
        }
        for (i, r) in self.flavors.shapes.iter().enumerate() {
            if !(0.0..=1.0).contains(&r.share) {
                return bad(format!(
                    "flavors.shapes[{i}].share = {}: expected a fraction in [0, 1]",
                    r.share
                ));
            }
            if let Err(m) = crate::workload::trace::parse_pairs(&r.extra_specs) {
                return bad(format!("flavors.shapes[{i}].extra_specs: {m}"));
            }
        }
        let interval = self.output.timeseries_interval_s;
        if !(interval.is_finite() && interval >= MIN_STEP_S) {
            return bad(format!(
                "output.timeseries_interval_s = {interval}: expected at least {MIN_STEP_S} s"
            ));
        }
        for f in &self.flavors.list {
            crate::workload::trace::parse_pairs(&f.extra_specs)
                .and_then(|specs| {
                    crate::workload::trace::check_flavor(&f.name, f.vcpus, f.memory_mb, &specs)
                })
                .map_err(|m| ScenarioError(format!("flavors.list `{}`: {m}", f.name)))?;
        }
        self.cost.calibration().map_err(ScenarioError)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
seeds = [1, 2]
[[fleet]]
preset = "dl980"
count = 2
[flavors]
list = [{ name = "s", vcpus = 1, memory_mb = 1024 }]
[workload.synthetic]
guests = 10
arrivals_per_hour = 60
lifetime = { distribution = "exponential", mean_s = 600 }
mix = { s = 1 }
[[policies]]
memory_mode = "preferred"
"#;

    #[test]
    fn parses_and_names_policies() {
        let s = Scenario::parse(MINIMAL).unwrap();
        assert_eq!(s.policies[0].name(), "spread-preferred");
        assert_eq!(s.seeds, vec![1, 2]);
    }

    #[test]
    fn unknown_keys_and_types_name_the_line() {
        let e = Scenario::parse(&MINIMAL.replace("count = 2", "count = 2\ncolor = \"red\""))
            .unwrap_err()
            .0;
        assert!(e.contains("color") && e.contains("line 7"), "{e}");
        let e = Scenario::parse(&MINIMAL.replace("count = 2", "count = \"two\""))
            .unwrap_err()
            .0;
        assert!(e.contains("line 6") && e.contains("count"), "{e}");
        let e = Scenario::parse(
            &MINIMAL.replace("memory_mode = \"preferred\"", "memory_mode = \"loose\""),
        )
        .unwrap_err()
        .0;
        assert!(e.contains("loose"), "{e}");
    }

    #[test]
    fn synthetic_stream_is_seeded_and_ordered() {
        let s = Scenario::parse(MINIMAL).unwrap();
        let syn = s.workload.synthetic.unwrap();
        use crate::workload::synthetic::SyntheticStream;
        let a: Vec<_> = SyntheticStream::new(&syn, 7, vec![(1.0, 0)], 1024.0, 1.0, None)
            .map(Result::unwrap)
            .collect();
        let b: Vec<_> = SyntheticStream::new(&syn, 7, vec![(1.0, 0)], 1024.0, 1.0, None)
            .map(Result::unwrap)
            .collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0].arrival_s <= w[1].arrival_s));
        let lifetimes: f64 = a
            .iter()
            .map(|r| r.departure_s.unwrap() - r.arrival_s)
            .sum::<f64>()
            / 10.0;
        assert!(lifetimes > 100.0 && lifetimes < 3000.0);
    }
}

//! The fit engine's view of a host: Nova's `NUMACell`s with their usage.

use super::cpubits::CpuBits;
use super::pyset::PySet;

/// One pool of pages of one size on a host cell (`NUMAPagesTopology`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemPages {
    pub size_kb: i64,
    pub total: i64,
    pub used: i64,
    pub reserved: i64,
}

impl MemPages {
    pub fn free(&self) -> i64 {
        self.total - self.used - self.reserved
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkMetadata {
    pub physnets: Vec<String>,
    pub tunneled: bool,
}

/// A cell's CPU sets. Claims never change them, but Nova rebuilds them on
/// every usage update, and each rebuild (a coercion) can change their
/// iteration order: a cell walks a fixed sequence of layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuSets {
    /// CPUs for floating vCPUs (`cpu_shared_set`).
    pub cpuset: PySet,
    /// CPUs for pinned vCPUs (`cpu_dedicated_set`).
    pub pcpuset: PySet,
    pub siblings: Vec<PySet>,
}

impl CpuSets {
    fn coerced(&self) -> CpuSets {
        CpuSets {
            cpuset: self.cpuset.coerced(),
            pcpuset: self.pcpuset.coerced(),
            siblings: self.siblings.iter().map(PySet::coerced).collect(),
        }
    }
}

/// The layouts a cell's CPU sets go through, computed once and shared by
/// every host cloned from the same cell: `layouts[0]` first, each update one
/// step on, until the sequence repeats from `cycle_start` (coercion is
/// deterministic, so once a layout recurs the walk is periodic).
#[derive(Debug)]
pub struct SetSchedule {
    layouts: Vec<CpuSets>,
    cycle_start: usize,
}

/// Layouts are few (fixed points and two-layout cycles are what CPython's
/// set layout produces); past this many steps the schedule stops growing
/// and keeps coercing the last layout itself.
const MAX_LAYOUTS: usize = 16;

impl SetSchedule {
    fn new(first: CpuSets) -> SetSchedule {
        let mut layouts = vec![first];
        while layouts.len() < MAX_LAYOUTS {
            let next = layouts.last().expect("non-empty").coerced();
            if let Some(j) = layouts.iter().position(|l| *l == next) {
                return SetSchedule {
                    layouts,
                    cycle_start: j,
                };
            }
            layouts.push(next);
        }
        SetSchedule {
            cycle_start: usize::MAX,
            layouts,
        }
    }
}

/// A host NUMA cell as Nova's fit sees it. CPU sets are kept as CPython
/// sets built the way Nova builds them, because pinning follows their
/// iteration order (see `pyset`).
#[derive(Debug, Clone)]
pub struct HostCell {
    pub id: i64,
    /// The CPU sets' layouts and where this cell is in them.
    schedule: std::sync::Arc<SetSchedule>,
    step: usize,
    /// Only when the schedule ran past `MAX_LAYOUTS`: the current layout.
    overflow: Option<Box<CpuSets>>,
    pub memory_mb: i64,
    pub cpu_usage: i64,
    pub memory_usage_mb: i64,
    /// Pinned CPUs; Nova's order for this set never shows in its answers.
    pub pinned_cpus: CpuBits,
    pub mempages: Vec<MemPages>,
    pub socket: Option<i64>,
    pub network_metadata: Option<NetworkMetadata>,
}

impl PartialEq for HostCell {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.sets() == other.sets()
            && self.memory_mb == other.memory_mb
            && self.cpu_usage == other.cpu_usage
            && self.memory_usage_mb == other.memory_usage_mb
            && self.pinned_cpus == other.pinned_cpus
            && self.mempages == other.mempages
            && self.socket == other.socket
            && self.network_metadata == other.network_metadata
    }
}

impl HostCell {
    /// A cell with these (already coerced) CPU sets and no usage.
    pub fn new(id: i64, sets: CpuSets, memory_mb: i64) -> HostCell {
        HostCell {
            id,
            schedule: std::sync::Arc::new(SetSchedule::new(sets)),
            step: 0,
            overflow: None,
            memory_mb,
            cpu_usage: 0,
            memory_usage_mb: 0,
            pinned_cpus: CpuBits::default(),
            mempages: Vec::new(),
            socket: None,
            network_metadata: None,
        }
    }

    /// Builds a cell from lists, as `NUMACell(cpuset=set(cpus), ...)` does:
    /// each set built from its list in order, then coerced by the field.
    #[allow(clippy::too_many_arguments)]
    pub fn from_lists(
        id: i64,
        cpus: &[u32],
        pcpus: &[u32],
        memory_mb: i64,
        cpu_usage: i64,
        memory_usage_mb: i64,
        pinned: &[u32],
        siblings: &[Vec<u32>],
        mempages: Vec<MemPages>,
    ) -> HostCell {
        let set = |v: &[u32]| PySet::from_iter_ordered(v.iter().copied()).coerced();
        let sets = CpuSets {
            cpuset: set(cpus),
            pcpuset: set(pcpus),
            siblings: siblings.iter().map(|s| set(s)).collect(),
        };
        HostCell {
            cpu_usage,
            memory_usage_mb,
            pinned_cpus: CpuBits::from_slice(pinned),
            mempages,
            ..HostCell::new(id, sets, memory_mb)
        }
    }

    /// The CPU sets in their current layout.
    pub fn sets(&self) -> &CpuSets {
        match &self.overflow {
            Some(s) => s,
            None => &self.schedule.layouts[self.step],
        }
    }

    pub fn cpuset(&self) -> &PySet {
        &self.sets().cpuset
    }

    pub fn pcpuset(&self) -> &PySet {
        &self.sets().pcpuset
    }

    pub fn siblings(&self) -> &[PySet] {
        &self.sets().siblings
    }

    /// Physical CPUs of the cell: its shared and dedicated CPUs, each once
    /// (a host without `cpu_shared_set`/`cpu_dedicated_set` reports every
    /// CPU in both sets).
    pub fn physical_cpus(&self) -> usize {
        let (shared, dedicated) = (self.cpuset(), self.pcpuset());
        shared.len() + dedicated.iter().filter(|c| !shared.contains(*c)).count()
    }

    /// Replaces the CPU sets (a new schedule; the cell's usage is kept).
    pub fn set_sets(&mut self, sets: CpuSets) {
        self.schedule = std::sync::Arc::new(SetSchedule::new(sets));
        self.step = 0;
        self.overflow = None;
    }

    /// What Nova's rebuild of the cell does to its CPU sets: one coercion,
    /// here one step along the shared schedule (no allocation).
    pub fn coerce_sets(&mut self) {
        if let Some(s) = &self.overflow {
            self.overflow = Some(Box::new(s.coerced()));
            return;
        }
        let n = self.schedule.layouts.len();
        if self.step + 1 < n {
            self.step += 1;
        } else if self.schedule.cycle_start < n {
            self.step = self.schedule.cycle_start;
        } else {
            self.overflow = Some(Box::new(self.schedule.layouts[self.step].coerced()));
        }
    }

    /// The cell without its CPU sets (cheap to copy), for scratch work.
    pub fn clone_header(&self) -> HostCell {
        HostCell {
            id: self.id,
            schedule: self.schedule.clone(),
            step: self.step,
            overflow: None,
            memory_mb: self.memory_mb,
            cpu_usage: self.cpu_usage,
            memory_usage_mb: self.memory_usage_mb,
            pinned_cpus: CpuBits::default(),
            mempages: Vec::new(),
            socket: self.socket,
            network_metadata: None,
        }
    }

    pub fn avail_memory(&self) -> i64 {
        self.memory_mb - self.memory_usage_mb
    }

    /// `pcpuset - pinned_cpus`, in CPython's order.
    pub fn free_pcpus(&self) -> PySet {
        let pinned = &self.pinned_cpus;
        let s = self
            .pcpuset()
            .difference_with(pinned.len(), |c| pinned.contains(c), pinned.iter());
        if s.is_empty() { PySet::new() } else { s }
    }

    /// `len(free_pcpus)`, without building the set.
    pub fn avail_pcpus(&self) -> usize {
        self.pcpuset()
            .iter()
            .filter(|c| !self.pinned_cpus.contains(*c))
            .count()
    }

    /// `NUMACell.can_fit_pagesize`: `None` when the cell has no pool of that size.
    pub fn can_fit_pagesize(
        &self,
        pagesize_kb: i64,
        memory_kb: i64,
        use_free: bool,
    ) -> Option<bool> {
        let pages = self.mempages.iter().find(|p| p.size_kb == pagesize_kb)?;
        let avail_kb = if use_free {
            pages.free() * pages.size_kb
        } else {
            pages.total * pages.size_kb
        };
        Some(memory_kb <= avail_kb && memory_kb % pages.size_kb == 0)
    }

    pub fn smallest_pagesize(&self) -> Option<i64> {
        self.mempages.iter().map(|p| p.size_kb).min()
    }
}

/// A host's NUMA topology.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostTopology {
    pub cells: Vec<HostCell>,
}

/// A pool of identical PCI devices on one NUMA node (`PciDeviceStats` pool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciPool {
    pub vendor_id: String,
    pub product_id: String,
    pub dev_type: String,
    pub numa_node: Option<i64>,
    pub count: i64,
}

/// A PCI request (`InstancePCIRequest`): any of `spec` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciRequest {
    pub count: i64,
    pub spec: Vec<Vec<(String, String)>>,
    /// required | legacy | preferred | socket
    pub numa_policy: String,
}

/// `NUMATopologyLimits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub network_metadata: Option<NetworkMetadata>,
}

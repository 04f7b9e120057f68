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

/// A host NUMA cell as Nova's fit sees it. CPU sets are kept as CPython
/// sets built the way Nova builds them, because pinning follows their
/// iteration order (see `pyset`).
#[derive(Debug, Clone, PartialEq)]
pub struct HostCell {
    pub id: i64,
    /// CPUs for floating vCPUs (`cpu_shared_set`).
    pub cpuset: PySet,
    /// CPUs for pinned vCPUs (`cpu_dedicated_set`).
    pub pcpuset: PySet,
    pub memory_mb: i64,
    pub cpu_usage: i64,
    pub memory_usage_mb: i64,
    /// Pinned CPUs; Nova's order for this set never shows in its answers.
    pub pinned_cpus: CpuBits,
    pub siblings: Vec<PySet>,
    pub mempages: Vec<MemPages>,
    pub socket: Option<i64>,
    pub network_metadata: Option<NetworkMetadata>,
}

impl HostCell {
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
        HostCell {
            id,
            cpuset: set(cpus),
            pcpuset: set(pcpus),
            memory_mb,
            cpu_usage,
            memory_usage_mb,
            pinned_cpus: CpuBits::from_slice(pinned),
            siblings: siblings.iter().map(|s| set(s)).collect(),
            mempages,
            socket: None,
            network_metadata: None,
        }
    }

    /// The cell without its CPU sets (cheap to copy), for scratch work.
    pub fn clone_header(&self) -> HostCell {
        HostCell {
            id: self.id,
            cpuset: PySet::default(),
            pcpuset: PySet::default(),
            memory_mb: self.memory_mb,
            cpu_usage: self.cpu_usage,
            memory_usage_mb: self.memory_usage_mb,
            pinned_cpus: CpuBits::default(),
            siblings: Vec::new(),
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
            .pcpuset
            .difference_with(pinned.len(), |c| pinned.contains(c), pinned.iter());
        if s.is_empty() { PySet::new() } else { s }
    }

    /// `len(free_pcpus)`, without building the set.
    pub fn avail_pcpus(&self) -> usize {
        self.pcpuset
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

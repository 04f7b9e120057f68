//! The Placement stand-in and the compute node's records, as Nova's
//! scheduler reads them: one root resource provider per host with
//! `MEMORY_MB`, `VCPU`, `PCPU` and `DISK_GB` inventories (as the libvirt
//! driver reports them), the capacity check Placement runs for
//! `GET /allocation_candidates` and for the claim, and the ComputeNode
//! usage the resource tracker keeps (what the weighers read).

use super::SchedulerConfig;
use crate::fit::HostTopology;
use crate::request::{CpuPolicy, GuestTopology, ThreadPolicy};

/// Resource classes, as indexes into usage arrays.
pub const VCPU: usize = 0;
pub const PCPU: usize = 1;
pub const MEMORY_MB: usize = 2;
pub const DISK_GB: usize = 3;
pub const CLASSES: [&str; 4] = ["VCPU", "PCPU", "MEMORY_MB", "DISK_GB"];

/// One inventory of a provider (min_unit 1, max_unit = total, step 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inventory {
    pub total: i64,
    pub reserved: i64,
    pub allocation_ratio: f64,
}

impl Inventory {
    /// `(total - reserved) * allocation_ratio`, Placement's capacity.
    pub fn capacity(&self) -> f64 {
        (self.total - self.reserved) as f64 * self.allocation_ratio
    }

    /// Placement's `_capacity_check_clause` for `amount` more on `used`.
    pub fn fits(&self, used: i64, amount: i64) -> bool {
        (used + amount) as f64 <= self.capacity() && 1 <= amount && amount <= self.total
    }
}

/// What a compute node reports beyond its NUMA topology (the replay
/// fleet's optional `compute` object).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeNode {
    pub hypervisor_version: i64,
    pub disk_gb: i64,
    pub disabled: bool,
    pub forced_down: bool,
    pub failed_builds: i64,
}

impl Default for ComputeNode {
    fn default() -> Self {
        ComputeNode {
            hypervisor_version: 10_000_000,
            disk_gb: 0,
            disabled: false,
            forced_down: false,
            failed_builds: 0,
        }
    }
}

/// A host as Nova's scheduler sees it: its Placement provider and its
/// ComputeNode record.
#[derive(Debug, Clone, PartialEq)]
pub struct NovaHost {
    /// Inventories by class (`None`: the provider has none of that class).
    pub inventory: [Option<Inventory>; 4],
    /// Placement usage by class.
    pub used: [i64; 4],
    pub hyperthreading: bool,
    pub compute: ComputeNode,
    /// ComputeNode: shared CPUs, memory, usage as the resource tracker keeps it.
    pub vcpus: i64,
    pub memory_mb: i64,
    pub vcpus_used: i64,
    pub memory_mb_used: i64,
    pub local_gb_used: i64,
    pub num_instances: i64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    /// Free PCI devices (all pools).
    pub free_pci: i64,
    /// The most free dedicated CPUs of one NUMA cell (the fit's first check
    /// for pinned guests; kept by the simulator from the fit's state).
    pub cell_pcpus_free: i64,
    /// The most free memory (MB) in one pool of large pages of one cell.
    pub cell_hugepages_free_mb: i64,
    /// The most memory (MB) a floating guest cell may still take on one
    /// cell at the RAM allocation ratio (`memory * ratio - usage`, the fit's
    /// last check of a floating cell).
    pub cell_memory_free_mb: i64,
    /// The most memory (MB) a pinned guest cell may take in one cell's
    /// smallest pages (pinned guests get no overcommit).
    pub cell_pinned_memory_free_mb: i64,
}

impl NovaHost {
    /// The provider and record of a host with `topo` (its usage counted as
    /// instances that never leave), as the libvirt driver and the
    /// resource tracker report them.
    pub fn new(
        topo: &HostTopology,
        compute: ComputeNode,
        config: &SchedulerConfig,
        cpu_ratio: f64,
        ram_ratio: f64,
    ) -> NovaHost {
        let shared: i64 = topo.cells.iter().map(|c| c.cpuset().len() as i64).sum();
        let dedicated: i64 = topo.cells.iter().map(|c| c.pcpuset().len() as i64).sum();
        // A `vcpu_pin_set`-style host (every cell's CPUs both shared and
        // dedicated) reports all of them as VCPU and no PCPU.
        let legacy = !topo.cells.is_empty()
            && topo
                .cells
                .iter()
                .all(|c| sorted(c.cpuset()) == sorted(c.pcpuset()));
        let pcpus = if legacy { 0 } else { dedicated };
        let memory_mb: i64 = topo.cells.iter().map(|c| c.memory_mb).sum();
        let init_cpu: i64 = topo.cells.iter().map(|c| c.cpu_usage).sum();
        let init_pinned: i64 = topo.cells.iter().map(|c| c.pinned_cpus.len() as i64).sum();
        let init_mem: i64 = topo.cells.iter().map(|c| c.memory_usage_mb).sum();
        let inv = |total: i64, reserved: i64, ratio: f64| {
            (total > 0).then_some(Inventory {
                total,
                reserved,
                allocation_ratio: ratio,
            })
        };
        let inventory = [
            inv(shared, config.reserved_host_cpus, cpu_ratio),
            inv(pcpus, 0, 1.0),
            inv(memory_mb, config.reserved_host_memory_mb, ram_ratio),
            inv(
                compute.disk_gb,
                (config.reserved_host_disk_mb + 1023).div_euclid(1024),
                config.disk_allocation_ratio,
            ),
        ];
        let mut used = [0; 4];
        for (class, n) in [(VCPU, init_cpu), (PCPU, init_pinned), (MEMORY_MB, init_mem)] {
            if inventory[class].is_some() {
                used[class] += n;
            }
        }
        NovaHost {
            inventory,
            used,
            hyperthreading: topo
                .cells
                .iter()
                .any(|c| c.siblings().iter().any(|s| s.len() > 1)),
            compute,
            vcpus: shared,
            memory_mb,
            vcpus_used: config.reserved_host_cpus + init_cpu + init_pinned,
            memory_mb_used: config.reserved_host_memory_mb + init_mem,
            // The tracker's integer field truncates `reserved_host_disk_mb / 1024`.
            local_gb_used: config.reserved_host_disk_mb / 1024,
            num_instances: 0,
            cpu_allocation_ratio: cpu_ratio,
            ram_allocation_ratio: ram_ratio,
            free_pci: 0,
            cell_pcpus_free: cell_pcpus_free(topo),
            cell_hugepages_free_mb: cell_hugepages_free_mb(topo),
            cell_memory_free_mb: cell_memory_free_mb(topo, ram_ratio),
            cell_pinned_memory_free_mb: cell_pinned_memory_free_mb(topo),
        }
    }

    /// Whether the provider is a candidate for `request` (traits and capacity).
    pub fn candidate(&self, request: &Amounts) -> bool {
        if request.needs_hyperthreading == Some(!self.hyperthreading) {
            return false;
        }
        if request.unsatisfiable_trait || self.compute.disabled {
            return false;
        }
        request.amounts.iter().enumerate().all(|(class, &amount)| {
            amount == 0
                || self.inventory[class].is_some_and(|inv| inv.fits(self.used[class], amount))
        })
    }

    /// Room left in `class` (capacity minus usage; -inf without inventory).
    pub fn room(&self, class: usize) -> f64 {
        self.inventory[class].map_or(f64::NEG_INFINITY, |inv| {
            inv.capacity() - self.used[class] as f64
        })
    }

    /// The RAM weigher's raw weight: `free_ram_mb`.
    pub fn free_ram_mb(&self) -> i64 {
        self.memory_mb - self.memory_mb_used
    }

    /// The CPU weigher's raw weight: `vcpus * cpu_allocation_ratio - vcpus_used`.
    pub fn free_vcpus(&self) -> f64 {
        self.vcpus as f64 * self.cpu_allocation_ratio - self.vcpus_used as f64
    }

    /// The disk weigher's raw weight: `free_disk_gb * 1024`.
    pub fn free_disk_mb(&self) -> i64 {
        (self.compute.disk_gb - self.local_gb_used) * 1024
    }

    /// A claim (`sign` 1) or its release (-1): Placement's allocation and
    /// the resource tracker's usage (every flavor vCPU, dedicated or not).
    pub fn apply(&mut self, alloc: &[i64; 4], guest: &GuestUsage, devices: i64, sign: i64) {
        self.free_pci -= sign * devices;
        for (u, a) in self.used.iter_mut().zip(alloc) {
            *u += sign * a;
        }
        self.memory_mb_used += sign * guest.memory_mb;
        self.vcpus_used += sign * guest.vcpus;
        self.local_gb_used += sign * (guest.root_gb + guest.ephemeral_gb);
        if guest.swap_mb != 0 {
            // An integer field: Nova's `+= swap / 1024` truncates the sum.
            self.local_gb_used =
                (self.local_gb_used as f64 + (sign * guest.swap_mb) as f64 / 1024.0) as i64;
        }
        self.num_instances += sign;
    }
}

/// What the resource tracker counts for one guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestUsage {
    pub vcpus: i64,
    pub memory_mb: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub swap_mb: i64,
}

/// One query's amounts per class and its trait constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amounts {
    pub amounts: [i64; 4],
    /// `Some(true)`: requires `HW_CPU_HYPERTHREADING`; `Some(false)`: forbids it.
    pub needs_hyperthreading: Option<bool>,
    /// A required trait no simulated host reports
    /// (`COMPUTE_SOCKET_PCI_NUMA_AFFINITY` for the `socket` PCI policy).
    pub unsatisfiable_trait: bool,
}

/// What the scheduler asks Placement for one guest: the query with
/// pinning translated (dedicated vCPUs as PCPU) and, for guests asking for
/// pinning, the fallback query with VCPU instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceRequest {
    pub primary: Amounts,
    pub fallback: Option<Amounts>,
    pub usage: GuestUsage,
}

impl ResourceRequest {
    /// `resources_from_request_spec` for a guest: `topology` is Nova's NUMA
    /// request for it (`None` for a guest without one).
    pub fn new(
        usage: GuestUsage,
        topology: Option<&GuestTopology>,
        socket_pci_policy: bool,
        config: &SchedulerConfig,
    ) -> ResourceRequest {
        let disk = usage.ephemeral_gb + (usage.swap_mb + 1023).div_euclid(1024) + usage.root_gb;
        let mut untranslated = [0; 4];
        untranslated[VCPU] = usage.vcpus;
        untranslated[MEMORY_MB] = usage.memory_mb;
        untranslated[DISK_GB] = disk;
        let base = Amounts {
            amounts: untranslated,
            needs_hyperthreading: None,
            unsatisfiable_trait: socket_pci_policy,
        };
        let cell = topology.and_then(|t| t.cells.first());
        let policy = cell.and_then(|c| c.cpu_policy);
        let thread = cell.and_then(|c| c.cpu_thread_policy);
        let isolate = topology.is_some_and(|t| t.emulator_threads_isolated());
        let mut primary = base;
        match policy {
            Some(CpuPolicy::Dedicated) => {
                primary.amounts[VCPU] = 0;
                primary.amounts[PCPU] = usage.vcpus + i64::from(isolate);
            }
            Some(CpuPolicy::Mixed) => {
                let pinned: i64 = topology
                    .map(|t| t.cells.iter().map(|c| c.pcpuset.len() as i64).sum())
                    .unwrap_or(0);
                primary.amounts[VCPU] = usage.vcpus - pinned;
                primary.amounts[PCPU] = pinned + i64::from(isolate);
            }
            _ => {}
        }
        primary.needs_hyperthreading = match thread {
            Some(ThreadPolicy::Isolate) => Some(false),
            Some(ThreadPolicy::Require) => Some(true),
            _ => None,
        };
        let fallback = (policy == Some(CpuPolicy::Dedicated)
            && !config.disable_fallback_pcpu_query)
            .then_some(base);
        ResourceRequest {
            primary,
            fallback,
            usage,
        }
    }

    /// The allocation Placement would record on `host` (the first query
    /// the host is a candidate of), or `None`.
    pub fn allocation(&self, host: &NovaHost) -> Option<[i64; 4]> {
        if host.candidate(&self.primary) {
            return Some(self.primary.amounts);
        }
        self.fallback
            .filter(|f| host.candidate(f))
            .map(|f| f.amounts)
    }
}

fn sorted(set: &crate::fit::pyset::PySet) -> Vec<u32> {
    let mut v = set.to_vec();
    v.sort_unstable();
    v
}

/// The most free dedicated CPUs of one cell of `topo`.
pub fn cell_pcpus_free(topo: &HostTopology) -> i64 {
    topo.cells
        .iter()
        .map(|c| c.avail_pcpus() as i64)
        .max()
        .unwrap_or(0)
}

/// The most free memory (MB) in one pool of large pages of one cell of `topo`.
pub fn cell_hugepages_free_mb(topo: &HostTopology) -> i64 {
    topo.cells
        .iter()
        .flat_map(|c| c.mempages.iter())
        .filter(|p| p.size_kb > 4)
        .map(|p| p.free() * p.size_kb / 1024)
        .max()
        .unwrap_or(0)
}

/// The most memory (MB) a floating guest cell may still take on one cell
/// of `topo` at RAM allocation ratio `ratio` (rounded down).
pub fn cell_memory_free_mb(topo: &HostTopology, ratio: f64) -> i64 {
    topo.cells
        .iter()
        .map(|c| (c.memory_mb as f64 * ratio - c.memory_usage_mb as f64).floor() as i64)
        .max()
        .unwrap_or(0)
}

/// The most memory (MB) a pinned guest cell may take on one cell of
/// `topo`: free memory in its smallest pages, or its free memory without
/// page pools (the fit's checks for pinned small-page cells).
pub fn cell_pinned_memory_free_mb(topo: &HostTopology) -> i64 {
    topo.cells
        .iter()
        .map(|c| match c.smallest_pagesize() {
            Some(size) => c
                .mempages
                .iter()
                .find(|p| p.size_kb == size)
                .map_or(0, |p| p.free() * p.size_kb / 1024),
            None => c.avail_memory(),
        })
        .max()
        .unwrap_or(0)
}

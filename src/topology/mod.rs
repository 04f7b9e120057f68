//! The host model: NUMA cells, CPUs, memory, page pools, PCI devices, the SLIT
//! distance matrix and Nova-style host configuration.
//!
//! Everything here is plain data built by the importers (`import`), the
//! synthetic generator (`synth`) or the presets, and consumed by the fit
//! engine and the simulator. No I/O happens in this module tree: importers
//! take the text (or, for sysfs, a map of path to content) and return values.

pub mod cpuset;
pub mod import;
pub mod presets;
pub mod render;
pub mod synth;
pub mod wire;

use std::collections::BTreeSet;

pub use cpuset::{format_cpu_list, parse_cpu_list};

/// A logical CPU (a hardware thread, hwloc's PU) and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub id: u32,
    /// Physical package (socket) id, when the source gives it.
    pub socket: Option<u32>,
    /// Core id within the package, when the source gives it.
    pub core: Option<u32>,
    /// Thread siblings including this CPU, in the order the source lists them.
    pub siblings: Vec<u32>,
}

/// One pool of memory pages of one size on one cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePool {
    pub size_kb: u64,
    pub total: u64,
    /// Free pages at capture time; `None` when the source does not say.
    pub free: Option<u64>,
}

/// A NUMA cell (Linux node). CPU-less cells (CXL, HBM, GPU memory) have no
/// CPUs; memory-less cells have `memory_kb == 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The node id as the OS numbers it; ids may be sparse (0,1,2,33,...).
    pub id: u32,
    pub cpus: Vec<Cpu>,
    pub memory_kb: u64,
    pub free_kb: Option<u64>,
    pub pages: Vec<PagePool>,
}

impl Cell {
    pub fn memory_mb(&self) -> u64 {
        self.memory_kb / 1024
    }
    pub fn cpu_ids(&self) -> Vec<u32> {
        self.cpus.iter().map(|c| c.id).collect()
    }
    pub fn is_cpuless(&self) -> bool {
        self.cpus.is_empty()
    }
}

/// A PCI device (or pool of identical devices) attached to a NUMA node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    pub address: Option<String>,
    pub vendor_id: String,
    pub product_id: String,
    /// `type-PCI`, `type-PF` or `type-VF`, as Nova names them.
    pub dev_type: String,
    /// The NUMA node the device is local to; `None` if the firmware does not say.
    pub numa_node: Option<u32>,
    pub count: u32,
}

/// Where the distance matrix came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistanceSource {
    /// The source carried a SLIT (or hwloc latency) matrix.
    Firmware,
    /// The source had none: Linux's convention, 10 local and 20 remote.
    LinuxDefault,
}

/// Nova-style host configuration (nova.conf `[compute]` and `[DEFAULT]`).
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// `cpu_shared_set`: CPUs for shared (floating) guests. `None` = every
    /// CPU not in `cpu_dedicated_set`.
    pub cpu_shared_set: Option<BTreeSet<u32>>,
    /// `cpu_dedicated_set`: CPUs for pinned guests. `None` = no pinned guests.
    pub cpu_dedicated_set: Option<BTreeSet<u32>>,
    /// `reserved_host_memory_mb`, taken from the host as a whole (Nova reserves it
    /// in placement, not per cell).
    pub reserved_host_memory_mb: u64,
    /// `reserved_huge_pages`: (node, page size KiB, count).
    pub reserved_huge_pages: Vec<ReservedPages>,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedPages {
    pub node: u32,
    pub size_kb: u64,
    pub count: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        // Nova's defaults for the initial allocation ratios.
        HostConfig {
            cpu_shared_set: None,
            cpu_dedicated_set: None,
            reserved_host_memory_mb: 512,
            reserved_huge_pages: Vec::new(),
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
        }
    }
}

/// A host: cells in the order the source lists them, the distance matrix
/// indexed by cell position, and its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub cells: Vec<Cell>,
    /// `distances[i][j]`: SLIT distance from cell `i` to cell `j` (positions in
    /// `cells`, not ids). May be asymmetric.
    pub distances: Vec<Vec<u32>>,
    pub distance_source: DistanceSource,
    /// CPUs the source lists but does not attach to any cell (old sysfs dumps).
    pub unassigned_cpus: Vec<Cpu>,
    pub pci_devices: Vec<PciDevice>,
    pub config: HostConfig,
    /// Things the importer could not find and filled in or left out.
    pub warnings: Vec<String>,
}

/// Why a host value is inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("host has no NUMA cells")]
    NoCells,
    #[error("cell id {0} appears more than once")]
    DuplicateCell(u32),
    #[error("CPU {0} appears more than once")]
    DuplicateCpu(u32),
    #[error("distance matrix is {rows}x{cols} but the host has {cells} cells")]
    DistanceShape {
        rows: usize,
        cols: usize,
        cells: usize,
    },
    #[error(
        "distance from cell {from} to cell {to} is {value}; expected a value of at least 10 (10 = local)"
    )]
    DistanceValue { from: u32, to: u32, value: u32 },
    #[error("PCI device {0} is attached to node {1}, which the host does not have")]
    PciNode(String, u32),
    #[error("configured CPU {cpu} in {set} is not a CPU of this host")]
    ConfigCpu { set: &'static str, cpu: u32 },
}

impl Host {
    /// Builds a host from cells, filling in Linux's default distances when
    /// the source had none, and validates it.
    pub fn new(
        name: impl Into<String>,
        mut cells: Vec<Cell>,
        distances: Option<Vec<Vec<u32>>>,
    ) -> Result<Host, ModelError> {
        for cell in &mut cells {
            cell.cpus.sort_by_key(|c| c.id);
        }
        let (distances, distance_source, warnings) = match distances {
            Some(d) => (d, DistanceSource::Firmware, Vec::new()),
            None => (
                default_distances(cells.len()),
                DistanceSource::LinuxDefault,
                vec![
                    "no distance table in the source: using Linux's default (10 local, 20 remote)"
                        .to_string(),
                ],
            ),
        };
        let host = Host {
            name: name.into(),
            cells,
            distances,
            distance_source,
            unassigned_cpus: Vec::new(),
            pci_devices: Vec::new(),
            config: HostConfig::default(),
            warnings,
        };
        host.validate()?;
        Ok(host)
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.cells.is_empty() {
            return Err(ModelError::NoCells);
        }
        let mut ids = BTreeSet::new();
        for cell in &self.cells {
            if !ids.insert(cell.id) {
                return Err(ModelError::DuplicateCell(cell.id));
            }
        }
        let mut cpus = BTreeSet::new();
        for cpu in self.all_cpus() {
            if !cpus.insert(cpu.id) {
                return Err(ModelError::DuplicateCpu(cpu.id));
            }
        }
        let n = self.cells.len();
        if self.distances.len() != n {
            return Err(ModelError::DistanceShape {
                rows: self.distances.len(),
                cols: self.distances.first().map_or(0, Vec::len),
                cells: n,
            });
        }
        for (i, row) in self.distances.iter().enumerate() {
            if row.len() != n {
                return Err(ModelError::DistanceShape {
                    rows: n,
                    cols: row.len(),
                    cells: n,
                });
            }
            for (j, &value) in row.iter().enumerate() {
                if value < 10 {
                    return Err(ModelError::DistanceValue {
                        from: self.cells[i].id,
                        to: self.cells[j].id,
                        value,
                    });
                }
            }
        }
        for dev in &self.pci_devices {
            if let Some(node) = dev.numa_node
                && !ids.contains(&node)
            {
                let name = dev
                    .address
                    .clone()
                    .unwrap_or_else(|| format!("{}:{}", dev.vendor_id, dev.product_id));
                return Err(ModelError::PciNode(name, node));
            }
        }
        for (set, members) in [
            ("cpu_shared_set", &self.config.cpu_shared_set),
            ("cpu_dedicated_set", &self.config.cpu_dedicated_set),
        ] {
            if let Some(members) = members
                && let Some(&cpu) = members.iter().find(|c| !cpus.contains(c))
            {
                return Err(ModelError::ConfigCpu { set, cpu });
            }
        }
        Ok(())
    }

    /// CPUs attached to cells, in cell order.
    pub fn all_cpus(&self) -> impl Iterator<Item = &Cpu> {
        self.cells
            .iter()
            .flat_map(|c| c.cpus.iter())
            .chain(self.unassigned_cpus.iter())
    }

    pub fn cpu_count(&self) -> usize {
        self.all_cpus().count()
    }

    pub fn memory_kb(&self) -> u64 {
        self.cells.iter().map(|c| c.memory_kb).sum()
    }

    pub fn cell_index(&self, id: u32) -> Option<usize> {
        self.cells.iter().position(|c| c.id == id)
    }

    /// Distance between two cells given by id.
    pub fn distance(&self, from: u32, to: u32) -> Option<u32> {
        Some(self.distances[self.cell_index(from)?][self.cell_index(to)?])
    }

    /// Distinct sockets, counting CPUs without a socket id as unknown.
    pub fn sockets(&self) -> BTreeSet<u32> {
        self.all_cpus().filter_map(|c| c.socket).collect()
    }

    /// Distinct (socket, core) pairs: physical cores.
    pub fn cores(&self) -> BTreeSet<(Option<u32>, u32)> {
        self.all_cpus()
            .filter_map(|c| c.core.map(|core| (c.socket, core)))
            .collect()
    }

    /// Largest number of threads in a sibling group (1 without SMT).
    pub fn threads_per_core(&self) -> usize {
        self.all_cpus()
            .map(|c| c.siblings.len().max(1))
            .max()
            .unwrap_or(1)
    }

    pub fn distinct_distances(&self) -> BTreeSet<u32> {
        self.distances.iter().flatten().copied().collect()
    }
}

/// Linux's convention when firmware gives no SLIT: 10 on the diagonal, 20 off.
pub fn default_distances(n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| (0..n).map(|j| if i == j { 10 } else { 20 }).collect())
        .collect()
}

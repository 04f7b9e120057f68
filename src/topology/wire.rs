//! The canonical JSON form of a host (`topology show --format json`,
//! `topology convert`), and reading it back.

use super::{Cell, Cpu, DistanceSource, Host, HostConfig, PagePool, PciDevice, ReservedPages};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Serialize, Deserialize)]
pub struct HostDoc {
    pub name: String,
    /// `firmware` or `linux-default` (10 local / 20 remote, the source had none).
    pub distance_source: String,
    /// Derived counts, for reading; ignored on input.
    #[serde(default, skip_deserializing)]
    pub summary: Option<Summary>,
    pub cells: Vec<CellDoc>,
    /// Socket / core / siblings of every CPU.
    #[serde(default)]
    pub cpu_topology: Vec<CpuDoc>,
    #[serde(default)]
    pub unassigned_cpus: Vec<u32>,
    #[serde(default)]
    pub pci_devices: Vec<PciDoc>,
    #[serde(default)]
    pub config: Option<ConfigDoc>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub sockets: usize,
    pub cores: usize,
    pub cpus: usize,
    pub threads_per_core: usize,
    pub memory_mb: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellDoc {
    pub id: u32,
    pub cpus: Vec<u32>,
    pub memory_mb: u64,
    /// Exact size when the source had sub-MiB precision; wins over `memory_mb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_mb: Option<u64>,
    #[serde(default)]
    pub pages: Vec<PageDoc>,
    pub distances: DistanceRow,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageDoc {
    pub size_kb: u64,
    pub total: u64,
    pub free: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuDoc {
    pub id: u32,
    pub socket: Option<u32>,
    pub core: Option<u32>,
    pub siblings: Vec<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciDoc {
    #[serde(default)]
    pub address: Option<String>,
    pub vendor_id: String,
    pub product_id: String,
    #[serde(default = "default_dev_type")]
    pub dev_type: String,
    pub numa_node: Option<u32>,
    #[serde(default = "one")]
    pub count: u32,
}

fn default_dev_type() -> String {
    "type-PCI".into()
}
fn one() -> u32 {
    1
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDoc {
    #[serde(default)]
    pub cpu_shared_set: Option<Vec<u32>>,
    #[serde(default)]
    pub cpu_dedicated_set: Option<Vec<u32>>,
    #[serde(default)]
    pub reserved_host_memory_mb: u64,
    #[serde(default)]
    pub reserved_huge_pages: Vec<ReservedPagesDoc>,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservedPagesDoc {
    pub node: u32,
    pub size_kb: u64,
    pub count: u64,
}

/// `{"<cell id>": distance, ...}` in cell order.
#[derive(Debug, Default)]
pub struct DistanceRow(pub Vec<(u32, u32)>);

impl Serialize for DistanceRow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (id, v) in &self.0 {
            map.serialize_entry(&id.to_string(), v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for DistanceRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DistanceRow;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from cell id (as a string) to a distance")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<DistanceRow, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, u32>()? {
                    let id = k.parse::<u32>().map_err(|_| {
                        serde::de::Error::custom(format!("distance key `{k}` is not a cell id"))
                    })?;
                    out.push((id, v));
                }
                Ok(DistanceRow(out))
            }
        }
        d.deserialize_map(V)
    }
}

pub fn to_doc(host: &Host) -> HostDoc {
    let ids: Vec<u32> = host.cells.iter().map(|c| c.id).collect();
    HostDoc {
        name: host.name.clone(),
        distance_source: match host.distance_source {
            DistanceSource::Firmware => "firmware",
            DistanceSource::LinuxDefault => "linux-default",
        }
        .into(),
        summary: Some(Summary {
            nodes: host.cells.len(),
            sockets: host.sockets().len(),
            cores: host.cores().len(),
            cpus: host.cpu_count(),
            threads_per_core: host.threads_per_core(),
            memory_mb: host.memory_kb() / 1024,
        }),
        cells: host
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| CellDoc {
                id: c.id,
                cpus: c.cpu_ids(),
                memory_mb: c.memory_mb(),
                memory_kb: (c.memory_kb % 1024 != 0).then_some(c.memory_kb),
                free_mb: c.free_kb.map(|f| f / 1024),
                pages: c
                    .pages
                    .iter()
                    .map(|p| PageDoc {
                        size_kb: p.size_kb,
                        total: p.total,
                        free: p.free,
                    })
                    .collect(),
                distances: DistanceRow(
                    ids.iter()
                        .copied()
                        .zip(host.distances[i].iter().copied())
                        .collect(),
                ),
            })
            .collect(),
        cpu_topology: host
            .all_cpus()
            .map(|c| CpuDoc {
                id: c.id,
                socket: c.socket,
                core: c.core,
                siblings: c.siblings.clone(),
            })
            .collect(),
        unassigned_cpus: host.unassigned_cpus.iter().map(|c| c.id).collect(),
        pci_devices: host
            .pci_devices
            .iter()
            .map(|p| PciDoc {
                address: p.address.clone(),
                vendor_id: p.vendor_id.clone(),
                product_id: p.product_id.clone(),
                dev_type: p.dev_type.clone(),
                numa_node: p.numa_node,
                count: p.count,
            })
            .collect(),
        config: Some(config_doc(&host.config)),
        warnings: host.warnings.clone(),
    }
}

pub fn config_doc(c: &HostConfig) -> ConfigDoc {
    ConfigDoc {
        cpu_shared_set: c
            .cpu_shared_set
            .as_ref()
            .map(|s| s.iter().copied().collect()),
        cpu_dedicated_set: c
            .cpu_dedicated_set
            .as_ref()
            .map(|s| s.iter().copied().collect()),
        reserved_host_memory_mb: c.reserved_host_memory_mb,
        reserved_huge_pages: c
            .reserved_huge_pages
            .iter()
            .map(|r| ReservedPagesDoc {
                node: r.node,
                size_kb: r.size_kb,
                count: r.count,
            })
            .collect(),
        cpu_allocation_ratio: c.cpu_allocation_ratio,
        ram_allocation_ratio: c.ram_allocation_ratio,
    }
}

pub fn config_from_doc(d: &ConfigDoc) -> HostConfig {
    HostConfig {
        cpu_shared_set: d
            .cpu_shared_set
            .as_ref()
            .map(|v| v.iter().copied().collect()),
        cpu_dedicated_set: d
            .cpu_dedicated_set
            .as_ref()
            .map(|v| v.iter().copied().collect()),
        reserved_host_memory_mb: d.reserved_host_memory_mb,
        reserved_huge_pages: d
            .reserved_huge_pages
            .iter()
            .map(|r| ReservedPages {
                node: r.node,
                size_kb: r.size_kb,
                count: r.count,
            })
            .collect(),
        cpu_allocation_ratio: d.cpu_allocation_ratio,
        ram_allocation_ratio: d.ram_allocation_ratio,
    }
}

/// Error reading the JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub line: Option<usize>,
    pub message: String,
}

pub fn to_json(host: &Host) -> String {
    serde_json::to_string_pretty(&to_doc(host)).expect("host documents always serialize")
}

pub fn from_json(text: &str) -> Result<Host, WireError> {
    let doc: HostDoc = serde_json::from_str(text).map_err(|e| WireError {
        line: Some(e.line()),
        message: e.to_string(),
    })?;
    from_doc(doc).map_err(|message| WireError {
        line: None,
        message,
    })
}

/// The most memory one cell may have: 2^50 KiB (1 EiB), beyond any machine.
pub const MAX_CELL_MEMORY_KB: u64 = 1 << 50;

fn too_large(cell: u32, key: &str) -> String {
    format!("cell {cell}: {key} is beyond {MAX_CELL_MEMORY_KB} KiB (1 EiB); expected a real size")
}

pub fn from_doc(doc: HostDoc) -> Result<Host, String> {
    let ids: Vec<u32> = doc.cells.iter().map(|c| c.id).collect();
    let mut topo: std::collections::BTreeMap<u32, CpuDoc> =
        doc.cpu_topology.into_iter().map(|c| (c.id, c)).collect();
    let mut take_cpu = |id: u32| match topo.remove(&id) {
        Some(c) => Cpu {
            id,
            socket: c.socket,
            core: c.core,
            siblings: c.siblings,
        },
        None => Cpu {
            id,
            socket: None,
            core: None,
            siblings: vec![id],
        },
    };
    let mut distances = Vec::new();
    let mut cells = Vec::new();
    for c in doc.cells {
        let mut row = vec![0; ids.len()];
        let mut seen = BTreeSet::new();
        for (to, v) in &c.distances.0 {
            let j = ids.iter().position(|x| x == to).ok_or_else(|| {
                format!("cell {}: distance to cell {to}, which does not exist", c.id)
            })?;
            seen.insert(j);
            row[j] = *v;
        }
        if seen.len() != ids.len() {
            return Err(format!(
                "cell {}: distances name {} cells, expected one per cell ({})",
                c.id,
                seen.len(),
                ids.len()
            ));
        }
        distances.push(row);
        // Sizes beyond any machine would overflow the KiB and page
        // arithmetic downstream: refused here, by key.
        let kib = |key: &str, mb: u64| {
            mb.checked_mul(1024)
                .filter(|&kb| kb <= MAX_CELL_MEMORY_KB)
                .ok_or_else(|| too_large(c.id, key))
        };
        let memory_kb = match c.memory_kb {
            Some(kb) if kb <= MAX_CELL_MEMORY_KB => kb,
            Some(_) => return Err(too_large(c.id, "memory_kb")),
            None => kib("memory_mb", c.memory_mb)?,
        };
        let free_kb = c.free_mb.map(|f| kib("free_mb", f)).transpose()?;
        for p in &c.pages {
            let pool_kb = p.size_kb.checked_mul(p.total);
            if pool_kb.is_none_or(|kb| kb > MAX_CELL_MEMORY_KB) {
                return Err(too_large(
                    c.id,
                    &format!("pages[size_kb={}].total", p.size_kb),
                ));
            }
        }
        cells.push(Cell {
            id: c.id,
            cpus: c.cpus.iter().map(|&id| take_cpu(id)).collect(),
            memory_kb,
            free_kb,
            pages: c
                .pages
                .into_iter()
                .map(|p| PagePool {
                    size_kb: p.size_kb,
                    total: p.total,
                    free: p.free,
                })
                .collect(),
        });
    }
    let source = match doc.distance_source.as_str() {
        "firmware" => DistanceSource::Firmware,
        "linux-default" => DistanceSource::LinuxDefault,
        other => {
            return Err(format!(
                "distance_source `{other}`: expected `firmware` or `linux-default`"
            ));
        }
    };
    let unassigned = doc.unassigned_cpus.iter().map(|&id| take_cpu(id)).collect();
    let config = doc.config.as_ref().map(config_from_doc).unwrap_or_default();
    let host = Host {
        name: doc.name,
        cells,
        distances,
        distance_source: source,
        unassigned_cpus: unassigned,
        pci_devices: doc
            .pci_devices
            .into_iter()
            .map(|p| PciDevice {
                address: p.address,
                vendor_id: p.vendor_id,
                product_id: p.product_id,
                dev_type: p.dev_type,
                numa_node: p.numa_node,
                count: p.count,
            })
            .collect(),
        config,
        warnings: doc.warnings,
    };
    host.validate().map_err(|e| e.to_string())?;
    Ok(host)
}

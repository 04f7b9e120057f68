//! The fleet: hosts with their fit-engine state and host-level counters.

use crate::fit::case::parse_host;
use crate::fit::{HostTopology, MemPages};
use crate::sim::scheduler::placement::ComputeNode;
use crate::topology::Host;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// What the cost model needs to know about a host model; shared by every
/// host built from the same model.
#[derive(Debug, Clone, PartialEq)]
pub struct HostModel {
    /// Cell ids in host order.
    pub cell_ids: Vec<i64>,
    /// `distances[i][j]` between cells by position.
    pub distances: Vec<Vec<u32>>,
    /// CPUs per cell (shared and dedicated), for where floating vCPUs run.
    pub cpus_per_cell: Vec<u32>,
}

impl HostModel {
    pub fn cell_index(&self, id: i64) -> Option<usize> {
        self.cell_ids.iter().position(|&c| c == id)
    }

    /// A model with Linux's default distances, for hosts given without a SLIT.
    pub fn from_topology(topo: &HostTopology, distances: Option<Vec<Vec<u32>>>) -> HostModel {
        let n = topo.cells.len();
        HostModel {
            cell_ids: topo.cells.iter().map(|c| c.id).collect(),
            distances: distances.unwrap_or_else(|| crate::topology::default_distances(n)),
            cpus_per_cell: topo
                .cells
                .iter()
                .map(|c| c.physical_cpus() as u32)
                .collect(),
        }
    }
}

/// One host of the fleet.
#[derive(Debug, Clone)]
pub struct SimHost {
    pub name: String,
    pub topo: HostTopology,
    pub model: Arc<HostModel>,
    /// Host-level (placement-like) inventory: shared CPUs and memory of all cells.
    pub total_cpus: i64,
    pub total_mem: i64,
    pub vcpu_used: i64,
    pub mem_used: i64,
    /// Cell memory and CPU usage when the run started (for the accounting invariant).
    pub initial_cell_mem: i64,
    pub initial_cell_cpu: i64,
    /// This host's overcommit limits; `None`: the simulation's.
    pub limits: Option<crate::fit::Limits>,
    /// What its compute node reports beyond the topology (Nova's scheduler reads it).
    pub compute: crate::sim::scheduler::placement::ComputeNode,
    /// Its PCI device pools with their free counts (claims take devices).
    pub pci: Vec<crate::fit::host::PciPool>,
}

impl SimHost {
    pub fn new(name: String, topo: HostTopology, model: Arc<HostModel>) -> SimHost {
        let total_cpus = topo.cells.iter().map(|c| c.cpuset().len() as i64).sum();
        let total_mem = topo.cells.iter().map(|c| c.memory_mb).sum();
        let vcpu_used = topo.cells.iter().map(|c| c.cpu_usage).sum();
        let mem_used: i64 = topo.cells.iter().map(|c| c.memory_usage_mb).sum();
        SimHost {
            name,
            topo,
            model,
            total_cpus,
            total_mem,
            vcpu_used,
            mem_used,
            initial_cell_mem: mem_used,
            initial_cell_cpu: vcpu_used,
            limits: None,
            compute: Default::default(),
            pci: Vec::new(),
        }
    }

    /// Free RAM as Nova's RAM weigher sees it.
    pub fn free_ram(&self) -> i64 {
        self.total_mem - self.mem_used
    }
}

/// Error in a fleet description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FleetError(pub String);

/// Reads the replay fleet format of tests/data/replay/REPLAY.md: `{"hosts": [ENTRY, ...]}`,
/// each ENTRY `{"name": "h0", "host": HOST}` or `{"model": HOST, "count": N,
/// "prefix": "h"}`; a bare `{"model": HOST, "count": N}` is the whole fleet.
pub fn fleet_from_json(text: &str) -> Result<Vec<SimHost>, FleetError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| FleetError(format!("line {}: {e}", e.line())))?;
    let entries: Vec<Value> = match v.get("hosts") {
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(FleetError("`hosts` must be a list".into())),
        None if v.get("model").is_some() => vec![v.clone()],
        None => {
            return Err(FleetError(
                "expected {\"hosts\": [...]} or {\"model\": HOST, \"count\": N}".into(),
            ));
        }
    };
    let mut out: Vec<SimHost> = Vec::new();
    for (k, e) in entries.iter().enumerate() {
        if !e.is_object() {
            return Err(FleetError(format!("hosts[{k}] is not an object")));
        }
        if let Some(model) = e.get("model") {
            let count = e.get("count").and_then(Value::as_u64).ok_or_else(|| {
                FleetError(format!("hosts[{k}].count must be a non-negative integer"))
            })?;
            let prefix = e
                .get("prefix")
                .map(|p| {
                    p.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| p.to_string())
                })
                .unwrap_or_else(|| "h".into());
            let topo = parse_host(model)
                .map_err(|err| FleetError(format!("hosts[{k}].model: {}", err.message)))?;
            let shared = Arc::new(HostModel::from_topology(&topo, distances_of(model)));
            let compute =
                compute_of(model).map_err(|m| FleetError(format!("hosts[{k}].model.{m}")))?;
            for _ in 0..count {
                let name = format!("{prefix}{}", out.len());
                let mut h = SimHost::new(name, topo.clone(), shared.clone());
                h.compute = compute;
                h.pci = pools_of(model).map_err(|m| FleetError(format!("hosts[{k}].model.{m}")))?;
                out.push(h);
            }
        } else if let Some(host) = e.get("host") {
            let name = match e.get("name") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => format!("h{}", out.len()),
            };
            let topo = parse_host(host)
                .map_err(|err| FleetError(format!("hosts[{k}].host: {}", err.message)))?;
            let model = Arc::new(HostModel::from_topology(&topo, distances_of(host)));
            let compute =
                compute_of(host).map_err(|m| FleetError(format!("hosts[{k}].host.{m}")))?;
            let mut h = SimHost::new(name, topo, model);
            h.compute = compute;
            h.pci = pools_of(host).map_err(|m| FleetError(format!("hosts[{k}].host.{m}")))?;
            out.push(h);
        } else {
            return Err(FleetError(format!(
                "hosts[{k}] needs \"host\" (with \"name\") or \"model\" and \"count\""
            )));
        }
    }
    let mut names = BTreeSet::new();
    if let Some(dup) = out.iter().find(|h| !names.insert(h.name.clone())) {
        return Err(FleetError(format!("duplicate host name `{}`", dup.name)));
    }
    if out.is_empty() {
        return Err(FleetError("no hosts".into()));
    }
    Ok(out)
}

/// A host object's optional `pci_pools` (the fit-case format), checked:
/// counts from 0 to 2^20 and NUMA nodes among the host's cells.
fn pools_of(host: &Value) -> Result<Vec<crate::fit::host::PciPool>, String> {
    let Some(v) = host.get("pci_pools").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    if !v.is_array() {
        return Err("pci_pools: expected a list".into());
    }
    let pools =
        crate::fit::case::parse_pools(v).map_err(|e| format!("pci_pools: {}", e.message))?;
    let cells: Vec<i64> = host
        .get("cells")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("id").and_then(Value::as_i64))
                .collect()
        })
        .unwrap_or_default();
    for (i, p) in pools.iter().enumerate() {
        if !(0..=1 << 20).contains(&p.count) {
            return Err(format!(
                "pci_pools[{i}].count = {}: expected 0 to 2^20",
                p.count
            ));
        }
        if let Some(n) = p.numa_node
            && !cells.contains(&n)
        {
            return Err(format!(
                "pci_pools[{i}].numa_node = {n}: the host has no such cell"
            ));
        }
    }
    Ok(pools)
}

/// A host object's optional `compute` record (what Nova's scheduler reads
/// beyond the topology); the error names the key.
fn compute_of(host: &Value) -> Result<ComputeNode, String> {
    let mut c = ComputeNode::default();
    let Some(v) = host.get("compute").filter(|v| !v.is_null()) else {
        return Ok(c);
    };
    let Some(obj) = v.as_object() else {
        return Err("compute: expected an object".into());
    };
    for (key, value) in obj {
        let count = || {
            value
                .as_i64()
                .filter(|&n| (0..=crate::fit::case::MAX_CELL_MEMORY_MB).contains(&n))
                .ok_or_else(|| format!("compute.{key}: expected an integer from 0 to 2^40"))
        };
        let flag = || {
            value
                .as_bool()
                .ok_or_else(|| format!("compute.{key}: expected true or false"))
        };
        match key.as_str() {
            "hypervisor_version" => c.hypervisor_version = count()?,
            "disk_gb" => c.disk_gb = count()?,
            "failed_builds" => c.failed_builds = count()?,
            "disabled" => c.disabled = flag()?,
            "forced_down" => c.forced_down = flag()?,
            _ => {
                return Err(format!(
                    "compute.{key}: unknown key (known: disabled, disk_gb, failed_builds, forced_down, hypervisor_version)"
                ));
            }
        }
    }
    Ok(c)
}

fn distances_of(host: &Value) -> Option<Vec<Vec<u32>>> {
    let rows = host.get("distances")?.as_array()?;
    let m: Option<Vec<Vec<u32>>> = rows
        .iter()
        .map(|r| {
            r.as_array().and_then(|r| {
                r.iter()
                    .map(|x| x.as_u64().and_then(|v| u32::try_from(v).ok()))
                    .collect()
            })
        })
        .collect();
    let m = m?;
    let n = host.get("cells")?.as_array()?.len();
    (m.len() == n && m.iter().all(|r| r.len() == n)).then_some(m)
}

/// Nova's view of a host model (the libvirt driver's host NUMA topology):
/// per cell, shared CPUs = `cpu_shared_set` (all CPUs when neither set is
/// given), dedicated CPUs = `cpu_dedicated_set` (all CPUs in the legacy
/// configuration where neither is given), thread siblings, memory, and
/// page pools with `reserved_huge_pages`. A source without a small-page
/// pool gets one covering the memory not held by hugepages.
pub fn topology_for_nova(host: &Host) -> HostTopology {
    let cfg = &host.config;
    let legacy = cfg.cpu_shared_set.is_none() && cfg.cpu_dedicated_set.is_none();
    let mut cells = Vec::new();
    for cell in &host.cells {
        let ids: Vec<u32> = cell.cpu_ids();
        let shared: Vec<u32> = match (&cfg.cpu_shared_set, &cfg.cpu_dedicated_set) {
            (Some(s), _) => ids.iter().copied().filter(|c| s.contains(c)).collect(),
            (None, Some(d)) => ids.iter().copied().filter(|c| !d.contains(c)).collect(),
            (None, None) => ids.clone(),
        };
        let dedicated: Vec<u32> = match &cfg.cpu_dedicated_set {
            Some(d) => ids.iter().copied().filter(|c| d.contains(c)).collect(),
            None if legacy => ids.clone(),
            None => Vec::new(),
        };
        let mut siblings: Vec<Vec<u32>> = Vec::new();
        for cpu in &cell.cpus {
            let group: Vec<u32> = cpu
                .siblings
                .iter()
                .copied()
                .filter(|s| ids.contains(s))
                .collect();
            if !group.is_empty() && !siblings.contains(&group) {
                siblings.push(group);
            }
        }
        let mut mempages: Vec<MemPages> = cell
            .pages
            .iter()
            .map(|p| {
                let reserved = cfg
                    .reserved_huge_pages
                    .iter()
                    .filter(|r| r.node == cell.id && r.size_kb == p.size_kb)
                    .map(|r| r.count as i64)
                    .sum();
                MemPages {
                    size_kb: p.size_kb as i64,
                    total: p.total as i64,
                    used: 0,
                    reserved,
                }
            })
            .collect();
        let base_kb = 4i64;
        if !mempages.iter().any(|p| p.size_kb == base_kb) && cell.memory_kb > 0 {
            let huge_kb: i64 = mempages.iter().map(|p| p.size_kb * p.total).sum();
            let total = ((cell.memory_kb as i64 - huge_kb) / base_kb).max(0);
            mempages.insert(
                0,
                MemPages {
                    size_kb: base_kb,
                    total,
                    used: 0,
                    reserved: 0,
                },
            );
        }
        mempages.sort_by_key(|p| p.size_kb);
        let mut c = crate::fit::HostCell::from_lists(
            i64::from(cell.id),
            &shared,
            &dedicated,
            cell.memory_mb() as i64,
            0,
            0,
            &[],
            &siblings,
            mempages,
        );
        c.socket = cell.cpus.first().and_then(|cpu| cpu.socket).map(i64::from);
        cells.push(c);
    }
    HostTopology { cells }
}

/// A fleet host built from a host model (synthetic, preset or captured).
/// A captured or synthetic host as the simulator's host. Its captured PCI
/// devices are not pools: Nova tracks only devices its `device_spec`
/// names (`experiment::fleet` adds those).
pub fn sim_host_from_model(name: String, host: &Host, model: Arc<HostModel>) -> SimHost {
    SimHost::new(name, topology_for_nova(host), model)
}

/// The cost-model view of a host model.
pub fn host_model(host: &Host) -> HostModel {
    HostModel {
        cell_ids: host.cells.iter().map(|c| i64::from(c.id)).collect(),
        distances: host.distances.clone(),
        cpus_per_cell: host.cells.iter().map(|c| c.cpus.len() as u32).collect(),
    }
}

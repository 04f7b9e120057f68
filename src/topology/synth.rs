//! Synthetic hosts from a compact description (the `[fleet.hosts.synthetic]`
//! form of scenario files). CPU ids follow Linux's x86 numbering: first the
//! first thread of every core, socket by socket, then the second threads.

use super::{Cell, Cpu, Host, PagePool};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SynthSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub sockets: u32,
    #[serde(default = "one")]
    pub nodes_per_socket: u32,
    pub cores_per_node: u32,
    #[serde(default = "one")]
    pub threads_per_core: u32,
    /// Memory of each CPU node, MiB (overridden per node by `node_memory_mb`).
    pub memory_mb_per_node: u64,
    /// Optional per-node memory, MiB, in node order (CPU nodes only).
    #[serde(default)]
    pub node_memory_mb: Vec<u64>,
    /// Hugepage pools present on every CPU node.
    #[serde(default)]
    pub hugepages: Vec<HugepageSpec>,
    /// Base page size, KiB (4 on x86, 64 on some POWER/ARM kernels).
    #[serde(default = "four")]
    pub base_page_kb: u64,
    /// CPU-less memory nodes (CXL expanders, HBM, GPU memory), numbered after the CPU nodes.
    #[serde(default)]
    pub cpuless: Vec<CpulessSpec>,
    #[serde(default)]
    pub distances: DistanceSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HugepageSpec {
    pub size_kb: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CpulessSpec {
    pub memory_mb: u64,
    /// The socket the memory hangs off.
    pub socket: u32,
    /// Distance from nodes of that socket.
    pub near: u32,
    /// Distance from nodes of other sockets and other CPU-less nodes.
    pub far: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistanceSpec {
    #[serde(default = "ten")]
    pub local: u32,
    /// Between nodes of one socket (sub-NUMA clustering, NPS2/4).
    #[serde(default = "eleven")]
    pub same_socket: u32,
    #[serde(default = "twenty_one")]
    pub other_socket: u32,
    /// An explicit matrix over all nodes (CPU nodes then CPU-less), overriding the rule.
    #[serde(default)]
    pub matrix: Option<Vec<Vec<u32>>>,
}

impl Default for DistanceSpec {
    fn default() -> Self {
        DistanceSpec {
            local: 10,
            same_socket: 11,
            other_socket: 21,
            matrix: None,
        }
    }
}

fn one() -> u32 {
    1
}
fn four() -> u64 {
    4
}
fn ten() -> u32 {
    10
}
fn eleven() -> u32 {
    11
}
fn twenty_one() -> u32 {
    21
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("synthetic host: {field}: {message}")]
pub struct SynthError {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> SynthError {
    SynthError {
        field,
        message: message.into(),
    }
}

impl SynthSpec {
    pub fn build(&self) -> Result<Host, SynthError> {
        if self.sockets == 0 {
            return Err(bad("sockets", "must be at least 1"));
        }
        if self.nodes_per_socket == 0 {
            return Err(bad("nodes_per_socket", "must be at least 1"));
        }
        if self.threads_per_core == 0 {
            return Err(bad("threads_per_core", "must be at least 1"));
        }
        if self.base_page_kb == 0 {
            return Err(bad("base_page_kb", "must be positive"));
        }
        let cpu_nodes = self.sockets * self.nodes_per_socket;
        let total_nodes = cpu_nodes as usize + self.cpuless.len();
        if total_nodes > 1024 {
            return Err(bad("sockets", "more than 1024 nodes"));
        }
        let total_cores = u64::from(cpu_nodes) * u64::from(self.cores_per_node);
        if total_cores * u64::from(self.threads_per_core) > 1 << 16 {
            return Err(bad("cores_per_node", "more than 65536 CPUs"));
        }
        if !self.node_memory_mb.is_empty() && self.node_memory_mb.len() != cpu_nodes as usize {
            return Err(bad(
                "node_memory_mb",
                format!(
                    "has {} entries for {cpu_nodes} CPU nodes",
                    self.node_memory_mb.len()
                ),
            ));
        }
        for c in &self.cpuless {
            if c.socket >= self.sockets {
                return Err(bad(
                    "cpuless.socket",
                    format!("socket {} does not exist", c.socket),
                ));
            }
        }
        let total_cores = total_cores as u32;
        let mut cells = Vec::new();
        for node in 0..cpu_nodes {
            let socket = node / self.nodes_per_socket;
            let mut cpus = Vec::new();
            for core in 0..self.cores_per_node {
                let global_core = node * self.cores_per_node + core;
                let siblings: Vec<u32> = (0..self.threads_per_core)
                    .map(|t| t * total_cores + global_core)
                    .collect();
                for &id in &siblings {
                    cpus.push(Cpu {
                        id,
                        socket: Some(socket),
                        core: Some(global_core),
                        siblings: siblings.clone(),
                    });
                }
            }
            cpus.sort_by_key(|c| c.id);
            let memory_mb = self
                .node_memory_mb
                .get(node as usize)
                .copied()
                .unwrap_or(self.memory_mb_per_node);
            cells.push(Cell {
                id: node,
                cpus,
                memory_kb: memory_mb * 1024,
                free_kb: None,
                pages: self.pages(memory_mb)?,
            });
        }
        for (k, c) in self.cpuless.iter().enumerate() {
            cells.push(Cell {
                id: cpu_nodes + k as u32,
                cpus: Vec::new(),
                memory_kb: c.memory_mb * 1024,
                free_kb: None,
                pages: vec![PagePool {
                    size_kb: self.base_page_kb,
                    total: c.memory_mb * 1024 / self.base_page_kb,
                    free: None,
                }],
            });
        }
        let distances = match &self.distances.matrix {
            Some(m) => {
                if m.len() != total_nodes || m.iter().any(|r| r.len() != total_nodes) {
                    return Err(bad(
                        "distances.matrix",
                        format!("must be {total_nodes}x{total_nodes}, one row and column per node"),
                    ));
                }
                m.clone()
            }
            None => self.rule_distances(cpu_nodes),
        };
        let name = self.name.clone().unwrap_or_else(|| {
            format!(
                "synthetic-{}s{}n{}c{}t",
                self.sockets, cpu_nodes, self.cores_per_node, self.threads_per_core
            )
        });
        Host::new(name, cells, Some(distances)).map_err(|e| bad("distances", e.to_string()))
    }

    fn pages(&self, memory_mb: u64) -> Result<Vec<PagePool>, SynthError> {
        let memory_kb = memory_mb * 1024;
        let huge_kb: u64 = self
            .hugepages
            .iter()
            .map(|h| h.size_kb.saturating_mul(h.count))
            .sum();
        if huge_kb > memory_kb {
            return Err(bad(
                "hugepages",
                format!("{huge_kb} KiB of hugepages exceed the node's {memory_kb} KiB"),
            ));
        }
        let mut pools = vec![PagePool {
            size_kb: self.base_page_kb,
            total: (memory_kb - huge_kb) / self.base_page_kb,
            free: None,
        }];
        for h in &self.hugepages {
            if h.size_kb <= self.base_page_kb {
                return Err(bad(
                    "hugepages.size_kb",
                    format!("{} KiB is not larger than the base page", h.size_kb),
                ));
            }
            pools.push(PagePool {
                size_kb: h.size_kb,
                total: h.count,
                free: None,
            });
        }
        Ok(pools)
    }

    fn rule_distances(&self, cpu_nodes: u32) -> Vec<Vec<u32>> {
        let d = &self.distances;
        let n = cpu_nodes as usize + self.cpuless.len();
        // Socket of each node; CPU-less nodes belong to their socket but are
        // near only to its CPU nodes.
        let socket = |i: usize| -> u32 {
            if i < cpu_nodes as usize {
                i as u32 / self.nodes_per_socket
            } else {
                self.cpuless[i - cpu_nodes as usize].socket
            }
        };
        let mut m = vec![vec![0; n]; n];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                let cpuless = [i, j].iter().find(|&&k| k >= cpu_nodes as usize).copied();
                *v = if i == j {
                    d.local
                } else if let Some(k) = cpuless {
                    let c = &self.cpuless[k - cpu_nodes as usize];
                    let other = if k == i { j } else { i };
                    if other < cpu_nodes as usize && socket(other) == c.socket {
                        c.near
                    } else {
                        c.far
                    }
                } else if socket(i) == socket(j) {
                    d.same_socket
                } else {
                    d.other_socket
                };
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SynthSpec {
        SynthSpec {
            name: None,
            sockets: 2,
            nodes_per_socket: 2,
            cores_per_node: 2,
            threads_per_core: 2,
            memory_mb_per_node: 1024,
            node_memory_mb: vec![],
            hugepages: vec![HugepageSpec {
                size_kb: 2048,
                count: 100,
            }],
            base_page_kb: 4,
            cpuless: vec![CpulessSpec {
                memory_mb: 4096,
                socket: 1,
                near: 14,
                far: 26,
            }],
            distances: DistanceSpec::default(),
        }
    }

    #[test]
    fn numbering_and_distances() {
        let h = spec().build().unwrap();
        assert_eq!(h.cells.len(), 5);
        assert_eq!(h.cells[0].cpu_ids(), vec![0, 1, 8, 9]);
        assert_eq!(h.cells[0].cpus[0].siblings, vec![0, 8]);
        assert!(h.cells[4].is_cpuless());
        assert_eq!(h.distances[0], vec![10, 11, 21, 21, 26]);
        assert_eq!(h.distances[2][4], 14);
        assert_eq!(h.cells[0].pages[0].total, (1024 * 1024 - 200 * 1024) / 4);
    }

    #[test]
    fn rejects_bad_matrix_and_oversized_hugepages() {
        let mut s = spec();
        s.distances.matrix = Some(vec![vec![10]]);
        assert_eq!(s.build().unwrap_err().field, "distances.matrix");
        let mut s = spec();
        s.hugepages[0].count = 1_000_000;
        assert_eq!(s.build().unwrap_err().field, "hugepages");
    }
}

//! Linux sysfs: `sys/devices/system/node/nodeN/{cpulist|cpumap,distance,meminfo,hugepages}`,
//! `sys/devices/system/cpu/cpuN/topology/*` and `proc/meminfo`, given as a map
//! of relative path to file content. The map comes from a flat dump
//! ([`SysfsTree::from_flat`]) or from a directory read by the caller.

use super::{Format, ImportError};
use crate::topology::cpuset::parse_hex_mask;
use crate::topology::{Cell, Cpu, Host, PagePool, parse_cpu_list};
use std::collections::BTreeMap;

const F: Format = Format::SysfsFlat;
const NODE_DIR: &str = "sys/devices/system/node/";
const CPU_DIR: &str = "sys/devices/system/cpu/";

/// Relative path (`sys/devices/system/node/node0/cpulist`) to file content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SysfsTree {
    pub files: BTreeMap<String, String>,
    /// For flat dumps: the line each file's header is on, for error messages.
    pub lines: BTreeMap<String, usize>,
}

impl SysfsTree {
    /// Parses the flat dump form: `== path` (optionally followed by a note)
    /// then the file's content up to the next `== ` line. `#` lines before
    /// the first header are comments.
    pub fn from_flat(text: &str) -> Result<SysfsTree, ImportError> {
        let mut tree = SysfsTree::default();
        let mut current: Option<(String, String)> = None;
        for (idx, line) in text.lines().enumerate() {
            if let Some(rest) = line.strip_prefix("== ") {
                if let Some((path, content)) = current.take() {
                    tree.files.insert(path, content);
                }
                let path = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches('/')
                    .to_string();
                if path.is_empty() {
                    return Err(ImportError::new(
                        F,
                        Some(idx + 1),
                        "`==` header without a path",
                    ));
                }
                tree.lines.insert(path.clone(), idx + 1);
                current = Some((path, String::new()));
            } else if let Some((_, content)) = current.as_mut() {
                content.push_str(line);
                content.push('\n');
            } else if !line.trim().is_empty() && !line.starts_with('#') {
                return Err(ImportError::new(
                    F,
                    Some(idx + 1),
                    format!("expected a `== path` header, found `{line}`"),
                ));
            }
        }
        if let Some((path, content)) = current.take() {
            tree.files.insert(path, content);
        }
        Ok(tree)
    }

    fn get(&self, path: &str) -> Option<&str> {
        self.files.get(path).map(String::as_str)
    }

    fn err(&self, path: &str, msg: String) -> ImportError {
        ImportError::new(F, self.lines.get(path).copied(), format!("{path}: {msg}"))
    }
}

/// Numeric id after a prefix in a path component: `node12` -> 12.
fn numbered(component: &str, prefix: &str) -> Option<u32> {
    let digits = component.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn parse(name: &str, tree: &SysfsTree) -> Result<Host, ImportError> {
    let mut warnings = Vec::new();
    let mut node_ids: Vec<u32> = tree
        .files
        .keys()
        .filter_map(|p| p.strip_prefix(NODE_DIR))
        .filter_map(|rest| numbered(rest.split('/').next()?, "node"))
        .collect();
    node_ids.sort_unstable();
    node_ids.dedup();

    let mut cpu_ids: Vec<u32> = tree
        .files
        .keys()
        .filter_map(|p| p.strip_prefix(CPU_DIR))
        .filter(|rest| rest.contains("/topology/"))
        .filter_map(|rest| numbered(rest.split('/').next()?, "cpu"))
        .collect();
    cpu_ids.sort_unstable();
    cpu_ids.dedup();

    if node_ids.is_empty() && cpu_ids.is_empty() {
        return Err(ImportError::new(
            F,
            None,
            "no sys/devices/system/node/nodeN or sys/devices/system/cpu/cpuN/topology files: not a sysfs capture",
        ));
    }

    // Per-CPU topology.
    let mut cpus: BTreeMap<u32, Cpu> = BTreeMap::new();
    for &id in &cpu_ids {
        let base = format!("{CPU_DIR}cpu{id}/topology/");
        let read_u32 = |file: &str| -> Result<Option<u32>, ImportError> {
            let path = format!("{base}{file}");
            match tree.get(&path) {
                None => Ok(None),
                Some(t) => t
                    .trim()
                    .parse::<i64>()
                    .map(|v| u32::try_from(v).ok())
                    .map_err(|_| tree.err(&path, format!("`{}` is not an integer", t.trim()))),
            }
        };
        let socket = read_u32("physical_package_id")?;
        let core = read_u32("core_id")?;
        let list_path = format!("{base}thread_siblings_list");
        let mask_path = format!("{base}thread_siblings");
        let siblings = if let Some(t) = tree.get(&list_path) {
            parse_cpu_list(t).map_err(|m| tree.err(&list_path, m))?
        } else if let Some(t) = tree.get(&mask_path) {
            parse_hex_mask(t).map_err(|m| tree.err(&mask_path, m))?
        } else {
            vec![id]
        };
        cpus.insert(
            id,
            Cpu {
                id,
                socket,
                core,
                siblings,
            },
        );
    }

    // Node cpulists name possible CPUs; only online ones can run guests.
    let online_path = format!("{CPU_DIR}online");
    let online: Option<std::collections::BTreeSet<u32>> = match tree.get(&online_path) {
        Some(t) => Some(
            parse_cpu_list(t)
                .map_err(|m| tree.err(&online_path, m))?
                .into_iter()
                .collect(),
        ),
        None => None,
    };
    let mut offline_dropped = 0usize;

    let mut cells = Vec::new();
    let mut have_mapping = false;
    if node_ids.is_empty() {
        warnings
            .push("no sys/devices/system/node: a non-NUMA kernel; one cell holds every CPU".into());
        let memory_kb = meminfo_value(tree, "proc/meminfo", "MemTotal")?.unwrap_or(0);
        let free_kb = meminfo_value(tree, "proc/meminfo", "MemFree")?;
        let all: Vec<Cpu> = std::mem::take(&mut cpus).into_values().collect();
        cells.push(Cell {
            id: 0,
            cpus: all,
            memory_kb,
            free_kb,
            pages: Vec::new(),
        });
        have_mapping = true;
    } else {
        for &id in &node_ids {
            let base = format!("{NODE_DIR}node{id}/");
            let list_path = format!("{base}cpulist");
            let map_path = format!("{base}cpumap");
            let members = if let Some(t) = tree.get(&list_path) {
                have_mapping = true;
                parse_cpu_list(t).map_err(|m| tree.err(&list_path, m))?
            } else if let Some(t) = tree.get(&map_path) {
                have_mapping = true;
                parse_hex_mask(t).map_err(|m| tree.err(&map_path, m))?
            } else {
                Vec::new()
            };
            let mut cell_cpus = Vec::new();
            for c in members {
                if online.as_ref().is_some_and(|o| !o.contains(&c)) {
                    offline_dropped += 1;
                    cpus.remove(&c);
                    continue;
                }
                // A CPU listed by its node but without a topology directory (offline).
                let cpu = cpus.remove(&c).unwrap_or(Cpu {
                    id: c,
                    socket: None,
                    core: None,
                    siblings: vec![c],
                });
                cell_cpus.push(cpu);
            }
            let meminfo = format!("{base}meminfo");
            let memory_kb = meminfo_value(tree, &meminfo, "MemTotal")?.unwrap_or(0);
            let free_kb = meminfo_value(tree, &meminfo, "MemFree")?;
            let pages = hugepages(tree, &base)?;
            cells.push(Cell {
                id,
                cpus: cell_cpus,
                memory_kb,
                free_kb,
                pages,
            });
        }
    }
    if offline_dropped > 0 {
        warnings.push(format!(
            "{offline_dropped} CPUs listed by nodes are offline and left out"
        ));
    }
    let unassigned: Vec<Cpu> = cpus.into_values().collect();
    if !have_mapping {
        warnings.push(
            "the capture has no node cpulist/cpumap files: CPUs are not attached to cells"
                .to_string(),
        );
    } else if !unassigned.is_empty() {
        warnings.push(format!(
            "{} CPUs belong to no node's cpulist",
            unassigned.len()
        ));
    }

    // A node's distance file lists one distance per node in increasing id
    // order: normally the nodes present here, but some captures keep fewer
    // node directories than `node/possible` names.
    let possible_path = format!("{NODE_DIR}possible");
    let possible: Option<Vec<u32>> = match tree.get(&possible_path) {
        Some(t) => Some(parse_cpu_list(t).map_err(|m| tree.err(&possible_path, m))?),
        None => None,
    };
    let mut matrix = Vec::new();
    for &id in &node_ids {
        let path = format!("{NODE_DIR}node{id}/distance");
        let Some(text) = tree.get(&path) else { break };
        let row = text
            .split_whitespace()
            .map(|t| {
                t.parse::<u32>().map_err(|_| {
                    tree.err(
                        &path,
                        format!("distance `{t}` is not a non-negative integer"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let columns: &[u32] = if row.len() == node_ids.len() {
            &node_ids
        } else if let Some(p) = possible
            .as_deref()
            .filter(|p| p.len() == row.len() && node_ids.iter().all(|n| p.contains(n)))
        {
            p
        } else {
            return Err(tree.err(
                &path,
                format!("{} distances for {} nodes", row.len(), node_ids.len()),
            ));
        };
        let picked: Vec<u32> = node_ids
            .iter()
            .map(|n| row[columns.iter().position(|c| c == n).expect("checked above")])
            .collect();
        matrix.push(picked);
    }
    let distances = if !node_ids.is_empty() && matrix.len() == node_ids.len() {
        Some(matrix)
    } else {
        if !matrix.is_empty() {
            warnings.push("some nodes have no distance file".into());
        }
        None
    };
    // A lone node without node meminfo: the machine's total is its size.
    if cells.len() == 1
        && cells[0].memory_kb == 0
        && let Some(total) = meminfo_value(tree, "proc/meminfo", "MemTotal")?
    {
        cells[0].memory_kb = total;
        cells[0].free_kb = meminfo_value(tree, "proc/meminfo", "MemFree")?;
        warnings.push(
            "node meminfo is empty: the single node's size is MemTotal of proc/meminfo".into(),
        );
    }
    let mut host =
        Host::new(name, cells, distances).map_err(|e| ImportError::new(F, None, e.to_string()))?;
    host.unassigned_cpus = unassigned;
    host.warnings.extend(warnings);
    host.validate()
        .map_err(|e| ImportError::new(F, None, e.to_string()))?;
    Ok(host)
}

/// `Node 0 MemTotal:  123 kB` (node meminfo) or `MemTotal: 123 kB` (/proc/meminfo).
fn meminfo_value(tree: &SysfsTree, path: &str, key: &str) -> Result<Option<u64>, ImportError> {
    let Some(text) = tree.get(path) else {
        return Ok(None);
    };
    for line in text.lines() {
        let Some((head, value)) = line.split_once(':') else {
            continue;
        };
        if head.split_whitespace().last() != Some(key) {
            continue;
        }
        let number = value.split_whitespace().next().unwrap_or("");
        return number.parse::<u64>().map(Some).map_err(|_| {
            tree.err(
                path,
                format!("{key} value `{}` is not `<integer> kB`", value.trim()),
            )
        });
    }
    Ok(None)
}

fn hugepages(tree: &SysfsTree, node_base: &str) -> Result<Vec<PagePool>, ImportError> {
    let prefix = format!("{node_base}hugepages/hugepages-");
    let mut sizes: Vec<u64> = tree
        .files
        .keys()
        .filter_map(|p| p.strip_prefix(&prefix))
        .filter_map(|rest| rest.split_once("kB/").map(|(size, _)| size))
        .filter_map(|s| s.parse().ok())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut pools = Vec::new();
    for size_kb in sizes {
        let read =
            |file: &str| -> Result<Option<u64>, ImportError> {
                let path = format!("{prefix}{size_kb}kB/{file}");
                match tree.get(&path) {
                    None => Ok(None),
                    Some(t) => t.trim().parse().map(Some).map_err(|_| {
                        tree.err(&path, format!("`{}` is not a page count", t.trim()))
                    }),
                }
            };
        let total = read("nr_hugepages")?.unwrap_or(0);
        let free = read("free_hugepages")?;
        pools.push(PagePool {
            size_kb,
            total,
            free,
        });
    }
    Ok(pools)
}

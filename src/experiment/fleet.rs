//! A scenario's fleet: `[[fleet]]` entries (presets, captured host files,
//! synthetic descriptions, a public trace's node list) resolved into the
//! simulator's hosts, scaled to `--hosts` keeping the mix.

use super::load::load_host;
use super::run::RunError;
use super::scenario::{FleetEntry, Scenario};
use crate::error::Locate;
use crate::sim::fleet::{SimHost, host_model, sim_host_from_model};
use crate::topology::{Host, parse_cpu_list, presets};
use std::path::Path;
use std::sync::Arc;

fn err<T>(m: impl Into<String>) -> Result<T, RunError> {
    Err(RunError::input(m.into()))
}

/// The largest fleet numasim simulates.
pub const MAX_HOSTS: usize = 1_000_000;

/// The scenario's hosts (node lists expanded into the scenario's fleet
/// entries first); `hosts` scales the fleet to that many hosts.
pub fn build_fleet(
    scenario: &mut Scenario,
    base: &Path,
    hosts: Option<usize>,
) -> Result<Vec<SimHost>, RunError> {
    expand_node_lists(scenario, base)?;
    let counts: Vec<usize> = scenario.fleet.iter().map(|f| f.count).collect();
    let counts = match hosts {
        Some(n) => scaled_counts(&counts, n),
        None => counts,
    };
    // Sized to this kind of machine (24 GiB): about 5 KB per host.
    let total = counts.iter().fold(0usize, |a, c| a.saturating_add(*c));
    if total > MAX_HOSTS {
        return Err(RunError::input(format!(
            "{total} hosts: expected at most {MAX_HOSTS} (about 5 GB of fleet state)"
        ))
        .at_key("fleet"));
    }
    let mut hosts = Vec::with_capacity(total);
    for (i, (entry, &count)) in scenario.fleet.iter().zip(&counts).enumerate() {
        let host = host_for(entry, base, i)?;
        let model = Arc::new(host_model(&host));
        // Hosts of one model share the model and start from one topology.
        let mut template = sim_host_from_model(String::new(), &host, model);
        // Nova keeps reserved_host_memory_mb out of placement's inventory.
        template.total_mem -= entry.config.reserved_host_memory_mb as i64;
        template.limits = Some(crate::fit::Limits {
            cpu_allocation_ratio: entry.config.cpu_allocation_ratio,
            ram_allocation_ratio: entry.config.ram_allocation_ratio,
            network_metadata: None,
        });
        template.pci = pci_pools(scenario, entry, &host, i)?;
        for _ in 0..count {
            let mut h = template.clone();
            h.name = format!("{}-{}", host.name, hosts.len());
            hosts.push(h);
        }
    }
    Ok(hosts)
}

/// A fleet entry's PCI pools: its `pci` devices, and the captured devices
/// its `device_spec` names; nodes must be the host's.
fn pci_pools(
    scenario: &Scenario,
    entry: &FleetEntry,
    host: &Host,
    idx: usize,
) -> Result<Vec<crate::fit::host::PciPool>, RunError> {
    use crate::fit::host::PciPool;
    let mut pools = Vec::new();
    for (k, d) in entry.pci.iter().enumerate() {
        if !host.cells.iter().any(|c| i64::from(c.id) == d.numa_node) {
            return err(format!(
                "fleet[{idx}].pci[{k}].numa_node = {}: the host has no such NUMA node",
                d.numa_node
            ));
        }
        let alias = d
            .alias
            .as_ref()
            .and_then(|a| scenario.pci_alias.iter().find(|x| &x.name == a));
        let pick = |own: &Option<String>, of_alias: Option<&String>| {
            own.clone()
                .or_else(|| of_alias.cloned())
                .unwrap_or_default()
        };
        pools.push(PciPool {
            vendor_id: pick(&d.vendor_id, alias.map(|a| &a.vendor_id)),
            product_id: pick(&d.product_id, alias.map(|a| &a.product_id)),
            dev_type: d
                .dev_type
                .clone()
                .or_else(|| alias.and_then(|a| a.device_type.clone()))
                .unwrap_or_else(|| "type-PCI".into()),
            numa_node: Some(d.numa_node),
            count: i64::from(d.count),
        });
    }
    for d in &host.pci_devices {
        if entry.device_spec.iter().any(|s| {
            s.vendor_id.eq_ignore_ascii_case(&d.vendor_id)
                && s.product_id.eq_ignore_ascii_case(&d.product_id)
        }) {
            pools.push(PciPool {
                vendor_id: d.vendor_id.clone(),
                product_id: d.product_id.clone(),
                dev_type: d.dev_type.clone(),
                numa_node: d.numa_node.map(i64::from),
                count: i64::from(d.count),
            });
        }
    }
    Ok(pools)
}

fn host_for(entry: &FleetEntry, base: &Path, idx: usize) -> Result<Host, RunError> {
    let mut host = if let Some(p) = &entry.preset {
        match presets::find(p) {
            Some(p) => p.host(),
            None => {
                let names: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
                return err(format!(
                    "fleet[{idx}].preset: unknown preset `{p}`; expected one of {}",
                    names.join(", ")
                ));
            }
        }
    } else if let Some(f) = &entry.file {
        let path = base.join(f);
        load_host(path.to_str().unwrap_or(f), None)
            .map_err(|e| RunError::input(format!("fleet[{idx}].file: {e}")))?
    } else if let Some(s) = &entry.synthetic {
        s.build()
            .map_err(|e| RunError::input(format!("fleet[{idx}].{e}")))?
    } else {
        return err(format!("fleet[{idx}]: no host source"));
    };
    let c = &entry.config;
    let set = |v: &Option<String>,
               key: &str|
     -> Result<Option<std::collections::BTreeSet<u32>>, RunError> {
        v.as_ref()
            .map(|t| {
                parse_cpu_list(t)
                    .map(|l| l.into_iter().collect())
                    .map_err(|m| RunError::input(format!("fleet[{idx}].config.{key}: {m}")))
            })
            .transpose()
    };
    host.config.cpu_shared_set = set(&c.cpu_shared_set, "cpu_shared_set")?;
    host.config.cpu_dedicated_set = set(&c.cpu_dedicated_set, "cpu_dedicated_set")?;
    host.config.cpu_allocation_ratio = c.cpu_allocation_ratio;
    host.config.ram_allocation_ratio = c.ram_allocation_ratio;
    host.config.reserved_host_memory_mb = c.reserved_host_memory_mb;
    host.validate()
        .map_err(|e| RunError::input(format!("fleet[{idx}].config: {e}")))?;
    Ok(host)
}

/// Scales the fleet's counts to `n` hosts, keeping the mix (largest remainders).
fn scaled_counts(counts: &[usize], n: usize) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return counts.to_vec();
    }
    let exact: Vec<f64> = counts
        .iter()
        .map(|&c| c as f64 * n as f64 / total as f64)
        .collect();
    let mut out: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut rest: Vec<usize> = (0..counts.len()).collect();
    rest.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let mut left = n - out.iter().sum::<usize>();
    for i in rest {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

/// Replaces each `nodes` fleet entry by one synthetic entry per distinct
/// node size (in order of first appearance), with its count.
fn expand_node_lists(scenario: &mut Scenario, base: &Path) -> Result<(), RunError> {
    use crate::experiment::scenario::NodeListFormat;
    let mut fleet = Vec::new();
    for (i, entry) in scenario.fleet.iter().enumerate() {
        let Some(nodes) = &entry.nodes else {
            fleet.push(entry.clone());
            continue;
        };
        let path = base.join(&nodes.file);
        let shown = path.display();
        let f = crate::input::open(&path)
            .map_err(|e| RunError::input(format!("fleet[{i}].nodes.file {shown}: {e}")))?;
        let mut r = csv::Reader::from_reader(std::io::BufReader::new(f));
        let headers = r
            .headers()
            .map_err(|e| RunError::input(format!("{shown}: {e}")))?
            .clone();
        let NodeListFormat::AlibabaGpu2023 = nodes.format;
        let col = |name: &str| {
            headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
                RunError::input(format!(
                    "{shown}: line 1: header lacks `{name}`; expected sn,cpu_milli,memory_mib,gpu,model"
                ))
            })
        };
        let (c_cpu, c_mem) = (col("cpu_milli")?, col("memory_mib")?);
        let mut sizes: Vec<((u64, u64), usize)> = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| RunError::input(format!("{shown}: {e}")))?;
            let line = rec.position().map_or(0, |p| p.line());
            let num = |c: usize, what: &str| -> Result<u64, RunError> {
                let v = rec.get(c).unwrap_or("").trim();
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .map(|x| x.round() as u64)
                    .ok_or_else(|| {
                        RunError::input(format!(
                            "{shown}: line {line}: {what} `{v}` is not a positive number"
                        ))
                    })
            };
            let key = (num(c_cpu, "cpu_milli")? / 1000, num(c_mem, "memory_mib")?);
            match sizes.iter_mut().find(|s| s.0 == key) {
                Some(s) => s.1 += 1,
                None => sizes.push((key, 1)),
            }
        }
        if sizes.is_empty() {
            return err(format!("{shown}: the node list has no nodes"));
        }
        for ((cpus, mem_mb), count) in sizes {
            let sockets = u64::from(nodes.sockets);
            let per_node = (cpus / sockets).max(1);
            let threads = u64::from(nodes.threads_per_core);
            let threads = if per_node % threads == 0 { threads } else { 1 };
            let spec = crate::topology::synth::SynthSpec {
                name: Some(format!("node-{cpus}c-{}g", mem_mb / 1024)),
                sockets: nodes.sockets,
                nodes_per_socket: 1,
                cores_per_node: (per_node / threads) as u32,
                threads_per_core: threads as u32,
                memory_mb_per_node: mem_mb / sockets,
                node_memory_mb: Vec::new(),
                hugepages: Vec::new(),
                base_page_kb: 4,
                cpuless: Vec::new(),
                distances: Default::default(),
            };
            let mut e = entry.clone();
            e.nodes = None;
            e.synthetic = Some(spec);
            e.count = count;
            fleet.push(e);
        }
    }
    scenario.fleet = fleet;
    Ok(())
}

//! `numa_usage_from_instance_numa`: the host's usage after a guest is
//! claimed (or freed), as Nova computes it.

use super::host::{HostCell, HostTopology};
use super::pyset::PySet;
use crate::request::{CpuPolicy, GuestTopology, ThreadPolicy};

/// Nova raised while applying usage (e.g. pinning a CPU twice).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct UsageError {
    pub kind: &'static str,
    pub message: String,
}

fn err<T>(kind: &'static str, message: String) -> Result<T, UsageError> {
    Err(UsageError { kind, message })
}

/// Applies (`free == false`) or removes (`free == true`) a fitted guest's
/// usage. Like Nova, a new topology is built: sets are re-coerced, which
/// can change their iteration order.
pub fn usage_from_instance(
    host: &HostTopology,
    fitted: &GuestTopology,
    free: bool,
) -> Result<HostTopology, UsageError> {
    let sign: i64 = if free { -1 } else { 1 };
    let mut cells = Vec::with_capacity(host.cells.len());
    for hc in &host.cells {
        let mut cell = HostCell {
            id: hc.id,
            cpuset: hc.cpuset.coerced(),
            pcpuset: hc.pcpuset.coerced(),
            memory_mb: hc.memory_mb,
            cpu_usage: 0,
            memory_usage_mb: 0,
            pinned_cpus: hc.pinned_cpus.coerced(),
            siblings: hc.siblings.iter().map(PySet::coerced).collect(),
            mempages: hc.mempages.clone(),
            socket: hc.socket,
            network_metadata: hc.network_metadata.clone(),
        };
        let mut memory_usage = hc.memory_usage_mb;
        let mut cpu_usage = hc.cpu_usage;
        for gc in fitted.cells.iter().filter(|g| g.id == hc.id) {
            let pagesize = match gc.pagesize {
                Some(p) if p != 0 => p,
                _ => match cell.smallest_pagesize() {
                    Some(p) => p,
                    None => return err("IndexError", "list index out of range".into()),
                },
            };
            for pages in cell.mempages.iter_mut().filter(|p| p.size_kb == pagesize) {
                // Nova computes a float and the integer field truncates it.
                let used = pages.used as f64
                    + (gc.memory_mb * 1024) as f64 / pages.size_kb as f64 * sign as f64;
                pages.used = used.max(0.0).trunc() as i64;
            }
            memory_usage += sign * gc.memory_mb;
            cpu_usage += sign * gc.cpuset.len() as i64;
            if !CpuPolicy::pins(gc.cpu_policy) {
                continue;
            }
            let mut pinned: Vec<u32> = gc
                .cpu_pinning
                .as_ref()
                .map(|m| m.values().copied().collect())
                .unwrap_or_default();
            if let Some(r) = &gc.cpuset_reserved {
                pinned.extend(r.iter().copied());
            }
            let mut cpus: std::collections::BTreeSet<u32> = pinned.into_iter().collect();
            if gc.cpu_thread_policy == Some(ThreadPolicy::Isolate) {
                let mut with_siblings = std::collections::BTreeSet::new();
                for sib in &cell.siblings {
                    if sib.iter().any(|c| cpus.contains(&c)) {
                        with_siblings.extend(sib.iter());
                    }
                }
                cpus = with_siblings;
            }
            if free {
                unpin(&mut cell, &cpus)?
            } else {
                pin(&mut cell, &cpus)?
            }
        }
        cell.memory_usage_mb = memory_usage.max(0);
        cell.cpu_usage = cpu_usage.max(0);
        cells.push(cell);
    }
    Ok(HostTopology { cells })
}

fn pin(cell: &mut HostCell, cpus: &std::collections::BTreeSet<u32>) -> Result<(), UsageError> {
    if cpus.iter().any(|c| !cell.pcpuset.contains(*c)) {
        return err(
            "CPUPinningUnknown",
            format!("CPU set to pin {cpus:?} must be a subset of the known CPU set"),
        );
    }
    if cpus.iter().any(|c| cell.pinned_cpus.contains(*c)) {
        return err(
            "CPUPinningInvalid",
            format!("CPU set to pin {cpus:?} must be a subset of free CPU set"),
        );
    }
    for &c in cpus {
        cell.pinned_cpus.add(c);
    }
    cell.pinned_cpus = cell.pinned_cpus.coerced();
    Ok(())
}

fn unpin(cell: &mut HostCell, cpus: &std::collections::BTreeSet<u32>) -> Result<(), UsageError> {
    if cpus.iter().any(|c| !cell.pcpuset.contains(*c)) {
        return err(
            "CPUUnpinningUnknown",
            format!("CPU set to unpin {cpus:?} must be a subset of the known CPU set"),
        );
    }
    if cpus.iter().any(|c| !cell.pinned_cpus.contains(*c)) {
        return err(
            "CPUUnpinningInvalid",
            format!("CPU set to unpin {cpus:?} must be a subset of pinned CPU set"),
        );
    }
    for &c in cpus {
        cell.pinned_cpus.discard(c);
    }
    cell.pinned_cpus = cell.pinned_cpus.coerced();
    Ok(())
}

//! `numa_usage_from_instance_numa`: the host's usage after a guest is
//! claimed (or freed), as Nova computes it.

use super::host::{HostCell, HostTopology};
use crate::request::{CpuPolicy, GuestTopology, ThreadPolicy};
use std::collections::BTreeSet;

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
/// usage in place; same result as [`usage_from_instance`]. On error the
/// host is left unchanged.
pub fn apply_usage(
    host: &mut HostTopology,
    fitted: &GuestTopology,
    free: bool,
) -> Result<(), UsageError> {
    // Check on copies of the touched cells first, so an error changes nothing.
    let mut updates = Vec::new();
    for (i, hc) in host.cells.iter().enumerate() {
        if fitted.cells.iter().any(|g| g.id == hc.id) {
            let mut cell = hc.clone();
            update_cell(&mut cell, fitted, free)?;
            updates.push((i, cell));
        }
    }
    for (i, cell) in updates {
        host.cells[i] = cell;
    }
    // Nova rebuilds every cell, re-coercing its CPU sets; sets known to be
    // coercion fixed points need nothing, the others are rebuilt.
    for cell in &mut host.cells {
        for set in [&mut cell.cpuset, &mut cell.pcpuset]
            .into_iter()
            .chain(cell.siblings.iter_mut())
        {
            if !set.is_coerce_stable() {
                *set = set.coerced();
            }
        }
    }
    Ok(())
}

/// Applies (`free == false`) or removes (`free == true`) a fitted guest's
/// usage. Like Nova, a new topology is built: sets are re-coerced, which
/// can change their iteration order.
pub fn usage_from_instance(
    host: &HostTopology,
    fitted: &GuestTopology,
    free: bool,
) -> Result<HostTopology, UsageError> {
    let mut out = host.clone();
    for cell in &mut out.cells {
        for set in [&mut cell.cpuset, &mut cell.pcpuset, &mut cell.pinned_cpus]
            .into_iter()
            .chain(cell.siblings.iter_mut())
        {
            *set = set.coerced();
        }
        update_cell(cell, fitted, free)?;
    }
    Ok(out)
}

/// The usage changes of one host cell from the guest cells placed on it.
fn update_cell(cell: &mut HostCell, fitted: &GuestTopology, free: bool) -> Result<(), UsageError> {
    let sign: i64 = if free { -1 } else { 1 };
    let mut memory_usage = cell.memory_usage_mb;
    let mut cpu_usage = cell.cpu_usage;
    let id = cell.id;
    for gc in fitted.cells.iter().filter(|g| g.id == id) {
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
        let mut cpus: BTreeSet<u32> = gc
            .cpu_pinning
            .as_ref()
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        if let Some(r) = &gc.cpuset_reserved {
            cpus.extend(r.iter().copied());
        }
        if gc.cpu_thread_policy == Some(ThreadPolicy::Isolate) {
            let mut with_siblings = BTreeSet::new();
            for sib in &cell.siblings {
                if sib.iter().any(|c| cpus.contains(&c)) {
                    with_siblings.extend(sib.iter());
                }
            }
            cpus = with_siblings;
        }
        if free {
            unpin(cell, &cpus)?
        } else {
            pin(cell, &cpus)?
        }
    }
    cell.memory_usage_mb = memory_usage.max(0);
    cell.cpu_usage = cpu_usage.max(0);
    Ok(())
}

fn pin(cell: &mut HostCell, cpus: &BTreeSet<u32>) -> Result<(), UsageError> {
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
    Ok(())
}

fn unpin(cell: &mut HostCell, cpus: &BTreeSet<u32>) -> Result<(), UsageError> {
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
    Ok(())
}

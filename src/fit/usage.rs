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
    if !apply_in_place_if_valid(host, fitted, free) {
        apply_via_copies(host, fitted, free)?;
    }
    // Nova rebuilds every cell, re-coercing its CPU sets (which can change
    // their iteration order): one step along each cell's shared schedule.
    for cell in &mut host.cells {
        cell.coerce_sets();
    }
    Ok(())
}

/// The CPUs a pinning guest cell pins (or unpins) on its host cell, each at
/// least once: its pinning's values and reserved CPUs, widened to whole
/// sibling sets under the `isolate` thread policy.
fn for_each_pinned_cpu(
    gc: &crate::request::GuestCell,
    cell: &HostCell,
    mut f: impl FnMut(u32) -> bool,
) -> bool {
    let direct = || {
        gc.cpu_pinning
            .iter()
            .flat_map(|m| m.values().copied())
            .chain(gc.cpuset_reserved.iter().flat_map(|r| r.iter().copied()))
    };
    if gc.cpu_thread_policy == Some(ThreadPolicy::Isolate) {
        // Like Nova: only CPUs in a sibling set that a pinned CPU touches.
        for sib in cell.siblings() {
            if sib.iter().any(|c| direct().any(|p| p == c)) && !sib.iter().all(&mut f) {
                return false;
            }
        }
        true
    } else {
        direct().all(f)
    }
}

/// The common case without copies: when each guest cell lands on its own
/// host cell and nothing Nova checks can fail, the change is made in place
/// and `true` returned; otherwise nothing is touched and `false` returned
/// (the copying path then gives Nova's exact error, or result).
fn apply_in_place_if_valid(host: &mut HostTopology, fitted: &GuestTopology, free: bool) -> bool {
    let ids = &fitted.cells;
    for (k, gc) in ids.iter().enumerate() {
        if ids[..k].iter().any(|o| o.id == gc.id) {
            return false;
        }
        if host.cells.iter().filter(|c| c.id == gc.id).count() > 1 {
            return false;
        }
    }
    // Validate everything first.
    for gc in ids {
        let Some(cell) = host.cells.iter().find(|c| c.id == gc.id) else {
            continue;
        };
        if !matches!(gc.pagesize, Some(p) if p != 0) && cell.smallest_pagesize().is_none() {
            return false;
        }
        if CpuPolicy::pins(gc.cpu_policy)
            && !for_each_pinned_cpu(gc, cell, |c| {
                cell.pcpuset().contains(c) && cell.pinned_cpus.contains(c) == free
            })
        {
            return false;
        }
    }
    let sign: i64 = if free { -1 } else { 1 };
    for gc in ids {
        let Some(cell) = host.cells.iter_mut().find(|c| c.id == gc.id) else {
            continue;
        };
        let pagesize = match gc.pagesize {
            Some(p) if p != 0 => p,
            _ => cell.smallest_pagesize().expect("validated above"),
        };
        for pages in cell.mempages.iter_mut().filter(|p| p.size_kb == pagesize) {
            // Nova computes a float and the integer field truncates it.
            let used = pages.used as f64
                + (gc.memory_mb * 1024) as f64 / pages.size_kb as f64 * sign as f64;
            pages.used = used.max(0.0).trunc() as i64;
        }
        cell.memory_usage_mb = (cell.memory_usage_mb + sign * gc.memory_mb).max(0);
        cell.cpu_usage = (cell.cpu_usage + sign * gc.cpuset.len() as i64).max(0);
        if CpuPolicy::pins(gc.cpu_policy) {
            let mut pinned = std::mem::take(&mut cell.pinned_cpus);
            for_each_pinned_cpu(gc, cell, |c| {
                if free {
                    pinned.remove(c);
                } else {
                    pinned.insert(c);
                }
                true
            });
            cell.pinned_cpus = pinned;
        }
    }
    true
}

/// The general path: work on copies of the usage fields of the touched
/// cells, so an error changes nothing; the CPU sets are only read.
fn apply_via_copies(
    host: &mut HostTopology,
    fitted: &GuestTopology,
    free: bool,
) -> Result<(), UsageError> {
    let mut updates = Vec::new();
    for (i, hc) in host.cells.iter().enumerate() {
        if fitted.cells.iter().any(|g| g.id == hc.id) {
            let mut usage = Usage::of(hc);
            usage.update(hc, fitted, free)?;
            updates.push((i, usage));
        }
    }
    for (i, usage) in updates {
        usage.store(&mut host.cells[i]);
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
        cell.coerce_sets();
        update_cell(cell, fitted, free)?;
    }
    Ok(out)
}

/// The fields of a host cell that claims and frees change.
struct Usage {
    memory_usage_mb: i64,
    cpu_usage: i64,
    mempages: Vec<super::host::MemPages>,
    pinned: super::cpubits::CpuBits,
}

impl Usage {
    fn of(cell: &HostCell) -> Usage {
        Usage {
            memory_usage_mb: cell.memory_usage_mb,
            cpu_usage: cell.cpu_usage,
            mempages: cell.mempages.clone(),
            pinned: cell.pinned_cpus.clone(),
        }
    }

    fn store(self, cell: &mut HostCell) {
        cell.memory_usage_mb = self.memory_usage_mb;
        cell.cpu_usage = self.cpu_usage;
        cell.mempages = self.mempages;
        cell.pinned_cpus = self.pinned;
    }

    fn update(
        &mut self,
        cell: &HostCell,
        fitted: &GuestTopology,
        free: bool,
    ) -> Result<(), UsageError> {
        let mut scratch = cell.clone_header();
        scratch.mempages = std::mem::take(&mut self.mempages);
        scratch.pinned_cpus = std::mem::take(&mut self.pinned);
        scratch.memory_usage_mb = self.memory_usage_mb;
        scratch.cpu_usage = self.cpu_usage;
        let result = update_cell_with(&mut scratch, cell.sets(), fitted, free);
        self.mempages = scratch.mempages;
        self.pinned = scratch.pinned_cpus;
        self.memory_usage_mb = scratch.memory_usage_mb;
        self.cpu_usage = scratch.cpu_usage;
        result
    }
}

/// The usage changes of one host cell from the guest cells placed on it.
fn update_cell(cell: &mut HostCell, fitted: &GuestTopology, free: bool) -> Result<(), UsageError> {
    // The sets live in a shared schedule: a header copy reads them while the cell changes.
    let view = cell.clone_header();
    update_cell_with(cell, view.sets(), fitted, free)
}

/// `update_cell`, with the CPU sets passed apart from the usage fields.
fn update_cell_with(
    cell: &mut HostCell,
    sets: &super::host::CpuSets,
    fitted: &GuestTopology,
    free: bool,
) -> Result<(), UsageError> {
    let (pcpuset, siblings) = (&sets.pcpuset, &sets.siblings);
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
            for sib in siblings {
                if sib.iter().any(|c| cpus.contains(&c)) {
                    with_siblings.extend(sib.iter());
                }
            }
            cpus = with_siblings;
        }
        pin_or_unpin(cell, pcpuset, &cpus, free)?;
    }
    cell.memory_usage_mb = memory_usage.max(0);
    cell.cpu_usage = cpu_usage.max(0);
    Ok(())
}

/// `pin_cpus` / `unpin_cpus`: the CPUs must be known, and free to pin
/// (pinned to unpin); Nova raises otherwise.
fn pin_or_unpin(
    cell: &mut HostCell,
    pcpuset: &super::pyset::PySet,
    cpus: &BTreeSet<u32>,
    free: bool,
) -> Result<(), UsageError> {
    let (verb, unknown, invalid) = if free {
        ("unpin", "CPUUnpinningUnknown", "CPUUnpinningInvalid")
    } else {
        ("pin", "CPUPinningUnknown", "CPUPinningInvalid")
    };
    if cpus.iter().any(|c| !pcpuset.contains(*c)) {
        return err(
            unknown,
            format!("CPU set to {verb} {cpus:?} must be a subset of the known CPU set"),
        );
    }
    // Pinning needs every CPU free; unpinning needs every CPU pinned.
    if cpus.iter().any(|c| cell.pinned_cpus.contains(*c) != free) {
        let which = if free { "pinned" } else { "free" };
        return err(
            invalid,
            format!("CPU set to {verb} {cpus:?} must be a subset of {which} CPU set"),
        );
    }
    for &c in cpus {
        if free {
            cell.pinned_cpus.remove(c);
        } else {
            cell.pinned_cpus.insert(c);
        }
    }
    Ok(())
}

//! Fitting one guest cell onto one host cell (`_numa_fit_instance_cell`),
//! and packing pinned vCPUs onto cores (`_pack_instance_onto_cores`).

use super::host::{HostCell, Limits};
use super::{FitError, Mode};
use crate::request::{
    CpuPolicy, GuestCell, MEMPAGES_ANY, MEMPAGES_LARGE, MEMPAGES_SMALL, ThreadPolicy,
};
use std::collections::{BTreeMap, BTreeSet};

/// Outcome of one cell check. `NotSupported` is Nova's
/// `MemoryPageSizeNotSupported` (an explicit size the cell has no pool of);
/// the search treats it as a no-fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellFit {
    Fits,
    NoFit,
}

/// The free thread-sibling sets of a cell, in the order Nova iterates them.
fn free_siblings(host: &HostCell, mode: Mode) -> Vec<Vec<u32>> {
    match mode {
        Mode::Nova => {
            let free = host.free_pcpus();
            host.siblings()
                .iter()
                .map(|s| s.intersection(&free).to_vec())
                .collect()
        }
        Mode::Clean => {
            let free: BTreeSet<u32> = host.free_pcpus().iter().collect();
            host.siblings()
                .iter()
                .map(|s| {
                    let mut v: Vec<u32> = s.iter().filter(|c| free.contains(c)).collect();
                    v.sort_unstable();
                    v
                })
                .collect()
        }
    }
}

/// The page size a requested size resolves to on this cell, `Ok(None)` if
/// none fits, `Err(())` for an explicit size the cell does not have.
fn supported_pagesize(
    host: &HostCell,
    cell: &GuestCell,
    requested: i64,
) -> Result<Option<i64>, ()> {
    let mut sizes: Vec<i64> = host.mempages.iter().map(|p| p.size_kb).collect();
    sizes.sort_by(|a, b| b.cmp(a));
    let candidates: Vec<i64> = match requested {
        MEMPAGES_SMALL => sizes.last().copied().into_iter().collect(),
        MEMPAGES_LARGE => sizes[..sizes.len().saturating_sub(1)].to_vec(),
        MEMPAGES_ANY => sizes,
        explicit => vec![explicit],
    };
    let memory_kb = cell.memory_mb * 1024;
    for size in candidates {
        match host.can_fit_pagesize(size, memory_kb, true) {
            None => return Err(()),
            Some(true) => return Ok(Some(size)),
            Some(false) => {}
        }
    }
    Ok(None)
}

/// How a cell is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub mode: Mode,
    /// Nova's per-cell memory checks for small pages. Off for the
    /// `preferred`/`interleave` memory modes, where pages may spill to other
    /// cells and memory is checked for the host as a whole.
    pub cell_memory: bool,
}

impl Rules {
    pub fn nova() -> Rules {
        Rules {
            mode: Mode::Nova,
            cell_memory: true,
        }
    }
}

/// `_numa_fit_instance_cell`. Mutates `cell` exactly as Nova does (page
/// size, pinning, id), also when the answer is no.
pub fn fit_cell(
    host: &HostCell,
    cell: &mut GuestCell,
    limits: Option<&Limits>,
    reserved: usize,
    rules: Rules,
) -> Result<CellFit, FitError> {
    let mode = rules.mode;
    let pins = CpuPolicy::pins(cell.cpu_policy);
    let floats = CpuPolicy::floats(cell.cpu_policy);
    match cell.pagesize {
        Some(requested) if requested != 0 => match supported_pagesize(host, cell, requested) {
            Err(()) | Ok(None) => return Ok(CellFit::NoFit),
            Ok(Some(size)) => cell.pagesize = Some(size),
        },
        _ if !rules.cell_memory => {}
        _ => {
            if let Some(smallest) = host.smallest_pagesize() {
                // Overcommit is allowed for small pages, except for pinned guests.
                if host.can_fit_pagesize(smallest, cell.memory_mb * 1024, pins) != Some(true) {
                    return Ok(CellFit::NoFit);
                }
            } else if pins {
                if host.avail_memory() < cell.memory_mb {
                    return Ok(CellFit::NoFit);
                }
            } else if host.memory_mb < cell.memory_mb {
                return Ok(CellFit::NoFit);
            }
        }
    }
    if pins && cell.pcpuset.len() + reserved > host.pcpuset().len() {
        return Ok(CellFit::NoFit);
    }
    if floats && cell.cpuset.len() > host.cpuset().len() {
        return Ok(CellFit::NoFit);
    }
    if pins {
        if cell.pcpuset.len() + reserved > host.avail_pcpus() {
            return Ok(CellFit::NoFit);
        }
        if !pack_onto_cores(host, cell, reserved, mode)? {
            return Ok(CellFit::NoFit);
        }
    }
    if floats && let Some(l) = limits {
        let cpu_usage = (host.cpu_usage + cell.cpuset.len() as i64) as f64;
        if cpu_usage > host.cpuset().len() as f64 * l.cpu_allocation_ratio {
            return Ok(CellFit::NoFit);
        }
        let ram_usage = (host.memory_usage_mb + cell.memory_mb) as f64;
        if rules.cell_memory && ram_usage > host.memory_mb as f64 * l.ram_allocation_ratio {
            return Ok(CellFit::NoFit);
        }
    }
    cell.id = host.id;
    Ok(CellFit::Fits)
}

/// Necessary conditions of `fit_cell` that read nothing the fit mutates
/// (CPU counts, free pCPUs, overcommit limits, small-page memory): if they
/// fail, `fit_cell` refuses the pair whatever state the request is in.
/// Cheap, allocation-free, and never refuses a pair `fit_cell` accepts.
pub fn may_fit(
    host: &HostCell,
    cell: &GuestCell,
    limits: Option<&Limits>,
    reserved: usize,
    rules: Rules,
) -> bool {
    let pins = CpuPolicy::pins(cell.cpu_policy);
    let floats = CpuPolicy::floats(cell.cpu_policy);
    if rules.cell_memory && matches!(cell.pagesize, None | Some(0)) {
        let memory_ok = match host.smallest_pagesize() {
            Some(smallest) => {
                host.can_fit_pagesize(smallest, cell.memory_mb * 1024, pins) == Some(true)
            }
            None if pins => host.avail_memory() >= cell.memory_mb,
            None => host.memory_mb >= cell.memory_mb,
        };
        if !memory_ok {
            return false;
        }
    }
    if pins
        && (cell.pcpuset.len() + reserved > host.pcpuset().len()
            || cell.pcpuset.len() + reserved > host.avail_pcpus())
    {
        return false;
    }
    if floats && cell.cpuset.len() > host.cpuset().len() {
        return false;
    }
    if floats && let Some(l) = limits {
        if (host.cpu_usage + cell.cpuset.len() as i64) as f64
            > host.cpuset().len() as f64 * l.cpu_allocation_ratio
        {
            return false;
        }
        if rules.cell_memory
            && (host.memory_usage_mb + cell.memory_mb) as f64
                > host.memory_mb as f64 * l.ram_allocation_ratio
        {
            return false;
        }
    }
    true
}

type Pinning = Vec<(u32, u32)>;

/// `_get_pinning`: the first `threads_no` threads of each set, zipped with
/// the sorted vCPUs.
fn get_pinning(threads_no: usize, sets: &[Vec<u32>], cores: &[u32]) -> Option<Pinning> {
    if threads_no * sets.len() < cores.len() {
        return None;
    }
    let usable = sets.iter().flat_map(|s| s.iter().take(threads_no).copied());
    Some(cores.iter().copied().zip(usable).collect())
}

/// `_get_reserved`: the pCPUs for emulator threads, taken from what the
/// pinning left of `sets`.
fn get_reserved(
    sets: &[Vec<u32>],
    pinning: &Option<Pinning>,
    n: usize,
    isolate: bool,
) -> Option<Vec<u32>> {
    let pinning = pinning.as_ref().filter(|p| !p.is_empty())?;
    if n == 0 {
        return None;
    }
    let mut usable: Vec<Vec<u32>> = sets.to_vec();
    for &(_, pcpu) in pinning {
        if let Some(pos) = usable.iter().position(|s| s.contains(&pcpu)) {
            if isolate {
                usable.remove(pos);
            } else {
                let sib = &mut usable[pos];
                let at = sib.iter().position(|&c| c == pcpu).expect("found above");
                sib.remove(at);
            }
        }
    }
    let reserved: Vec<u32> = usable.iter().flatten().copied().take(n).collect();
    if reserved.is_empty() {
        None
    } else {
        Some(reserved)
    }
}

/// `_pack_instance_onto_cores`: pins `cell.pcpuset` onto free threads of
/// `host`; on success sets pinning, id and `cpuset_reserved`.
fn pack_onto_cores(
    host: &HostCell,
    cell: &mut GuestCell,
    reserved: usize,
    mode: Mode,
) -> Result<bool, FitError> {
    let Some(threads_per_core) = host.siblings().iter().map(|s| s.len()).max() else {
        return Err(FitError {
            kind: "ValueError",
            message: "max() arg is an empty sequence (host cell has no siblings)".into(),
        });
    };
    let threads_per_core = threads_per_core.max(1);
    let free = free_siblings(host, mode);
    // threads_no -> free sibling sets with at least that many free threads.
    let mut sibling_sets: BTreeMap<usize, Vec<Vec<u32>>> = BTreeMap::new();
    for sib in &free {
        for t in 1..=sib.len() {
            sibling_sets.entry(t).or_default().push(sib.clone());
        }
    }
    let empty = Vec::new();
    let ones = sibling_sets.get(&1).unwrap_or(&empty);
    let cores: Vec<u32> = cell.pcpuset.iter().copied().collect();
    let policy = cell.cpu_thread_policy;

    let (pinning, cpuset_reserved) = if policy == Some(ThreadPolicy::Isolate) {
        let Some(full) = sibling_sets.get(&threads_per_core) else {
            return Ok(false);
        };
        // Legacy `vcpu_pin_set` hosts only (cpuset == pcpuset); bug #1889633 otherwise.
        if threads_per_core != 1 && !same_members(&host.pcpuset().to_vec(), &host.cpuset().to_vec())
        {
            return Ok(false);
        }
        let pinning = get_pinning(1, full, &cores);
        let res = get_reserved(ones, &pinning, reserved, true);
        if pinning.as_ref().is_none_or(|p| p.is_empty()) || (reserved > 0 && res.is_none()) {
            return Ok(false);
        }
        (pinning, res)
    } else {
        let require = policy == Some(ThreadPolicy::Require);
        if require && threads_per_core <= 1 {
            return Ok(false);
        }
        let mut pinning: Option<Pinning> = None;
        let mut res: Option<Vec<u32>> = None;
        // Nova reuses the loop variable after the loop (its last value).
        let mut threads_no = 1usize;
        for (&t, sets) in sibling_sets.iter().rev() {
            threads_no = t;
            if require && t <= 1 {
                continue;
            }
            pinning = get_pinning(t, sets, &cores);
            res = get_reserved(ones, &pinning, reserved, false);
            if pinning.is_none() || (reserved > 0 && res.is_none()) {
                continue;
            }
            break;
        }
        if !require && pinning.as_ref().is_none_or(|p| p.is_empty()) {
            let singles: Vec<Vec<u32>> = ones.iter().flatten().map(|&c| vec![c]).collect();
            pinning = get_pinning(threads_no, &singles, &cores);
            res = get_reserved(&singles, &pinning, reserved, false);
        }
        (pinning, res)
    };
    let Some(pinning) = pinning else {
        return Ok(false);
    };
    if reserved > 0 && cpuset_reserved.is_none() {
        return Ok(false);
    }
    if !pinning.is_empty() {
        let map = cell.cpu_pinning.get_or_insert_with(BTreeMap::new);
        for (vcpu, pcpu) in pinning {
            map.insert(vcpu, pcpu);
        }
    }
    cell.id = host.id;
    cell.cpuset_reserved = cpuset_reserved.map(|r| r.into_iter().collect());
    Ok(true)
}

fn same_members(a: &[u32], b: &[u32]) -> bool {
    let a: BTreeSet<u32> = a.iter().copied().collect();
    let b: BTreeSet<u32> = b.iter().copied().collect();
    a == b
}

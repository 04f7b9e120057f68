//! Why a host does not take a guest, and why a guest was not placed, as
//! values: which resource, how much was asked, how much was left, on which
//! cell or host. The scheduler, `explain` and `rejections.csv` all get
//! these from the one host check (`Simulation::check_host`); the words are
//! made at the edge (`report::words`).

use super::memory::MemoryMode;
use crate::request::RequestError;

/// Why one host does not take a guest.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The request itself is invalid, so no host can take it (`explain` only:
    /// the scheduler refuses such a guest before checking hosts).
    InvalidRequest(RequestError),
    /// The host-level check: the host's vCPUs at its CPU allocation ratio.
    HostVcpus { asked: i64, ratio: f64 },
    /// The host-level check: the host's memory at its RAM allocation ratio.
    HostMemory { asked_mb: i64, ratio: f64 },
    /// No node with CPUs has `asked_mb` of free memory; `binding` names
    /// the libvirt binding that needs one (`cpuset=auto`).
    NoNodeWithMemory {
        asked_mb: f64,
        binding: &'static str,
    },
    /// The host lacks NUMA nodes of an operator's nodeset.
    MissingNodes { nodeset: Vec<i64> },
    /// Nova's fit found no cells (`why` says what is short, when analysed).
    NoFit(FitShortfall),
    /// Nova's scheduler: Placement returns no candidate with room for
    /// `asked` of resource class `class` (at its allocation ratio, less
    /// what is reserved), or the host has no inventory of it.
    Placement { class: &'static str, asked: i64 },
    /// Nova's scheduler: Placement's trait check (`required` or forbidden).
    PlacementTrait { name: &'static str, required: bool },
    /// The host lacks free PCI devices for the guest's requests (`asked` devices in all).
    PciDevices { asked: i64 },
    /// The devices exist, but not where the guest's PCI NUMA affinity
    /// policy allows with the cells the guest could get.
    PciNotLocal { asked: i64 },
    /// Nova's scheduler: an enabled filter refused the host.
    Filter { filter: &'static str },
}

/// Why Nova's fit found no host cells for a guest.
#[derive(Debug, Clone, PartialEq)]
pub enum FitShortfall {
    /// Not analysed (the scheduler's hot path does not ask).
    Unexplained,
    /// Guest cell `guest_cell` fits on no host cell; `short` is what most
    /// host cells lack.
    Cell { guest_cell: usize, short: CellShort },
    /// Each guest cell fits somewhere, but not all together (distinct
    /// cells, thread policy or page size).
    NotTogether,
}

/// What a host cell lacks for one guest cell (amounts are the guest cell's asks).
#[derive(Debug, Clone, PartialEq)]
pub enum CellShort {
    /// Free dedicated pCPUs (the vCPUs to pin plus a reserved emulator CPU).
    Pcpus { asked: usize },
    /// Shared CPUs for floating vCPUs.
    SharedCpus { asked: usize },
    /// Room for floating vCPUs at the CPU allocation ratio.
    CpuRatio { asked: usize, ratio: f64 },
    /// Free memory in pages of one size.
    PageMemory { asked_mb: i64, page_kb: i64 },
    /// Free memory in any large page size.
    LargePageMemory { asked_mb: i64 },
    /// Free small-page memory.
    Memory { asked_mb: i64 },
}

impl CellShort {
    /// The order in which Nova's cell fit checks these (CPUs, then memory).
    pub fn check_order(&self) -> u8 {
        match self {
            CellShort::Pcpus { .. } => 0,
            CellShort::SharedCpus { .. } => 1,
            CellShort::CpuRatio { .. } => 2,
            CellShort::PageMemory { .. } => 3,
            CellShort::LargePageMemory { .. } => 4,
            CellShort::Memory { .. } => 5,
        }
    }
}

impl Refusal {
    /// Whether two refusals are the same reason, apart from per-host amounts
    /// (what is left differs from host to host; what is asked does not).
    #[inline]
    pub fn same_reason(&self, other: &Refusal) -> bool {
        match (self, other) {
            // Which guest cell is short does not change the reason.
            (
                Refusal::NoFit(FitShortfall::Cell { short, .. }),
                Refusal::NoFit(FitShortfall::Cell { short: s2, .. }),
            ) => short == s2,
            _ => self == other,
        }
    }
}

/// Refusals grouped by reason, each with the number of hosts giving it,
/// in the order first met.
pub fn group(refusals: impl IntoIterator<Item = Refusal>) -> Vec<(Refusal, usize)> {
    let mut out: Vec<(Refusal, usize)> = Vec::new();
    // Hosts in a row mostly give the same reason: try the last one first.
    let mut last = 0;
    for r in refusals {
        if let Some((g, n)) = out.get_mut(last)
            && g.same_reason(&r)
        {
            *n += 1;
            continue;
        }
        match out.iter().position(|(g, _)| g.same_reason(&r)) {
            Some(k) => {
                out[k].1 += 1;
                last = k;
            }
            None => {
                last = out.len();
                out.push((r, 1));
            }
        }
    }
    out
}

/// Why an arriving guest was not placed (or not kept).
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// The request itself is invalid (Nova refuses it before scheduling).
    InvalidRequest(RequestError),
    /// No host passed: each reason with the number of hosts giving it.
    NoHost(Vec<(Refusal, usize)>),
    /// Placed on `host`, then killed at once: its pages did not fit its
    /// nodes under `mode`.
    OomKilledAtStart { host: usize, mode: MemoryMode },
}

//! What the simulation reports as it runs: decisions, costs, departures,
//! growth, rejections and rebalancing, to an [`Observer`].

use super::binding::Binding;
use super::cost::GuestCost;
use super::engine::Simulation;
use super::refusal::Rejection;
use crate::request::RequestError;
use crate::workload::model::TraceRow;

/// What happened to an arrival.
#[derive(Debug, Clone)]
pub enum Decision<'a> {
    Placed {
        host: usize,
        binding: &'a Binding,
    },
    /// No host passed, or the request is invalid (`error`).
    Rejected {
        error: Option<RequestError>,
    },
    /// Placed, then killed at once: its pages did not fit (strict mode).
    OomKilled {
        host: usize,
    },
}

/// Receives the simulation's events. All methods have empty defaults.
pub trait Observer {
    fn arrival(&mut self, _t: f64, _row: &TraceRow, _decision: &Decision, _sim: &Simulation) {}
    /// A placed guest's cost, right after placement.
    fn guest_cost(&mut self, _t: f64, _row: &TraceRow, _cost: &GuestCost) {}
    /// A placed guest's PCI devices, right after placement.
    fn devices(&mut self, _t: f64, _row: &TraceRow, _use: &super::cost::DeviceUse) {}
    fn departure(&mut self, _t: f64, _row: usize, _sim: &Simulation) {}
    /// A running guest's touched memory grew (`flavors.growth`).
    fn growth(&mut self, _t: f64, _row: usize, _outcome: GrowthOutcome, _sim: &Simulation) {}
    /// Whether to work out why each rejected guest was rejected (costs a
    /// check of every host per rejection).
    fn wants_reasons(&self) -> bool {
        false
    }
    /// Why a guest was rejected or killed at once (only when `wants_reasons`).
    fn rejection(&mut self, _t: f64, _row: &TraceRow, _why: &Rejection) {}
    /// numad or autonuma acted on a running guest (its cost is already updated).
    fn rebalance(&mut self, _t: f64, _row: usize, _outcome: Rebalanced, _sim: &Simulation) {}
}

/// What one rebalancing step did to a guest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebalanced {
    /// The policy moved the guest to another nodeset.
    pub moved: bool,
    /// MB of its pages that migrated.
    pub migrated_mb: f64,
}

/// What growing did to a guest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrowthOutcome {
    /// The new pages fit; `spilled_mb` of them outside the guest's own cells.
    Grew { spilled_mb: f64 },
    /// They did not: the kernel killed the guest, `after_s` into its life.
    Killed { after_s: f64 },
}

//! `closest` (beyond Nova): among the fitting orderings of host cells, the
//! one whose cells are closest together by SLIT (`fit::search::fit_closest`).
//! Guests without a NUMA topology float.

use super::{Entry, GuestView, HostView, PlacementPolicy, Verdict};
use crate::fit::FitError;
use crate::fit::search::fit_closest;
use crate::sim::binding::Binding;
use crate::sim::refusal::{FitShortfall, Refusal};
use std::sync::Arc;

pub const ENTRY: Entry = Entry {
    name: "closest",
    about: "beyond Nova: the fitting host cells closest together by SLIT",
    takes_numatunes: false,
    build: |_| Arc::new(Closest),
};

#[derive(Debug, Clone, Copy)]
pub struct Closest;

impl PlacementPolicy for Closest {
    fn uses_numa_topology(&self) -> bool {
        true
    }

    fn bind(&self, host: &HostView, guest: &GuestView) -> Result<Verdict, FitError> {
        let Some(request) = guest.numa_request(self) else {
            return Ok(Ok(Binding::Float));
        };
        let h = host.host;
        let fitted = fit_closest(&h.topo, request, host.limits, &h.model.distances, &host.fit)?;
        Ok(fitted
            .map(Binding::Cells)
            .ok_or(Refusal::NoFit(FitShortfall::Unexplained)))
    }
}

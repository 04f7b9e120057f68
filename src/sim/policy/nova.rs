//! `nova`: Nova's fit (`numa_fit_instance_to_host`), the first fitting
//! ordering of host cells. Guests without a NUMA topology float.

use super::{Entry, GuestView, HostView, PlacementPolicy, Verdict};
use crate::fit::{FitError, fit_instance_to_host};
use crate::sim::binding::Binding;
use crate::sim::refusal::{FitShortfall, Refusal};
use std::sync::Arc;

pub const ENTRY: Entry = Entry {
    name: "nova",
    about: "Nova's fit: the first fitting ordering of host cells",
    takes_numatunes: false,
    build: |_| Arc::new(Nova),
};

#[derive(Debug, Clone, Copy)]
pub struct Nova;

impl PlacementPolicy for Nova {
    fn uses_numa_topology(&self) -> bool {
        true
    }

    fn bind(&self, host: &HostView, guest: &GuestView) -> Result<Verdict, FitError> {
        let Some(request) = guest.numa_request(self) else {
            return Ok(Ok(Binding::Float));
        };
        let fitted = fit_instance_to_host(
            &host.host.topo,
            request,
            host.limits,
            &super::pci_context(host, guest),
            &host.fit,
        )?;
        Ok(fitted
            .map(Binding::Cells)
            .ok_or(Refusal::NoFit(FitShortfall::Unexplained)))
    }
}

//! `cpuset-auto`: `virt-install --cpuset=auto` (the libvirt affinity
//! post). The node with the most free memory that can hold the guest's
//! touched memory; vCPUs confined to its CPUs; no memory binding, so pages
//! follow the CPUs there and spill by distance when it fills. Extra specs
//! are ignored. A host with no such node does not pass.

use super::{Entry, GuestView, HostView, PlacementPolicy, Verdict, emptiest_cell_holding};
use crate::fit::FitError;
use crate::sim::binding::Binding;
use crate::sim::refusal::Refusal;
use std::sync::Arc;

pub const ENTRY: Entry = Entry {
    name: "cpuset-auto",
    about: "virt-install --cpuset=auto: vCPUs on the node with most free memory",
    takes_numatunes: false,
    build: |_| Arc::new(CpusetAuto),
};

#[derive(Debug, Clone, Copy)]
pub struct CpusetAuto;

impl PlacementPolicy for CpusetAuto {
    fn bind(&self, host: &HostView, guest: &GuestView) -> Result<Verdict, FitError> {
        Ok(emptiest_cell_holding(host, guest.touched_mb)
            .map(Binding::Node)
            .ok_or(Refusal::NoNodeWithMemory {
                asked_mb: guest.touched_mb,
                binding: "cpuset=auto",
            }))
    }
}

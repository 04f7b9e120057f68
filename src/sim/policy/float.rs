//! `float`: no NUMA placement (Nova before the NUMA spec; libvirt's
//! default). Extra specs are ignored; vCPUs float over the whole host and
//! pages land where they run (local allocation, in proportion to CPUs).

use super::{Entry, GuestView, HostView, PlacementPolicy, Verdict};
use crate::fit::FitError;
use crate::sim::binding::Binding;
use std::sync::Arc;

pub const ENTRY: Entry = Entry {
    name: "float",
    about: "no NUMA placement: vCPUs float over the host, pages where they run",
    takes_numatunes: false,
    build: |_| Arc::new(Float),
};

#[derive(Debug, Clone, Copy)]
pub struct Float;

impl PlacementPolicy for Float {
    fn bind(&self, _host: &HostView, _guest: &GuestView) -> Result<Verdict, FitError> {
        Ok(Ok(Binding::Float))
    }
}

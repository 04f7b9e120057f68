//! `manual`: an operator's explicit `<numatune>` per flavor (oVirt's NUMA
//! tuning). vCPUs over the nodeset's CPUs, memory in the tuning's mode over
//! it, guest virtual NUMA cells mapped onto its nodes in turn; Nova's fit
//! is not used. Hosts lacking a node of the nodeset do not pass; flavors
//! without a tuning float.

use super::{Entry, GuestView, HostView, PlacementPolicy, PolicyParams, Verdict};
use crate::fit::FitError;
use crate::sim::binding::{Binding, ManualTuning};
use crate::sim::refusal::Refusal;
use std::sync::Arc;

pub const ENTRY: Entry = Entry {
    name: "manual",
    about: "an operator's numatune per flavor (oVirt's NUMA tuning)",
    takes_numatunes: true,
    build: |p: &PolicyParams| {
        Arc::new(Manual {
            numatunes: p.numatunes.clone(),
        })
    },
};

#[derive(Debug, Clone)]
pub struct Manual {
    /// Per catalog flavor.
    pub numatunes: Vec<Option<ManualTuning>>,
}

impl PlacementPolicy for Manual {
    fn bind(&self, host: &HostView, guest: &GuestView) -> Result<Verdict, FitError> {
        let Some(Some(tuning)) = self.numatunes.get(guest.flavor_index) else {
            return Ok(Ok(Binding::Float));
        };
        let model = &host.host.model;
        if tuning
            .nodeset
            .iter()
            .any(|id| model.cell_index(*id).is_none())
        {
            return Ok(Err(Refusal::MissingNodes {
                nodeset: tuning.nodeset.clone(),
            }));
        }
        Ok(Ok(Binding::Numatune {
            tuning: tuning.clone(),
            guest_cells: guest.request.map_or(0, |r| r.cells.len()),
        }))
    }
}

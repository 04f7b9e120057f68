//! One guest placed on one host by any placement policy, through the
//! simulator's one host check (not a second reading of the policy): what
//! `numasim libvirt xml --placement NAME` writes the domain of.

use super::xml::PolicyPlacement;
use crate::fit::{HostTopology, Limits};
use crate::request::{Flavor, ImageProps, numa_get_constraints};
use crate::sim::engine::{SimError, Simulation};
use crate::sim::fleet::{HostModel, SimHost};
use crate::sim::memory::MemoryMode;
use crate::sim::observer::Observer;
use crate::sim::policy::PlacementPolicy;
use crate::sim::{SimConfig, Strategy};
use crate::workload::model::{Catalog, TraceRow};
use std::sync::Arc;

/// What the one placement needs.
pub struct OneGuest {
    pub host: HostTopology,
    /// SLIT by host cell position, if known.
    pub distances: Option<Vec<Vec<u32>>>,
    pub limits: Option<Limits>,
    pub flavor: Flavor,
    pub image_props: Vec<(String, String)>,
    pub policy: Arc<dyn PlacementPolicy>,
    pub memory_mode: MemoryMode,
}

struct Quiet;
impl Observer for Quiet {}

/// The guest's binding under the policy, or `None` when the host does not
/// take it (the reason is `explain`'s business).
pub fn place(one: OneGuest) -> Result<Option<PolicyPlacement>, SimError> {
    let request = ImageProps::from_pairs(&one.image_props)
        .and_then(|image| numa_get_constraints(&one.flavor, &image))
        .ok()
        .flatten();
    let vcpus = one.flavor.vcpus;
    let auto = one.policy.libvirt_auto_placement();
    let model = HostModel::from_topology(&one.host, one.distances);
    let host = SimHost::new("host".into(), one.host, Arc::new(model));
    let catalog = Catalog::new(vec![one.flavor]).expect("one flavor has no duplicate");
    let config = SimConfig {
        strategy: Strategy::Spread,
        limits: one.limits,
        memory_mode: Some(one.memory_mode),
        touched_fraction: vec![1.0],
        policy: one.policy,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(vec![host], catalog, config);
    let row = TraceRow {
        row: 0,
        line: 1,
        id: "guest".into(),
        arrival_s: 0.0,
        departure_s: None,
        flavor: 0,
        image_props: one.image_props,
    };
    sim.run_arrivals(std::iter::once(Ok(row)), &mut Quiet)?;
    Ok(sim.binding_of(0).map(|(_, binding)| PolicyPlacement {
        binding: binding.clone(),
        request,
        vcpus,
        auto,
    }))
}

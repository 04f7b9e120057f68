//! A placement policy written outside numasim's source, registered by
//! name and run on a shipped scenario through the library.
//!
//! The policy: best fit by free vCPUs (the host with the fewest free vCPUs
//! that still takes the guest), and the guest bound, vCPUs and memory, to
//! that host's emptiest NUMA node (the node with CPUs and the most free
//! memory, if it holds the guest's touched memory).
//!
//! Run it: `cargo run --release --example best_fit_policy [SCENARIO]`
//! (default `scenarios/quickstart.toml`). It compares the scenario's own
//! policies with this one and writes the usual CSVs to
//! `target/best-fit-example/`.

use numasim::experiment::run::{Overrides, prepare_scenario};
use numasim::experiment::scenario::{PolicySpec, Scenario};
use numasim::fit::FitError;
use numasim::sim::binding::{Binding, ManualTuning};
use numasim::sim::memory::MemoryMode;
use numasim::sim::policy::{
    Entry, GuestView, HostView, PlacementPolicy, Registry, Verdict, emptiest_cell_holding,
};
use numasim::sim::refusal::Refusal;
use std::sync::Arc;

/// The name scenario files use for it: `placement = "best-fit-emptiest-node"`.
pub const NAME: &str = "best-fit-emptiest-node";

pub struct BestFitEmptiestNode;

impl PlacementPolicy for BestFitEmptiestNode {
    fn bind(&self, host: &HostView, guest: &GuestView) -> Result<Verdict, FitError> {
        let Some(node) = emptiest_cell_holding(host, guest.touched_mb) else {
            return Ok(Err(Refusal::NoNodeWithMemory {
                asked_mb: guest.touched_mb,
                binding: NAME,
            }));
        };
        Ok(Ok(Binding::Numatune {
            tuning: ManualTuning {
                nodeset: vec![host.host.model.cell_ids[node]],
                mode: host.memory_mode.unwrap_or(MemoryMode::Strict),
            },
            guest_cells: 0,
        }))
    }

    /// Fewest free vCPUs first: the tightest host that passes wins.
    fn host_key(&self, host: &HostView) -> Option<i64> {
        Some(host.host.total_cpus - host.host.vcpu_used)
    }
}

/// Registers the policy: the one line a program adds.
pub fn register(registry: &mut Registry) {
    registry.register(Entry {
        name: NAME,
        about: "best fit by free vCPUs, bound to the emptiest node",
        takes_numatunes: false,
        build: |_| Arc::new(BestFitEmptiestNode),
    });
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "scenarios/quickstart.toml".into());
    let path = std::path::Path::new(&path);
    let mut scenario = Scenario::parse(&std::fs::read_to_string(path)?)?;
    // The scenario's own policies, plus ours under each memory mode it uses.
    let mut modes: Vec<MemoryMode> = scenario.policies.iter().map(|p| p.memory_mode).collect();
    modes.dedup();
    for memory_mode in modes {
        scenario.policies.push(PolicySpec {
            placement: NAME.into(),
            name: Some(format!("best-fit-{}", memory_mode.as_str())),
            memory_mode,
            ..PolicySpec::default()
        });
    }
    let mut ov = Overrides::default();
    register(&mut ov.registry);
    let prepared = prepare_scenario(scenario, path, &ov)?;
    let results = prepared.run_all(&|| {})?;
    print!("{}", numasim::report::summary::comparison_table(&results));
    let out = std::path::Path::new("target/best-fit-example");
    let from = numasim::report::html::Provenance {
        scenario_text: "scenarios/quickstart.toml with best-fit policies added",
        command_line: "cargo run --release --example best_fit_policy",
    };
    numasim::report::summary::write_run(out, &prepared, &results, Some(&from))?;
    println!("results in {}", out.display());
    Ok(())
}

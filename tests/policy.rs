//! Placement policies as plug-ins: a policy written outside `src/`
//! (`examples/best_fit_policy.rs`), registered by name, deciding on a
//! hand-checked fleet and running a shipped scenario.

#[path = "../examples/best_fit_policy.rs"]
#[allow(dead_code)]
mod example;

use numasim::experiment::run::{Overrides, prepare_scenario};
use numasim::experiment::scenario::{PolicySpec, Scenario};
use numasim::sim::fleet::fleet_from_json;
use numasim::sim::memory::MemoryMode;
use numasim::sim::policy::{PolicyParams, Registry};
use numasim::sim::{Binding, Decision, Observer, Rejection, SimConfig, Simulation};
use numasim::workload::trace::{TraceReader, TraceRow, read_catalog};

/// Two hosts, each two cells of 4 CPUs and 4096 MB.
fn two_hosts() -> String {
    let host = r#"{"cells": [
      {"id": 0, "cpus": [0, 1, 2, 3], "pcpus": [], "memory_mb": 4096, "siblings": [[0], [1], [2], [3]],
       "mempages": [{"size_kb": 4, "total": 1048576, "used": 0}]},
      {"id": 1, "cpus": [4, 5, 6, 7], "pcpus": [], "memory_mb": 4096, "siblings": [[4], [5], [6], [7]],
       "mempages": [{"size_kb": 4, "total": 1048576, "used": 0}]}],
      "distances": [[10, 21], [21, 10]]}"#;
    format!(r#"{{"hosts": [{{"name": "h0", "host": {host}}}, {{"name": "h1", "host": {host}}}]}}"#)
}

#[derive(Default)]
struct Seen {
    placed: Vec<String>,
    why: Vec<(String, Rejection)>,
}

impl Observer for Seen {
    fn arrival(&mut self, _t: f64, row: &TraceRow, d: &Decision, sim: &Simulation) {
        if let Decision::Placed { host, binding } = d {
            let Binding::Numatune { tuning, .. } = binding else {
                panic!("{}: bound as {binding:?}", row.id);
            };
            self.placed.push(format!(
                "{} {} {:?}",
                row.id, sim.hosts[*host].name, tuning.nodeset
            ));
        }
    }
    fn wants_reasons(&self) -> bool {
        true
    }
    fn rejection(&mut self, _t: f64, row: &TraceRow, why: &Rejection) {
        self.why.push((row.id.clone(), why.clone()));
    }
}

#[test]
fn an_external_policy_decides_as_hand_checked() {
    let mut registry = Registry::builtin();
    example::register(&mut registry);
    let policy = registry
        .build(example::NAME, &PolicyParams::default())
        .unwrap();
    let catalog =
        read_catalog("name,vcpus,memory_mb,extra_specs\nsmall,2,2048,\nbig,4,3072,\n".as_bytes())
            .unwrap();
    let config = SimConfig {
        limits: Some(numasim::fit::Limits {
            cpu_allocation_ratio: 1.0,
            ram_allocation_ratio: 1.0,
            network_metadata: None,
        }),
        memory_mode: Some(MemoryMode::Strict),
        policy,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(
        fleet_from_json(&two_hosts()).unwrap(),
        catalog.clone(),
        config,
    );
    let trace = "id,arrival_s,departure_s,flavor\ng1,1,,small\ng2,2,,small\ng3,3,,big\ng4,4,,small\ng5,5,,big\ng6,6,,big\n";
    let rows = TraceReader::new(trace.as_bytes(), &catalog, false).unwrap();
    let mut seen = Seen::default();
    sim.run(rows, &mut seen).unwrap();
    // Best fit by free vCPUs (ties: fleet order), then the node with most
    // free memory (ties: the first):
    // g1: both hosts 8 free -> h0, nodes 4096/4096 -> 0.
    // g2: h0 has 6 free, h1 8 -> h0; node 1 is emptier.
    // g3 (4 vCPUs, 3072 MB): h0 (4 free) has 2048 MB per node -> refused;
    //     h1, node 0.
    // g4: h0 and h1 both 4 free -> h0; nodes 2048/2048 -> 0.
    // g5: h0 (2 free) lacks vCPUs; h1, node 1 (4096 free, node 0 1024).
    assert_eq!(
        seen.placed,
        [
            "g1 h0 [0]",
            "g2 h0 [1]",
            "g3 h1 [0]",
            "g4 h0 [0]",
            "g5 h1 [1]"
        ]
    );
    // g6: no host has 4 vCPUs left: one reason, counted on both hosts.
    assert_eq!(seen.why.len(), 1);
    let (id, why) = &seen.why[0];
    assert_eq!(id, "g6");
    assert_eq!(
        numasim::report::words::rejection(why, |h| ["h0", "h1"][h]),
        "no room for 4 more vCPUs at cpu_allocation_ratio 1 on 2 hosts"
    );
    assert!(sim.accounting_ok());
}

#[test]
fn an_external_policy_runs_a_shipped_scenario_by_name() {
    let path = std::path::Path::new("scenarios/quickstart.toml");
    let mut scenario = Scenario::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    scenario.seeds = vec![1];
    scenario.policies = vec![PolicySpec {
        placement: example::NAME.into(),
        ..PolicySpec::default()
    }];
    // Not registered: refused with the names that are.
    let err = prepare_scenario(scenario.clone(), path, &Overrides::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("policies[0].placement")
            && err.contains(example::NAME)
            && err.contains("nova, closest"),
        "{err}"
    );
    let mut ov = Overrides::default();
    example::register(&mut ov.registry);
    let prepared = prepare_scenario(scenario, path, &ov).unwrap();
    let results = prepared.run_all(&|| {}).unwrap();
    let m = &results[0].metrics;
    assert_eq!(results[0].policy, "spread-strict-best-fit-emptiest-node");
    assert!(m.placed > 2000, "{}", m.placed);
    // Every guest is bound, vCPUs and memory, to one node that holds it.
    assert_eq!(m.spanning_guests, 0);
    assert_eq!(m.remote_access_fraction, 0.0);
    assert_eq!(m.killed_at_start, 0);
}

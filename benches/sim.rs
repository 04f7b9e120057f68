//! Event-loop benchmarks: whole quickstart runs (32 hosts, 4000 guests, with
//! NUMA, pinned and hugepage flavors) per policy, reported by criterion as
//! events per second (arrivals and departures). Whole-fleet runs at 1k to
//! 50k hosts are `numasim bench` (see benches/results/).
//!
//!     cargo bench --bench sim

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use numasim::experiment::run::{Overrides, prepare};
use std::hint::black_box;

fn event_loop(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.toml");
    let prepared = prepare(&path, &Overrides::default()).expect("the quickstart prepares");
    let mut group = c.benchmark_group("event_loop");
    group.sample_size(20);
    for (p, spec) in prepared.scenario.policies.iter().enumerate() {
        let events = prepared.run_one(p, 1).expect("runs").events;
        group.throughput(Throughput::Elements(events));
        group.bench_function(spec.name(), |b| {
            b.iter(|| black_box(prepared.run_one(p, 1).expect("runs").placements))
        });
    }
    group.finish();
}

// Criterion's own charts would need a system font; numasim's plotters build has
// none registered here, and the figures are what matters.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = event_loop
}
criterion_main!(benches);

//! Fit engine benchmarks.
//!
//! `cargo bench --bench fit` prints, like the oracle's `--bench`, the median
//! per fit call over the shared cases (fit only, and with constraint
//! parsing), then criterion figures for the 16-cell host with 8-cell guests.

use criterion::{Criterion, criterion_group};
use numasim::fit::Mode;
use numasim::fit::case::prepare;
use serde_json::Value;
use std::hint::black_box;
use std::time::Instant;

fn load(rel: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median over cases of the per-case median of `reps` timed calls (µs).
fn per_case_medians(cases: &[Value], reps: usize) -> (f64, f64, usize) {
    let mut fit_only = Vec::new();
    let mut with_parse = Vec::new();
    for case in cases {
        let Ok(prepared) = prepare(case).and_then(|p| p.with_pci(case)) else {
            continue;
        };
        if prepared.request.is_none() {
            continue;
        }
        let mut t = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            black_box(prepared.fit(Mode::Nova).unwrap());
            t.push(start.elapsed().as_secs_f64() * 1e6);
        }
        fit_only.push(median(&mut t));
        let mut t = Vec::with_capacity(reps);
        for _ in 0..reps {
            let start = Instant::now();
            let request =
                numasim::request::numa_get_constraints(&prepared.flavor, &prepared.image).unwrap();
            black_box(request);
            black_box(prepared.fit(Mode::Nova).unwrap());
            t.push(start.elapsed().as_secs_f64() * 1e6);
        }
        with_parse.push(median(&mut t));
    }
    let n = fit_only.len();
    (median(&mut fit_only), median(&mut with_parse), n)
}

fn shared_cases() {
    let cases = load("tests/data/fit-cases/cases.jsonl");
    let (fit, both, n) = per_case_medians(&cases, 21);
    println!("shared fit cases: {n} cases with a guest topology");
    println!("  median per fit call:                    {fit:.2} µs   (Nova 34.0.0: 129 µs)");
    println!("  median per call with constraint parsing: {both:.2} µs   (Nova 34.0.0: 331 µs)");
}

fn sixteen_cells(c: &mut Criterion) {
    let cases = load("benches/data/sixteen-cells.jsonl");
    let mut group = c.benchmark_group("sixteen_cells");
    for case in &cases {
        let prepared = prepare(case).unwrap();
        let id = case["id"].as_str().unwrap().to_string();
        group.bench_function(&id, |b| {
            b.iter(|| black_box(prepared.fit(Mode::Nova).unwrap()))
        });
        group.bench_function(format!("{id}-clean"), |b| {
            b.iter(|| black_box(prepared.fit(Mode::Clean).unwrap()))
        });
    }
    group.finish();
}

// Criterion's own charts would need a system font; numasim's plotters build has
// none registered here, and the figures are what matters.
criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = sixteen_cells
}

fn main() {
    shared_cases();
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Every parser of user input, fed arbitrary bytes and mutated valid
//! inputs: an error or a value, never a panic.

use proptest::prelude::*;

/// A valid input with a few bytes overwritten, inserted or cut.
fn mutated(seed: &'static str) -> impl Strategy<Value = String> {
    (
        proptest::collection::vec((0usize..4096, any::<u8>(), 0u8..3), 1..6),
        Just(seed),
    )
        .prop_map(|(edits, seed)| {
            let mut b = seed.as_bytes().to_vec();
            for (at, byte, kind) in edits {
                let at = at % (b.len() + 1);
                match kind {
                    0 if at < b.len() => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ => {
                        b.truncate(at);
                    }
                }
            }
            String::from_utf8_lossy(&b).into_owned()
        })
}

const SCENARIO: &str = include_str!("../scenarios/quickstart.toml");
const TRACE: &str = include_str!("data/replay/small-trace.csv");
const FLAVORS: &str = include_str!("data/replay/flavors.csv");
const FLEET: &str = include_str!("data/replay/small-fleet.json");

fn parse_all(text: &str) {
    let _ = numasim::experiment::scenario::Scenario::parse(text);
    let _ = numasim::sim::fleet::fleet_from_json(text);
    if let Ok(catalog) = numasim::workload::trace::read_catalog(text.as_bytes()) {
        let _ = catalog.flavors.len();
    }
    let catalog = numasim::workload::trace::read_catalog(FLAVORS.as_bytes()).unwrap();
    if let Ok(reader) = numasim::workload::trace::TraceReader::new(text.as_bytes(), &catalog, true)
    {
        for row in reader.take(10_000) {
            let _ = row;
        }
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = numasim::fit::case::run_case(&v, numasim::fit::Mode::Nova);
    }
}

proptest! {
    // 300 cases each in CI; NUMASIM_FUZZ_CASES=N for a longer search.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("NUMASIM_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
    ))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_scenarios_never_panic(text in mutated(SCENARIO)) {
        parse_all(&text);
    }

    #[test]
    fn mutated_traces_and_catalogs_never_panic(trace in mutated(TRACE), flavors in mutated(FLAVORS)) {
        parse_all(&trace);
        parse_all(&flavors);
    }

    #[test]
    fn mutated_fleets_never_panic(text in mutated(FLEET)) {
        parse_all(&text);
    }
}

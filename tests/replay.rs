//! Whole replays against Nova's own decisions (shared/replay).

use crate::common::{data, numasim, stderr};

#[test]
fn replays_match_nova_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    for strategy in ["spread", "pack", "first-fit"] {
        let out = tmp.path().join(format!("{strategy}.jsonl"));
        let run = numasim(&[
            "replay",
            "--fleet",
            data("replay/small-fleet.json").to_str().unwrap(),
            "--trace",
            data("replay/small-trace.csv").to_str().unwrap(),
            "--flavors",
            data("replay/flavors.csv").to_str().unwrap(),
            "--strategy",
            strategy,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        let ours = std::fs::read(&out).unwrap();
        let nova = std::fs::read(data(&format!("replay/nova-small-{strategy}.jsonl"))).unwrap();
        assert!(ours == nova, "{strategy}: output differs from Nova's");
        assert!(
            stderr(&run).contains("\"accounting_ok\":true"),
            "{}",
            stderr(&run)
        );
    }
}

#[test]
fn replay_bad_inputs_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("t.csv");
    std::fs::write(
        &trace,
        "id,arrival_s,departure_s,flavor\ng1,1,2,m1.small\ng2,3,2,m1.small\n",
    )
    .unwrap();
    let out = tmp.path().join("out.jsonl");
    let run = numasim(&[
        "replay",
        "--fleet",
        data("replay/small-fleet.json").to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "--flavors",
        data("replay/flavors.csv").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2));
    let err = stderr(&run);
    assert!(
        err.contains("t.csv") && err.contains("line 3") && err.contains("departure_s"),
        "{err}"
    );
    assert!(!out.exists(), "no partial output");
}

#[test]
fn fleet_sizes_that_would_overflow_are_refused_by_key() {
    // A cell of 2^62 MB was accepted (and placed on); a pool of 2^62 pages
    // overflowed the page arithmetic and changed the placements.
    let tmp = tempfile::tempdir().unwrap();
    let fleet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("replay/small-fleet.json")).unwrap())
            .unwrap();
    for (edit, expected) in [
        (
            "memory_mb",
            "host cell 0: memory_mb = 4611686018427387904 is beyond",
        ),
        (
            "pages",
            "host cell 0: mempages[size_kb=2048].total = 4611686018427387904 is beyond",
        ),
    ] {
        let mut f = fleet.clone();
        let cell = &mut f["hosts"][0]["model"]["cells"][0];
        match edit {
            "memory_mb" => cell["memory_mb"] = (1u64 << 62).into(),
            _ => cell["mempages"][1]["total"] = (1u64 << 62).into(),
        }
        let path = tmp.path().join("fleet.json");
        std::fs::write(&path, f.to_string()).unwrap();
        let out_file = tmp.path().join("out.jsonl");
        let r = numasim(&[
            "replay",
            "--fleet",
            path.to_str().unwrap(),
            "--trace",
            data("replay/small-trace.csv").to_str().unwrap(),
            "--flavors",
            data("replay/flavors.csv").to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ]);
        assert_eq!(r.status.code(), Some(2), "{edit}: {}", stderr(&r));
        assert!(stderr(&r).contains("hosts[0].model: "), "{}", stderr(&r));
        assert!(stderr(&r).contains(expected), "{}", stderr(&r));
        assert!(!out_file.exists(), "{edit}");
    }
}

/// The placements Nova 34's real scheduler classes chose
/// (`nova_sched_replay.py`; tests/data/replay-sched/README.md): every case
/// of `cases.tsv` gives the fleet, the trace and the oracle's arguments;
/// numasim's `replay --strategy nova` takes the same arguments and must
/// write the same bytes as the archived output.
#[test]
fn nova_scheduler_replays_match_byte_for_byte() {
    use std::io::Read;
    let mut expected = std::collections::BTreeMap::new();
    for archive in ["nova-sched-shared.tar.bz2", "nova-sched-fresh.tar.bz2"] {
        let file = std::fs::File::open(data(&format!("replay-sched/{archive}"))).unwrap();
        let mut tar = tar::Archive::new(bzip2::read::BzDecoder::new(file));
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            expected.insert(name.trim_end_matches(".jsonl").to_string(), text);
        }
    }
    let cases = std::fs::read_to_string(data("replay-sched/cases.tsv")).unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .from_reader(cases.as_bytes());
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for record in reader.deserialize::<std::collections::HashMap<String, String>>() {
        let case = record.unwrap();
        let name = &case["name"];
        let out = tmp.path().join(format!("{name}.jsonl"));
        let (fleet, trace, flavors) = (
            data(&case["fleet"]),
            data(&case["trace"]),
            data("replay/flavors.csv"),
        );
        let mut args = vec![
            "replay",
            "--strategy",
            "nova",
            "--fleet",
            fleet.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "--flavors",
            flavors.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(case["args"].split_whitespace());
        let run = numasim(&args);
        assert!(run.status.success(), "{name}: {}", stderr(&run));
        assert!(
            stderr(&run).contains("\"accounting_ok\":true"),
            "{}",
            stderr(&run)
        );
        let ours = std::fs::read_to_string(&out).unwrap();
        let nova = &expected[name.as_str()];
        if let Some((k, (a, b))) = ours
            .lines()
            .zip(nova.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "{name}: line {} differs:\nnumasim: {a}\nnova:    {b}",
                k + 1
            );
        }
        assert_eq!(ours.len(), nova.len(), "{name}: lengths differ");
        checked += 1;
    }
    assert_eq!(checked, expected.len(), "every archived replay is checked");
}

/// The index chooses what Nova's full scan chooses on whole replays too:
/// every arrival, with the fit's necessary conditions pruning hosts, under
/// tight ratios (many fits fail), packing, other multipliers and random
/// subsets with shuffling.
#[test]
fn nova_index_and_full_scan_place_every_guest_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = [
        r#"{"cpu_allocation_ratio": 16.0, "ram_allocation_ratio": 1.5}"#,
        r#"{"cpu_allocation_ratio": 2.0, "ram_allocation_ratio": 1.0}"#,
    ];
    let configs: [&[&str]; 4] = [
        &[],
        &["--conf", "filter_scheduler.ram_weight_multiplier=-1.0"],
        &[
            "--conf",
            "filter_scheduler.cpu_weight_multiplier=3.0",
            "--conf",
            "filter_scheduler.num_instances_weight_multiplier=-0.5",
        ],
        &[
            "--conf",
            "filter_scheduler.host_subset_size=4",
            "--conf",
            "filter_scheduler.shuffle_best_same_weighed_hosts=true",
            "--seed",
            "9",
        ],
    ];
    let mut runs = 0;
    for (fleet, trace) in [
        ("replay/small-fleet.json", "replay/small-trace.csv"),
        (
            "replay-sched/hetero-fleet.json",
            "replay-sched/hetero-trace.csv",
        ),
    ] {
        for l in limits {
            for extra in configs {
                let mut outputs = Vec::new();
                for full in [false, true] {
                    let out = tmp.path().join(format!("{runs}-{full}.jsonl"));
                    let (f, t, c) = (data(fleet), data(trace), data("replay/flavors.csv"));
                    let mut args = vec![
                        "replay",
                        "--strategy",
                        "nova",
                        "--fleet",
                        f.to_str().unwrap(),
                        "--trace",
                        t.to_str().unwrap(),
                        "--flavors",
                        c.to_str().unwrap(),
                        "--limits",
                        l,
                        "--out",
                        out.to_str().unwrap(),
                    ];
                    args.extend_from_slice(extra);
                    if full {
                        args.push("--full-scan");
                    }
                    let run = numasim(&args);
                    assert!(run.status.success(), "{}", stderr(&run));
                    outputs.push(std::fs::read_to_string(&out).unwrap());
                }
                assert!(
                    outputs[0] == outputs[1],
                    "{fleet} {l} {extra:?}: the index and the full scan differ"
                );
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 16);
}

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

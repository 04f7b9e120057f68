//! The fit engine against Nova's own answers.

use crate::common::data;
use numasim::fit::pyset::PySet;

#[test]
fn python_set_emulation_matches_cpython() {
    let text = std::fs::read_to_string(data("pyset-vectors.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let list = |k: &str| -> Vec<u32> {
            v[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        let a = PySet::from_iter_ordered(list("a"));
        let b = PySet::from_iter_ordered(list("b"));
        assert_eq!(a.to_vec(), list("set_a"), "set(a) {line}");
        let ca = a.coerced();
        assert_eq!(ca.to_vec(), list("coerced_a"), "coerced {line}");
        assert_eq!(ca.intersection(&b).to_vec(), list("and"), "a & b {line}");
        assert_eq!(b.intersection(&ca).to_vec(), list("rand"), "b & a {line}");
        assert_eq!(ca.difference(&b).to_vec(), list("sub"), "a - b {line}");
        assert_eq!(
            ca.copy().difference(&b).to_vec(),
            list("copy_sub"),
            "set(a) - b {line}"
        );
        let mut d = ca.copy();
        for x in list("b") {
            d.discard(x);
        }
        for x in &list("a")[..list("a").len() / 2] {
            d.add(x + 1);
        }
        assert_eq!(d.to_vec(), list("discard_add"), "discard/add {line}");
        let mut u = ca.copy();
        u.merge(&b);
        assert_eq!(u.to_vec(), list("ior"), "a |= b {line}");
        n += 1;
    }
    assert_eq!(n, 800);
}

use crate::common::{numasim, stderr, stdout};
use numasim::fit::Mode;
use numasim::fit::case::run_case;
use serde_json::Value;

fn jsonl(rel: &str) -> Vec<Value> {
    std::fs::read_to_string(data(rel))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The four agreement levels of fit-cases/README.md, plus usage and request.
fn agreement(case: &Value, nova: &Value, ours: &Value) -> Result<(), String> {
    let id = case["id"].as_str().unwrap_or("?");
    let kind = |r: &Value| {
        (
            r["fits"].clone(),
            r["error"]["phase"].clone(),
            r["error"]["kind"].clone(),
        )
    };
    if kind(nova) != kind(ours) {
        return Err(format!(
            "{id}: outcome {:?} != {:?}",
            kind(ours),
            kind(nova)
        ));
    }
    let cells = |r: &Value| r["cells"].as_array().cloned().unwrap_or_default();
    let (a, b) = (cells(nova), cells(ours));
    for (x, y) in a.iter().zip(&b) {
        for key in ["host_cell", "memory_mb", "pagesize_kb", "cpus", "pcpus"] {
            if x[key] != y[key] {
                return Err(format!("{id}: placement {key} {} != {}", y[key], x[key]));
            }
        }
        let pinned = |c: &Value| {
            let mut v: Vec<u64> = c["cpu_pinning"]
                .as_object()
                .map(|m| m.values().map(|v| v.as_u64().unwrap()).collect())
                .unwrap_or_default();
            v.sort_unstable();
            (v, c["cpuset_reserved"].clone())
        };
        if pinned(x) != pinned(y) {
            return Err(format!(
                "{id}: pinned sets {:?} != {:?}",
                pinned(y),
                pinned(x)
            ));
        }
        if x["cpu_pinning"] != y["cpu_pinning"] {
            return Err(format!(
                "{id}: exact pinning {} != {}",
                y["cpu_pinning"], x["cpu_pinning"]
            ));
        }
    }
    if a.len() != b.len() {
        return Err(format!("{id}: {} cells != {}", b.len(), a.len()));
    }
    if nova["request"] != ours["request"] {
        return Err(format!(
            "{id}: request {} != {}",
            ours["request"], nova["request"]
        ));
    }
    if nova["usage_after"] != ours["usage_after"]
        || nova["usage_error"]["kind"] != ours["usage_error"]["kind"]
    {
        return Err(format!("{id}: usage differs"));
    }
    Ok(())
}

fn check_all(cases: &str, answers: &str) -> usize {
    let cases = jsonl(cases);
    let answers = jsonl(answers);
    assert_eq!(cases.len(), answers.len());
    let failures: Vec<String> = cases
        .iter()
        .zip(&answers)
        .filter_map(|(c, n)| agreement(c, n, &run_case(c, Mode::Nova)).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} disagreements, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    cases.len()
}

#[test]
fn agrees_with_nova_on_every_shipped_case() {
    assert_eq!(
        check_all("fit-cases/cases.jsonl", "fit-cases/nova-34.0.0.jsonl"),
        2000
    );
}

#[test]
fn agrees_with_nova_when_the_guest_topology_is_given_directly() {
    assert_eq!(
        check_all(
            "fit-cases/instance-cases.jsonl",
            "fit-cases/instance-nova-34.0.0.jsonl"
        ),
        800
    );
}

#[test]
fn clean_mode_fits_like_the_oracles_cache_free_search() {
    let cases = jsonl("fit-cases/cases.jsonl");
    let answers = jsonl("fit-cases/nova-34.0.0.jsonl");
    let mut compared = 0;
    for (c, n) in cases.iter().zip(&answers) {
        let Some(clean) = n["diag"].get("clean_fits") else {
            continue;
        };
        let ours = run_case(c, Mode::Clean);
        assert_eq!(&ours["fits"], clean, "{}", c["id"]);
        compared += 1;
    }
    assert!(compared > 1000, "{compared}");
}

fn case(id: &str) -> Value {
    jsonl("fit-cases/cases.jsonl")
        .into_iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

fn answer(id: &str) -> Value {
    jsonl("fit-cases/nova-34.0.0.jsonl")
        .into_iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

/// Quirk 1: pinning follows CPython's iteration order of small-int sets,
/// not ascending order (`diag.sorted_sets_same == false`).
#[test]
fn quirk_pinning_follows_cpython_set_order() {
    let id = "c00231";
    assert_eq!(answer(id)["diag"]["sorted_sets_same"], false);
    let nova = run_case(&case(id), Mode::Nova);
    assert_eq!(nova["cells"], answer(id)["cells"]);
    let clean = run_case(&case(id), Mode::Clean);
    assert_ne!(clean["cells"], nova["cells"], "sorted sets pin differently");
}

/// Quirk 2: a stale fit cache hands back a guest cell that was never
/// checked on its host cell: a dedicated guest cell with vCPUs left unpinned.
#[test]
fn quirk_stale_fit_cache_returns_unchecked_cells() {
    let id = "c01029";
    assert!(
        answer(id)["diag"]["sanity_problems"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );
    let nova = run_case(&case(id), Mode::Nova);
    assert_eq!(nova["cells"], answer(id)["cells"]);
    let cell2 = &nova["cells"][2];
    let pinned = cell2["cpu_pinning"].as_object().map_or(0, |m| m.len());
    assert!(
        pinned < cell2["pcpus"].as_array().unwrap().len(),
        "guest cell 2 keeps unpinned vCPUs"
    );
    let clean = run_case(&case(id), Mode::Clean);
    for c in clean["cells"].as_array().into_iter().flatten() {
        assert_eq!(
            c["cpu_pinning"].as_object().map_or(0, |m| m.len()),
            c["pcpus"].as_array().unwrap().len()
        );
    }
}

/// Quirk 3: the no-fit cache keyed by mutated ids refuses guests that fit.
#[test]
fn quirk_mutated_ids_make_nova_refuse_a_fitting_guest() {
    let id = "c00027";
    assert_eq!(answer(id)["fits"], false);
    assert_eq!(answer(id)["diag"]["clean_fits"], true);
    assert_eq!(run_case(&case(id), Mode::Nova)["fits"], false);
    assert_eq!(run_case(&case(id), Mode::Clean)["fits"], true);
}

/// Quirk 4: a `large`/`any` page size is locked to the size chosen on the
/// first host cell tried, even when that cell is then refused.
#[test]
fn quirk_page_size_locked_on_first_cell_tried() {
    let c: Value = serde_json::json!({
        "id": "pagesize-lock",
        "host": {"cells": [
            {"id": 0, "cpus": [0, 1], "pcpus": [], "memory_mb": 8192, "cpu_usage": 0, "siblings": [[0], [1]],
             "mempages": [{"size_kb": 4, "total": 1048576, "used": 0}, {"size_kb": 1048576, "total": 4, "used": 0}]},
            {"id": 1, "cpus": [2, 3, 4, 5], "pcpus": [], "memory_mb": 4096, "cpu_usage": 0, "siblings": [[2], [3], [4], [5]],
             "mempages": [{"size_kb": 4, "total": 524288, "used": 0}, {"size_kb": 2048, "total": 1024, "used": 0}]}
        ]},
        "flavor": {"name": "f", "vcpus": 4, "memory_mb": 1024, "extra_specs": {"hw:numa_nodes": "1", "hw:mem_page_size": "large"}},
        "limits": {"cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0}
    });
    // Cell 0 (more free memory) is tried first: 1G pages fit, 4 vCPUs do not.
    // Cell 1 then only offers 2M pages, but the request is now locked to 1G.
    assert_eq!(run_case(&c, Mode::Nova)["fits"], false);
    let clean = run_case(&c, Mode::Clean);
    assert_eq!(clean["fits"], true);
    assert_eq!(clean["cells"][0]["pagesize_kb"], 2048);
}

#[test]
fn sixteen_cell_host_with_an_eight_cell_guest_is_answered() {
    let lines = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/sixteen-cells.jsonl"),
    )
    .unwrap();
    let results: Vec<Value> = lines
        .lines()
        .map(|l| run_case(&serde_json::from_str(l).unwrap(), Mode::Nova))
        .collect();
    // The first answer is Nova's own (it finishes in seconds on this one);
    // the second one Nova does not finish: numasim proves no ordering fits.
    assert_eq!(results[0]["fits"], true);
    assert_eq!(results[0]["cells"][7]["host_cell"], 5);
    assert_eq!(results[1]["fits"], false);
    assert_eq!(results[2]["fits"], true);
}

#[test]
fn fit_cli_answers_line_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("cases.jsonl");
    let first = std::fs::read_to_string(data("fit-cases/cases.jsonl"))
        .unwrap()
        .lines()
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&p, format!("{first}\nnot json\n")).unwrap();
    let out = numasim(&["fit", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["id"], "c00000");
    assert_eq!(lines[3]["error"]["phase"], "input");
    assert!(
        lines[3]["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 4")
    );
    let missing = numasim(&["fit", "/nonexistent/cases.jsonl"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("/nonexistent/cases.jsonl"));
}

/// The simulator claims and frees in place (`apply_usage`, with a fast path
/// that skips copies); Nova builds a new topology (`usage_from_instance`,
/// what the case answers check). On every shipped case both must agree: a
/// claim, a second claim of the same guest (pinned CPUs make it an error,
/// which must leave the host unchanged), and a free after the claim.
#[test]
fn claims_in_place_equal_novas_rebuilt_topology() {
    use numasim::fit::case::prepare;
    use numasim::fit::{apply_usage, usage_from_instance};
    let mut claimed = 0;
    let mut refused_twice = 0;
    for c in jsonl("fit-cases/cases.jsonl")
        .iter()
        .chain(&jsonl("fit-cases/instance-cases.jsonl"))
    {
        let Ok(p) = prepare(c).and_then(|p| p.with_pci(c)) else {
            continue;
        };
        let Ok(Some(f)) = p.fit(Mode::Nova) else {
            continue;
        };
        let mut host = p.host.clone();
        let rebuilt = usage_from_instance(&p.host, &f, false);
        let in_place = apply_usage(&mut host, &f, false);
        match (&rebuilt, &in_place) {
            (Ok(r), Ok(())) => assert_eq!(*r, host, "{}", c["id"]),
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "{}", c["id"]);
                continue;
            }
            _ => panic!("{}: {rebuilt:?} vs {in_place:?}", c["id"]),
        }
        claimed += 1;
        let before = host.clone();
        let again_rebuilt = usage_from_instance(&host, &f, false);
        match (again_rebuilt, apply_usage(&mut host, &f, false)) {
            (Ok(r), Ok(())) => assert_eq!(r, host, "{}", c["id"]),
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "{}", c["id"]);
                assert_eq!(
                    host, before,
                    "{}: a refused claim changed the host",
                    c["id"]
                );
                refused_twice += 1;
            }
            (a, b) => panic!("{}: second claim {a:?} vs {b:?}", c["id"]),
        }
        let mut freed = before.clone();
        let free_rebuilt = usage_from_instance(&before, &f, true).unwrap();
        apply_usage(&mut freed, &f, true).unwrap();
        assert_eq!(free_rebuilt, freed, "{}", c["id"]);
    }
    assert!(
        claimed > 900 && refused_twice > 600,
        "{claimed} {refused_twice}"
    );
}

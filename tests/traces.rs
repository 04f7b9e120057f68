//! Public traces in (conversion, node lists, shapes), trace statistics, and
//! synthetic twins of traces.

use crate::common::{data, numasim, shared, stderr, stdout};
use numasim::workload::synthetic::SyntheticStream;
use numasim::workload::trace::{TraceReader, read_catalog};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn azure_v1_sample_converts_with_exact_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let (trace, flavors) = (tmp.path().join("t.csv"), tmp.path().join("f.csv"));
    let r = numasim(&[
        "trace",
        "convert",
        "--from",
        "azure-v1",
        s(&data("traces/azure-v1-vmtable.sample.csv")),
        "-o",
        s(&trace),
        "--flavors-out",
        s(&flavors),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("10 guests written, 0 cut, 0 rows dropped"),
        "{}",
        stderr(&r)
    );
    let f = std::fs::read_to_string(&flavors).unwrap();
    // 1 core / 1.75 GB, 1 / 0.75, 8 / 56: Azure's real sizes.
    assert!(
        f.contains("c1m1792,1,1792,")
            && f.contains("c1m768,1,768,")
            && f.contains("c8m57344,8,57344,"),
        "{f}"
    );
    let t = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(t.lines().count(), 11);
    // Sorted by creation (ties in file order): the VM created at 2290500 s is last.
    assert!(
        t.lines()
            .last()
            .unwrap()
            .ends_with(",2290500,2292300,c1m1792"),
        "{t}"
    );
    // The stats of the converted trace, with the demand plot.
    let plot = tmp.path().join("demand");
    let r = numasim(&[
        "trace",
        "stats",
        s(&trace),
        "--flavors",
        s(&flavors),
        "--plot",
        s(&plot),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stdout(&r).contains("guests: 10 over"), "{}", stdout(&r));
    for f in [
        "demand-vcpus.png",
        "demand-vcpus.svg",
        "demand-memory.png",
        "demand-memory.svg",
    ] {
        assert!(tmp.path().join(f).exists(), "{f}");
    }
    let svg = std::fs::read_to_string(tmp.path().join("demand-memory.svg")).unwrap();
    assert!(svg.contains("concurrent memory, GiB") && svg.contains("trace time (hours)"));
}

#[test]
fn azure_packing_2020_sqlite_converts() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("packing.sqlite");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE vmType (id INTEGER, vmTypeId INTEGER, machineId INTEGER, core REAL, memory REAL, hdd REAL, ssd REAL, nic REAL);
         INSERT INTO vmType VALUES (1, 10, 2, 0.25, 0.125, 0, 0, 0), (2, 10, 1, 0.5, 0.25, 0, 0, 0), (3, 11, 1, 0.01, 0.01, 0, 0, 0);
         CREATE TABLE vm (vmId INTEGER, tenantId INTEGER, vmTypeId INTEGER, priority INTEGER, starttime REAL, endtime REAL);
         INSERT INTO vm VALUES (1, 1, 10, 0, 0.5, 1.0), (2, 1, 11, 1, -0.25, NULL), (3, 2, 99, 0, 1.0, 2.0), (4, 2, 10, 0, 3.0, 2.0);",
    )
    .unwrap();
    drop(c);
    let (trace, flavors) = (tmp.path().join("t.csv"), tmp.path().join("f.csv"));
    let r = numasim(&[
        "trace",
        "convert",
        "--from",
        "azure-packing-2020",
        s(&db),
        "-o",
        s(&trace),
        "--flavors-out",
        s(&flavors),
        "--machine-cores",
        "40",
        "--machine-memory-gb",
        "256",
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    // Type 10 on machine 1 (the smallest id): 0.5 x 40 cores, 0.25 x 256 GB;
    // vm 2 started before the window (at 0) and never ends; vm 3's type is
    // unknown and vm 4 ends before it starts: both dropped.
    assert_eq!(
        std::fs::read_to_string(&trace).unwrap(),
        "id,arrival_s,departure_s,flavor\nvm2,0,,c1m2621\nvm1,43200,86400,c20m65536\n"
    );
    assert!(stderr(&r).contains("2 rows dropped"), "{}", stderr(&r));
    let r = numasim(&[
        "trace",
        "convert",
        "--from",
        "azure-packing-2020",
        s(&data("traces/azure-v1-vmtable.sample.csv")),
        "-o",
        s(&trace),
        "--flavors-out",
        s(&flavors),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        stderr(&r).contains("azure-v1-vmtable.sample.csv: "),
        "{}",
        stderr(&r)
    );
}

#[test]
fn a_node_list_becomes_a_fleet_and_shapes_give_trace_guests_numa_topologies() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("nodes.csv"),
        "sn,cpu_milli,memory_mib,gpu,model\nn0,32000,262144,0,\nn1,96000,393216,8,V100M32\nn2,32000,262144,0,\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("flavors.csv"),
        "name,vcpus,memory_mb,extra_specs\nsmall,2,4096,\nbig,16,65536,\n",
    )
    .unwrap();
    let mut trace = String::from("id,arrival_s,departure_s,flavor\n");
    for i in 0..40 {
        trace.push_str(&format!(
            "g{i},{},{},{}\n",
            i * 10,
            i * 10 + 1000,
            if i % 2 == 0 { "big" } else { "small" }
        ));
    }
    std::fs::write(tmp.path().join("trace.csv"), trace).unwrap();
    let scenario = |shapes: &str| {
        format!(
            r#"
name = "nodes"
[[fleet]]
nodes = {{ file = "nodes.csv", format = "alibaba-gpu-2023" }}
[flavors]
file = "flavors.csv"
{shapes}
[workload]
trace = "trace.csv"
[[policies]]
memory_mode = "strict"
[cost]
numa_aware_guests = true
"#
        )
    };
    std::fs::write(tmp.path().join("plain.toml"), scenario("")).unwrap();
    std::fs::write(
        tmp.path().join("shaped.toml"),
        scenario(
            r#"shapes = [{ min_vcpus = 16, extra_specs = "hw:numa_nodes=2", name = "numa2" }]"#,
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let r = numasim(&["run", s(&tmp.path().join("plain.toml")), "--out", s(&out)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stdout(&r).contains("3 hosts"), "{}", stdout(&r));
    let summary = |dir: &Path| std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    let col = |text: &str, name: &str| -> String {
        let mut l = text.lines();
        let h: Vec<&str> = l.next().unwrap().split(',').collect();
        let v: Vec<&str> = l.next().unwrap().split(',').collect();
        v[h.iter().position(|x| *x == name).unwrap()].to_string()
    };
    // Without shapes no guest has a NUMA topology: they float over both sockets.
    let plain = summary(&out);
    let plain_remote: f64 = col(&plain, "remote_access_fraction").parse().unwrap();
    assert!(plain_remote > 0.4, "{plain}");
    let r = numasim(&["run", s(&tmp.path().join("shaped.toml")), "--out", s(&out)]);
    assert!(r.status.success(), "{}", stderr(&r));
    // The big guests now have two NUMA cells, one per socket, and a NUMA-aware
    // guest kernel keeps each cell's accesses on its host cell: the remote
    // fraction drops.
    let shaped = summary(&out);
    let remote: f64 = col(&shaped, "remote_access_fraction").parse().unwrap();
    assert!(remote < plain_remote - 0.1, "{plain}\n{shaped}");
    // A node list and a count together are refused.
    std::fs::write(
        tmp.path().join("bad.toml"),
        scenario("").replace("nodes = {", "count = 3\nnodes = {"),
    )
    .unwrap();
    let r = numasim(&["run", s(&tmp.path().join("bad.toml"))]);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        stderr(&r).contains("`count` does not go with `nodes`"),
        "{}",
        stderr(&r)
    );
}

/// Mean inter-arrival rate and mean lifetime of a row stream.
fn rate_and_life(rows: &[numasim::workload::trace::TraceRow]) -> (f64, f64) {
    let span = rows.last().unwrap().arrival_s - rows[0].arrival_s;
    let rate = (rows.len() - 1) as f64 / span * 3600.0;
    let lives: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.departure_s.map(|d| d - r.arrival_s))
        .collect();
    (rate, lives.iter().sum::<f64>() / lives.len() as f64)
}

fn twin_matches(trace_text: &str, flavors_text: &str, load: f64) -> String {
    let catalog = read_catalog(flavors_text.as_bytes()).unwrap();
    let source: Vec<_> = TraceReader::new(trace_text.as_bytes(), &catalog, false)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let (rate, life) = rate_and_life(&source);
    let twin = numasim::workload::twin::fit(
        source.iter().cloned().map(Ok),
        &catalog,
        load,
        Some(200_000),
    )
    .unwrap();
    let mix: Vec<(f64, usize)> = twin
        .workload
        .mix
        .iter()
        .map(|(n, w)| (*w, catalog.position(n).unwrap()))
        .collect();
    let rows: Vec<_> = SyntheticStream::new(&twin.workload, 7, mix, 1.0, 1.0, None)
        .map(Result::unwrap)
        .collect();
    let (twin_rate, twin_life) = rate_and_life(&rows);
    assert!(
        (twin_rate / (rate * load) - 1.0).abs() < 0.05,
        "rate {twin_rate} vs {} ({})",
        rate * load,
        twin.lifetime_model
    );
    assert!(
        (twin_life / life - 1.0).abs() < 0.05,
        "lifetime {twin_life} vs {life} ({})",
        twin.lifetime_model
    );
    twin.lifetime_model
}

#[test]
fn a_synthetic_twin_matches_its_trace_rate_and_lifetime() {
    // A source trace with lognormal lifetimes (drawn here, deterministically).
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let normal = statrs::distribution::Normal::new(0.0, 1.0).unwrap();
    use statrs::distribution::ContinuousCDF;
    let mut t = 0.0;
    let mut text = String::from("id,arrival_s,departure_s,flavor\n");
    for i in 0..5000 {
        t += -(1.0 - rng.random::<f64>()).ln() * 30.0;
        let life = 3600.0 * (1.2 * normal.inverse_cdf(rng.random::<f64>().max(1e-12))).exp();
        let f = ["a", "b", "b"][i % 3];
        text.push_str(&format!("g{i},{t:.3},{:.3},{f}\n", t + life));
    }
    let flavors = "name,vcpus,memory_mb,extra_specs\na,1,1024,\nb,4,8192,\n";
    let model = twin_matches(&text, flavors, 1.0);
    assert!(model.starts_with("lognormal"), "{model}");
    twin_matches(&text, flavors, 2.0);
}

#[test]
#[ignore = "needs ../shared/data/traces/alibaba-gpu-v2023 (not shipped: 8k pods)"]
fn the_alibaba_trace_twin_matches_it_and_runs_on_its_own_fleet() {
    let pods = shared("data/traces/alibaba-gpu-v2023/openb_pod_list_default.csv");
    let nodes = shared("data/traces/alibaba-gpu-v2023/openb_node_list_all_node.csv");
    let tmp = tempfile::tempdir().unwrap();
    let (trace, flavors) = (tmp.path().join("pods.csv"), tmp.path().join("flavors.csv"));
    let r = numasim(&[
        "trace",
        "convert",
        "--from",
        "alibaba-gpu-2023",
        s(&pods),
        "-o",
        s(&trace),
        "--flavors-out",
        s(&flavors),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let model = twin_matches(
        &std::fs::read_to_string(&trace).unwrap(),
        &std::fs::read_to_string(&flavors).unwrap(),
        1.0,
    );
    // Heavy-tailed real lifetimes: no parametric fit holds.
    assert!(model.starts_with("empirical"), "{model}");
    std::fs::copy(&nodes, tmp.path().join("nodes.csv")).unwrap();
    std::fs::write(
        tmp.path().join("twin.toml"),
        r#"
name = "alibaba-twin"
[[fleet]]
nodes = { file = "nodes.csv", format = "alibaba-gpu-2023" }
[flavors]
file = "flavors.csv"
[workload.twin]
trace = "pods.csv"
load = 2.0
[[policies]]
memory_mode = "strict"
"#,
    )
    .unwrap();
    let r = numasim(&[
        "run",
        s(&tmp.path().join("twin.toml")),
        "--out",
        s(&tmp.path().join("out")),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stdout(&r).contains("1523 hosts"), "{}", stdout(&r));
    assert!(
        stdout(&r).contains("twin of") && stdout(&r).contains("16300 guests"),
        "{}",
        stdout(&r)
    );
}

#[test]
fn any_scenario_runs_on_an_unrelated_trace_and_catalog() {
    // The quickstart's per-flavor settings name flavors an Azure catalog
    // lacks: ignored with one warning naming them, or refused when strict.
    let tmp = tempfile::tempdir().unwrap();
    let (trace, flavors) = (tmp.path().join("t.csv"), tmp.path().join("f.csv"));
    let c = numasim(&[
        "trace",
        "convert",
        "--from",
        "azure-v1",
        data("traces/azure-v1-vmtable.sample.csv").to_str().unwrap(),
        "-o",
        trace.to_str().unwrap(),
        "--flavors-out",
        flavors.to_str().unwrap(),
    ]);
    assert!(c.status.success(), "{}", stderr(&c));
    let out = tmp.path().join("out");
    let args = [
        "run",
        "scenarios/quickstart.toml",
        "--trace",
        trace.to_str().unwrap(),
        "--flavors",
        flavors.to_str().unwrap(),
        "--hosts",
        "800",
        "--out",
        out.to_str().unwrap(),
    ];
    let r = numasim(&args);
    assert!(r.status.success(), "{}", stderr(&r));
    let err = stderr(&r);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("flavors.touched_fraction (m1.large, m1.medium, m1.small"),
        "{}",
        warnings[0]
    );
    let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    // Ten guests, three of them after the quickstart's six-hour warm-up.
    assert!(
        summary.contains("quickstart,spread-strict,1,calibrated,3,3,0,0,"),
        "{summary}"
    );
    // A trace without random draws: one run per policy, not three identical ones.
    assert_eq!(summary.lines().count(), 1 + 3, "{summary}");
    assert!(
        err.contains("note: nothing in these runs depends on the seed")
            && err.contains("instead of 3 identical times"),
        "{err}"
    );
    let mut strict = args.to_vec();
    strict.push("--strict-overrides");
    let r = numasim(&strict);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        stderr(&r).contains(
            "quickstart.toml: flavors.touched_fraction names unknown flavor(s) `m1.large`"
        ),
        "{}",
        stderr(&r)
    );
}

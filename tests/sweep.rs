//! Sweeps, shards and merge, capacity planning, and the regression gate.

use crate::common::{numasim, stderr, stdout};
use std::path::{Path, PathBuf};

const SMALL: &str = "scenarios/quickstart-sweep-small.toml";

/// Every file a finished sweep writes (CSVs and charts).
const OUTPUTS: [&str; 15] = [
    "report.html",
    "runs.csv",
    "aggregate.csv",
    "timeseries.csv",
    "latency_quantiles.csv",
    "rejection_vs_load.png",
    "rejection_vs_load.svg",
    "remote_vs_load.png",
    "remote_vs_load.svg",
    "latency_vs_load.png",
    "latency_vs_load.svg",
    "utilisation_over_time.png",
    "utilisation_over_time.svg",
    "latency_cdf.png",
    "latency_cdf.svg",
];

fn sweep(args: &[&str]) -> std::process::Output {
    let mut all = vec!["sweep"];
    all.extend_from_slice(args);
    numasim(&all)
}

fn assert_same_outputs(a: &Path, b: &Path) {
    for f in OUTPUTS {
        let (x, y) = (std::fs::read(a.join(f)), std::fs::read(b.join(f)));
        assert!(x.is_ok() && y.is_ok(), "{f} missing");
        assert!(
            x.unwrap() == y.unwrap(),
            "{f} differs between {a:?} and {b:?}"
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn sweep_is_thread_independent_and_shards_merge_into_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    let r = sweep(&[SMALL, "--out", s(&one), "--threads", "1"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = sweep(&[SMALL, "--out", s(&two), "--threads", "2"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_same_outputs(&one, &two);

    let shards: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("shard{i}")))
        .collect();
    for (i, d) in shards.iter().enumerate() {
        let r = sweep(&[SMALL, "--out", s(d), "--shard", &format!("{i}/3")]);
        assert!(r.status.success(), "{}", stderr(&r));
        assert!(
            !d.join("runs.csv").exists(),
            "a shard alone is not a result"
        );
    }
    // Two of three shards: merge refuses, naming what is missing.
    let merged = tmp.path().join("merged");
    let r = numasim(&["merge", s(&shards[0]), s(&shards[1]), "--out", s(&merged)]);
    assert_eq!(r.status.code(), Some(2));
    assert!(
        stderr(&r).contains("12 of 36 runs are missing (runs 2, 5, 8"),
        "{}",
        stderr(&r)
    );
    assert!(!merged.join("runs.csv").exists());
    let r = numasim(&[
        "merge",
        s(&shards[0]),
        s(&shards[1]),
        s(&shards[2]),
        "--out",
        s(&merged),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_same_outputs(&one, &merged);

    // What the files hold: 36 runs, 12 points x the registry's judged metrics.
    let runs = std::fs::read_to_string(one.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1 + 36);
    assert!(runs.starts_with(
        "run,point,workload.synthetic.guests,policy.memory_mode,policy.strategy,workload.synthetic.offered_load,policy,seed,"
    ));
    let agg = std::fs::read_to_string(one.join("aggregate.csv")).unwrap();
    let judged = numasim::report::metrics::judging().count();
    assert_eq!(judged, 26);
    assert_eq!(agg.lines().count(), 1 + 12 * judged);
    let header: Vec<&str> = agg.lines().next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    for line in agg.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f[col("n")], "3");
        let (lo, mean, hi): (f64, f64, f64) = (
            f[col("ci95_low")].parse().unwrap(),
            f[col("mean")].parse().unwrap(),
            f[col("ci95_high")].parse().unwrap(),
        );
        assert!(lo <= mean && mean <= hi, "{line}");
    }
    // The interleave policies are named by the grid, not by the scenario's list.
    assert!(agg.contains(",1000,interleave,pack,1.1,pack-interleave,rejection_rate,3,"));
    let svg = std::fs::read_to_string(one.join("rejection_vs_load.svg")).unwrap();
    assert!(svg.contains("quickstart-sweep-small: rejection rate vs offered load"));
    assert!(svg.contains("rejection rate (% of guests)"));
    // The sweep's report: where the policies meet, their verdict; the charts inline.
    let html = std::fs::read_to_string(one.join("report.html")).unwrap();
    assert!(html.contains(
        "<h3>workload.synthetic.guests = 1000, workload.synthetic.offered_load = 1.1</h3>"
    ));
    assert!(html.contains("<li>lowest rejection rate: "), "{html}");
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(svg.contains("offered load (mean memory demand / fleet memory)"));
}

#[test]
fn an_interrupted_sweep_resumes_from_the_runs_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let r = sweep(&[SMALL, "--out", s(&full)]);
    assert!(r.status.success(), "{}", stderr(&r));
    // An interruption: half the runs recorded, one record torn mid-write.
    let resumed = tmp.path().join("resumed");
    let r = sweep(&[SMALL, "--out", s(&resumed), "--shard", "0/2"]);
    assert!(r.status.success(), "{}", stderr(&r));
    std::fs::write(resumed.join("runs/run-000004.json"), "{\"digest\": \"f7").unwrap();
    let r = sweep(&[SMALL, "--out", s(&resumed)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("19 to run, 17 already recorded"),
        "{}",
        stderr(&r)
    );
    assert_same_outputs(&full, &resumed);
    // Nothing left to do the second time.
    let r = sweep(&[SMALL, "--out", s(&resumed)]);
    assert!(
        stderr(&r).contains("0 to run, 36 already recorded"),
        "{}",
        stderr(&r)
    );
    // A record with fewer metric columns (an older registry wrote it) is
    // run again rather than assembled (it used to panic).
    let rec_path = resumed.join("runs/run-000007.json");
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rec_path).unwrap()).unwrap();
    rec["metrics"].as_array_mut().unwrap().truncate(20);
    std::fs::write(&rec_path, rec.to_string()).unwrap();
    let r = sweep(&[SMALL, "--out", s(&resumed)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("1 to run, 35 already recorded"),
        "{}",
        stderr(&r)
    );
    assert_same_outputs(&full, &resumed);
    // --restart runs everything again.
    let r = sweep(&[SMALL, "--out", s(&resumed), "--restart"]);
    assert!(stderr(&r).contains("36 to run"), "{}", stderr(&r));
}

#[test]
fn bad_sweeps_name_the_file_point_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let write = |body: &str| {
        let p = tmp.path().join("bad.toml");
        std::fs::write(
            &p,
            format!(
                "name = \"bad\"\nscenario = \"{}\"\n{body}",
                scenarios.join("quickstart.toml").display()
            ),
        )
        .unwrap();
        p
    };
    let cases = [
        (
            "[grid]\n\"workload.synthetc.offered_load\" = [0.5]\n",
            "no `synthetc` on the way to `workload.synthetc.offered_load`",
        ),
        (
            "[grid]\n\"policy.memory_mode\" = [\"strict\", \"loose\"]\n",
            "point 1 (policy.memory_mode = \"loose\") makes the scenario invalid",
        ),
        (
            "[grid]\n\"hosts\" = [0]\n",
            "`hosts` = 0: expected a positive integer",
        ),
        (
            "[grid]\n\"hosts\" = []\n",
            "grid.\"hosts\": expected a non-empty list",
        ),
        ("replications = 0\n", "replications: expected at least 1"),
        (
            "[grid]\nhosts = [4]\n[plot]\nx = \"load\"\n",
            "plot.x = `load` is not a parameter of the sweep (hosts)",
        ),
    ];
    for (body, expected) in cases {
        let p = write(body);
        let r = sweep(&[s(&p), "--out", s(&tmp.path().join("out"))]);
        assert_eq!(r.status.code(), Some(2), "{body}");
        assert!(
            stderr(&r).contains(expected) && stderr(&r).contains("bad.toml"),
            "{body}: {}",
            stderr(&r)
        );
    }
    let r = sweep(&[SMALL, "--shard", "3/3"]);
    assert!(stderr(&r).contains("--shard `3/3`: expected I/N"));
}

#[test]
fn capacity_finds_the_smallest_quickstart_fleet_meeting_the_targets() {
    let tmp = tempfile::tempdir().unwrap();
    let r = numasim(&[
        "capacity",
        "scenarios/quickstart.toml",
        "--target",
        "rejection_rate<=0.01",
        "--policy",
        "spread-interleave",
        "--out",
        s(tmp.path()),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let out = stdout(&r);
    let answer: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("smallest fleet meeting every target: "))
        .and_then(|l| l.strip_suffix(" hosts"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no answer in {out}"));
    // The table shows the answer passing and one host fewer failing, each
    // with its interval; the bisection started from the scenario's 32 hosts.
    let row = |n: usize| {
        out.lines()
            .find(|l| l.starts_with(&format!("| {n} |")))
            .map(str::to_string)
    };
    assert!(row(answer).unwrap().ends_with("| yes |"), "{out}");
    assert!(row(answer - 1).unwrap().ends_with("| no |"), "{out}");
    assert!(row(32).is_some(), "{out}");
    let csv = std::fs::read_to_string(tmp.path().join("capacity.csv")).unwrap();
    assert!(csv.starts_with("hosts,metric,target,n,mean,ci95_low,ci95_high,meets\n"));
    assert!(csv.contains(&format!("{answer},rejection_rate,<=0.01,3,")));
    // A target nobody can meet within the limit is an error, not an answer.
    let r = numasim(&[
        "capacity",
        "scenarios/quickstart.toml",
        "--target",
        "mem_alloc_mean>=0.99",
        "--max-hosts",
        "64",
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("no fleet of up to 64 hosts meets mem_alloc_mean>=0.99"));
}

#[test]
fn check_fails_on_a_deliberately_worse_policy() {
    // The quickstart's policies under their baseline names, but every one
    // binding memory strictly: the preferred and interleave guests now get
    // OOM-killed, which the gate must catch.
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("scenarios/flavors.csv"),
        tmp.path().join("flavors.csv"),
    )
    .unwrap();
    let text = std::fs::read_to_string(root.join("scenarios/quickstart.toml")).unwrap();
    let worse = text
        .replace(
            "memory_mode = \"preferred\"",
            "memory_mode = \"strict\"\nname = \"spread-preferred\"",
        )
        .replace(
            "memory_mode = \"interleave\"",
            "memory_mode = \"strict\"\nname = \"spread-interleave\"",
        );
    assert_ne!(text, worse);
    std::fs::write(tmp.path().join("worse.toml"), worse).unwrap();
    let out = tmp.path().join("out");
    let r = numasim(&["run", s(&tmp.path().join("worse.toml")), "--out", s(&out)]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = numasim(&[
        "check",
        s(&out),
        "--baseline",
        "results/quickstart-baseline",
    ]);
    assert_eq!(r.status.code(), Some(1), "{}", stdout(&r));
    let table = stdout(&r);
    assert!(
        table.contains("| spread-preferred | killed_at_start |"),
        "{table}"
    );
    assert!(
        table.contains("| spread-interleave | rejection_rate |"),
        "{table}"
    );
    // The unchanged policy passes.
    assert!(
        table
            .lines()
            .filter(|l| l.starts_with("| spread-strict |"))
            .all(|l| l.ends_with("| ok |")),
        "{table}"
    );
    let junit = std::fs::read_to_string(out.join("check.junit.xml")).unwrap();
    assert!(!junit.contains("failures=\"0\""), "{junit}");
}

#[test]
fn slurm_array_and_kubernetes_indexed_job_shard_the_sweep() {
    // Each script's own command, with the variables its scheduler sets.
    let tmp = tempfile::tempdir().unwrap();
    let single = tmp.path().join("single");
    let r = sweep(&[SMALL, "--out", s(&single)]);
    assert!(r.status.success(), "{}", stderr(&r));
    let bin = env!("CARGO_BIN_EXE_numasim");
    let slurm_out = tmp.path().join("slurm");
    for task in 10..13 {
        // An array given as --array=10-12: shards 0..3 whatever the range.
        let r = std::process::Command::new("bash")
            .args(["deploy/slurm-sweep.sh", SMALL, s(&slurm_out)])
            .env("NUMASIM", bin)
            .env("SLURM_ARRAY_TASK_ID", task.to_string())
            .env("SLURM_ARRAY_TASK_MIN", "10")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .env("SLURM_CPUS_PER_TASK", "1")
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", stderr(&r));
    }
    let merged = tmp.path().join("slurm-merged");
    let shards: Vec<String> = (0..3)
        .map(|i| s(&slurm_out.join(format!("shard-{i}"))).to_string())
        .collect();
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(String::as_str));
    args.extend(["--out", s(&merged)]);
    assert!(numasim(&args).status.success());
    assert_same_outputs(&single, &merged);

    // The Job's container command: a folded YAML scalar under `args`.
    let yaml = std::fs::read_to_string("deploy/k8s-sweep-job.yaml").unwrap();
    let folded: Vec<&str> = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("- >-"))
        .skip(1)
        .take_while(|l| l.starts_with("              "))
        .map(str::trim)
        .collect();
    let command = folded.join(" ");
    assert!(command.starts_with("exec numasim sweep"), "{command}");
    assert!(yaml.contains("completionMode: Indexed") && yaml.contains("completions: 8"));
    let k8s_out = tmp.path().join("k8s");
    let bin_dir = Path::new(bin).parent().unwrap();
    for index in 0..8 {
        let r = std::process::Command::new("sh")
            .args(["-c", &command])
            .env(
                "PATH",
                format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
            )
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("SHARDS", "8")
            .env("SWEEP", SMALL)
            .env("OUT", s(&k8s_out))
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", stderr(&r));
    }
    let dirs: Vec<String> = (0..8)
        .map(|i| s(&k8s_out.join(format!("shard-{i}"))).to_string())
        .collect();
    let merged = tmp.path().join("k8s-merged");
    let mut args = vec!["merge"];
    args.extend(dirs.iter().map(String::as_str));
    args.extend(["--out", s(&merged)]);
    assert!(numasim(&args).status.success());
    assert_same_outputs(&single, &merged);
}

#[test]
fn the_readme_lists_every_metric_as_the_registry_defines_it() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let table = numasim::report::metrics::markdown();
    assert!(
        readme.contains(&table),
        "README.md's metric table differs from `numasim metrics`:\n{table}"
    );
}

#[test]
fn outcomes_partition_the_guests_in_every_shipped_scenario_and_a_sweep() {
    let check = |summary: &std::path::Path| {
        let mut r = csv::Reader::from_path(summary).unwrap();
        let mut rows = 0;
        for rec in r.deserialize::<std::collections::HashMap<String, String>>() {
            let rec = rec.unwrap();
            let n = |k: &str| rec[k].parse::<f64>().unwrap();
            assert_eq!(
                n("placed") + n("rejected") + n("killed_at_start"),
                n("guests"),
                "{summary:?} {rec:?}"
            );
            assert!((n("rejection_rate") - n("rejected") / n("guests")).abs() < 1e-6);
            rows += 1;
        }
        assert!(rows > 0);
    };
    let tmp = tempfile::tempdir().unwrap();
    // Every scenario in scenarios/ (sweep specs name a `scenario`): those
    // that ship their data run on a fresh clone; those that say they need
    // data not shipped (`needs`) say so, with how to make it.
    let mut ran = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir("scenarios")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        if doc.contains_key("scenario") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let out = tmp.path().join(&name);
        let r = numasim(&["run", s(&path), "--seed", "1", "--out", s(&out)]);
        if doc.contains_key("needs") {
            assert_eq!(r.status.code(), Some(2), "{name}: {}", stderr(&r));
            assert!(
                stderr(&r).contains("needs data that is not shipped")
                    && stderr(&r).contains("numasim trace convert"),
                "{name}: {}",
                stderr(&r)
            );
            continue;
        }
        assert!(r.status.success(), "{name}: {}", stderr(&r));
        check(&out.join("summary.csv"));
        ran.push(name);
    }
    assert!(ran.len() >= 4, "{ran:?}");
    let out = tmp.path().join("sweep");
    let r = numasim(&[
        "sweep",
        "scenarios/quickstart-sweep-small.toml",
        "--out",
        s(&out),
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    check(&out.join("runs.csv"));
}

#[test]
fn a_changed_input_file_invalidates_the_records_made_from_it() {
    // The sweep's scenario reads a captured host file: edit it, and no
    // record made from the old file is reused.
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host.json");
    let r = numasim(&["topology", "convert", "libvirt-2s4c", "-o", s(&host)]);
    assert!(r.status.success(), "{}", stderr(&r));
    std::fs::copy("scenarios/flavors.csv", tmp.path().join("flavors.csv")).unwrap();
    let scenario = std::fs::read_to_string("scenarios/quickstart.toml").unwrap();
    let fleet_start = scenario.find("[[fleet]]").unwrap();
    let fleet_end = scenario.find("[flavors]").unwrap();
    let scenario = format!(
        "{}[[fleet]]\ncount = 8\nfile = \"host.json\"\n\n{}",
        &scenario[..fleet_start],
        &scenario[fleet_end..]
    );
    std::fs::write(tmp.path().join("s.toml"), scenario).unwrap();
    let sweep_file = tmp.path().join("sweep.toml");
    std::fs::write(
        &sweep_file,
        "name = \"digest\"\nscenario = \"s.toml\"\nreplications = 1\n[[points]]\n\"workload.synthetic.guests\" = 200\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let args = [s(&sweep_file), "--out", s(&out)];
    let r = sweep(&args);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stderr(&r).contains("3 runs; 3 to run\n"), "{}", stderr(&r));
    let r = sweep(&args);
    assert!(
        stderr(&r).contains("0 to run, 3 already recorded"),
        "{}",
        stderr(&r)
    );
    let text = std::fs::read_to_string(&host).unwrap();
    let edited = text.replacen("\"memory_mb\": 3994", "\"memory_mb\": 2994", 1);
    assert_ne!(text, edited);
    std::fs::write(&host, edited).unwrap();
    let r = sweep(&args);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(stderr(&r).contains("3 runs; 3 to run\n"), "{}", stderr(&r));
}

#[test]
fn a_trace_sweep_runs_once_shows_no_zero_width_interval_and_is_not_written_over() {
    // Three replications asked; nothing depends on the seed, so each
    // policy runs once and the aggregate has n = 1 and no interval.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("t.csv"),
        "id,arrival_s,departure_s,flavor\ng1,0,50,one\ng2,10,,one\ng3,20,,one\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("s.toml"),
        r#"name = "trace"
seeds = [1]
warmup_s = 0
[[fleet]]
count = 2
[fleet.synthetic]
name = "h"
sockets = 1
cores_per_node = 4
threads_per_core = 1
memory_mb_per_node = 4096
[flavors]
list = [{ name = "one", vcpus = 1, memory_mb = 1024 }]
[workload]
trace = "t.csv"
[[policies]]
"#,
    )
    .unwrap();
    let spec = tmp.path().join("sweep.toml");
    std::fs::write(
        &spec,
        "name = \"trace-sweep\"\nscenario = \"s.toml\"\nreplications = 3\n\
         [grid]\n\"policy.strategy\" = [\"spread\", \"pack\"]\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let r = sweep(&[s(&spec), "--out", s(&out)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("nothing depends on the seed at 2 of 2 points"),
        "{}",
        stderr(&r)
    );
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(runs.lines().count(), 1 + 2, "{runs}");
    let mut agg = csv::Reader::from_path(out.join("aggregate.csv")).unwrap();
    let mut rows = 0;
    for rec in agg.deserialize::<std::collections::HashMap<String, String>>() {
        let rec = rec.unwrap();
        assert_eq!(rec["n"], "1", "{rec:?}");
        assert!(
            rec["ci95_low"].is_empty() && rec["ci95_high"].is_empty() && rec["std"].is_empty(),
            "{rec:?}"
        );
        assert!(!rec["mean"].is_empty(), "{rec:?}");
        rows += 1;
    }
    assert!(rows >= 2, "{rows}");

    // Another sweep into the same directory is refused, leaving this
    // sweep's results whole; with --restart it replaces them.
    let other = tmp.path().join("other.toml");
    std::fs::write(
        &other,
        "name = \"other\"\nscenario = \"s.toml\"\nreplications = 1\n\
         [grid]\n\"policy.strategy\" = [\"spread\"]\n",
    )
    .unwrap();
    let r = sweep(&[s(&other), "--out", s(&out)]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("holds the results of sweep `trace-sweep`"),
        "{}",
        stderr(&r)
    );
    assert_eq!(std::fs::read_to_string(out.join("runs.csv")).unwrap(), runs);
    let r = sweep(&[s(&other), "--out", s(&out), "--restart"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(out.join("report.html").exists());
    // --no-report: the outputs without a report, and no earlier one left.
    let r = sweep(&[s(&other), "--out", s(&out), "--no-report"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert!(!out.join("report.html").exists() && out.join("runs.csv").exists());
    let replaced = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    assert_eq!(replaced.lines().count(), 1 + 1, "{replaced}");
}

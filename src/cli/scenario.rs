//! Commands over scenarios: `run`, `sweep`, `merge`, `capacity`, `bench`,
//! `explain`, `check`.

use super::*;

pub(super) fn run_scenario(a: RunArgs) -> Result<i32> {
    use numasim::experiment::run;
    if let Some(p) = a.cost_platform.as_deref().filter(|p| *p != "slit") {
        let spec = numasim::experiment::scenario::CostSpec {
            platform: Some(p.to_string()),
            ..Default::default()
        };
        spec.calibration()
            .map_err(|m| anyhow::anyhow!("--cost-platform: {m}"))?;
    }
    let ov = run::Overrides {
        trace: a.trace,
        flavors: a.flavors,
        hosts: a.hosts,
        seed: a.seed,
        skip_bad_rows: a.skip_bad_rows,
        cost_platform: a.cost_platform,
        strict_flavors: a.strict_overrides,
        ..run::Overrides::default()
    };
    let mut prepared = run::prepare(&a.scenario, &ov)?;
    if let Some(asked) = prepared.seed_independent {
        eprintln!(
            "note: nothing in these runs depends on the seed (a trace, no random strategy, no sampled shapes, no memory growth): each policy ran once, with seed {}, instead of {asked} identical times",
            prepared.scenario.seeds[0]
        );
    }
    for w in warnings(&prepared)? {
        eprintln!("warning: {w}");
    }
    prepared.explain_rejections = true;
    let jobs = (prepared.scenario.policies.len() * prepared.scenario.seeds.len()) as u64;
    let bar = runs_bar(jobs);
    let pool = thread_pool(a.threads)?;
    if let Some(twin) = &prepared.twin {
        outln!("{twin}");
    }
    let start = std::time::Instant::now();
    let results = pool.install(|| prepared.run_all(&|| bar.inc(1)))?;
    bar.finish_and_clear();
    let name = &prepared.scenario.name;
    let out = a.out.unwrap_or_else(|| PathBuf::from("results").join(name));
    let scenario_text = numasim::input::read_text(&a.scenario)?;
    // The command as given, less what cannot change the results.
    let mut command = vec!["numasim".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--threads" {
            args.next();
        } else if !arg.starts_with("--threads=") {
            command.push(arg);
        }
    }
    let from = numasim::report::html::Provenance {
        scenario_text: &scenario_text,
        command_line: &command.join(" "),
    };
    numasim::report::summary::write_run(
        &out,
        &prepared,
        &results,
        (!a.no_report).then_some(&from),
    )?;
    let cal = prepared
        .scenario
        .cost
        .calibration()
        .map_err(anyhow::Error::msg)?;
    outln!(
        "scenario {name}: {} hosts, {} policies x {} seeds in {:.1} s",
        prepared.hosts.len(),
        prepared.scenario.policies.len(),
        prepared.scenario.seeds.len(),
        start.elapsed().as_secs_f64()
    );
    out!("{}", numasim::report::summary::comparison_table(&results));
    if let Some(v) =
        numasim::report::words::verdict_line(&numasim::report::verdict::standings(&results))
    {
        outln!("{v}");
    }
    outln!(
        "latency factor: {}; results in {}",
        if cal.is_default() {
            "SLIT/10 (no calibration table)".to_string()
        } else {
            format!("calibrated ({} points)", cal.points.len())
        },
        out.display()
    );
    let asked = prepared.scenario.output.timeseries_interval_s;
    if let Some(used) = results
        .iter()
        .map(|r| r.metrics.timeseries_interval_s)
        .filter(|i| *i > asked)
        .reduce(f64::max)
    {
        eprintln!(
            "note: the time series was thinned to at most {} samples per run: interval {used} s instead of {asked} s",
            numasim::sim::metrics::MAX_SAMPLES
        );
    }
    let skipped: u64 = results
        .iter()
        .map(|r| r.metrics.skipped_rows)
        .max()
        .unwrap_or(0);
    if skipped > 0 {
        eprintln!("warning: {skipped} bad trace rows skipped per run");
    }
    Ok(0)
}

pub(super) fn sweep(a: SweepArgs) -> Result<i32> {
    use numasim::experiment::sweep::{self, Sweep};
    let shard = a.shard.as_deref().map(sweep::parse_shard).transpose()?;
    let sw = Sweep::load(&a.sweep)?;
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("results").join(&sw.spec.name));
    if a.restart && out.join("runs").exists() {
        std::fs::remove_dir_all(out.join("runs"))
            .with_context(|| format!("{}: cannot clear", out.join("runs").display()))?;
    }
    if a.restart && out.join("sweep.json").exists() {
        std::fs::remove_file(out.join("sweep.json"))
            .with_context(|| format!("{}: cannot remove", out.join("sweep.json").display()))?;
    }
    let mine = sw.shard_runs(shard);
    let done = sw.existing_records(&out);
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|r| !done.contains_key(r))
        .collect();
    let reused = mine.len() - todo.len();
    eprintln!(
        "sweep {}: {} points, {} runs{}; {} to run{}",
        sw.spec.name,
        sw.points.len(),
        sw.runs.len(),
        shard.map_or(String::new(), |(i, n)| format!(
            ", shard {i}/{n} has {}",
            mine.len()
        )),
        todo.len(),
        if reused > 0 {
            format!(", {reused} already recorded in {}", out.display())
        } else {
            String::new()
        }
    );
    let once = sw
        .prepared
        .iter()
        .filter(|p| p.seed_independent.is_some())
        .count();
    if once > 0 {
        eprintln!(
            "note: nothing depends on the seed at {once} of {} points (a trace, no random strategy, no sampled shapes, no memory growth): their policies run once, and aggregate.csv gives them n = 1 and no interval",
            sw.points.len()
        );
    }
    let bar = runs_bar(todo.len() as u64);
    let pool = thread_pool(a.threads)?;
    let start = std::time::Instant::now();
    pool.install(|| sw.execute(&out, &todo, &|| bar.inc(1)))?;
    bar.finish_and_clear();
    eprintln!(
        "ran {} runs in {:.1} s",
        todo.len(),
        start.elapsed().as_secs_f64()
    );
    if shard.is_some_and(|(_, n)| n > 1) {
        outln!(
            "shard recorded in {}; join the shards with `numasim merge DIR... --out OUT`",
            out.display()
        );
        return Ok(0);
    }
    let (manifest, records) = sweep::merge_records(std::slice::from_ref(&out))?;
    let written = sweep::write_outputs(&out, &manifest, &records, !a.no_report)?;
    for w in written {
        outln!("{}", w.display());
    }
    Ok(0)
}

pub(super) fn capacity(
    scenario: PathBuf,
    targets: Vec<String>,
    policy: Option<String>,
    max_hosts: Option<usize>,
    out: Option<PathBuf>,
    threads: Option<usize>,
) -> Result<i32> {
    use numasim::experiment::capacity::{self, Target};
    let targets = targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| anyhow::anyhow!("--target {m}"))?;
    let pool = thread_pool(threads)?;
    let plan = pool.install(|| {
        capacity::plan(&scenario, &targets, policy.as_deref(), max_hosts, &|n| {
            eprintln!("trying {n} hosts");
        })
    })?;
    if let Some(rate) = plan.arrivals_per_hour {
        outln!(
            "workload held at {rate:.1} arrivals/hour (the scenario's offered load on its own fleet)"
        );
    }
    outln!(
        "policy {}, {} seeds; sizes tried:\n\n{}",
        plan.policy,
        plan.seeds,
        plan.table()
    );
    outln!("smallest fleet meeting every target: {} hosts", plan.answer);
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        write_atomically(&dir.join("capacity.csv"), plan.csv().as_bytes())?;
    }
    Ok(0)
}

pub(super) fn bench(
    scenario: PathBuf,
    hosts: Vec<usize>,
    guests: Vec<u64>,
    policy: Option<String>,
    record: Option<PathBuf>,
) -> Result<i32> {
    use numasim::experiment::bench;
    let hosts = if hosts.is_empty() {
        vec![
            numasim::experiment::run::prepare(&scenario, &Default::default())?
                .hosts
                .len(),
        ]
    } else {
        hosts
    };
    let rows = bench::bench(&scenario, &hosts, &guests, policy.as_deref(), &mut |r| {
        eprintln!(
            "{} hosts, {} guests, {}: loop {:.2} s ({:.2} µs/event), run with outputs {:.2} s",
            r.hosts,
            r.guests,
            r.policy,
            r.wall_s,
            r.us_per_event(),
            r.command_s
        );
    })?;
    let table = bench::table(&rows);
    out!("{table}");
    if let Some(path) = record {
        use std::io::Write;
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        writeln!(
            f,
            "\n`numasim bench {}` (numasim {}, {cpu}, {cores} cores, one thread per run):\n\n{table}",
            scenario.display(),
            env!("CARGO_PKG_VERSION"),
        )?;
    }
    Ok(0)
}

pub(super) fn explain(
    scenario: PathBuf,
    guest: String,
    policy: Option<String>,
    seed: Option<u64>,
    show: usize,
) -> Result<i32> {
    let prepared = numasim::experiment::run::prepare(&scenario, &Default::default())?;
    let names: Vec<String> = prepared
        .scenario
        .policies
        .iter()
        .map(|p| p.name())
        .collect();
    let p = match &policy {
        None => 0,
        Some(name) => names.iter().position(|n| n == name).ok_or_else(|| {
            anyhow::anyhow!(
                "--policy `{name}`: the scenario's policies are {}",
                names.join(", ")
            )
        })?,
    };
    let seed = seed.unwrap_or(prepared.scenario.seeds[0]);
    let (x, decision) = prepared.explain(p, seed, &guest)?;
    outln!(
        "guest {} (flavor {}: {} vCPUs, {} MB, {}), policy {}, seed {seed}",
        x.guest,
        x.flavor,
        x.vcpus,
        x.memory_mb,
        if x.numa_cells == 0 {
            "no NUMA topology".to_string()
        } else {
            format!("{} NUMA cell(s)", x.numa_cells)
        },
        names[p]
    );
    outln!("decision: {decision}");
    let passing = x.passing().count();
    outln!("hosts: {}, passing: {passing}", x.verdicts.len());
    let summary = numasim::report::words::refusals(&x.refusals());
    if !summary.is_empty() {
        outln!("refused by: {summary}");
    }
    if x.weighed.is_some() {
        outln!("hosts in fleet order (Placement, then the enabled filters):");
    } else {
        outln!(
            "hosts in {} order (free RAM decides spread and pack; the first passing host wins{}):",
            x.strategy,
            if x.strategy == "random" {
                "; random draws among the passing ones"
            } else {
                ""
            }
        );
    }
    for (k, v) in x.verdicts.iter().enumerate().take(show) {
        outln!(
            "  {:>3}. {:<20} free RAM {:>8} MB  {}",
            k + 1,
            v.name,
            v.free_ram_mb,
            match &v.failure {
                None if v.cells.is_empty() => "passes".to_string(),
                None => format!("passes, guest cells on host cells {:?}", v.cells),
                Some(f) => format!("refused: {f}"),
            }
        );
    }
    if x.verdicts.len() > show {
        outln!("  ... {} more (--show N)", x.verdicts.len() - show);
    }
    if let Some(w) = &x.weighed {
        out!("{}", numasim::report::words::weighing(w, &x.verdicts, show));
    }
    Ok(0)
}

pub(super) fn merge(dirs: Vec<PathBuf>, out: PathBuf) -> Result<i32> {
    use numasim::experiment::sweep;
    let (manifest, records) = sweep::merge_records(&dirs)?;
    numasim::report::output::output_dir(&out)?;
    numasim::report::output::output_dir(&out.join("runs"))?;
    // The merged directory is a complete sweep directory of its own.
    for r in &records {
        write_atomically(
            &out.join("runs").join(format!("run-{:06}.json", r.run)),
            serde_json::to_string(r)?.as_bytes(),
        )?;
    }
    write_atomically(
        &out.join("sweep.json"),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    for w in sweep::write_outputs(&out, &manifest, &records, true)? {
        outln!("{}", w.display());
    }
    Ok(0)
}

pub(super) fn check(
    results: PathBuf,
    baseline: PathBuf,
    tolerances: Vec<String>,
    junit: Option<PathBuf>,
) -> Result<i32> {
    use numasim::report::check;
    let mut tol = std::collections::BTreeMap::new();
    for t in &tolerances {
        let (metric, spec) = t.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--tolerance `{t}`: expected METRIC=abs:VALUE or METRIC=rel:VALUE")
        })?;
        if !check::checked().any(|(m, _)| m == metric) {
            let names: Vec<&str> = check::checked().map(|(m, _)| m).collect();
            anyhow::bail!(
                "--tolerance `{t}`: unknown metric `{metric}`; expected one of {}",
                names.join(", ")
            );
        }
        tol.insert(
            metric.to_string(),
            check::Tolerance::parse(spec).map_err(|m| anyhow::anyhow!("--tolerance: {m}"))?,
        );
    }
    if !numasim::report::summary::is_complete(&results) {
        anyhow::bail!(
            "{}: no complete run here (no {}: the run did not finish, or these are not numasim run results)",
            results.display(),
            numasim::report::summary::COMPLETE
        );
    }
    let cur = read_text(&results.join("summary.csv"))?;
    let base = read_text(&baseline.join("summary.csv"))?;
    let rows = check::compare(&cur, &base, &tol).map_err(anyhow::Error::msg)?;
    out!("{}", check::markdown(&rows));
    let junit = junit.unwrap_or_else(|| results.join("check.junit.xml"));
    write_atomically(&junit, check::junit(&rows).as_bytes())?;
    let regressed = rows.iter().filter(|r| r.regressed).count();
    if regressed > 0 {
        eprintln!(
            "{regressed} metric(s) regressed against {}",
            baseline.display()
        );
        return Ok(1);
    }
    outln!(
        "no regression against {} ({} checks)",
        baseline.display(),
        rows.len()
    );
    Ok(0)
}

/// What a planner should know before a run: scenario settings the
/// `--flavors` catalog made moot, flavors no host of the fleet takes.
fn warnings(prepared: &numasim::experiment::run::Prepared) -> Result<Vec<String>> {
    let mut out = Vec::new();
    if !prepared.ignored_flavor_settings.is_empty() {
        let list: Vec<String> = prepared
            .ignored_flavor_settings
            .iter()
            .map(|(key, names)| format!("{key} ({})", names.join(", ")))
            .collect();
        out.push(format!(
            "the --flavors catalog lacks flavors that scenario settings name; ignored: {} (--strict-overrides makes this an error)",
            list.join("; ")
        ));
    }
    out.extend(numasim::report::words::unplaceable(
        &prepared.unplaceable_flavors()?,
        &prepared.catalog,
    ));
    Ok(out)
}

/// `numasim scenario check`: everything `run` would read and refuse,
/// without running; the warnings `run` would print.
pub(super) fn scenario_check(path: PathBuf) -> Result<i32> {
    if numasim::input::read_text(&path)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .is_some_and(|t| t.contains_key("scenario"))
    {
        anyhow::bail!(
            "{}: a sweep (it names a `scenario`): check that scenario, or run `numasim sweep`",
            path.display()
        );
    }
    let prepared = numasim::experiment::run::prepare(&path, &Default::default())?;
    let warnings = warnings(&prepared)?;
    for w in &warnings {
        outln!("warning: {w}");
    }
    outln!(
        "{}: valid: {} hosts, {} flavors, {} policies x {} seeds{}",
        path.display(),
        prepared.hosts.len(),
        prepared.catalog.flavors.len(),
        prepared.scenario.policies.len(),
        prepared.scenario.seeds.len(),
        match warnings.len() {
            0 => String::new(),
            n => format!(", {n} warning{}", if n == 1 { "" } else { "s" }),
        }
    );
    Ok(0)
}

/// `numasim scenario init`: a commented scenario that runs as it is.
pub(super) fn scenario_init(output: Option<PathBuf>) -> Result<i32> {
    const TEMPLATE: &str = include_str!("scenario-template.toml");
    match output {
        None => out!("{TEMPLATE}"),
        Some(path) => {
            if path.exists() {
                anyhow::bail!("{}: exists; choose another file", path.display());
            }
            numasim::report::output::write_atomically(&path, TEMPLATE.as_bytes())?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(0)
}

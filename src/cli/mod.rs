use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use numasim::experiment::load;
use numasim::report::output::write_atomically;
use numasim::topology::import::Format;
use numasim::topology::{presets, render, wire};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "numasim",
    version,
    about = "Discrete-event simulator for NUMA-aware guest placement"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect and convert host topologies.
    Topology {
        #[command(subcommand)]
        command: TopologyCmd,
    },
    /// Run a scenario: every policy and seed, summary and time series written
    /// to the output directory, a comparison printed.
    Run(RunArgs),
    /// Run a sweep (SWEEP.toml): a grid over scenario parameters times
    /// replications, in parallel; runs.csv, aggregate.csv (95% CIs) and plots.
    Sweep(SweepArgs),
    /// The smallest fleet (hosts of the scenario's mix) meeting every target
    /// in the bound of its 95% confidence interval, by bisection.
    Capacity {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// METRIC<=VALUE or METRIC>=VALUE, e.g. 'rejection_rate<=0.01' (repeatable).
        #[arg(long = "target", required = true)]
        targets: Vec<String>,
        /// The policy to size for (default: the scenario's first).
        #[arg(long)]
        policy: Option<String>,
        /// Give up above this many hosts (default: 64x the scenario's fleet).
        #[arg(long)]
        max_hosts: Option<usize>,
        /// Also write capacity.csv (every size tried) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads (default: all cores). Results do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Time whole runs (one thread) at several fleet sizes and guest counts:
    /// events, placements and fit calls per second, peak memory.
    Bench {
        /// Scenario file (TOML); its fleet mix is scaled to each host count.
        scenario: PathBuf,
        /// Fleet sizes, comma-separated (default: the scenario's).
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<usize>,
        /// Guest counts of the synthetic workload, comma-separated (default: the scenario's).
        #[arg(long, value_delimiter = ',')]
        guests: Vec<u64>,
        /// Only this policy (default: each of the scenario's).
        #[arg(long)]
        policy: Option<String>,
        /// Also append the table, with the machine, to this Markdown file.
        #[arg(long)]
        record: Option<PathBuf>,
    },
    /// Why a guest of a scenario was placed where it was, or refused: every
    /// host's verdict at its arrival, aggregated, and the candidates in order.
    Explain {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// The guest's id (synthetic workloads: g0000000, g0000001, ...).
        #[arg(long)]
        guest: String,
        /// The policy (default: the scenario's first).
        #[arg(long)]
        policy: Option<String>,
        /// The replication (default: the scenario's first seed).
        #[arg(long)]
        seed: Option<u64>,
        /// How many candidate hosts to list.
        #[arg(long, default_value_t = 10)]
        show: usize,
    },
    /// Join the output directories of a sweep's shards into the CSVs and
    /// plots a single run gives.
    Merge {
        /// Shard output directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged sweep goes.
        #[arg(long)]
        out: PathBuf,
    },
    /// Schedule a trace exactly as Nova's replayer does (REPLAY.md), writing
    /// one JSON line per arrival.
    Replay(ReplayArgs),
    /// Compare a run's summary.csv with a baseline; exit 1 if a metric regressed.
    Check {
        /// Directory holding the run's summary.csv.
        results: PathBuf,
        /// Directory holding the baseline's summary.csv.
        #[arg(long)]
        baseline: PathBuf,
        /// Allowed worsening per metric: METRIC=abs:VALUE or METRIC=rel:VALUE (repeatable).
        #[arg(long = "tolerance")]
        tolerances: Vec<String>,
        /// Write JUnit XML here (default: RESULTS/check.junit.xml).
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// libvirt: the domain XML of a placement.
    Libvirt {
        #[command(subcommand)]
        command: LibvirtCmd,
    },
    /// Convert public traces into numasim's trace and flavor CSVs.
    Trace {
        #[command(subcommand)]
        command: TraceCmd,
    },
    /// Answer fit cases (JSON Lines, FORMAT.md) with the fit engine.
    Fit {
        /// Cases file; standard input when absent.
        file: Option<PathBuf>,
        /// `nova` (Nova 34.0.0 bug for bug) or `clean`.
        #[arg(long, value_parser = keyword::<numasim::fit::Mode>, default_value = "nova")]
        mode: numasim::fit::Mode,
    },
}

#[derive(Subcommand)]
enum TopologyCmd {
    /// Print a host (file, sysfs directory such as `/`, or preset name).
    Show {
        host: String,
        #[arg(long, value_enum, default_value = "text")]
        format: ShowFormat,
        /// Force the input format instead of detecting it from the content.
        #[arg(long, value_enum)]
        format_in: Option<Format>,
    },
    /// Write the canonical JSON form that scenarios can reference.
    Convert {
        host: String,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum)]
        format_in: Option<Format>,
    },
    /// List the built-in host presets.
    Presets,
}

#[derive(Subcommand)]
enum TraceCmd {
    /// Describe a trace: arrivals, lifetimes, flavor mix, concurrent demand.
    Stats {
        trace: PathBuf,
        #[arg(long)]
        flavors: PathBuf,
        /// A host (preset or file): how many of them the peak needs.
        #[arg(long)]
        host: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: ShowFormat,
        /// Draw concurrent demand over time: PLOT-vcpus and PLOT-memory (.png, .svg).
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Convert a public trace into the native trace CSV (and its flavors).
    Convert {
        #[arg(long, value_enum)]
        from: numasim::workload::convert::Format,
        /// The source file (for azure-packing-2020, the SQLite database).
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        flavors_out: PathBuf,
        /// Keep guests arriving at or after this time (s); it becomes time 0.
        #[arg(long)]
        since: Option<f64>,
        /// Keep guests arriving before this time (s, source clock).
        #[arg(long)]
        until: Option<f64>,
        /// Keep each guest with this probability (seeded by --seed and its id).
        #[arg(long)]
        sample: Option<f64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Keep the first N guests by arrival (after the other cuts).
        #[arg(long)]
        limit: Option<usize>,
        /// azure-packing-2020: cores of the machine the size fractions refer to.
        #[arg(long, default_value_t = 48.0)]
        machine_cores: f64,
        /// azure-packing-2020: memory (GB) of that machine.
        #[arg(long, default_value_t = 384.0)]
        machine_memory_gb: f64,
    },
}

#[derive(Subcommand)]
enum LibvirtCmd {
    /// Fit a case (FORMAT.md JSON Lines) and print the domain XML of the placement.
    Xml {
        /// Cases file (the first case is used unless --case names one).
        cases: PathBuf,
        #[arg(long)]
        case: Option<String>,
        /// `strict`, `preferred` or `interleave`.
        #[arg(long, value_parser = keyword::<numasim::sim::memory::MemoryMode>, default_value = "strict")]
        memory_mode: numasim::sim::memory::MemoryMode,
        /// `nova` (Nova 34.0.0 bug for bug) or `clean`.
        #[arg(long, value_parser = keyword::<numasim::fit::Mode>, default_value = "nova")]
        mode: numasim::fit::Mode,
        #[arg(long, default_value = "guest")]
        name: String,
    },
    /// Capture a host from libvirt: capabilities plus free memory and free
    /// hugepages per cell, written as numasim's host JSON.
    Capture {
        /// libvirt URI (`qemu:///system`, `qemu+ssh://host/system`), or
        /// `sim:CAPS.xml` for a capabilities file without libvirt.
        #[arg(long)]
        connect: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Place guests one by one on a libvirt host with the fit engine, define
    /// (and start) their domains, and compare what libvirt reports with the
    /// prediction; exit 1 on any mismatch or refusal. Removes every domain
    /// it created, also on failure or Ctrl-C.
    Validate(ValidateArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario file (TOML).
    scenario: PathBuf,
    /// Use this trace instead of the scenario's workload.
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Use this flavor catalog instead of the scenario's.
    #[arg(long)]
    flavors: Option<PathBuf>,
    /// Scale the fleet to N hosts, keeping its mix.
    #[arg(long)]
    hosts: Option<usize>,
    /// Run only the replication with this seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory (default: results/<scenario name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Skip (and count) bad trace rows instead of failing.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Price latency with a shipped platform table (`xeon-scalable-2s`,
    /// `nehalem-ep-2s`, `xeon-e7-4s`) or `slit` (SLIT/10), instead of the
    /// scenario's `[cost]`.
    #[arg(long, value_name = "NAME")]
    cost_platform: Option<String>,
}

#[derive(clap::Args)]
struct SweepArgs {
    /// Sweep file (TOML).
    sweep: PathBuf,
    /// Output directory (default: results/<sweep name>). Runs already
    /// recorded there are not run again: an interrupted sweep resumes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Run only shard I of N (every N-th run from I); `numasim merge` joins them.
    #[arg(long)]
    shard: Option<String>,
    /// Forget the runs recorded in the output directory and run them all.
    #[arg(long)]
    restart: bool,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// Fleet JSON: {"hosts": [{"name", "host"} | {"model", "count", "prefix"}]}.
    #[arg(long)]
    fleet: PathBuf,
    /// Trace CSV: id,arrival_s,departure_s,flavor[,image_props].
    #[arg(long)]
    trace: PathBuf,
    /// Flavor catalog CSV: name,vcpus,memory_mb,extra_specs.
    #[arg(long)]
    flavors: PathBuf,
    /// Limits JSON, or `null` for none.
    #[arg(
        long,
        default_value = r#"{"cpu_allocation_ratio": 16.0, "ram_allocation_ratio": 1.5}"#
    )]
    limits: String,
    /// `spread`, `pack`, `first-fit` or `random`.
    #[arg(long, value_parser = keyword::<numasim::sim::Strategy>, default_value = "spread")]
    strategy: numasim::sim::Strategy,
    /// Which guests get placement's host-level check: `all` (real Nova) or `non-numa`.
    #[arg(long, value_parser = keyword::<numasim::sim::HostCheck>, default_value = "all")]
    host_check: numasim::sim::HostCheck,
    /// Placements (JSON Lines).
    #[arg(long)]
    out: PathBuf,
    /// Also write the summary as JSON.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Skip (and count) bad trace rows instead of failing.
    #[arg(long)]
    skip_bad_rows: bool,
}

/// Parses a library keyword (`spread`, `strict`, ...) by its serde name,
/// so the library's enums need no command-line derives.
fn keyword<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    use serde::de::value::{Error, StrDeserializer};
    T::deserialize(StrDeserializer::<Error>::new(s)).map_err(|e| e.to_string())
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowFormat {
    Text,
    Json,
}

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if is_internal(&e) { 3 } else { 2 }
        }
    }
}

/// Whether an error is numasim's own (an invariant broke: exit 3) rather
/// than its input's (exit 2).
fn is_internal(e: &anyhow::Error) -> bool {
    use numasim::experiment::{capacity::CapacityError, run::RunError, sweep::SweepError};
    e.chain().any(|c| {
        c.downcast_ref::<RunError>()
            .is_some_and(RunError::is_internal)
            || c.downcast_ref::<SweepError>()
                .is_some_and(SweepError::is_internal)
            || c.downcast_ref::<CapacityError>()
                .is_some_and(CapacityError::is_internal)
            || c.downcast_ref::<numasim::sim::SimError>()
                .is_some_and(numasim::sim::SimError::is_internal)
    })
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Topology { command } => topology(command),
        Command::Fit { file, mode } => fit(file, mode),
        Command::Replay(args) => replay(args),
        Command::Run(args) => run_scenario(args),
        Command::Sweep(args) => sweep(args),
        Command::Merge { dirs, out } => merge(dirs, out),
        Command::Explain {
            scenario,
            guest,
            policy,
            seed,
            show,
        } => explain(scenario, guest, policy, seed, show),
        Command::Bench {
            scenario,
            hosts,
            guests,
            policy,
            record,
        } => bench(scenario, hosts, guests, policy, record),
        Command::Capacity {
            scenario,
            targets,
            policy,
            max_hosts,
            out,
            threads,
        } => capacity(scenario, targets, policy, max_hosts, out, threads),
        Command::Libvirt {
            command:
                LibvirtCmd::Xml {
                    cases,
                    case,
                    memory_mode,
                    mode,
                    name,
                },
        } => libvirt_xml(cases, case, memory_mode, mode, name),
        Command::Libvirt {
            command: LibvirtCmd::Capture { connect, output },
        } => libvirt_capture(&connect, &output),
        Command::Libvirt {
            command: LibvirtCmd::Validate(args),
        } => libvirt_validate(args),
        Command::Check {
            results,
            baseline,
            tolerances,
            junit,
        } => check(results, baseline, tolerances, junit),
        Command::Trace { command } => trace_cmd(command),
    }
}

fn topology(cmd: TopologyCmd) -> Result<i32> {
    match cmd {
        TopologyCmd::Show {
            host,
            format,
            format_in,
        } => {
            let host = load::load_host(&host, format_in)?;
            match format {
                ShowFormat::Text => print!("{}", render::text(&host)),
                ShowFormat::Json => println!("{}", wire::to_json(&host)),
            }
        }
        TopologyCmd::Convert {
            host,
            output,
            format_in,
        } => {
            let host = load::load_host(&host, format_in)?;
            write_atomically(&output, wire::to_json(&host).as_bytes())?;
            for w in &host.warnings {
                eprintln!("warning: {w}");
            }
        }
        TopologyCmd::Presets => {
            for p in presets::PRESETS {
                println!("{:<16} {}", p.name, p.about);
            }
        }
    }
    Ok(0)
}

/// One result line per case line, in order; a line that is not JSON gets an
/// `input` error result naming its line number, like the oracle.
fn fit(file: Option<PathBuf>, mode: numasim::fit::Mode) -> Result<i32> {
    use std::io::{BufRead, Write};
    let reader: Box<dyn BufRead> = match &file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("{}: cannot open", p.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let name = file
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (idx, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}: line {}: cannot read", idx + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let result = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(case) => numasim::fit::case::run_case(&case, mode),
            Err(e) => serde_json::json!({
                "cells": null, "error": {"kind": "InputError", "message": format!("line {}: {e}", idx + 1), "phase": "input"},
                "fits": null, "id": null, "request": null, "usage_after": null
            }),
        };
        writeln!(out, "{result}")?;
    }
    out.flush()?;
    Ok(0)
}

fn read_text(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))
}

fn open(path: &std::path::Path) -> Result<std::io::BufReader<std::fs::File>> {
    Ok(std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?,
    ))
}

fn replay(a: ReplayArgs) -> Result<i32> {
    use numasim::sim::{SimConfig, Simulation};
    let hosts = numasim::sim::fleet::fleet_from_json(&read_text(&a.fleet)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.fleet.display()))?;
    let catalog = numasim::workload::trace::read_catalog(open(&a.flavors)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.flavors.display()))?;
    let limits_json: serde_json::Value =
        serde_json::from_str(&a.limits).map_err(|e| anyhow::anyhow!("--limits: {e}; expected JSON such as {{\"cpu_allocation_ratio\": 16.0, \"ram_allocation_ratio\": 1.5}} or null"))?;
    let limits = numasim::fit::case::parse_limits(Some(&limits_json))
        .map_err(|e| anyhow::anyhow!("--limits: {}", e.message))?;
    let config = SimConfig {
        strategy: a.strategy,
        host_check: a.host_check,
        limits,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(hosts, catalog.clone(), config);
    // Written whole or not at all: a failed replay leaves no file behind.
    let file = numasim::report::output::AtomicFile::create(&a.out)?;
    let mut writer = numasim::report::replay::ReplayWriter::new(file);
    let mut rows =
        numasim::workload::trace::TraceReader::new(open(&a.trace)?, &catalog, a.skip_bad_rows)
            .map_err(|e| anyhow::anyhow!("{}: {e}", a.trace.display()))?;
    let start = std::time::Instant::now();
    let result = sim.run(&mut rows, &mut writer);
    let wall = start.elapsed().as_secs_f64();
    if let Err(e) = result {
        return Err(match e {
            numasim::sim::SimError::Trace(t) => anyhow::anyhow!("{}: {t}", a.trace.display()),
            other => anyhow::anyhow!(other),
        });
    }
    if let Some(e) = writer.io_error.take() {
        return Err(anyhow::anyhow!("{}: {e}", a.out.display()));
    }
    let summary = writer.summary.clone();
    writer.out.commit()?;
    let mut summary = summary;
    summary.still_placed = sim.running() as u64;
    summary.fit_calls = sim.fit_calls;
    summary.accounting_ok = sim.accounting_ok();
    summary.rejected_pct = if summary.guests > 0 {
        (summary.rejected as f64 * 10000.0 / summary.guests as f64).round() / 100.0
    } else {
        0.0
    };
    summary.wall_s = wall;
    if rows.skipped > 0 {
        eprintln!(
            "warning: {} bad trace rows skipped (first: {})",
            rows.skipped,
            rows.skipped_examples.join("; ")
        );
    }
    eprintln!(
        "replay: {} guests, {} placed, {} rejected ({}%), {} fit calls, {:.3} s",
        summary.guests,
        summary.placed,
        summary.rejected,
        summary.rejected_pct,
        summary.fit_calls,
        wall
    );
    let json = serde_json::to_string_pretty(&summary)?;
    eprintln!("summary: {}", serde_json::to_string(&summary)?);
    if let Some(p) = a.summary_json {
        write_atomically(&p, json.as_bytes())?;
    }
    Ok(0)
}

/// A progress bar over runs, with the time left.
fn runs_bar(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} runs, ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}

/// Worker threads for parallel runs (0 or none: one per core).
fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()?)
}

fn run_scenario(a: RunArgs) -> Result<i32> {
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
        ..run::Overrides::default()
    };
    let mut prepared = run::prepare(&a.scenario, &ov)?;
    prepared.explain_rejections = true;
    let jobs = (prepared.scenario.policies.len() * prepared.scenario.seeds.len()) as u64;
    let bar = runs_bar(jobs);
    let pool = thread_pool(a.threads)?;
    if let Some(twin) = &prepared.twin {
        println!("{twin}");
    }
    let start = std::time::Instant::now();
    let results = pool.install(|| prepared.run_all(&|| bar.inc(1)))?;
    bar.finish_and_clear();
    let name = &prepared.scenario.name;
    let out = a.out.unwrap_or_else(|| PathBuf::from("results").join(name));
    numasim::report::summary::write_run(&out, &prepared, &results)?;
    let cal = prepared
        .scenario
        .cost
        .calibration()
        .map_err(anyhow::Error::msg)?;
    println!(
        "scenario {name}: {} hosts, {} policies x {} seeds in {:.1} s",
        prepared.hosts.len(),
        prepared.scenario.policies.len(),
        prepared.scenario.seeds.len(),
        start.elapsed().as_secs_f64()
    );
    print!("{}", numasim::report::summary::comparison_table(&results));
    println!(
        "latency factor: {}; results in {}",
        if cal.is_default() {
            "SLIT/10 (no calibration table)".to_string()
        } else {
            format!("calibrated ({} points)", cal.points.len())
        },
        out.display()
    );
    let skipped: u64 = results.iter().map(|r| r.skipped_rows).max().unwrap_or(0);
    if skipped > 0 {
        eprintln!("warning: {skipped} bad trace rows skipped per run");
    }
    Ok(0)
}

fn sweep(a: SweepArgs) -> Result<i32> {
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
        println!(
            "shard recorded in {}; join the shards with `numasim merge DIR... --out OUT`",
            out.display()
        );
        return Ok(0);
    }
    let (manifest, records) = sweep::merge_records(std::slice::from_ref(&out))?;
    let written = sweep::write_outputs(&out, &manifest, &records)?;
    for w in written {
        println!("{}", w.display());
    }
    Ok(0)
}

fn capacity(
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
        println!(
            "workload held at {rate:.1} arrivals/hour (the scenario's offered load on its own fleet)"
        );
    }
    println!(
        "policy {}, {} seeds; sizes tried:\n\n{}",
        plan.policy,
        plan.seeds,
        plan.table()
    );
    println!("smallest fleet meeting every target: {} hosts", plan.answer);
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        write_atomically(&dir.join("capacity.csv"), plan.csv().as_bytes())?;
    }
    Ok(0)
}

fn bench(
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
            "{} hosts, {} guests, {}: {:.2} s, {:.2} µs/event",
            r.hosts,
            r.guests,
            r.policy,
            r.wall_s,
            r.us_per_event()
        );
    })?;
    let table = bench::table(&rows);
    print!("{table}");
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

fn explain(
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
    println!(
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
    println!("decision: {decision}");
    let passing = x.passing().count();
    println!("hosts: {}, passing: {passing}", x.verdicts.len());
    let summary = numasim::report::words::refusals(&x.refusals());
    if !summary.is_empty() {
        println!("refused by: {summary}");
    }
    println!(
        "hosts in {} order (free RAM decides spread and pack; the first passing host wins{}):",
        x.strategy,
        if x.strategy == "random" {
            "; random draws among the passing ones"
        } else {
            ""
        }
    );
    for (k, v) in x.verdicts.iter().enumerate().take(show) {
        println!(
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
        println!("  ... {} more (--show N)", x.verdicts.len() - show);
    }
    Ok(0)
}

fn merge(dirs: Vec<PathBuf>, out: PathBuf) -> Result<i32> {
    use numasim::experiment::sweep;
    let (manifest, records) = sweep::merge_records(&dirs)?;
    std::fs::create_dir_all(out.join("runs"))
        .with_context(|| format!("{}: cannot create", out.display()))?;
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
    for w in sweep::write_outputs(&out, &manifest, &records)? {
        println!("{}", w.display());
    }
    Ok(0)
}

fn check(
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
        if !check::METRICS.iter().any(|(m, _)| *m == metric) {
            let names: Vec<&str> = check::METRICS.iter().map(|(m, _)| *m).collect();
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
    let cur = read_text(&results.join("summary.csv"))?;
    let base = read_text(&baseline.join("summary.csv"))?;
    let rows = check::compare(&cur, &base, &tol).map_err(anyhow::Error::msg)?;
    print!("{}", check::markdown(&rows));
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
    println!(
        "no regression against {} ({} checks)",
        baseline.display(),
        rows.len()
    );
    Ok(0)
}

/// The backend a `--connect` names: `sim:CAPS.xml` needs no libvirt.
fn libvirt_backend(connect: &str) -> Result<Box<dyn numasim::libvirt::backend::Backend>> {
    use numasim::libvirt::backend::SimBackend;
    if let Some(path) = connect.strip_prefix("sim:") {
        let capabilities = std::fs::read_to_string(path)
            .with_context(|| format!("{path}: cannot read the capabilities file"))?;
        return Ok(Box::new(SimBackend {
            capabilities,
            free: Default::default(),
            domains: Default::default(),
        }));
    }
    let v = numasim::libvirt::virsh::Virsh::connect(connect)
        .map_err(|e| anyhow::anyhow!("cannot connect to {connect}: {e}"))?;
    Ok(Box::new(v))
}

fn libvirt_capture(connect: &str, output: &std::path::Path) -> Result<i32> {
    let mut backend = libvirt_backend(connect)?;
    let name = output
        .file_stem()
        .map_or("host".into(), |s| s.to_string_lossy().into_owned());
    let host = numasim::libvirt::validate::capture(backend.as_mut(), &name)
        .map_err(|e| anyhow::anyhow!("{connect}: {e}"))?;
    write_atomically(output, wire::to_json(&host).as_bytes())?;
    println!(
        "{connect}: {} cells, {} CPUs, {} MiB ({} MiB free) -> {}",
        host.cells.len(),
        host.cells.iter().map(|c| c.cpus.len()).sum::<usize>(),
        host.cells.iter().map(|c| c.memory_mb()).sum::<u64>(),
        host.cells.iter().filter_map(|c| c.free_kb).sum::<u64>() / 1024,
        output.display()
    );
    Ok(0)
}

#[derive(clap::Args)]
struct ValidateArgs {
    /// libvirt URI (`qemu:///system`, `qemu+ssh://host/system`), or
    /// `sim:CAPS.xml` to validate against a capabilities file without libvirt.
    #[arg(long)]
    connect: String,
    /// A scenario (TOML; its workload, first seed) or a trace (CSV, with --flavors).
    input: PathBuf,
    /// Flavor catalog (CSV) of a trace, or instead of a scenario's.
    #[arg(long)]
    flavors: Option<PathBuf>,
    /// Guests to try, from the start of the workload.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Memory mode of the numatune (default: the scenario's first
    /// policy's; strict for a trace).
    #[arg(long, value_parser = keyword::<numasim::sim::memory::MemoryMode>)]
    memory_mode: Option<numasim::sim::memory::MemoryMode>,
    /// Also start the guests and read their live pinning back.
    #[arg(long)]
    start: bool,
    /// Start only guests pinned within these host CPUs (e.g. the real
    /// ones under a fake sysfs: `0-1`).
    #[arg(long)]
    start_cpus: Option<String>,
    /// Start only guests whose memory is bound within these host nodes.
    #[arg(long)]
    start_nodes: Option<String>,
    /// Also write the report as CSV, a line per guest as it is done.
    #[arg(long)]
    out: Option<PathBuf>,
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn libvirt_validate(a: ValidateArgs) -> Result<i32> {
    use numasim::libvirt::validate;
    let list = |flag: &str, v: &Option<String>| -> Result<Option<Vec<u32>>> {
        v.as_ref()
            .map(|s| {
                numasim::topology::parse_cpu_list(s).map_err(|e| {
                    anyhow::anyhow!("--{flag} `{s}`: {e}; expected a list such as 0-1,4")
                })
            })
            .transpose()
    };
    if a.connect.starts_with("test:") || a.connect.starts_with("test+") {
        anyhow::bail!(
            "--connect {}: libvirt's test driver forgets every domain between two virsh processes, so nothing can be read back; use a daemon's URI (qemu:///system, qemu+ssh://HOST/system) or sim:CAPS.xml",
            a.connect
        );
    }
    let start_cpus = list("start-cpus", &a.start_cpus)?;
    let start_nodes = list("start-nodes", &a.start_nodes)?;
    let is_trace = a.input.extension().is_some_and(|e| e == "csv");
    let mut mode = a
        .memory_mode
        .unwrap_or(numasim::sim::memory::MemoryMode::Strict);
    let (catalog, rows) = if is_trace {
        let Some(flavors) = &a.flavors else {
            anyhow::bail!("{}: a trace needs --flavors CSV", a.input.display());
        };
        let f = std::fs::File::open(flavors)
            .with_context(|| format!("{}: cannot open", flavors.display()))?;
        let catalog = numasim::workload::trace::read_catalog(std::io::BufReader::new(f))
            .map_err(|e| anyhow::anyhow!("{}: {e}", flavors.display()))?;
        let f = std::fs::File::open(&a.input)
            .with_context(|| format!("{}: cannot open", a.input.display()))?;
        let reader =
            numasim::workload::trace::TraceReader::new(std::io::BufReader::new(f), &catalog, false)
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.input.display()))?;
        let mut rows = Vec::new();
        for row in reader.take(a.limit) {
            rows.push(row.map_err(|e| anyhow::anyhow!("{}: {e}", a.input.display()))?);
        }
        (catalog, rows)
    } else {
        let ov = numasim::experiment::run::Overrides {
            flavors: a.flavors.clone(),
            ..Default::default()
        };
        let prepared = numasim::experiment::run::prepare(&a.input, &ov)?;
        let seed = prepared.scenario.seeds.first().copied().unwrap_or(1);
        if a.memory_mode.is_none()
            && let Some(p) = prepared.scenario.policies.first()
        {
            mode = p.memory_mode;
        }
        let mut rows = Vec::new();
        for row in prepared.rows(seed)?.take(a.limit) {
            let row = row.map_err(|e| anyhow::anyhow!("{}: {e}", a.input.display()))?;
            rows.push(prepared.shaped(row, seed));
        }
        (prepared.catalog.clone(), rows)
    };
    let mut backend = libvirt_backend(&a.connect)?;
    let host = validate::capture(backend.as_mut(), "validate")
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.connect))?;
    let opts = validate::Options {
        limit: a.limit,
        mode,
        fit_mode: numasim::fit::Mode::Nova,
        start: a.start || start_cpus.is_some() || start_nodes.is_some(),
        start_cpus,
        start_nodes,
        prefix: format!("numasim-{}", std::process::id()),
    };
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst));
    let mut csv_out = match &a.out {
        Some(p) => {
            let mut w = csv::Writer::from_path(p)
                .with_context(|| format!("{}: cannot create", p.display()))?;
            w.write_record([
                "guest",
                "flavor",
                "domain",
                "host_cells",
                "outcome",
                "started",
                "details",
            ])?;
            w.flush()?;
            Some(w)
        }
        None => None,
    };
    let mut write_error = None;
    let mut show = |r: &validate::GuestReport| {
        let cells = format!("{:?}", r.cells);
        println!(
            "{:<12} {:<14} cells {:<8} {:<9}{}{}",
            r.guest,
            r.flavor,
            cells,
            r.outcome,
            if r.started { " started" } else { "" },
            if r.details.is_empty() {
                String::new()
            } else {
                format!(": {}", r.details.join("; "))
            }
        );
        if let Some(w) = &mut csv_out {
            let res = w
                .write_record([
                    r.guest.as_str(),
                    &r.flavor,
                    &r.domain,
                    &cells,
                    r.outcome,
                    if r.started { "yes" } else { "no" },
                    &r.details.join("; "),
                ])
                .and_then(|_| w.flush().map_err(csv::Error::from));
            if let Err(e) = res {
                write_error.get_or_insert(e);
            }
        }
    };
    let result = validate::validate(
        backend.as_mut(),
        &host,
        &catalog,
        rows.into_iter(),
        &opts,
        &INTERRUPTED,
        &mut show,
    );
    if let Some(e) = write_error {
        anyhow::bail!("validation report: {e}");
    }
    let reports = result.map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (partial results above; the domains created were removed)",
            a.connect
        )
    })?;
    let failed = reports.iter().filter(|r| r.failed()).count();
    let checked = reports
        .iter()
        .filter(|r| matches!(r.outcome, "match" | "mismatch" | "refused"))
        .count();
    let started = reports.iter().filter(|r| r.started).count();
    if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        eprintln!("interrupted: the domains created were removed");
        return Ok(130);
    }
    println!(
        "{}: {checked} guests defined ({started} started), {failed} mismatched or refused, {} not placed or skipped",
        a.connect,
        reports.len() - checked
    );
    Ok(if failed > 0 { 1 } else { 0 })
}

fn libvirt_xml(
    cases: PathBuf,
    case: Option<String>,
    memory_mode: numasim::sim::memory::MemoryMode,
    mode: numasim::fit::Mode,
    name: String,
) -> Result<i32> {
    let text = read_text(&cases)?;
    let mut chosen = None;
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{}: line {}: {e}", cases.display(), i + 1))?;
        if case.as_deref().is_none_or(|id| v["id"] == id) {
            chosen = Some((i + 1, v));
            break;
        }
    }
    let Some((line, v)) = chosen else {
        anyhow::bail!(
            "{}: no case{}",
            cases.display(),
            case.map(|c| format!(" with id `{c}`")).unwrap_or_default()
        );
    };
    let where_ = format!("{}: line {line}", cases.display());
    let prepared = numasim::fit::case::prepare(&v)
        .and_then(|p| p.with_pci(&v))
        .map_err(|e| anyhow::anyhow!("{where_}: {} {}: {}", e.phase.as_str(), e.kind, e.message))?;
    if prepared.request.is_none() {
        anyhow::bail!("{where_}: the request asks for no guest NUMA topology: nothing to pin");
    }
    let Some(fitted) = prepared
        .fit(mode)
        .map_err(|e| anyhow::anyhow!("{where_}: {}", e.message))?
    else {
        eprintln!("{where_}: the guest does not fit this host");
        return Ok(1);
    };
    let distances: Option<Vec<Vec<u32>>> = v["host"]["distances"].as_array().map(|rows| {
        rows.iter()
            .map(|r| {
                r.as_array()
                    .map(|r| {
                        r.iter()
                            .filter_map(|x| x.as_u64().map(|d| d as u32))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    });
    let spec = numasim::libvirt::xml::DomainSpec {
        name: &name,
        memory_mb: fitted.cells.iter().map(|c| c.memory_mb).sum(),
        host: &prepared.host,
        distances: distances
            .as_deref()
            .filter(|d| d.len() == prepared.host.cells.len()),
        mode: memory_mode,
        domain_type: "kvm",
    };
    print!("{}", numasim::libvirt::xml::domain_xml(&spec, &fitted));
    Ok(0)
}

fn trace_cmd(cmd: TraceCmd) -> Result<i32> {
    match cmd {
        TraceCmd::Stats {
            trace,
            flavors,
            host,
            format,
            plot,
        } => {
            let catalog = numasim::workload::trace::read_catalog(open(&flavors)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", flavors.display()))?;
            let rows = numasim::workload::trace::TraceReader::new(open(&trace)?, &catalog, false)
                .map_err(|e| anyhow::anyhow!("{}: {e}", trace.display()))?;
            let s = numasim::workload::stats::stats(rows, &catalog)
                .map_err(|e| anyhow::anyhow!("{}: {e}", trace.display()))?;
            let model = match &host {
                Some(h) => {
                    let host = load::load_host(h, None)?;
                    Some((
                        host.name.clone(),
                        host.cpu_count() as i64,
                        (host.memory_kb() / 1024) as i64,
                    ))
                }
                None => None,
            };
            match format {
                ShowFormat::Text => print!(
                    "{}",
                    numasim::report::trace_stats::text(
                        &s,
                        model.as_ref().map(|(n, c, m)| (n.as_str(), *c, *m))
                    )
                ),
                ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&s)?),
            }
            if let Some(base) = plot {
                let name = trace
                    .file_stem()
                    .map_or("trace".into(), |f| f.to_string_lossy().to_string());
                for p in numasim::report::trace_stats::plot_demand(&s, &name, &base)? {
                    eprintln!("{}", p.display());
                }
            }
            Ok(0)
        }
        TraceCmd::Convert {
            from,
            input,
            output,
            flavors_out,
            since,
            until,
            sample,
            seed,
            limit,
            machine_cores,
            machine_memory_gb,
        } => {
            let cuts = numasim::workload::convert::Cuts {
                since,
                until,
                sample,
                limit,
                seed,
            };
            let rules = numasim::workload::convert::SizeRules {
                machine_cores,
                machine_memory_gb,
            };
            let converted = numasim::workload::convert::convert(from, &input, &cuts, &rules)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            write_atomically(&output, converted.trace_csv.as_bytes())?;
            write_atomically(&flavors_out, converted.flavors_csv.as_bytes())?;
            eprintln!(
                "{} guests written, {} cut, {} rows dropped{}",
                converted.rows,
                converted.cut,
                converted.dropped,
                if converted.dropped_examples.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. {})", converted.dropped_examples.join(", "))
                }
            );
            Ok(0)
        }
    }
}

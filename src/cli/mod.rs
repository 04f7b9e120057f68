use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use numasim::experiment::load;
use numasim::report::output::write_atomically;
use numasim::topology::import::Format;
use numasim::topology::{presets, render, wire};
use std::path::PathBuf;

/// `print!` and `println!` that return an error when stdout cannot be
/// written (a full disk, a closed file) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err(|e| anyhow::anyhow!("stdout: {e}"))?
    }};
}
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(|e| anyhow::anyhow!("stdout: {e}"))?
    }};
}

mod inputs;
mod libvirt;
mod scenario;

use inputs::*;
use libvirt::*;
use scenario::*;

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
    /// Write a scenario to start from, or check one without running it.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCmd,
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
    /// Schedule a trace exactly as Nova's replayer does (tests/data/replay/REPLAY.md), writing
    /// one JSON line per arrival.
    Replay(ReplayArgs),
    /// Print every metric of summary.csv and the sweep CSVs: unit, how it is
    /// aggregated, which way is worse, definition (Markdown).
    Metrics,
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
    /// Answer fit cases (JSON Lines, tests/data/fit-cases/FORMAT.md) with the fit engine.
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
        /// Force the input format instead of detecting it from the content:
        /// `json`, `libvirt`, `numactl`, `hwloc` or `sysfs-flat`.
        #[arg(long, value_parser = keyword::<Format>)]
        format_in: Option<Format>,
    },
    /// Write the canonical JSON form that scenarios can reference.
    Convert {
        host: String,
        #[arg(short, long)]
        output: PathBuf,
        /// `json`, `libvirt`, `numactl`, `hwloc` or `sysfs-flat` (default: detected).
        #[arg(long, value_parser = keyword::<Format>)]
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
enum ScenarioCmd {
    /// Read and validate a scenario and everything it names (fleet, flavors,
    /// trace) without running it; print the warnings `run` would print
    /// (flavors no host of the fleet takes, with why).
    Check {
        /// Scenario file (TOML).
        scenario: PathBuf,
    },
    /// Every scenario key: type, default, allowed values, description
    /// (Markdown, generated from the scenario types).
    Reference,
    /// Print a commented scenario that runs as it is (or write it to FILE).
    Init {
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LibvirtCmd {
    /// Fit a case (tests/data/fit-cases/FORMAT.md JSON Lines) and print the
    /// domain XML of the placement, as Nova's libvirt driver writes it.
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
        /// Also give the guest cells `<distances>` from the host's SLIT.
        /// Beyond Nova: its driver writes none, so its guests see
        /// libvirt's defaults.
        #[arg(long)]
        guest_distances: bool,
        /// Place the guest with this placement policy instead of Nova's fit
        /// (`closest`, `float`, `cpuset-auto`, `manual`, `numad`, `autonuma`)
        /// and print the XML libvirt needs for its binding.
        #[arg(long, default_value = "nova")]
        placement: String,
        /// The operator's numatune for `--placement manual`: NODESET or
        /// NODESET:MODE (`0-1:preferred`; mode default strict).
        #[arg(long, value_name = "NODESET[:MODE]")]
        numatune: Option<String>,
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
    /// Do not write report.html.
    #[arg(long)]
    no_report: bool,
    /// Price latency with a shipped platform table (`xeon-scalable-2s`,
    /// `nehalem-ep-2s`, `xeon-e7-4s`) or `slit` (SLIT/10), instead of the
    /// scenario's `[cost]`.
    #[arg(long, value_name = "NAME")]
    cost_platform: Option<String>,
    /// With --flavors: fail when the scenario's per-flavor settings
    /// (touched_fraction, growth, manual, the synthetic mix) name flavors the
    /// catalog lacks, instead of ignoring them with a warning (for CI).
    #[arg(long)]
    strict_overrides: bool,
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
    /// Do not write report.html.
    #[arg(long)]
    no_report: bool,
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
    /// `spread`, `pack`, `first-fit`, `random`, or `nova` (Nova's
    /// scheduler: Placement, filters, weighers; implied by any of the
    /// options below that configure it).
    #[arg(long, value_parser = keyword::<numasim::sim::Strategy>, default_value = "spread")]
    strategy: numasim::sim::Strategy,
    /// Nova's option `SECTION.KEY=VALUE` (repeatable; `DEFAULT` for no
    /// group), e.g. `filter_scheduler.ram_weight_multiplier=-1.0`.
    #[arg(long, value_name = "SECTION.KEY=VALUE")]
    conf: Vec<String>,
    /// `[filter_scheduler] enabled_filters`, comma-separated class names.
    #[arg(long)]
    filters: Option<String>,
    /// `[filter_scheduler] weight_classes`: `all` or class names.
    #[arg(long)]
    weighers: Option<String>,
    /// `[scheduler] max_placement_results`.
    #[arg(long)]
    max_placement_results: Option<usize>,
    /// Seed of the choice (`random`; `nova`: CPython's `random.Random(N)`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// `nova`: weigh every surviving host as Nova does instead of using the
    /// index (the same placements, slower; a check of the index).
    #[arg(long)]
    full_scan: bool,
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
            eprintln!("error: {}", error_text(&e));
            exit_code(&e)
        }
    }
}

/// 3 when an invariant of numasim's broke, 2 for bad input.
fn exit_code(e: &anyhow::Error) -> i32 {
    if is_internal(e) { 3 } else { 2 }
}

/// The error and its causes, each said once: a library error that already
/// shows its cause in its own message is not followed by the cause again.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    text
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
        Command::Scenario { command } => match command {
            ScenarioCmd::Check { scenario } => scenario::scenario_check(scenario),
            ScenarioCmd::Init { output } => scenario::scenario_init(output),
            ScenarioCmd::Reference => {
                out!("{}", numasim::experiment::reference::reference_markdown());
                Ok(0)
            }
        },
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
                    guest_distances,
                    placement,
                    numatune,
                },
        } => libvirt_xml(XmlRequest {
            cases,
            case,
            memory_mode,
            mode,
            name,
            guest_distances,
            placement,
            numatune,
        }),
        Command::Libvirt {
            command: LibvirtCmd::Capture { connect, output },
        } => libvirt_capture(&connect, &output),
        Command::Libvirt {
            command: LibvirtCmd::Validate(args),
        } => libvirt_validate(args),
        Command::Metrics => {
            out!("{}", numasim::report::metrics::markdown());
            Ok(0)
        }
        Command::Check {
            results,
            baseline,
            tolerances,
            junit,
        } => check(results, baseline, tolerances, junit),
        Command::Trace { command } => trace_cmd(command),
    }
}

pub(super) fn read_text(path: &std::path::Path) -> Result<String> {
    numasim::input::read_text(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// A progress bar over runs, with the time left.
pub(super) fn runs_bar(len: u64) -> indicatif::ProgressBar {
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
pub(super) fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    // More threads than runs buys nothing; thousands only stall the machine.
    const MAX_THREADS: usize = 1024;
    if let Some(n) = threads.filter(|n| *n > MAX_THREADS) {
        anyhow::bail!("--threads {n}: expected 0 (one per core) to {MAX_THREADS}");
    }
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use numasim::experiment::run::RunError;

    #[test]
    fn internal_failures_exit_3_and_bad_input_2_through_any_context() {
        let internal: Result<(), RunError> = Err(RunError::internal("usage accounting drifted"));
        let e = internal.context("scenario x").unwrap_err();
        assert_eq!(exit_code(&e), 3);
        assert!(error_text(&e).contains("usage accounting drifted"));
        let input: Result<(), RunError> = Err(RunError::input("rate = NaN"));
        assert_eq!(exit_code(&input.context("scenario x").unwrap_err()), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("a plain message")), 2);
    }
}

//! `numasim run`: resolves a scenario's files, runs every policy and seed
//! (in parallel, each run single-threaded and deterministic), and writes
//! `summary.csv` and `timeseries.csv`. This is the edge: it reads and
//! writes files; the simulation itself happens in `sim`.

use crate::error::{Locate, Location, ResultExt};
use crate::experiment::scenario::Scenario;
use crate::request::Flavor;
use crate::sim::fleet::SimHost;
use crate::sim::metrics::{MetricsCollector, RunMetrics, Sample};
use crate::sim::{SimConfig, Simulation};
use crate::workload::synthetic::SyntheticStream;
use crate::workload::trace::{Catalog, open_catalog, open_trace};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Command-line overrides of a scenario.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The placement policies scenario files may name (default: the built-in ones).
    pub registry: crate::sim::policy::Registry,
    pub trace: Option<PathBuf>,
    pub flavors: Option<PathBuf>,
    pub hosts: Option<usize>,
    pub seed: Option<u64>,
    pub skip_bad_rows: bool,
    /// Price latency with this platform's calibration table instead of the
    /// scenario's `[cost]` (`slit` for SLIT/10, no table).
    pub cost_platform: Option<String>,
    /// With `flavors`: per-flavor settings of the scenario naming flavors the
    /// new catalog lacks are errors rather than ignored (and reported).
    pub strict_flavors: bool,
}

/// Why a scenario could not be prepared or run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad input: what was expected, and where.
    #[error("{at}{message}")]
    Input { at: Location, message: String },
    /// numasim's own invariant broke (exit code 3, not 2).
    #[error("{at}{message} (a numasim bug)")]
    Internal { at: Location, message: String },
}

impl RunError {
    pub fn input(message: impl std::fmt::Display) -> RunError {
        RunError::Input {
            at: Location::default(),
            message: message.to_string(),
        }
    }

    pub fn internal(message: impl std::fmt::Display) -> RunError {
        RunError::Internal {
            at: Location::default(),
            message: message.to_string(),
        }
    }

    /// A CSV problem, with its line.
    pub fn csv(e: crate::workload::trace::CsvError) -> RunError {
        RunError::Input {
            at: Location {
                line: e.line,
                ..Location::default()
            },
            message: e.message,
        }
    }

    /// A simulation error: the trace's (bad input, with its line) or the
    /// engine's own (internal).
    pub fn sim(e: crate::sim::SimError) -> RunError {
        match e {
            crate::sim::SimError::Trace(t) => RunError::csv(t),
            other if other.is_internal() => RunError::internal(other),
            other => RunError::input(other),
        }
    }

    /// Whether numasim itself is at fault (exit 3) rather than its input (exit 2).
    pub fn is_internal(&self) -> bool {
        matches!(self, RunError::Internal { .. })
    }
}

impl From<crate::workload::trace::FileError> for RunError {
    fn from(e: crate::workload::trace::FileError) -> RunError {
        use crate::workload::trace::FileError;
        match e {
            FileError::Io { path, source } => RunError::input(source).in_file(&path),
            FileError::Csv { path, error } => RunError::csv(error).in_file(&path),
        }
    }
}

impl Locate for RunError {
    fn location_mut(&mut self) -> &mut Location {
        match self {
            RunError::Input { at, .. } | RunError::Internal { at, .. } => at,
        }
    }
}

/// A flavor no host model of the fleet takes under a policy
/// (`Prepared::unplaceable_flavors`).
#[derive(Debug, Clone)]
pub struct Unplaceable {
    /// Catalog index.
    pub flavor: usize,
    pub policy: String,
    /// Host models asked (one host of each).
    pub host_models: usize,
    /// Their refusals, grouped.
    pub reasons: Vec<(crate::sim::Refusal, usize)>,
}

/// One (policy, seed) run's results.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub policy: String,
    pub seed: u64,
    pub metrics: RunMetrics,
    pub samples: Vec<Sample>,
    /// Each host's stranded capacity over the window's sampling instants,
    /// and how many instants there were.
    pub stranded_by_host: Vec<crate::sim::metrics::HostStranded>,
    pub window_samples: u64,
    /// Whole-run counts (warm-up and drain included), for throughput.
    pub events: u64,
    pub placements: u64,
    /// Rejected guests and why (`Prepared::explain_rejections`).
    pub rejections: Vec<crate::sim::metrics::RejectedGuest>,
}

/// A scenario with its files read.
pub struct Prepared {
    pub scenario: Scenario,
    /// The scenario file (errors of its runs name it).
    pub path: PathBuf,
    pub base: PathBuf,
    pub hosts: Vec<SimHost>,
    pub catalog: Catalog,
    pub touched: Vec<f64>,
    pub trace: Option<PathBuf>,
    pub skip_bad_rows: bool,
    /// Work out why each rejected guest was rejected (`rejections.csv`).
    pub explain_rejections: bool,
    /// Per catalog flavor: (rule index, share, shaped flavor) for each shape
    /// rule it matches, in rule order (`flavors.shapes`).
    pub shapes: Vec<Vec<(usize, f64, usize)>>,
    /// How the twin workload was fitted, when the scenario has one.
    pub twin: Option<String>,
    /// Memory growth per catalog flavor (`flavors.growth`).
    pub growth: Vec<Option<crate::sim::config::Growth>>,
    /// Each policy's placement policy, built from the registry.
    pub placements: Vec<Arc<dyn crate::sim::PlacementPolicy>>,
    /// The scenario's `[[pci_alias]]` entries.
    pub pci_aliases: Arc<Vec<crate::request::pci::PciAlias>>,
    /// Nothing in the runs depends on the seed (a trace, no `random`
    /// strategy, no sampled shapes, no memory growth): the runs use only the
    /// first seed; this holds how many seeds were asked for.
    pub seed_independent: Option<usize>,
    /// Per-flavor settings ignored because a replacement catalog lacks
    /// their flavors: (scenario key, flavor names).
    pub ignored_flavor_settings: Vec<(String, Vec<String>)>,
}

pub fn prepare(path: &Path, ov: &Overrides) -> Result<Prepared, RunError> {
    let text = crate::input::read_text(path).map_err(|e| RunError::input(e).in_file(path))?;
    let scenario = Scenario::parse(&text).map_err(|e| RunError::input(e).in_file(path))?;
    prepare_scenario(scenario, path, ov)
}

/// Resolves the files of an already parsed scenario; `path` is where it came
/// from (its directory anchors relative paths; errors name it).
pub fn prepare_scenario(
    mut scenario: Scenario,
    path: &Path,
    ov: &Overrides,
) -> Result<Prepared, RunError> {
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    if let Some(needs) = &scenario.needs {
        // Files an override replaces are not read.
        let replaced: Vec<std::path::PathBuf> = [
            ov.trace.as_ref().and(scenario.workload.trace.as_ref()),
            ov.flavors.as_ref().and(scenario.flavors.file.as_ref()),
        ]
        .into_iter()
        .flatten()
        .map(|f| base.join(f))
        .collect();
        if let Some(missing) = scenario
            .input_files(&base)
            .into_iter()
            .find(|f| !replaced.contains(f) && !f.exists())
        {
            return Err(RunError::input(format!(
                "{} is missing: this scenario needs data that is not shipped ({needs})",
                missing.display()
            ))
            .in_file(path));
        }
    }
    if let Some(seed) = ov.seed {
        scenario.seeds = vec![seed];
    }
    if let Some(platform) = &ov.cost_platform {
        scenario.cost.calibration.clear();
        scenario.cost.platform = (platform != "slit").then(|| platform.clone());
        scenario.cost.calibration().map_err(RunError::input)?;
    }
    let hosts = super::fleet::build_fleet(&mut scenario, &base, ov.hosts).in_file(path)?;
    if hosts.is_empty() {
        return Err(RunError::input("the fleet has no hosts".to_string()).in_file(path));
    }
    let catalog = match (&ov.flavors, &scenario.flavors.file) {
        (Some(p), _) => open_catalog(p)?,
        (None, Some(f)) => open_catalog(&base.join(f))?,
        (None, None) => Catalog::new(
            scenario
                .flavors
                .list
                .iter()
                .map(|f| {
                    let specs =
                        crate::workload::trace::parse_pairs(&f.extra_specs).map_err(|m| {
                            RunError::input(format!(
                                "{}: flavors.list `{}`: {m}",
                                path.display(),
                                f.name
                            ))
                        })?;
                    Ok(Flavor {
                        name: f.name.clone(),
                        vcpus: f.vcpus,
                        memory_mb: f.memory_mb,
                        extra_specs: specs,
                    })
                })
                .collect::<Result<Vec<_>, RunError>>()?,
        )
        .map_err(|m| RunError::input(format!("flavors: {m}")).in_file(path))?,
    };
    // Per-flavor settings naming flavors the catalog lacks: a scenario's own
    // catalog must have them (a typo); a catalog given instead of it may
    // not, and then those settings are ignored and reported.
    let mut ignored: Vec<(String, Vec<String>)> = Vec::new();
    let mut unknown = |key: String, names: Vec<&str>| -> Result<(), RunError> {
        if names.is_empty() {
            return Ok(());
        }
        if ov.flavors.is_none() || ov.strict_flavors {
            return Err(RunError::input(format!(
                "{key} names unknown flavor(s) {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .in_file(path));
        }
        ignored.push((key, names.into_iter().map(str::to_string).collect()));
        Ok(())
    };
    unknown(
        "flavors.growth".into(),
        catalog.unknown_names(&scenario.flavors.growth),
    )?;
    unknown(
        "flavors.touched_fraction".into(),
        catalog.unknown_names(&scenario.flavors.touched_fraction),
    )?;
    for (i, p) in scenario.policies.iter().enumerate() {
        unknown(
            format!("policies[{i}].manual"),
            catalog.unknown_names(&p.manual),
        )?;
    }
    if ov.trace.is_none()
        && let Some(syn) = &mut scenario.workload.synthetic
    {
        unknown(
            "workload.synthetic.mix".into(),
            catalog.unknown_names(&syn.mix),
        )?;
        syn.mix.retain(|name, _| catalog.position(name).is_some());
        if syn.mix.is_empty() {
            return Err(RunError::input(
                "workload.synthetic.mix: no flavor of the mix is in the catalog",
            )
            .in_file(path));
        }
    }
    let (catalog, shapes) = crate::workload::shapes::add_shapes(catalog, &scenario.flavors.shapes)
        .map_err(|m| RunError::input(format!("flavors.shapes: {m}")).in_file(path))?;
    let default_touched = scenario.flavors.default_touched_fraction;
    if !(0.0..=1.0).contains(&default_touched) {
        return Err(RunError::input(format!(
            "flavors.default_touched_fraction = {default_touched}: expected a fraction in [0, 1]"
        ))
        .in_file(path));
    }
    let mut touched = vec![default_touched; catalog.flavors.len()];
    for (name, frac) in &scenario.flavors.touched_fraction {
        // Unknown names were refused or reported above.
        let Some(i) = catalog.position(name) else {
            continue;
        };
        if !(0.0..=1.0).contains(frac) {
            return Err(RunError::input(format!(
                "flavors.touched_fraction.{name} = {frac}: expected a fraction in [0, 1]"
            ))
            .in_file(path));
        }
        touched[i] = *frac;
    }
    // Shaped flavors touch what their base flavor touches.
    for (f, rules) in shapes.iter().enumerate() {
        for &(_, _, shaped) in rules {
            touched[shaped] = touched[f];
        }
    }
    let mut twin_report = None;
    if let Some(spec) = scenario.workload.twin.clone()
        && ov.trace.is_none()
    {
        let tpath = base.join(&spec.trace);
        let reader = open_trace(&tpath, &catalog, false)
            .map_err(|e| RunError::from(e).at_key("workload.twin.trace"))?;
        let twin = crate::workload::twin::fit(reader, &catalog, spec.load, spec.guests)
            .map_err(|e| RunError::input(e).in_file(&tpath))?;
        twin_report = Some(format!(
            "twin of {}: {} guests at {:.2} arrivals/h (trace: {:.2}/h x load {}), lifetimes {}",
            tpath.display(),
            twin.workload.guests,
            twin.workload.arrivals_per_hour.unwrap_or(0.0),
            twin.source_rate_per_hour,
            spec.load,
            twin.lifetime_model
        ));
        scenario.workload.synthetic = Some(twin.workload);
    }
    let trace = ov
        .trace
        .clone()
        .or_else(|| scenario.workload.trace.as_ref().map(|t| base.join(t)));
    let growth = growth_per_flavor(&catalog, &scenario.flavors.growth);
    let placements = scenario
        .policies
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let params = crate::sim::policy::PolicyParams {
                numatunes: numatunes(&catalog, spec),
                rebalancing: spec.rebalancing.clone(),
                memory_mode: Some(spec.memory_mode),
            };
            ov.registry
                .build(&spec.placement, &params)
                .map_err(|e| RunError::input(format!("policies[{i}].placement: {e}")).in_file(path))
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    // Seeds only where they matter: a trace replayed without random draws
    // gives the same result under every seed, so it runs once.
    let seeds_requested = scenario.seeds.len();
    let draws = |i: usize, p: &super::scenario::PolicySpec| match p.strategy {
        crate::sim::Strategy::Random => true,
        crate::sim::Strategy::Nova => scenario
            .scheduler_for(i)
            .is_ok_and(|c| c.host_subset_size > 1 || c.shuffle_best_same_weighed_hosts),
        _ => false,
    };
    let seed_independent = trace.is_some()
        && !scenario
            .policies
            .iter()
            .enumerate()
            .any(|(i, p)| draws(i, p))
        && scenario.flavors.shapes.iter().all(|r| r.share >= 1.0)
        && growth.iter().all(Option::is_none);
    if seed_independent {
        scenario.seeds.truncate(1);
    }
    let pci_aliases = scenario.pci_aliases();
    for f in &catalog.flavors {
        if f.spec("pci_passthrough:alias").is_some() {
            crate::request::ImageProps::from_pairs(&[])
                .and_then(|image| crate::request::pci::pci_requests(f, &image, &pci_aliases))
                .map_err(|e| {
                    RunError::input(format!("flavor `{}`: {}", f.name, e.message)).in_file(path)
                })?;
        }
    }
    Ok(Prepared {
        seed_independent: (seed_independent && seeds_requested > 1).then_some(seeds_requested),
        scenario,
        path: path.to_path_buf(),
        base,
        hosts,
        catalog,
        touched,
        trace,
        skip_bad_rows: ov.skip_bad_rows,
        explain_rejections: false,
        growth,
        shapes,
        twin: twin_report,
        placements,
        pci_aliases: Arc::new(pci_aliases),
        ignored_flavor_settings: ignored,
    })
}

/// `flavors.growth` per catalog flavor.
fn growth_per_flavor(
    catalog: &Catalog,
    spec: &std::collections::BTreeMap<String, crate::experiment::scenario::GrowthSpec>,
) -> Vec<Option<crate::sim::config::Growth>> {
    catalog
        .per_flavor(spec)
        .into_iter()
        .map(|g| {
            g.map(|g| crate::sim::config::Growth {
                to: g.to,
                mean_delay_s: g.mean_delay_s,
            })
        })
        .collect()
}

/// A policy's `manual` numatunes per catalog flavor.
fn numatunes(
    catalog: &Catalog,
    spec: &crate::experiment::scenario::PolicySpec,
) -> Vec<Option<crate::sim::ManualTuning>> {
    catalog
        .per_flavor(&spec.manual)
        .into_iter()
        .map(|m| {
            m.map(|m| crate::sim::ManualTuning {
                nodeset: crate::topology::parse_cpu_list(&m.nodeset)
                    .unwrap_or_default()
                    .into_iter()
                    .map(i64::from)
                    .collect(),
                mode: m.mode,
            })
        })
        .collect()
}

impl Prepared {
    /// The synthetic workload's mix as (weight, catalog index).
    fn synthetic_mix(&self) -> Vec<(f64, usize)> {
        self.scenario
            .workload
            .synthetic
            .as_ref()
            .map(|syn| {
                syn.mix
                    .iter()
                    .map(|(n, w)| (*w, self.catalog.position(n).expect("checked in prepare")))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The synthetic workload of one replication.
    fn synthetic_stream(&self, seed: u64) -> SyntheticStream {
        let syn = self
            .scenario
            .workload
            .synthetic
            .as_ref()
            .expect("checked in prepare: a trace or a synthetic workload");
        SyntheticStream::new(
            syn,
            seed,
            self.synthetic_mix(),
            self.mean_mix_memory_mb(),
            self.fleet_memory_mb() as f64,
            self.scenario.horizon_s,
        )
    }

    /// Mean memory of a guest drawn from the synthetic mix, MB.
    fn mean_mix_memory_mb(&self) -> f64 {
        let mix = self.synthetic_mix();
        let total_w: f64 = mix.iter().map(|m| m.0).sum();
        mix.iter()
            .map(|(w, i)| w / total_w * self.catalog.flavors[*i].memory_mb as f64)
            .sum()
    }

    /// Memory the fleet offers to guests (placement's inventory), MB.
    pub fn fleet_memory_mb(&self) -> i64 {
        self.hosts.iter().map(|h| h.total_mem).sum()
    }

    /// The synthetic arrival rate this fleet gives (`offered_load` is
    /// relative to the fleet), per hour; `None` for a trace.
    pub fn synthetic_arrivals_per_hour(&self) -> Option<f64> {
        let syn = self.scenario.workload.synthetic.as_ref()?;
        if self.trace.is_some() {
            return None;
        }
        Some(
            crate::workload::synthetic::arrival_rate_per_s(
                syn,
                self.mean_mix_memory_mb(),
                self.fleet_memory_mb() as f64,
            ) * 3600.0,
        )
    }

    /// Runs every (policy, seed), in parallel; results in (policy, seed) order.
    pub fn run_all(&self, progress: &(dyn Fn() + Sync)) -> Result<Vec<RunResult>, RunError> {
        let jobs: Vec<(usize, u64)> = (0..self.scenario.policies.len())
            .flat_map(|p| self.scenario.seeds.iter().map(move |&s| (p, s)))
            .collect();
        let results: Vec<Result<RunResult, RunError>> = jobs
            .par_iter()
            .map(|&(p, seed)| {
                let r = self.run_one(p, seed);
                progress();
                r
            })
            .collect();
        results.into_iter().collect()
    }

    /// The workload's rows for a seed (the trace, or the synthetic stream),
    /// before the flavor shape rules.
    pub fn rows(
        &self,
        seed: u64,
    ) -> Result<
        Box<
            dyn Iterator<
                    Item = Result<
                        crate::workload::trace::TraceRow,
                        crate::workload::trace::CsvError,
                    >,
                > + '_,
        >,
        RunError,
    > {
        Ok(match &self.trace {
            Some(path) => Box::new(open_trace(path, &self.catalog, self.skip_bad_rows)?),
            None => Box::new(self.synthetic_stream(seed)),
        })
    }

    /// A row with the scenario's flavor shape rules applied.
    pub fn shaped(
        &self,
        row: crate::workload::trace::TraceRow,
        seed: u64,
    ) -> crate::workload::trace::TraceRow {
        crate::workload::shapes::shape(row, seed, &self.shapes)
    }

    /// A fresh simulation of one (policy, seed).
    fn simulation(&self, policy: usize, seed: u64) -> Result<Simulation, RunError> {
        self.simulation_on(self.hosts.clone(), policy, seed)
    }

    /// Flavors the workload can draw that no host of the fleet takes, even
    /// as it is at the start, under some policy: a flavor that would only
    /// ever be refused. Each host model is asked once, by the run's one
    /// host check (`Simulation::explain`).
    pub fn unplaceable_flavors(&self) -> Result<Vec<Unplaceable>, RunError> {
        let mut models: Vec<*const crate::sim::fleet::HostModel> = Vec::new();
        let hosts: Vec<SimHost> = self
            .hosts
            .iter()
            .filter(|h| {
                let model = Arc::as_ptr(&h.model);
                let new = !models.contains(&model);
                if new {
                    models.push(model);
                }
                new
            })
            .cloned()
            .collect();
        let drawn: Vec<usize> = if self.trace.is_none() {
            let mut mix: Vec<usize> = self.synthetic_mix().into_iter().map(|(_, f)| f).collect();
            mix.sort_unstable();
            mix.dedup();
            mix
        } else {
            (0..self.catalog.flavors.len()).collect()
        };
        let mut out = Vec::new();
        for (p, spec) in self.scenario.policies.iter().enumerate() {
            let mut sim = self.simulation_on(hosts.clone(), p, self.scenario.seeds[0])?;
            for &f in &drawn {
                let row = crate::workload::trace::TraceRow {
                    row: 0,
                    line: 0,
                    id: self.catalog.flavors[f].name.clone(),
                    arrival_s: 0.0,
                    departure_s: None,
                    flavor: f,
                    image_props: Vec::new(),
                };
                let x = sim.explain(&row);
                if x.passing().next().is_none() {
                    out.push(Unplaceable {
                        flavor: f,
                        policy: spec.name(),
                        host_models: x.verdicts.len(),
                        reasons: x.refusals(),
                    });
                }
            }
        }
        Ok(out)
    }

    fn simulation_on(
        &self,
        hosts: Vec<SimHost>,
        policy: usize,
        seed: u64,
    ) -> Result<Simulation, RunError> {
        let spec = &self.scenario.policies[policy];
        let first = &self.scenario.fleet[0].config;
        let config = SimConfig {
            strategy: spec.strategy,
            host_check: spec.host_check,
            limits: Some(crate::fit::Limits {
                cpu_allocation_ratio: first.cpu_allocation_ratio,
                ram_allocation_ratio: first.ram_allocation_ratio,
                network_metadata: None,
            }),
            fit_mode: spec.fit_mode,
            memory_mode: Some(spec.memory_mode),
            touched_fraction: self.touched.clone(),
            calibration: self.scenario.cost.calibration().map_err(RunError::input)?,
            device_calibration: self
                .scenario
                .cost
                .device_calibration()
                .map_err(RunError::input)?,
            numa_aware_guests: self.scenario.cost.numa_aware_guests,
            policy: self.placements[policy].clone(),
            growth: self.growth.clone(),
            migrate_mb_per_s: spec.rebalancing.migrate_mb_per_s,
            pci_aliases: self.pci_aliases.clone(),
            scheduler: std::sync::Arc::new(
                self.scenario
                    .scheduler_for(policy)
                    .map_err(|e| RunError::input(format!("policies[{policy}].scheduler: {e}")))?,
            ),
            seed,
        };
        Ok(Simulation::new(hosts, self.catalog.clone(), config))
    }

    /// Runs (policy, seed) up to the arrival of guest `id`, then explains
    /// every host's verdict for it and places it; returns the explanation
    /// and the decision as words.
    pub fn explain(
        &self,
        policy: usize,
        seed: u64,
        id: &str,
    ) -> Result<(crate::sim::explain::Explanation, String), RunError> {
        let spec_placement = &self.scenario.policies[policy].placement;
        struct Quiet;
        impl crate::sim::Observer for Quiet {}
        /// The decision in words, under the policy named `.1`.
        struct Decided(String, String);
        impl crate::sim::Observer for Decided {
            fn arrival(
                &mut self,
                _t: f64,
                row: &crate::workload::trace::TraceRow,
                d: &crate::sim::Decision,
                sim: &Simulation,
            ) {
                let binding = sim
                    .binding_of(row.row)
                    .and_then(|(host, b)| {
                        crate::report::words::binding(&self.1, b, &sim.hosts[host].model)
                    })
                    .map_or(String::new(), |b| format!("; {b}"));
                self.0 = match d {
                    crate::sim::Decision::Placed { host, binding: b } => match b.fitted() {
                        Some(f) => format!(
                            "placed on host {host}, guest cells on host cells {:?}",
                            f.cells.iter().map(|c| c.id).collect::<Vec<_>>()
                        ),
                        None => format!("placed on host {host} (no NUMA topology){binding}"),
                    },
                    crate::sim::Decision::Rejected { error: Some(e) } => {
                        format!("rejected: invalid request ({e})")
                    }
                    crate::sim::Decision::Rejected { error: None } => {
                        "rejected: no host passed".into()
                    }
                    crate::sim::Decision::OomKilled { host } => {
                        format!("placed on host {host}, then OOM-killed: its pages did not fit")
                    }
                };
            }
        }
        let mut sim = self.simulation(policy, seed)?;
        let at_trace = |e: RunError| match &self.trace {
            Some(path) => e.in_file(path),
            None => e,
        };
        let rows = self.rows(seed)?;
        let mut quiet = Quiet;
        let mut first_ids = Vec::new();
        for row in rows {
            let row = self.shaped(row.map_err(|x| at_trace(RunError::csv(x)))?, seed);
            if first_ids.len() < 3 {
                first_ids.push(row.id.clone());
            }
            if row.id == id {
                sim.advance_to(row.arrival_s, false, &mut quiet)
                    .map_err(RunError::sim)?;
                let explanation = sim.explain(&row);
                let mut decided = Decided(String::new(), spec_placement.clone());
                sim.run_arrivals(std::iter::once(Ok(row)), &mut decided)
                    .map_err(RunError::sim)?;
                return Ok((explanation, decided.0));
            }
            sim.run_arrivals(std::iter::once(Ok(row)), &mut quiet)
                .map_err(RunError::sim)?;
        }
        Err(RunError::input(format!(
            "guest `{id}` is not in the workload (its ids look like {})",
            first_ids.join(", ")
        )))
    }

    pub fn run_one(&self, policy: usize, seed: u64) -> Result<RunResult, RunError> {
        // numasim's own failures name the scenario and the policy too, so
        // the report of a bug says what to run again.
        self.run_one_unlocated(policy, seed).map_err(|e| {
            if e.is_internal() {
                e.in_file(&self.path).at_key(format!("policies[{policy}]"))
            } else {
                e
            }
        })
    }

    fn run_one_unlocated(&self, policy: usize, seed: u64) -> Result<RunResult, RunError> {
        let spec = &self.scenario.policies[policy];
        let mut sim = self.simulation(policy, seed)?;
        let horizon = self.scenario.horizon_s.unwrap_or(f64::INFINITY);
        let mut metrics = MetricsCollector::new(
            &sim,
            self.scenario.warmup_s,
            horizon,
            self.scenario.output.timeseries_interval_s,
        );
        if self.explain_rejections {
            metrics = metrics.with_reasons();
        }
        let mut skipped = 0;
        match &self.trace {
            Some(path) => {
                let mut reader = open_trace(path, &self.catalog, self.skip_bad_rows)?;
                let rows = (&mut reader)
                    .take_while(|r| r.as_ref().map_or(true, |row| row.arrival_s <= horizon))
                    .map(|r| r.map(|row| self.shaped(row, seed)));
                sim.run_arrivals(rows, &mut metrics)
                    .map_err(|e| RunError::sim(e).in_file(path))?;
                skipped = reader.skipped;
            }
            None => {
                let stream = self.synthetic_stream(seed);
                sim.run_arrivals(
                    stream.map(|r| r.map(|row| self.shaped(row, seed))),
                    &mut metrics,
                )
                .map_err(RunError::sim)?;
            }
        }
        metrics.close_at(sim.now);
        let end = sim.now;
        sim.drain(&mut metrics).map_err(RunError::sim)?;
        if !sim.accounting_ok() {
            return Err(RunError::internal(format!(
                "{} seed {seed}: usage accounting drifted",
                spec.name()
            )));
        }
        let rejections = metrics.rejections.take().unwrap_or_default();
        let mut finished = metrics.finish(end, sim.fit_calls);
        finished.metrics.skipped_rows = skipped;
        Ok(RunResult {
            policy: spec.name(),
            seed,
            metrics: finished.metrics,
            samples: finished.samples,
            stranded_by_host: finished.stranded_by_host,
            window_samples: finished.window_samples,
            events: sim.arrivals + sim.departures_done,
            placements: sim.placements,
            rejections,
        })
    }
}

//! `numasim run`: resolves a scenario's files, runs every policy and seed
//! (in parallel, each run single-threaded and deterministic), and writes
//! `summary.csv` and `timeseries.csv`. This is the edge: it reads and
//! writes files; the simulation itself happens in `sim`.

use crate::experiment::load::load_host;
use crate::experiment::scenario::{FleetEntry, Scenario, SyntheticStream};
use crate::request::Flavor;
use crate::sim::fleet::{SimHost, host_model, sim_host_from_model};
use crate::sim::metrics::{MetricsCollector, RunMetrics, Sample};
use crate::sim::{SimConfig, Simulation};
use crate::topology::{Host, parse_cpu_list, presets};
use crate::workload::trace::{Catalog, TraceReader, read_catalog};
use rayon::prelude::*;
use std::fmt::Write as _;
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
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, RunError> {
    Err(RunError(m.into()))
}

/// One (policy, seed) run's results.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub policy: String,
    pub seed: u64,
    pub metrics: RunMetrics,
    pub samples: Vec<Sample>,
    pub skipped_rows: u64,
    /// Whole-run counts (warm-up and drain included), for throughput.
    pub events: u64,
    pub placements: u64,
    /// Rejected guests and why (`Prepared::explain_rejections`).
    pub rejections: Vec<crate::sim::metrics::RejectedGuest>,
}

/// A scenario with its files read.
pub struct Prepared {
    pub scenario: Scenario,
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
    pub growth: Vec<Option<crate::sim::engine::Growth>>,
    /// Each policy's placement policy, built from the registry.
    pub placements: Vec<Arc<dyn crate::sim::PlacementPolicy>>,
}

fn host_for(entry: &FleetEntry, base: &Path, idx: usize) -> Result<Host, RunError> {
    let mut host = if let Some(p) = &entry.preset {
        match presets::find(p) {
            Some(p) => p.host(),
            None => {
                let names: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
                return err(format!(
                    "fleet[{idx}].preset: unknown preset `{p}`; expected one of {}",
                    names.join(", ")
                ));
            }
        }
    } else if let Some(f) = &entry.file {
        let path = base.join(f);
        load_host(path.to_str().unwrap_or(f), None)
            .map_err(|e| RunError(format!("fleet[{idx}].file: {e}")))?
    } else if let Some(s) = &entry.synthetic {
        s.build()
            .map_err(|e| RunError(format!("fleet[{idx}].{e}")))?
    } else {
        return err(format!("fleet[{idx}]: no host source"));
    };
    let c = &entry.config;
    let set = |v: &Option<String>,
               key: &str|
     -> Result<Option<std::collections::BTreeSet<u32>>, RunError> {
        v.as_ref()
            .map(|t| {
                parse_cpu_list(t)
                    .map(|l| l.into_iter().collect())
                    .map_err(|m| RunError(format!("fleet[{idx}].config.{key}: {m}")))
            })
            .transpose()
    };
    host.config.cpu_shared_set = set(&c.cpu_shared_set, "cpu_shared_set")?;
    host.config.cpu_dedicated_set = set(&c.cpu_dedicated_set, "cpu_dedicated_set")?;
    host.config.cpu_allocation_ratio = c.cpu_allocation_ratio;
    host.config.ram_allocation_ratio = c.ram_allocation_ratio;
    host.config.reserved_host_memory_mb = c.reserved_host_memory_mb;
    host.validate()
        .map_err(|e| RunError(format!("fleet[{idx}].config: {e}")))?;
    Ok(host)
}

/// Scales the fleet's counts to `n` hosts, keeping the mix (largest remainders).
fn scaled_counts(counts: &[usize], n: usize) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if total == 0 {
        return counts.to_vec();
    }
    let exact: Vec<f64> = counts
        .iter()
        .map(|&c| c as f64 * n as f64 / total as f64)
        .collect();
    let mut out: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut rest: Vec<usize> = (0..counts.len()).collect();
    rest.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let mut left = n - out.iter().sum::<usize>();
    for i in rest {
        if left == 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

pub fn prepare(path: &Path, ov: &Overrides) -> Result<Prepared, RunError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| RunError(format!("{}: {e}", path.display())))?;
    let scenario =
        Scenario::parse(&text).map_err(|e| RunError(format!("{}: {e}", path.display())))?;
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
    if let Some(seed) = ov.seed {
        scenario.seeds = vec![seed];
    }
    if let Some(platform) = &ov.cost_platform {
        scenario.cost.calibration.clear();
        scenario.cost.platform = (platform != "slit").then(|| platform.clone());
        scenario
            .cost
            .calibration()
            .map_err(|e| RunError(format!("--cost-platform: {e}")))?;
    }
    expand_node_lists(&mut scenario, &base)?;
    let counts: Vec<usize> = scenario.fleet.iter().map(|f| f.count).collect();
    let counts = match ov.hosts {
        Some(n) => scaled_counts(&counts, n),
        None => counts,
    };
    let mut hosts = Vec::new();
    for (i, (entry, &count)) in scenario.fleet.iter().zip(&counts).enumerate() {
        let host = host_for(entry, &base, i)?;
        let model = Arc::new(host_model(&host));
        // Hosts of one model share the model and start from one topology.
        let mut template = sim_host_from_model(String::new(), &host, model);
        // Nova keeps reserved_host_memory_mb out of placement's inventory.
        template.total_mem -= entry.config.reserved_host_memory_mb as i64;
        template.limits = Some(crate::fit::Limits {
            cpu_allocation_ratio: entry.config.cpu_allocation_ratio,
            ram_allocation_ratio: entry.config.ram_allocation_ratio,
            network_metadata: None,
        });
        for _ in 0..count {
            let mut h = template.clone();
            h.name = format!("{}-{}", host.name, hosts.len());
            hosts.push(h);
        }
    }
    if hosts.is_empty() {
        return err(format!("{}: the fleet has no hosts", path.display()));
    }
    let catalog = match (&ov.flavors, &scenario.flavors.file) {
        (Some(p), _) => read_catalog_file(p)?,
        (None, Some(f)) => read_catalog_file(&base.join(f))?,
        (None, None) => Catalog::new(
            scenario
                .flavors
                .list
                .iter()
                .map(|f| {
                    let specs =
                        crate::workload::trace::parse_pairs(&f.extra_specs).map_err(|m| {
                            RunError(format!(
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
        .map_err(|m| RunError(format!("{}: flavors: {m}", path.display())))?,
    };
    for name in scenario.flavors.growth.keys() {
        if name != "*" && catalog.position(name).is_none() {
            return err(format!(
                "{}: flavors.growth names unknown flavor `{name}`",
                path.display()
            ));
        }
    }
    for (i, p) in scenario.policies.iter().enumerate() {
        for name in p.manual.keys() {
            if name != "*" && catalog.position(name).is_none() {
                return err(format!(
                    "{}: policies[{i}].manual names unknown flavor `{name}`",
                    path.display()
                ));
            }
        }
    }
    let (catalog, shapes) = add_shapes(catalog, &scenario.flavors.shapes)
        .map_err(|m| RunError(format!("{}: flavors.shapes: {m}", path.display())))?;
    let default_touched = scenario.flavors.default_touched_fraction;
    if !(0.0..=1.0).contains(&default_touched) {
        return err(format!(
            "{}: flavors.default_touched_fraction = {default_touched}: expected a fraction in [0, 1]",
            path.display()
        ));
    }
    let mut touched = vec![default_touched; catalog.flavors.len()];
    for (name, frac) in &scenario.flavors.touched_fraction {
        let Some(i) = catalog.position(name) else {
            return err(format!(
                "{}: flavors.touched_fraction names unknown flavor `{name}`",
                path.display()
            ));
        };
        if !(0.0..=1.0).contains(frac) {
            return err(format!(
                "{}: flavors.touched_fraction.{name} = {frac}: expected a fraction in [0, 1]",
                path.display()
            ));
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
        let f = std::fs::File::open(&tpath)
            .map_err(|e| RunError(format!("workload.twin.trace {}: {e}", tpath.display())))?;
        let reader = TraceReader::new(std::io::BufReader::new(f), &catalog, false)
            .map_err(|e| RunError(format!("{}: {e}", tpath.display())))?;
        let twin = crate::workload::twin::fit(reader, &catalog, spec.load, spec.guests)
            .map_err(|e| RunError(format!("{}: {e}", tpath.display())))?;
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
    if let Some(syn) = &scenario.workload.synthetic
        && ov.trace.is_none()
    {
        for name in syn.mix.keys() {
            if catalog.position(name).is_none() {
                return err(format!(
                    "{}: workload.synthetic.mix names unknown flavor `{name}`",
                    path.display()
                ));
            }
        }
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
                .map_err(|e| RunError(format!("{}: policies[{i}].placement: {e}", path.display())))
        })
        .collect::<Result<Vec<_>, RunError>>()?;
    Ok(Prepared {
        scenario,
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
    })
}

/// `flavors.growth` per catalog flavor: its own name, its base flavor's (shaped
/// variants), or `*`.
fn growth_per_flavor(
    catalog: &Catalog,
    spec: &std::collections::BTreeMap<String, crate::experiment::scenario::GrowthSpec>,
) -> Vec<Option<crate::sim::engine::Growth>> {
    if spec.is_empty() {
        return Vec::new();
    }
    catalog
        .flavors
        .iter()
        .map(|f| {
            let base = f.name.split('+').next().unwrap_or(&f.name);
            spec.get(&f.name)
                .or_else(|| spec.get(base))
                .or_else(|| spec.get("*"))
                .map(|g| crate::sim::engine::Growth {
                    to: g.to,
                    mean_delay_s: g.mean_delay_s,
                })
        })
        .collect()
}

/// Adds a shaped variant of every flavor for every rule it matches.
#[allow(clippy::type_complexity)]
fn add_shapes(
    catalog: Catalog,
    rules: &[crate::experiment::scenario::ShapeRule],
) -> Result<(Catalog, Vec<Vec<(usize, f64, usize)>>), String> {
    let base = catalog.flavors.len();
    let mut flavors = catalog.flavors;
    let mut shapes = vec![Vec::new(); base];
    for (f, shape) in shapes.iter_mut().enumerate() {
        for (k, rule) in rules.iter().enumerate() {
            let flavor = &flavors[f];
            if !rule.matches(flavor.vcpus, flavor.memory_mb) {
                continue;
            }
            let mut shaped = flavor.clone();
            shaped.name = format!(
                "{}+{}",
                flavor.name,
                rule.name.clone().unwrap_or_else(|| format!("shape{k}"))
            );
            shaped
                .extra_specs
                .extend(crate::workload::trace::parse_pairs(&rule.extra_specs)?);
            shape.push((k, rule.share, flavors.len()));
            flavors.push(shaped);
        }
    }
    Ok((Catalog::new(flavors)?, shapes))
}

/// Whether a guest draws a rule's share: by its id, the rule and the seed,
/// so the same guests get the same shape under every policy.
fn draws_share(id: &str, rule: usize, seed: u64, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed ^ ((rule as u64) << 32);
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    use rand::{RngExt, SeedableRng};
    rand_chacha::ChaCha8Rng::seed_from_u64(h).random::<f64>() < share
}

/// Replaces each `nodes` fleet entry by one synthetic entry per distinct
/// node size (in order of first appearance), with its count.
fn expand_node_lists(scenario: &mut Scenario, base: &Path) -> Result<(), RunError> {
    use crate::experiment::scenario::NodeListFormat;
    let mut fleet = Vec::new();
    for (i, entry) in scenario.fleet.iter().enumerate() {
        let Some(nodes) = &entry.nodes else {
            fleet.push(entry.clone());
            continue;
        };
        let path = base.join(&nodes.file);
        let shown = path.display();
        let f = std::fs::File::open(&path)
            .map_err(|e| RunError(format!("fleet[{i}].nodes.file {shown}: {e}")))?;
        let mut r = csv::Reader::from_reader(std::io::BufReader::new(f));
        let headers = r
            .headers()
            .map_err(|e| RunError(format!("{shown}: {e}")))?
            .clone();
        let NodeListFormat::AlibabaGpu2023 = nodes.format;
        let col = |name: &str| {
            headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
                RunError(format!(
                    "{shown}: line 1: header lacks `{name}`; expected sn,cpu_milli,memory_mib,gpu,model"
                ))
            })
        };
        let (c_cpu, c_mem) = (col("cpu_milli")?, col("memory_mib")?);
        let mut sizes: Vec<((u64, u64), usize)> = Vec::new();
        for rec in r.records() {
            let rec = rec.map_err(|e| RunError(format!("{shown}: {e}")))?;
            let line = rec.position().map_or(0, |p| p.line());
            let num = |c: usize, what: &str| -> Result<u64, RunError> {
                let v = rec.get(c).unwrap_or("").trim();
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .map(|x| x.round() as u64)
                    .ok_or_else(|| {
                        RunError(format!(
                            "{shown}: line {line}: {what} `{v}` is not a positive number"
                        ))
                    })
            };
            let key = (num(c_cpu, "cpu_milli")? / 1000, num(c_mem, "memory_mib")?);
            match sizes.iter_mut().find(|s| s.0 == key) {
                Some(s) => s.1 += 1,
                None => sizes.push((key, 1)),
            }
        }
        if sizes.is_empty() {
            return err(format!("{shown}: the node list has no nodes"));
        }
        for ((cpus, mem_mb), count) in sizes {
            let sockets = u64::from(nodes.sockets);
            let per_node = (cpus / sockets).max(1);
            let threads = u64::from(nodes.threads_per_core);
            let threads = if per_node % threads == 0 { threads } else { 1 };
            let spec = crate::topology::synth::SynthSpec {
                name: Some(format!("node-{cpus}c-{}g", mem_mb / 1024)),
                sockets: nodes.sockets,
                nodes_per_socket: 1,
                cores_per_node: (per_node / threads) as u32,
                threads_per_core: threads as u32,
                memory_mb_per_node: mem_mb / sockets,
                node_memory_mb: Vec::new(),
                hugepages: Vec::new(),
                base_page_kb: 4,
                cpuless: Vec::new(),
                distances: Default::default(),
            };
            let mut e = entry.clone();
            e.nodes = None;
            e.synthetic = Some(spec);
            e.count = count;
            fleet.push(e);
        }
    }
    scenario.fleet = fleet;
    Ok(())
}

/// A policy's manual tunings per catalog flavor: its own name, else
/// (for shaped flavors) its base flavor's, else `*`.
fn numatunes(
    catalog: &Catalog,
    spec: &crate::experiment::scenario::PolicySpec,
) -> Vec<Option<crate::sim::ManualTuning>> {
    if spec.manual.is_empty() {
        return Vec::new();
    }
    catalog
        .flavors
        .iter()
        .map(|f| {
            let base = f.name.split('+').next().unwrap_or(&f.name);
            spec.manual
                .get(&f.name)
                .or_else(|| spec.manual.get(base))
                .or_else(|| spec.manual.get("*"))
                .map(|m| crate::sim::ManualTuning {
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

fn read_catalog_file(p: &Path) -> Result<Catalog, RunError> {
    let f = std::fs::File::open(p).map_err(|e| RunError(format!("{}: {e}", p.display())))?;
    read_catalog(std::io::BufReader::new(f)).map_err(|e| RunError(format!("{}: {e}", p.display())))
}

impl Prepared {
    /// The row with its shaped flavor, if a shape rule picks it.
    fn shape(
        &self,
        mut row: crate::workload::trace::TraceRow,
        seed: u64,
    ) -> crate::workload::trace::TraceRow {
        if let Some(rules) = self.shapes.get(row.flavor)
            && let Some(&(_, _, shaped)) = rules
                .iter()
                .find(|(k, share, _)| draws_share(&row.id, *k, seed, *share))
        {
            row.flavor = shaped;
        }
        row
    }

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
            crate::experiment::scenario::arrival_rate_per_s(
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
        let e = |m: String| RunError(m);
        Ok(match &self.trace {
            Some(path) => {
                let f =
                    std::fs::File::open(path).map_err(|x| e(format!("{}: {x}", path.display())))?;
                Box::new(
                    TraceReader::new(
                        std::io::BufReader::new(f),
                        &self.catalog,
                        self.skip_bad_rows,
                    )
                    .map_err(|x| e(format!("{}: {x}", path.display())))?,
                )
            }
            None => Box::new(self.synthetic_stream(seed)),
        })
    }

    /// A row with the scenario's flavor shape rules applied.
    pub fn shaped(
        &self,
        row: crate::workload::trace::TraceRow,
        seed: u64,
    ) -> crate::workload::trace::TraceRow {
        self.shape(row, seed)
    }

    /// A fresh simulation of one (policy, seed).
    fn simulation(&self, policy: usize, seed: u64) -> Result<Simulation, RunError> {
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
            calibration: self.scenario.cost.calibration().map_err(RunError)?,
            numa_aware_guests: self.scenario.cost.numa_aware_guests,
            policy: self.placements[policy].clone(),
            growth: self.growth.clone(),
            migrate_mb_per_s: spec.rebalancing.migrate_mb_per_s,
            seed,
        };
        Ok(Simulation::new(
            self.hosts.clone(),
            self.catalog.clone(),
            config,
        ))
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
        let e = |m: String| RunError(m);
        let rows = self.rows(seed)?;
        let mut quiet = Quiet;
        let mut first_ids = Vec::new();
        for row in rows {
            let row = self.shape(row.map_err(|x| e(x.to_string()))?, seed);
            if first_ids.len() < 3 {
                first_ids.push(row.id.clone());
            }
            if row.id == id {
                sim.advance_to(row.arrival_s, false, &mut quiet)
                    .map_err(|x| e(x.to_string()))?;
                let explanation = sim.explain(&row);
                let mut decided = Decided(String::new(), spec_placement.clone());
                sim.run_arrivals(std::iter::once(Ok(row)), &mut decided)
                    .map_err(|x| e(x.to_string()))?;
                return Ok((explanation, decided.0));
            }
            sim.run_arrivals(std::iter::once(Ok(row)), &mut quiet)
                .map_err(|x| e(x.to_string()))?;
        }
        Err(e(format!(
            "guest `{id}` is not in the workload (its ids look like {})",
            first_ids.join(", ")
        )))
    }

    pub fn run_one(&self, policy: usize, seed: u64) -> Result<RunResult, RunError> {
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
                let f = std::fs::File::open(path)
                    .map_err(|e| RunError(format!("{}: {e}", path.display())))?;
                let mut reader = TraceReader::new(
                    std::io::BufReader::new(f),
                    &self.catalog,
                    self.skip_bad_rows,
                )
                .map_err(|e| RunError(format!("{}: {e}", path.display())))?;
                let rows = (&mut reader)
                    .take_while(|r| r.as_ref().map_or(true, |row| row.arrival_s <= horizon))
                    .map(|r| r.map(|row| self.shape(row, seed)));
                sim.run_arrivals(rows, &mut metrics).map_err(|e| match e {
                    crate::sim::SimError::Trace(t) => RunError(format!("{}: {t}", path.display())),
                    other => RunError(other.to_string()),
                })?;
                skipped = reader.skipped;
            }
            None => {
                let stream = self.synthetic_stream(seed);
                sim.run_arrivals(
                    stream.map(|r| r.map(|row| self.shape(row, seed))),
                    &mut metrics,
                )
                .map_err(|e| RunError(e.to_string()))?;
            }
        }
        metrics.close_at(sim.now);
        let end = sim.now;
        sim.drain(&mut metrics)
            .map_err(|e| RunError(e.to_string()))?;
        if !sim.accounting_ok() {
            return err(format!(
                "{} seed {seed}: usage accounting drifted (a numasim bug)",
                spec.name()
            ));
        }
        let rejections = metrics.rejections.take().unwrap_or_default();
        let (metrics, samples) = metrics.finish(end, sim.fit_calls);
        Ok(RunResult {
            policy: spec.name(),
            seed,
            metrics,
            samples,
            skipped_rows: skipped,
            events: sim.arrivals + sim.departures_done,
            placements: sim.placements,
            rejections,
        })
    }
}

pub const SUMMARY_HEADER: &str = "scenario,policy,seed,guests,placed,rejected,rejection_rate,cpu_alloc_mean,mem_alloc_mean,hosts_in_use_mean,spanning_guests,remote_access_fraction,mean_latency_factor,p95_latency_factor,oom_kills,errors,skipped_rows,fit_calls,cost_model,spilled_guests,spilled_gb,late_oom_kills,late_spilled_guests,late_spilled_gb,mean_time_to_late_kill_s,remote_time_weighted,latency_time_weighted,numad_moves,migrated_gb,migration_s";

pub fn summary_csv(scenario: &str, cost_model: &str, results: &[RunResult]) -> String {
    let mut out = String::from(SUMMARY_HEADER);
    out.push('\n');
    for r in results {
        let m = &r.metrics;
        let _ = writeln!(
            out,
            "{scenario},{},{},{},{},{},{:.6},{:.6},{:.6},{:.3},{},{:.6},{:.6},{:.6},{},{},{},{},{cost_model},{},{:.3},{},{},{:.3},{:.1},{:.6},{:.6},{},{:.3},{:.1}",
            r.policy,
            r.seed,
            m.guests,
            m.placed,
            m.rejected,
            m.rejection_rate(),
            m.cpu_alloc_mean,
            m.mem_alloc_mean,
            m.hosts_in_use_mean,
            m.spanning_guests,
            m.remote_access_fraction,
            m.mean_latency_factor,
            m.p95_latency_factor,
            m.oom_kills,
            m.errors,
            r.skipped_rows,
            m.fit_calls,
            m.spilled_guests,
            m.spilled_mb / 1024.0,
            m.late_oom_kills,
            m.late_spilled_guests,
            m.late_spilled_mb / 1024.0,
            m.mean_time_to_late_kill_s,
            m.remote_time_weighted,
            m.latency_time_weighted,
            m.numad_moves,
            m.migrated_mb / 1024.0,
            m.migration_s,
        );
    }
    out
}

pub fn timeseries_csv(results: &[RunResult]) -> String {
    let mut out =
        String::from("policy,seed,t_s,running,cpu_alloc,mem_alloc,hosts_in_use,placed,rejected\n");
    for r in results {
        for s in &r.samples {
            let _ = writeln!(
                out,
                "{},{},{:.1},{},{:.6},{:.6},{},{},{}",
                r.policy,
                r.seed,
                s.t,
                s.running,
                s.cpu_alloc,
                s.mem_alloc,
                s.hosts_in_use,
                s.placed,
                s.rejected
            );
        }
    }
    out
}

/// One row per rejected (or at once OOM-killed) guest, with the reason
/// aggregated over the hosts.
pub fn rejections_csv(results: &[RunResult], prepared: &Prepared) -> Result<String, RunError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| RunError(format!("rejections.csv: {e}"));
    w.write_record(["policy", "seed", "guest", "arrival_s", "flavor", "reason"])
        .map_err(io)?;
    for r in results {
        for x in &r.rejections {
            w.write_record([
                r.policy.as_str(),
                &r.seed.to_string(),
                &x.guest,
                &format!("{:.3}", x.arrival_s),
                &prepared.catalog.flavors[x.flavor].name,
                &crate::report::words::rejection(&x.why, |h| prepared.hosts[h].name.as_str()),
            ])
            .map_err(io)?;
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| RunError(format!("rejections.csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| RunError(format!("rejections.csv: {e}")))
}

pub fn rejections_by_flavor_csv(results: &[RunResult]) -> String {
    let mut out = String::from("policy,seed,flavor,rejected\n");
    for r in results {
        for (f, n) in &r.metrics.rejected_by_flavor {
            let _ = writeln!(out, "{},{},{f},{n}", r.policy, r.seed);
        }
    }
    out
}

/// Policies side by side: means over seeds.
pub fn comparison_table(results: &[RunResult]) -> String {
    let mut policies: Vec<&str> = Vec::new();
    for r in results {
        if !policies.contains(&r.policy.as_str()) {
            policies.push(&r.policy);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<30} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>9} {:>8} {:>7} {:>9}",
        "policy",
        "seeds",
        "rejected",
        "cpu",
        "mem",
        "spanning",
        "remote",
        "latency",
        "p95 lat",
        "oom",
        "late oom",
        "remote~t",
        "moves",
        "migr GB"
    );
    for p in policies {
        let rs: Vec<&RunResult> = results.iter().filter(|r| r.policy == p).collect();
        let n = rs.len() as f64;
        let mean =
            |f: &dyn Fn(&RunMetrics) -> f64| rs.iter().map(|r| f(&r.metrics)).sum::<f64>() / n;
        let _ = writeln!(
            out,
            "{:<30} {:>5} {:>8.2}% {:>7.1}% {:>7.1}% {:>8.1} {:>7.1}% {:>8.3} {:>8.3} {:>6.1} {:>9.1} {:>7.1}% {:>7.1} {:>9.1}",
            p,
            rs.len(),
            100.0 * mean(&|m| m.rejection_rate()),
            100.0 * mean(&|m| m.cpu_alloc_mean),
            100.0 * mean(&|m| m.mem_alloc_mean),
            mean(&|m| m.spanning_guests as f64),
            100.0 * mean(&|m| m.remote_access_fraction),
            mean(&|m| m.mean_latency_factor),
            mean(&|m| m.p95_latency_factor),
            mean(&|m| m.oom_kills as f64),
            mean(&|m| m.late_oom_kills as f64),
            100.0 * mean(&|m| m.remote_time_weighted),
            mean(&|m| m.numad_moves as f64),
            mean(&|m| m.migrated_mb / 1024.0),
        );
    }
    out
}

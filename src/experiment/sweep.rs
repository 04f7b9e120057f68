//! `numasim sweep`: a grid (or list) of points over any scenario parameter,
//! times replications, run in parallel; one tidy CSV row per run, an
//! aggregate with 95% confidence intervals, and plots.
//!
//! Every run is a pure function of (resolved scenario, policy, seed), so its
//! record can be written as soon as it finishes (`runs/run-NNNNNN.json`) and
//! reused: an interrupted sweep resumes, and shards (`--shard I/N`) run on
//! separate machines and `merge` into the very bytes one run gives, because
//! both assemble the CSVs from the same records with the same function.

use crate::experiment::run::{self, Overrides, Prepared, RunError, RunResult};
use crate::experiment::scenario::Scenario;
use crate::report::metrics::METRICS;
use crate::report::stats::mean_ci95;
use crate::report::summary::csv_line;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Input(String),
    /// A run failed (its error says whether the input or numasim is at fault).
    #[error("{context}{error}")]
    Run { context: String, error: RunError },
}

impl SweepError {
    /// Whether numasim itself is at fault (exit 3).
    pub fn is_internal(&self) -> bool {
        matches!(self, SweepError::Run { error, .. } if error.is_internal())
    }
}

fn fail<T>(m: impl Into<String>) -> Result<T, SweepError> {
    Err(SweepError::Input(m.into()))
}

/// The sweep file (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The base scenario, relative to the sweep file.
    pub scenario: String,
    /// Seeds 1..=N; or give `seeds`; default: the scenario's seeds.
    #[serde(default)]
    pub replications: Option<u64>,
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Parameter -> list of values, crossed in the order written.
    #[serde(default)]
    pub grid: toml::Table,
    /// Explicit points (parameter -> value), each crossed with the grid.
    #[serde(default)]
    pub points: Vec<toml::Table>,
    #[serde(default)]
    pub plot: PlotSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlotSpec {
    /// The numeric parameter on the x axis (default: the first numeric one).
    #[serde(default)]
    pub x: Option<String>,
    /// Its axis title, with units.
    #[serde(default)]
    pub x_label: Option<String>,
}

/// One point of the sweep: a value for each parameter it sets.
#[derive(Debug, Clone)]
pub struct Point {
    pub values: Vec<(String, toml::Value)>,
}

/// One simulation: a point, a policy of its scenario, a seed.
#[derive(Debug, Clone)]
pub struct RunKey {
    pub run: usize,
    pub point: usize,
    pub policy: usize,
    pub seed: u64,
}

/// A sweep with its points resolved into runnable scenarios.
pub struct Sweep {
    pub spec: SweepSpec,
    pub path: PathBuf,
    /// Parameter names, in column order.
    pub params: Vec<String>,
    pub points: Vec<Point>,
    pub prepared: Vec<Prepared>,
    pub runs: Vec<RunKey>,
    /// Per run, a digest of everything its result depends on.
    pub run_digests: Vec<String>,
    pub digest: String,
}

/// The digest of `parts` (`stable_hash`, one separator after each part).
fn digest(parts: &[&[u8]]) -> u64 {
    let mut h = crate::stable_hash::StableHasher::new();
    for part in parts {
        h.part(part);
    }
    h.finish()
}

/// A parameter value as it appears in CSVs and labels.
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses `I/N` (0-based I).
pub fn parse_shard(text: &str) -> Result<(usize, usize), SweepError> {
    let bad = || {
        SweepError::Input(format!(
            "--shard `{text}`: expected I/N with 0 <= I < N, e.g. 0/4"
        ))
    };
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

impl SweepSpec {
    pub fn parse(text: &str) -> Result<SweepSpec, String> {
        let s: SweepSpec =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        for (k, v) in &s.grid {
            match v.as_array() {
                Some(a) if !a.is_empty() => {}
                _ => return Err(format!("grid.\"{k}\": expected a non-empty list of values")),
            }
        }
        if matches!(s.replications, Some(0)) {
            return Err("replications: expected at least 1".into());
        }
        if s.replications.is_some() && s.seeds.is_some() {
            return Err("give `replications` or `seeds`, not both".into());
        }
        if matches!(&s.seeds, Some(v) if v.is_empty()) {
            return Err("seeds: give at least one seed".into());
        }
        Ok(s)
    }

    /// Points in order: each explicit point (or one empty one) crossed with
    /// the grid, the grid's first parameter varying slowest.
    pub fn expand(&self) -> Result<(Vec<String>, Vec<Point>), String> {
        let mut params: Vec<String> = Vec::new();
        for p in &self.points {
            for k in p.keys() {
                if !params.contains(k) {
                    params.push(k.clone());
                }
            }
        }
        for k in self.grid.keys() {
            if params.contains(k) {
                return Err(format!(
                    "grid.\"{k}\": also set by [[points]]; set a parameter in one place"
                ));
            }
            params.push(k.clone());
        }
        let bases: Vec<Vec<(String, toml::Value)>> = if self.points.is_empty() {
            vec![Vec::new()]
        } else {
            self.points
                .iter()
                .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .collect()
        };
        let mut points = Vec::new();
        for base in bases {
            let mut combos: Vec<Vec<(String, toml::Value)>> = vec![base];
            for (k, vals) in &self.grid {
                let vals = vals.as_array().expect("checked in parse");
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        vals.iter().map(move |v| {
                            let mut c = c.clone();
                            c.push((k.clone(), v.clone()));
                            c
                        })
                    })
                    .collect();
            }
            points.extend(combos.into_iter().map(|values| Point { values }));
        }
        Ok((params, points))
    }
}

/// Sets `path` (dots; numbers index arrays; `*` is every element) in `doc`.
/// Tables on the way must exist; the last key may be new (the scenario's
/// own strict parsing then rejects a key it does not know).
fn set_path(doc: &mut toml::Value, path: &str, value: &toml::Value) -> Result<(), String> {
    let segs: Vec<&str> = path.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err("expected a dotted key such as `workload.synthetic.offered_load`".into());
    }
    set_segs(doc, &segs, value, path)
}

fn set_segs(
    node: &mut toml::Value,
    segs: &[&str],
    value: &toml::Value,
    path: &str,
) -> Result<(), String> {
    let (seg, rest) = (segs[0], &segs[1..]);
    match node {
        toml::Value::Array(items) => {
            let targets: Vec<usize> = if seg == "*" {
                (0..items.len()).collect()
            } else {
                let i: usize = seg.parse().map_err(|_| {
                    format!("`{seg}` in `{path}`: this is a list; expected an index or `*`")
                })?;
                if i >= items.len() {
                    return Err(format!(
                        "`{seg}` in `{path}`: the list has {} entries",
                        items.len()
                    ));
                }
                vec![i]
            };
            for i in targets {
                if rest.is_empty() {
                    items[i] = value.clone();
                } else {
                    set_segs(&mut items[i], rest, value, path)?;
                }
            }
            Ok(())
        }
        toml::Value::Table(t) => {
            if rest.is_empty() {
                // Rate and load are two ways to say one thing; setting one drops the other.
                match seg {
                    "arrivals_per_hour" => {
                        t.remove("offered_load");
                    }
                    "offered_load" => {
                        t.remove("arrivals_per_hour");
                    }
                    _ => {}
                }
                t.insert(seg.to_string(), value.clone());
                return Ok(());
            }
            match t.get_mut(seg) {
                Some(child) => set_segs(child, rest, value, path),
                None => Err(format!(
                    "the scenario has no `{seg}` on the way to `{path}`"
                )),
            }
        }
        _ => Err(format!(
            "`{seg}` in `{path}`: the scenario has a value, not a table, before it"
        )),
    }
}

/// Applies a point to the base scenario document. `policy.KEY` parameters
/// build one policy from the scenario's first; `hosts` scales the fleet.
fn apply_point(base: &toml::Value, point: &Point) -> Result<(toml::Value, Option<usize>), String> {
    let mut doc = base.clone();
    let mut hosts = None;
    let mut policy: Option<toml::Value> = None;
    for (k, v) in &point.values {
        if k == "hosts" {
            let n = v
                .as_integer()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`hosts` = {v}: expected a positive integer"))?;
            hosts = Some(n as usize);
        } else if let Some(field) = k.strip_prefix("policy.") {
            let p = policy.get_or_insert_with(|| {
                doc.get("policies")
                    .and_then(|p| p.as_array())
                    .and_then(|a| a.first())
                    .cloned()
                    .unwrap_or_else(|| toml::Value::Table(toml::Table::new()))
            });
            set_path(p, field, v).map_err(|m| format!("`{k}`: {m}"))?;
        } else {
            set_path(&mut doc, k, v).map_err(|m| format!("`{k}`: {m}"))?;
        }
    }
    if let Some(p) = policy
        && let toml::Value::Table(t) = &mut doc
    {
        t.insert("policies".into(), toml::Value::Array(vec![p]));
    }
    Ok((doc, hosts))
}

impl Sweep {
    /// Reads the sweep file and its scenario, and resolves every point.
    pub fn load(path: &Path) -> Result<Sweep, SweepError> {
        let shown = path.display();
        let text = crate::input::read_text(path)
            .map_err(|e| SweepError::Input(format!("{shown}: {e}")))?;
        let spec =
            SweepSpec::parse(&text).map_err(|m| SweepError::Input(format!("{shown}: {m}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let scenario_path = dir.join(&spec.scenario);
        let scenario_text = crate::input::read_text(&scenario_path).map_err(|e| {
            SweepError::Input(format!(
                "{shown}: scenario {}: {e}",
                scenario_path.display()
            ))
        })?;
        let base: toml::Value = toml::from_str(&scenario_text).map_err(|e| {
            SweepError::Input(format!(
                "{}: {}",
                scenario_path.display(),
                e.to_string().trim_end()
            ))
        })?;
        let (params, points) = spec
            .expand()
            .map_err(|m| SweepError::Input(format!("{shown}: {m}")))?;
        let mut prepared = Vec::with_capacity(points.len());
        let mut runs = Vec::new();
        let mut run_digests = Vec::new();
        let metric_names: String = crate::report::metrics::METRICS
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(",");
        let mut file_digests: BTreeMap<PathBuf, u64> = BTreeMap::new();
        for (pi, point) in points.iter().enumerate() {
            let describe = || {
                point
                    .values
                    .iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (doc, hosts) = apply_point(&base, point).map_err(|m| {
                SweepError::Input(format!("{shown}: point {pi} ({}): {m}", describe()))
            })?;
            let resolved =
                toml::to_string(&doc).map_err(|e| SweepError::Input(format!("{shown}: {e}")))?;
            let mut scenario = Scenario::parse(&resolved).map_err(|e| {
                SweepError::Input(format!(
                    "{shown}: point {pi} ({}) makes the scenario invalid: {e}",
                    describe()
                ))
            })?;
            if let Some(seeds) = &spec.seeds {
                scenario.seeds = seeds.clone();
            } else if let Some(n) = spec.replications {
                scenario.seeds = (1..=n).collect();
            }
            // Every file a run reads (host captures, node lists, flavors,
            // traces): its content goes into the run's digest, so a changed
            // file invalidates the records made from it.
            let base_dir = scenario_path.parent().unwrap_or(Path::new("."));
            let inputs = scenario.input_files(base_dir);
            let mut inputs_digest = crate::stable_hash::StableHasher::new();
            for path in &inputs {
                let d = match file_digests.get(path) {
                    Some(d) => *d,
                    None => {
                        let d = file_digest(path).map_err(|e| {
                            SweepError::Input(format!("{}: cannot read: {e}", path.display()))
                        })?;
                        file_digests.insert(path.clone(), d);
                        d
                    }
                };
                inputs_digest.part(path.to_string_lossy().as_bytes());
                inputs_digest.part(&d.to_le_bytes());
            }
            let inputs_digest = inputs_digest.finish().to_le_bytes();
            let ov = Overrides {
                hosts,
                ..Overrides::default()
            };
            let p = run::prepare_scenario(scenario, &scenario_path, &ov).map_err(|error| {
                SweepError::Run {
                    context: format!("{shown}: point {pi} ({}): ", describe()),
                    error,
                }
            })?;
            for policy in 0..p.scenario.policies.len() {
                for &seed in &p.scenario.seeds {
                    let d = digest(&[
                        env!("CARGO_PKG_VERSION").as_bytes(),
                        // Records of an older record format, or with another
                        // metric registry (their columns), are not reused.
                        RECORD_FORMAT.as_bytes(),
                        metric_names.as_bytes(),
                        resolved.as_bytes(),
                        &inputs_digest,
                        format!("{hosts:?}/{policy}/{seed}").as_bytes(),
                    ]);
                    run_digests.push(format!("{d:016x}"));
                    runs.push(RunKey {
                        run: runs.len(),
                        point: pi,
                        policy,
                        seed,
                    });
                }
            }
            prepared.push(p);
        }
        let all: Vec<&[u8]> = run_digests.iter().map(|d| d.as_bytes()).collect();
        let digest = format!("{:016x}", digest(&all));
        if let Some(x) = &spec.plot.x
            && !params.contains(x)
        {
            return fail(format!(
                "{shown}: plot.x = `{x}` is not a parameter of the sweep ({})",
                params.join(", ")
            ));
        }
        Ok(Sweep {
            spec,
            path: path.to_path_buf(),
            params,
            points,
            prepared,
            runs,
            run_digests,
            digest,
        })
    }

    /// The runs of shard `i` of `n` (every n-th run, starting at i).
    pub fn shard_runs(&self, shard: Option<(usize, usize)>) -> Vec<usize> {
        let (i, n) = shard.unwrap_or((0, 1));
        (i..self.runs.len()).step_by(n).collect()
    }

    fn record_path(out: &Path, run: usize) -> PathBuf {
        out.join("runs").join(format!("run-{run:06}.json"))
    }

    /// Records already on disk for this sweep (same digest); others ignored.
    pub fn existing_records(&self, out: &Path) -> BTreeMap<usize, RunRecord> {
        let mut found = BTreeMap::new();
        for r in 0..self.runs.len() {
            if let Ok(text) = crate::input::read_text(Self::record_path(out, r))
                && let Ok(rec) = serde_json::from_str::<RunRecord>(&text)
                && rec.run == r
                && rec.digest == self.run_digests[r]
                // A record of another metric registry (or a damaged one)
                // is run again, not assembled with missing columns.
                && rec.metrics.len() == crate::report::metrics::METRICS.len()
            {
                found.insert(r, rec);
            }
        }
        found
    }

    /// Runs the given runs that have no record yet, in parallel, writing each
    /// record as it completes. Returns how many ran.
    pub fn execute(
        &self,
        out: &Path,
        todo: &[usize],
        progress: &(dyn Fn() + Sync),
    ) -> Result<usize, SweepError> {
        // A directory holds one sweep: another sweep's records and CSVs
        // would be overwritten in part and mixed with this one's. (The same
        // sweep with changed inputs has another digest: its stale records
        // are ignored and every run is made again.)
        if let Ok(text) = crate::input::read_text(out.join("sweep.json"))
            && let Ok(other) = serde_json::from_str::<Manifest>(&text)
            && other.name != self.spec.name
        {
            return Err(SweepError::Input(format!(
                "{}: holds the results of sweep `{}`, not of this one (`{}`); give another --out, or --restart to replace them",
                out.display(),
                other.name,
                self.spec.name
            )));
        }
        crate::report::output::output_dir(out)
            .and_then(|()| crate::report::output::output_dir(&out.join("runs")))
            .map_err(|e| SweepError::Input(e.to_string()))?;
        let manifest = Manifest {
            name: self.spec.name.clone(),
            digest: self.digest.clone(),
            runs: self.runs.len(),
            params: self.params.clone(),
            plot: self.spec.plot.clone(),
        };
        write_atomically(
            &out.join("sweep.json"),
            serde_json::to_string_pretty(&manifest)
                .expect("plain data serialises")
                .as_bytes(),
        )?;
        let results: Vec<Result<(), SweepError>> = todo
            .par_iter()
            .map(|&r| {
                let key = &self.runs[r];
                let result = self.prepared[key.point]
                    .run_one(key.policy, key.seed)
                    .map_err(|error| SweepError::Run {
                        context: format!("run {r}: "),
                        error,
                    })?;
                let rec = self.record(key, &result);
                write_atomically(
                    &Self::record_path(out, r),
                    serde_json::to_string(&rec).expect("plain data").as_bytes(),
                )?;
                progress();
                Ok(())
            })
            .collect();
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(todo.len())
    }

    fn record(&self, key: &RunKey, r: &RunResult) -> RunRecord {
        let point = &self.points[key.point];
        let params = self
            .params
            .iter()
            .map(|p| {
                point
                    .values
                    .iter()
                    .find(|(k, _)| k == p)
                    .map(|(_, v)| value_text(v))
                    .unwrap_or_default()
            })
            .collect();
        let m = &r.metrics;
        let metrics = METRICS.iter().map(|x| x.format(m)).collect();
        RunRecord {
            digest: self.run_digests[key.run].clone(),
            run: key.run,
            point: key.point,
            params,
            policy: r.policy.clone(),
            seed: key.seed,
            metrics,
            timeseries: r
                .samples
                .iter()
                .map(|s| {
                    format!(
                        "{:.1},{},{:.6},{:.6},{}",
                        s.t, s.running, s.cpu_alloc, s.mem_alloc, s.hosts_in_use
                    )
                })
                .collect(),
            latency_quantiles: m
                .latency_quantiles
                .iter()
                .map(|q| format!("{q:.6}"))
                .collect(),
        }
    }
}

/// What `sweep.json` says about the sweep an output directory belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub digest: String,
    pub runs: usize,
    pub params: Vec<String>,
    pub plot: PlotSpec,
}

/// One finished run, already formatted: the CSVs are these strings joined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub digest: String,
    pub run: usize,
    pub point: usize,
    pub params: Vec<String>,
    pub policy: String,
    pub seed: u64,
    /// In the order of the metric registry (`report::metrics::METRICS`).
    pub metrics: Vec<String>,
    /// `t_s,running,cpu_alloc,mem_alloc,hosts_in_use` per sample.
    pub timeseries: Vec<String>,
    /// Latency factor at quantiles 0, 0.01, ..., 1.
    pub latency_quantiles: Vec<String>,
}

/// The stable digest of a file's content, read in blocks (traces may be
/// gigabytes; memory stays flat).
fn file_digest(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut f = crate::input::open(path)?;
    let mut h = crate::stable_hash::StableHasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.write(&buf[..n]);
    }
}

/// Bumped when a record's content changes (its metric columns, their meaning).
const RECORD_FORMAT: &str = "records-2: metric registry";

/// Metrics summarised with confidence intervals in `aggregate.csv`.
pub fn aggregated_metrics() -> impl Iterator<Item = &'static str> {
    crate::report::metrics::judging().map(|m| m.name)
}

/// The column of metric `name` in a record's metrics.
pub fn metric_column(name: &str) -> Option<usize> {
    METRICS.iter().position(|m| m.name == name)
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SweepError> {
    crate::report::output::write_atomically(path, bytes)
        .map_err(|e| SweepError::Input(e.to_string()))
}

/// The sweep's CSVs, assembled from complete records.
pub struct Outputs {
    pub runs_csv: String,
    pub aggregate_csv: String,
    pub timeseries_csv: String,
    pub latency_csv: String,
}

/// Assembles the CSVs from records 0..n (all must be present, in order).
pub fn assemble(manifest: &Manifest, records: &[RunRecord]) -> Outputs {
    let mut header: Vec<String> = vec!["run".into(), "point".into()];
    header.extend(manifest.params.iter().cloned());
    header.extend(["policy".to_string(), "seed".to_string()]);
    header.extend(METRICS.iter().map(|m| m.name.to_string()));
    let mut runs_csv = csv_line(&header);
    let mut timeseries_csv = String::from("run,t_s,running,cpu_alloc,mem_alloc,hosts_in_use\n");
    let mut latency_csv = String::from("run,quantile,latency_factor\n");
    for r in records {
        let mut row = vec![r.run.to_string(), r.point.to_string()];
        row.extend(r.params.iter().cloned());
        row.extend([r.policy.clone(), r.seed.to_string()]);
        row.extend(r.metrics.iter().cloned());
        runs_csv.push_str(&csv_line(&row));
        for s in &r.timeseries {
            let _ = writeln!(timeseries_csv, "{},{s}", r.run);
        }
        let steps = r.latency_quantiles.len().saturating_sub(1).max(1);
        for (i, q) in r.latency_quantiles.iter().enumerate() {
            let _ = writeln!(latency_csv, "{},{:.2},{q}", r.run, i as f64 / steps as f64);
        }
    }
    // Aggregate: one group per (point, policy), in run order.
    let mut agg_header: Vec<String> = vec!["point".into()];
    agg_header.extend(manifest.params.iter().cloned());
    agg_header.extend(
        [
            "policy",
            "metric",
            "n",
            "mean",
            "std",
            "ci95_low",
            "ci95_high",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut aggregate_csv = csv_line(&agg_header);
    for group in groups(records) {
        let first = &records[group[0]];
        for metric in aggregated_metrics() {
            let col = metric_column(metric).expect("a registry metric");
            let values: Vec<f64> = group
                .iter()
                .filter_map(|&i| records[i].metrics.get(col)?.parse().ok())
                .collect();
            let mut row = vec![first.point.to_string()];
            row.extend(first.params.iter().cloned());
            row.extend([first.policy.clone(), metric.to_string()]);
            match mean_ci95(&values) {
                Some(ci) => {
                    let (low, high) = ci
                        .interval()
                        .map(|(l, h)| (format!("{l:.6}"), format!("{h:.6}")))
                        .unwrap_or_default();
                    let std = if ci.std.is_nan() {
                        String::new()
                    } else {
                        format!("{:.6}", ci.std)
                    };
                    row.extend([ci.n.to_string(), format!("{:.6}", ci.mean), std, low, high]);
                }
                None => row.extend(["0", "", "", "", ""].iter().map(|s| s.to_string())),
            }
            aggregate_csv.push_str(&csv_line(&row));
        }
    }
    Outputs {
        runs_csv,
        aggregate_csv,
        timeseries_csv,
        latency_csv,
    }
}

/// Indices of records grouped by (point, policy), groups in first-seen order.
fn groups(records: &[RunRecord]) -> Vec<Vec<usize>> {
    let mut order: Vec<(usize, String)> = Vec::new();
    let mut members: BTreeMap<(usize, String), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let key = (r.point, r.policy.clone());
        if !members.contains_key(&key) {
            order.push(key.clone());
        }
        members.entry(key).or_default().push(i);
    }
    order
        .into_iter()
        .map(|k| members.remove(&k).expect("inserted"))
        .collect()
}

/// Reads every record of a sweep output directory (any shard's).
pub fn read_dir_records(dir: &Path) -> Result<(Manifest, Vec<RunRecord>), SweepError> {
    let mpath = dir.join("sweep.json");
    let text = crate::input::read_text(&mpath).map_err(|e| {
        SweepError::Input(format!(
            "{}: {e} (not a sweep output directory?)",
            mpath.display()
        ))
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .map_err(|e| SweepError::Input(format!("{}: {e}", mpath.display())))?;
    let mut records = Vec::new();
    let runs_dir = dir.join("runs");
    let entries = std::fs::read_dir(&runs_dir)
        .map_err(|e| SweepError::Input(format!("{}: {e}", runs_dir.display())))?;
    let mut names: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for p in names {
        let text = crate::input::read_text(&p)
            .map_err(|e| SweepError::Input(format!("{}: {e}", p.display())))?;
        let rec: RunRecord = serde_json::from_str(&text)
            .map_err(|e| SweepError::Input(format!("{}: not a run record: {e}", p.display())))?;
        records.push(rec);
    }
    Ok((manifest, records))
}

/// Joins the records of several output directories (the shards of one
/// sweep) into the complete, ordered list; errors on a mix of sweeps, a
/// duplicate that disagrees, or a missing run.
pub fn merge_records(dirs: &[PathBuf]) -> Result<(Manifest, Vec<RunRecord>), SweepError> {
    let mut manifest: Option<Manifest> = None;
    let mut by_run: BTreeMap<usize, (RunRecord, PathBuf)> = BTreeMap::new();
    for d in dirs {
        let (m, recs) = read_dir_records(d)?;
        match &manifest {
            None => manifest = Some(m),
            Some(first) if *first != m => {
                return fail(format!(
                    "{}: belongs to another sweep (digest {}, expected {})",
                    d.display(),
                    m.digest,
                    first.digest
                ));
            }
            Some(_) => {}
        }
        for r in recs {
            if let Some((prev, where_)) = by_run.get(&r.run)
                && (prev.metrics != r.metrics || prev.digest != r.digest)
            {
                return fail(format!(
                    "run {} differs between {} and {}",
                    r.run,
                    where_.display(),
                    d.display()
                ));
            }
            by_run.insert(r.run, (r, d.clone()));
        }
    }
    let Some(manifest) = manifest else {
        return fail("merge: give at least one directory");
    };
    let missing: Vec<usize> = (0..manifest.runs)
        .filter(|r| !by_run.contains_key(r))
        .collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).map(|r| r.to_string()).collect();
        return fail(format!(
            "{} of {} runs are missing (runs {}{}); run the remaining shards first",
            missing.len(),
            manifest.runs,
            shown.join(", "),
            if missing.len() > 10 { ", ..." } else { "" }
        ));
    }
    let records = by_run.into_values().map(|(r, _)| r).collect();
    Ok((manifest, records))
}

/// Writes the CSVs and plots of a complete sweep into `out`.
/// `report`: also `report.html` (else an earlier one is removed, so the
/// directory holds no report of other results).
pub fn write_outputs(
    out: &Path,
    manifest: &Manifest,
    records: &[RunRecord],
    report: bool,
) -> Result<Vec<PathBuf>, SweepError> {
    let o = assemble(manifest, records);
    let mut written = Vec::new();
    for (name, text) in [
        ("runs.csv", &o.runs_csv),
        ("aggregate.csv", &o.aggregate_csv),
        ("timeseries.csv", &o.timeseries_csv),
        ("latency_quantiles.csv", &o.latency_csv),
    ] {
        let p = out.join(name);
        write_atomically(&p, text.as_bytes())?;
        written.push(p);
    }
    let charts = crate::report::sweep_plots::draw_all(out, manifest, records, &manifest.plot)?;
    // The report inlines the charts just drawn (their SVG files).
    let mut inline = Vec::new();
    for path in charts
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
    {
        let svg = crate::input::read_text(path)
            .map_err(|e| SweepError::Input(format!("{}: {e}", path.display())))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().replace('_', " "))
            .unwrap_or_default();
        inline.push((name, svg));
    }
    written.extend(charts);
    let p = out.join("report.html");
    if !report {
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(SweepError::Input(format!(
                    "{}: cannot remove: {e}",
                    p.display()
                )));
            }
            _ => return Ok(written),
        }
    }
    let html = crate::report::html::sweep_report(manifest, records, &inline)
        .map_err(|e| SweepError::Input(format!("report.html: {e}")))?;
    write_atomically(&p, html.as_bytes())?;
    written.push(p);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_expands_first_key_slowest_and_points_cross_it() {
        let spec = SweepSpec::parse(
            r#"
name = "t"
scenario = "s.toml"
[[points]]
hosts = 10
[[points]]
hosts = 20
[grid]
"policy.memory_mode" = ["strict", "preferred"]
"workload.synthetic.offered_load" = [0.5, 0.9, 1.3]
"#,
        )
        .unwrap();
        let (params, points) = spec.expand().unwrap();
        assert_eq!(
            params,
            [
                "hosts",
                "policy.memory_mode",
                "workload.synthetic.offered_load"
            ]
        );
        assert_eq!(points.len(), 2 * 2 * 3);
        let show = |p: &Point| {
            p.values
                .iter()
                .map(|(_, v)| value_text(v))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(show(&points[0]), "10 strict 0.5");
        assert_eq!(show(&points[1]), "10 strict 0.9");
        assert_eq!(show(&points[3]), "10 preferred 0.5");
        assert_eq!(show(&points[6]), "20 strict 0.5");
    }

    #[test]
    fn bad_sweeps_say_what_is_wrong() {
        let e = SweepSpec::parse("name = \"t\"\nscenario = \"s\"\n[grid]\nx = 3\n").unwrap_err();
        assert!(e.contains("grid.\"x\"") && e.contains("list"), "{e}");
        let e = SweepSpec::parse("name = \"t\"\nscenario = \"s\"\nreplicas = 3\n").unwrap_err();
        assert!(e.contains("replicas") && e.contains("line 3"), "{e}");
        assert!(parse_shard("2/2").is_err() && parse_shard("a/b").is_err());
        assert_eq!(parse_shard("1/4").unwrap(), (1, 4));
    }

    #[test]
    fn paths_set_nested_values_and_keep_rate_and_load_exclusive() {
        let mut doc: toml::Value = toml::from_str(
            r#"
[[fleet]]
count = 2
[fleet.config]
cpu_allocation_ratio = 4.0
[[fleet]]
count = 3
[fleet.config]
cpu_allocation_ratio = 4.0
[workload.synthetic]
offered_load = 0.9
"#,
        )
        .unwrap();
        set_path(
            &mut doc,
            "fleet.*.config.cpu_allocation_ratio",
            &toml::Value::Float(2.0),
        )
        .unwrap();
        set_path(&mut doc, "fleet.1.count", &toml::Value::Integer(7)).unwrap();
        set_path(
            &mut doc,
            "workload.synthetic.arrivals_per_hour",
            &toml::Value::Float(60.0),
        )
        .unwrap();
        let text = toml::to_string(&doc).unwrap();
        assert_eq!(
            text.matches("cpu_allocation_ratio = 2.0").count(),
            2,
            "{text}"
        );
        assert!(
            text.contains("count = 7") && !text.contains("offered_load"),
            "{text}"
        );
        let e = set_path(
            &mut doc,
            "workload.synthetc.offered_load",
            &toml::Value::Float(1.0),
        )
        .unwrap_err();
        assert!(e.contains("synthetc"), "{e}");
        let e = set_path(&mut doc, "fleet.5.count", &toml::Value::Integer(1)).unwrap_err();
        assert!(e.contains("2 entries"), "{e}");
    }
}

//! The fit-case format of `tests/data/fit-cases/FORMAT.md` (JSON Lines): a host,
//! a flavor with image properties (or a guest topology given directly),
//! limits and PCI requests in; Nova's answer out.

use super::Mode;
use super::host::{HostCell, HostTopology, Limits, MemPages, NetworkMetadata, PciPool, PciRequest};
use super::search::{FitOptions, PciContext, fit_instance_to_host};
use super::usage::usage_from_instance;
use crate::request::{
    CpuPolicy, EmulatorPolicy, Flavor, GuestCell, GuestTopology, ImageProps, MEMPAGES_ANY,
    MEMPAGES_LARGE, MEMPAGES_SMALL, PCI_POLICIES, Phase, RequestError, ThreadPolicy,
    numa_get_constraints, pci_numa_policy,
};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

fn input_error(message: impl Into<String>) -> RequestError {
    RequestError {
        phase: Phase::Input,
        kind: "InputError",
        message: message.into(),
    }
}

fn int(v: &Value, what: &str) -> Result<i64, RequestError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.trunc() as i64))
            .ok_or_else(|| input_error(format!("{what}: bad number"))),
        Value::String(s) => crate::request::py::py_int(s)
            .ok_or_else(|| input_error(format!("{what}: `{s}` is not an integer"))),
        Value::Bool(b) => Ok(i64::from(*b)),
        _ => Err(input_error(format!("{what}: expected an integer"))),
    }
}

fn int_list(v: Option<&Value>, what: &str) -> Result<Vec<u32>, RequestError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                // CPU ids index bitsets: keep them to what real hosts have.
                Value::Number(n) => n
                    .as_u64()
                    .filter(|u| *u < 1 << 20)
                    .map(|u| u as u32)
                    .ok_or_else(|| {
                        input_error(format!("{what} must be a list of CPU ids (0 to 1048575)"))
                    }),
                _ => Err(input_error(format!("{what} must be a list of integers"))),
            })
            .collect(),
        Some(_) => Err(input_error(format!("{what} must be a list of integers"))),
    }
}

fn string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

fn network(v: Option<&Value>) -> Option<NetworkMetadata> {
    let v = v.filter(|v| !v.is_null())?;
    Some(NetworkMetadata {
        physnets: v
            .get("physnets")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(string).collect())
            .unwrap_or_default(),
        tunneled: v.get("tunneled").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Builds the host topology of a case (`host` object of tests/data/fit-cases/FORMAT.md).
/// Sizes beyond any machine (they would overflow the KiB and page
/// arithmetic downstream): a cell's memory and usage in MB, a page pool in
/// KiB, a cell's vCPU usage.
pub const MAX_CELL_MEMORY_MB: i64 = 1 << 40;
pub const MAX_PAGE_POOL_KB: i64 = 1 << 50;
pub const MAX_CELL_CPU_USAGE: i64 = 1 << 32;

fn within(value: i64, cell: i64, key: &str, max: i64) -> Result<i64, RequestError> {
    if value.unsigned_abs() > max.unsigned_abs() {
        return Err(input_error(format!(
            "host cell {cell}: {key} = {value} is beyond {max}; expected a real size"
        )));
    }
    Ok(value)
}

pub fn parse_host(v: &Value) -> Result<HostTopology, RequestError> {
    let cells = v
        .get("cells")
        .and_then(Value::as_array)
        .ok_or_else(|| input_error("host.cells must be a list"))?;
    let mut out = Vec::new();
    for c in cells {
        let get = |k: &str| c.get(k);
        let id = int(
            get("id").ok_or_else(|| input_error("bad host cell: KeyError: 'id'"))?,
            "id",
        )?;
        let memory = int(
            get("memory_mb").ok_or_else(|| input_error("bad host cell: KeyError: 'memory_mb'"))?,
            "memory_mb",
        )?;
        let memory = within(memory, id, "memory_mb", MAX_CELL_MEMORY_MB)?;
        let siblings: Vec<Vec<u32>> = match get("siblings") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|s| int_list(Some(s), "siblings[]"))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(input_error("siblings must be a list")),
        };
        let mut mempages = Vec::new();
        if let Some(Value::Array(pages)) = get("mempages") {
            for m in pages {
                let f = |k: &str, d: Option<i64>| -> Result<i64, RequestError> {
                    match m.get(k) {
                        Some(v) if !v.is_null() => int(v, k),
                        _ => {
                            d.ok_or_else(|| input_error(format!("bad host cell: KeyError: '{k}'")))
                        }
                    }
                };
                let size_kb = within(
                    f("size_kb", None)?,
                    id,
                    "mempages.size_kb",
                    MAX_PAGE_POOL_KB,
                )?;
                // Counts of pages: each at most a pool of the largest size.
                let max_pages = MAX_PAGE_POOL_KB / size_kb.max(1);
                let key = |k: &str| format!("mempages[size_kb={size_kb}].{k}");
                mempages.push(MemPages {
                    size_kb,
                    total: within(f("total", None)?, id, &key("total"), max_pages)?,
                    used: within(f("used", Some(0))?, id, &key("used"), max_pages)?,
                    reserved: within(f("reserved", Some(0))?, id, &key("reserved"), max_pages)?,
                });
            }
        }
        let opt_int = |k: &str| -> Result<i64, RequestError> {
            get(k)
                .filter(|v| !v.is_null())
                .map(|v| int(v, k))
                .unwrap_or(Ok(0))
        };
        let mut cell = HostCell::from_lists(
            id,
            &int_list(get("cpus"), "cpus")?,
            &int_list(get("pcpus"), "pcpus")?,
            memory,
            within(opt_int("cpu_usage")?, id, "cpu_usage", MAX_CELL_CPU_USAGE)?,
            within(
                opt_int("memory_usage_mb")?,
                id,
                "memory_usage_mb",
                MAX_CELL_MEMORY_MB,
            )?,
            &int_list(get("pinned_cpus"), "pinned_cpus")?,
            &siblings,
            mempages,
        );
        cell.socket = get("socket").and_then(Value::as_i64);
        cell.network_metadata = network(get("network_metadata"));
        out.push(cell);
    }
    Ok(HostTopology { cells: out })
}

pub fn parse_flavor(v: &Value) -> Result<Flavor, RequestError> {
    let vcpus = int(
        v.get("vcpus")
            .ok_or_else(|| input_error("bad flavor: KeyError: 'vcpus'"))?,
        "vcpus",
    )?;
    let memory_mb = int(
        v.get("memory_mb")
            .ok_or_else(|| input_error("bad flavor: KeyError: 'memory_mb'"))?,
        "memory_mb",
    )?;
    let extra_specs = match v.get("extra_specs") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), string(v))).collect(),
        _ => Vec::new(),
    };
    Ok(Flavor {
        name: v.get("name").map(string).unwrap_or_else(|| "flavor".into()),
        vcpus,
        memory_mb,
        extra_specs,
    })
}

pub fn parse_limits(v: Option<&Value>) -> Result<Option<Limits>, RequestError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let ratio = |k: &str| -> Result<f64, RequestError> {
        match v.get(k) {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| input_error(format!("bad limits: {k}"))),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map_err(|_| input_error(format!("bad limits: {k}"))),
            _ => Err(input_error(format!("bad limits: KeyError: '{k}'"))),
        }
    };
    Ok(Some(Limits {
        cpu_allocation_ratio: ratio("cpu_allocation_ratio")?,
        ram_allocation_ratio: ratio("ram_allocation_ratio")?,
        network_metadata: network(v.get("network_metadata")),
    }))
}

fn parse_pagesize(v: Option<&Value>) -> Result<Option<i64>, RequestError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "small" => Ok(Some(MEMPAGES_SMALL)),
            "large" => Ok(Some(MEMPAGES_LARGE)),
            "any" => Ok(Some(MEMPAGES_ANY)),
            _ => Err(input_error(format!(
                "bad instance cell: ValueError: bad pagesize '{s}'"
            ))),
        },
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(other) => Err(input_error(format!(
            "bad instance cell: ValueError: bad pagesize {other}"
        ))),
    }
}

/// A guest topology given directly (`instance`), as Nova's unit tests build it.
pub fn parse_instance(v: &Value) -> Result<Option<GuestTopology>, RequestError> {
    if v.is_null() {
        return Ok(None);
    }
    let cells = v
        .get("cells")
        .and_then(Value::as_array)
        .ok_or_else(|| input_error("instance.cells must be a list"))?;
    let mut out = Vec::new();
    for (idx, c) in cells.iter().enumerate() {
        if !c.is_object() {
            return Err(input_error(
                "bad instance cell: TypeError: cell must be an object",
            ));
        }
        let policy = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
        let cpu_policy = match policy("cpu_policy") {
            None => None,
            Some(p) => Some(CpuPolicy::parse(&p).ok_or_else(|| {
                input_error(format!("bad instance cell: ValueError: cpu_policy {p}"))
            })?),
        };
        let cpu_thread_policy = match policy("cpu_thread_policy") {
            None => None,
            Some(p) => Some(ThreadPolicy::parse(&p).ok_or_else(|| {
                input_error(format!(
                    "bad instance cell: ValueError: cpu_thread_policy {p}"
                ))
            })?),
        };
        let cpu_pinning = match c.get("cpu_pinning") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let mut pin = BTreeMap::new();
                for (k, v) in m {
                    let vcpu = crate::request::py::py_int(k)
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| {
                            input_error("bad instance cell: ValueError: cpu_pinning key")
                        })?;
                    let pcpu = v
                        .as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| {
                            input_error("bad instance cell: ValueError: cpu_pinning value")
                        })?;
                    pin.insert(vcpu, pcpu);
                }
                Some(pin)
            }
            Some(_) => {
                return Err(input_error(
                    "bad instance cell: TypeError: cpu_pinning must be an object",
                ));
            }
        };
        let cpuset_reserved = match c.get("cpuset_reserved") {
            None | Some(Value::Null) => None,
            other => Some(
                int_list(other, "instance cpuset_reserved")?
                    .into_iter()
                    .collect(),
            ),
        };
        out.push(GuestCell {
            id: match c.get("id") {
                None => idx as i64,
                Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or(0),
                Some(other) => {
                    return Err(input_error(format!(
                        "bad instance cell: ValueError: bad id {other}"
                    )));
                }
            },
            cpuset: int_list(c.get("cpus"), "instance cpus")?
                .into_iter()
                .collect(),
            pcpuset: int_list(c.get("pcpus"), "instance pcpus")?
                .into_iter()
                .collect(),
            memory_mb: int(
                c.get("memory_mb")
                    .ok_or_else(|| input_error("bad instance cell: KeyError: 'memory_mb'"))?,
                "memory_mb",
            )?,
            pagesize: parse_pagesize(c.get("pagesize"))?,
            cpu_policy,
            cpu_thread_policy,
            cpu_pinning,
            cpuset_reserved,
        });
    }
    let emulator_threads_policy = match v.get("emulator_threads_policy").and_then(Value::as_str) {
        None => None,
        Some(p) => Some(EmulatorPolicy::parse(p).ok_or_else(|| {
            input_error(format!(
                "bad instance: ValueError: emulator_threads_policy {p}"
            ))
        })?),
    };
    Ok(Some(GuestTopology {
        cells: out,
        emulator_threads_policy,
    }))
}

fn pagesize_out(p: Option<i64>) -> Value {
    match p {
        None => Value::Null,
        Some(MEMPAGES_SMALL) => json!("small"),
        Some(MEMPAGES_LARGE) => json!("large"),
        Some(MEMPAGES_ANY) => json!("any"),
        Some(v) => json!(v),
    }
}

fn sorted(set: &BTreeSet<u32>) -> Value {
    json!(set.iter().collect::<Vec<_>>())
}

fn pinning_out(p: &Option<BTreeMap<u32, u32>>) -> Value {
    match p {
        Some(m) if !m.is_empty() => {
            let mut keys: Vec<&u32> = m.keys().collect();
            // Python sorts the int keys, then json.dumps(sort_keys=True) sorts them as strings.
            keys.sort_by_key(|k| k.to_string());
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.to_string(), json!(m[k])))
                    .collect(),
            )
        }
        _ => Value::Null,
    }
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut sorted_pairs = pairs;
    sorted_pairs.sort_by(|a, b| a.0.cmp(b.0));
    Value::Object(
        sorted_pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

pub fn request_out(t: &GuestTopology) -> Value {
    let cells = t
        .cells
        .iter()
        .map(|c| {
            let mut pairs = vec![
                ("id", json!(c.id)),
                ("cpus", sorted(&c.cpuset)),
                ("pcpus", sorted(&c.pcpuset)),
                ("memory_mb", json!(c.memory_mb)),
                ("pagesize", pagesize_out(c.pagesize)),
                (
                    "cpu_policy",
                    c.cpu_policy.map_or(Value::Null, |p| json!(p.as_str())),
                ),
                (
                    "cpu_thread_policy",
                    c.cpu_thread_policy
                        .map_or(Value::Null, |p| json!(p.as_str())),
                ),
            ];
            if c.cpu_pinning.as_ref().is_some_and(|m| !m.is_empty()) {
                pairs.push(("cpu_pinning", pinning_out(&c.cpu_pinning)));
            }
            if let Some(r) = c.cpuset_reserved.as_ref().filter(|r| !r.is_empty()) {
                pairs.push(("cpuset_reserved", sorted(r)));
            }
            obj(pairs)
        })
        .collect::<Vec<_>>();
    obj(vec![
        ("cells", Value::Array(cells)),
        (
            "emulator_threads_policy",
            t.emulator_threads_policy
                .map_or(Value::Null, |p| json!(p.as_str())),
        ),
    ])
}

pub fn fitted_cells_out(t: &GuestTopology) -> Value {
    Value::Array(
        t.cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                obj(vec![
                    ("guest_cell", json!(i)),
                    ("host_cell", json!(c.id)),
                    ("cpus", sorted(&c.cpuset)),
                    ("pcpus", sorted(&c.pcpuset)),
                    ("memory_mb", json!(c.memory_mb)),
                    ("pagesize_kb", c.pagesize.map_or(Value::Null, |p| json!(p))),
                    ("cpu_pinning", pinning_out(&c.cpu_pinning)),
                    (
                        "cpuset_reserved",
                        c.cpuset_reserved
                            .as_ref()
                            .filter(|r| !r.is_empty())
                            .map_or(Value::Null, sorted),
                    ),
                    (
                        "cpu_policy",
                        c.cpu_policy.map_or(Value::Null, |p| json!(p.as_str())),
                    ),
                    (
                        "cpu_thread_policy",
                        c.cpu_thread_policy
                            .map_or(Value::Null, |p| json!(p.as_str())),
                    ),
                ])
            })
            .collect(),
    )
}

pub fn usage_out(h: &HostTopology) -> Value {
    Value::Array(
        h.cells
            .iter()
            .map(|c| {
                let pinned: Vec<u32> = c.pinned_cpus.iter().collect();
                obj(vec![
                    ("id", json!(c.id)),
                    ("cpu_usage", json!(c.cpu_usage)),
                    ("memory_usage_mb", json!(c.memory_usage_mb)),
                    ("pinned_cpus", json!(pinned)),
                    (
                        "mempages",
                        Value::Array(
                            c.mempages
                                .iter()
                                .map(|m| {
                                    obj(vec![
                                        ("size_kb", json!(m.size_kb)),
                                        ("used", json!(m.used)),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect(),
    )
}

fn error_out(e: &RequestError) -> Value {
    obj(vec![
        ("phase", json!(e.phase.as_str())),
        ("kind", json!(e.kind)),
        ("message", json!(e.message)),
    ])
}

/// A host's `pci_pools` list (`vendor_id`, `product_id`, `dev_type`,
/// `numa_node`, `count`); anything else than a list is no pools.
pub fn parse_pools(v: &Value) -> Result<Vec<PciPool>, RequestError> {
    let mut pools = Vec::new();
    for p in v.as_array().into_iter().flatten() {
        let field = |k: &str| {
            p.get(k).map(string).ok_or_else(|| RequestError {
                phase: Phase::Pci,
                kind: "KeyError",
                message: format!("'{k}'"),
            })
        };
        pools.push(PciPool {
            vendor_id: field("vendor_id")?,
            product_id: field("product_id")?,
            dev_type: p
                .get("dev_type")
                .map(string)
                .unwrap_or_else(|| "type-PCI".into()),
            numa_node: p.get("numa_node").and_then(Value::as_i64),
            count: int(p.get("count").unwrap_or(&Value::Null), "count").map_err(|e| {
                RequestError {
                    phase: Phase::Pci,
                    ..e
                }
            })?,
        });
    }
    Ok(pools)
}

fn pci_context(
    case: &Value,
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<(Option<Vec<PciPool>>, Vec<PciRequest>), RequestError> {
    let pools_v = case
        .get("host")
        .and_then(|h| h.get("pci_pools"))
        .filter(|v| !v.is_null());
    let reqs_v = case
        .get("pci_requests")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    if pools_v.is_none() && reqs_v.is_none() {
        return Ok((None, Vec::new()));
    }
    let pools = match pools_v {
        Some(v) => parse_pools(v)?,
        None => Vec::new(),
    };
    let mut requests = Vec::new();
    if let Some(reqs) = reqs_v {
        let affinity = pci_numa_policy(flavor, image)?;
        for r in reqs {
            let policy = affinity
                .clone()
                .or_else(|| {
                    r.get("numa_policy")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "legacy".into());
            if !PCI_POLICIES.contains(&policy.as_str()) {
                return Err(RequestError {
                    phase: Phase::Pci,
                    kind: "ValueError",
                    message: format!("Field value {policy} is invalid"),
                });
            }
            let spec = r
                .get("spec")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            s.as_object()
                                .map(|m| m.iter().map(|(k, v)| (k.clone(), string(v))).collect())
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            requests.push(PciRequest {
                count: int(r.get("count").unwrap_or(&Value::Null), "count")?,
                spec,
                numa_policy: policy,
            });
        }
    }
    Ok((Some(pools), requests))
}

/// A case turned into engine inputs.
pub struct Prepared {
    pub flavor: Flavor,
    pub image: ImageProps,
    pub host: HostTopology,
    pub limits: Option<Limits>,
    /// The guest topology, `None` when the request asks for none.
    pub request: Option<GuestTopology>,
    pub pci_pools: Option<Vec<PciPool>>,
    pub pci_requests: Vec<PciRequest>,
    pub pack: bool,
}

/// Parses a case and computes its guest topology (`numa_get_constraints`,
/// or the `instance` given directly), raising what Nova raises.
pub fn prepare(case: &Value) -> Result<Prepared, RequestError> {
    let has_instance = case.get("instance").is_some();
    let flavor = match case
        .get("flavor")
        .filter(|f| !(f.is_null() || has_instance && f.as_object().is_some_and(Map::is_empty)))
    {
        Some(f) => parse_flavor(f)?,
        None if has_instance => Flavor {
            name: "flavor".into(),
            vcpus: 0,
            memory_mb: 0,
            extra_specs: Vec::new(),
        },
        None => parse_flavor(&json!({}))?,
    };
    let host = parse_host(case.get("host").unwrap_or(&json!({})))?;
    let limits = parse_limits(case.get("limits"))?;
    let props: Vec<(String, String)> = match case.get("image_props") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), string(v))).collect(),
        _ => Vec::new(),
    };
    let image = ImageProps::from_pairs(&props)?;
    let request = if has_instance {
        parse_instance(&case["instance"])?
    } else {
        numa_get_constraints(&flavor, &image)?
    };
    let pack = case
        .get("config")
        .and_then(|c| c.get("packing_host_numa_cells_allocation_strategy"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Prepared {
        flavor,
        image,
        host,
        limits,
        request,
        pci_pools: None,
        pci_requests: Vec::new(),
        pack,
    })
}

impl Prepared {
    /// Reads the case's PCI pools and requests (phase `pci` errors).
    pub fn with_pci(mut self, case: &Value) -> Result<Prepared, RequestError> {
        let (pools, requests) = pci_context(case, &self.flavor, &self.image)?;
        self.pci_pools = pools;
        self.pci_requests = requests;
        Ok(self)
    }

    /// `numa_fit_instance_to_host` on the prepared inputs.
    pub fn fit(&self, mode: Mode) -> Result<Option<GuestTopology>, RequestError> {
        let Some(topo) = &self.request else {
            return Ok(None);
        };
        let pci = PciContext {
            pools: self.pci_pools.as_deref(),
            requests: &self.pci_requests,
        };
        fit_instance_to_host(
            &self.host,
            topo,
            self.limits.as_ref(),
            &pci,
            &FitOptions {
                mode,
                pack: self.pack,
                cell_memory: true,
            },
        )
        .map_err(|e| RequestError {
            phase: Phase::Fit,
            kind: e.kind,
            message: e.message,
        })
    }
}

/// Answers one case, in the result format of tests/data/fit-cases/FORMAT.md.
pub fn run_case(case: &Value, mode: Mode) -> Value {
    let id = case.get("id").cloned().unwrap_or(Value::Null);
    let mut res: Vec<(&str, Value)> = vec![
        ("id", id),
        ("error", Value::Null),
        ("request", Value::Null),
        ("fits", Value::Null),
        ("cells", Value::Null),
        ("usage_after", Value::Null),
    ];
    let set = |res: &mut Vec<(&str, Value)>, k: &str, v: Value| {
        if let Some(slot) = res.iter_mut().find(|(key, _)| *key == k) {
            slot.1 = v;
        }
    };
    let outcome = (|| -> Result<(), RequestError> {
        let prepared = prepare(case)?;
        let Some(topo) = &prepared.request else {
            return Ok(());
        };
        set(&mut res, "request", request_out(topo));
        let prepared = prepared.with_pci(case)?;
        let fitted = prepared.fit(mode)?;
        set(&mut res, "fits", json!(fitted.is_some()));
        if let Some(f) = fitted {
            set(&mut res, "cells", fitted_cells_out(&f));
            match usage_from_instance(&prepared.host, &f, false) {
                Ok(u) => set(&mut res, "usage_after", usage_out(&u)),
                Err(e) => res.push((
                    "usage_error",
                    obj(vec![("kind", json!(e.kind)), ("message", json!(e.message))]),
                )),
            }
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        set(&mut res, "error", error_out(&e));
    }
    obj(res)
}

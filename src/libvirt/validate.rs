//! Capture a host from libvirt, and check that libvirt does what numasim
//! predicts: each guest is fitted against the captured host, its domain XML
//! defined (and started on request), and what libvirt reports read back
//! and compared with the prediction, field by field. Every domain created
//! is removed at the end, also after a failure or an interruption.

use super::backend::{Backend, BackendError, Pinning, mismatches};
use super::xml::{DomainSpec, GuestTuning, domain_xml, tuning};
use crate::fit::search::PciContext;
use crate::fit::{FitOptions, apply_usage, fit_instance_to_host};
use crate::request::{GuestTopology, ImageProps, numa_get_constraints};
use crate::sim::memory::MemoryMode;
use crate::topology::Host;
use crate::workload::trace::{Catalog, TraceRow};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("libvirt's capabilities: {0}")]
    Capabilities(String),
}

/// The host libvirt describes, with the free memory and free pages it
/// reports per cell.
pub fn capture(backend: &mut dyn Backend, name: &str) -> Result<Host, ValidateError> {
    let caps = backend.capabilities()?;
    let mut host = crate::topology::import::libvirt::parse(name, &caps)
        .map_err(|e| ValidateError::Capabilities(e.to_string()))?;
    if host.cells.is_empty() || host.cells.iter().all(|c| c.cpus.is_empty()) {
        return Err(ValidateError::Capabilities(
            "no NUMA cells with CPUs (<topology><cells> is missing or empty)".into(),
        ));
    }
    let free = backend.free_state()?;
    for cell in &mut host.cells {
        cell.free_kb = free.memory_kb.get(&cell.id).copied();
        for pool in &mut cell.pages {
            if let Some(&n) = free.pages.get(&(cell.id, pool.size_kb)) {
                pool.free = Some(n);
            }
        }
    }
    Ok(host)
}

/// Options of a validation run.
#[derive(Debug, Clone)]
pub struct Options {
    pub limit: usize,
    pub mode: MemoryMode,
    pub fit_mode: crate::fit::Mode,
    /// Start the guests (else define only).
    pub start: bool,
    /// Start only guests pinned within these host CPUs and bound within
    /// these nodes (the real ones, under a fake sysfs); `None`: all.
    pub start_cpus: Option<Vec<u32>>,
    pub start_nodes: Option<Vec<u32>>,
    /// Write guest `<distances>` from the host SLIT (beyond Nova).
    pub guest_distances: bool,
    /// Prefix of the domain names (unique per run, so cleanup only touches ours).
    pub prefix: String,
}

/// One guest's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestReport {
    pub guest: String,
    pub flavor: String,
    pub domain: String,
    /// Host cells of the placement (empty when not placed).
    pub cells: Vec<i64>,
    /// `match`, `mismatch`, `refused` (libvirt said no), `no-fit`, `skipped`.
    pub outcome: &'static str,
    pub started: bool,
    pub details: Vec<String>,
}

impl GuestReport {
    pub fn failed(&self) -> bool {
        matches!(self.outcome, "mismatch" | "refused")
    }
}

/// What numasim predicts libvirt will report for a fitted guest: the
/// driver's tuning (`xml::tuning`, the same rules the XML is written
/// from) in the shape libvirt reports.
pub fn predict(spec: &DomainSpec, fitted: &GuestTopology) -> Pinning {
    let t = tuning(spec, fitted);
    let mode = spec.mode.as_str().to_string();
    Pinning {
        vcpupin: t.vcpupin,
        iothreadpin: t.emulatorpin.clone(),
        emulatorpin: t.emulatorpin,
        mode: mode.clone(),
        nodeset: t.nodeset,
        memnodes: t
            .memnodes
            .iter()
            .map(|&(cell, node)| (cell, (mode.clone(), vec![node])))
            .collect(),
        vcpusched: if t.vcpusched.is_empty() {
            Vec::new()
        } else {
            vec![(t.vcpusched, "fifo".into(), "1".into())]
        },
        shared_cells: if t.mem_access_shared {
            (0..fitted.cells.len() as u32).collect()
        } else {
            Vec::new()
        },
        locked: t.locked,
        nosharepages: t.nosharepages,
    }
}

/// Free hugepages per (cell, size) numasim expects once the guest runs.
fn expected_free_pages(
    before: &BTreeMap<(u32, u64), u64>,
    fitted: &GuestTopology,
) -> BTreeMap<(u32, u64), u64> {
    let mut after = before.clone();
    for c in &fitted.cells {
        if let Some(size) = c.pagesize.filter(|&s| s > 4) {
            let key = (c.id as u32, size as u64);
            let pages = (c.memory_mb as u64 * 1024).div_ceil(size as u64);
            if let Some(n) = after.get_mut(&key) {
                *n = n.saturating_sub(pages);
            }
        }
    }
    after
}

/// The domain type the host offers: `kvm` when its capabilities list it.
pub fn domain_type(capabilities: &str) -> &'static str {
    if capabilities.contains("<domain type='kvm'") || capabilities.contains("<domain type=\"kvm\"")
    {
        "kvm"
    } else {
        "qemu"
    }
}

/// Places the rows one by one on the captured host, defines (and starts)
/// each placed guest, compares, and removes every domain at the end.
/// `report` sees each guest as soon as it is done (partial results survive
/// a failure). Stops early, still cleaning up, when `interrupted` is set.
#[allow(clippy::too_many_arguments)]
pub fn validate(
    backend: &mut dyn Backend,
    host: &Host,
    catalog: &Catalog,
    rows: impl Iterator<Item = TraceRow>,
    opts: &Options,
    interrupted: &AtomicBool,
    report: &mut dyn FnMut(&GuestReport),
) -> Result<Vec<GuestReport>, ValidateError> {
    let caps = backend.capabilities()?;
    let kind = domain_type(&caps);
    let mut topo = crate::sim::fleet::topology_for_nova(host);
    // Hugepages someone else holds are not free for guests.
    for (cell, hc) in topo.cells.iter_mut().zip(&host.cells) {
        for pages in &mut cell.mempages {
            if pages.size_kb > 4
                && let Some(free) = hc
                    .pages
                    .iter()
                    .find(|p| p.size_kb as i64 == pages.size_kb)
                    .and_then(|p| p.free)
            {
                pages.used = (pages.total - free as i64).max(0);
            }
        }
    }
    let distances = host.distances.clone();
    let mut created: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut result = Ok(());
    for (i, row) in rows.take(opts.limit).enumerate() {
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        let flavor = &catalog.flavors[row.flavor];
        let domain = format!("{}-{i}", opts.prefix);
        let mut r = GuestReport {
            guest: row.id.clone(),
            flavor: flavor.name.clone(),
            domain: domain.clone(),
            cells: Vec::new(),
            outcome: "skipped",
            started: false,
            details: Vec::new(),
        };
        let request = ImageProps::from_pairs(&row.image_props).and_then(|image| {
            Ok((
                numa_get_constraints(flavor, &image)?,
                GuestTuning::of(flavor, &image)?,
            ))
        });
        let (request, guest) = match request {
            Ok((Some(t), guest)) => (t, guest),
            Ok((None, _)) => {
                r.details
                    .push("no NUMA topology: the driver pins nothing".into());
                report(&r);
                out.push(r);
                continue;
            }
            Err(e) => {
                r.details.push(format!("invalid request: {e}"));
                report(&r);
                out.push(r);
                continue;
            }
        };
        let fit = FitOptions {
            mode: opts.fit_mode,
            ..Default::default()
        };
        let fitted = match fit_instance_to_host(&topo, &request, None, &PciContext::default(), &fit)
        {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => {
                r.outcome = "no-fit";
                r.details
                    .push("the fit engine finds no cells on this host (not sent)".into());
                report(&r);
                out.push(r);
                continue;
            }
        };
        r.cells = fitted.cells.iter().map(|c| c.id).collect();
        let spec = DomainSpec {
            name: &domain,
            memory_mb: flavor.memory_mb,
            host: &topo,
            distances: Some(distances.as_slice()).filter(|d| d.len() == topo.cells.len()),
            mode: opts.mode,
            domain_type: kind,
            guest: &guest,
            guest_distances: opts.guest_distances,
        };
        let predicted = predict(&spec, &fitted);
        let step = check_guest(
            backend,
            &domain,
            &domain_xml(&spec, &fitted),
            &predicted,
            &fitted,
            opts,
            &mut created,
            &mut r,
        );
        if let Err(e) = step {
            r.outcome = "refused";
            r.details.push(e.to_string());
        } else if r.outcome != "mismatch" {
            r.outcome = "match";
        }
        // The guest holds its cells for the next ones, as on the real host.
        if let Err(e) = apply_usage(&mut topo, &fitted, false) {
            r.details.push(format!("numasim's accounting: {e}"));
        }
        report(&r);
        out.push(r);
        if let Err(e) = check_connection(backend) {
            result = Err(e);
            break;
        }
    }
    // Clean up whatever happened above.
    let mut cleanup_errors = Vec::new();
    for name in &created {
        if let Err(e) = backend.remove(name) {
            cleanup_errors.push(e);
        }
    }
    result?;
    if let Some(e) = cleanup_errors.into_iter().next() {
        return Err(e.into());
    }
    Ok(out)
}

/// A connection that stopped answering ends the run (the domains are still
/// removed as far as possible).
fn check_connection(backend: &mut dyn Backend) -> Result<(), ValidateError> {
    backend.free_state().map(drop).map_err(Into::into)
}

#[allow(clippy::too_many_arguments)]
fn check_guest(
    backend: &mut dyn Backend,
    domain: &str,
    xml: &str,
    predicted: &Pinning,
    fitted: &GuestTopology,
    opts: &Options,
    created: &mut Vec<String>,
    r: &mut GuestReport,
) -> Result<(), BackendError> {
    backend.define(domain, xml)?;
    created.push(domain.to_string());
    let defined = backend.read_back(domain)?;
    let diff = mismatches(predicted, &defined);
    if !diff.is_empty() {
        r.outcome = "mismatch";
        r.details
            .extend(diff.into_iter().map(|d| format!("defined: {d}")));
    }
    let within = |set: &Option<Vec<u32>>, items: Vec<u32>| {
        set.as_ref()
            .is_none_or(|s| items.iter().all(|c| s.contains(c)))
    };
    let pinned: Vec<u32> = predicted
        .vcpupin
        .values()
        .flatten()
        .chain(&predicted.emulatorpin)
        .copied()
        .collect();
    let startable = opts.start
        && within(&opts.start_cpus, pinned)
        && within(&opts.start_nodes, predicted.nodeset.clone());
    if !startable {
        return Ok(());
    }
    let before = backend.free_state()?;
    backend.start(domain)?;
    r.started = true;
    let live = backend.read_back(domain)?;
    let diff = mismatches(predicted, &live);
    let affinity = backend.live_affinity(domain)?;
    let mut details: Vec<String> = diff.into_iter().map(|d| format!("running: {d}")).collect();
    for (v, cpus) in &predicted.vcpupin {
        let got = affinity.get(v);
        if got != Some(cpus) {
            details.push(format!(
                "vCPU {v} thread affinity: predicted {}, the kernel has {}",
                crate::topology::format_cpu_list(cpus),
                got.map_or("none".into(), |c| crate::topology::format_cpu_list(c))
            ));
        }
    }
    let after = backend.free_state()?;
    let expected = expected_free_pages(&before.pages, fitted);
    if fitted
        .cells
        .iter()
        .any(|c| c.pagesize.is_some_and(|s| s > 4))
    {
        for (key, want) in &expected {
            let got = after.pages.get(key).copied().unwrap_or(0);
            if key.1 > 4 && got != *want {
                details.push(format!(
                    "free {} KiB pages on cell {}: predicted {want}, libvirt reports {got}",
                    key.1, key.0
                ));
            }
        }
    }
    if !details.is_empty() {
        r.outcome = "mismatch";
        r.details.extend(details);
    }
    Ok(())
}

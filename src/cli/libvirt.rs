//! `numasim libvirt`: capture, validate, xml.

use super::*;

/// The backend a `--connect` names: `sim:CAPS.xml` needs no libvirt.
pub(super) fn libvirt_backend(
    connect: &str,
) -> Result<Box<dyn numasim::libvirt::backend::Backend>> {
    use numasim::libvirt::backend::SimBackend;
    if let Some(path) = connect.strip_prefix("sim:") {
        let capabilities = numasim::input::read_text(path)
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

pub(super) fn libvirt_capture(connect: &str, output: &std::path::Path) -> Result<i32> {
    let mut backend = libvirt_backend(connect)?;
    let name = output
        .file_stem()
        .map_or("host".into(), |s| s.to_string_lossy().into_owned());
    let host = numasim::libvirt::validate::capture(backend.as_mut(), &name)
        .map_err(|e| anyhow::anyhow!("{connect}: {e}"))?;
    write_atomically(output, wire::to_json(&host).as_bytes())?;
    outln!(
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
pub(super) struct ValidateArgs {
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
    /// Also give the guest cells `<distances>` from the host's SLIT
    /// (beyond Nova, whose driver writes none).
    #[arg(long)]
    guest_distances: bool,
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(super) fn libvirt_validate(a: ValidateArgs) -> Result<i32> {
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
        use numasim::workload::trace::{FileError, open_catalog, open_trace};
        let catalog = open_catalog(flavors)?;
        let reader = open_trace(&a.input, &catalog, false)?;
        let mut rows = Vec::new();
        for row in reader.take(a.limit) {
            rows.push(row.map_err(|e| FileError::row(&a.input, e))?);
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
            let row = row.map_err(|e| numasim::workload::trace::FileError::row(&a.input, e))?;
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
        guest_distances: a.guest_distances,
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
    let mut stdout_error: Option<std::io::Error> = None;
    let mut show = |r: &validate::GuestReport| {
        use std::io::Write as _;
        let cells = format!("{:?}", r.cells);
        let printed = writeln!(
            std::io::stdout(),
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
        if let Err(e) = printed {
            stdout_error.get_or_insert(e);
        }
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
    if let Some(e) = stdout_error {
        anyhow::bail!("stdout: {e}");
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
    outln!(
        "{}: {checked} guests defined ({started} started), {failed} mismatched or refused, {} not placed or skipped",
        a.connect,
        reports.len() - checked
    );
    Ok(if failed > 0 { 1 } else { 0 })
}

/// What `libvirt xml` was asked.
pub(super) struct XmlRequest {
    pub cases: PathBuf,
    pub case: Option<String>,
    pub memory_mode: numasim::sim::memory::MemoryMode,
    pub mode: numasim::fit::Mode,
    pub name: String,
    pub guest_distances: bool,
    pub placement: String,
    pub numatune: Option<String>,
}

pub(super) fn libvirt_xml(a: XmlRequest) -> Result<i32> {
    let XmlRequest {
        cases,
        case,
        memory_mode,
        mode,
        name,
        guest_distances,
        placement,
        numatune,
    } = a;
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
    if placement != "nova" {
        return policy_xml(
            &v,
            &where_,
            prepared,
            &name,
            memory_mode,
            guest_distances,
            &placement,
            numatune.as_deref(),
        );
    }
    if numatune.is_some() {
        anyhow::bail!("--numatune goes with --placement manual");
    }
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
    let distances = case_distances(&v, &prepared.host);
    let guest = numasim::libvirt::xml::GuestTuning::of(&prepared.flavor, &prepared.image)
        .map_err(|e| anyhow::anyhow!("{where_}: {} {}: {}", e.phase.as_str(), e.kind, e.message))?;
    let spec = numasim::libvirt::xml::DomainSpec {
        guest: &guest,
        guest_distances,
        name: &name,
        memory_mb: fitted.cells.iter().map(|c| c.memory_mb).sum(),
        host: &prepared.host,
        distances: distances
            .as_deref()
            .filter(|d| d.len() == prepared.host.cells.len()),
        mode: memory_mode,
        domain_type: "kvm",
    };
    out!("{}", numasim::libvirt::xml::domain_xml(&spec, &fitted));
    Ok(0)
}

/// The case's SLIT, when it has one row of one distance per host cell.
fn case_distances(
    v: &serde_json::Value,
    host: &numasim::fit::HostTopology,
) -> Option<Vec<Vec<u32>>> {
    let n = host.cells.len();
    let rows: Vec<Vec<u32>> = v["host"]["distances"]
        .as_array()?
        .iter()
        .map(|r| {
            r.as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.as_u64().and_then(|d| u32::try_from(d).ok()))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    (rows.len() == n && rows.iter().all(|r| r.len() == n)).then_some(rows)
}

/// `libvirt xml --placement NAME`: the case's guest placed on its host by
/// that policy, and the XML libvirt needs for the binding.
#[allow(clippy::too_many_arguments)]
fn policy_xml(
    v: &serde_json::Value,
    where_: &str,
    prepared: numasim::fit::case::Prepared,
    name: &str,
    memory_mode: numasim::sim::memory::MemoryMode,
    guest_distances: bool,
    placement: &str,
    numatune: Option<&str>,
) -> Result<i32> {
    use numasim::libvirt::{placement, xml};
    match (placement, numatune) {
        ("manual", None) => anyhow::bail!("--placement manual needs --numatune NODESET[:MODE]"),
        (other, Some(_)) if other != "manual" => {
            anyhow::bail!("--numatune goes with --placement manual")
        }
        _ => {}
    }
    let tuning = numatune
        .map(|t| {
            let (set, mode) = t.split_once(':').unwrap_or((t, "strict"));
            let nodeset = numasim::topology::parse_cpu_list(set)
                .ok()
                .filter(|l| !l.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!("--numatune `{t}`: `{set}` is not a node list such as 0-1")
                })?;
            let mode = keyword::<numasim::sim::memory::MemoryMode>(mode)
                .map_err(|e| anyhow::anyhow!("--numatune `{t}`: mode `{mode}`: {e}"))?;
            Ok::<_, anyhow::Error>(numasim::sim::ManualTuning {
                nodeset: nodeset.into_iter().map(i64::from).collect(),
                mode,
            })
        })
        .transpose()?;
    let params = numasim::sim::policy::PolicyParams {
        numatunes: tuning.map(|t| vec![Some(t)]).unwrap_or_default(),
        rebalancing: Default::default(),
        memory_mode: Some(memory_mode),
    };
    let policy = numasim::sim::policy::Registry::builtin()
        .build(placement, &params)
        .map_err(|e| anyhow::anyhow!("--placement: {e}"))?;
    let distances = case_distances(v, &prepared.host);
    let guest = xml::GuestTuning::of(&prepared.flavor, &prepared.image)
        .map_err(|e| anyhow::anyhow!("{where_}: {} {}: {}", e.phase.as_str(), e.kind, e.message))?;
    let image_props = match v.get("image_props") {
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, x)| {
                (
                    k.clone(),
                    x.as_str().map_or_else(|| x.to_string(), str::to_string),
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    let memory_mb = prepared.flavor.memory_mb;
    let placed = placement::place(placement::OneGuest {
        host: prepared.host.clone(),
        distances: distances.clone(),
        limits: prepared.limits.clone(),
        flavor: prepared.flavor.clone(),
        image_props,
        policy,
        memory_mode,
    })
    .map_err(|e| anyhow::anyhow!("{where_}: {e}"))?;
    let Some(placed) = placed else {
        eprintln!("{where_}: `{placement}` does not place the guest on this host");
        return Ok(1);
    };
    let spec = xml::DomainSpec {
        guest: &guest,
        guest_distances,
        name,
        memory_mb,
        host: &prepared.host,
        distances: distances.as_deref(),
        mode: memory_mode,
        domain_type: "kvm",
    };
    out!("{}", xml::binding_xml(&spec, &placed));
    Ok(0)
}

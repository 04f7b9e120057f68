//! The libvirt boundary: what numasim asks of a host (capabilities, free
//! memory and pages per cell, define / start / read back / remove a
//! domain), behind one trait. `SimBackend` answers from a host value and
//! echoes the domains it is given, with no libvirt at all; `virsh::Virsh`
//! asks a real libvirt through `virsh`.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// libvirt refused or failed; `message` is libvirt's own.
    #[error("{action}: {message}")]
    Libvirt { action: String, message: String },
    /// What libvirt said could not be read.
    #[error("{what}: cannot read libvirt's answer: {detail}")]
    Parse { what: String, detail: String },
}

/// What a domain's placement looks like, as libvirt reports it (or as
/// numasim predicts it): the same shape on both sides, compared field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pinning {
    /// vCPU -> host CPUs it may run on.
    pub vcpupin: BTreeMap<u32, Vec<u32>>,
    pub emulatorpin: Vec<u32>,
    /// `<numatune><memory mode nodeset>`.
    pub mode: String,
    pub nodeset: Vec<u32>,
    /// guest cell -> (mode, host nodes).
    pub memnodes: BTreeMap<u32, (String, Vec<u32>)>,
    /// The one I/O thread's CPUs.
    pub iothreadpin: Vec<u32>,
    /// `<vcpusched>`: (vCPUs, scheduler, priority).
    pub vcpusched: Vec<(Vec<u32>, String, String)>,
    /// Guest cells with `memAccess='shared'`.
    pub shared_cells: Vec<u32>,
    /// `<memoryBacking>`: `<locked/>`, `<nosharepages/>`.
    pub locked: bool,
    pub nosharepages: bool,
}

/// Free memory (KiB) and free pages (size KiB -> count) per host cell id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreeState {
    pub memory_kb: BTreeMap<u32, u64>,
    pub pages: BTreeMap<(u32, u64), u64>,
}

pub trait Backend {
    /// `virConnectGetCapabilities`: the host's capabilities XML.
    fn capabilities(&mut self) -> Result<String, BackendError>;
    /// `virNodeGetCellsFreeMemory` and `virNodeGetFreePages`.
    fn free_state(&mut self) -> Result<FreeState, BackendError>;
    fn define(&mut self, name: &str, xml: &str) -> Result<(), BackendError>;
    fn start(&mut self, name: &str) -> Result<(), BackendError>;
    /// The pinning and numatune libvirt reports for a defined (or running) domain.
    fn read_back(&mut self, name: &str) -> Result<Pinning, BackendError>;
    /// For a running domain, the CPU affinity its vCPU threads really have.
    fn live_affinity(&mut self, name: &str) -> Result<BTreeMap<u32, Vec<u32>>, BackendError>;
    /// Destroys (if running) and undefines the domain.
    fn remove(&mut self, name: &str) -> Result<(), BackendError>;
}

/// Reads the pinning and numatune of a domain XML (`dumpxml`'s or ours).
pub fn pinning_of(xml: &str) -> Result<Pinning, BackendError> {
    let bad = |detail: String| BackendError::Parse {
        what: "domain XML".into(),
        detail,
    };
    let doc = roxmltree::Document::parse(xml).map_err(|e| bad(e.to_string()))?;
    let list = |s: Option<&str>| -> Result<Vec<u32>, BackendError> {
        match s {
            None => Ok(Vec::new()),
            Some(s) => {
                crate::topology::parse_cpu_list(s).map_err(|e| bad(format!("CPU list `{s}`: {e}")))
            }
        }
    };
    let mut p = Pinning::default();
    for n in doc.descendants().filter(|n| n.is_element()) {
        match n.tag_name().name() {
            "vcpupin" => {
                let v: u32 = n
                    .attribute("vcpu")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("vcpupin without a vcpu number".into()))?;
                p.vcpupin.insert(v, list(n.attribute("cpuset"))?);
            }
            "emulatorpin" => p.emulatorpin = list(n.attribute("cpuset"))?,
            "iothreadpin" => p.iothreadpin = list(n.attribute("cpuset"))?,
            "vcpusched" => p.vcpusched.push((
                list(n.attribute("vcpus"))?,
                n.attribute("scheduler").unwrap_or_default().to_string(),
                n.attribute("priority").unwrap_or_default().to_string(),
            )),
            "cell" if n.attribute("memAccess") == Some("shared") => {
                let id = n
                    .attribute("id")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("guest cell without an id".into()))?;
                p.shared_cells.push(id);
            }
            "locked" => p.locked = true,
            "nosharepages" => p.nosharepages = true,
            "memory" if n.parent().is_some_and(|x| x.has_tag_name("numatune")) => {
                p.mode = n.attribute("mode").unwrap_or("strict").to_string();
                p.nodeset = list(n.attribute("nodeset"))?;
            }
            "memnode" => {
                let cell: u32 = n
                    .attribute("cellid")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("memnode without a cellid".into()))?;
                p.memnodes.insert(
                    cell,
                    (
                        n.attribute("mode").unwrap_or("strict").to_string(),
                        list(n.attribute("nodeset"))?,
                    ),
                );
            }
            _ => {}
        }
    }
    Ok(p)
}

/// Every difference between a prediction and what libvirt reports, in words.
pub fn mismatches(predicted: &Pinning, reported: &Pinning) -> Vec<String> {
    let fmt = |v: &[u32]| crate::topology::format_cpu_list(v);
    let mut out = Vec::new();
    let vcpus: std::collections::BTreeSet<u32> = predicted
        .vcpupin
        .keys()
        .chain(reported.vcpupin.keys())
        .copied()
        .collect();
    for v in vcpus {
        let (a, b) = (predicted.vcpupin.get(&v), reported.vcpupin.get(&v));
        if a != b {
            out.push(format!(
                "vcpupin {v}: predicted {}, libvirt has {}",
                a.map_or("none".into(), |x| fmt(x)),
                b.map_or("none".into(), |x| fmt(x))
            ));
        }
    }
    for (what, a, b) in [
        ("emulatorpin", &predicted.emulatorpin, &reported.emulatorpin),
        ("iothreadpin", &predicted.iothreadpin, &reported.iothreadpin),
    ] {
        if a != b {
            out.push(format!(
                "{what}: predicted {}, libvirt has {}",
                fmt(a),
                fmt(b)
            ));
        }
    }
    if predicted.vcpusched != reported.vcpusched {
        let show = |v: &[(Vec<u32>, String, String)]| {
            let all: Vec<String> = v
                .iter()
                .map(|(cpus, s, p)| format!("{} {s} {p}", fmt(cpus)))
                .collect();
            if all.is_empty() {
                "none".to_string()
            } else {
                all.join("; ")
            }
        };
        out.push(format!(
            "vcpusched: predicted {}, libvirt has {}",
            show(&predicted.vcpusched),
            show(&reported.vcpusched)
        ));
    }
    if predicted.shared_cells != reported.shared_cells {
        out.push(format!(
            "guest cells with memAccess='shared': predicted {:?}, libvirt has {:?}",
            predicted.shared_cells, reported.shared_cells
        ));
    }
    for (what, a, b) in [
        ("locked memory", predicted.locked, reported.locked),
        (
            "nosharepages",
            predicted.nosharepages,
            reported.nosharepages,
        ),
    ] {
        if a != b {
            out.push(format!("{what}: predicted {a}, libvirt has {b}"));
        }
    }
    if predicted.mode != reported.mode || predicted.nodeset != reported.nodeset {
        out.push(format!(
            "numatune memory: predicted {} {}, libvirt has {} {}",
            predicted.mode,
            fmt(&predicted.nodeset),
            reported.mode,
            fmt(&reported.nodeset)
        ));
    }
    if predicted.memnodes != reported.memnodes {
        let show = |m: &BTreeMap<u32, (String, Vec<u32>)>| {
            m.iter()
                .map(|(c, (mode, n))| format!("cell {c} {mode} {}", fmt(n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "memnodes: predicted [{}], libvirt has [{}]",
            show(&predicted.memnodes),
            show(&reported.memnodes)
        ));
    }
    out
}

/// The hugepages (host node, size KiB) -> count a domain XML asks for:
/// each `<page size nodeset>` guest cell's memory, on the host node its
/// `<memnode>` binds it to.
pub fn hugepages_of(xml: &str) -> Result<BTreeMap<(u32, u64), u64>, BackendError> {
    let bad = |detail: String| BackendError::Parse {
        what: "domain XML".into(),
        detail,
    };
    let doc = roxmltree::Document::parse(xml).map_err(|e| bad(e.to_string()))?;
    let pinning = pinning_of(xml)?;
    let mut cell_kb: BTreeMap<u32, u64> = BTreeMap::new();
    for c in doc.descendants().filter(|n| n.has_tag_name("cell")) {
        let (Some(id), Some(mem)) = (
            c.attribute("id").and_then(|v| v.parse::<u32>().ok()),
            c.attribute("memory").and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let kb = match c.attribute("unit").unwrap_or("KiB") {
            "MiB" => mem * 1024,
            "GiB" => mem * 1024 * 1024,
            _ => mem,
        };
        cell_kb.insert(id, kb);
    }
    let mut out = BTreeMap::new();
    for page in doc.descendants().filter(|n| n.has_tag_name("page")) {
        let size: u64 = page
            .attribute("size")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("hugepage without a size".into()))?;
        let cells = crate::topology::parse_cpu_list(page.attribute("nodeset").unwrap_or(""))
            .map_err(|e| bad(format!("hugepage nodeset: {e}")))?;
        for cell in cells {
            let node = pinning
                .memnodes
                .get(&cell)
                .and_then(|(_, n)| n.first().copied())
                .ok_or_else(|| bad(format!("guest cell {cell} has no memnode")))?;
            let kb = cell_kb.get(&cell).copied().unwrap_or(0);
            *out.entry((node, size)).or_default() += kb.div_ceil(size);
        }
    }
    Ok(out)
}

/// A host without libvirt: capabilities and free state given, domains
/// echoed back as defined. Validation against it checks numasim's XML
/// against numasim's own prediction (the default, and the tests' backend).
pub struct SimBackend {
    pub capabilities: String,
    pub free: FreeState,
    pub domains: BTreeMap<String, (String, bool)>,
}

impl Backend for SimBackend {
    fn capabilities(&mut self) -> Result<String, BackendError> {
        Ok(self.capabilities.clone())
    }
    fn free_state(&mut self) -> Result<FreeState, BackendError> {
        Ok(self.free.clone())
    }
    fn define(&mut self, name: &str, xml: &str) -> Result<(), BackendError> {
        pinning_of(xml)?;
        self.domains.insert(name.into(), (xml.into(), false));
        Ok(())
    }
    fn start(&mut self, name: &str) -> Result<(), BackendError> {
        match self.domains.get_mut(name) {
            Some(d) if !d.1 => {
                d.1 = true;
                // A running guest holds its hugepages, as the kernel would.
                for ((node, size), pages) in hugepages_of(&d.0)? {
                    let free = self.free.pages.entry((node, size)).or_default();
                    *free = free.saturating_sub(pages);
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(BackendError::Libvirt {
                action: format!("start {name}"),
                message: format!("Domain not found: no domain with matching name '{name}'"),
            }),
        }
    }
    fn read_back(&mut self, name: &str) -> Result<Pinning, BackendError> {
        match self.domains.get(name) {
            Some((xml, _)) => pinning_of(xml),
            None => Err(BackendError::Libvirt {
                action: format!("dumpxml {name}"),
                message: format!("Domain not found: no domain with matching name '{name}'"),
            }),
        }
    }
    fn live_affinity(&mut self, name: &str) -> Result<BTreeMap<u32, Vec<u32>>, BackendError> {
        Ok(self.read_back(name)?.vcpupin)
    }
    fn remove(&mut self, name: &str) -> Result<(), BackendError> {
        self.domains.remove(name);
        Ok(())
    }
}

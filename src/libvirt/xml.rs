//! Domain XML for a fitted guest, as Nova's libvirt driver
//! (`LibvirtDriver._get_guest_config`, Nova 34) writes its NUMA and CPU
//! parts: `<memoryBacking>` (hugepages per guest cell, `<nosharepages/>`
//! and `<locked/>`), `<numatune>` with one `<memnode>` per guest cell,
//! `<vcpu>`, `<iothreads>`, `<cputune>` (`<emulatorpin>`, `<iothreadpin>`,
//! one `<vcpupin>` per vCPU, `<vcpusched>` for realtime vCPUs) and
//! `<cpu><numa>` cells with `memAccess`. What the driver derives from the
//! placement is computed once (`tuning`) and used both for the XML and for
//! what `validate` expects libvirt to report.
//!
//! Beyond Nova, on request only: guest `<distances>` from the host's SLIT
//! (`DomainSpec::guest_distances`). Nova writes none, so its guests see
//! libvirt's default distances.

use crate::fit::HostTopology;
use crate::request::GuestTopology;
use crate::request::{EmulatorPolicy, Flavor, ImageProps, RequestError};
use crate::sim::binding::Binding;
use crate::sim::memory::MemoryMode;
use crate::topology::format_cpu_list;
use quick_xml::Writer;
use quick_xml::events::BytesText;
use std::collections::{BTreeMap, BTreeSet};
use std::io;

/// What the driver reads from the flavor and image besides the fitted
/// topology.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestTuning {
    /// Realtime vCPUs (`hw:cpu_realtime` and its mask).
    pub realtime_vcpus: Option<BTreeSet<u32>>,
    /// `hw:locked_memory`.
    pub locked_memory: bool,
}

impl GuestTuning {
    pub fn of(flavor: &Flavor, image: &ImageProps) -> Result<GuestTuning, RequestError> {
        Ok(GuestTuning {
            realtime_vcpus: crate::request::realtime_constraint(flavor, image)?,
            locked_memory: crate::request::locked_memory_constraint(flavor, image)? == Some(true),
        })
    }
}

/// What the XML needs besides the fitted topology.
pub struct DomainSpec<'a> {
    pub name: &'a str,
    pub memory_mb: i64,
    pub host: &'a HostTopology,
    /// SLIT by host cell position (`None`: 10 local / 20 remote); written
    /// only with `guest_distances`.
    pub distances: Option<&'a [Vec<u32>]>,
    pub mode: MemoryMode,
    /// `kvm`, or `qemu` (TCG) where the host has no KVM.
    pub domain_type: &'a str,
    pub guest: &'a GuestTuning,
    /// Write guest `<distances>` from the host SLIT (beyond Nova).
    pub guest_distances: bool,
}

/// The host's `[compute] cpu_shared_set`, as Nova's driver sees it: the
/// union of the cells' shared CPUs when the host separates shared from
/// dedicated CPUs; `None` when it does not (every CPU in both sets) or
/// when only `cpu_dedicated_set` is given (no shared CPUs).
pub fn cpu_shared_set(host: &HostTopology) -> Option<Vec<u32>> {
    let split = host
        .cells
        .iter()
        .any(|c| c.cpuset().iter().collect::<BTreeSet<_>>() != c.pcpuset().iter().collect());
    let all: BTreeSet<u32> = host.cells.iter().flat_map(|c| c.cpuset().iter()).collect();
    (split && !all.is_empty()).then(|| all.into_iter().collect())
}

/// What the driver derives from a placement: pinning, scheduling, memory
/// binding and backing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tuning {
    /// Host CPUs per vCPU.
    pub vcpupin: BTreeMap<u32, Vec<u32>>,
    /// Emulator threads' CPUs; the one I/O thread is pinned with them.
    pub emulatorpin: Vec<u32>,
    /// Realtime vCPUs, scheduled `fifo` at priority 1.
    pub vcpusched: Vec<u32>,
    /// Host nodes of the guest's memory, and per guest cell its node.
    pub nodeset: Vec<u32>,
    pub memnodes: Vec<(u32, u32)>,
    /// Huge pages per guest cell: (cell, page size KiB).
    pub pages: Vec<(u32, i64)>,
    /// Guest cells' memory shared (file-backed huge pages a vhost-user
    /// backend can map): set when the guest uses a large page size.
    pub mem_access_shared: bool,
    pub locked: bool,
    pub nosharepages: bool,
}

/// The driver's rules (`_get_guest_numa_config`, `_get_emulatorpin_cpuset`,
/// `_wants_hugepages`, `_get_guest_memory_backing_config`).
pub fn tuning(spec: &DomainSpec, fitted: &GuestTopology) -> Tuning {
    let host_cell = |id: i64| spec.host.cells.iter().find(|c| c.id == id);
    let rt = spec.guest.realtime_vcpus.as_ref();
    let shared_set = cpu_shared_set(spec.host);
    let mut t = Tuning::default();
    let mut emulator = BTreeSet::new();
    for (i, c) in fitted.cells.iter().enumerate() {
        let shared: Vec<u32> = host_cell(c.id)
            .map(|h| h.cpuset().iter().collect())
            .unwrap_or_default();
        let vcpus: BTreeSet<u32> = c.cpuset.iter().chain(&c.pcpuset).copied().collect();
        for v in vcpus {
            // A vCPU without a pinned CPU (shared, or dedicated but left
            // unpinned by the fit) floats over its host cell's shared CPUs.
            let pin = match c.cpu_pinning.as_ref().and_then(|m| m.get(&v)) {
                Some(&p) => vec![p],
                None => shared.clone(),
            };
            match fitted.emulator_threads_policy {
                Some(EmulatorPolicy::Isolate) => {
                    emulator.extend(c.cpuset_reserved.iter().flatten().copied());
                }
                Some(EmulatorPolicy::Share) if shared_set.is_some() => {
                    emulator.extend(shared_set.iter().flatten().copied());
                }
                _ if rt.is_none_or(|rt| !rt.contains(&v)) => emulator.extend(&pin),
                _ => {}
            }
            t.vcpupin.insert(v, pin);
        }
        t.nodeset.push(c.id as u32);
        t.memnodes.push((i as u32, c.id as u32));
    }
    t.emulatorpin = emulator.into_iter().collect();
    t.nodeset.sort_unstable();
    t.nodeset.dedup();
    t.vcpusched = rt.map(|r| r.iter().copied().collect()).unwrap_or_default();
    // Page sizes of host cell 0, the smallest first: the smallest is not a
    // large page.
    let mut sizes: Vec<i64> = spec
        .host
        .cells
        .first()
        .map(|c| c.mempages.iter().map(|p| p.size_kb).collect())
        .unwrap_or_default();
    sizes.sort_unstable();
    let smallest = sizes.first().copied();
    for (i, c) in fitted.cells.iter().enumerate() {
        if let (Some(p), Some(small)) = (c.pagesize, smallest)
            && p > small
        {
            t.pages.push((i as u32, p));
        }
    }
    t.mem_access_shared = fitted.cells.iter().any(|c| {
        c.pagesize
            .is_some_and(|p| sizes.iter().skip(1).any(|&s| s == p))
    });
    t.nosharepages = rt.is_some();
    t.locked = rt.is_some() || spec.guest.locked_memory;
    t
}

/// The domain XML of a guest placed as `fitted` says.
pub fn domain_xml(spec: &DomainSpec, fitted: &GuestTopology) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into memory cannot fail.
    write_domain(&mut w, spec, fitted).expect("writing XML into memory");
    let mut text = String::from_utf8(w.into_inner()).expect("XML written from UTF-8 strings");
    text.push('\n');
    text
}

fn write_domain(
    w: &mut Writer<Vec<u8>>,
    spec: &DomainSpec,
    fitted: &GuestTopology,
) -> io::Result<()> {
    let t = tuning(spec, fitted);
    let list = |cpus: &[u32]| format_cpu_list(cpus);
    let vcpus: usize = fitted
        .cells
        .iter()
        .map(|c| c.cpuset.len() + c.pcpuset.len())
        .sum();
    let mode = spec.mode.as_str();
    w.create_element("domain")
        .with_attribute(("type", spec.domain_type))
        .write_inner_content(|w| {
            write_head(w, spec)?;
            if !t.pages.is_empty() || t.locked || t.nosharepages {
                w.create_element("memoryBacking").write_inner_content(|w| {
                    if !t.pages.is_empty() {
                        w.create_element("hugepages").write_inner_content(|w| {
                            for (cell, size) in &t.pages {
                                w.create_element("page")
                                    .with_attribute(("size", size.to_string().as_str()))
                                    .with_attribute(("unit", "KiB"))
                                    .with_attribute(("nodeset", cell.to_string().as_str()))
                                    .write_empty()?;
                            }
                            Ok(())
                        })?;
                    }
                    if t.nosharepages {
                        w.create_element("nosharepages").write_empty()?;
                    }
                    if t.locked {
                        w.create_element("locked").write_empty()?;
                    }
                    Ok(())
                })?;
            }
            w.create_element("numatune").write_inner_content(|w| {
                w.create_element("memory")
                    .with_attribute(("mode", mode))
                    .with_attribute(("nodeset", list(&t.nodeset).as_str()))
                    .write_empty()?;
                for (cell, node) in &t.memnodes {
                    w.create_element("memnode")
                        .with_attribute(("cellid", cell.to_string().as_str()))
                        .with_attribute(("mode", mode))
                        .with_attribute(("nodeset", node.to_string().as_str()))
                        .write_empty()?;
                }
                Ok(())
            })?;
            text(w, "vcpu", &vcpus.to_string())?;
            write_os(w)?;
            text(w, "iothreads", "1")?;
            w.create_element("cputune").write_inner_content(|w| {
                if !t.emulatorpin.is_empty() {
                    let set = list(&t.emulatorpin);
                    w.create_element("emulatorpin")
                        .with_attribute(("cpuset", set.as_str()))
                        .write_empty()?;
                    w.create_element("iothreadpin")
                        .with_attribute(("iothread", "1"))
                        .with_attribute(("cpuset", set.as_str()))
                        .write_empty()?;
                }
                for (v, set) in &t.vcpupin {
                    w.create_element("vcpupin")
                        .with_attribute(("vcpu", v.to_string().as_str()))
                        .with_attribute(("cpuset", list(set).as_str()))
                        .write_empty()?;
                }
                if !t.vcpusched.is_empty() {
                    w.create_element("vcpusched")
                        .with_attribute(("vcpus", list(&t.vcpusched).as_str()))
                        .with_attribute(("scheduler", "fifo"))
                        .with_attribute(("priority", "1"))
                        .write_empty()?;
                }
                Ok(())
            })?;
            w.create_element("cpu").write_inner_content(|w| {
                w.create_element("numa").write_inner_content(|w| {
                    for (i, c) in fitted.cells.iter().enumerate() {
                        write_cell(w, spec, fitted, &t, i, c)?;
                    }
                    Ok(())
                })?;
                Ok(())
            })?;
            write_tail(w)
        })?;
    Ok(())
}

/// `<name>` and `<memory>` (KiB, as Nova writes it).
fn write_head(w: &mut Writer<Vec<u8>>, spec: &DomainSpec) -> io::Result<()> {
    text(w, "name", spec.name)?;
    text(w, "memory", &(spec.memory_mb * 1024).to_string())
}

fn write_os(w: &mut Writer<Vec<u8>>) -> io::Result<()> {
    w.create_element("os").write_inner_content(|w| {
        w.create_element("type")
            .with_attribute(("arch", "x86_64"))
            .write_text_content(BytesText::new("hvm"))?;
        Ok(())
    })?;
    Ok(())
}

/// No disk, no balloon, no USB: a guest that only holds its placement.
fn write_tail(w: &mut Writer<Vec<u8>>) -> io::Result<()> {
    text(w, "on_poweroff", "destroy")?;
    w.create_element("devices").write_inner_content(|w| {
        for (tag, kind) in [("controller", Some("usb")), ("memballoon", None)] {
            let mut e = w.create_element(tag);
            if let Some(kind) = kind {
                e = e.with_attribute(("type", kind));
            }
            e.with_attribute(("model", "none")).write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The domain XML of a guest bound as a placement policy says: Nova's
/// driver's XML for fitted guests (`nova`, `closest`), and for the others
/// what libvirt needs to apply their binding: nothing for a floating
/// guest, `<vcpu cpuset>` for vCPUs confined to a node (`cpuset-auto`) or
/// a nodeset (`manual`, with its `<numatune>` and, for guests with virtual
/// NUMA cells, one `<memnode>` per cell on the nodeset's nodes in turn),
/// and `placement='auto'` where libvirt asks numad itself.
pub fn binding_xml(spec: &DomainSpec, placed: &PolicyPlacement) -> String {
    if let Binding::Cells(fitted) = &placed.binding {
        return domain_xml(spec, fitted);
    }
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_bound(&mut w, spec, placed).expect("writing XML into memory");
    let mut text = String::from_utf8(w.into_inner()).expect("XML written from UTF-8 strings");
    text.push('\n');
    text
}

/// A guest placed by a policy: its binding, its virtual NUMA cells (if
/// any), its vCPUs, and whether libvirt places it itself.
pub struct PolicyPlacement {
    pub binding: Binding,
    pub request: Option<GuestTopology>,
    pub vcpus: i64,
    pub auto: bool,
}

fn write_bound(
    w: &mut Writer<Vec<u8>>,
    spec: &DomainSpec,
    placed: &PolicyPlacement,
) -> io::Result<()> {
    // Every CPU of the host cells at these positions.
    let cpus_of = |positions: &[usize]| -> String {
        let cpus: BTreeSet<u32> = positions
            .iter()
            .filter_map(|&p| spec.host.cells.get(p))
            .flat_map(|c| c.cpuset().iter().chain(c.pcpuset().iter()))
            .collect();
        format_cpu_list(&cpus.into_iter().collect::<Vec<_>>())
    };
    let positions = |nodeset: &[i64]| -> Vec<usize> {
        nodeset
            .iter()
            .filter_map(|id| spec.host.cells.iter().position(|c| c.id == *id))
            .collect()
    };
    // Guest virtual NUMA cells under an operator's numatune (numad's
    // advice is for the whole guest).
    let cells = match (&placed.binding, &placed.request) {
        (Binding::Numatune { guest_cells, .. }, Some(r)) if *guest_cells > 0 && !placed.auto => {
            &r.cells[..]
        }
        _ => &[],
    };
    w.create_element("domain")
        .with_attribute(("type", spec.domain_type))
        .write_inner_content(|w| {
            write_head(w, spec)?;
            let tuning = match &placed.binding {
                Binding::Numatune { tuning, .. } => Some(tuning),
                _ => None,
            };
            if placed.auto {
                // libvirt asks numad at start, whatever numasim predicts.
                let mode = tuning.map_or(spec.mode, |t| t.mode).as_str();
                w.create_element("numatune").write_inner_content(|w| {
                    w.create_element("memory")
                        .with_attribute(("mode", mode))
                        .with_attribute(("placement", "auto"))
                        .write_empty()?;
                    Ok(())
                })?;
            } else if let Some(tuning) = tuning {
                let mode = tuning.mode.as_str();
                let nodes: Vec<u32> = tuning.nodeset.iter().map(|&n| n as u32).collect();
                w.create_element("numatune").write_inner_content(|w| {
                    w.create_element("memory")
                        .with_attribute(("mode", mode))
                        .with_attribute(("nodeset", format_cpu_list(&nodes).as_str()))
                        .write_empty()?;
                    for (i, _) in cells.iter().enumerate() {
                        w.create_element("memnode")
                            .with_attribute(("cellid", i.to_string().as_str()))
                            .with_attribute(("mode", mode))
                            .with_attribute((
                                "nodeset",
                                nodes[i % nodes.len()].to_string().as_str(),
                            ))
                            .write_empty()?;
                    }
                    Ok(())
                })?;
            }
            let vcpu = w.create_element("vcpu");
            let vcpu = match &placed.binding {
                _ if placed.auto => vcpu.with_attribute(("placement", "auto")),
                Binding::Numatune { tuning, .. } => vcpu
                    .with_attribute(("placement", "static"))
                    .with_attribute(("cpuset", cpus_of(&positions(&tuning.nodeset)).as_str())),
                Binding::Node(p) => vcpu
                    .with_attribute(("placement", "static"))
                    .with_attribute(("cpuset", cpus_of(&[*p]).as_str())),
                Binding::Float | Binding::Cells(_) => vcpu,
            };
            vcpu.write_text_content(BytesText::new(&placed.vcpus.to_string()))?;
            write_os(w)?;
            if !cells.is_empty() {
                w.create_element("cpu").write_inner_content(|w| {
                    w.create_element("numa").write_inner_content(|w| {
                        for (i, c) in cells.iter().enumerate() {
                            let cpus: Vec<u32> =
                                c.cpuset.iter().chain(&c.pcpuset).copied().collect();
                            w.create_element("cell")
                                .with_attribute(("id", i.to_string().as_str()))
                                .with_attribute(("cpus", format_cpu_list(&cpus).as_str()))
                                .with_attribute((
                                    "memory",
                                    (c.memory_mb * 1024).to_string().as_str(),
                                ))
                                .write_empty()?;
                        }
                        Ok(())
                    })?;
                    Ok(())
                })?;
            }
            write_tail(w)
        })?;
    Ok(())
}

fn write_cell(
    w: &mut Writer<Vec<u8>>,
    spec: &DomainSpec,
    fitted: &GuestTopology,
    t: &Tuning,
    i: usize,
    c: &crate::request::GuestCell,
) -> io::Result<()> {
    let cpus: Vec<u32> = c.cpuset.iter().chain(c.pcpuset.iter()).copied().collect();
    let mut cell = w
        .create_element("cell")
        .with_attribute(("id", i.to_string().as_str()))
        .with_attribute(("cpus", format_cpu_list(&cpus).as_str()))
        .with_attribute(("memory", (c.memory_mb * 1024).to_string().as_str()));
    if t.mem_access_shared {
        cell = cell.with_attribute(("memAccess", "shared"));
    }
    if !spec.guest_distances {
        cell.write_empty()?;
        return Ok(());
    }
    let host_pos = |id: i64| spec.host.cells.iter().position(|h| h.id == id);
    cell.write_inner_content(|w| {
        w.create_element("distances").write_inner_content(|w| {
            for (j, other) in fitted.cells.iter().enumerate() {
                let slit = |a: usize, b: usize| spec.distances?.get(a)?.get(b).copied();
                let d = host_pos(c.id)
                    .zip(host_pos(other.id))
                    .and_then(|(a, b)| slit(a, b))
                    .unwrap_or(if i == j { 10 } else { 20 });
                w.create_element("sibling")
                    .with_attribute(("id", j.to_string().as_str()))
                    .with_attribute(("value", d.to_string().as_str()))
                    .write_empty()?;
            }
            Ok(())
        })?;
        Ok(())
    })?;
    Ok(())
}

fn text(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

//! Domain XML for a fitted guest: `<vcpu>`, `<cputune>` with one
//! `<vcpupin>` per vCPU (its pCPU when dedicated, its host cell's shared
//! CPUs when floating) and `<emulatorpin>`, `<numatune>` with the memory
//! mode and one `<memnode>` per guest cell, `<cpu><numa>` cells with
//! `<distances>` taken from the host's SLIT, and `<memoryBacking>`
//! hugepages per guest cell.

use crate::fit::HostTopology;
use crate::request::GuestTopology;
use crate::sim::memory::MemoryMode;
use crate::topology::format_cpu_list;
use std::fmt::Write as _;

/// What the XML needs besides the fitted topology.
pub struct DomainSpec<'a> {
    pub name: &'a str,
    pub memory_mb: i64,
    pub host: &'a HostTopology,
    /// SLIT by host cell position (`None`: 10 local / 20 remote).
    pub distances: Option<&'a [Vec<u32>]>,
    pub mode: MemoryMode,
    /// `kvm`, or `qemu` (TCG) where the host has no KVM.
    pub domain_type: &'a str,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

/// The domain XML of a guest placed as `fitted` says.
pub fn domain_xml(spec: &DomainSpec, fitted: &GuestTopology) -> String {
    let host_pos = |id: i64| spec.host.cells.iter().position(|c| c.id == id);
    let vcpus: usize = fitted
        .cells
        .iter()
        .map(|c| c.cpuset.len() + c.pcpuset.len())
        .sum();
    let mut x = String::new();
    let _ = writeln!(x, "<domain type='{}'>", escape(spec.domain_type));
    let _ = writeln!(x, "  <name>{}</name>", escape(spec.name));
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", spec.memory_mb);
    let huge: Vec<(usize, i64)> = fitted
        .cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.pagesize.filter(|&p| p > 4).map(|p| (i, p)))
        .collect();
    if !huge.is_empty() {
        let _ = writeln!(x, "  <memoryBacking>\n    <hugepages>");
        for (i, p) in &huge {
            let _ = writeln!(x, "      <page size='{p}' unit='KiB' nodeset='{i}'/>");
        }
        let _ = writeln!(x, "    </hugepages>\n  </memoryBacking>");
    }
    let _ = writeln!(x, "  <vcpu placement='static'>{vcpus}</vcpu>");
    let _ = writeln!(x, "  <cputune>");
    let mut pins: Vec<(u32, String)> = Vec::new();
    let mut emulator: Vec<u32> = Vec::new();
    let mut reserved: Vec<u32> = Vec::new();
    for c in &fitted.cells {
        let shared: Vec<u32> = host_pos(c.id)
            .map(|p| spec.host.cells[p].cpuset().to_vec())
            .unwrap_or_default();
        for &v in &c.cpuset {
            pins.push((v, format_cpu_list(&shared)));
            emulator.extend(&shared);
        }
        for &v in &c.pcpuset {
            if let Some(&p) = c.cpu_pinning.as_ref().and_then(|m| m.get(&v)) {
                pins.push((v, p.to_string()));
                emulator.push(p);
            }
        }
        if let Some(r) = &c.cpuset_reserved {
            reserved.extend(r.iter().copied());
        }
    }
    pins.sort_by_key(|p| p.0);
    for (v, set) in &pins {
        let _ = writeln!(x, "    <vcpupin vcpu='{v}' cpuset='{set}'/>");
    }
    // Emulator threads: on the reserved pCPU with `isolate`, else with the guest's CPUs.
    let emu = if reserved.is_empty() {
        emulator
    } else {
        reserved
    };
    if !emu.is_empty() {
        let _ = writeln!(x, "    <emulatorpin cpuset='{}'/>", format_cpu_list(&emu));
    }
    let _ = writeln!(x, "  </cputune>");
    let host_cells: Vec<u32> = fitted.cells.iter().map(|c| c.id as u32).collect();
    let mode = spec.mode.as_str();
    let _ = writeln!(x, "  <numatune>");
    let _ = writeln!(
        x,
        "    <memory mode='{mode}' nodeset='{}'/>",
        format_cpu_list(&host_cells)
    );
    for (i, c) in fitted.cells.iter().enumerate() {
        let _ = writeln!(
            x,
            "    <memnode cellid='{i}' mode='{mode}' nodeset='{}'/>",
            c.id
        );
    }
    let _ = writeln!(x, "  </numatune>");
    let _ = writeln!(x, "  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>");
    let _ = writeln!(x, "  <cpu>\n    <numa>");
    for (i, c) in fitted.cells.iter().enumerate() {
        let cpus: Vec<u32> = c.cpuset.iter().chain(c.pcpuset.iter()).copied().collect();
        let _ = writeln!(
            x,
            "      <cell id='{i}' cpus='{}' memory='{}' unit='MiB'>",
            format_cpu_list(&cpus),
            c.memory_mb
        );
        let _ = writeln!(x, "        <distances>");
        for (j, other) in fitted.cells.iter().enumerate() {
            let d = match (host_pos(c.id), host_pos(other.id), spec.distances) {
                (Some(a), Some(b), Some(m)) => m[a][b],
                _ if i == j => 10,
                _ => 20,
            };
            let _ = writeln!(x, "          <sibling id='{j}' value='{d}'/>");
        }
        let _ = writeln!(x, "        </distances>\n      </cell>");
    }
    let _ = writeln!(x, "    </numa>\n  </cpu>");
    let _ = writeln!(x, "  <on_poweroff>destroy</on_poweroff>");
    // No disk, no balloon, no USB: a guest that only holds its placement.
    let _ = writeln!(
        x,
        "  <devices>\n    <controller type='usb' model='none'/>\n    <memballoon model='none'/>\n  </devices>"
    );
    x.push_str("</domain>\n");
    x
}

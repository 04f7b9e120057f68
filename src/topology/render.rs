//! Human-readable rendering, in the manner of `numactl -H`.

use super::{Host, format_cpu_list};
use std::fmt::Write;

pub fn text(host: &Host) -> String {
    let mut out = String::new();
    let ids: Vec<u32> = host.cells.iter().map(|c| c.id).collect();
    let _ = writeln!(out, "host: {}", host.name);
    let _ = writeln!(
        out,
        "sockets: {}  cores: {}  threads per core: {}  cpus: {}",
        host.sockets().len(),
        host.cores().len(),
        host.threads_per_core(),
        host.cpu_count()
    );
    let _ = writeln!(
        out,
        "available: {} nodes ({})",
        ids.len(),
        format_cpu_list(&ids)
    );
    for cell in &host.cells {
        let cpus: Vec<String> = cell.cpus.iter().map(|c| c.id.to_string()).collect();
        let _ = writeln!(out, "node {} cpus: {}", cell.id, cpus.join(" "));
        let _ = writeln!(out, "node {} size: {} MB", cell.id, cell.memory_mb());
        match cell.free_kb {
            Some(f) => {
                let _ = writeln!(out, "node {} free: {} MB", cell.id, f / 1024);
            }
            None => {
                let _ = writeln!(out, "node {} free: unknown", cell.id);
            }
        }
        for p in &cell.pages {
            let free = p.free.map_or("unknown".to_string(), |f| f.to_string());
            let _ = writeln!(
                out,
                "node {} pages {} kB: total {} free {}",
                cell.id, p.size_kb, p.total, free
            );
        }
    }
    let _ = writeln!(out, "node distances:");
    let width = host
        .distinct_distances()
        .iter()
        .map(|d| d.to_string().len())
        .max()
        .unwrap_or(2)
        .max(ids.iter().map(|i| i.to_string().len()).max().unwrap_or(1))
        + 2;
    let _ = write!(out, "node");
    for id in &ids {
        let _ = write!(out, "{id:>width$}");
    }
    out.push('\n');
    for (i, id) in ids.iter().enumerate() {
        let _ = write!(out, "{:>3}:", id);
        for v in &host.distances[i] {
            let _ = write!(out, "{v:>width$}");
        }
        out.push('\n');
    }
    if !host.unassigned_cpus.is_empty() {
        let ids: Vec<u32> = host.unassigned_cpus.iter().map(|c| c.id).collect();
        let _ = writeln!(out, "cpus in no node: {}", format_cpu_list(&ids));
    }
    for dev in &host.pci_devices {
        let node = dev.numa_node.map_or("none".into(), |n| n.to_string());
        let _ = writeln!(
            out,
            "pci {}:{} {} x{} node {}",
            dev.vendor_id, dev.product_id, dev.dev_type, dev.count, node
        );
    }
    for w in &host.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

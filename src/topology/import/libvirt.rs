//! `virsh capabilities` XML: `<host><topology><cells><cell>` with memory,
//! pages, distances and CPUs (socket_id / core_id / siblings).

use super::{Format, ImportError, xml_error, xml_line};
use crate::topology::{Cell, Cpu, Host, PagePool, parse_cpu_list};
use roxmltree::{Document, Node};

const F: Format = Format::Libvirt;

pub fn parse(name: &str, text: &str) -> Result<Host, ImportError> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = Document::parse_with_options(text, opts).map_err(|e| xml_error(F, e))?;
    let err = |node: Node, msg: String| ImportError::new(F, Some(xml_line(&doc, node)), msg);
    let root = doc.root_element();
    if root.tag_name().name() != "capabilities" {
        return Err(err(
            root,
            format!(
                "root element is <{}>, expected <capabilities>",
                root.tag_name().name()
            ),
        ));
    }
    let host_el = child(root, "host").ok_or_else(|| err(root, "no <host> element".into()))?;
    let topology = child(host_el, "topology").ok_or_else(|| {
        err(
            host_el,
            "no <host><topology> element: this capabilities document carries no NUMA data".into(),
        )
    })?;
    let cells_el = child(topology, "cells")
        .ok_or_else(|| err(topology, "no <cells> element under <topology>".into()))?;

    let mut cells = Vec::new();
    // (cell position, sibling id, value) triples, resolved once every id is known.
    let mut raw_distances: Vec<(usize, u32, u32, Node)> = Vec::new();
    let mut any_distances = false;
    for cell_el in cells_el.children().filter(|n| n.has_tag_name("cell")) {
        let id = attr_u32(cell_el, "id").map_err(|m| err(cell_el, m))?;
        let memory_kb = match child(cell_el, "memory") {
            Some(m) => scaled_kb(m).map_err(|msg| err(m, msg))?,
            None => 0,
        };
        let mut pages = Vec::new();
        for p in cell_el.children().filter(|n| n.has_tag_name("pages")) {
            let size = attr_u64(p, "size").map_err(|m| err(p, m))?;
            let size_kb =
                unit_to_kb(size, p.attribute("unit").unwrap_or("KiB")).map_err(|m| err(p, m))?;
            let total = p.text().unwrap_or("").trim().parse::<u64>().map_err(|_| {
                err(
                    p,
                    format!(
                        "<pages> count `{}` is not a non-negative integer",
                        p.text().unwrap_or("")
                    ),
                )
            })?;
            pages.push(PagePool {
                size_kb,
                total,
                free: None,
            });
        }
        if let Some(d) = child(cell_el, "distances") {
            any_distances = true;
            for s in d.children().filter(|n| n.has_tag_name("sibling")) {
                let to = attr_u32(s, "id").map_err(|m| err(s, m))?;
                let value = attr_u32(s, "value").map_err(|m| err(s, m))?;
                raw_distances.push((cells.len(), to, value, s));
            }
        }
        let mut cpus = Vec::new();
        if let Some(c) = child(cell_el, "cpus") {
            for cpu in c.children().filter(|n| n.has_tag_name("cpu")) {
                let cpu_id = attr_u32(cpu, "id").map_err(|m| err(cpu, m))?;
                let socket = opt_u32(cpu, "socket_id").map_err(|m| err(cpu, m))?;
                let core = opt_u32(cpu, "core_id").map_err(|m| err(cpu, m))?;
                let siblings = match cpu.attribute("siblings") {
                    Some(s) => parse_cpu_list(s).map_err(|m| err(cpu, m))?,
                    None => vec![cpu_id],
                };
                cpus.push(Cpu {
                    id: cpu_id,
                    socket,
                    core,
                    siblings,
                });
            }
        }
        cells.push(Cell {
            id,
            cpus,
            memory_kb,
            free_kb: None,
            pages,
        });
    }
    if cells.is_empty() {
        return Err(err(cells_el, "<cells> holds no <cell>".into()));
    }
    let distances = if any_distances {
        let n = cells.len();
        let mut m = vec![vec![0u32; n]; n];
        for (from, to, value, node) in raw_distances {
            let j = cells.iter().position(|c| c.id == to).ok_or_else(|| {
                err(
                    node,
                    format!("<sibling id='{to}'> names a cell that does not exist"),
                )
            })?;
            m[from][j] = value;
        }
        if let Some((i, j)) = first_zero(&m) {
            return Err(err(
                cells_el,
                format!(
                    "distance from cell {} to cell {} is missing",
                    cells[i].id, cells[j].id
                ),
            ));
        }
        Some(m)
    } else {
        None
    };
    let host =
        Host::new(name, cells, distances).map_err(|e| ImportError::new(F, None, e.to_string()))?;
    Ok(host)
}

fn first_zero(m: &[Vec<u32>]) -> Option<(usize, usize)> {
    m.iter()
        .enumerate()
        .find_map(|(i, row)| row.iter().position(|&v| v == 0).map(|j| (i, j)))
}

fn child<'a, 'i>(node: Node<'a, 'i>, tag: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(tag))
}

fn attr_u32(node: Node, name: &str) -> Result<u32, String> {
    let v = node
        .attribute(name)
        .ok_or_else(|| format!("<{}> lacks the `{name}` attribute", node.tag_name().name()))?;
    v.trim().parse().map_err(|_| {
        format!(
            "<{}> attribute {name}='{v}' is not a non-negative integer",
            node.tag_name().name()
        )
    })
}

fn attr_u64(node: Node, name: &str) -> Result<u64, String> {
    let v = node
        .attribute(name)
        .ok_or_else(|| format!("<{}> lacks the `{name}` attribute", node.tag_name().name()))?;
    v.trim().parse().map_err(|_| {
        format!(
            "<{}> attribute {name}='{v}' is not a non-negative integer",
            node.tag_name().name()
        )
    })
}

fn opt_u32(node: Node, name: &str) -> Result<Option<u32>, String> {
    match node.attribute(name) {
        None => Ok(None),
        Some(_) => attr_u32(node, name).map(Some),
    }
}

fn scaled_kb(node: Node) -> Result<u64, String> {
    let text = node.text().unwrap_or("").trim();
    let value: u64 = text.parse().map_err(|_| {
        format!(
            "<{}> value `{text}` is not a non-negative integer",
            node.tag_name().name()
        )
    })?;
    unit_to_kb(value, node.attribute("unit").unwrap_or("KiB"))
}

/// libvirt's scaled integers: `b`/`bytes`, `KiB`/`k`, `MiB`/`M`, `GiB`/`G`, `TiB`/`T` (and the SI forms).
fn unit_to_kb(value: u64, unit: &str) -> Result<u64, String> {
    let factor_bytes: u64 = match unit {
        "b" | "bytes" => 1,
        "KB" => 1000,
        "k" | "K" | "KiB" => 1024,
        "MB" => 1_000_000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit `{other}`; expected b, KiB, MiB, GiB or TiB"
            ));
        }
    };
    value
        .checked_mul(factor_bytes)
        .map(|b| b / 1024)
        .ok_or_else(|| format!("size {value} {unit} overflows"))
}

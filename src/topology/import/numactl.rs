//! `numactl --hardware` text: per-node cpus / size / free lines and the
//! `node distances:` table.

use super::{Format, ImportError};
use crate::topology::{Cell, Cpu, Host};

const F: Format = Format::Numactl;

#[derive(Default)]
struct NodeLines {
    cpus: Option<Vec<u32>>,
    size_mb: Option<u64>,
    free_mb: Option<u64>,
    line: usize,
}

pub fn parse(name: &str, text: &str) -> Result<Host, ImportError> {
    let err = |line: usize, msg: String| ImportError::new(F, Some(line), msg);
    let mut nodes: Vec<(u32, NodeLines)> = Vec::new();
    let mut distance_header: Option<(usize, Vec<u32>)> = None;
    let mut rows: Vec<(usize, u32, Vec<u32>)> = Vec::new();
    let mut in_distances = false;

    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("available:") {
            continue;
        }
        if line == "node distances:" {
            in_distances = true;
            continue;
        }
        if in_distances {
            if let Some(rest) = line.strip_prefix("node") {
                let ids = rest
                    .split_whitespace()
                    .map(|t| {
                        t.parse::<u32>().map_err(|_| {
                            err(
                                lineno,
                                format!("node id `{t}` in the distance header is not a number"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                distance_header = Some((lineno, ids));
                continue;
            }
            let (head, values) = line.split_once(':').ok_or_else(|| {
                err(
                    lineno,
                    format!("expected a distance row `N: d d ...`, found `{line}`"),
                )
            })?;
            let from = head
                .trim()
                .parse::<u32>()
                .map_err(|_| err(lineno, format!("row label `{head}` is not a node id")))?;
            let values = values
                .split_whitespace()
                .map(|t| {
                    t.parse::<u32>().map_err(|_| {
                        err(
                            lineno,
                            format!("distance `{t}` is not a non-negative integer"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            rows.push((lineno, from, values));
            continue;
        }
        let Some(rest) = line.strip_prefix("node ") else {
            // numactl also prints lines such as `No distance information available.`
            if line.starts_with("No distance") {
                continue;
            }
            return Err(err(
                lineno,
                format!("unexpected line `{line}`; expected `node N cpus|size|free: ...`"),
            ));
        };
        let (id_text, rest) = rest.trim_start().split_once(' ').ok_or_else(|| {
            err(
                lineno,
                format!("expected `node N <field>: ...`, found `{line}`"),
            )
        })?;
        let id: u32 = id_text
            .parse()
            .map_err(|_| err(lineno, format!("node id `{id_text}` is not a number")))?;
        let (field, value) = rest
            .split_once(':')
            .ok_or_else(|| err(lineno, format!("expected `node {id} <field>: ...`")))?;
        let pos = match nodes.iter().position(|(n, _)| *n == id) {
            Some(p) => p,
            None => {
                nodes.push((
                    id,
                    NodeLines {
                        line: lineno,
                        ..Default::default()
                    },
                ));
                nodes.len() - 1
            }
        };
        let entry = &mut nodes[pos].1;
        match field.trim() {
            "cpus" => {
                let cpus = value
                    .split_whitespace()
                    .map(|t| {
                        t.parse::<u32>()
                            .map_err(|_| err(lineno, format!("CPU `{t}` is not a number")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                entry.cpus = Some(cpus);
            }
            "size" => entry.size_mb = Some(parse_mb(value).map_err(|m| err(lineno, m))?),
            "free" => entry.free_mb = Some(parse_mb(value).map_err(|m| err(lineno, m))?),
            other => {
                return Err(err(
                    lineno,
                    format!("unknown node field `{other}`; expected cpus, size or free"),
                ));
            }
        }
    }
    if nodes.is_empty() {
        return Err(ImportError::new(
            F,
            None,
            "no `node N cpus:` lines: nothing to import",
        ));
    }
    let mut cells = Vec::new();
    for (id, n) in &nodes {
        let size_mb = n
            .size_mb
            .ok_or_else(|| err(n.line, format!("node {id} has no `size:` line")))?;
        cells.push(Cell {
            id: *id,
            cpus: n
                .cpus
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|c| Cpu {
                    id: c,
                    socket: None,
                    core: None,
                    siblings: vec![c],
                })
                .collect(),
            memory_kb: size_mb * 1024,
            free_kb: n.free_mb.map(|f| f * 1024),
            pages: Vec::new(),
        });
    }
    let distances = match distance_header {
        None => None,
        Some((hline, header)) => {
            if header.len() != cells.len() {
                return Err(err(
                    hline,
                    format!(
                        "distance table has {} columns but {} nodes are described",
                        header.len(),
                        cells.len()
                    ),
                ));
            }
            let mut m = vec![Vec::new(); cells.len()];
            for (lineno, from, values) in rows {
                if values.len() != header.len() {
                    return Err(err(
                        lineno,
                        format!(
                            "distance row for node {from} has {} values, expected {}",
                            values.len(),
                            header.len()
                        ),
                    ));
                }
                let i = cells.iter().position(|c| c.id == from).ok_or_else(|| {
                    err(
                        lineno,
                        format!("distance row for node {from}, which has no cpus/size lines"),
                    )
                })?;
                if !m[i].is_empty() {
                    return Err(err(lineno, format!("second distance row for node {from}")));
                }
                // Columns follow the header's node order; store them in cell order.
                let mut row = vec![0; cells.len()];
                for (col, &to) in header.iter().enumerate() {
                    let j = cells.iter().position(|c| c.id == to).ok_or_else(|| {
                        err(
                            hline,
                            format!("distance column for node {to}, which has no cpus/size lines"),
                        )
                    })?;
                    row[j] = values[col];
                }
                m[i] = row;
            }
            if let Some(i) = m.iter().position(Vec::is_empty) {
                return Err(ImportError::new(
                    F,
                    Some(hline),
                    format!("distance table has no row for node {}", cells[i].id),
                ));
            }
            Some(m)
        }
    };
    let mut host =
        Host::new(name, cells, distances).map_err(|e| ImportError::new(F, None, e.to_string()))?;
    host.warnings
        .push("numactl -H gives no socket/core/thread relations: each CPU is its own core".into());
    Ok(host)
}

fn parse_mb(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let number = v.strip_suffix("MB").unwrap_or(v).trim();
    number
        .parse::<u64>()
        .map_err(|_| format!("size `{v}` is not `<non-negative integer> MB`"))
}

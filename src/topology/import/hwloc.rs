//! hwloc XML, v1 (`<distances>` relative to `latency_base`, NUMA nodes in the
//! object tree) and v2 (`<distances2>`, NUMA nodes as memory children).

use super::{Format, ImportError, xml_error, xml_line};
use crate::topology::cpuset::parse_hex_mask;
use crate::topology::{Cell, Cpu, Host, PagePool};
use roxmltree::{Document, Node, ParsingOptions};
use std::collections::BTreeMap;

const F: Format = Format::Hwloc;

struct NumaNode {
    os_index: u32,
    gp_index: Option<u64>,
    cpuset: Vec<u32>,
    memory_kb: u64,
    pages: Vec<PagePool>,
    /// hwloc's `subtype` (`MCDRAM`, `GPUMemory`, ...): such nodes give way to
    /// ordinary DRAM nodes when both claim the same CPUs.
    special: bool,
}

pub fn parse(name: &str, text: &str) -> Result<Host, ImportError> {
    let opts = ParsingOptions {
        allow_dtd: true,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, opts).map_err(|e| xml_error(F, e))?;
    let err = |node: Node, msg: String| ImportError::new(F, Some(xml_line(&doc, node)), msg);
    let root = doc.root_element();
    if root.tag_name().name() != "topology" {
        return Err(err(
            root,
            format!(
                "root element is <{}>, expected <topology>",
                root.tag_name().name()
            ),
        ));
    }
    let mut warnings = Vec::new();

    let mut numa = Vec::new();
    let mut pus: Vec<(Node, u32)> = Vec::new();
    for node in root.descendants().filter(|n| n.has_tag_name("object")) {
        match node.attribute("type") {
            Some("NUMANode") => {
                let os_index = attr_u64(node, "os_index").map_err(|m| err(node, m))?;
                let os_index =
                    u32::try_from(os_index).map_err(|_| err(node, "os_index too large".into()))?;
                let mask = node
                    .attribute("complete_cpuset")
                    .or(node.attribute("cpuset"))
                    .unwrap_or("0x0");
                let cpuset = parse_hex_mask(mask).map_err(|m| err(node, m))?;
                let memory_kb = match node.attribute("local_memory") {
                    Some(_) => attr_u64(node, "local_memory").map_err(|m| err(node, m))? / 1024,
                    None => 0,
                };
                let mut pages = Vec::new();
                for p in node.children().filter(|n| n.has_tag_name("page_type")) {
                    let size = attr_u64(p, "size").map_err(|m| err(p, m))?;
                    let count = attr_u64(p, "count").map_err(|m| err(p, m))?;
                    if size < 1024 {
                        return Err(err(p, format!("page size {size} bytes is below 1 KiB")));
                    }
                    pages.push(PagePool {
                        size_kb: size / 1024,
                        total: count,
                        free: None,
                    });
                }
                let gp_index = node.attribute("gp_index").and_then(|v| v.parse().ok());
                numa.push(NumaNode {
                    os_index,
                    gp_index,
                    cpuset,
                    memory_kb,
                    pages,
                    special: node.attribute("subtype").is_some(),
                });
            }
            Some("PU") => {
                let id = attr_u64(node, "os_index").map_err(|m| err(node, m))?;
                let id = u32::try_from(id).map_err(|_| err(node, "os_index too large".into()))?;
                pus.push((node, id));
            }
            _ => {}
        }
    }
    if pus.is_empty() {
        return Err(err(
            root,
            "no PU objects: the file describes no CPUs".into(),
        ));
    }
    if numa.is_empty() {
        return Err(err(
            root,
            "no NUMANode objects: the file carries no NUMA data".into(),
        ));
    }
    if numa.iter().all(|n| n.memory_kb == 0) {
        warnings.push(
            "no NUMA memory sizes in this capture (a CPUID-only export?): cells have 0 MB; \
             give memory in a synthetic description to simulate placements"
                .to_string(),
        );
    }

    // Each PU goes to one node: the first ordinary node whose cpuset holds it,
    // else the first special one (HBM/GPU memory nodes share their parent's cpuset in v2).
    let mut owner: BTreeMap<u32, usize> = BTreeMap::new();
    for pass_special in [false, true] {
        for (i, n) in numa
            .iter()
            .enumerate()
            .filter(|(_, n)| n.special == pass_special)
        {
            for &cpu in &n.cpuset {
                owner.entry(cpu).or_insert(i);
            }
        }
    }
    let mut cell_cpus: Vec<Vec<Cpu>> = vec![Vec::new(); numa.len()];
    let mut unassigned = Vec::new();
    for (pu, id) in &pus {
        let socket = ancestor_index(*pu, "Package").or_else(|| ancestor_index(*pu, "Socket"));
        let core_node = pu.ancestors().find(|a| a.attribute("type") == Some("Core"));
        let core = core_node
            .and_then(|c| c.attribute("os_index"))
            .and_then(|v| v.parse().ok());
        let siblings = match core_node {
            Some(c) => c
                .descendants()
                .filter(|d| d.attribute("type") == Some("PU"))
                .filter_map(|d| d.attribute("os_index")?.parse().ok())
                .collect(),
            None => vec![*id],
        };
        let cpu = Cpu {
            id: *id,
            socket,
            core,
            siblings,
        };
        match owner.get(id) {
            Some(&i) => cell_cpus[i].push(cpu),
            None => unassigned.push(cpu),
        }
    }
    if !unassigned.is_empty() {
        warnings.push(format!(
            "{} CPUs are in no NUMA node's cpuset",
            unassigned.len()
        ));
    }

    let distances = if root
        .attribute("version")
        .is_some_and(|v| v.starts_with('2'))
        || root.descendants().any(|n| n.has_tag_name("distances2"))
    {
        distances_v2(&doc, &numa, &mut warnings)?
    } else {
        distances_v1(&doc, &numa)?
    };

    // Cells in node-id order; reorder the matrix accordingly.
    let mut order: Vec<usize> = (0..numa.len()).collect();
    order.sort_by_key(|&i| numa[i].os_index);
    let cells: Vec<Cell> = order
        .iter()
        .map(|&i| Cell {
            id: numa[i].os_index,
            cpus: std::mem::take(&mut cell_cpus[i]),
            memory_kb: numa[i].memory_kb,
            free_kb: None,
            pages: numa[i].pages.clone(),
        })
        .collect();
    let distances = distances.map(|m| {
        order
            .iter()
            .map(|&i| order.iter().map(|&j| m[i][j]).collect())
            .collect()
    });
    let mut host =
        Host::new(name, cells, distances).map_err(|e| ImportError::new(F, None, e.to_string()))?;
    host.pci_devices = pci_devices(&doc, &host)?;
    host.unassigned_cpus = unassigned;
    host.warnings.extend(warnings);
    host.validate()
        .map_err(|e| ImportError::new(F, None, e.to_string()))?;
    Ok(host)
}

/// PCI devices (`PCIDev` objects): vendor and product from `pci_type`
/// (`"0200 [8086:10c9] ..."`), the NUMA node from the nearest ancestor's
/// nodeset when it names exactly one node of the host (else unknown).
fn pci_devices(
    doc: &Document,
    host: &Host,
) -> Result<Vec<crate::topology::PciDevice>, ImportError> {
    let mut out = Vec::new();
    for dev in doc
        .root_element()
        .descendants()
        .filter(|n| n.attribute("type") == Some("PCIDev"))
    {
        let Some(ids) = dev.attribute("pci_type").and_then(|t| {
            let inner = t.split('[').nth(1)?.split(']').next()?;
            let (v, p) = inner.split_once(':')?;
            Some((v.to_string(), p.to_string()))
        }) else {
            continue;
        };
        let nodeset = dev.ancestors().skip(1).find_map(|a| a.attribute("nodeset"));
        let numa_node = match nodeset.map(parse_hex_mask) {
            Some(Ok(nodes)) if nodes.len() == 1 && host.cell_index(nodes[0]).is_some() => {
                Some(nodes[0])
            }
            Some(Err(m)) => return Err(ImportError::new(F, Some(xml_line(doc, dev)), m)),
            _ => None,
        };
        out.push(crate::topology::PciDevice {
            address: dev.attribute("pci_busid").map(str::to_string),
            vendor_id: ids.0,
            product_id: ids.1,
            dev_type: "type-PCI".into(),
            numa_node,
            count: 1,
        });
    }
    Ok(out)
}

fn ancestor_index(node: Node, kind: &str) -> Option<u32> {
    node.ancestors()
        .find(|a| a.attribute("type") == Some(kind))
        .and_then(|a| a.attribute("os_index"))
        .and_then(|v| v.parse().ok())
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

/// v2: `<distances2 type="NUMANode" indexing="os|gp">` with `<indexes>` and
/// `<u64values>` chunks, row-major. Prefers the `NUMALatency` matrix.
fn distances_v2(
    doc: &Document,
    numa: &[NumaNode],
    warnings: &mut Vec<String>,
) -> Result<Option<Vec<Vec<u32>>>, ImportError> {
    let err = |node: Node, msg: String| ImportError::new(F, Some(xml_line(doc, node)), msg);
    let candidates: Vec<Node> = doc
        .root_element()
        .descendants()
        .filter(|n| n.has_tag_name("distances2") && n.attribute("type") == Some("NUMANode"))
        .collect();
    let Some(el) = candidates
        .iter()
        .find(|n| n.attribute("name") == Some("NUMALatency"))
        .or(candidates.first())
        .copied()
    else {
        return Ok(None);
    };
    let nbobjs = attr_u64(el, "nbobjs").map_err(|m| err(el, m))? as usize;
    let numbers = |tag: &str| -> Result<Vec<u64>, ImportError> {
        let mut out = Vec::new();
        for chunk in el.children().filter(|n| n.has_tag_name(tag)) {
            for t in chunk.text().unwrap_or("").split_whitespace() {
                out.push(t.parse().map_err(|_| {
                    err(
                        chunk,
                        format!("`{t}` in <{tag}> is not a non-negative integer"),
                    )
                })?);
            }
        }
        Ok(out)
    };
    let indexes = numbers("indexes")?;
    let values = numbers("u64values")?;
    if indexes.len() != nbobjs || values.len() != nbobjs * nbobjs {
        return Err(err(
            el,
            format!(
                "<distances2> declares {nbobjs} objects but has {} indexes and {} values (expected {} and {})",
                indexes.len(),
                values.len(),
                nbobjs,
                nbobjs * nbobjs
            ),
        ));
    }
    let by_gp = el.attribute("indexing") == Some("gp");
    let mut pos = Vec::with_capacity(nbobjs);
    for &ix in &indexes {
        let found = numa.iter().position(|n| {
            if by_gp {
                n.gp_index == Some(ix)
            } else {
                u64::from(n.os_index) == ix
            }
        });
        pos.push(found.ok_or_else(|| {
            err(
                el,
                format!("<distances2> names node index {ix}, which is not a NUMANode"),
            )
        })?);
    }
    let n = numa.len();
    let mut m = crate::topology::default_distances(n);
    for a in 0..nbobjs {
        for b in 0..nbobjs {
            let v = values[a * nbobjs + b];
            m[pos[a]][pos[b]] =
                u32::try_from(v).map_err(|_| err(el, format!("distance {v} too large")))?;
        }
    }
    if nbobjs < n {
        warnings.push(format!(
            "the distance matrix covers {nbobjs} of {n} nodes; the others use Linux's default (10 local, 20 remote)"
        ));
    }
    Ok(Some(m))
}

/// v1: `<distances nbobjs relative_depth latency_base>` with `<latency value>`
/// children, objects in logical (document) order at the given depth.
fn distances_v1(doc: &Document, numa: &[NumaNode]) -> Result<Option<Vec<Vec<u32>>>, ImportError> {
    let err = |node: Node, msg: String| ImportError::new(F, Some(xml_line(doc, node)), msg);
    for el in doc
        .root_element()
        .descendants()
        .filter(|n| n.has_tag_name("distances"))
    {
        // hwloc v1 numbers objects of one level in logical (document)
        // order; the NUMA matrix is the one with one row per NUMA node. The
        // XML nesting of nodes may be irregular (GPU memory nodes hang off
        // the machine), so depths are not compared.
        let nbobjs = attr_u64(el, "nbobjs").map_err(|m| err(el, m))? as usize;
        if nbobjs != numa.len() || nbobjs == 0 {
            continue;
        }
        let members: Vec<usize> = (0..nbobjs).collect();
        let base: f64 = el
            .attribute("latency_base")
            .unwrap_or("1")
            .parse()
            .map_err(|_| err(el, "latency_base is not a number".into()))?;
        let lat: Vec<f64> = el
            .children()
            .filter(|n| n.has_tag_name("latency"))
            .map(|n| {
                n.attribute("value")
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| err(n, "<latency> lacks a non-negative numeric value".into()))
            })
            .collect::<Result<_, _>>()?;
        if lat.len() != nbobjs * nbobjs {
            return Err(err(
                el,
                format!(
                    "<distances nbobjs='{nbobjs}'> holds {} latencies, expected {}",
                    lat.len(),
                    nbobjs * nbobjs
                ),
            ));
        }
        let n = numa.len();
        let mut m = crate::topology::default_distances(n);
        for a in 0..nbobjs {
            for b in 0..nbobjs {
                let v = (lat[a * nbobjs + b] * base).round();
                if v > f64::from(u32::MAX) {
                    return Err(err(el, format!("distance {v} too large")));
                }
                m[members[a]][members[b]] = v as u32;
            }
        }
        return Ok(Some(m));
    }
    Ok(None)
}

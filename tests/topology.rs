//! Host model and importers against real captures.

use crate::common::{data, numasim, shared, stderr, stdout};
use numasim::experiment::load::load_host;
use numasim::topology::{DistanceSource, Host};
use std::collections::BTreeSet;
use std::path::Path;

struct IndexRow {
    file: String,
    nodes: usize,
    cpuless: Option<BTreeSet<u32>>,
    pus: usize,
    mem_gib: f64,
    slit: Option<BTreeSet<u32>>,
}

fn read_index(path: &Path) -> Vec<IndexRow> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let set = |s: &str| -> Option<BTreeSet<u32>> {
                (s != "-").then(|| s.split([',', '/']).map(|v| v.parse().unwrap()).collect())
            };
            IndexRow {
                file: f[0].to_string(),
                nodes: f[3].parse().unwrap(),
                cpuless: set(f[4]),
                pus: f[6].parse().unwrap(),
                mem_gib: f[7].parse().unwrap(),
                slit: set(f[8]),
            }
        })
        .collect()
}

fn check_row(root: &Path, row: &IndexRow) -> Result<(), String> {
    let path = root.join(&row.file);
    let host = load_host(path.to_str().unwrap(), None).map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    if host.cells.len() != row.nodes {
        problems.push(format!("nodes {} != {}", host.cells.len(), row.nodes));
    }
    if host.cpu_count() != row.pus {
        problems.push(format!("pus {} != {}", host.cpu_count(), row.pus));
    }
    let gib = host.memory_kb() as f64 / 1048576.0;
    if (gib - row.mem_gib).abs() > 0.051 {
        problems.push(format!("memory {gib:.2} GiB != {}", row.mem_gib));
    }
    match &row.slit {
        // The capture kept one node directory, whose distance file still
        // lists the node that was left out (21); a one-node host has only 10.
        Some(_) if row.file.ends_with("offline-cpu0-node0.sysfs.txt") => {
            if host.distances != vec![vec![10]] {
                problems.push(format!("distances {:?}", host.distances));
            }
        }
        Some(values) => {
            if host.distance_source != DistanceSource::Firmware
                || &host.distinct_distances() != values
            {
                problems.push(format!(
                    "slit {:?} != {:?}",
                    host.distinct_distances(),
                    values
                ));
            }
        }
        None => {
            if host.distance_source != DistanceSource::LinuxDefault {
                problems.push("expected no SLIT in the source".into());
            }
        }
    }
    // CPU-less cells are only knowable when the capture maps CPUs to nodes.
    if host.cells.iter().any(|c| !c.is_cpuless()) {
        let cpuless: BTreeSet<u32> = host
            .cells
            .iter()
            .filter(|c| c.is_cpuless())
            .map(|c| c.id)
            .collect();
        if cpuless != row.cpuless.clone().unwrap_or_default() {
            problems.push(format!("cpuless {cpuless:?} != {:?}", row.cpuless));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", row.file, problems.join("; ")))
    }
}

fn check_index(root: &Path) -> usize {
    let rows = read_index(&root.join("INDEX.tsv"));
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in &rows {
        if !root.join(&row.file).exists() {
            continue;
        }
        checked += 1;
        if let Err(e) = check_row(root, row) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    checked
}

#[test]
fn every_shipped_capture_matches_the_index() {
    let checked = check_index(&data("topologies"));
    assert_eq!(checked, 58, "all rows but the numactl one are shipped");
}

#[test]
#[ignore = "needs ../shared/data/topologies (the shipped copy is checked above)"]
fn every_shared_capture_matches_the_index() {
    assert_eq!(check_index(&shared("data/topologies")), 59);
}

/// Extracts the NUMA-relevant part of a capture (the rest, tens of thousands
/// of sysfs files, only slows the test down).
fn extract(tarball: &Path, into: &Path) {
    let file = std::fs::File::open(tarball).unwrap();
    let mut archive = tar::Archive::new(bzip2::read::BzDecoder::new(file));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().to_string();
        let wanted = path.contains("/sys/devices/system/node/")
            || (path.contains("/sys/devices/system/cpu/")
                && (path.contains("/topology/") || path.ends_with("/online")))
            || path.ends_with("/proc/meminfo");
        if wanted {
            entry.unpack_in(into).unwrap();
        }
    }
}

fn cell_summary(h: &Host) -> Vec<(u32, u64, Vec<u32>)> {
    h.cells
        .iter()
        .map(|c| (c.id, c.memory_kb, c.cpu_ids()))
        .collect()
}

#[test]
fn sysfs_tarballs_import_like_their_flat_dumps() {
    let dir = data("topologies/hwloc/hwloc-tests-sysfs");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    assert_eq!(names.len(), 15);
    for tarball in names {
        let stem = tarball
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".tar.bz2")
            .to_string();
        let tmp = tempfile::tempdir().unwrap();
        extract(&tarball, tmp.path());
        // Tarballs hold one top directory, not always named like the file.
        let top = std::fs::read_dir(tmp.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // x86+linux captures nest the sysfs root one level further down.
        let root = if top.join("sys").exists() {
            top
        } else {
            top.join("fsroot")
        };
        let from_dir =
            load_host(root.to_str().unwrap(), None).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let flat_path = data(&format!(
            "topologies/hwloc/hwloc-tests-sysfs-flat/{stem}.sysfs.txt"
        ));
        let flat = load_host(flat_path.to_str().unwrap(), None).unwrap();
        assert_eq!(from_dir.distances, flat.distances, "{stem}: distances");
        assert_eq!(from_dir.cpu_count(), flat.cpu_count(), "{stem}: cpus");
        let flat_maps_cpus = flat.cells.iter().any(|c| !c.is_cpuless());
        if flat_maps_cpus {
            assert_eq!(
                cell_summary(&from_dir),
                cell_summary(&flat),
                "{stem}: cells"
            );
        } else {
            // The flat dump kept no cpumap files; the tarball has them.
            let ids = |h: &Host| {
                h.cells
                    .iter()
                    .map(|c| (c.id, c.memory_kb))
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(&from_dir), ids(&flat), "{stem}: cells");
        }
        let pages = |h: &Host| h.cells.iter().map(|c| c.pages.clone()).collect::<Vec<_>>();
        assert_eq!(pages(&from_dir), pages(&flat), "{stem}: page pools");
    }
}

#[test]
fn libvirt_capabilities_carry_pages_siblings_and_cpuless_cells() {
    let h = load_host(
        data("topologies/libvirt/caps-qemu-real-full.host-excerpt.xml")
            .to_str()
            .unwrap(),
        None,
    )
    .unwrap();
    let cell = &h.cells[0];
    assert_eq!(
        cell.pages.iter().map(|p| p.size_kb).collect::<Vec<_>>(),
        vec![4, 2048, 1048576]
    );
    assert_eq!(cell.pages[0].total, 15848306);
    assert_eq!(cell.cpus[0].siblings, vec![0, 16]);
    assert_eq!(h.threads_per_core(), 2);
    let hmat = load_host(
        data("topologies/libvirt/vircaps-x86_64-hmat.xml")
            .to_str()
            .unwrap(),
        None,
    )
    .unwrap();
    assert!(hmat.cells[1].is_cpuless());
    assert!(hmat.warnings.iter().any(|w| w.contains("default")));
}

#[test]
fn hwloc_special_nodes_give_way_to_dram_nodes() {
    let p =
        data("topologies/hwloc/hwloc-tests-sysfs-xml/nvidiagpunumanodes-keptgpunodes.lstopo.xml");
    let h = load_host(p.to_str().unwrap(), None).unwrap();
    let ids: Vec<u32> = h.cells.iter().map(|c| c.id).collect();
    assert_eq!(ids, vec![0, 8, 250, 251, 252, 253, 254, 255]);
    assert_eq!(h.cells[0].cpus.len(), 16);
    assert_eq!(h.distance(0, 8), Some(40));
    assert_eq!(h.distance(250, 0), Some(80));
}

#[test]
fn hwloc_pci_devices_carry_their_numa_node() {
    let p = data("topologies/hwloc/hwloc-tests-xml/24em64t-2n6c2t-pci.xml");
    let h = load_host(p.to_str().unwrap(), None).unwrap();
    assert_eq!(h.pci_devices.len(), 9);
    let nic = h
        .pci_devices
        .iter()
        .find(|d| d.address.as_deref() == Some("0000:04:00.0"))
        .unwrap();
    assert_eq!(
        (nic.vendor_id.as_str(), nic.product_id.as_str()),
        ("8086", "10c9")
    );
    assert!(nic.numa_node.is_some());
    let out = numasim(&["topology", "show", p.to_str().unwrap()]);
    assert!(stdout(&out).contains("pci 8086:10c9"));
}

#[test]
fn numactl_text_with_cpuless_and_memoryless_nodes() {
    let h = load_host(
        data("numactl/synthetic-4node.numactl.txt")
            .to_str()
            .unwrap(),
        None,
    )
    .unwrap();
    assert!(h.cells[2].is_cpuless());
    assert_eq!(h.cells[3].memory_kb, 0);
    assert_eq!(h.cells[1].free_kb, Some(12000 * 1024));
    assert_eq!(h.distance(1, 2), Some(24));
}

#[test]
fn show_dl980_prints_listing_1() {
    let out = numasim(&["topology", "show", "dl980"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for line in [
        "available: 8 nodes (0-7)",
        "node 0 cpus: 0 1 2 3 4 5 6 7 8 9",
        "node 0 size: 16373 MB",
        "node 7 cpus: 70 71 72 73 74 75 76 77 78 79",
        "  0:  10  12  17  17  19  19  19  19",
        "  5:  19  19  19  19  12  10  17  17",
        "  7:  19  19  19  19  17  17  12  10",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
}

#[test]
fn json_has_the_documented_shape_and_round_trips() {
    let out = numasim(&["topology", "show", "cxl-2s", "--format", "json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    assert_eq!(cells[2]["cpus"], serde_json::json!([]));
    assert_eq!(cells[0]["distances"]["2"], 14);
    assert!(cells[0]["pages"][0]["size_kb"].is_u64());
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("h.json");
    let src = data("topologies/hwloc/llnl-mpibind/epyc-corona.xml");
    let conv = numasim(&[
        "topology",
        "convert",
        src.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(conv.status.success(), "{}", stderr(&conv));
    let a = load_host(src.to_str().unwrap(), None).unwrap();
    let b = load_host(out_path.to_str().unwrap(), None).unwrap();
    assert_eq!(a, b);
}

fn bad(content: &str) -> (i32, String) {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad-input.xml");
    std::fs::write(&p, content).unwrap();
    let out = numasim(&["topology", "show", p.to_str().unwrap()]);
    (out.status.code().unwrap(), stderr(&out))
}

#[test]
fn bad_inputs_name_the_file_and_the_place() {
    let (code, err) = bad("<capabilities><host><topology><cells><cell id='0'>");
    assert_eq!(code, 2);
    assert!(
        err.contains("bad-input.xml") && err.contains("line 1") && err.contains("malformed XML"),
        "{err}"
    );

    let (code, err) = bad(
        "<capabilities><host><topology><cells>\n<cell id='0'><cpus><cpu id='1'/></cpus></cell>\n<cell id='1'><cpus><cpu id='1'/></cpus></cell></cells></topology></host></capabilities>",
    );
    assert_eq!(code, 2);
    assert!(err.contains("CPU 1 appears more than once"), "{err}");

    let (code, err) = bad(
        "available: 2 nodes (0-1)\nnode 0 cpus: 0\nnode 0 size: 10 MB\nnode 1 cpus: 1\nnode 1 size: 10 MB\nnode distances:\nnode 0 1\n 0: 10 20\n 1: 20\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("line 9") && err.contains("1 values, expected 2"),
        "{err}"
    );

    let (code, err) = bad("available: 1 nodes (0)\nnode 0 cpus: 0\nnode 0 size: -5 MB\n");
    assert_eq!(code, 2);
    assert!(err.contains("line 3") && err.contains("-5"), "{err}");

    let (code, err) = bad("hello world\n");
    assert_eq!(code, 2);
    assert!(err.contains("cannot tell the topology format"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let out = numasim(&["topology", "show", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a sysfs root"));
}

#[test]
fn cpuid_only_captures_import_with_a_warning() {
    let p = data("topologies/hwloc/hwloc-tests-x86-cpuid/AMD-19h-Zen4-2xEpyc-9654.xml");
    let h = load_host(p.to_str().unwrap(), None).unwrap();
    assert_eq!(h.cpu_count(), 384);
    assert_eq!(h.sockets().len(), 2);
    assert!(h.warnings.iter().any(|w| w.contains("no NUMA memory")));
}

mod fuzz {
    use numasim::topology::import::{self, Format};
    use proptest::prelude::*;

    fn seeds() -> &'static [String] {
        static SEEDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        SEEDS.get_or_init(read_seeds)
    }

    fn read_seeds() -> Vec<String> {
        let base = crate::common::data("topologies");
        [
            "libvirt/caps-test3.xml",
            "libvirt/vircaps-x86_64-hmat.xml",
            "hwloc/hwloc-tests-xml/32em64t-2n8c2t-pci-noio.xml",
            "hwloc/llnl-mpibind/knl-quad-flat-hwloc1.xml",
            "hwloc/hwloc-tests-sysfs-flat/8ia64-2n2s2c.sysfs.txt",
        ]
        .iter()
        .map(|f| std::fs::read_to_string(base.join(f)).unwrap())
        .chain(std::iter::once(
            std::fs::read_to_string(crate::common::data("numactl/synthetic-4node.numactl.txt"))
                .unwrap(),
        ))
        .collect()
    }

    fn try_all(text: &str) {
        for f in [
            Format::Json,
            Format::Libvirt,
            Format::Numactl,
            Format::Hwloc,
            Format::SysfsFlat,
        ] {
            let _ = import::import_text(f, "x", text);
        }
        let _ = import::detect(text);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,400}") {
            try_all(&s);
        }

        #[test]
        fn mutated_captures_never_panic(which in 0usize..6, pos in any::<prop::sample::Index>(), len in 0usize..40, insert in "[0-9<>/='\" a-z,\\-\n]{0,12}") {
            let seeds = seeds();
            let text = &seeds[which];
            let mut bytes = text.as_bytes().to_vec();
            let at = pos.index(bytes.len().max(1)).min(bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.splice(at..end, insert.bytes());
            let mutated = String::from_utf8_lossy(&bytes);
            try_all(&mutated);
        }
    }
}

#[test]
fn an_error_is_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("g.txt");
    std::fs::write(&p, "garbage\n").unwrap();
    let r = numasim(&["topology", "show", p.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    let err = stderr(&r);
    assert_eq!(
        err.matches("cannot tell the topology format").count(),
        1,
        "{err}"
    );
}

#[test]
fn devices_and_fifos_as_inputs_are_refused_at_once() {
    // A FIFO would block a read, /dev/zero never ends: both are refused
    // by name, with exit 2, before anything is read.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("host");
    let node = root.join("sys/devices/system/node/node0");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::create_dir_all(root.join("sys/devices/system/cpu")).unwrap();
    std::fs::write(node.join("distance"), "10\n").unwrap();
    let fifo = node.join("cpulist");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success(), "mkfifo");
    let out = numasim(&["topology", "show", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("node0/cpulist: not a regular file"),
        "{}",
        stderr(&out)
    );
    for args in [
        vec!["run", "/dev/zero"],
        vec!["run", "scenarios/quickstart.toml", "--trace", "/dev/zero"],
        vec!["topology", "show", "/dev/zero"],
    ] {
        let mut args = args;
        let out_dir = tmp.path().join("out");
        if args[0] == "run" {
            args.extend(["--out", out_dir.to_str().unwrap()]);
        }
        let out = numasim(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("/dev/zero"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!out_dir.join("summary.csv").exists(), "{args:?}");
    }
}

#[test]
fn sizes_that_would_overflow_are_refused_by_key() {
    // 2^54 MB wrapped to 0 MB once (x1024 overflowed): now refused, by key.
    let tmp = tempfile::tempdir().unwrap();
    let caps = data("libvirt/caps_fake_4node.xml");
    let host = tmp.path().join("h.json");
    let out = numasim(&[
        "libvirt",
        "capture",
        "--connect",
        &format!("sim:{}", caps.display()),
        "-o",
        host.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&host).unwrap()).unwrap();
    for (key, edit) in [
        ("memory_mb", ("memory_mb", 1u64 << 54)),
        ("pages[size_kb=2048].total", ("pages", 1u64 << 60)),
    ] {
        let mut d = doc.clone();
        match edit {
            ("pages", v) => d["cells"][0]["pages"][1]["total"] = v.into(),
            (k, v) => d["cells"][0][k] = v.into(),
        }
        let bad = tmp.path().join("bad.json");
        std::fs::write(&bad, d.to_string()).unwrap();
        let out = numasim(&["topology", "show", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{key}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("cell 0: {key} is beyond")),
            "{key}: {}",
            stderr(&out)
        );
    }
}

//! The domain XML of placements.

use crate::common::{data, numasim, stderr, stdout};

fn xml_for(case: &str, extra: &[&str]) -> String {
    let mut args = vec!["libvirt", "xml", "--case", case];
    let path = data("fit-cases/cases.jsonl");
    args.insert(2, path.to_str().unwrap());
    args.extend_from_slice(extra);
    let out = numasim(&args);
    assert!(out.status.success(), "{case}: {}", stderr(&out));
    stdout(&out)
}

fn validate(xml: &str) {
    roxmltree::Document::parse(xml).expect("well-formed");
    // virt-xml-validate (libvirt-clients + libxml2-utils) checks the libvirt schema when installed.
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok()
    };
    if have("virt-xml-validate") && have("xmllint") {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("dom.xml");
        std::fs::write(&p, xml).unwrap();
        let v = std::process::Command::new("virt-xml-validate")
            .arg(&p)
            .arg("domain")
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{}\n{}{}",
            xml,
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

/// Fitting cases of each kind, with what their XML must show.
#[test]
fn placements_become_valid_domain_xml() {
    let cases: Vec<serde_json::Value> = std::fs::read_to_string(data("fit-cases/cases.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let answers: Vec<serde_json::Value> =
        std::fs::read_to_string(data("fit-cases/nova-34.0.0.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mut checked = 0;
    for (c, a) in cases.iter().zip(&answers) {
        if a["fits"] != true {
            continue;
        }
        let id = c["id"].as_str().unwrap();
        let xml = xml_for(id, &["--memory-mode", "preferred"]);
        validate(&xml);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let cells = a["cells"].as_array().unwrap();
        // One <cell> and one <memnode> per guest cell, on the host cell Nova chose.
        let memnodes: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("memnode"))
            .collect();
        assert_eq!(memnodes.len(), cells.len(), "{id}");
        for (m, cell) in memnodes.iter().zip(cells) {
            assert_eq!(
                m.attribute("nodeset").unwrap(),
                cell["host_cell"].to_string(),
                "{id}"
            );
            assert_eq!(m.attribute("mode"), Some("preferred"));
        }
        // Every pinned vCPU is pinned to Nova's pCPU.
        for cell in cells {
            if let Some(pin) = cell["cpu_pinning"].as_object() {
                for (v, p) in pin {
                    let needle = format!("<vcpupin vcpu='{v}' cpuset='{p}'/>");
                    assert!(xml.contains(&needle), "{id}: {needle}\n{xml}");
                }
            }
            if let Some(size) = cell["pagesize_kb"].as_i64().filter(|s| *s > 4) {
                assert!(
                    xml.contains(&format!("<page size='{size}' unit='KiB'")),
                    "{id}"
                );
            }
            if let Some(r) = cell["cpuset_reserved"].as_array() {
                assert!(
                    xml.contains(&format!("<emulatorpin cpuset='{}'/>", r[0])),
                    "{id}"
                );
            }
        }
        checked += 1;
        if checked == 120 {
            break;
        }
    }
    assert_eq!(checked, 120);
}

#[test]
fn a_guest_that_does_not_fit_has_no_xml() {
    let out = numasim(&[
        "libvirt",
        "xml",
        data("fit-cases/cases.jsonl").to_str().unwrap(),
        "--case",
        "c00001",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not fit"));
    let missing = numasim(&[
        "libvirt",
        "xml",
        data("fit-cases/cases.jsonl").to_str().unwrap(),
        "--case",
        "nope",
    ]);
    assert_eq!(missing.status.code(), Some(2));
}

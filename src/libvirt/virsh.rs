//! The libvirt backend through `virsh` subprocesses: nothing to link, the
//! same commands an operator would type, and libvirt's own error messages.
//! Works with any URI whose state outlives a connection (`qemu:///system`,
//! `qemu+ssh://host/system`); the in-process test driver (`test:///`)
//! forgets everything between two virsh processes.

use super::backend::{Backend, BackendError, FreeState, Pinning, pinning_of};
use std::collections::BTreeMap;
use std::process::Command;

pub struct Virsh {
    pub uri: String,
    /// Where domain XML files are written for `virsh define`.
    dir: tempfile::TempDir,
}

impl Virsh {
    pub fn connect(uri: &str) -> Result<Virsh, BackendError> {
        let dir = tempfile::tempdir().map_err(|e| BackendError::Libvirt {
            action: "temporary directory".into(),
            message: e.to_string(),
        })?;
        let v = Virsh {
            uri: uri.into(),
            dir,
        };
        // Fails early, with libvirt's words, on an unreachable URI.
        v.run("connect", &["uri"])?;
        Ok(v)
    }

    fn run(&self, action: &str, args: &[&str]) -> Result<String, BackendError> {
        let out = Command::new("virsh")
            .args(["-q", "-c", &self.uri])
            .args(args)
            .output()
            .map_err(|e| BackendError::Libvirt {
                action: action.into(),
                message: format!("cannot run virsh ({e}); install libvirt-clients"),
            })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let message: Vec<&str> = err
            .lines()
            .map(|l| l.trim().trim_start_matches("error: "))
            .filter(|l| !l.is_empty())
            .collect();
        Err(BackendError::Libvirt {
            action: format!("{action} ({})", self.uri),
            message: message.join("; "),
        })
    }
}

fn parse_error(what: &str, detail: impl Into<String>) -> BackendError {
    BackendError::Parse {
        what: what.into(),
        detail: detail.into(),
    }
}

/// `virsh freecell --all`: `    0:   15728640 KiB` per cell, then a total.
pub fn parse_freecell(text: &str) -> Result<BTreeMap<u32, u64>, BackendError> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        let Some((cell, rest)) = line.split_once(':') else {
            continue;
        };
        let Ok(cell) = cell.trim().parse::<u32>() else {
            continue; // "Total" and the rule
        };
        let kb = rest
            .trim()
            .strip_suffix("KiB")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or_else(|| parse_error("virsh freecell", format!("line `{line}`")))?;
        out.insert(cell, kb);
    }
    Ok(out)
}

/// `virsh freepages --all`: `Node N:` then `SIZEKiB: COUNT` lines.
pub fn parse_freepages(text: &str) -> Result<BTreeMap<(u32, u64), u64>, BackendError> {
    let mut out = BTreeMap::new();
    let mut node = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(n) = line.strip_prefix("Node ") {
            node = Some(
                n.trim_end_matches(':')
                    .parse::<u32>()
                    .map_err(|_| parse_error("virsh freepages", format!("line `{line}`")))?,
            );
            continue;
        }
        let bad = || parse_error("virsh freepages", format!("line `{line}`"));
        let (size, count) = line.split_once(':').ok_or_else(bad)?;
        let size: u64 = size
            .trim()
            .strip_suffix("KiB")
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        out.insert((node.ok_or_else(bad)?, size), count);
    }
    Ok(out)
}

/// `virsh vcpuinfo`: each vCPU's `CPU Affinity: yy--` map.
pub fn parse_vcpuinfo(text: &str) -> Result<BTreeMap<u32, Vec<u32>>, BackendError> {
    let mut out = BTreeMap::new();
    let mut vcpu = None;
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "VCPU" => vcpu = value.trim().parse::<u32>().ok(),
            "CPU Affinity" => {
                let v = vcpu
                    .ok_or_else(|| parse_error("virsh vcpuinfo", "affinity before a VCPU line"))?;
                let cpus = value
                    .trim()
                    .chars()
                    .enumerate()
                    .filter(|(_, c)| *c == 'y')
                    .map(|(i, _)| i as u32)
                    .collect();
                out.insert(v, cpus);
            }
            _ => {}
        }
    }
    Ok(out)
}

impl Backend for Virsh {
    fn capabilities(&mut self) -> Result<String, BackendError> {
        self.run("capabilities", &["capabilities"])
    }

    fn free_state(&mut self) -> Result<FreeState, BackendError> {
        let memory_kb = parse_freecell(&self.run("freecell", &["freecell", "--all"])?)?;
        let pages = parse_freepages(&self.run("freepages", &["freepages", "--all"])?)?;
        Ok(FreeState { memory_kb, pages })
    }

    fn define(&mut self, name: &str, xml: &str) -> Result<(), BackendError> {
        let path = self.dir.path().join(format!("{name}.xml"));
        std::fs::write(&path, xml).map_err(|e| BackendError::Libvirt {
            action: format!("define {name}"),
            message: format!("{}: {e}", path.display()),
        })?;
        let path = path.to_string_lossy().into_owned();
        self.run(&format!("define {name}"), &["define", &path])
            .map(drop)
    }

    fn start(&mut self, name: &str) -> Result<(), BackendError> {
        self.run(&format!("start {name}"), &["start", name])
            .map(drop)
    }

    fn read_back(&mut self, name: &str) -> Result<Pinning, BackendError> {
        pinning_of(&self.run(&format!("dumpxml {name}"), &["dumpxml", name])?)
    }

    fn live_affinity(&mut self, name: &str) -> Result<BTreeMap<u32, Vec<u32>>, BackendError> {
        parse_vcpuinfo(&self.run(&format!("vcpuinfo {name}"), &["vcpuinfo", name])?)
    }

    fn remove(&mut self, name: &str) -> Result<(), BackendError> {
        // Not running is fine; undefining is what must succeed.
        let _ = self.run(&format!("destroy {name}"), &["destroy", name]);
        self.run(&format!("undefine {name}"), &["undefine", name])
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_virsh_tables() {
        let free = parse_freecell(
            "    0:   15728640 KiB\n    1:   15724544 KiB\n--------------------\nTotal:   31453184 KiB\n",
        )
        .unwrap();
        assert_eq!(free, BTreeMap::from([(0, 15728640), (1, 15724544)]));
        let pages =
            parse_freepages("Node 0:\n4KiB: 3932160\n2048KiB: 1024\n\nNode 1:\n2048KiB: 1023\n")
                .unwrap();
        assert_eq!(pages.get(&(1, 2048)), Some(&1023));
        assert_eq!(pages.get(&(0, 4)), Some(&3932160));
        let aff = parse_vcpuinfo(
            "VCPU:           0\nCPU:            0\nState:          running\nCPU Affinity:   y-\n\nVCPU:           1\nCPU:            1\nCPU Affinity:   -y\n",
        )
        .unwrap();
        assert_eq!(aff, BTreeMap::from([(0, vec![0]), (1, vec![1])]));
        assert!(parse_freepages("Node x:\n").is_err());
    }
}

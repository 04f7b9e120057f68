//! The I/O edge for hosts: turns a path (file, sysfs directory) or a preset
//! name into a [`Host`], with errors that name the file.

use crate::topology::import::{self, Format, ImportError, SysfsTree, UnknownFormat};
use crate::topology::{Host, presets};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Import { path: PathBuf, source: ImportError },
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        source: UnknownFormat,
    },
    #[error("{path}: not valid UTF-8 text")]
    NotText { path: PathBuf },
    #[error("`{0}` is neither a file, a directory nor a preset (presets: {1})")]
    NotFound(String, String),
    #[error(
        "{path}: no sys/devices/system/node or sys/devices/system/cpu below this directory: not a sysfs root"
    )]
    NoSysfs { path: PathBuf },
}

/// A host from a preset name, a topology file, or a directory that holds
/// `sys/devices/system/{node,cpu}` (use `/` for this machine).
pub fn load_host(spec: &str, forced: Option<Format>) -> Result<Host, LoadError> {
    let path = Path::new(spec);
    if !path.exists()
        && let Some(p) = presets::find(spec)
    {
        return Ok(p.host());
    }
    if path.is_dir() {
        let tree = read_sysfs_dir(path)?;
        let name = host_name(path);
        return import::sysfs::parse(&name, &tree).map_err(|source| LoadError::Import {
            path: path.to_path_buf(),
            source,
        });
    }
    if !path.is_file() {
        let names: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
        return Err(LoadError::NotFound(spec.to_string(), names.join(", ")));
    }
    let bytes = crate::input::read_bytes(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| LoadError::NotText {
        path: path.to_path_buf(),
    })?;
    let format = match forced {
        Some(f) => f,
        None => import::detect(&text).map_err(|source| LoadError::Format {
            path: path.to_path_buf(),
            source,
        })?,
    };
    import::import_text(format, &host_name(path), &text).map_err(|source| LoadError::Import {
        path: path.to_path_buf(),
        source,
    })
}

fn host_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or("");
    if stem.is_empty() {
        "host".into()
    } else {
        stem.to_string()
    }
}

/// Reads the NUMA-relevant files below a sysfs root into a path map.
pub fn read_sysfs_dir(root: &Path) -> Result<SysfsTree, LoadError> {
    let node_dir = root.join("sys/devices/system/node");
    let cpu_dir = root.join("sys/devices/system/cpu");
    if !node_dir.is_dir() && !cpu_dir.is_dir() {
        return Err(LoadError::NoSysfs {
            path: root.to_path_buf(),
        });
    }
    let mut tree = SysfsTree::default();
    // A missing or unreadable attribute is normal in a capture; anything
    // else (a FIFO, a device, a file too large) is not sysfs and refused.
    let mut refused: Option<LoadError> = None;
    let mut put = |rel: String| {
        let path = root.join(&rel);
        match crate::input::read_text(&path) {
            // Some captures pad sysfs files with NUL bytes.
            Ok(content) => {
                tree.files.insert(rel, content.replace('\0', ""));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) => {}
            Err(source) => {
                refused.get_or_insert(LoadError::Io { path, source });
            }
        }
    };
    put("proc/meminfo".into());
    put("sys/devices/system/cpu/online".into());
    put("sys/devices/system/node/possible".into());
    for (dir, prefix) in [(&node_dir, "node"), (&cpu_dir, "cpu")] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| {
                n.strip_prefix(prefix)
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        names.sort();
        for name in names {
            let rel_dir = format!("sys/devices/system/{prefix}/{name}");
            if prefix == "node" {
                for f in ["cpulist", "cpumap", "distance", "meminfo"] {
                    put(format!("{rel_dir}/{f}"));
                }
                if let Ok(pools) = std::fs::read_dir(root.join(&rel_dir).join("hugepages")) {
                    let mut pools: Vec<String> = pools
                        .filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .collect();
                    pools.sort();
                    for pool in pools {
                        for f in ["nr_hugepages", "free_hugepages"] {
                            put(format!("{rel_dir}/hugepages/{pool}/{f}"));
                        }
                    }
                }
            } else {
                for f in [
                    "core_id",
                    "physical_package_id",
                    "thread_siblings_list",
                    "thread_siblings",
                ] {
                    put(format!("{rel_dir}/topology/{f}"));
                }
            }
        }
    }
    match refused {
        Some(e) => Err(e),
        None => Ok(tree),
    }
}

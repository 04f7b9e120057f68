//! Importers: text (or a sysfs path map) in, `Host` out. The caller reads the
//! file; these functions never touch the file system.

pub mod hwloc;
pub mod libvirt;
pub mod numactl;
pub mod sysfs;

use super::Host;
use super::wire;

pub use sysfs::SysfsTree;

/// The topology formats numasim reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// numasim's canonical JSON (what `topology convert` writes).
    Json,
    /// `virsh capabilities` XML.
    Libvirt,
    /// `numactl --hardware` text.
    Numactl,
    /// hwloc XML, v1 or v2 (`lstopo foo.xml`).
    Hwloc,
    /// A flat sysfs dump: `== path` lines, each followed by the file's content.
    SysfsFlat,
}

impl Format {
    pub fn describe(self) -> &'static str {
        match self {
            Format::Json => "numasim topology JSON",
            Format::Libvirt => "libvirt capabilities XML",
            Format::Numactl => "numactl --hardware output",
            Format::Hwloc => "hwloc XML",
            Format::SysfsFlat => "Linux sysfs capture",
        }
    }
}

/// A problem in an input file: where (1-based line when known) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message} (reading it as {})", line.map(|l| format!("line {l}: ")).unwrap_or_default(), format.describe())]
pub struct ImportError {
    pub format: Format,
    pub line: Option<usize>,
    pub message: String,
}

impl ImportError {
    pub fn new(format: Format, line: Option<usize>, message: impl Into<String>) -> Self {
        ImportError {
            format,
            line,
            message: message.into(),
        }
    }
}

/// Could not decide the format of a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot tell the topology format from the content: expected libvirt capabilities XML (<capabilities>), \
     hwloc XML (<topology>), numactl -H text (`available: N nodes`), a flat sysfs dump (`== sys/...` lines) \
     or numasim JSON; pass --format-in to force one"
)]
pub struct UnknownFormat;

/// Guesses the format from the first bytes of the content.
pub fn detect(text: &str) -> Result<Format, UnknownFormat> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') {
        return Ok(Format::Json);
    }
    if trimmed.starts_with('<') {
        if text.contains("<capabilities") {
            return Ok(Format::Libvirt);
        }
        if text.contains("<topology") {
            return Ok(Format::Hwloc);
        }
        return Err(UnknownFormat);
    }
    let meaningful = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    for line in meaningful.take(5) {
        if line.starts_with("== ") {
            return Ok(Format::SysfsFlat);
        }
        if line.starts_with("available:") || (line.starts_with("node ") && line.contains("cpus:")) {
            return Ok(Format::Numactl);
        }
    }
    Err(UnknownFormat)
}

/// Imports a host from text in the given format. `name` labels the host.
pub fn import_text(format: Format, name: &str, text: &str) -> Result<Host, ImportError> {
    match format {
        Format::Json => {
            wire::from_json(text).map_err(|e| ImportError::new(Format::Json, e.line, e.message))
        }
        Format::Libvirt => libvirt::parse(name, text),
        Format::Numactl => numactl::parse(name, text),
        Format::Hwloc => hwloc::parse(name, text),
        Format::SysfsFlat => sysfs::parse(name, &SysfsTree::from_flat(text)?),
    }
}

/// Shared helper for XML importers: the 1-based line of a node.
pub(crate) fn xml_line(doc: &roxmltree::Document, node: roxmltree::Node) -> usize {
    doc.text_pos_at(node.range().start).row as usize
}

pub(crate) fn xml_error(format: Format, err: roxmltree::Error) -> ImportError {
    let pos = err.pos();
    ImportError::new(
        format,
        Some(pos.row as usize),
        format!("malformed XML: {err}"),
    )
}

//! The fit engine: does a guest NUMA topology fit a host, and how.
//!
//! One engine serves the scheduler's filter, the claim and the libvirt XML.
//! Its semantics are those of Nova 34.0.0's `numa_fit_instance_to_host`
//! (`Mode::Nova`, quirks included) or the same algorithm without Nova's
//! caches and request mutation (`Mode::Clean`). See `search` for how the
//! permutation search avoids Nova's combinatorial blow-up.

pub mod case;
pub mod cell;
pub mod cpubits;
pub mod host;
pub mod pci;
pub mod pyset;
pub mod search;
pub mod usage;

pub use host::{HostCell, HostTopology, Limits, MemPages, NetworkMetadata, PciPool, PciRequest};
pub use search::{FitOptions, fit_instance_to_host};
pub use usage::{UsageError, apply_usage, usage_from_instance};

/// Nova-exact (quirks included) or clean semantics.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Nova 34.0.0 bug for bug: stale fit caches, page size locked on the
    /// first cell tried, pinning in CPython set order.
    #[default]
    Nova,
    /// The same search without caches carrying mutated cells between
    /// attempts, and with sorted CPU sets.
    Clean,
}

/// Nova raised inside the fit (phase `fit`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct FitError {
    pub kind: &'static str,
    pub message: String,
}

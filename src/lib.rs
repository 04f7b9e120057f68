//! numasim: a discrete-event simulator for NUMA-aware guest placement.
//!
//! The core modules (`topology`, and the ones built on it) take values and
//! return values; only [`load`] reads files. See ARCHITECTURE.md.

pub mod bench;
pub mod capacity;
pub mod check;
pub mod convert;
pub mod fit;
pub mod libvirt;
pub mod load;
pub mod plot;
pub mod replay;
pub mod report;
pub mod request;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod stats;
pub mod sweep;
pub mod sweep_plots;
pub mod topology;
pub mod trace;
pub mod tracestats;
pub mod twin;

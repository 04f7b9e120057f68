//! numasim: a discrete-event simulator for NUMA-aware guest placement.
//!
//! The core (`topology`, `request`, `fit`, `sim`) takes values and returns
//! values: it never touches files and never builds sentences. `workload`,
//! `experiment`, `report` and `libvirt`'s backends sit at the edges. See
//! ARCHITECTURE.md.

pub mod error;
pub mod experiment;
pub mod fit;
pub mod input;
pub mod libvirt;
pub mod report;
pub mod request;
pub mod sim;
pub mod stable_hash;
pub mod topology;
pub mod workload;

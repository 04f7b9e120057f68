//! numasim's integration tests: one binary, one module per area.

mod common;
mod fit;
mod fuzz;
mod libvirt;
mod policy;
mod replay;
mod sim;
mod sweep;
mod topology;
mod traces;

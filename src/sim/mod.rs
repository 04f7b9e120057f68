//! The discrete-event simulator: fleet state, scheduler, event loop.
//!
//! The core takes values (hosts, a catalog, a stream of trace rows) and
//! reports what happens to an [`Observer`]; it never touches files.

pub mod cost;
pub mod engine;
pub mod explain;
pub mod fleet;
pub mod memory;
pub mod metrics;
pub mod queue;
pub mod rebalance;

pub use engine::{
    Decision, GuestCost, HostCheck, Observer, SimConfig, SimError, Simulation, Strategy,
};

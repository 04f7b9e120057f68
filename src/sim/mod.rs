//! The discrete-event simulator: fleet state, scheduler, event loop, and
//! the placement policies behind one interface (`policy`).
//!
//! The core takes values (hosts, a catalog, a stream of trace rows) and
//! reports what happens to an [`Observer`]; it never touches files and
//! never builds sentences.

pub mod binding;
pub mod config;
pub mod cost;
pub mod engine;
pub mod explain;
pub mod fleet;
pub mod memory;
pub mod metrics;
pub mod observer;
pub mod policy;
pub mod queue;
pub mod refusal;
pub mod scheduler;

pub use binding::{Binding, ManualTuning};
pub use config::{HostCheck, SimConfig, Strategy};
pub use cost::GuestCost;
pub use engine::{SimError, Simulation};
pub use observer::{Decision, Observer};
pub use policy::{PlacementPolicy, Registry};
pub use refusal::{Refusal, Rejection};

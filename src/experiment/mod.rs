//! Scenarios and what runs them: the scenario schema, resolving its files
//! into hosts, a catalog and a workload, running policies × seeds, sweeps
//! over parameters, capacity searches and benchmarks.

pub mod bench;
pub mod capacity;
pub mod fleet;
pub mod load;
pub mod reference;
pub mod run;
pub mod scenario;
pub mod scheduler;
pub mod sweep;

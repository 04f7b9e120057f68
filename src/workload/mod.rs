//! Guests: flavor catalogs and traces (the native CSVs), public traces
//! converted into them, synthetic twins of traces, and trace statistics.

pub mod convert;
pub mod model;
pub mod shapes;
pub mod stats;
pub mod synthetic;
pub mod trace;
pub mod twin;

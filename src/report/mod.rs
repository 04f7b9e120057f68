//! The edge that turns results into words, tables, files and charts:
//! sentences from the core's values, baseline checks, statistics, charts,
//! and the replay writer.

pub mod check;
pub mod html;
pub mod metrics;
pub mod output;
pub mod plot;
pub mod replay;
pub mod stats;
pub mod summary;
pub mod sweep_plots;
pub mod trace_stats;
pub mod verdict;
pub mod words;

//! The fit engine: Nova's NUMA placement semantics.

pub mod pyset;

//! The edge that turns results into words, tables, files and charts.

pub mod words;

//! Observers that turn simulation events into measurements.

//! Skiff's benchmarks.
//!
//! - [`core`]: the Raft core alone — three in-process nodes over the in-memory log, node 1 the
//!   fixed leader, closed-loop clients writing empty payloads — shaped like openraft's
//!   `benchmarks/minimal` so that the two can be compared (`bench/core.sh` runs both).
//! - [`report`]: the one-line result both benchmarks print, for people and for scripts.
#![deny(missing_docs)]

pub mod core;
pub mod report;

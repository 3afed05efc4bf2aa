//! Skiff's benchmarks.
//!
//! - [`core`]: the Raft core alone — three in-process nodes over the in-memory log, node 1 the
//!   fixed leader, closed-loop clients writing empty payloads — shaped like openraft's
//!   `benchmarks/minimal` so that the two can be compared (`bench/core.sh` runs both).
//!   `--shape loop` drives all of it from one thread; `--shape threads` gives each node a
//!   thread and the clients another, as openraft's benchmark spreads its nodes and clients over
//!   two runtimes.
//! - [`report`]: the one-line result both benchmarks print, for people and for scripts.
#![deny(missing_docs)]

pub mod core;
pub mod report;
mod threads;

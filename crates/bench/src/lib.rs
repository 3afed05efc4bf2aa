//! Skiff's benchmarks.
//!
//! - [`core`]: the Raft core alone — three in-process nodes over the in-memory log, node 1 the
//!   fixed leader, closed-loop clients writing empty payloads — shaped like openraft's
//!   `benchmarks/minimal` so that the two can be compared (`bench/core.sh` runs both).
//!   `--shape loop` drives all of it from one thread; `--shape threads` gives each node a
//!   thread and the clients another, as openraft's benchmark spreads its nodes and clients over
//!   two runtimes.
//! - [`codec`]: the byte codecs on the hot path — AppendEntries on the peer wire, a client
//!   write as a log entry carries it, WAL batches appended to the in-memory disk — timed as
//!   the median nanoseconds per operation over several rounds (`skiff-bench codec`).
//! - [`apply`]: the key-value state machine applying `SET`s decoded from log entries, with
//!   sessions, optionally while a frozen snapshot is serialized on another thread
//!   (`skiff-bench apply`).
//! - [`report`]: the one-line result both benchmarks print, for people and for scripts.
#![deny(missing_docs)]

pub mod apply;
pub mod codec;
pub mod core;
pub mod report;
mod threads;

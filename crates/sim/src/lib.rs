//! Skiff's deterministic simulator: the real Raft core, a faulty network and crashing nodes,
//! driven by one seed, with independent checkers of Raft's safety properties after every step.
//!
//! # Layout
//! - [`cluster`]: the simulated cluster — event queue, logical time, faults, clients.
//! - [`node`]: one node's durable disk and volatile core; the persist → send → apply → advance loop.
//! - [`network`]: loss, delay, reordering, duplication, partitions of every shape.
//! - [`checkers`]: one safety property per file, fed only observed facts.
//! - [`run`]: a randomized run — plan from the seed, fault phase, healing phase.
//! - [`workload`]: key-value clients that record histories for the linearizability checker.
//! - [`trace`]: the trace hash and the readable tail printed on a violation.
//! - [`kv`]: the simulated state machine — a small key-value store, commands in log entries.
//! - [`history`]: client histories in the JSON-lines format shared by every linearizability check.
//! - [`linearizability`]: the Wing–Gong/Lowe checker for key-value histories.
#![deny(missing_docs)]

pub mod checkers;
pub mod cluster;
pub mod history;
pub mod kv;
pub mod linearizability;
pub mod network;
pub mod node;
pub mod run;
pub mod trace;
pub mod workload;

pub use checkers::Violation;
pub use cluster::{Cluster, ClusterOptions, Proposal, Stats};
pub use network::{NetworkOptions, Partition};
pub use run::{run_seed, FaultSwitches, RunOptions, RunReport};

//! Skiff's deterministic simulator: the real node driver (`skiff-node`: the Raft core, the
//! WAL over a simulated disk, the key-value state machine), a faulty network, crashing nodes
//! and failing disks, driven by one seed, with independent checkers of Raft's safety
//! properties after every step.
//!
//! # Layout
//! - [`cluster`]: the simulated cluster — event queue, logical time, faults, clients.
//! - [`node`]: one node: its simulated disk, which outlives crashes, and the real
//!   `skiff_node::Node` running over it.
//! - [`observer`]: what a node reports durable and applied, recorded for the checkers.
//! - [`network`]: loss, delay, reordering, duplication, partitions of every shape.
//! - [`checkers`]: one safety property per file, fed only observed facts.
//! - [`run`]: a randomized run — plan from the seed, fault phase, healing phase.
//! - [`workload`]: key-value clients that record histories for the linearizability checker.
//! - [`trace`]: the trace hash and the readable tail printed on a violation.
//! - [`values`]: the lab scenarios' numbered values, carried as real key-value writes.
//! - [`history`]: client histories in the JSON-lines format shared by every linearizability check.
//! - [`linearizability`]: the Wing–Gong/Lowe checker for key-value histories.
//! - [`ledger`]: what the simulator knows beyond the clients — the committed log with its
//!   stamps, where each write was proposed, what each answering node had applied.
//! - [`keyspace_model`]: keys with deadlines and revisions, replayed along the log at log time.
//! - [`clock_check`]: the log-time stamps against the appending leaders' real clocks, and
//!   idle keys expiring once the cluster healed.
//! - [`timed_check`]: TTL, revision and fencing-token operations placed on the log and checked
//!   against the model.
#![deny(missing_docs)]

pub mod checkers;
pub mod clock_check;
pub mod cluster;
pub mod history;
pub mod keyspace_model;
pub mod ledger;
pub mod linearizability;
pub mod network;
pub mod node;
pub mod observer;
pub mod run;
pub mod timed_check;
pub mod trace;
pub mod values;
pub mod workload;

pub use checkers::Violation;
pub use cluster::{Cluster, ClusterOptions, InjectedBug, Proposal, Refused, Stats, Submitted};
pub use network::{NetworkOptions, Partition};
pub use run::{run_seed, FaultSwitches, RunOptions, RunReport};

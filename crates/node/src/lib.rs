//! The Skiff node: one Raft core, its durable log and its key-value state machine, driven in
//! the order Raft's safety needs.
//!
//! [`Node`] is deterministic: it has no threads, clock, sockets or randomness of its own, and
//! its disk is a [`skiff_wal::Disk`]. The `skiff` server drives it with real time, TCP and
//! files; the simulator drives the same code with simulated time, a lossy network and a
//! disk that loses unsynced writes.
//!
//! Each pass of the driver loop is split in two, so that a leader replicates while its own
//! write is in progress (thesis §10.2.1):
//!
//! 1. [`Node::begin`] takes a Ready from the core and hands out the messages that may leave
//!    before anything is durable;
//! 2. [`Node::finish`] persists the batch with one fsync, then hands out the messages that
//!    promise durability (vote grants, append acknowledgements), applies committed entries to
//!    the state machine and answers the clients whose requests they complete, and finally
//!    advances the core.
//!
//! Client requests enter with [`Node::submit`]; a follower forwards writes to the leader
//! and serves reads itself through ReadIndex (thesis §6.4).

#![deny(missing_docs)]

mod error;
mod incoming_snapshot;
mod node;
pub mod payload;
pub mod wire;

pub use error::{NodeError, PeerMessageError, SnapshotRefusal};
pub use node::{errors, Event, NoObserver, Node, NodeConfig, Observer, Output, RequestId};
pub use wire::{PeerMessage, WireError};

//! The Skiff node: one Raft core, its durable log and a state machine (`skiff-kv`'s store by
//! default, or any [`StateMachine`]), driven in the order Raft's safety needs.
//!
//! Take `skiff-node` to run a whole replicated node over your own state machine and a disk
//! (the example `counter` does, in under 200 lines);
//! [`skiff_raft`]'s first page says which Skiff crate to take for which job.
//!
//! [`Node`] is deterministic: it has no clock, sockets or randomness of its own, no thread
//! that could change what it does (the log's recovery checks two large segments at once, a
//! function of their bytes alone), and
//! its disk is a [`skiff_wal::Disk`]. The `skiff` server drives it with real time, TCP and
//! files; the simulator drives the same code with simulated time, a lossy network and a
//! disk that loses unsynced writes.
//!
//! # Driving a node
//!
//! Inputs go in with [`Node::tick`], [`Node::step`] (a peer's message) and [`Node::submit`]
//! (a client's request). What the node asks in return comes out as [`Effect`]s, taken with
//! [`Node::take_effects`]: messages to send, replies, events, and the I/O steps of the batch
//! pipeline, each ended by handing its token back:
//!
//! 1. [`Node::begin_batch`] takes a Ready from the core, hands out the messages that may
//!    leave before anything is durable, and asks for [`Effect::WriteBatch`];
//! 2. [`Node::write_batch`] writes the batch without its sync and asks for
//!    [`Effect::SyncBatch`]; until the batch is finished, [`Node::apply_durable`] may apply
//!    (in steps) what was durable before it, answering those clients;
//! 3. once the file is synced, [`Node::batch_synced`] releases the messages that promise
//!    durability (vote grants, append acknowledgements: thesis §3.8; or
//!    [`Node::release_synced`] did, so that the driver sends them before the rest is
//!    applied), applies
//!    the committed entries, answers clients, advances the core, and — about every
//!    `snapshot_every_entries` entries, at the node's own phase, once the log has outgrown
//!    the last snapshot by `snapshot_expansion_factor`, or on
//!    [`Node::request_snapshot`] — freezes the state machine at its applied
//!    index ([`StateMachine::freeze`]) and asks for [`Effect::WriteSnapshot`], ended by
//!    [`Node::snapshot_written`].
//!
//! The order persist → send → apply → advance lives only here. A driver chooses where each
//! I/O step runs: the server syncs on a writer thread so that the leader's disk write
//! overlaps replication (thesis §10.2.1) and serializes and writes snapshot files on a
//! thread of its own;
//! the simulator runs each step in an event of its own, so faults fall between them;
//! [`Node::run`] does everything in line, for tests and simple embedders.
//!
//! Client writes are proposed on the leader or forwarded to it; reads are served on every
//! node through ReadIndex (thesis §6.4). A write in a client session
//! ([`Node::submit_in_session`]) whose outcome a leader change lost is sent again, same
//! session and sequence, until it is applied once (thesis §6.3).
//!
//! The node has no clock, but a leader stamps each client request it proposes with the wall
//! clock its driver reports ([`Node::set_wall_clock_ms`]), never earlier than the last stamp
//! in its log: that **log time** is what the state machine decides time-dependent things by
//! (a key's expiry), the same way on every replica.
//!
//! # Layout
//!
//! - [`node`](Node): the node — inputs, applying, client requests; its batch pipeline, its
//!   snapshots, the amnesia guard, log time, the re-submission of session writes and the
//!   replay of the log at start-up ([`Replay`]) in submodules;
//! - `decode_ahead`: client commands decoded by the reader of the log ahead at start-up
//!   ([`decode_ahead()`], [`DecodedAhead`]), taken by the replay in place of decoding them;
//! - [`effect`](Effect): what the node asks of its driver, and the tokens of each step;
//! - [`refusals`]: the error replies clients get when the node cannot take a request;
//! - [`backup`]: the backup file (`skiff admin backup`, `skiff restore`): a node snapshot
//!   with its index, term and configuration, checksummed whole;
//! - [`payload`]: what log entries and snapshots hold around the state machine's own bytes;
//! - [`wire`]: the peer messages' byte codec;
//! - `incoming_snapshot`: the check of a leader's snapshot before it may replace ours;
//! - `error`: [`NodeError`] (the node must stop) and [`PeerMessageError`] (a message refused).

#![deny(missing_docs)]

pub mod backup;
mod config;
mod decode_ahead;
mod effect;
mod error;
mod event;
mod incoming_snapshot;
mod kv;
mod node;
mod observer;
pub mod payload;
pub mod refusals;
mod state_machine;
pub mod wire;

pub use config::NodeConfig;
pub use decode_ahead::{decode_ahead, DecodedAhead, DecodedCommand};
pub use effect::{BatchToken, Effect, SnapshotData, SnapshotJob, SnapshotToken, SyncToken};
pub use error::{NodeError, PeerMessageError, SnapshotRefusal};
pub use event::Event;
pub use node::{IncarnationNotice, Node, Replay, RequestId, APPLY_WINDOW};
pub use observer::{NoObserver, Observer};
pub use state_machine::{ClientSession, FrozenState, StateMachine};
pub use wire::{Envelope, PeerMessage, WireError};

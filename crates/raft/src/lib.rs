//! Skiff's Raft consensus core: pure, deterministic, driven by the application.
//!
//! This crate decides; it does no I/O. It elects leaders, replicates and commits log entries,
//! changes membership, serves linearizable reads and hands over leadership, and tells the
//! application what to write, send and apply. Storage, network, timers and the state machine
//! are the application's.
//!
//! The core has no threads, clock, sockets, files or OS randomness. Time enters only through
//! [`RawNode::tick`]; randomness comes from a PRNG seeded by [`Config::seed`]. The
//! application feeds it ticks, messages and proposals, and carries out the [`Ready`] batches
//! it hands back: persist, then send, then apply, then [`RawNode::advance`].
//!
//! PreVote and CheckQuorum are on by default, so a node that was cut off cannot depose a
//! healthy leader when it comes back.
//!
//! # Which crate for which job
//! | you want | take |
//! |---|---|
//! | only consensus, with your own storage and transport | `skiff-raft` (this crate): implement [`LogStorage`] or use [`MemStorage`], carry [`Message`]s yourself |
//! | a durable Raft log on disk, with checksums and crash recovery | `skiff-wal`: segment files over a `Disk` trait (a real file system or a simulated one) |
//! | a whole replicated node over a state machine and a disk | `skiff-node`: drives this core and `skiff-wal` in the order persist → send → apply → advance |
//! | the replicated key-value state machine (commands, sessions, snapshots) | `skiff-kv` |
//! | the binary codec every Skiff format is written with | `skiff-codec` |
//! | a server to run: TCP, the Redis protocol, HTTP status, a CLI | the `skiff` binary (`crates/server`) |
//!
//! The example `three_nodes` (`cargo run --release -p skiff-raft --example three_nodes`)
//! runs three nodes in one process over [`MemStorage`] and an in-memory network: the whole
//! driving loop in under 200 lines.
//!
//! # Layout
//! - [`types`]: `Term`, `LogIndex`, `NodeId`, `Entry`, `HardState`, roles.
//! - [`message`]: the RPCs of Figure 2 plus PreVote.
//! - [`config`]: settings, with limits and units in their names.
//! - [`storage`]: the [`LogStorage`] contract, [`MemStorage`], and the conformance suite.
//! - [`log`]: the node's log — durable entries, the unstable tail, commit and apply marks.
//! - [`progress`]: the leader's view of each follower (probe / replicate, in-flight limit).
//! - [`quorum`]: majority arithmetic for commit indexes and elections.
//! - [`tracker`]: the [`ProgressTracker`] — voters, learners, each member's progress and the
//!   votes of an election, with the quorum questions asked of them.
//! - [`membership`]: configuration changes by joint consensus, and learners.
//! - [`raft`]: the protocol — the role machine in `raft/mod.rs`, with elections, replication,
//!   proposals, reads (ReadIndex, leases), membership changes, leadership transfer and
//!   snapshots each in a module beside the state it keeps.
//! - [`validate`](mod@validate): checks on a message from the network (bounds on terms and indexes,
//!   contiguous entries, snapshot metadata) before the protocol sees it.
//! - [`raw_node`]: the driving interface — `tick`, `step`, `propose`, `ready`, `advance`.
//!
//! # Driving a node
//! A one-node cluster elects itself and commits a proposal once its log is durable:
//! ```
//! use skiff_raft::{Config, HardState, LogStorage, MemStorage, NodeId, RawNode, Role};
//!
//! let config = Config::new(NodeId(1), [NodeId(1)]);
//! let mut node = RawNode::new(config, MemStorage::new(), HardState::default()).unwrap();
//! let mut durable_hard_state = HardState::default();
//! let mut applied = Vec::new();
//! let mut proposed = false;
//!
//! for _tick in 0..100 {
//!     node.tick();
//!     if node.raft().role() == Role::Leader && !proposed {
//!         node.propose(b"x=1".to_vec()).unwrap();
//!         proposed = true;
//!     }
//!     while node.has_ready() {
//!         let ready = node.ready();
//!         // 1. persist: entries, then the hard state, durably.
//!         ready.write_log(node.storage_mut()).unwrap();
//!         if let Some(hard_state) = ready.hard_state {
//!             durable_hard_state = hard_state;
//!         }
//!         // 2. send: a one-node cluster has nobody to talk to.
//!         assert!(ready.messages.is_empty() && ready.persisted_messages.is_empty());
//!         // 3. apply committed entries to the state machine.
//!         applied.extend(ready.committed_entries.iter().filter(|e| !e.data.is_empty()).map(|e| e.data.clone()));
//!         // 4. tell the core the batch is done.
//!         node.advance(ready);
//!     }
//! }
//! assert_eq!(applied, vec![b"x=1".to_vec()]);
//! assert_eq!(durable_hard_state.term.0, 1);
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod log;
pub mod membership;
pub mod message;
pub mod progress;
pub mod quorum;
pub mod raft;
pub mod raw_node;
pub mod storage;
pub mod tracker;
pub mod types;
pub mod validate;

pub use config::{Config, ConfigError, DEFAULT_SNAPSHOT_TRAILING_ENTRIES};
pub use log::AppendError;
pub use membership::{ConfChange, ConfChangeError, ConfChangeStep, ConfState};
pub use message::{AppendResponse, Message, MessageBody};
pub use raft::{
    ProposeError, Raft, ReadIndexError, ReadState, SnapshotChunk, SnapshotError, StepError,
    TransferError,
};
pub use raw_node::{RawNode, Ready, StartError, Status};
pub use storage::{LogStorage, MemStorage, SnapshotMeta, StorageError};
pub use tracker::ProgressTracker;
pub use types::{Entry, EntryKind, HardState, LogIndex, NodeId, Role, SoftState, Term};
pub use validate::{validate, InvalidMessage, MAX_INDEX, MAX_SNAPSHOT_BYTES, MAX_TERM};

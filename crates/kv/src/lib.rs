//! Skiff's key-value state machine: the store the Raft log drives.
//!
//! Take `skiff-kv` for the replicated key-value state machine itself;
//! `skiff-raft`'s first page says which Skiff crate to take for which job.
//!
//! Pure: no I/O, clock, threads or randomness, and every map is ordered, so replicas that
//! apply the same entries hold the same state and write the same snapshot bytes.
//!
//! - [`Command`] is what a client asks (`GET`, `SET` with `NX`/`XX`/`GET` and a time to live,
//!   `SETNX`, `GETEX`, `GETDEL`, `DEL`, `EXISTS`, `INCR`, `INCRBY`, `DECR`, `MGET`, `MSET`,
//!   `EXPIRE` and its kin, `PERSIST`, `TTL`, `EXPIRETIME`, Skiff's own `CAS` and `REVISION`,
//!   `DBSIZE`, `TYPE`, `RENAME`, `APPEND`, `GETRANGE`, `SETRANGE`, `INCRBYFLOAT`, `KEYS`,
//!   `SCAN`, the hash commands `HSET` … `HSCAN`, and `EXEC`: a whole `MULTI` transaction with
//!   the keys it watched), encoded through
//!   `skiff-codec` in a compact, versioned binary form for log entries; [`Command::decode`] answers malformed
//!   bytes with a typed [`KvError`], never a panic.
//! - Time is log time: the leader's stamp on each entry ([`StateMachine::apply_at`]), never
//!   decreasing along the log, so a key expires at the same index on every replica and is
//!   removed there (and [`StateMachine::pass_time`] applies an entry that carries only the
//!   time). Every key remembers the index of its last write, its revision.
//! - [`StateMachine::apply`] applies a committed entry and returns the [`Reply`], which
//!   mirrors Redis's replies. A write may carry a [`SessionRequest`] (thesis §6.3): a retried
//!   request is answered from the session table and applied only once.
//! - A key holds a string or a hash; a command for the other type answers `WRONGTYPE`.
//! - [`StateMachine::read`] answers the read-only commands ([`Command::is_read_only`]:
//!   `GET`, `MGET`, `EXISTS`, `SCAN`, `HGET`…) without the log, for reads confirmed by
//!   ReadIndex.
//! - [`StateMachine::snapshot`] and [`StateMachine::restore`] save and rebuild the whole
//!   state — data, sessions, applied index — in a checksummed, deterministic format.
//!
//! ```
//! use skiff_kv::{Command, KvConfig, Reply, SessionRequest, SetCondition, StateMachine};
//!
//! let mut kv = StateMachine::new(KvConfig::default()).unwrap();
//! let set = Command::Set { key: b"k".to_vec(), value: b"1".to_vec(), condition: SetCondition::Always };
//! let entry = set.encode(); // the bytes a log entry carries
//! let command = Command::decode(&entry).unwrap();
//!
//! let session = Some(SessionRequest::sequential(7, 1));
//! assert_eq!(kv.apply(1, command, session), Reply::Ok);
//! let incr = Command::Incr { key: b"k".to_vec() };
//! let session = Some(SessionRequest::sequential(7, 2));
//! assert_eq!(kv.apply(2, incr.clone(), session), Reply::Integer(2));
//! // The client did not hear back and retries: the remembered reply, nothing applied twice.
//! assert_eq!(kv.apply(3, incr, session), Reply::Integer(2));
//! assert_eq!(kv.read(&Command::Get { key: b"k".to_vec() }), Reply::Bulk(b"2".to_vec()));
//!
//! let restored = StateMachine::restore(KvConfig::default(), &kv.snapshot()).unwrap();
//! assert_eq!(restored, kv);
//! ```
//!
//! # Layout
//! - [`command`]: [`Command`], [`SetCondition`], and the log-entry encoding.
//! - [`expiry`]: log time, and the options of the commands that give keys a time to live
//!   ([`SetOptions`], [`Expiry`], [`Deadline`], [`ExpireCondition`]).
//! - `keyspace`: the keys with their values, deadlines and revisions, each key once, ordered
//!   by its scan hash (`SCAN`'s order) in persistent sorted arrays, one per slice of that
//!   order (1 to 16,384 of them, by the store's size; a clone is O(1); `RANDOMKEY` finds the
//!   k-th key by counts of groups of slices), and the deadlines in order, so that expiry at apply
//!   finds the due keys without a scan.
//! - `ttl`: the Redis semantics of `SET` with options, `GETEX`, `EXPIRE` and its kin,
//!   `PERSIST`, `TTL` and `EXPIRETIME`.
//! - [`transaction`]: [`Transaction`], `MULTI … EXEC` as one entry, and `WATCH`'s check.
//! - [`reply`]: [`Reply`] and the error texts ([`reply::errors`]).
//! - [`state_machine`]: [`StateMachine`]: apply, read, the Redis semantics of each command.
//! - [`session`]: [`SessionRequest`], [`Session`], and the bounded session table (thesis
//!   §6.3): retries, stale requests, expiry and eviction as functions of the log.
//! - [`snapshot`]: the snapshot format, its checksum and the checks on restore, and the
//!   frozen copy ([`FrozenStore`]) a snapshot is serialized from off the applying thread.
//! - [`config`]: [`KvConfig`], the limits.
//! - `events`: the keyspace events each write reports, for notifications: recorded only
//!   while the node's owner listens ([`StateMachine::record_events`]), bounded, and taken
//!   in log order with [`StateMachine::take_events`] ([`KeyspaceEvents`]).
//! - `value`: what a key holds (a string or a hash) and the `WRONGTYPE` rule.
//! - `strings`: `TYPE`, `RENAME`, `STRLEN`, `APPEND`, `GETRANGE`, `SETRANGE`,
//!   `INCRBYFLOAT`, `MSETNX`, `RANDOMKEY`; `float`: how `INCRBYFLOAT` reads and prints.
//! - `hashes`: the hash commands.
//! - `scan`: `KEYS`, `SCAN`, `HSCAN` and their cursor; `glob`: Redis's patterns.
//! - `dispatch`: which of those modules runs each command of that group.
//! - [`error`]: [`KvError`], for bytes that do not decode and configurations out of range.
//! - `codec`: the varint and byte-string primitives every format here is built from.
#![deny(missing_docs)]

mod codec;
pub mod command;
pub mod config;
mod dispatch;
pub mod error;
mod events;
pub mod expiry;
mod float;
pub mod glob;
mod hashes;
mod keyspace;
pub mod replaced;
pub mod reply;
pub mod request;
mod scan;
pub mod session;
pub mod snapshot;
pub mod state_machine;
mod strings;
pub mod transaction;
mod ttl;
mod value;

pub use command::{Command, SetCondition, COMMAND_FORMAT_VERSION};
pub use config::KvConfig;
pub use error::{Encoded, KvError};
pub use events::{KeyspaceEvent, KeyspaceEvents, MAX_PENDING_EVENTS, MAX_PENDING_EVENT_BYTES};
pub use expiry::{Deadline, ExpireCondition, Expiry, SetOptions, TimeUnit};
pub use replaced::{ReplacedSink, ReplacedValues};
pub use reply::Reply;
pub use request::{Request, REQUEST_FORMAT_VERSION};
pub use scan::HSCAN_COUNT_NOT_AN_INTEGER;
pub use session::{Session, SessionRequest};
pub use snapshot::{FrozenStore, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC};
pub use state_machine::StateMachine;
pub use transaction::{Transaction, Watched};

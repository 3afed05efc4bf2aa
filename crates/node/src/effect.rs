//! [`Effect`]: what a node asks its driver to do, and the tokens that say which step is done.
//!
//! The node decides *what* happens and in which order (persist → send → apply → advance); a
//! driver only carries effects out with its own I/O — sockets, a writer thread, a simulated
//! network — and reports each I/O step's completion with the token the effect carried. A
//! token names one step of one batch (or one snapshot): a completion for another step is
//! refused with [`NodeError::OutOfStep`](crate::NodeError::OutOfStep), never taken for the
//! step in progress.

use std::path::{Path, PathBuf};

use skiff_raft::SnapshotMeta;
use skiff_wal::SnapshotWrite;

use crate::event::Event;
use crate::node::RequestId;
use crate::state_machine::FrozenState;
use crate::wire::Envelope;

/// One thing the node asks its driver to do, taken with [`Node::take_effects`](crate::Node::take_effects)
/// in the order the node produced them.
#[derive(Debug)]
pub enum Effect<R = skiff_kv::Reply> {
    /// A message for another node that may leave now. Messages that promise durability
    /// (vote grants, append acknowledgements) appear only once their batch is synced
    /// (thesis §3.8), so every `Send` the driver sees may go at once, in order.
    Send(Envelope),
    /// The reply to a client request of this node.
    Reply(RequestId, R),
    /// Something happened, for logs, metrics and status.
    Event(Event),
    /// The core handed out a batch. Write it with [`Node::write_batch`](crate::Node::write_batch):
    /// at once, or later to model a disk's delay. Until the batch is synced no other begins.
    WriteBatch(BatchToken),
    /// The batch is written into its segment file; make it durable with `fdatasync` of
    /// [`SyncToken::file`] (on a writer thread, thesis §10.2.1) and then call
    /// [`Node::batch_synced`](crate::Node::batch_synced), or let the node sync on its own disk
    /// with [`Node::sync_batch`](crate::Node::sync_batch).
    SyncBatch(SyncToken),
    /// The state machine's snapshot, due by the node's snapshot settings or requested: serialize
    /// [`SnapshotJob::data`] (off the driver thread, if it can), [seal](SnapshotToken::seal)
    /// the header over the bytes, write the header and then the bytes to its temporary
    /// file, sync it, and call [`Node::snapshot_written`](crate::Node::snapshot_written) (or
    /// [`Node::snapshot_abandoned`](crate::Node::snapshot_abandoned) if it failed); or let the
    /// node write it on its own disk with [`Node::write_snapshot`](crate::Node::write_snapshot).
    WriteSnapshot(SnapshotJob),
}

/// The batch handed out by [`Effect::WriteBatch`]: only it can be written.
#[derive(Debug, PartialEq, Eq)]
pub struct BatchToken {
    pub(crate) batch: u64,
}

/// The written batch of [`Effect::SyncBatch`]: only it can be reported synced.
#[derive(Debug, PartialEq, Eq)]
pub struct SyncToken {
    pub(crate) batch: u64,
    pub(crate) file: Option<PathBuf>,
}

impl SyncToken {
    /// The segment file to sync; `None` when the batch wrote nothing that needs a sync of its
    /// own (it only moved the commit index, or held only snapshot chunks, synced as staged).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

/// The snapshot file being written for [`Effect::WriteSnapshot`].
#[derive(Debug)]
pub struct SnapshotToken {
    pub(crate) snapshot: u64,
    pub(crate) write: SnapshotWrite,
}

impl SnapshotToken {
    /// Where and how to write the file: its temporary path and its header.
    pub fn write(&self) -> &SnapshotWrite {
        &self.write
    }

    /// Records the length and checksum of `data`, the serialized snapshot, in the file's
    /// header and returns the header's bytes, to write before `data`.
    pub fn seal(&mut self, data: &[u8]) -> Vec<u8> {
        self.write.seal(data)
    }

    /// [`seal`](Self::seal) for a driver that streamed the data to the file: their length
    /// and CRC-32C, taken over the bytes it wrote. The header's bytes come back, to write
    /// over the [`header_len`](SnapshotWrite::header_len) bytes left at the file's start.
    pub fn seal_streamed(&mut self, data_len: u64, data_crc: u32) -> Vec<u8> {
        self.write.seal_streamed(data_len, data_crc)
    }

    /// The snapshot's metadata (last included index and term, configuration).
    pub fn meta(&self) -> &SnapshotMeta {
        self.write.meta()
    }
}

/// A snapshot to write: the token to hand back, and the state machine's state, frozen when
/// the node decided to snapshot so that it goes on applying meanwhile.
#[derive(Debug)]
pub struct SnapshotJob {
    /// Hand it back once the file is written and synced.
    pub token: SnapshotToken,
    /// What goes after the file's header, once serialized.
    pub data: SnapshotData,
}

/// A snapshot's data as the node hands it out: the node's own header (the members'
/// addresses) and the state machine's state frozen at the snapshot's index, or, for a state
/// machine that cannot freeze, its bytes already serialized.
pub struct SnapshotData {
    /// The bytes serialized so far.
    pub(crate) bytes: Vec<u8>,
    /// The state still to serialize after them.
    pub(crate) frozen: Option<Box<dyn FrozenState>>,
}

impl SnapshotData {
    /// The data's bytes: serializes the frozen state, which takes time in the order of its
    /// size, so a driver does it where it writes the file. The bytes are the same wherever and
    /// whenever this runs: those of the state at the snapshot's index.
    pub fn serialize(self) -> Vec<u8> {
        let SnapshotData { mut bytes, frozen } = self;
        if let Some(frozen) = frozen {
            let written = frozen.write_snapshot(&mut bytes);
            // Only a bug: writing into memory has no way to fail.
            assert!(written.is_ok(), "serializing a snapshot into memory failed");
        }
        bytes
    }

    /// Writes the [`serialize`](Self::serialize) bytes to `out` a part at a time, never
    /// holding the frozen state's bytes whole: for a driver that streams them to the file.
    pub fn write_to(self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.bytes)?;
        match self.frozen {
            Some(frozen) => frozen.write_snapshot(out),
            None => Ok(()),
        }
    }

    /// Whether the state is still to serialize (it was frozen, not serialized in line).
    pub fn is_frozen(&self) -> bool {
        self.frozen.is_some()
    }
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotData")
            .field("bytes", &self.bytes.len())
            .field("frozen", &self.frozen.is_some())
            .finish()
    }
}

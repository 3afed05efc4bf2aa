//! Replaying the log at start-up: a node that restarts applies again every entry its durable
//! commit index covers, batch after batch, before it steps any message — with the batches read
//! ahead of their turn by a reader its caller lends (a thread), so that reading and checking
//! the log overlaps with applying it.

use std::sync::Arc;

use skiff_raft::StorageError;
use skiff_wal::{Disk, ReadAhead, RecoveryReport};

use super::Node;
use crate::config::NodeConfig;
use crate::decode_ahead::DecodedAhead;
use crate::effect::Effect;
use crate::error::NodeError;
use crate::observer::NoObserver;
use crate::state_machine::StateMachine;

/// A node opened from its durable state whose committed entries are yet to be applied again
/// ([`Node::open_to_replay`]): it becomes a [`Node`] only through [`Replay::run`], so it
/// steps no message before they are.
#[derive(Debug)]
pub struct Replay<D: Disk, M: StateMachine> {
    node: Node<D, M>,
}

impl<D: Disk, M: StateMachine> Replay<D, M> {
    /// The node before its replay (its log, its snapshot's state).
    pub fn node(&self) -> &Node<D, M> {
        &self.node
    }

    /// The state machine, for its side channels before the replay runs (where replaced
    /// values go, say); as [`Node::state_machine_mut`], not for changing what it applies.
    pub fn state_machine_mut(&mut self) -> &mut M {
        self.node.state_machine_mut()
    }

    /// How many committed entries the replay applies again: those its durable commit index
    /// covers after the snapshot (nothing uncommitted is applied).
    pub fn entries_to_apply(&self) -> u64 {
        let committed = self.node.raw.raft().log().committed();
        committed.0.saturating_sub(self.node.applied.0)
    }

    /// Applies the committed entries again, batch after batch as the driver would, each read
    /// ahead through `reader`, at most `depth` batches in flight. The effects other than the
    /// batches' I/O (events, a snapshot due) stay for [`Node::take_effects`]. A reader that
    /// fails or stops makes this an error, even though the log itself then read every entry.
    ///
    /// With `decoded_ahead`, the client commands the reader handed over there are applied in
    /// place of decoding their entries here ([`DecodedAhead`]).
    pub fn run(
        mut self,
        reader: Box<dyn ReadAhead>,
        depth: usize,
        decoded_ahead: Option<Arc<DecodedAhead<M::Command>>>,
    ) -> Result<Node<D, M>, NodeError> {
        self.node.decoded_ahead = decoded_ahead;
        let replayed = self.node.replay_committed(reader, depth);
        self.node.decoded_ahead = None;
        replayed?;
        Ok(self.node)
    }
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// [`Node::open_with_progress`] for a caller that applies the committed entries again
    /// before it drives the node: see [`Replay`].
    pub fn open_to_replay(
        disk: D,
        dir: impl Into<std::path::PathBuf>,
        config: NodeConfig<M::Config>,
        progress: &mut dyn FnMut(skiff_wal::RecoveryProgress),
    ) -> Result<(Replay<D, M>, RecoveryReport), NodeError> {
        let (node, report) = Self::open_unrecovered(disk, dir, config, progress)?;
        Ok((Replay { node }, report))
    }

    /// Applies the committed entries after `applied`, as the driver would, before any message.
    fn replay_committed(
        &mut self,
        reader: Box<dyn ReadAhead>,
        depth: usize,
    ) -> Result<(), NodeError> {
        let committed = self.raw.raft().log().committed();
        let max_bytes = self.config.raft.max_apply_bytes;
        let low = self.applied.next();
        self.raw
            .storage_mut()
            .start_read_ahead(reader, low, committed.next(), max_bytes, depth);
        let replayed = self.apply_batches_through(committed);
        let read_ahead = self.raw.storage_mut().stop_read_ahead();
        replayed?;
        read_ahead.map_err(|reason| {
            NodeError::Storage(StorageError::Backend(format!(
                "reading the log ahead at start-up: {reason}"
            )))
        })?;
        // §3.8: the incarnations recorded in committed entries are known before any message
        // is stepped. Applying the entries took them in; any not applied are scanned for.
        self.recover_recorded_incarnations()
    }

    /// Begins, writes and syncs batches until `committed` is applied or the core has no
    /// batch left; only their I/O is carried out here.
    fn apply_batches_through(&mut self, committed: skiff_raft::LogIndex) -> Result<(), NodeError> {
        let mut observer = NoObserver;
        while self.applied < committed && self.begin_batch() {
            while let Some(at) = self
                .effects
                .iter()
                .position(|effect| matches!(effect, Effect::WriteBatch(_) | Effect::SyncBatch(_)))
            {
                match self.effects.remove(at) {
                    Effect::WriteBatch(token) => self.write_batch(token)?,
                    Effect::SyncBatch(token) => self.sync_batch(token, &mut observer)?,
                    _ => unreachable!("only batch I/O is picked"),
                }
            }
        }
        Ok(())
    }
}

//! A snapshot from the leader is checked before it can replace the durable one: the last
//! chunk is refused unless the whole snapshot — the chunks staged on disk and this one —
//! restores as a state machine. Garbage never becomes the node's snapshot, so it never
//! stops the node now or refuses to start later.

use skiff_raft::{LogIndex, NodeId, RawNode, SnapshotMeta, Term};
use skiff_wal::{Disk, Wal};

use crate::error::{NodeError, PeerMessageError, SnapshotRefusal};
use crate::payload::{self, MemberBook};
use crate::state_machine::StateMachine;

/// What the node knows of the snapshot coming in from the leader.
#[derive(Debug)]
pub(crate) struct IncomingSnapshot<M> {
    /// The snapshot whose chunks are staged on disk, and how many bytes of it.
    staged: Option<(SnapshotMeta, u64)>,
    /// The last snapshot that verified, restored, so that installing it does not decode it
    /// again.
    verified: Option<(SnapshotMeta, M, MemberBook)>,
}

impl<M> Default for IncomingSnapshot<M> {
    fn default() -> Self {
        IncomingSnapshot {
            staged: None,
            verified: None,
        }
    }
}

impl<M: StateMachine> IncomingSnapshot<M> {
    /// A chunk was staged on disk (the WAL starts afresh at offset 0 or for another snapshot,
    /// as this does).
    pub(crate) fn chunk_staged(&mut self, meta: &SnapshotMeta, offset: u64, len: u64) {
        match &mut self.staged {
            Some((staged, bytes)) if offset != 0 && staged == meta => *bytes += len,
            _ => self.staged = Some((meta.clone(), len)),
        }
    }

    /// The staged snapshot was installed: nothing is staged any more.
    pub(crate) fn installed(&mut self) {
        self.staged = None;
    }

    /// The state machine and address book of `meta`, if it is the snapshot verified last.
    pub(crate) fn take_verified(&mut self, meta: &SnapshotMeta) -> Option<(M, MemberBook)> {
        match self.verified.take() {
            Some((verified, state_machine, addresses)) if verified == *meta => {
                Some((state_machine, addresses))
            }
            _ => None,
        }
    }

    /// Checks the last chunk of a snapshot (`done` set) before the core may take it: when the
    /// core would complete the snapshot with it, the whole snapshot must restore as a state
    /// machine. `chunks_in_flight`: chunks the core handed out that are not staged yet.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_last_chunk<D: Disk>(
        &mut self,
        raw: &RawNode<Wal<D>>,
        chunks_in_flight: bool,
        config: &M::Config,
        from: NodeId,
        term: Term,
        meta: &SnapshotMeta,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(), PeerMessageError> {
        let raft = raw.raft();
        // A stale message, or a snapshot no newer than what is committed, is answered by the
        // core without installing anything.
        if term < raft.term() || meta.index <= raft.log().committed() {
            return Ok(());
        }
        let core_expects_this = raft
            .incoming_snapshot()
            .is_some_and(|(receiving, next)| receiving == meta && next == offset);
        let data = if offset == 0 {
            chunk.to_vec()
        } else if core_expects_this
            && !chunks_in_flight
            && !raft.has_pending_snapshot_output()
            && self.staged.as_ref() == Some(&(meta.clone(), offset))
        {
            // Every chunk the core took for this snapshot is staged: read them back.
            staged_then(raw.storage(), from, meta.index, offset, chunk)?
        } else if core_expects_this {
            // Earlier chunks are still on their way to disk; the leader resends this one.
            return Err(PeerMessageError::SnapshotNotStaged {
                from,
                index: meta.index,
            });
        } else {
            // The core does not complete the snapshot with this chunk: it answers with the
            // offset it expects.
            return Ok(());
        };
        let (state_machine, addresses) =
            restore::<M>(config, meta.index, &data).map_err(|error| {
                PeerMessageError::BadSnapshot {
                    from,
                    index: meta.index,
                    problem: match error {
                        NodeError::Snapshot { source, .. } => SnapshotRefusal::StateMachine(source),
                        NodeError::SnapshotEnvelope { source, .. } => {
                            SnapshotRefusal::Envelope(source)
                        }
                        other => SnapshotRefusal::Unreadable(other.to_string()),
                    },
                }
            })?;
        // The state machine cannot have applied entries the snapshot does not cover.
        if state_machine.applied_index() > meta.index {
            return Err(PeerMessageError::BadSnapshot {
                from,
                index: meta.index,
                problem: SnapshotRefusal::AppliedPastIndex {
                    applied: state_machine.applied_index(),
                },
            });
        }
        self.verified = Some((meta.clone(), state_machine, addresses));
        Ok(())
    }
}

/// The state machine and address book from a node snapshot.
pub(crate) fn restore<M: StateMachine>(
    config: &M::Config,
    index: LogIndex,
    data: &[u8],
) -> Result<(M, MemberBook), NodeError> {
    let (book, machine_snapshot) = payload::decode_snapshot(data)
        .map_err(|source| NodeError::SnapshotEnvelope { index, source })?;
    let state_machine =
        M::restore(config, machine_snapshot).map_err(|source| NodeError::Snapshot {
            index,
            source: Box::new(source),
        })?;
    Ok((state_machine, book))
}

/// The `offset` bytes staged on disk, then `chunk`: the whole snapshot.
fn staged_then<D: Disk>(
    wal: &Wal<D>,
    from: NodeId,
    index: LogIndex,
    offset: u64,
    chunk: &[u8],
) -> Result<Vec<u8>, PeerMessageError> {
    let refusal = |problem: String| PeerMessageError::BadSnapshot {
        from,
        index,
        problem: SnapshotRefusal::Unreadable(problem),
    };
    let path = wal
        .staging_path()
        .ok_or_else(|| refusal("no staging file".into()))?;
    let mut data = wal
        .disk()
        .read(path, 0, offset)
        .map_err(|error| refusal(error.to_string()))?;
    data.extend_from_slice(chunk);
    Ok(data)
}

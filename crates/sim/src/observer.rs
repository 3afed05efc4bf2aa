//! What a node's [`Observer`] hooks report while it finishes a batch, recorded in order so
//! that the checkers can judge it once the node is free to be looked at.

use skiff_kv::{Reply, StateMachine};
use skiff_node::Observer;
use skiff_raft::{Entry, HardState, LogIndex, SnapshotMeta};

/// One durable or applied fact, in the order the node reported it.
#[derive(Clone, Debug)]
pub enum Observed {
    /// A batch became durable.
    Persisted {
        /// Its entries.
        entries: Vec<Entry>,
        /// Its hard state, if it changed.
        hard_state: Option<HardState>,
    },
    /// A snapshot from the leader replaced the state machine, whose digest is then `state`.
    SnapshotInstalled {
        /// The snapshot.
        meta: SnapshotMeta,
        /// The state machine's digest right after.
        state: u64,
    },
    /// A committed entry was applied; the state machine's digest is then `state`.
    Applied {
        /// The entry.
        entry: Entry,
        /// The state machine's answer to a client command.
        reply: Option<Reply>,
        /// The state machine's digest right after.
        state: u64,
    },
}

/// Records what one `finish` reports.
#[derive(Debug, Default)]
pub struct Recorder {
    /// The facts, in order.
    pub observed: Vec<Observed>,
}

impl Observer<StateMachine> for Recorder {
    fn persisted(&mut self, entries: &[Entry], hard_state: Option<HardState>) {
        self.observed.push(Observed::Persisted {
            entries: entries.to_vec(),
            hard_state,
        });
    }

    fn snapshot_installed(&mut self, meta: &SnapshotMeta) {
        self.observed.push(Observed::SnapshotInstalled {
            meta: meta.clone(),
            state: 0,
        });
    }

    fn applied(&mut self, entry: &Entry, reply: Option<&Reply>) {
        self.observed.push(Observed::Applied {
            entry: entry.clone(),
            reply: reply.cloned(),
            state: 0,
        });
    }

    fn state_reached(&mut self, index: LogIndex, state: &StateMachine) {
        // The hook follows the fact it completes: fill in that fact's state digest.
        match self.observed.last_mut() {
            Some(Observed::SnapshotInstalled {
                meta,
                state: digest,
            }) if meta.index == index => *digest = state_digest(state),
            Some(Observed::Applied {
                entry,
                state: digest,
                ..
            }) if entry.index == index => *digest = state_digest(state),
            _ => {}
        }
    }
}

/// A digest of the whole state machine — data, client sessions, applied index — taken from
/// its snapshot bytes, which are deterministic: replicas in the same state have the same
/// digest.
pub fn state_digest(state: &StateMachine) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in state.snapshot() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

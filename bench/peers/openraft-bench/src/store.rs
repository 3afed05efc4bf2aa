//! An in-memory log and an empty state machine for openraft, as cheap as they can be made: the
//! log is a `VecDeque` behind a `std::sync::Mutex` (never held across an `.await`), and the state
//! machine only records what it applied.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{
    EntryResponder, IOFlushed, LogState, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder,
    RaftStateMachine,
};
use openraft::{EntryPayload, OptionalSend};

/// A client write: empty, as in openraft's own benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request;

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Request")
    }
}

/// The answer to a write: empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Response;

openraft::declare_raft_types!(
    /// The benchmark's types: empty requests and responses, nodes without addresses.
    pub TypeConfig:
        D = Request,
        R = Response,
        Node = (),
);

type Entry = openraft::alias::EntryOf<TypeConfig>;

/// The log: entries from `first` on, the vote, and the last purged log id.
#[derive(Default)]
struct Log {
    /// `entries[k]` has index `first + k`.
    entries: VecDeque<Entry>,
    first: u64,
    vote: Option<VoteOf<TypeConfig>>,
    last_purged: Option<LogIdOf<TypeConfig>>,
}

/// The in-memory log store; clones share the same log.
#[derive(Clone, Default)]
pub struct LogStore {
    log: Arc<Mutex<Log>>,
}

impl Log {
    fn range(&self, range: impl RangeBounds<u64>) -> Vec<Entry> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i + 1,
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let last = self.first + self.entries.len() as u64;
        let (start, end) = (start.max(self.first), end.min(last));
        if start >= end {
            return Vec::new();
        }
        let (from, to) = ((start - self.first) as usize, (end - self.first) as usize);
        self.entries.range(from..to).cloned().collect()
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.log.lock().unwrap().range(range))
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        Ok(self.log.lock().unwrap().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let log = self.log.lock().unwrap();
        let last = log.entries.back().map(|e| e.log_id()).or(log.last_purged);
        Ok(LogState {
            last_purged_log_id: log.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.log.lock().unwrap().vote = Some(*vote);
        Ok(())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        {
            let mut log = self.log.lock().unwrap();
            for entry in entries {
                if log.entries.is_empty() {
                    log.first = entry.index();
                }
                debug_assert_eq!(entry.index(), log.first + log.entries.len() as u64);
                log.entries.push_back(entry);
            }
        }
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let mut log = self.log.lock().unwrap();
        let keep_to = last_log_id.map_or(0, |id| id.index() + 1);
        let keep = keep_to.saturating_sub(log.first) as usize;
        log.entries.truncate(keep);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        let mut log = self.log.lock().unwrap();
        let upto = log_id.index() + 1;
        let drop = (upto.saturating_sub(log.first) as usize).min(log.entries.len());
        log.entries.drain(..drop);
        log.first = log.first.max(upto);
        log.last_purged = Some(log_id);
        Ok(())
    }
}

/// What the state machine holds: the last applied log id, the membership, and a count of the
/// client writes applied (for the benchmark's check).
#[derive(Default)]
struct Machine {
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    applied_writes: u64,
    snapshot: Option<SnapshotMetaOf<TypeConfig>>,
}

/// The empty state machine; clones share the same state.
#[derive(Clone, Default)]
pub struct StateMachine {
    machine: Arc<Mutex<Machine>>,
}

impl StateMachine {
    /// Client writes applied so far.
    pub fn applied_writes(&self) -> u64 {
        self.machine.lock().unwrap().applied_writes
    }
}

/// The snapshot data: the state machine holds nothing, so it is empty.
pub type SnapshotData = Vec<u8>;

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let mut machine = self.machine.lock().unwrap();
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: machine.last_applied,
            last_membership: machine.membership.clone(),
        };
        machine.snapshot = Some(meta.clone());
        Ok(SnapshotOf::<TypeConfig, SnapshotData> {
            meta,
            snapshot: Vec::new(),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let machine = self.machine.lock().unwrap();
        Ok((machine.last_applied, machine.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            {
                let mut machine = self.machine.lock().unwrap();
                machine.last_applied = Some(entry.log_id);
                match &entry.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(_) => machine.applied_writes += 1,
                    EntryPayload::Membership(membership) => {
                        machine.membership = StoredMembershipOf::<TypeConfig>::new(
                            Some(entry.log_id),
                            membership.clone(),
                        );
                    }
                }
            }
            if let Some(responder) = responder {
                responder.send(Response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        _snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let mut machine = self.machine.lock().unwrap();
        machine.last_applied = meta.last_log_id;
        machine.membership = meta.last_membership.clone();
        machine.snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        let machine = self.machine.lock().unwrap();
        Ok(machine
            .snapshot
            .clone()
            .map(|meta| SnapshotOf::<TypeConfig, SnapshotData> {
                meta,
                snapshot: Vec::new(),
            }))
    }
}

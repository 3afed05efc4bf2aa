//! Log time: the leader stamps each client request it proposes with its wall clock, never
//! earlier than the last stamp in its log, so stamps never decrease along the log — across
//! leaders too, since a new leader's log holds every committed entry (§5.4.1, Leader
//! Completeness) and it starts from the last stamp in it. The state machine sees each
//! entry's stamp and decides time-dependent things (a key's expiry) by it, the same way on
//! every replica. When a deadline the state machine named has passed and nothing else was
//! proposed, the leader proposes an entry that carries only the time.
//!
//! The node has no clock: the driver tells it the time ([`Node::set_wall_clock_ms`]).

use skiff_raft::{EntryKind, LogIndex, Role, Term};
use skiff_wal::Disk;

use super::Node;
use crate::payload::Stamped;
use crate::state_machine::StateMachine;

/// How many bytes of log a new leader reads at a time looking for the last stamp.
const SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// The node's side of log time.
#[derive(Debug, Default)]
pub(super) struct LogClock {
    /// What the driver last said the wall clock reads (Unix milliseconds).
    wall_clock_ms: u64,
    /// The term this node leads in and the last stamp in its log (including what it
    /// stamped since). Invariant: no stamp in the log after the state machine's applied
    /// index is larger, while the term is the current one.
    floor: Option<(Term, u64)>,
    /// The entry carrying only the time that is in flight, by term and index: at most one.
    time_entry: Option<(Term, LogIndex)>,
}

impl<D: Disk, M: StateMachine> Node<D, M> {
    /// Tells the node the wall-clock time, in Unix milliseconds. The driver calls it before
    /// each tick (and may before any input); a leader stamps what it proposes with it. It
    /// may go backwards (a clock step): stamps do not.
    pub fn set_wall_clock_ms(&mut self, now_ms: u64) {
        self.clock.wall_clock_ms = now_ms;
    }

    /// What the driver last said the wall clock reads (Unix milliseconds); reads count a
    /// key's time to live down from it.
    pub(super) fn wall_clock_ms(&self) -> u64 {
        self.clock.wall_clock_ms
    }

    /// The stamp for an entry this leader proposes now: its wall clock, or the last stamp in
    /// its log if that is later, so that stamps never decrease along the log.
    pub(super) fn next_stamp(&mut self) -> u64 {
        let term = self.raw.raft().term();
        let floor = match self.clock.floor {
            Some((floor_term, floor)) if floor_term == term => floor,
            _ => self.last_stamp_in_log(),
        };
        let stamp = self.clock.wall_clock_ms.max(floor);
        self.clock.floor = Some((term, stamp));
        stamp
    }

    /// A client request's bytes, stamped for the log.
    pub(super) fn stamped(&mut self, request: &[u8]) -> Vec<u8> {
        let log_time_ms = self.next_stamp();
        Stamped {
            log_time_ms,
            request,
        }
        .encode()
    }

    /// On the leader, once a tick: proposes an entry carrying only the time when the state
    /// machine's earliest deadline has passed by the wall clock, unless one is in flight.
    pub(super) fn propose_time_if_due(&mut self) {
        let raft = self.raw.raft();
        if raft.role() != Role::Leader {
            return;
        }
        let term = raft.term();
        if let Some((in_term, index)) = self.clock.time_entry {
            if in_term == term && self.applied < index {
                return;
            }
            self.clock.time_entry = None;
        }
        let due = self
            .state_machine
            .next_deadline_ms()
            .is_some_and(|deadline| deadline <= self.clock.wall_clock_ms);
        if !due {
            return;
        }
        let log_time_ms = self.next_stamp();
        let entry = Stamped {
            log_time_ms,
            request: &[],
        }
        .encode();
        // A refused proposal (a transfer, the uncommitted limit) is tried again next tick.
        if let Ok((index, term)) = self.raw.propose(entry) {
            self.clock.time_entry = Some((term, index));
        }
    }

    /// The last stamp in this node's log: the state machine's log time, raised by any
    /// stamped entry after its applied index (read once per term, on the first proposal).
    fn last_stamp_in_log(&self) -> u64 {
        let log = self.raw.raft().log();
        let mut last = self.state_machine.log_time_ms();
        let mut next = self.applied.next();
        let end = log.last_index().next();
        while next < end {
            let Ok(entries) = log.entries(next, end, SCAN_CHUNK_BYTES) else {
                break;
            };
            let Some(last_entry) = entries.last() else {
                break;
            };
            next = last_entry.index.next();
            for entry in entries.iter().filter(|e| e.kind == EntryKind::Normal) {
                if let Some(Ok(stamped)) = Stamped::split(&entry.data) {
                    last = last.max(stamped.log_time_ms);
                }
            }
        }
        last
    }
}

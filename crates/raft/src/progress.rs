//! What a leader knows of one follower's log, and how it paces appends to it.
//!
//! A follower starts in `Probe`: one append at a time until an answer shows where the logs
//! match. After the first acceptance it moves to `Replicate`: appends are pipelined, at most
//! `max_inflight` unanswered at once, and a new one goes only while those unanswered hold
//! fewer than `max_inflight_bytes` of entries (so they hold less than that plus one append).
//! A rejection sends it back to `Probe`.

use std::collections::VecDeque;

use crate::types::LogIndex;

/// How the leader sends to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Looking for the point where the logs match: one append in flight at most.
    Probe,
    /// Streaming: appends are sent optimistically, up to the in-flight limit.
    Replicate,
    /// The entries the follower needs are compacted: it receives the snapshot at this index,
    /// one chunk at a time, from the last offset it acknowledged.
    Snapshot {
        /// The snapshot's last index.
        index: LogIndex,
        /// The offset the follower acknowledged (the next chunk starts here).
        offset: u64,
    },
}

/// The leader's view of one follower (Figure 2, "Volatile state on leaders").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to be stored on the follower.
    /// Invariant: `match_index < next_index`.
    match_index: LogIndex,
    /// The index of the next entry to send.
    next_index: LogIndex,
    state: ProgressState,
    /// In `Probe`: an append is out and unanswered, so wait before sending another.
    probe_sent: bool,
    /// In `Replicate`: the last index and the entry bytes of each unanswered append, oldest
    /// first. Invariant: `inflight.len() <= max_inflight`.
    inflight: VecDeque<(LogIndex, u64)>,
    max_inflight: usize,
    /// The entry bytes of the appends in `inflight`.
    inflight_bytes: u64,
    max_inflight_bytes: u64,
    /// Whether the follower answered since the last CheckQuorum round.
    recent_active: bool,
    /// The heartbeat interval's heartbeat went out since an answer that moved nothing last
    /// arrived: the next such answer may resend (see [`Progress::heartbeat_answered`]).
    resend_granted: bool,
}

impl Progress {
    /// A follower about which nothing is known yet: probe from `next_index`; then stream at
    /// most `max_inflight` appends at once (of any size: see
    /// [`with_max_inflight_bytes`](Progress::with_max_inflight_bytes)).
    pub fn new(next_index: LogIndex, max_inflight: usize) -> Progress {
        Progress {
            match_index: LogIndex(0),
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflight: VecDeque::with_capacity(max_inflight),
            max_inflight: max_inflight.max(1),
            inflight_bytes: 0,
            max_inflight_bytes: u64::MAX,
            recent_active: false,
            resend_granted: false,
        }
    }

    /// Streams appends holding at most `max_inflight_bytes` of entries at once (an append
    /// larger than that alone still goes when nothing else is in flight).
    pub fn with_max_inflight_bytes(mut self, max_inflight_bytes: u64) -> Progress {
        self.max_inflight_bytes = max_inflight_bytes.max(1);
        self
    }

    /// The highest index known to be stored on the follower.
    pub fn match_index(&self) -> LogIndex {
        self.match_index
    }

    /// The index of the next entry to send.
    pub fn next_index(&self) -> LogIndex {
        self.next_index
    }

    /// How the leader is sending to this follower.
    pub fn state(&self) -> ProgressState {
        self.state
    }

    /// How many appends are out and unanswered (Replicate only).
    pub fn inflight_count(&self) -> usize {
        self.inflight.len()
    }

    /// The entry bytes of the appends out and unanswered (Replicate only).
    pub fn inflight_bytes(&self) -> u64 {
        self.inflight_bytes
    }

    /// Forgets every unanswered append.
    fn clear_inflight(&mut self) {
        self.inflight.clear();
        self.inflight_bytes = 0;
    }

    /// Forgets the oldest unanswered append.
    fn free_oldest(&mut self) {
        if let Some((_, bytes)) = self.inflight.pop_front() {
            self.inflight_bytes -= bytes;
        }
    }

    /// Whether the follower answered since the last CheckQuorum round.
    pub fn recent_active(&self) -> bool {
        self.recent_active
    }

    /// Records an answer from the follower.
    pub fn mark_active(&mut self) {
        self.recent_active = true;
    }

    /// Starts a new CheckQuorum round; returns whether the follower was active in the last one.
    pub fn take_recent_active(&mut self) -> bool {
        std::mem::replace(&mut self.recent_active, false)
    }

    /// Back to probing from just after the match point.
    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.probe_sent = false;
        self.next_index = self.match_index.next();
        self.clear_inflight();
    }

    /// The follower needs entries compacted into the snapshot at `index`: send it that.
    pub fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ProgressState::Snapshot { index, offset: 0 };
        self.probe_sent = false;
        self.clear_inflight();
    }

    /// A chunk of the snapshot was sent: wait for its answer (or the heartbeat interval's
    /// next heartbeat).
    pub fn sent_snapshot_chunk(&mut self) {
        self.probe_sent = true;
    }

    /// The follower acknowledged the snapshot at `index` up to `next_offset`. Returns whether
    /// this was news about the snapshot being sent: a repeated answer naming the offset whose
    /// chunk is already out is not, so the copies of a resent or duplicated chunk do not each
    /// start a stream of their own (§7: one chunk at a time).
    pub fn snapshot_acknowledged(&mut self, index: LogIndex, next_offset: u64) -> bool {
        match &mut self.state {
            ProgressState::Snapshot {
                index: sending,
                offset,
            } if *sending == index => {
                if *offset == next_offset && self.probe_sent {
                    return false;
                }
                *offset = next_offset;
                self.probe_sent = false;
                true
            }
            _ => false,
        }
    }

    /// The follower holds everything up to `index` now: probe from there.
    pub fn snapshot_installed(&mut self, index: LogIndex) {
        self.maybe_update(index);
        self.become_probe();
    }

    /// The heartbeat interval's heartbeat is due while a snapshot is being sent: resend the
    /// unanswered chunk (not for a read round's heartbeat, however often reads come).
    pub fn resend_snapshot_chunk(&mut self) {
        if matches!(self.state, ProgressState::Snapshot { .. }) {
            self.probe_sent = false;
        }
    }

    /// The logs are known to match up to `match_index`: start streaming after it.
    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.probe_sent = false;
        self.next_index = self.match_index.next();
        self.clear_inflight();
    }

    /// Whether the leader must wait before sending this follower more entries.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe | ProgressState::Snapshot { .. } => self.probe_sent,
            // §10.2.1: a bounded pipeline, in appends and in bytes.
            ProgressState::Replicate => {
                self.inflight.len() >= self.max_inflight
                    || self.inflight_bytes >= self.max_inflight_bytes
            }
        }
    }

    /// Records that an append ending at `last_index` with `count` entries of `bytes` in all
    /// was sent.
    pub fn sent_append(&mut self, last_index: LogIndex, count: usize, bytes: u64) {
        match self.state {
            // An empty heartbeat is no probe to wait for: entries proposed next go at once
            // (else they would wait for its answer, or for the next interval's).
            ProgressState::Probe | ProgressState::Snapshot { .. } => {
                if count > 0 {
                    self.probe_sent = true;
                }
            }
            ProgressState::Replicate => {
                if count > 0 {
                    self.next_index = last_index.next();
                    self.inflight.push_back((last_index, bytes));
                    self.inflight_bytes += bytes;
                }
            }
        }
    }

    /// An acceptance up to `index` arrived. Returns whether `match_index` moved forward.
    /// A stale or duplicated acceptance never moves it back.
    pub fn maybe_update(&mut self, index: LogIndex) -> bool {
        let moved = index > self.match_index;
        if moved {
            self.match_index = index;
            self.probe_sent = false;
        }
        if self.next_index <= index {
            self.next_index = index.next();
        }
        while self
            .inflight
            .front()
            .is_some_and(|&(last, _)| last <= index)
        {
            self.free_oldest();
        }
        moved
    }

    /// A rejection of the append whose `prev_log_index` was `rejected` arrived, and the
    /// conflict hint says the logs may match just before `hint_next`. Returns whether the
    /// rejection was current (a stale one changes nothing).
    pub fn maybe_decrease_to(&mut self, rejected: LogIndex, hint_next: LogIndex) -> bool {
        match self.state {
            // The follower gets the snapshot; answers to older appends change nothing.
            ProgressState::Snapshot { .. } => false,
            ProgressState::Replicate => {
                if rejected <= self.match_index {
                    return false;
                }
                self.become_probe();
                true
            }
            ProgressState::Probe => {
                if self.next_index.prev() != rejected {
                    return false;
                }
                self.next_index = hint_next.min(rejected).max(self.match_index.next());
                self.probe_sent = false;
                true
            }
        }
    }

    /// The heartbeat interval's heartbeat went out to this follower: the next answer that
    /// moves nothing may resend (see [`Progress::heartbeat_answered`]).
    pub fn heartbeat_sent(&mut self) {
        self.resend_granted = true;
    }

    /// An answer that moved nothing arrived: the follower is reachable. The first such answer
    /// after the heartbeat interval's heartbeat lets a lost probe or snapshot chunk go again,
    /// and gives a full pipeline back its oldest slot (a safety valve: a lost append itself
    /// shows as the rejection of the next heartbeat, whose `prev_log_index` is the last index
    /// sent). Not every such answer: a follower that was stopped or cut off answers every
    /// heartbeat queued for it at once, and if each freed a slot, all the leader had to send
    /// it would go out (and sit in the leader's memory) together, past the pipeline's bound
    /// (§10.2.1).
    pub fn heartbeat_answered(&mut self) {
        if !std::mem::take(&mut self.resend_granted) {
            return;
        }
        self.probe_sent = false;
        if self.state == ProgressState::Replicate && self.is_paused() {
            self.free_oldest();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_append_at_a_time() {
        let mut progress = Progress::new(LogIndex(5), 4);
        assert!(!progress.is_paused());
        progress.sent_append(LogIndex(7), 3, 3);
        assert!(progress.is_paused(), "a probe waits for its answer");
        assert_eq!(
            progress.next_index(),
            LogIndex(5),
            "probing does not move next_index"
        );
    }

    #[test]
    fn replicate_pipelines_up_to_the_inflight_limit() {
        let mut progress = Progress::new(LogIndex(1), 2);
        progress.maybe_update(LogIndex(0));
        progress.become_replicate();
        progress.sent_append(LogIndex(3), 3, 3);
        assert!(!progress.is_paused());
        assert_eq!(progress.next_index(), LogIndex(4));
        progress.sent_append(LogIndex(5), 2, 2);
        assert!(
            progress.is_paused(),
            "two appends in flight fill a limit of two"
        );
        progress.maybe_update(LogIndex(3));
        assert!(!progress.is_paused(), "an answer frees its slot");
        assert_eq!(progress.inflight_count(), 1);
    }

    #[test]
    fn stale_acceptance_does_not_move_match_back() {
        let mut progress = Progress::new(LogIndex(1), 4);
        assert!(progress.maybe_update(LogIndex(9)));
        assert!(
            !progress.maybe_update(LogIndex(4)),
            "a stale answer is not an update"
        );
        assert_eq!(progress.match_index(), LogIndex(9));
        assert_eq!(progress.next_index(), LogIndex(10));
    }

    #[test]
    fn acceptance_clears_the_probe_wait() {
        let mut progress = Progress::new(LogIndex(3), 4);
        progress.sent_append(LogIndex(3), 1, 1);
        assert!(progress.maybe_update(LogIndex(3)));
        assert!(!progress.is_paused());
        assert_eq!(progress.next_index(), LogIndex(4));
    }

    #[test]
    fn rejection_in_replicate_falls_back_to_probe_after_match() {
        let mut progress = Progress::new(LogIndex(1), 4);
        progress.maybe_update(LogIndex(5));
        progress.become_replicate();
        progress.sent_append(LogIndex(9), 4, 4);
        assert!(
            !progress.maybe_decrease_to(LogIndex(5), LogIndex(2)),
            "rejection at or below match is stale"
        );
        assert_eq!(progress.state(), ProgressState::Replicate);
        assert!(progress.maybe_decrease_to(LogIndex(7), LogIndex(2)));
        assert_eq!(progress.state(), ProgressState::Probe);
        assert_eq!(progress.next_index(), LogIndex(6));
        assert_eq!(progress.inflight_count(), 0);
    }

    #[test]
    fn rejection_in_probe_follows_the_hint_but_not_below_match() {
        let mut progress = Progress::new(LogIndex(11), 4);
        progress.sent_append(LogIndex(10), 1, 1);
        assert!(
            !progress.maybe_decrease_to(LogIndex(7), LogIndex(3)),
            "a rejection of an older probe is stale"
        );
        assert!(progress.maybe_decrease_to(LogIndex(10), LogIndex(4)));
        assert_eq!(progress.next_index(), LogIndex(4));
        assert!(!progress.is_paused(), "a rejection answers the probe");
        progress.maybe_update(LogIndex(2));
        progress.sent_append(LogIndex(3), 0, 0);
        assert!(progress.maybe_decrease_to(LogIndex(3), LogIndex(1)));
        assert_eq!(
            progress.next_index(),
            LogIndex(3),
            "never below match_index + 1"
        );
    }

    #[test]
    fn rejection_never_moves_next_forward() {
        let mut progress = Progress::new(LogIndex(6), 4);
        assert!(progress.maybe_decrease_to(LogIndex(5), LogIndex(9)));
        assert_eq!(progress.next_index(), LogIndex(5));
    }

    #[test]
    fn heartbeat_answer_unblocks_a_lost_probe_and_a_full_pipeline_once_an_interval() {
        let mut progress = Progress::new(LogIndex(2), 1);
        progress.sent_append(LogIndex(2), 1, 1);
        progress.heartbeat_answered();
        assert!(
            progress.is_paused(),
            "no heartbeat went out: an answer of before"
        );
        progress.heartbeat_sent();
        progress.heartbeat_answered();
        assert!(!progress.is_paused());
        progress.maybe_update(LogIndex(1));
        progress.become_replicate();
        progress.sent_append(LogIndex(4), 3, 3);
        assert!(progress.is_paused());
        progress.heartbeat_sent();
        progress.heartbeat_answered();
        assert!(!progress.is_paused());
        progress.sent_append(LogIndex(5), 1, 1);
        for _ in 0..100 {
            progress.heartbeat_answered();
        }
        assert!(
            progress.is_paused(),
            "answers queued up while the follower was stopped free one slot, not one each"
        );
    }

    #[test]
    fn replicate_pipelines_up_to_the_byte_limit_and_a_larger_append_goes_alone() {
        let mut progress = Progress::new(LogIndex(1), 8).with_max_inflight_bytes(100);
        progress.maybe_update(LogIndex(0));
        progress.become_replicate();
        progress.sent_append(LogIndex(1), 1, 60);
        assert!(!progress.is_paused());
        progress.sent_append(LogIndex(2), 1, 60);
        assert!(progress.is_paused(), "120 bytes in flight");
        progress.maybe_update(LogIndex(1));
        assert_eq!(progress.inflight_bytes(), 60);
        assert!(!progress.is_paused());
        progress.maybe_update(LogIndex(2));
        assert_eq!(progress.inflight_bytes(), 0);
        progress.sent_append(LogIndex(3), 1, 500);
        assert!(progress.is_paused(), "one append over the limit, alone");
        progress.become_probe();
        assert_eq!(progress.inflight_bytes(), 0);
    }

    #[test]
    fn an_empty_heartbeat_in_probe_is_no_probe_to_wait_for() {
        let mut progress = Progress::new(LogIndex(4), 4);
        progress.sent_append(LogIndex(3), 0, 0);
        assert!(
            !progress.is_paused(),
            "entries proposed next go at once, not after the heartbeat's answer"
        );
        progress.sent_append(LogIndex(5), 2, 2);
        assert!(progress.is_paused());
    }

    #[test]
    fn check_quorum_round_resets_activity() {
        let mut progress = Progress::new(LogIndex(1), 1);
        assert!(!progress.take_recent_active());
        progress.mark_active();
        assert!(progress.take_recent_active());
        assert!(!progress.recent_active());
    }
}

//! Log replication (§5.3): the leader sends AppendEntries as each follower's progress allows
//! and commits what a majority stores; a follower checks and appends what it receives.

use crate::message::{AppendResponse, Message, MessageBody};
use crate::progress::ProgressState;
use crate::raft::{Raft, StepError};
use crate::storage::LogStorage;
use crate::tracker::InflightLimit;
use crate::types::{Entry, LogIndex, NodeId, Role, Term};

impl<S: LogStorage> Raft<S> {
    // ---- leader ----

    /// Sends `to` as many appends as its progress allows.
    pub(crate) fn send_appends(&mut self, to: NodeId) {
        let last_index = self.log.last_index();
        loop {
            let Some(progress) = self.tracker.get(to) else {
                return;
            };
            if progress.is_paused() || progress.next_index() > last_index {
                return;
            }
            if !self.send_append(to, false) {
                return;
            }
        }
    }

    /// Sends one AppendEntries from `to`'s next index. Returns whether a message was sent.
    pub(crate) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(progress) = self.tracker.get(to) else {
            return false;
        };
        let next = progress.next_index();
        let prev_log_index = next.prev();
        let in_snapshot = matches!(progress.state(), ProgressState::Snapshot { .. });
        let Some(prev_log_term) = self.log.term(prev_log_index).filter(|_| !in_snapshot) else {
            // The entries this follower needs are compacted: it gets the snapshot instead.
            return self.send_snapshot(to);
        };
        // Thesis §10.2.1 (pipelining): a paused follower gets an empty heartbeat, so that no
        // more than `max_inflight_appends` appends are ever unanswered, and no new one goes
        // while they hold `max_inflight_bytes` of entries.
        let high = if progress.is_paused() {
            next
        } else {
            next.plus(self.config.max_append_entries as u64)
        };
        let entries = self
            .log
            .entries(next, high, self.config.max_message_bytes)
            .unwrap_or_else(|err| panic!("{}: entries from {next} unreadable: {err}", self.id));
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let last_sent = prev_log_index.plus(entries.len() as u64);
        // §5.3: the follower may commit only what this request lets it verify.
        let leader_commit = self.log.committed().min(last_sent);
        let count = entries.len();
        let bytes = entries.iter().map(Entry::size_bytes).sum();
        let progress = self.tracker.get_mut(to).expect("progress checked above");
        progress.sent_append(last_sent, count, bytes);
        let read_round = self.reads.current_round();
        self.send(
            to,
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_round,
            },
        );
        true
    }

    /// How far ahead of each follower's answers the leader streams (§10.2.1).
    pub(crate) fn inflight_limit(&self) -> InflightLimit {
        InflightLimit {
            appends: self.config.max_inflight_appends,
            bytes: self.config.max_inflight_bytes,
        }
    }

    /// Leader only: every node it replicates to.
    pub(crate) fn followers(&self) -> Vec<NodeId> {
        self.tracker.followers(self.id)
    }

    /// Sends every follower an append of what its progress allows (empty if paused). `paced`:
    /// the heartbeat interval's own heartbeat, which resends an unanswered snapshot chunk and
    /// lets one answer resend (`Progress::heartbeat_sent`); a read round's heartbeat does
    /// neither, so however often reads come, a stalled follower is resent to at most once an
    /// interval.
    pub(crate) fn broadcast_heartbeat(&mut self, paced: bool) {
        let peers = self.followers();
        for to in peers {
            if let Some(progress) = self.tracker.get_mut(to).filter(|_| paced) {
                progress.resend_snapshot_chunk();
                progress.heartbeat_sent();
            }
            self.send_append(to, true);
        }
    }

    /// Sends pending entries to every follower (called when a Ready is built).
    pub(crate) fn flush_broadcast(&mut self) {
        if self.role == Role::Leader && self.reads.needs_round() {
            // Reads arrived since the last round: confirm leadership now rather than at the
            // next heartbeat. Every read registered so far shares this one round.
            self.start_read_round();
            self.broadcast_heartbeat(false);
        }
        if !std::mem::take(&mut self.broadcast_pending) {
            return;
        }
        let peers = self.followers();
        // A new commit index alone does not trigger a message: it rides on the next append
        // or heartbeat, which halves the messages of a lightly loaded cluster.
        for to in peers {
            self.send_appends(to);
        }
    }

    pub(crate) fn handle_append_response(
        &mut self,
        from: NodeId,
        read_round: u64,
        response: AppendResponse,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        progress.mark_active();
        // Any answer in this term, acceptance or rejection, shows `from` still follows us.
        self.read_round_answered(from, read_round);
        match response {
            AppendResponse::Accepted { match_index } => self.append_accepted(from, match_index),
            AppendResponse::Rejected {
                rejected_index,
                hint_index,
                hint_term,
            } => self.append_rejected(from, rejected_index, hint_index, hint_term),
        }
    }

    /// `from` stores the log up to `match_index`.
    fn append_accepted(&mut self, from: NodeId, match_index: LogIndex) {
        if match_index > self.log.last_index() {
            return; // Not an answer to anything this leader sent.
        }
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        let moved = progress.maybe_update(match_index);
        if !moved {
            progress.heartbeat_answered();
        } else if progress.state() == ProgressState::Probe {
            progress.become_replicate();
        }
        if moved {
            self.maybe_commit();
            self.maybe_send_timeout_now(from);
        }
        self.send_appends(from);
    }

    /// §5.3: `from`'s log does not match at `rejected_index`; the hint says where to probe.
    fn append_rejected(
        &mut self,
        from: NodeId,
        rejected_index: LogIndex,
        hint_index: LogIndex,
        hint_term: Term,
    ) {
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        let (probe_index, _) = self.log.find_conflict_by_term(hint_index, hint_term);
        if progress.maybe_decrease_to(rejected_index, probe_index.next()) {
            self.send_appends(from);
        }
    }

    /// Moves the commit index to what a majority stores. Returns whether it moved.
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let quorum_index = self.tracker.committed_index();
        // Figure 8 / §5.4.2: only entries of the current term are committed by counting replicas.
        if quorum_index <= self.log.committed() || self.log.term(quorum_index) != Some(self.term) {
            return false;
        }
        self.log.commit_to(quorum_index);
        self.uncommitted.commit_to(quorum_index);
        self.release_reads_awaiting_commit();
        true
    }

    /// Called once storage durably holds the log up to `index` at `term`.
    pub(crate) fn on_entries_persisted(&mut self, index: LogIndex, term: Term) {
        self.log.stable_to(index, term);
        if self.role != Role::Leader {
            return;
        }
        let persisted = self.log.persisted_index();
        let moved = self
            .tracker
            .get_mut(self.id)
            .is_some_and(|mine| mine.maybe_update(persisted));
        if moved {
            self.maybe_commit();
        }
    }

    // ---- follower ----

    pub(crate) fn handle_append_entries(
        &mut self,
        from: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: &[Entry],
        leader_commit: LogIndex,
        read_round: u64,
    ) -> Result<(), StepError> {
        if !self.follow(from) {
            return Ok(()); // Election Safety: no other leader in this term.
        }
        let response = if prev_log_index < self.log.committed() {
            // Everything up to our commit index matches the leader's log already.
            AppendResponse::Accepted {
                match_index: self.log.committed(),
            }
        } else if let Some(last_verified) =
            self.log
                .maybe_append(prev_log_index, prev_log_term, leader_commit, entries)?
        {
            AppendResponse::Accepted {
                match_index: last_verified,
            }
        } else {
            let probe_from = prev_log_index.min(self.log.last_index());
            let (hint_index, hint_term) = self.log.find_conflict_by_term(probe_from, prev_log_term);
            AppendResponse::Rejected {
                rejected_index: prev_log_index,
                hint_index,
                hint_term,
            }
        };
        let message = Message {
            from: self.id,
            to: from,
            term: self.term,
            body: MessageBody::AppendEntriesResponse {
                read_round,
                result: response.clone(),
            },
        };
        match response {
            // Thesis §3.8: an acceptance promises the entries are durable.
            AppendResponse::Accepted { .. } => self.outbox.send_after_persist(message),
            AppendResponse::Rejected { .. } => self.outbox.send(message),
        }
        Ok(())
    }
}

//! Membership changes (§6): one change at a time, proposed only once the leader's no-op has
//! committed, taking effect on every node when applied; a change of voters goes through the
//! joint configuration, which the leader leaves as soon as it is in force.

use crate::membership::{ConfChange, ConfChangeStep, ConfState};
use crate::raft::{ProposeError, Raft};
use crate::storage::LogStorage;
use crate::types::{EntryKind, LogIndex, Role, Term};

impl<S: LogStorage> Raft<S> {
    /// The membership in force.
    pub fn conf_state(&self) -> ConfState {
        self.tracker.conf_state()
    }

    pub(crate) fn set_conf_state(&mut self, conf: &ConfState) {
        self.tracker.set_conf_state(conf);
    }

    /// Proposes a membership change. Refused while another is not applied yet, and before the
    /// leader's no-op of its term has committed (until then an earlier leader's change may still
    /// be in flight unseen).
    pub fn propose_conf_change(
        &mut self,
        change: ConfChange,
    ) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if let Some(to) = self.lead_transferee() {
            return Err(ProposeError::TransferInProgress { to });
        }
        if self.log.term(self.log.committed()) != Some(self.term) {
            return Err(ProposeError::ConfChangeTooEarly);
        }
        if self.pending_conf_index > self.log.applied() {
            return Err(ProposeError::ConfChangeInProgress {
                pending: self.pending_conf_index,
            });
        }
        self.conf_state()
            .apply(&change)
            .map_err(ProposeError::InvalidConfChange)?;
        // A learner is promoted only once it has caught up: a lagging new voter would count
        // toward the quorum while holding nothing, and could stall commitment.
        for step in &change.steps {
            if let ConfChangeStep::AddVoter(learner) = *step {
                let caught_up = self
                    .tracker
                    .get(learner)
                    .is_some_and(|p| p.match_index() >= self.log.committed());
                if self.tracker.learners().contains(&learner) && !caught_up {
                    return Err(ProposeError::LearnerNotCaughtUp { learner });
                }
            }
        }
        let index = self.append_entry(EntryKind::ConfChange, change.encode());
        self.pending_conf_index = index;
        self.broadcast_pending = true;
        Ok((index, self.term))
    }

    /// A committed configuration change was applied: it is in force from now on. A change that
    /// does not apply to the configuration in force is skipped, identically on every node.
    pub(crate) fn apply_conf_change(&mut self, change: &ConfChange) {
        let Ok(next) = self.conf_state().apply(change) else {
            return;
        };
        self.set_conf_state(&next);
        if self.role != Role::Leader {
            return;
        }
        let me = self.id;
        self.tracker.track_members(
            &next.members(),
            me,
            self.log.last_index().next(),
            self.inflight_limit(),
        );
        if self
            .lead_transferee()
            .is_some_and(|to| !self.tracker.is_voter(to))
        {
            self.transfer = None;
        }
        if next.is_joint() {
            // §6: once C_old,new is in force, the leader moves on to C_new.
            let index =
                self.append_entry(EntryKind::ConfChange, ConfChange::leave_joint().encode());
            self.pending_conf_index = index;
            self.broadcast_pending = true;
        } else if !self.tracker.is_voter(me) {
            // §6: a leader that is not part of C_new steps down once C_new is committed; not
            // being a voter, it will not campaign again. First it tells every member that C_new
            // committed: commits otherwise ride on the next append, which this leader will
            // never send, and members still in C_old,new could be left unable to elect anyone
            // (this node, with the freshest log, refuses their votes and cannot campaign).
            for to in self.followers() {
                self.send_appends(to);
                self.send_append(to, true);
            }
            self.become_follower(self.term, None);
            return;
        }
        // The quorum changed: what it has stored may now be committed. As everywhere, the new
        // commit index rides on the next append or heartbeat.
        self.maybe_commit();
    }

    /// Whether a committed configuration change is not applied yet.
    pub(crate) fn has_unapplied_conf_change(&self) -> bool {
        let (applied, committed) = (self.log.applied(), self.log.committed());
        if applied >= committed {
            return false;
        }
        match self.log.entries(applied.next(), committed.next(), u64::MAX) {
            Ok(entries) => entries
                .iter()
                .any(|entry| entry.kind == EntryKind::ConfChange),
            // Unreadable entries: assume the worst and wait.
            Err(_) => true,
        }
    }
}

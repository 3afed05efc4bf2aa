//! What the driver logs and publishes when the node reports an election, a role change, a
//! membership change or another event.

use super::*;

impl Driver {
    /// A candidate in a new term has started an election: its first, or its next after a
    /// split or lost vote (the role stays `candidate`, so no role change tells of it).
    pub(super) fn note_elections(&mut self) {
        let raft = self.node.raw().raft();
        let term = raft.term().0;
        if term != self.last_term {
            self.last_term = term;
            if raft.role() == Role::Candidate {
                self.shared.metrics.elections_started.inc();
                tracing::info!(node = self.node.id().0, term, "election started");
                self.shared.publish(
                    term,
                    "election",
                    "election started: voted for itself".into(),
                );
            }
        }
    }

    /// The role or the known leader changed: counted, logged and published.
    pub(super) fn note_role_change(
        &mut self,
        soft_state: &skiff_raft::SoftState,
        term: skiff_raft::Term,
    ) {
        let id = self.node.id().0;
        let metrics = &self.shared.metrics;
        if soft_state.role == Role::Leader {
            metrics.elections_won.inc();
        }
        tracing::info!(
            node = id,
            term = term.0,
            role = %soft_state.role,
            leader = soft_state.leader.map(|l| l.0),
            "role changed"
        );
        let text = match soft_state.role {
            Role::PreCandidate => Some("pre-vote: asking whether it could win".to_string()),
            // Every election, including a candidate's next one, is published by
            // `note_elections` when the term changes.
            Role::Candidate => None,
            Role::Leader => Some("won the election: now leader".to_string()),
            Role::Follower => Some(match soft_state.leader {
                Some(leader) => format!("follower of node {}", leader.0),
                None => "follower, no leader known".to_string(),
            }),
        };
        if let Some(text) = text {
            self.shared.publish(term.0, "role", text);
        }
        if soft_state.leader != self.last_leader {
            if soft_state.leader.is_some() {
                metrics.leader_changes.inc();
            }
            tracing::info!(
                node = id,
                term = term.0,
                leader = soft_state.leader.map(|l| l.0),
                "leader changed"
            );
            if let Some(leader) = soft_state.leader {
                self.shared
                    .publish(term.0, "leader", format!("leader is node {}", leader.0));
            }
            self.last_leader = soft_state.leader;
        }
    }

    /// A configuration change was applied: logged and published.
    pub(super) fn note_membership_change(&self, index: skiff_raft::LogIndex) {
        let id = self.node.id().0;
        let conf = self.node.raw().raft().conf_state();
        let term = self.node.raw().raft().term().0;
        tracing::info!(
            node = id,
            term,
            index = index.0,
            ?conf,
            "membership changed"
        );
        self.shared.publish(
            self.node.raw().raft().term().0,
            "membership",
            format!(
                "membership changed at {}: voters {:?}, learners {:?}",
                index.0,
                conf.voters.iter().map(|v| v.0).collect::<Vec<_>>(),
                conf.learners.iter().map(|v| v.0).collect::<Vec<_>>()
            ),
        );
    }

    pub(super) fn log_event(&mut self, event: &Event) {
        let id = self.node.id().0;
        let metrics = &self.shared.metrics;
        match event {
            Event::RoleChanged { soft_state, term } => self.note_role_change(soft_state, *term),
            Event::ConfChangeApplied { index } => self.note_membership_change(*index),
            Event::MemberIncarnationRecorded {
                id: member,
                incarnation,
            } => {
                self.refused_peers.remove(&member.0);
                tracing::info!(node = id, member = member.0, incarnation = format!("{incarnation:#x}"), "member incarnation recorded");
            }
            Event::IncarnationRefused(notice) => tracing::error!(
                node = id,
                by = notice.by.0,
                "this node's data directory is not the one the cluster knows (incarnation {:#x}, recorded {:#x}): it stays out of elections; remove it (`skiff admin remove --id {id}`, adding `--force` if fewer than three voters would remain) and add it back as a new member",
                notice.incarnation,
                notice.recorded
            ),
            Event::MemberAddressRecorded { id: member } => {
                let addr = self.node.member_addresses().get(member).cloned();
                tracing::info!(
                    node = id,
                    term = self.node.raw().raft().term().0,
                    member = member.0,
                    addr,
                    "member address recorded"
                );
            }
            Event::SnapshotTaken { index } => {
                metrics.snapshots.with_label_values(&["taken"]).inc();
                tracing::info!(
                    node = id,
                    term = self.node.raw().raft().term().0,
                    index = index.0,
                    "snapshot taken"
                );
                self.shared.publish(
                    self.node.raw().raft().term().0,
                    "snapshot",
                    format!("snapshot taken at index {}", index.0),
                );
            }
            Event::SnapshotChunkReceived { index, received } => {
                tracing::info!(
                    node = id,
                    term = self.node.raw().raft().term().0,
                    index = index.0,
                    received,
                    "receiving a snapshot from the leader"
                );
                self.shared.publish(
                    self.node.raw().raft().term().0,
                    "snapshot",
                    format!(
                        "receiving a snapshot at index {}: {} KiB so far",
                        index.0,
                        received >> 10
                    ),
                );
            }
            Event::WriteResubmitted { id: request, .. } => {
                tracing::debug!(node = id, request, "a session write sent again after a leader change");
            }
            Event::SnapshotSkipped { applied } => {
                tracing::debug!(node = id, applied = applied.0, "nothing new to snapshot");
            }
            Event::SnapshotInstalled { index } => {
                metrics.snapshots.with_label_values(&["installed"]).inc();
                tracing::info!(
                    node = id,
                    term = self.node.raw().raft().term().0,
                    index = index.0,
                    "snapshot installed from the leader"
                );
            }
        }
    }
}

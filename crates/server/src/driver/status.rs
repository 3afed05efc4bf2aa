//! The node's status and metrics, published for the HTTP endpoints and the live view.

use super::*;

impl Driver {
    /// Publishes the node's status for `skiff status`, `/status` and the live view.
    pub(super) fn publish_status(&self) {
        let raw = self.node.raw();
        let raft = raw.raft();
        let status = raw.status();
        let me = self.node.id().0;
        let members = self.member_statuses(&status);
        let leader = status.soft_state.leader.map(|l| l.0);
        self.publish_metrics(&status);
        let mut published = self.shared.status.write().expect("status lock");
        *published = NodeStatus {
            id: me,
            cluster_id: self.options.cluster_id,
            role: status.soft_state.role.to_string(),
            term: status.term.0,
            vote: status.vote.map(|v| v.0),
            leader,
            leader_client_addr: leader
                .and_then(|l| members.get(&l))
                .and_then(|m| m.client_addr.clone()),
            commit: status.commit.0,
            applied: self.node.applied().0,
            last_index: status.last_index.0,
            snapshot_index: skiff_raft::LogStorage::snapshot_meta(self.node.wal())
                .index
                .0,
            keys: self.node.state_machine().len() as u64,
            pending_requests: self.node.pending_requests() as u64,
            first_index: skiff_raft::LogStorage::first_index(self.node.wal()).0,
            election_elapsed: raft.election_elapsed_ticks(),
            election_timeout: raft.randomized_election_timeout_ticks(),
            members: members.into_values().collect(),
            local_control: None,
            fault_injection: false,
            isolated: false,
            incarnation: self.node.incarnation(),
            refused: self.node.is_refused(),
            log: log_tail::log_tail(self.node.wal(), &self.recent_kinds),
            traffic: self.traffic.snapshot(),
            tick_ms: 0,
            pre_vote: raft.config().pre_vote,
        };
    }

    /// Each member's status: its kind, its addresses and, on a leader, how far it matches.
    pub(super) fn member_statuses(
        &self,
        status: &skiff_raft::Status,
    ) -> BTreeMap<u64, MemberStatus> {
        let raft = self.node.raw().raft();
        let conf = raft.conf_state();
        // Only the members' entries are read: the map is not copied on every tick.
        let advertised = self.shared.advertised.read().ok();
        let mut members: BTreeMap<u64, MemberStatus> = BTreeMap::new();
        let kinds = [
            (&conf.voters, "voter"),
            (&conf.voters_outgoing, "voter (outgoing)"),
            (&conf.learners, "learner"),
        ];
        for (ids, kind) in kinds {
            for id in ids {
                members.entry(id.0).or_insert_with(|| MemberStatus {
                    id: id.0,
                    kind: kind.to_string(),
                    peer_addr: self
                        .node
                        .member_addresses()
                        .get(id)
                        .cloned()
                        .or_else(|| self.options.peer_addrs.get(&id.0).map(|a| a.to_string())),
                    client_addr: advertised
                        .as_ref()
                        .and_then(|a| a.get(&id.0))
                        .map(|a| a.client_addr.clone()),
                    http_addr: advertised
                        .as_ref()
                        .and_then(|a| a.get(&id.0))
                        .map(|a| a.http_addr.clone()),
                    match_index: None,
                });
            }
        }
        if raft.role() == Role::Leader {
            for (id, index) in &status.match_index {
                if let Some(member) = members.get_mut(&id.0) {
                    member.match_index = Some(index.0);
                }
            }
        }
        members
    }

    /// The node's gauges.
    pub(super) fn publish_metrics(&self, status: &skiff_raft::Status) {
        let metrics = &self.shared.metrics;
        metrics.term.set(status.term.0 as i64);
        for role in [
            Role::Follower,
            Role::PreCandidate,
            Role::Candidate,
            Role::Leader,
        ] {
            metrics
                .role
                .with_label_values(&[&role.to_string()])
                .set(i64::from(role == status.soft_state.role));
        }
        metrics.commit_index.set(status.commit.0 as i64);
        metrics.applied_index.set(self.node.applied().0 as i64);
        metrics.last_log_index.set(status.last_index.0 as i64);
        metrics.snapshot_index.set(
            skiff_raft::LogStorage::snapshot_meta(self.node.wal())
                .index
                .0 as i64,
        );
        metrics.keys.set(self.node.state_machine().len() as i64);
        let (segments, spares) = self.node.wal().segment_files();
        for (kind, files) in [("segment", segments), ("spare", spares)] {
            metrics
                .wal_segment_files
                .with_label_values(&[kind])
                .set(files as i64);
        }
        // The log counts from its opening, as this process's counter does.
        let recycled = self.node.wal().segments_recycled();
        metrics
            .wal_segments_recycled
            .inc_by(recycled.saturating_sub(metrics.wal_segments_recycled.get()));
        metrics
            .pending_requests
            .set(self.node.pending_requests() as i64);
    }
}

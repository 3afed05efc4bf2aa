//! Counters of the Raft messages this node sent to and received from each peer, by kind,
//! for the live view's arrows: plain integers bumped on the driver thread (no allocation
//! per message), for at most [`MAX_PEERS_COUNTED`] peers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use skiff_node::{Envelope, PeerMessage};
use skiff_raft::{AppendResponse, MessageBody};

/// Peers whose messages are counted; messages of others are not (the map stays bounded
/// whatever ids arrive).
pub const MAX_PEERS_COUNTED: usize = 64;

/// Messages of one direction between this node and one peer, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// AppendEntries carrying entries (§5.3).
    pub append: u64,
    /// AppendEntries without entries: heartbeats (§5.2).
    pub heartbeat: u64,
    /// AppendEntries answers that accepted.
    pub append_ok: u64,
    /// AppendEntries answers that refused (the logs differ at `prev_log_index`, §5.3).
    pub append_refused: u64,
    /// PreVote requests (thesis §9.6).
    pub pre_vote: u64,
    /// PreVotes granted.
    pub pre_vote_granted: u64,
    /// PreVotes refused.
    pub pre_vote_refused: u64,
    /// RequestVote (§5.2).
    pub vote: u64,
    /// Votes granted.
    pub vote_granted: u64,
    /// Votes refused.
    pub vote_refused: u64,
    /// InstallSnapshot chunks (§7).
    pub snapshot: u64,
    /// TimeoutNow: a leader hands over (thesis §3.10).
    pub timeout_now: u64,
    /// Everything else (snapshot answers, ReadIndex, forwarded writes).
    pub other: u64,
}

impl MessageCounts {
    /// Counts one message.
    fn count(&mut self, message: &PeerMessage) {
        let counter = match message {
            PeerMessage::Raft(message) => match &message.body {
                MessageBody::AppendEntries { entries, .. } if entries.is_empty() => {
                    &mut self.heartbeat
                }
                MessageBody::AppendEntries { .. } => &mut self.append,
                MessageBody::AppendEntriesResponse { result, .. } => match result {
                    AppendResponse::Accepted { .. } => &mut self.append_ok,
                    AppendResponse::Rejected { .. } => &mut self.append_refused,
                },
                MessageBody::PreVote { .. } => &mut self.pre_vote,
                MessageBody::PreVoteResponse { reject: false } => &mut self.pre_vote_granted,
                MessageBody::PreVoteResponse { reject: true } => &mut self.pre_vote_refused,
                MessageBody::RequestVote { .. } => &mut self.vote,
                MessageBody::RequestVoteResponse { reject: false } => &mut self.vote_granted,
                MessageBody::RequestVoteResponse { reject: true } => &mut self.vote_refused,
                MessageBody::InstallSnapshot { .. } => &mut self.snapshot,
                MessageBody::TimeoutNow => &mut self.timeout_now,
                MessageBody::InstallSnapshotResponse { .. }
                | MessageBody::ReadIndex { .. }
                | MessageBody::ReadIndexResponse { .. } => &mut self.other,
            },
            PeerMessage::Forward { .. }
            | PeerMessage::ForwardReply { .. }
            | PeerMessage::IncarnationRefused { .. } => &mut self.other,
        };
        *counter = counter.wrapping_add(1);
    }
}

/// The messages between this node and one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTraffic {
    /// The peer.
    pub peer: u64,
    /// What this node sent it (put on its queue).
    pub sent: MessageCounts,
    /// What this node received from it.
    pub received: MessageCounts,
}

/// Every peer's counters.
#[derive(Debug, Default)]
pub struct Traffic {
    peers: BTreeMap<u64, (MessageCounts, MessageCounts)>,
}

impl Traffic {
    /// The counters of `peer`, if it is counted (or there is room for it).
    fn of(&mut self, peer: u64) -> Option<&mut (MessageCounts, MessageCounts)> {
        if self.peers.len() >= MAX_PEERS_COUNTED && !self.peers.contains_key(&peer) {
            return None;
        }
        Some(self.peers.entry(peer).or_default())
    }

    /// A message left for its peer.
    pub fn sent(&mut self, message: &Envelope) {
        if let Some((sent, _)) = self.of(message.to().0) {
            sent.count(&message.message);
        }
    }

    /// A message came from its peer.
    pub fn received(&mut self, message: &Envelope) {
        if let Some((_, received)) = self.of(message.from().0) {
            received.count(&message.message);
        }
    }

    /// Keeps only the counters of `members`: ids that only a Hello claimed (any TCP client
    /// can claim one) leave room for members added later.
    pub fn retain(&mut self, members: &[skiff_raft::NodeId]) {
        self.peers
            .retain(|&peer, _| members.contains(&skiff_raft::NodeId(peer)));
    }

    /// The counters, by peer.
    pub fn snapshot(&self) -> Vec<PeerTraffic> {
        self.peers
            .iter()
            .map(|(&peer, &(sent, received))| PeerTraffic {
                peer,
                sent,
                received,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_node::PeerMessage;
    use skiff_raft::{Message, NodeId, Term};

    fn heartbeat_from(from: u64) -> Envelope {
        let message = Message {
            from: NodeId(from),
            to: NodeId(1),
            term: Term(1),
            body: MessageBody::AppendEntries {
                prev_log_index: Default::default(),
                prev_log_term: Term(0),
                entries: Vec::new(),
                leader_commit: Default::default(),
                read_round: 0,
            },
        };
        Envelope::new(1, PeerMessage::Raft(message))
    }

    /// Made-up ids fill the counted peers; once the membership is refreshed they go, and a
    /// member added later is counted.
    #[test]
    fn ids_only_a_hello_claimed_leave_room_for_members() {
        let mut traffic = Traffic::default();
        for stranger in 100..100 + MAX_PEERS_COUNTED as u64 {
            traffic.received(&heartbeat_from(stranger));
        }
        traffic.received(&heartbeat_from(4));
        assert!(traffic.snapshot().iter().all(|counted| counted.peer != 4));
        traffic.retain(&[NodeId(1), NodeId(2), NodeId(4)]);
        assert!(traffic.snapshot().is_empty());
        traffic.received(&heartbeat_from(4));
        let counted = traffic.snapshot();
        assert_eq!(counted.len(), 1);
        assert_eq!((counted[0].peer, counted[0].received.heartbeat), (4, 1));
    }
}

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
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS_COUNTED {
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

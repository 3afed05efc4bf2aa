//! The messages Raft nodes exchange (Figure 2's RPCs, plus PreVote from thesis §9.6).

use crate::storage::SnapshotMeta;
use crate::types::{Entry, LogIndex, NodeId, Term};

/// One message between two nodes. Every message carries its sender's term (§5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The sender's term, or for PreVote the term it would campaign in.
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The payload of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// "Would you vote for me in `term`?" — sent without raising the sender's term.
    PreVote {
        /// Index of the candidate's last log entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
    },
    /// The answer to a PreVote.
    PreVoteResponse {
        /// Whether the pre-vote was refused.
        reject: bool,
    },
    /// RequestVote RPC (§5.2).
    RequestVote {
        /// Index of the candidate's last log entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
        /// The leader asked this candidate to take over (thesis §3.10): voters answer even
        /// while they still hear from that leader.
        leadership_transfer: bool,
    },
    /// The answer to a RequestVote.
    RequestVoteResponse {
        /// Whether the vote was refused.
        reject: bool,
    },
    /// AppendEntries RPC (§5.3); with no entries it is a heartbeat.
    AppendEntries {
        /// Index of the entry immediately preceding `entries`.
        prev_log_index: LogIndex,
        /// Term of the entry at `prev_log_index`.
        prev_log_term: Term,
        /// Entries to store (empty for a heartbeat).
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: LogIndex,
        /// The leader's latest read round (ReadIndex, thesis §6.4): an answer to this message
        /// shows the sender was still leader after every read registered before the round.
        read_round: u64,
    },
    /// The answer to an AppendEntries.
    AppendEntriesResponse {
        /// The `read_round` of the request being answered.
        read_round: u64,
        /// Whether the entries were stored.
        result: AppendResponse,
    },
    /// The leader tells the transfer target to campaign at once (thesis §3.10).
    TimeoutNow,
    /// InstallSnapshot RPC (Figure 13), one chunk at a time.
    InstallSnapshot {
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// Where this chunk starts in the snapshot's data.
        offset: u64,
        /// The chunk.
        data: Vec<u8>,
        /// Whether this is the last chunk.
        done: bool,
    },
    /// The answer to an InstallSnapshot.
    InstallSnapshotResponse {
        /// The index of the snapshot being answered.
        index: LogIndex,
        /// The offset the follower expects next (a dropped chunk is resent from here).
        next_offset: u64,
        /// Whether the follower now holds everything up to `index`.
        installed: bool,
    },
    /// A follower asks the leader for a read index on behalf of its caller.
    ReadIndex {
        /// The caller's id for the request.
        ctx: u64,
    },
    /// The leader's answer to a ReadIndex.
    ReadIndexResponse {
        /// The caller's id for the request.
        ctx: u64,
        /// The index to wait for before reading, or `None` when the leader refused.
        index: Option<LogIndex>,
    },
}

/// The answer to an AppendEntries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendResponse {
    /// The follower's log now matches the leader's up to `match_index`.
    Accepted {
        /// The last index this request made match the leader's log.
        match_index: LogIndex,
    },
    /// The follower has no entry matching `prev_log_index`/`prev_log_term`.
    Rejected {
        /// The `prev_log_index` of the rejected request.
        rejected_index: LogIndex,
        /// Conflict hint: the follower's largest index at or below `rejected_index` whose term
        /// is at most the request's `prev_log_term` (or its last index, when shorter).
        hint_index: LogIndex,
        /// The follower's term at `hint_index`.
        hint_term: Term,
    },
}

impl MessageBody {
    /// Whether this is a request (as opposed to a response).
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            MessageBody::PreVote { .. }
                | MessageBody::RequestVote { .. }
                | MessageBody::AppendEntries { .. }
                | MessageBody::ReadIndex { .. }
                | MessageBody::TimeoutNow
                | MessageBody::InstallSnapshot { .. }
        )
    }

    /// A short name for traces.
    pub fn name(&self) -> &'static str {
        match self {
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::RequestVote { .. } => "RequestVote",
            MessageBody::RequestVoteResponse { .. } => "RequestVoteResponse",
            MessageBody::AppendEntries { .. } => "AppendEntries",
            MessageBody::AppendEntriesResponse { .. } => "AppendEntriesResponse",
            MessageBody::ReadIndex { .. } => "ReadIndex",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::InstallSnapshotResponse { .. } => "InstallSnapshotResponse",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }
}

impl Message {
    /// The payload bytes of the entries this message carries.
    pub fn entries_bytes(&self) -> u64 {
        match &self.body {
            MessageBody::AppendEntries { entries, .. } => {
                entries.iter().map(|e| e.data.len() as u64).sum()
            }
            MessageBody::InstallSnapshot { data, .. } => data.len() as u64,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}->{} {} ", self.from, self.to, self.term)?;
        match &self.body {
                        MessageBody::PreVote {
                last_log_index,
                last_log_term,
            }
            | MessageBody::RequestVote {
                last_log_index,
                last_log_term,
                ..
            } => write!(
                f,
                "{} last={}/{}",
                self.body.name(),
                last_log_index,
                last_log_term
            ),
            MessageBody::PreVoteResponse { reject }
            | MessageBody::RequestVoteResponse { reject } => {
                write!(
                    f,
                    "{} {}",
                    self.body.name(),
                    if *reject { "reject" } else { "grant" }
                )
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_round,
            } => {
                write!(
                    f,
                    "AppendEntries prev={prev_log_index}/{prev_log_term} commit={leader_commit} round={read_round}"
                )?;
                match (entries.first(), entries.last()) {
                    (Some(first), Some(last)) => {
                        write!(f, " entries={}..={}", first.index, last.index)
                    }
                    _ => write!(f, " heartbeat"),
                }
            }
            MessageBody::AppendEntriesResponse { read_round, result } => match result {
                AppendResponse::Accepted { match_index } => {
                    write!(f, "AppendEntriesResponse accept match={match_index} round={read_round}")
                }
                AppendResponse::Rejected {
                    rejected_index,
                    hint_index,
                    hint_term,
                } => write!(
                    f,
                    "AppendEntriesResponse reject at={rejected_index} hint={hint_index}/{hint_term} round={read_round}"
                ),
            },
                        MessageBody::ReadIndex { ctx } => write!(f, "ReadIndex ctx={ctx}"),
                        MessageBody::TimeoutNow => write!(f, "TimeoutNow"),
            MessageBody::InstallSnapshot { meta, offset, data, done } => write!(
                f,
                "InstallSnapshot at={}/{} offset={offset} bytes={}{}",
                meta.index,
                meta.term,
                data.len(),
                if *done { " done" } else { "" }
            ),
            MessageBody::InstallSnapshotResponse { index, next_offset, installed } => write!(
                f,
                "InstallSnapshotResponse at={index} next={next_offset}{}",
                if *installed { " installed" } else { "" }
            ),
            MessageBody::ReadIndexResponse { ctx, index } => match index {
                Some(index) => write!(f, "ReadIndexResponse ctx={ctx} index={index}"),
                None => write!(f, "ReadIndexResponse ctx={ctx} refused"),
            },
        }
    }
}

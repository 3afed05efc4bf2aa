//! The messages nodes exchange, in binary: Raft's own, and the forwarding of client writes
//! from a follower to the leader.
//!
//! Integers are fixed-width big-endian; byte strings and lists carry a `u32` length. The
//! decoder checks every length against the bytes that remain before allocating, so a forged
//! length cannot make it reserve memory the input could not fill, and malformed bytes give a
//! [`WireError`], never a panic.

use skiff_raft::{
    AppendResponse, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, SnapshotMeta, Term,
};

/// A message between two nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerMessage {
    /// A Raft message.
    Raft(Message),
    /// A client write a follower received, for the leader to propose: an encoded
    /// [`Request`](skiff_kv::Request).
    Forward {
        /// The follower that received the write.
        from: NodeId,
        /// The leader it is sent to.
        to: NodeId,
        /// The follower's id for the request, echoed in the reply.
        id: u64,
        /// The encoded request.
        request: Vec<u8>,
    },
    /// The leader's answer to a [`PeerMessage::Forward`], once applied (or refused).
    ForwardReply {
        /// The leader.
        from: NodeId,
        /// The follower that forwarded the write.
        to: NodeId,
        /// The follower's id for the request.
        id: u64,
        /// The encoded [`Reply`](skiff_kv::Reply).
        reply: Vec<u8>,
    },
}

impl PeerMessage {
    /// The node the message is for.
    pub fn to(&self) -> NodeId {
        match self {
            PeerMessage::Raft(message) => message.to,
            PeerMessage::Forward { to, .. } | PeerMessage::ForwardReply { to, .. } => *to,
        }
    }

    /// The node that sent the message.
    pub fn from(&self) -> NodeId {
        match self {
            PeerMessage::Raft(message) => message.from,
            PeerMessage::Forward { from, .. } | PeerMessage::ForwardReply { from, .. } => *from,
        }
    }
}

/// Why bytes are not a [`PeerMessage`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end before the message does.
    #[error("message truncated at byte {offset}")]
    Truncated {
        /// Where the missing bytes should have started.
        offset: usize,
    },
    /// A tag has no meaning.
    #[error("unknown {field} tag {tag} at byte {offset}")]
    UnknownTag {
        /// Which tag.
        field: &'static str,
        /// The value found.
        tag: u8,
        /// Where.
        offset: usize,
    },
    /// Bytes remain after the message.
    #[error("{count} bytes after the end of the message")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A string is not UTF-8.
    #[error("string at byte {offset} is not UTF-8")]
    NotUtf8 {
        /// Where the string starts.
        offset: usize,
    },
}

mod tag {
    pub const RAFT: u8 = 1;
    pub const FORWARD: u8 = 2;
    pub const FORWARD_REPLY: u8 = 3;

    pub const PRE_VOTE: u8 = 1;
    pub const PRE_VOTE_RESPONSE: u8 = 2;
    pub const REQUEST_VOTE: u8 = 3;
    pub const REQUEST_VOTE_RESPONSE: u8 = 4;
    pub const APPEND_ENTRIES: u8 = 5;
    pub const APPEND_ENTRIES_RESPONSE: u8 = 6;
    pub const TIMEOUT_NOW: u8 = 7;
    pub const INSTALL_SNAPSHOT: u8 = 8;
    pub const INSTALL_SNAPSHOT_RESPONSE: u8 = 9;
    pub const READ_INDEX: u8 = 10;
    pub const READ_INDEX_RESPONSE: u8 = 11;

    pub const ACCEPTED: u8 = 0;
    pub const REJECTED: u8 = 1;

    pub const NORMAL: u8 = 0;
    pub const NOOP: u8 = 1;
    pub const CONF_CHANGE: u8 = 2;
}

/// Appends the binary form of `message` to `out`.
pub fn encode(message: &PeerMessage, out: &mut Vec<u8>) {
    match message {
        PeerMessage::Raft(message) => {
            out.push(tag::RAFT);
            put_raft(message, out);
        }
        PeerMessage::Forward {
            from,
            to,
            id,
            request,
        } => {
            out.push(tag::FORWARD);
            put_u64(out, from.0);
            put_u64(out, to.0);
            put_u64(out, *id);
            put_bytes(out, request);
        }
        PeerMessage::ForwardReply {
            from,
            to,
            id,
            reply,
        } => {
            out.push(tag::FORWARD_REPLY);
            put_u64(out, from.0);
            put_u64(out, to.0);
            put_u64(out, *id);
            put_bytes(out, reply);
        }
    }
}

/// Decodes one message written by [`encode`]; `bytes` must hold exactly that message.
pub fn decode(bytes: &[u8]) -> Result<PeerMessage, WireError> {
    let mut r = Reader::new(bytes);
    let message = match r.u8()? {
        tag::RAFT => PeerMessage::Raft(read_raft(&mut r)?),
        tag::FORWARD => PeerMessage::Forward {
            from: NodeId(r.u64()?),
            to: NodeId(r.u64()?),
            id: r.u64()?,
            request: r.bytes()?,
        },
        tag::FORWARD_REPLY => PeerMessage::ForwardReply {
            from: NodeId(r.u64()?),
            to: NodeId(r.u64()?),
            id: r.u64()?,
            reply: r.bytes()?,
        },
        other => return Err(r.unknown("message", other)),
    };
    r.finish()?;
    Ok(message)
}

fn put_raft(message: &Message, out: &mut Vec<u8>) {
    put_u64(out, message.from.0);
    put_u64(out, message.to.0);
    put_u64(out, message.term.0);
    match &message.body {
        MessageBody::PreVote {
            last_log_index,
            last_log_term,
        } => {
            out.push(tag::PRE_VOTE);
            put_u64(out, last_log_index.0);
            put_u64(out, last_log_term.0);
        }
        MessageBody::PreVoteResponse { reject } => {
            out.push(tag::PRE_VOTE_RESPONSE);
            out.push(u8::from(*reject));
        }
        MessageBody::RequestVote {
            last_log_index,
            last_log_term,
            leadership_transfer,
        } => {
            out.push(tag::REQUEST_VOTE);
            put_u64(out, last_log_index.0);
            put_u64(out, last_log_term.0);
            out.push(u8::from(*leadership_transfer));
        }
        MessageBody::RequestVoteResponse { reject } => {
            out.push(tag::REQUEST_VOTE_RESPONSE);
            out.push(u8::from(*reject));
        }
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_round,
        } => {
            out.push(tag::APPEND_ENTRIES);
            put_u64(out, prev_log_index.0);
            put_u64(out, prev_log_term.0);
            put_u64(out, leader_commit.0);
            put_u64(out, *read_round);
            put_u32(out, entries.len() as u32);
            for entry in entries {
                put_u64(out, entry.term.0);
                put_u64(out, entry.index.0);
                out.push(match entry.kind {
                    EntryKind::Normal => tag::NORMAL,
                    EntryKind::Noop => tag::NOOP,
                    EntryKind::ConfChange => tag::CONF_CHANGE,
                });
                put_bytes(out, &entry.data);
            }
        }
        MessageBody::AppendEntriesResponse { read_round, result } => {
            out.push(tag::APPEND_ENTRIES_RESPONSE);
            put_u64(out, *read_round);
            match result {
                AppendResponse::Accepted { match_index } => {
                    out.push(tag::ACCEPTED);
                    put_u64(out, match_index.0);
                }
                AppendResponse::Rejected {
                    rejected_index,
                    hint_index,
                    hint_term,
                } => {
                    out.push(tag::REJECTED);
                    put_u64(out, rejected_index.0);
                    put_u64(out, hint_index.0);
                    put_u64(out, hint_term.0);
                }
            }
        }
        MessageBody::TimeoutNow => out.push(tag::TIMEOUT_NOW),
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
        } => {
            out.push(tag::INSTALL_SNAPSHOT);
            put_u64(out, meta.index.0);
            put_u64(out, meta.term.0);
            put_ids(out, &meta.voters);
            put_ids(out, &meta.voters_outgoing);
            put_ids(out, &meta.learners);
            put_u64(out, *offset);
            put_bytes(out, data);
            out.push(u8::from(*done));
        }
        MessageBody::InstallSnapshotResponse {
            index,
            next_offset,
            installed,
        } => {
            out.push(tag::INSTALL_SNAPSHOT_RESPONSE);
            put_u64(out, index.0);
            put_u64(out, *next_offset);
            out.push(u8::from(*installed));
        }
        MessageBody::ReadIndex { ctx } => {
            out.push(tag::READ_INDEX);
            put_u64(out, *ctx);
        }
        MessageBody::ReadIndexResponse { ctx, index } => {
            out.push(tag::READ_INDEX_RESPONSE);
            put_u64(out, *ctx);
            match index {
                None => out.push(0),
                Some(index) => {
                    out.push(1);
                    put_u64(out, index.0);
                }
            }
        }
    }
}

fn read_raft(r: &mut Reader<'_>) -> Result<Message, WireError> {
    let from = NodeId(r.u64()?);
    let to = NodeId(r.u64()?);
    let term = Term(r.u64()?);
    let body = match r.u8()? {
        tag::PRE_VOTE => MessageBody::PreVote {
            last_log_index: LogIndex(r.u64()?),
            last_log_term: Term(r.u64()?),
        },
        tag::PRE_VOTE_RESPONSE => MessageBody::PreVoteResponse { reject: r.bool()? },
        tag::REQUEST_VOTE => MessageBody::RequestVote {
            last_log_index: LogIndex(r.u64()?),
            last_log_term: Term(r.u64()?),
            leadership_transfer: r.bool()?,
        },
        tag::REQUEST_VOTE_RESPONSE => MessageBody::RequestVoteResponse { reject: r.bool()? },
        tag::APPEND_ENTRIES => {
            let prev_log_index = LogIndex(r.u64()?);
            let prev_log_term = Term(r.u64()?);
            let leader_commit = LogIndex(r.u64()?);
            let read_round = r.u64()?;
            // An entry takes at least 8 + 8 + 1 + 4 bytes.
            let count = r.count(21)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let term = Term(r.u64()?);
                let index = LogIndex(r.u64()?);
                let kind = match r.u8()? {
                    tag::NORMAL => EntryKind::Normal,
                    tag::NOOP => EntryKind::Noop,
                    tag::CONF_CHANGE => EntryKind::ConfChange,
                    other => return Err(r.unknown("entry kind", other)),
                };
                let data = r.bytes()?;
                entries.push(Entry {
                    term,
                    index,
                    kind,
                    data,
                });
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_round,
            }
        }
        tag::APPEND_ENTRIES_RESPONSE => {
            let read_round = r.u64()?;
            let result = match r.u8()? {
                tag::ACCEPTED => AppendResponse::Accepted {
                    match_index: LogIndex(r.u64()?),
                },
                tag::REJECTED => AppendResponse::Rejected {
                    rejected_index: LogIndex(r.u64()?),
                    hint_index: LogIndex(r.u64()?),
                    hint_term: Term(r.u64()?),
                },
                other => return Err(r.unknown("append result", other)),
            };
            MessageBody::AppendEntriesResponse { read_round, result }
        }
        tag::TIMEOUT_NOW => MessageBody::TimeoutNow,
        tag::INSTALL_SNAPSHOT => MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(r.u64()?),
                term: Term(r.u64()?),
                voters: r.ids()?,
                voters_outgoing: r.ids()?,
                learners: r.ids()?,
            },
            offset: r.u64()?,
            data: r.bytes()?,
            done: r.bool()?,
        },
        tag::INSTALL_SNAPSHOT_RESPONSE => MessageBody::InstallSnapshotResponse {
            index: LogIndex(r.u64()?),
            next_offset: r.u64()?,
            installed: r.bool()?,
        },
        tag::READ_INDEX => MessageBody::ReadIndex { ctx: r.u64()? },
        tag::READ_INDEX_RESPONSE => MessageBody::ReadIndexResponse {
            ctx: r.u64()?,
            index: match r.u8()? {
                0 => None,
                1 => Some(LogIndex(r.u64()?)),
                other => return Err(r.unknown("read index flag", other)),
            },
        },
        other => return Err(r.unknown("raft message", other)),
    };
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// A string of at most 65 535 bytes (an address): a `u16` length, then the bytes.
pub(crate) fn put_short_string(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

fn put_ids(out: &mut Vec<u8>, ids: &[NodeId]) {
    put_u32(out, ids.len() as u32);
    for id in ids {
        put_u64(out, id.0);
    }
}

/// Reads the fixed-width big-endian fields written by the `put_*` functions, checking every
/// length against the bytes that remain.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, offset: 0 }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(self) -> &'a [u8] {
        &self.bytes[self.offset..]
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self) -> Result<(), WireError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            count => Err(WireError::TrailingBytes { count }),
        }
    }

    /// A string written by [`put_short_string`].
    pub(crate) fn short_string(&mut self) -> Result<String, WireError> {
        let offset = self.offset;
        let len = self.take(2)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| WireError::NotUtf8 { offset })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.bytes.len() - self.offset {
            return Err(WireError::Truncated {
                offset: self.offset,
            });
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.unknown("boolean", other)),
        }
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(word))
    }

    /// A list length, checked against the bytes left for items of at least `min_item_bytes`.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, WireError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(min_item_bytes) > self.bytes.len() - self.offset {
            return Err(WireError::Truncated {
                offset: self.offset,
            });
        }
        Ok(count)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, WireError> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }

    fn ids(&mut self) -> Result<Vec<NodeId>, WireError> {
        let count = self.count(8)?;
        (0..count).map(|_| Ok(NodeId(self.u64()?))).collect()
    }

    fn unknown(&self, field: &'static str, tag: u8) -> WireError {
        WireError::UnknownTag {
            field,
            tag,
            offset: self.offset.saturating_sub(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raft(body: MessageBody) -> PeerMessage {
        PeerMessage::Raft(Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(7),
            body,
        })
    }

    fn every_kind_of_message() -> Vec<PeerMessage> {
        let meta = SnapshotMeta {
            index: LogIndex(40),
            term: Term(3),
            voters: vec![NodeId(1), NodeId(2)],
            voters_outgoing: vec![NodeId(3)],
            learners: vec![NodeId(9)],
        };
        vec![
            raft(MessageBody::PreVote {
                last_log_index: LogIndex(5),
                last_log_term: Term(2),
            }),
            raft(MessageBody::PreVoteResponse { reject: true }),
            raft(MessageBody::RequestVote {
                last_log_index: LogIndex(5),
                last_log_term: Term(2),
                leadership_transfer: true,
            }),
            raft(MessageBody::RequestVoteResponse { reject: false }),
            raft(MessageBody::AppendEntries {
                prev_log_index: LogIndex(4),
                prev_log_term: Term(2),
                entries: vec![
                    Entry {
                        term: Term(7),
                        index: LogIndex(5),
                        kind: EntryKind::Noop,
                        data: vec![],
                    },
                    Entry {
                        term: Term(7),
                        index: LogIndex(6),
                        kind: EntryKind::Normal,
                        data: b"set k v".to_vec(),
                    },
                    Entry {
                        term: Term(7),
                        index: LogIndex(7),
                        kind: EntryKind::ConfChange,
                        data: vec![1, 2, 3],
                    },
                ],
                leader_commit: LogIndex(4),
                read_round: 11,
            }),
            raft(MessageBody::AppendEntriesResponse {
                read_round: 11,
                result: AppendResponse::Accepted {
                    match_index: LogIndex(7),
                },
            }),
            raft(MessageBody::AppendEntriesResponse {
                read_round: 0,
                result: AppendResponse::Rejected {
                    rejected_index: LogIndex(9),
                    hint_index: LogIndex(6),
                    hint_term: Term(5),
                },
            }),
            raft(MessageBody::TimeoutNow),
            raft(MessageBody::InstallSnapshot {
                meta,
                offset: 1024,
                data: vec![7; 100],
                done: false,
            }),
            raft(MessageBody::InstallSnapshotResponse {
                index: LogIndex(40),
                next_offset: 1124,
                installed: false,
            }),
            raft(MessageBody::ReadIndex { ctx: 99 }),
            raft(MessageBody::ReadIndexResponse {
                ctx: 99,
                index: Some(LogIndex(12)),
            }),
            raft(MessageBody::ReadIndexResponse {
                ctx: 98,
                index: None,
            }),
            PeerMessage::Forward {
                from: NodeId(2),
                to: NodeId(1),
                id: 5,
                request: b"request".to_vec(),
            },
            PeerMessage::ForwardReply {
                from: NodeId(1),
                to: NodeId(2),
                id: 5,
                reply: b"reply".to_vec(),
            },
        ]
    }

    #[test]
    fn every_kind_of_message_round_trips() {
        for message in every_kind_of_message() {
            let mut bytes = Vec::new();
            encode(&message, &mut bytes);
            assert_eq!(decode(&bytes), Ok(message));
        }
    }

    #[test]
    fn every_truncation_of_every_message_is_an_error() {
        for message in every_kind_of_message() {
            let mut bytes = Vec::new();
            encode(&message, &mut bytes);
            for len in 0..bytes.len() {
                assert!(decode(&bytes[..len]).is_err(), "{message:?} cut at {len}");
            }
        }
    }

    #[test]
    fn trailing_bytes_and_unknown_tags_are_errors() {
        let mut bytes = Vec::new();
        encode(&raft(MessageBody::TimeoutNow), &mut bytes);
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(WireError::TrailingBytes { count: 1 }));
        assert!(matches!(
            decode(&[200]),
            Err(WireError::UnknownTag {
                field: "message",
                tag: 200,
                ..
            })
        ));
    }

    #[test]
    fn a_forged_entry_count_does_not_allocate() {
        let mut bytes = Vec::new();
        encode(
            &raft(MessageBody::AppendEntries {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: vec![],
                leader_commit: LogIndex(0),
                read_round: 0,
            }),
            &mut bytes,
        );
        let count_at = bytes.len() - 4;
        bytes[count_at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&bytes), Err(WireError::Truncated { .. })));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }
    }
}

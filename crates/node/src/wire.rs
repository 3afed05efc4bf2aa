//! The messages nodes exchange, in binary: Raft's own, and the forwarding of client writes
//! from a follower to the leader.
//!
//! Every frame on a peer connection opens with a header ([`encode_frame_header`],
//! [`parse_frame_header`]): `length: u32 | version: u8 | cluster id: u64 | kind: u8`, where
//! `length` counts the bytes after itself. The first frame's payload is a [`Hello`]; every
//! later one is a [`PeerMessage`].
//!
//! All of it is written and read with [`skiff_codec`]: integers fixed-width little-endian,
//! byte strings and lists behind a `u32` length, addresses behind a `u16` length. The reader
//! checks every length against the bytes that remain before allocating, so a forged length
//! cannot make it reserve memory the input could not fill, and malformed bytes give a
//! [`WireError`] or a [`FrameError`], never a panic.
//!
//! A message travels in an [`Envelope`]: the sender's incarnation (`u64`, the id of its data
//! directory) then the message, so that a node whose disk was wiped is told apart from the
//! member the cluster recorded (thesis §3.8).
//!
//! [`WIRE_VERSION`] 4 adds the sender's peer address to the [`Hello`], so that a node can
//! answer a sender it has no address for (a leader that joined after it). Version 3 added
//! the envelope; version 2 was the same messages without it, and version 1 was big-endian. A
//! node of another version refuses this one's frames at the header, by version (versions 2
//! to 4) or by a length over its limit (a version-1 node reading little-endian lengths).

use bytes::Bytes;
use skiff_codec::{put, CodecError, Reader};
use skiff_raft::{
    AppendResponse, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, SnapshotMeta, Term,
};

/// The version of the peer wire: frame header, Hello and messages. Version 1 was big-endian;
/// version 2 had no [`Envelope`]; version 3 had no peer address in the [`Hello`].
pub const WIRE_VERSION: u8 = 4;

/// Bytes before a frame's payload: length, version, cluster id, kind.
pub const FRAME_HEADER_BYTES: usize = 4 + 1 + 8 + 1;

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
    /// A notice that the sender refuses the recipient's messages: the recipient's data
    /// directory is not the one the cluster recorded for its id (its disk was wiped or
    /// replaced, so it forgot its votes: thesis §3.8).
    IncarnationRefused {
        /// The refusing node.
        from: NodeId,
        /// The refused node.
        to: NodeId,
        /// The incarnation the refused node's messages carry.
        incarnation: u64,
        /// The incarnation the cluster recorded for its id.
        recorded: u64,
    },
}

impl PeerMessage {
    /// The node the message is for.
    pub fn to(&self) -> NodeId {
        match self {
            PeerMessage::Raft(message) => message.to,
            PeerMessage::Forward { to, .. }
            | PeerMessage::ForwardReply { to, .. }
            | PeerMessage::IncarnationRefused { to, .. } => *to,
        }
    }

    /// The node that sent the message.
    pub fn from(&self) -> NodeId {
        match self {
            PeerMessage::Raft(message) => message.from,
            PeerMessage::Forward { from, .. }
            | PeerMessage::ForwardReply { from, .. }
            | PeerMessage::IncarnationRefused { from, .. } => *from,
        }
    }
}

/// A message with its sender's incarnation: what one node sends another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The incarnation of the sender's data directory (nonzero; see
    /// [`skiff_wal::incarnation`]).
    pub incarnation: u64,
    /// The message.
    pub message: PeerMessage,
}

impl Envelope {
    /// `message`, sent by a node of `incarnation`.
    pub fn new(incarnation: u64, message: PeerMessage) -> Envelope {
        Envelope {
            incarnation,
            message,
        }
    }

    /// The node the message is for.
    pub fn to(&self) -> NodeId {
        self.message.to()
    }

    /// The node that sent the message.
    pub fn from(&self) -> NodeId {
        self.message.from()
    }
}

/// Appends the binary form of `envelope` to `out`: the incarnation, then the message.
pub fn encode_envelope(envelope: &Envelope, out: &mut Vec<u8>) {
    put::u64(out, envelope.incarnation);
    encode(&envelope.message, out);
}

/// Decodes one envelope written by [`encode_envelope`]; `bytes` must hold exactly that. The
/// entries' data are shared with `bytes`, not copied.
pub fn decode_envelope(bytes: &Bytes) -> Result<Envelope, WireError> {
    let mut r = Reader::new(bytes);
    let incarnation = r.u64().map_err(|source| WireError::Malformed {
        what: "peer message",
        source,
    })?;
    Ok(Envelope {
        incarnation,
        message: decode(&bytes.slice_ref(r.rest()))?,
    })
}

/// Why bytes are not a [`PeerMessage`] or a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The fields do not read: cut short, a length or count over what remains, an unknown
    /// tag, a string that is not UTF-8, or bytes after the end.
    #[error("malformed {what}: {source}")]
    Malformed {
        /// What was being read: `peer message` or `hello`.
        what: &'static str,
        /// What the codec refused.
        source: CodecError,
    },
}

/// Why a frame header is refused. The connection it came on is closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is larger than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is shorter than its header.
    #[error("frame of {0} bytes is shorter than a header")]
    TooShort(usize),
    /// Another version of the wire (version 1 was big-endian, version 2 had no envelope,
    /// version 3 no peer address in the Hello).
    #[error("frame version {0}, expected {WIRE_VERSION}")]
    Version(u8),
    /// A node of another cluster.
    #[error("peer belongs to cluster {found:#x}, this node to {expected:#x}")]
    WrongCluster {
        /// The peer's cluster id.
        found: u64,
        /// Ours.
        expected: u64,
    },
}

/// A frame header that passed its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The bytes after the length field: the rest of the header and the payload.
    pub len: usize,
    /// What the payload is (the transport's kinds: Hello, message).
    pub kind: u8,
}

impl FrameHeader {
    /// The bytes the whole frame takes, length field included.
    pub fn frame_bytes(&self) -> usize {
        4 + self.len
    }
}

/// Appends a frame header for a payload of `payload_len` bytes.
///
/// # Panics
/// If the frame would be over `u32::MAX` bytes; frames are bounded far below that.
pub fn encode_frame_header(out: &mut Vec<u8>, cluster_id: u64, kind: u8, payload_len: usize) {
    let len = payload_len
        .checked_add(FRAME_HEADER_BYTES - 4)
        .and_then(|len| u32::try_from(len).ok())
        .expect("a frame of at most u32::MAX bytes");
    put::u32(out, len);
    put::u8(out, WIRE_VERSION);
    put::u64(out, cluster_id);
    put::u8(out, kind);
}

/// Overwrites the length field of the frame header at `start`, once its payload (everything
/// up to the end of `out`) is written: a payload encoded in place needs no length first.
///
/// # Panics
/// If `out` does not hold a frame header at `start`, or the frame is over `u32::MAX` bytes.
pub fn finish_frame(out: &mut [u8], start: usize) {
    let len = out.len() - start - 4;
    assert!(len >= FRAME_HEADER_BYTES - 4, "a frame header at {start}");
    put::u32_at(
        out,
        start,
        u32::try_from(len).expect("a frame of at most u32::MAX bytes"),
    );
}

/// Checks the start of a frame as it arrives: `Ok(None)` while too few bytes are there to
/// judge, `Ok(Some)` once the whole header is there and passed.
///
/// Refused, each as soon as its bytes arrive: another wire version (byte 5: an old node is
/// told apart before its big-endian length is misread), a length over `max_frame_bytes` or
/// under a header (bytes 1-4), another cluster (bytes 6-13). So a stranger is refused
/// within the 14 header bytes, before any payload is waited for or buffered.
pub fn parse_frame_header(
    bytes: &[u8],
    cluster_id: u64,
    max_frame_bytes: usize,
) -> Result<Option<FrameHeader>, FrameError> {
    let mut r = Reader::new(bytes);
    let (Ok(len), Ok(version)) = (r.u32(), r.u8()) else {
        return Ok(None);
    };
    if version != WIRE_VERSION {
        return Err(FrameError::Version(version));
    }
    let len = len as usize;
    if len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_bytes,
        });
    }
    if len < FRAME_HEADER_BYTES - 4 {
        return Err(FrameError::TooShort(len));
    }
    let (Ok(found), Ok(kind)) = (r.u64(), r.u8()) else {
        return Ok(None);
    };
    if found != cluster_id {
        return Err(FrameError::WrongCluster {
            found,
            expected: cluster_id,
        });
    }
    Ok(Some(FrameHeader { len, kind }))
}

/// The payload of a connection's first frame: who is speaking, and the addresses it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// The sender's id.
    pub from: u64,
    /// Its client address.
    pub client_addr: &'a str,
    /// Its HTTP address.
    pub http_addr: &'a str,
    /// The address its peer port is reached at, or empty if it does not know one (it listens
    /// on an unspecified address and was given none to advertise).
    pub peer_addr: &'a str,
}

impl Hello<'_> {
    /// Appends the Hello's payload: the id, then the three addresses as short strings.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put::u64(out, self.from);
        put::short_str(out, self.client_addr);
        put::short_str(out, self.http_addr);
        put::short_str(out, self.peer_addr);
    }

    /// Decodes a Hello payload; `bytes` must hold exactly that payload. The addresses are
    /// only read here: what they may be is the transport's to judge.
    pub fn decode(bytes: &[u8]) -> Result<Hello<'_>, WireError> {
        let malformed = |source| WireError::Malformed {
            what: "hello",
            source,
        };
        let mut r = Reader::new(bytes);
        let hello = Hello {
            from: r.u64().map_err(malformed)?,
            client_addr: r.short_str("client address", u16::MAX).map_err(malformed)?,
            http_addr: r.short_str("http address", u16::MAX).map_err(malformed)?,
            peer_addr: r.short_str("peer address", u16::MAX).map_err(malformed)?,
        };
        r.finish().map_err(malformed)?;
        Ok(hello)
    }
}

mod tag {
    pub const RAFT: u8 = 1;
    pub const FORWARD: u8 = 2;
    pub const FORWARD_REPLY: u8 = 3;
    pub const INCARNATION_REFUSED: u8 = 4;

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
            put::u8(out, tag::RAFT);
            put_raft(message, out);
        }
        PeerMessage::Forward {
            from,
            to,
            id,
            request,
        } => {
            put::u8(out, tag::FORWARD);
            put::u64(out, from.0);
            put::u64(out, to.0);
            put::u64(out, *id);
            put::bytes_u32(out, request);
        }
        PeerMessage::ForwardReply {
            from,
            to,
            id,
            reply,
        } => {
            put::u8(out, tag::FORWARD_REPLY);
            put::u64(out, from.0);
            put::u64(out, to.0);
            put::u64(out, *id);
            put::bytes_u32(out, reply);
        }
        PeerMessage::IncarnationRefused {
            from,
            to,
            incarnation,
            recorded,
        } => {
            put::u8(out, tag::INCARNATION_REFUSED);
            for value in [from.0, to.0, *incarnation, *recorded] {
                put::u64(out, value);
            }
        }
    }
}

/// Decodes one message written by [`encode`]; `bytes` must hold exactly that message. The
/// entries' data are shared with `bytes`, not copied.
pub fn decode(bytes: &Bytes) -> Result<PeerMessage, WireError> {
    let mut r = Reader::new(bytes);
    read_message(&mut r, bytes)
        .and_then(|message| {
            r.finish()?;
            Ok(message)
        })
        .map_err(|source| WireError::Malformed {
            what: "peer message",
            source,
        })
}

fn read_message(r: &mut Reader<'_>, source: &Bytes) -> Result<PeerMessage, CodecError> {
    Ok(match r.u8()? {
        tag::RAFT => PeerMessage::Raft(read_raft(r, source)?),
        tag::FORWARD => PeerMessage::Forward {
            from: NodeId(r.u64()?),
            to: NodeId(r.u64()?),
            id: r.u64()?,
            request: r.bytes_u32()?.to_vec(),
        },
        tag::FORWARD_REPLY => PeerMessage::ForwardReply {
            from: NodeId(r.u64()?),
            to: NodeId(r.u64()?),
            id: r.u64()?,
            reply: r.bytes_u32()?.to_vec(),
        },
        tag::INCARNATION_REFUSED => PeerMessage::IncarnationRefused {
            from: NodeId(r.u64()?),
            to: NodeId(r.u64()?),
            incarnation: r.u64()?,
            recorded: r.u64()?,
        },
        other => return Err(r.unknown_tag("message", other)),
    })
}

fn put_raft(message: &Message, out: &mut Vec<u8>) {
    put::u64(out, message.from.0);
    put::u64(out, message.to.0);
    put::u64(out, message.term.0);
    match &message.body {
        MessageBody::PreVote {
            last_log_index,
            last_log_term,
        } => {
            put::u8(out, tag::PRE_VOTE);
            put::u64(out, last_log_index.0);
            put::u64(out, last_log_term.0);
        }
        MessageBody::PreVoteResponse { reject } => {
            put::u8(out, tag::PRE_VOTE_RESPONSE);
            put::bool(out, *reject);
        }
        MessageBody::RequestVote {
            last_log_index,
            last_log_term,
            leadership_transfer,
        } => {
            put::u8(out, tag::REQUEST_VOTE);
            put::u64(out, last_log_index.0);
            put::u64(out, last_log_term.0);
            put::bool(out, *leadership_transfer);
        }
        MessageBody::RequestVoteResponse { reject } => {
            put::u8(out, tag::REQUEST_VOTE_RESPONSE);
            put::bool(out, *reject);
        }
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_round,
        } => {
            put::u8(out, tag::APPEND_ENTRIES);
            put::u64(out, prev_log_index.0);
            put::u64(out, prev_log_term.0);
            put::u64(out, leader_commit.0);
            put::u64(out, *read_round);
            put::count_u32(out, entries.len());
            for entry in entries {
                put::u64(out, entry.term.0);
                put::u64(out, entry.index.0);
                put::u8(
                    out,
                    match entry.kind {
                        EntryKind::Normal => tag::NORMAL,
                        EntryKind::Noop => tag::NOOP,
                        EntryKind::ConfChange => tag::CONF_CHANGE,
                    },
                );
                put::bytes_u32(out, &entry.data);
            }
        }
        MessageBody::AppendEntriesResponse { read_round, result } => {
            put::u8(out, tag::APPEND_ENTRIES_RESPONSE);
            put::u64(out, *read_round);
            match result {
                AppendResponse::Accepted { match_index } => {
                    put::u8(out, tag::ACCEPTED);
                    put::u64(out, match_index.0);
                }
                AppendResponse::Rejected {
                    rejected_index,
                    hint_index,
                    hint_term,
                } => {
                    put::u8(out, tag::REJECTED);
                    put::u64(out, rejected_index.0);
                    put::u64(out, hint_index.0);
                    put::u64(out, hint_term.0);
                }
            }
        }
        MessageBody::TimeoutNow => put::u8(out, tag::TIMEOUT_NOW),
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
        } => {
            put::u8(out, tag::INSTALL_SNAPSHOT);
            put::u64(out, meta.index.0);
            put::u64(out, meta.term.0);
            put_ids(out, &meta.voters);
            put_ids(out, &meta.voters_outgoing);
            put_ids(out, &meta.learners);
            put::u64(out, *offset);
            put::bytes_u32(out, data);
            put::bool(out, *done);
        }
        MessageBody::InstallSnapshotResponse {
            index,
            next_offset,
            installed,
        } => {
            put::u8(out, tag::INSTALL_SNAPSHOT_RESPONSE);
            put::u64(out, index.0);
            put::u64(out, *next_offset);
            put::bool(out, *installed);
        }
        MessageBody::ReadIndex { ctx } => {
            put::u8(out, tag::READ_INDEX);
            put::u64(out, *ctx);
        }
        MessageBody::ReadIndexResponse { ctx, index } => {
            put::u8(out, tag::READ_INDEX_RESPONSE);
            put::u64(out, *ctx);
            match index {
                None => put::u8(out, 0),
                Some(index) => {
                    put::u8(out, 1);
                    put::u64(out, index.0);
                }
            }
        }
    }
}

/// Reads a Raft message from `r`, which reads `source`: entries' data are slices of it.
fn read_raft(r: &mut Reader<'_>, source: &Bytes) -> Result<Message, CodecError> {
    let from = NodeId(r.u64()?);
    let to = NodeId(r.u64()?);
    let term = Term(r.u64()?);
    let body = match r.u8()? {
        tag::PRE_VOTE => MessageBody::PreVote {
            last_log_index: LogIndex(r.u64()?),
            last_log_term: Term(r.u64()?),
        },
        tag::PRE_VOTE_RESPONSE => MessageBody::PreVoteResponse {
            reject: r.bool("reject")?,
        },
        tag::REQUEST_VOTE => MessageBody::RequestVote {
            last_log_index: LogIndex(r.u64()?),
            last_log_term: Term(r.u64()?),
            leadership_transfer: r.bool("leadership transfer")?,
        },
        tag::REQUEST_VOTE_RESPONSE => MessageBody::RequestVoteResponse {
            reject: r.bool("reject")?,
        },
        tag::APPEND_ENTRIES => {
            let prev_log_index = LogIndex(r.u64()?);
            let prev_log_term = Term(r.u64()?);
            let leader_commit = LogIndex(r.u64()?);
            let read_round = r.u64()?;
            // An entry takes at least 8 + 8 + 1 + 4 bytes.
            let count = r.count_u32(21)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                let term = Term(r.u64()?);
                let index = LogIndex(r.u64()?);
                let kind = match r.u8()? {
                    tag::NORMAL => EntryKind::Normal,
                    tag::NOOP => EntryKind::Noop,
                    tag::CONF_CHANGE => EntryKind::ConfChange,
                    other => return Err(r.unknown_tag("entry kind", other)),
                };
                let data = source.slice_ref(r.bytes_u32()?);
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
                other => return Err(r.unknown_tag("append result", other)),
            };
            MessageBody::AppendEntriesResponse { read_round, result }
        }
        tag::TIMEOUT_NOW => MessageBody::TimeoutNow,
        tag::INSTALL_SNAPSHOT => MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(r.u64()?),
                term: Term(r.u64()?),
                voters: read_ids(r)?,
                voters_outgoing: read_ids(r)?,
                learners: read_ids(r)?,
            },
            offset: r.u64()?,
            data: r.bytes_u32()?.to_vec(),
            done: r.bool("done")?,
        },
        tag::INSTALL_SNAPSHOT_RESPONSE => MessageBody::InstallSnapshotResponse {
            index: LogIndex(r.u64()?),
            next_offset: r.u64()?,
            installed: r.bool("installed")?,
        },
        tag::READ_INDEX => MessageBody::ReadIndex { ctx: r.u64()? },
        tag::READ_INDEX_RESPONSE => MessageBody::ReadIndexResponse {
            ctx: r.u64()?,
            index: match r.u8()? {
                0 => None,
                1 => Some(LogIndex(r.u64()?)),
                other => return Err(r.unknown_tag("read index flag", other)),
            },
        },
        other => return Err(r.unknown_tag("raft message", other)),
    };
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

fn put_ids(out: &mut Vec<u8>, ids: &[NodeId]) {
    put::count_u32(out, ids.len());
    for id in ids {
        put::u64(out, id.0);
    }
}

fn read_ids(r: &mut Reader<'_>) -> Result<Vec<NodeId>, CodecError> {
    let count = r.count_u32(8)?;
    (0..count).map(|_| Ok(NodeId(r.u64()?))).collect()
}

#[cfg(test)]
mod tests;

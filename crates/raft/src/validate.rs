//! Checks a message from the network before the protocol looks at it: ids, terms, indexes,
//! entries and snapshot metadata must be ones an honest node could have sent.
//!
//! [`Raft::step`](crate::Raft::step) runs these checks on every message, so the core is safe
//! even when the application does not validate; an application may also call
//! [`validate`] at its edge to refuse a message (and name its sender) before anything else.
//!
//! # Bounds
//! Terms and log indexes above [`MAX_TERM`] and [`MAX_INDEX`] (2^62) are refused. A term
//! grows by one per election and an index by one per entry: at a million of either per second
//! the bound is reached after 146,000 years. What is left above it (three quarters of the
//! `u64` range) is room for the core's arithmetic — `term + 1`, `index + entries.len()` —
//! which therefore never overflows on a value that passed these checks.

use std::collections::BTreeSet;

use crate::message::{AppendResponse, Message, MessageBody};
use crate::storage::SnapshotMeta;
use crate::types::{Entry, LogIndex, NodeId, Term};

/// The highest term a message may carry (2^62). See the [module documentation](self).
pub const MAX_TERM: Term = Term(1 << 62);

/// The highest log index a message may carry (2^62). See the [module documentation](self).
pub const MAX_INDEX: LogIndex = LogIndex(1 << 62);

/// The largest snapshot, in bytes, an InstallSnapshot may describe (2^48, 256 TiB): offsets
/// and chunk ends stay far from overflowing.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 48;

/// What makes a message one no honest node sends. Each variant names the offending field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// Node id 0 means "nobody" and never sends or receives.
    #[error("{field} is node id 0, which is reserved for nobody")]
    ZeroNodeId {
        /// `from`, `to`, or the snapshot metadata list holding the id.
        field: &'static str,
    },
    /// A node never sends to itself over the network.
    #[error("sent by {0} to itself")]
    ToItself(NodeId),
    /// A term beyond [`MAX_TERM`].
    #[error("{field} {term} is beyond the largest accepted term {MAX_TERM}")]
    TermTooLarge {
        /// The field.
        field: &'static str,
        /// Its value.
        term: Term,
    },
    /// A log index beyond [`MAX_INDEX`].
    #[error("{field} {index} is beyond the largest accepted index {MAX_INDEX}")]
    IndexTooLarge {
        /// The field.
        field: &'static str,
        /// Its value.
        index: LogIndex,
    },
    /// A term that no log could hold at that place: newer than the message's own term, or 0
    /// for a real entry (index > 0), or not 0 for the empty prefix (index 0).
    #[error("{field} is {term} at index {index} in a message of {message_term}")]
    ImpossibleTerm {
        /// The field.
        field: &'static str,
        /// The term found.
        term: Term,
        /// The index it is the term of.
        index: LogIndex,
        /// The message's term.
        message_term: Term,
    },
    /// Entries must follow `prev_log_index` one by one (§5.3).
    #[error("entry at index {found} where index {expected} was due: entries must be contiguous")]
    EntryGap {
        /// The index that should have come next.
        expected: LogIndex,
        /// The index found.
        found: LogIndex,
    },
    /// Terms in a log never decrease (Figure 7: each entry's term is its leader's, and leaders'
    /// terms grow).
    #[error("entry {index} has {term}, older than the {previous} before it")]
    EntryTermDecreases {
        /// The entry.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The term of the entry (or `prev_log_term`) before it.
        previous: Term,
    },
    /// A conflict hint lies at or below the rejected index.
    #[error("conflict hint {hint_index} is past the rejected index {rejected_index}")]
    HintBeyondRejected {
        /// The hint.
        hint_index: LogIndex,
        /// The rejected index.
        rejected_index: LogIndex,
    },
    /// A chunk reaching past [`MAX_SNAPSHOT_BYTES`] (or past `u64`).
    #[error(
        "snapshot chunk at offset {offset} of {len} bytes reaches past {MAX_SNAPSHOT_BYTES} bytes"
    )]
    SnapshotTooLarge {
        /// The chunk's offset.
        offset: u64,
        /// The chunk's length.
        len: u64,
    },
    /// Snapshot metadata no snapshot could have.
    #[error("snapshot metadata at {index}: {problem}")]
    SnapshotMeta {
        /// The snapshot's index.
        index: LogIndex,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Checks `m` as the [module documentation](self) says. The checks are on the message
/// alone: whether it fits this node's state (its term, log and leader) is the protocol's to
/// decide.
pub fn validate(m: &Message) -> Result<(), InvalidMessage> {
    if m.from.0 == 0 {
        return Err(InvalidMessage::ZeroNodeId { field: "from" });
    }
    if m.to.0 == 0 {
        return Err(InvalidMessage::ZeroNodeId { field: "to" });
    }
    if m.from == m.to {
        return Err(InvalidMessage::ToItself(m.from));
    }
    term_in_range("term", m.term)?;
    match &m.body {
        MessageBody::PreVote {
            last_log_index,
            last_log_term,
        }
        | MessageBody::RequestVote {
            last_log_index,
            last_log_term,
            ..
        } => log_position("last_log", *last_log_index, *last_log_term, m.term),
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            ..
        } => {
            log_position("prev_log", *prev_log_index, *prev_log_term, m.term)?;
            index_in_range("leader_commit", *leader_commit)?;
            // §5.3: a leader_commit past the entries is allowed; the follower commits only
            // up to what the message verifies.
            entries_follow(*prev_log_index, *prev_log_term, entries, m.term)
        }
        MessageBody::AppendEntriesResponse { result, .. } => append_response(result, m.term),
        MessageBody::InstallSnapshot {
            meta, offset, data, ..
        } => {
            snapshot_meta(meta, m.term)?;
            snapshot_extent(*offset, data.len() as u64)
        }
        MessageBody::InstallSnapshotResponse {
            index, next_offset, ..
        } => {
            index_in_range("index", *index)?;
            snapshot_extent(*next_offset, 0)
        }
        MessageBody::ReadIndexResponse {
            index: Some(index), ..
        } => index_in_range("index", *index),
        MessageBody::PreVoteResponse { .. }
        | MessageBody::RequestVoteResponse { .. }
        | MessageBody::TimeoutNow
        | MessageBody::ReadIndex { .. }
        | MessageBody::ReadIndexResponse { index: None, .. } => Ok(()),
    }
}

/// An answer to AppendEntries: indexes in range, and a rejection's hint no later than what
/// it rejects.
fn append_response(result: &AppendResponse, message_term: Term) -> Result<(), InvalidMessage> {
    match result {
        AppendResponse::Accepted { match_index } => index_in_range("match_index", *match_index),
        AppendResponse::Rejected {
            rejected_index,
            hint_index,
            hint_term,
        } => {
            index_in_range("rejected_index", *rejected_index)?;
            index_in_range("hint_index", *hint_index)?;
            // The hint's term is 0 where the follower no longer holds the entry.
            if *hint_term > message_term {
                return Err(InvalidMessage::ImpossibleTerm {
                    field: "hint_term",
                    term: *hint_term,
                    index: *hint_index,
                    message_term,
                });
            }
            if hint_index > rejected_index {
                return Err(InvalidMessage::HintBeyondRejected {
                    hint_index: *hint_index,
                    rejected_index: *rejected_index,
                });
            }
            Ok(())
        }
    }
}

/// `len` snapshot bytes from `offset` end within the largest snapshot accepted.
fn snapshot_extent(offset: u64, len: u64) -> Result<(), InvalidMessage> {
    match offset.checked_add(len) {
        Some(end) if end <= MAX_SNAPSHOT_BYTES => Ok(()),
        _ => Err(InvalidMessage::SnapshotTooLarge { offset, len }),
    }
}

fn term_in_range(field: &'static str, term: Term) -> Result<(), InvalidMessage> {
    if term > MAX_TERM {
        return Err(InvalidMessage::TermTooLarge { field, term });
    }
    Ok(())
}

fn index_in_range(field: &'static str, index: LogIndex) -> Result<(), InvalidMessage> {
    if index > MAX_INDEX {
        return Err(InvalidMessage::IndexTooLarge { field, index });
    }
    Ok(())
}

/// A place in a log: index 0 has term 0; every entry has a term from 1 to the message's.
fn log_position(
    field: &'static str,
    index: LogIndex,
    term: Term,
    message_term: Term,
) -> Result<(), InvalidMessage> {
    index_in_range(field, index)?;
    let possible = if index.0 == 0 {
        term.0 == 0
    } else {
        term.0 >= 1 && term <= message_term
    };
    if !possible {
        return Err(InvalidMessage::ImpossibleTerm {
            field,
            term,
            index,
            message_term,
        });
    }
    Ok(())
}

/// §5.3: entries continue the log after `prev_index`, one index at a time, with terms that
/// never decrease and are no newer than the leader's.
fn entries_follow(
    prev_index: LogIndex,
    prev_term: Term,
    entries: &[Entry],
    message_term: Term,
) -> Result<(), InvalidMessage> {
    let (mut last, mut last_term) = (prev_index, prev_term);
    for entry in entries {
        let expected = last.next();
        if entry.index != expected {
            return Err(InvalidMessage::EntryGap {
                expected,
                found: entry.index,
            });
        }
        log_position("entry term", entry.index, entry.term, message_term)?;
        if entry.term < last_term {
            return Err(InvalidMessage::EntryTermDecreases {
                index: entry.index,
                term: entry.term,
                previous: last_term,
            });
        }
        (last, last_term) = (entry.index, entry.term);
    }
    Ok(())
}

/// A snapshot covers at least one entry, of a term no newer than its sender's, and a
/// configuration with voters, no id 0, no id twice in a list, and no voter also a learner.
fn snapshot_meta(meta: &SnapshotMeta, message_term: Term) -> Result<(), InvalidMessage> {
    let problem = |problem| InvalidMessage::SnapshotMeta {
        index: meta.index,
        problem,
    };
    if meta.index.0 == 0 {
        return Err(problem("a snapshot covers at least one entry"));
    }
    index_in_range("snapshot index", meta.index)?;
    log_position("snapshot term", meta.index, meta.term, message_term)?;
    if meta.voters.is_empty() {
        return Err(problem("no voters"));
    }
    for (field, ids) in [
        ("snapshot voters", &meta.voters),
        ("snapshot outgoing voters", &meta.voters_outgoing),
        ("snapshot learners", &meta.learners),
    ] {
        if ids.iter().any(|id| id.0 == 0) {
            return Err(InvalidMessage::ZeroNodeId { field });
        }
        if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
            return Err(problem("a node is listed twice"));
        }
    }
    if meta.learners.iter().any(|id| meta.voters.contains(id)) {
        return Err(problem("a voter is also a learner"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;
    use bytes::Bytes;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Normal,
            data: Bytes::new(),
        }
    }

    fn append(prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(5),
            body: MessageBody::AppendEntries {
                prev_log_index: LogIndex(prev.0),
                prev_log_term: Term(prev.1),
                entries,
                leader_commit: LogIndex(commit),
                read_round: 0,
            },
        }
    }

    #[test]
    fn an_honest_append_passes() {
        let m = append((3, 2), vec![entry(4, 2), entry(5, 5)], 5);
        assert_eq!(validate(&m), Ok(()));
        assert_eq!(validate(&append((0, 0), vec![], 0)), Ok(()));
    }

    #[test]
    fn each_dishonest_append_is_named() {
        let mut huge = append((0, 0), vec![], 0);
        huge.term = Term(u64::MAX);
        assert!(matches!(
            validate(&huge),
            Err(InvalidMessage::TermTooLarge { field: "term", .. })
        ));
        assert_eq!(
            validate(&append((3, 2), vec![entry(4, 2), entry(6, 2)], 0)),
            Err(InvalidMessage::EntryGap {
                expected: LogIndex(5),
                found: LogIndex(6)
            })
        );
        assert!(matches!(
            validate(&append((3, 2), vec![entry(4, 3), entry(5, 2)], 0)),
            Err(InvalidMessage::EntryTermDecreases { .. })
        ));
        assert!(matches!(
            validate(&append((3, 2), vec![entry(4, 6)], 0)),
            Err(InvalidMessage::ImpossibleTerm { .. })
        ));
        assert!(matches!(
            validate(&append((0, 1), vec![], 0)),
            Err(InvalidMessage::ImpossibleTerm { .. })
        ));
        let mut from_nobody = append((0, 0), vec![], 0);
        from_nobody.from = NodeId(0);
        assert_eq!(
            validate(&from_nobody),
            Err(InvalidMessage::ZeroNodeId { field: "from" })
        );
    }

    #[test]
    fn snapshot_metadata_must_describe_a_configuration() {
        let meta = SnapshotMeta {
            index: LogIndex(10),
            term: Term(3),
            voters: vec![NodeId(1), NodeId(2)],
            voters_outgoing: vec![],
            learners: vec![NodeId(2)],
        };
        let m = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(5),
            body: MessageBody::InstallSnapshot {
                meta,
                offset: 0,
                data: vec![1],
                done: true,
            },
        };
        assert!(matches!(
            validate(&m),
            Err(InvalidMessage::SnapshotMeta {
                problem: "a voter is also a learner",
                ..
            })
        ));
    }
}

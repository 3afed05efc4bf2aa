//! Hostile messages for the fuzz tests of the core (`crates/raft/tests/fuzz_*.rs`) and of the
//! node (`crates/node/tests/fuzz_*.rs`, which include this file by path).
//!
//! Values are drawn mostly near a small cluster's real state (terms and indexes below 8, ids
//! 1 to 3), so that many messages pass validation and reach the protocol, and otherwise from
//! the edges: 0, the bounds of `validate`, and `u64::MAX`. Entries are usually contiguous and
//! sometimes gapped, repeated or with decreasing terms; snapshot data is whatever the caller
//! supplies (garbage or a real snapshot).

#![allow(dead_code)]

use proptest::prelude::*;
use skiff_raft::{
    AppendResponse, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, SnapshotMeta, Term,
};

/// How many cases a fuzz target runs: `SKIFF_FUZZ_CASES_<TARGET>` if set, else
/// `SKIFF_FUZZ_CASES`, else `default` (small, for CI).
pub fn fuzz_cases(target: &str, default: u32) -> u32 {
    let specific = format!("SKIFF_FUZZ_CASES_{}", target.to_uppercase());
    [specific.as_str(), "SKIFF_FUZZ_CASES"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
        .unwrap_or(default)
}

/// A proptest configuration running `cases` cases, without writing regression files.
pub fn fuzz_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    }
}

/// How often each outcome happened, by a short label, to print after a fuzz run.
#[derive(Debug, Default)]
pub struct Outcomes(pub std::collections::BTreeMap<String, u64>);

impl Outcomes {
    /// Counts `Ok` as "accepted" and an error by its variants' names ("Refused/Invalid/EntryGap").
    pub fn count<E: std::fmt::Debug>(&mut self, result: &Result<(), E>) {
        let label = match result {
            Ok(()) => "accepted".to_string(),
            Err(error) => variant_path(&format!("{error:?}")),
        };
        *self.0.entry(label).or_default() += 1;
    }

    /// Counts something else that happened, under `label` (in parentheses, outside the total).
    pub fn note(&mut self, label: &str) {
        *self.0.entry(format!("({label})")).or_default() += 1;
    }

    /// The counts, one per line, with the total.
    pub fn report(&self, what: &str) -> String {
        let total: u64 = self
            .0
            .iter()
            .filter(|(label, _)| !label.starts_with('('))
            .map(|(_, count)| count)
            .sum();
        let mut out = format!("{what}: {total} in all\n");
        for (label, count) in &self.0 {
            out += &format!("  {count:>9}  {label}\n");
        }
        out
    }
}

/// "Refused(Invalid(EntryGap { .. }))" → "Refused/Invalid/EntryGap".
fn variant_path(debug: &str) -> String {
    let mut path = Vec::new();
    let mut rest = debug;
    loop {
        let end = rest
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        path.push(&rest[..end]);
        match rest[end..].strip_prefix('(') {
            Some(inner) if inner.starts_with(|c: char| c.is_ascii_uppercase()) => rest = inner,
            _ => break,
        }
    }
    path.join("/")
}

/// A `u64` that is mostly small, sometimes at an edge.
pub fn number(small: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0..small,
        1 => prop::sample::select(vec![
            0,
            1,
            (1 << 62) - 1,
            1 << 62,
            (1 << 62) + 1,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ]),
    ]
}

/// A node id: mostly a member (1 to 3), sometimes nobody (0), a stranger, or absurd.
pub fn node_id() -> impl Strategy<Value = NodeId> {
    prop_oneof![
        12 => (1u64..=3).prop_map(NodeId),
        1 => Just(NodeId(0)),
        1 => Just(NodeId(9)),
        1 => Just(NodeId(u64::MAX)),
    ]
}

fn entry_kind() -> impl Strategy<Value = EntryKind> {
    prop_oneof![
        Just(EntryKind::Normal),
        Just(EntryKind::Noop),
        Just(EntryKind::ConfChange)
    ]
}

/// Entries after `prev`: contiguous with non-decreasing terms, or broken in one place.
fn entries(prev: u64, data: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Vec<Entry>> {
    (
        prop::collection::vec((0u64..3, entry_kind(), data), 0..5),
        1u64..6,
        prop_oneof![4 => Just(None), 1 => (0usize..5, number(16)).prop_map(Some)],
    )
        .prop_map(move |(steps, first_term, broken)| {
            let mut term = first_term;
            let mut out: Vec<Entry> = steps
                .into_iter()
                .enumerate()
                .map(|(k, (raise, kind, data))| {
                    term += raise;
                    Entry {
                        term: Term(term),
                        index: LogIndex(prev.saturating_add(k as u64 + 1)),
                        kind,
                        data: data.into(),
                    }
                })
                .collect();
            if let Some((at, value)) = broken {
                if let Some(entry) = out.get_mut(at) {
                    if at % 2 == 0 {
                        entry.index = LogIndex(value);
                    } else {
                        entry.term = Term(value);
                    }
                }
            }
            out
        })
}

/// Snapshot metadata: mostly a plausible configuration, sometimes a broken one.
fn snapshot_meta() -> impl Strategy<Value = SnapshotMeta> {
    (
        number(24),
        number(8),
        prop::collection::vec(node_id(), 0..4),
        prop::collection::vec(node_id(), 0..2),
        prop::collection::vec(node_id(), 0..2),
        any::<bool>(),
    )
        .prop_map(|(index, term, voters, outgoing, learners, plausible)| {
            if plausible {
                SnapshotMeta {
                    index: LogIndex(index.max(1)),
                    term: Term(term.max(1)),
                    voters: vec![NodeId(1), NodeId(2), NodeId(3)],
                    voters_outgoing: vec![],
                    learners: vec![],
                }
            } else {
                SnapshotMeta {
                    index: LogIndex(index),
                    term: Term(term),
                    voters,
                    voters_outgoing: outgoing,
                    learners,
                }
            }
        })
}

/// A message body of any kind; `data` gives entry payloads and snapshot chunks.
pub fn body(data: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = MessageBody> {
    let append = (number(12), number(8), number(16), number(4))
        .prop_flat_map(move |(prev, prev_term, commit, round)| {
            entries(prev, data.clone()).prop_map(move |entries| MessageBody::AppendEntries {
                prev_log_index: LogIndex(prev),
                prev_log_term: Term(prev_term),
                entries,
                leader_commit: LogIndex(commit),
                read_round: round,
            })
        })
        .boxed();
    prop_oneof![
        1 => (number(12), number(8)).prop_map(|(i, t)| MessageBody::PreVote {
            last_log_index: LogIndex(i),
            last_log_term: Term(t),
        }),
        1 => any::<bool>().prop_map(|reject| MessageBody::PreVoteResponse { reject }),
        1 => (number(12), number(8), any::<bool>()).prop_map(|(i, t, transfer)| {
            MessageBody::RequestVote {
                last_log_index: LogIndex(i),
                last_log_term: Term(t),
                leadership_transfer: transfer,
            }
        }),
        1 => any::<bool>().prop_map(|reject| MessageBody::RequestVoteResponse { reject }),
        3 => append,
        1 => (number(4), number(16)).prop_map(|(round, i)| MessageBody::AppendEntriesResponse {
            read_round: round,
            result: AppendResponse::Accepted {
                match_index: LogIndex(i)
            },
        }),
        1 => (number(4), number(16), number(16), number(8)).prop_map(|(round, r, h, t)| {
            MessageBody::AppendEntriesResponse {
                read_round: round,
                result: AppendResponse::Rejected {
                    rejected_index: LogIndex(r),
                    hint_index: LogIndex(h),
                    hint_term: Term(t),
                },
            }
        }),
        2 => Just(MessageBody::TimeoutNow),
        2 => (snapshot_meta(), number(64), snapshot_data_placeholder(), any::<bool>()).prop_map(
            |(meta, offset, data, done)| MessageBody::InstallSnapshot {
                meta,
                offset,
                data,
                done,
            }
        ),
        1 => (number(24), number(64), any::<bool>()).prop_map(|(i, next, installed)| {
            MessageBody::InstallSnapshotResponse {
                index: LogIndex(i),
                next_offset: next,
                installed,
            }
        }),
        1 => number(8).prop_map(|ctx| MessageBody::ReadIndex { ctx }),
        1 => (number(8), prop::option::of(number(16))).prop_map(|(ctx, i)| {
            MessageBody::ReadIndexResponse {
                ctx,
                index: i.map(LogIndex),
            }
        }),
    ]
}

/// Snapshot chunks in generated bodies: garbage; the node fuzzer swaps in real snapshots.
fn snapshot_data_placeholder() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

/// A whole message to `to` (sometimes to someone else), from anyone, in a term near `term`.
pub fn message(
    data: BoxedStrategy<Vec<u8>>,
) -> impl Strategy<Value = (NodeId, NodeId, u64, MessageBody)> {
    (node_id(), node_id(), number(8), body(data))
}

/// Builds the message drawn by [`message`], addressed to `to` unless the draw names
/// a stranger or nobody.
pub fn addressed(draw: (NodeId, NodeId, u64, MessageBody), to: NodeId) -> Message {
    let (from, drawn_to, term, body) = draw;
    let to = if drawn_to.0 == 0 || drawn_to.0 > 3 {
        drawn_to
    } else {
        to
    };
    // Mostly from another member: a message from the node to itself tests one check only.
    let from = if from == to && to.0 <= 3 {
        NodeId(to.0 % 3 + 1)
    } else {
        from
    };
    Message {
        from,
        to,
        term: Term(term),
        body,
    }
}

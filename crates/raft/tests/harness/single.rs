//! Building blocks for the core's tests: configurations, logs, hand-built messages, and one
//! node driven through its Ready loop by hand.

use skiff_raft::{
    AppendResponse, ConfState, Config, Entry, EntryKind, HardState, LogIndex, LogStorage,
    MemStorage, Message, MessageBody, NodeId, RawNode, ReadState, Ready, Role, SnapshotChunk,
    SnapshotMeta, SoftState, Term,
};

/// Node ids `1..=n`.
pub fn ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

/// The default configuration of node `id` in a cluster of `n`, with a fixed seed.
pub fn config(id: u64, n: u64) -> Config {
    let mut config = Config::new(NodeId(id), ids(n));
    config.seed = 42;
    config
}

/// A normal entry without payload.
pub fn entry(index: u64, term: u64) -> Entry {
    data_entry(index, term, &[])
}

/// A normal entry carrying `data`.
pub fn data_entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        kind: EntryKind::Normal,
        data: data.to_vec().into(),
    }
}

/// A leader's no-op entry.
pub fn noop(index: u64, term: u64) -> Entry {
    Entry {
        kind: EntryKind::Noop,
        ..entry(index, term)
    }
}

/// A durable log whose entry `k + 1` has term `terms[k]`.
pub fn storage_with_terms(terms: &[u64]) -> MemStorage {
    let mut storage = MemStorage::new();
    let entries: Vec<Entry> = (1..).zip(terms).map(|(i, &t)| entry(i, t)).collect();
    storage.append(&entries).unwrap();
    storage
}

/// The metadata of a snapshot at `index` (of `term`) taken while `conf` was in force.
pub fn snapshot_meta_in(index: u64, term: u64, conf: &ConfState) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(term),
        voters: conf.voters.clone(),
        voters_outgoing: conf.voters_outgoing.clone(),
        learners: conf.learners.clone(),
    }
}

/// A durable log compacted into a snapshot at `index` (of `term`) taken while `conf` was in
/// force, with no entries after it.
pub fn storage_with_snapshot(index: u64, term: u64, conf: &ConfState) -> MemStorage {
    let terms = vec![term; index as usize];
    let mut storage = storage_with_terms(&terms);
    storage
        .save_snapshot(snapshot_meta_in(index, term, conf), Vec::new())
        .unwrap();
    storage.compact(LogIndex(index)).unwrap();
    storage
}

/// The hard state of a node at `term` that voted for `vote` (0 = nobody) and committed `commit`.
pub fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: (vote != 0).then_some(NodeId(vote)),
        commit: LogIndex(commit),
    }
}

/// A node restarting over a log with `terms` and `hard_state`.
pub fn node(config: Config, terms: &[u64], hard_state: HardState) -> RawNode<MemStorage> {
    RawNode::new(config, storage_with_terms(terms), hard_state).unwrap()
}

/// A message from `from` to `to` at `term`.
pub fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    }
}

pub fn append(prev_index: u64, prev_term: u64, entries: Vec<Entry>, commit: u64) -> MessageBody {
    MessageBody::AppendEntries {
        prev_log_index: LogIndex(prev_index),
        prev_log_term: Term(prev_term),
        entries,
        leader_commit: LogIndex(commit),
        read_round: 0,
    }
}

/// An AppendEntries carrying the leader's read round `round`.
pub fn append_in_round(
    prev_index: u64,
    prev_term: u64,
    entries: Vec<Entry>,
    commit: u64,
    round: u64,
) -> MessageBody {
    match append(prev_index, prev_term, entries, commit) {
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            ..
        } => MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_round: round,
        },
        _ => unreachable!("append builds an AppendEntries"),
    }
}

/// An acceptance answering read round `round`.
pub fn accepted_in_round(match_index: u64, round: u64) -> MessageBody {
    MessageBody::AppendEntriesResponse {
        read_round: round,
        result: AppendResponse::Accepted {
            match_index: LogIndex(match_index),
        },
    }
}

pub fn accepted(match_index: u64) -> MessageBody {
    MessageBody::AppendEntriesResponse {
        read_round: 0,
        result: AppendResponse::Accepted {
            match_index: LogIndex(match_index),
        },
    }
}

pub fn rejected(rejected_index: u64, hint_index: u64, hint_term: u64) -> MessageBody {
    MessageBody::AppendEntriesResponse {
        read_round: 0,
        result: AppendResponse::Rejected {
            rejected_index: LogIndex(rejected_index),
            hint_index: LogIndex(hint_index),
            hint_term: Term(hint_term),
        },
    }
}

/// A rejection answering read round `round`.
pub fn rejected_in_round(
    rejected_index: u64,
    hint_index: u64,
    hint_term: u64,
    round: u64,
) -> MessageBody {
    MessageBody::AppendEntriesResponse {
        read_round: round,
        result: AppendResponse::Rejected {
            rejected_index: LogIndex(rejected_index),
            hint_index: LogIndex(hint_index),
            hint_term: Term(hint_term),
        },
    }
}

/// A follower forwarding the read `ctx` to its leader.
pub fn read_index(ctx: u64) -> MessageBody {
    MessageBody::ReadIndex { ctx }
}

/// The leader's answer to a forwarded read: the index to wait for, or `None` when refused.
pub fn read_index_response(ctx: u64, index: Option<u64>) -> MessageBody {
    MessageBody::ReadIndexResponse {
        ctx,
        index: index.map(LogIndex),
    }
}

/// A confirmed read `ctx` to serve once `index` is applied.
pub fn read_state(ctx: u64, index: u64) -> ReadState {
    ReadState {
        ctx,
        index: LogIndex(index),
    }
}

pub fn vote_request(last_index: u64, last_term: u64) -> MessageBody {
    MessageBody::RequestVote {
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
        leadership_transfer: false,
    }
}

pub fn pre_vote(last_index: u64, last_term: u64) -> MessageBody {
    MessageBody::PreVote {
        last_log_index: LogIndex(last_index),
        last_log_term: Term(last_term),
    }
}

pub fn vote_response(granted: bool) -> MessageBody {
    MessageBody::RequestVoteResponse { reject: !granted }
}

pub fn pre_vote_response(granted: bool) -> MessageBody {
    MessageBody::PreVoteResponse { reject: !granted }
}

/// What one Ready held. Unlike a `Ready`, it was already persisted and advanced.
#[derive(Debug, Default)]
pub struct Batch {
    pub soft_state: Option<SoftState>,
    pub hard_state: Option<HardState>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub persisted_messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    pub failed_reads: Vec<u64>,
    pub snapshot_chunks: Vec<SnapshotChunk>,
    pub snapshot: Option<SnapshotMeta>,
}

/// Step 1 of the Ready contract on a node's storage: stage the snapshot chunks, install a
/// fully received snapshot, then append the entries.
pub fn persist(storage: &mut MemStorage, ready: &Ready) {
    ready.write_log(storage).unwrap();
}

/// Runs one Ready through the contract (persist it, then advance); returns its contents.
pub fn process(node: &mut RawNode<MemStorage>) -> Batch {
    let ready = node.ready();
    persist(node.storage_mut(), &ready);
    let batch = Batch {
        soft_state: ready.soft_state,
        hard_state: ready.hard_state,
        entries: ready.entries.clone(),
        messages: ready.messages.clone(),
        persisted_messages: ready.persisted_messages.clone(),
        committed_entries: ready.committed_entries.clone(),
        read_states: ready.read_states.clone(),
        failed_reads: ready.failed_reads.clone(),
        snapshot_chunks: ready.snapshot_chunks.clone(),
        snapshot: ready.snapshot.clone(),
    };
    node.advance(ready);
    batch
}

/// Processes Readies until none is left; returns every message sent, in order.
pub fn drain(node: &mut RawNode<MemStorage>) -> Vec<Message> {
    let mut sent = Vec::new();
    for _batch in 0..100 {
        if !node.has_ready() {
            return sent;
        }
        let batch = process(node);
        sent.extend(batch.messages);
        sent.extend(batch.persisted_messages);
    }
    panic!("node {} never ran out of work", node.raft().id());
}

/// What a node handed out over the Readies [`drain_reads`] processed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Every message sent, in order (`messages` then `persisted_messages` of each Ready).
    pub messages: Vec<Message>,
    pub read_states: Vec<ReadState>,
    pub failed_reads: Vec<u64>,
}

/// As [`drain`], keeping the answered reads too.
pub fn drain_reads(node: &mut RawNode<MemStorage>) -> Drained {
    let mut drained = Drained::default();
    for _batch in 0..100 {
        if !node.has_ready() {
            return drained;
        }
        let batch = process(node);
        drained.messages.extend(batch.messages);
        drained.messages.extend(batch.persisted_messages);
        drained.read_states.extend(batch.read_states);
        drained.failed_reads.extend(batch.failed_reads);
    }
    panic!("node {} never ran out of work", node.raft().id());
}

/// Makes `node` leader by answering its (pre-)vote requests with grants.
/// Returns the messages of the Ready in which it became leader (its first appends).
pub fn elect(node: &mut RawNode<MemStorage>) -> Vec<Message> {
    node.campaign();
    for _round in 0..3 {
        let sent = drain(node);
        if node.raft().role() == Role::Leader {
            return sent;
        }
        for m in sent {
            let answer = match m.body {
                MessageBody::PreVote { .. } => pre_vote_response(true),
                MessageBody::RequestVote { .. } => vote_response(true),
                _ => continue,
            };
            node.step(msg(m.to.0, m.from.0, m.term.0, answer)).unwrap();
        }
    }
    panic!("node {} did not become leader", node.raft().id());
}

/// Node 1 of `n`, just elected leader of term 1 over an empty log: its no-op (index 1) is
/// durable and was sent to every follower, none of which has answered yet (all probing).
pub fn new_leader(n: u64, adjust: impl Fn(&mut Config)) -> RawNode<MemStorage> {
    let mut config = config(1, n);
    adjust(&mut config);
    let mut node = node(config, &[], HardState::default());
    elect(&mut node);
    node
}

/// As [`new_leader`], and every follower acknowledged the no-op: commit is 1, the followers
/// replicate from index 2, and no read round has started yet.
pub fn streaming_leader(n: u64, adjust: impl Fn(&mut Config)) -> RawNode<MemStorage> {
    let mut node = new_leader(n, adjust);
    for id in 2..=n {
        node.step(msg(id, 1, 1, accepted(1))).unwrap();
    }
    drain(&mut node);
    assert_eq!(node.raft().log().committed(), LogIndex(1));
    node
}

//! The run's trace: every event is hashed (so two runs of one seed can be compared), and the
//! most recent ones are kept to print when a property breaks.

use std::collections::VecDeque;
use std::fmt::Write as _;

use skiff_node::{Envelope, PeerMessage};
use skiff_raft::{AppendResponse, MessageBody, NodeId, Role, Term};

/// One thing that happened in the simulation.
#[derive(Clone, Debug)]
pub enum TraceEvent {
    /// A message was delivered.
    Deliver(Envelope),
    /// A message was lost (by the loss rate, a partition, or a receiver that is down).
    Drop(Envelope, &'static str),
    /// A node changed role or learned of a leader.
    Role {
        /// The node.
        node: NodeId,
        /// Its term.
        term: Term,
        /// Its new role.
        role: Role,
        /// The leader it follows.
        leader: Option<NodeId>,
    },
    /// A client proposal was accepted at `index` in `term`.
    Proposed {
        /// The leader.
        node: NodeId,
        /// The client value.
        value: u64,
        /// Its log index.
        index: u64,
        /// The leader's term.
        term: Term,
    },
    /// A node applied an entry.
    Applied {
        /// The node.
        node: NodeId,
        /// The entry's index.
        index: u64,
        /// The entry's term.
        term: Term,
    },
    /// A fault or repair.
    Fault(String),
    /// Anything else worth a line.
    Note(String),
}

/// Hash of every event and a window of the latest ones.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    recent: VecDeque<(u64, TraceEvent)>,
    keep: usize,
    print_all: bool,
    events: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

impl Trace {
    /// A trace keeping the last `keep` events; with `print_all`, every event is printed as it happens.
    pub fn new(keep: usize, print_all: bool) -> Trace {
        Trace {
            hash: FNV_OFFSET,
            recent: VecDeque::with_capacity(keep),
            keep,
            print_all,
            events: 0,
        }
    }

    /// Records an event at time `now_ms`.
    pub fn record(&mut self, now_ms: u64, event: TraceEvent) {
        self.events += 1;
        self.hash = fnv(self.hash, &now_ms.to_le_bytes());
        self.hash = fnv(self.hash, &event_key(&event));
        if self.print_all {
            println!("{}", format_line(now_ms, &event));
        }
        if self.keep == 0 {
            return;
        }
        if self.recent.len() == self.keep {
            self.recent.pop_front();
        }
        self.recent.push_back((now_ms, event));
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// How many events were recorded.
    pub fn len(&self) -> u64 {
        self.events
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// The kept events, one readable line each.
    pub fn render_recent(&self) -> String {
        let mut text = String::new();
        for (at, event) in &self.recent {
            let _ = writeln!(text, "{}", format_line(*at, event));
        }
        text
    }
}

/// The fields of an event that identify it, as bytes (cheaper than formatting every event).
fn event_key(event: &TraceEvent) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    match event {
        TraceEvent::Deliver(m) | TraceEvent::Drop(m, _) => {
            key.push(if matches!(event, TraceEvent::Deliver(_)) {
                1
            } else {
                2
            });
            key.extend_from_slice(&m.incarnation.to_le_bytes());
            match &m.message {
                PeerMessage::Raft(m) => {
                    for v in [m.from.0, m.to.0, m.term.0] {
                        key.extend_from_slice(&v.to_le_bytes());
                    }
                    body_key(&m.body, &mut key);
                }
                PeerMessage::Forward {
                    from,
                    to,
                    id,
                    request: bytes,
                }
                | PeerMessage::ForwardReply {
                    from,
                    to,
                    id,
                    reply: bytes,
                } => {
                    key.push(u8::from(matches!(m.message, PeerMessage::Forward { .. })));
                    for v in [from.0, to.0, *id] {
                        key.extend_from_slice(&v.to_le_bytes());
                    }
                    key.extend_from_slice(bytes);
                }
                PeerMessage::IncarnationRefused {
                    from,
                    to,
                    incarnation,
                    recorded,
                } => {
                    key.push(3);
                    for v in [from.0, to.0, *incarnation, *recorded] {
                        key.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
        TraceEvent::Role {
            node,
            term,
            role,
            leader,
        } => {
            key.push(3);
            for v in [node.0, term.0, leader.map_or(0, |l| l.0)] {
                key.extend_from_slice(&v.to_le_bytes());
            }
            key.push(*role as u8);
        }
        TraceEvent::Proposed {
            node,
            value,
            index,
            term,
        } => {
            key.push(4);
            for v in [node.0, *value, *index, term.0] {
                key.extend_from_slice(&v.to_le_bytes());
            }
        }
        TraceEvent::Applied { node, index, term } => {
            key.push(5);
            for v in [node.0, *index, term.0] {
                key.extend_from_slice(&v.to_le_bytes());
            }
        }
        TraceEvent::Fault(text) | TraceEvent::Note(text) => {
            key.push(6);
            key.extend_from_slice(text.as_bytes());
        }
    }
    key
}

fn body_key(body: &MessageBody, key: &mut Vec<u8>) {
    key.extend_from_slice(body.name().as_bytes());
    let fields: Vec<u64> = match body {
        MessageBody::PreVote {
            last_log_index,
            last_log_term,
        }
        | MessageBody::RequestVote {
            last_log_index,
            last_log_term,
            ..
        } => vec![last_log_index.0, last_log_term.0],
        MessageBody::PreVoteResponse { reject } | MessageBody::RequestVoteResponse { reject } => {
            vec![u64::from(*reject)]
        }
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
            read_round,
        } => vec![
            prev_log_index.0,
            prev_log_term.0,
            entries.len() as u64,
            leader_commit.0,
            *read_round,
        ],
        MessageBody::AppendEntriesResponse { read_round, result } => match result {
            AppendResponse::Accepted { match_index } => vec![*read_round, match_index.0],
            AppendResponse::Rejected {
                rejected_index,
                hint_index,
                hint_term,
            } => {
                vec![*read_round, rejected_index.0, hint_index.0, hint_term.0]
            }
        },
        MessageBody::ReadIndex { ctx } => vec![*ctx],
        MessageBody::TimeoutNow => vec![],
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            done,
        } => {
            vec![
                meta.index.0,
                meta.term.0,
                *offset,
                data.len() as u64,
                u64::from(*done),
            ]
        }
        MessageBody::InstallSnapshotResponse {
            index,
            next_offset,
            installed,
        } => {
            vec![index.0, *next_offset, u64::from(*installed)]
        }
        MessageBody::ReadIndexResponse { ctx, index } => {
            vec![*ctx, index.map_or(u64::MAX, |i| i.0)]
        }
    };
    for field in fields {
        key.extend_from_slice(&field.to_le_bytes());
    }
}

fn format_line(at_ms: u64, event: &TraceEvent) -> String {
    let time = format!("{:>6}.{:03}s", at_ms / 1000, at_ms % 1000);
    match event {
        TraceEvent::Deliver(m) => format!("{time}  deliver  {}", show(&m.message)),
        TraceEvent::Drop(m, why) => format!("{time}  drop     {} ({why})", show(&m.message)),
        TraceEvent::Role {
            node,
            term,
            role,
            leader,
        } => {
            let leader = leader.map_or("none".to_string(), |l| l.to_string());
            format!("{time}  {node} is {role} in {term} (leader {leader})")
        }
        TraceEvent::Proposed {
            node,
            value,
            index,
            term,
        } => {
            format!("{time}  {node} accepted proposal v{value} at i{index}/{term}")
        }
        TraceEvent::Applied { node, index, term } => {
            format!("{time}  {node} applied i{index}/{term}")
        }
        TraceEvent::Fault(text) => format!("{time}  FAULT    {text}"),
        TraceEvent::Note(text) => format!("{time}  {text}"),
    }
}

/// One readable line for a message between nodes.
fn show(message: &PeerMessage) -> String {
    match message {
        PeerMessage::Raft(m) => m.to_string(),
        PeerMessage::Forward {
            from,
            to,
            id,
            request,
        } => {
            let request = skiff_kv::Request::decode(request).map_or_else(
                |e| format!("undecodable: {e}"),
                |r| format!("{:?}", r.command),
            );
            format!("{from} -> {to} forward request {id}: {request}")
        }
        PeerMessage::ForwardReply {
            from,
            to,
            id,
            reply,
            ..
        } => {
            let reply = skiff_kv::Reply::decode(reply)
                .map_or_else(|e| format!("undecodable: {e}"), |r| format!("{r:?}"));
            format!("{from} -> {to} reply to forwarded request {id}: {reply}")
        }
        PeerMessage::IncarnationRefused {
            from,
            to,
            incarnation,
            recorded,
        } => {
            format!("{from} -> {to} refuses incarnation {incarnation:#x} (recorded {recorded:#x})")
        }
    }
}

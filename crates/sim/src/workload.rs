//! Key-value clients for randomized runs: sequential clients send `GET`, `SET`, `DEL` and
//! `CAS` on a small key space to any node — the one that answered them last, or another —
//! through [`Node::submit`](skiff_node::Node::submit); followers forward writes to the
//! leader and serve reads through ReadIndex. Every operation is recorded in the shared
//! history format for the linearizability checker, its outcome judged from the reply:
//!
//! - a reply that is not an error completes the operation (`DEL` tells whether the key
//!   existed, `CAS` whether it swapped);
//! - a read answered with an error failed: it tells nothing;
//! - a write answered with an error is of unknown outcome — it may have been applied —
//!   unless the error guarantees it was not: the node answered at once that no leader is
//!   known (so it forwarded nothing), or the leader saw another entry commit where the write
//!   was (`skiff_node::refusals::LEADER_CHANGED`);
//! - a request no node answered in time is of unknown outcome.
//!
//! Each client writes in an exactly-once session (thesis §6.3): its id is the session's,
//! and its writes are numbered 1, 2, 3…, so a write whose outcome a leader change lost is
//! sent again by the node instead of answered "may or may not have been applied". A client
//! that gives up on an operation continues as a new client, in a new session.
//!
//! Some `SET`s carry a TTL of an hour (`PX`), which no run reaches: the model takes them as
//! plain writes. Besides, a fifth of the operations are timed (`timed.rs`): on keys of
//! their own (`t0`, `t1`) with short TTLs — `SET … PX` with `NX`/`XX`/`GET`, `PEXPIRE` with
//! its conditions (a negative time deletes; a quarter are `PEXPIREAT` by the client's
//! clock), `GETEX`, `PERSIST`, `GET`, `PTTL`, `TTL`, `REVISION` — so that keys expire by log
//! time under skewed clocks, crashes and snapshots; and on a lock taken with
//! `SET lock token NX PX`, its holder fencing with `REVISION lock` then `GET lock`. They go
//! in a history of their own, checked against the committed log by [`crate::timed_check`].

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use skiff_kv::{Command, Deadline, Expiry, Reply, SetCondition, SetOptions};
use skiff_node::{refusals, ClientSession};
use skiff_raft::NodeId;

use crate::cluster::{Cluster, Submitted};
use crate::history::{OpKind, Operation};
use crate::timed_check::{TimedHistory, TimedOutcome};

pub mod pipeline;
mod timed;

use timed::{timed_command, LockStep};

/// How clients behave.
#[derive(Clone, Debug)]
pub struct WorkloadOptions {
    /// Concurrent (sequential) clients.
    pub clients: usize,
    /// Keys they share.
    pub keys: usize,
    /// Operations in all, at most (bounds the checker's work).
    pub max_operations: usize,
    /// A client gives up on an operation after this long: its outcome is unknown.
    pub timeout_ms: u64,
    /// Whether a pipelining client appends to a key of its own besides
    /// ([`pipeline`]), and how many `APPEND`s it sends at most.
    pub pipelined_writes: usize,
}

impl Default for WorkloadOptions {
    fn default() -> WorkloadOptions {
        WorkloadOptions {
            clients: 4,
            keys: 3,
            max_operations: 400,
            timeout_ms: 1_500,
            pipelined_writes: 0,
        }
    }
}

#[derive(Debug)]
struct InFlight {
    record: Operation,
    /// For a timed operation, its command: it goes in the timed history.
    timed: Option<Command>,
    /// The request id the reply comes back under.
    request: u64,
    node: NodeId,
    started_ms: u64,
}

#[derive(Debug)]
struct Client {
    /// The client's id, and its session's.
    id: u64,
    /// The sequence of the session's last write.
    sequence: u64,
    /// The node that answered last: the client goes back to it.
    node_hint: Option<NodeId>,
    in_flight: Option<InFlight>,
    idle_until_ms: u64,
    /// Where the client is in the lock recipe.
    lock: LockStep,
}

/// The clients and the history they recorded.
#[derive(Debug)]
pub struct Workload {
    options: WorkloadOptions,
    clients: Vec<Client>,
    history: Vec<Operation>,
    /// The timed operations and fencing tokens.
    timed: TimedHistory,
    /// The last `REVISION` answer for each timed key (`None`: missing), which a
    /// WATCH-guarded transaction watches.
    revisions_seen: std::collections::BTreeMap<Vec<u8>, Option<u64>>,
    next_client_id: u64,
    next_op: u64,
    issued: usize,
    stopped: bool,
    /// Replies that said a write may or may not have been applied after a leader change.
    outcome_unknown_replies: u64,
    /// The pipelining client, on the seeds that have one.
    pipeline: Option<pipeline::Pipeline>,
    /// `APPEND`s it sent.
    pipelined_sent: usize,
}

const NS_PER_MS: u64 = 1_000_000;

/// The pipelining client's first session id, far from the sequential clients' ids.
const PIPELINE_CLIENT: u64 = 1 << 40;

/// Writes of unknown outcome a key may collect; past that, clients only read it. Each one may
/// take effect at any later moment, so the checker must try them in every order: the bound
/// keeps each key's search within its budget when a cluster stays unavailable for long.
const MAX_UNKNOWN_WRITES_PER_KEY: usize = 8;

/// The share of operations on the keys with short TTLs.
const TTL_OPERATION_PROBABILITY: f64 = 0.2;

/// A TTL longer than any run: a `SET` with it is, to the model, a plain write.
const LONG_TTL_MS: i64 = 3_600_000;

/// What a reply says about an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Done; for reads, the value read; for `DEL`, whether the key existed; for `CAS`,
    /// whether it swapped.
    Done {
        value: Option<Option<String>>,
        existed: Option<bool>,
        swapped: Option<bool>,
    },
    /// Certainly not applied (or, for a read, not served).
    NotApplied,
    /// It may or may not have been applied.
    Unknown,
}

/// Judges `reply` to an operation of kind `op`; `at_once` when the node it was handed to
/// answered before forwarding it anywhere.
fn outcome(op: OpKind, reply: &Reply, at_once: bool) -> Outcome {
    let done = Outcome::Done {
        value: None,
        existed: None,
        swapped: None,
    };
    match (op, reply) {
        (OpKind::Get, Reply::Bulk(bytes)) => Outcome::Done {
            value: Some(Some(String::from_utf8_lossy(bytes).into_owned())),
            existed: None,
            swapped: None,
        },
        (OpKind::Get, Reply::Nil) => Outcome::Done {
            value: Some(None),
            existed: None,
            swapped: None,
        },
        // A read that was refused was not served: it tells nothing.
        (OpKind::Get, _) => Outcome::NotApplied,
        (_, Reply::Error(text)) => {
            if promises_not_applied(text, at_once) {
                Outcome::NotApplied
            } else {
                Outcome::Unknown
            }
        }
        (OpKind::Put, Reply::Ok) => done,
        (OpKind::Delete, Reply::Integer(removed)) => Outcome::Done {
            value: None,
            existed: Some(*removed > 0),
            swapped: None,
        },
        (OpKind::Cas, Reply::Integer(swapped)) => Outcome::Done {
            value: None,
            existed: None,
            swapped: Some(*swapped == 1),
        },
        // A reply of the wrong kind: the outcome is unknown, and the checker decides whether
        // the history still makes sense.
        _ => Outcome::Unknown,
    }
}

/// Whether a write's error `text` promises it was not applied. Only these do: the leader
/// found another entry committed at the write's index (Log Matching: its own entry is gone),
/// or the node knew no leader, and so proposed and sent the write nowhere (`at_once`: the
/// node it was handed to answered at once), or a node was handing leadership over or had
/// handed it over (§3.10) — the one it was handed to, or the one that node forwarded it to —
/// and so proposed nothing: a forwarded write's refusal reaches its client only while no
/// other copy of it may be in the log (`node/resubmit.rs`).
fn promises_not_applied(text: &str, at_once: bool) -> bool {
    text == refusals::LEADER_CHANGED
        || text == skiff_kv::reply::errors::TOO_MANY_SESSIONS
        || refusals::is_leadership_moving(text)
        || (at_once && text == refusals::NO_LEADER)
}

impl Workload {
    /// Clients as `options` say.
    pub fn new(options: WorkloadOptions) -> Workload {
        let options_pipelined = options.pipelined_writes;
        let clients = (0..options.clients as u64)
            .map(|id| Client {
                id,
                sequence: 0,
                node_hint: None,
                in_flight: None,
                idle_until_ms: 0,
                lock: LockStep::Free,
            })
            .collect();
        Workload {
            next_client_id: options.clients as u64,
            options,
            clients,
            history: Vec::new(),
            timed: TimedHistory::default(),
            revisions_seen: std::collections::BTreeMap::new(),
            next_op: 1,
            issued: 0,
            stopped: false,
            outcome_unknown_replies: 0,
            pipeline: (options_pipelined > 0).then(|| pipeline::Pipeline::new(PIPELINE_CLIENT)),
            pipelined_sent: 0,
        }
    }

    /// Every completed (or abandoned) operation so far.
    pub fn history(&self) -> &[Operation] {
        &self.history
    }

    /// The timed operations and the fencing tokens lock holders took.
    pub fn timed_history(&self) -> &TimedHistory {
        &self.timed
    }

    /// How many replies said a write may or may not have been applied after a leader change
    /// ([`OUTCOME_UNKNOWN`](refusals::OUTCOME_UNKNOWN)).
    pub fn outcome_unknown_replies(&self) -> u64 {
        self.outcome_unknown_replies
    }

    /// How many operations completed with a known outcome.
    pub fn known_outcomes(&self) -> usize {
        self.history.iter().filter(|op| op.ok.is_some()).count()
    }

    /// Collects replies, gives up on stale operations and issues new ones.
    pub fn step(&mut self, cluster: &mut Cluster, rng: &mut ChaCha8Rng) {
        let now_ms = cluster.now_ms();
        let ids = cluster.ids().to_vec();
        for k in 0..self.clients.len() {
            self.collect(k, cluster, now_ms);
            let client = &self.clients[k];
            if self.stopped
                || client.in_flight.is_some()
                || client.idle_until_ms > now_ms
                || self.issued >= self.options.max_operations
            {
                continue;
            }
            let node = client
                .node_hint
                .filter(|_| rng.gen_bool(0.8))
                .unwrap_or_else(|| ids[rng.gen_range(0..ids.len())]);
            self.issue(k, node, cluster, rng);
        }
        self.step_pipeline(cluster, rng);
    }

    /// The pipelining client collects its replies and sends its next `APPEND`.
    fn step_pipeline(&mut self, cluster: &mut Cluster, rng: &mut ChaCha8Rng) {
        let Some(pipeline) = self.pipeline.as_mut() else {
            return;
        };
        pipeline.collect(cluster, self.options.timeout_ms);
        if !self.stopped
            && self.pipelined_sent < self.options.pipelined_writes
            && pipeline.issue(cluster, self.next_op, rng)
        {
            self.next_op += 1;
            self.pipelined_sent += 1;
        }
    }

    /// Checks the pipelining client's key, whose final value is `value`.
    pub fn check_pipeline(&self, value: Option<&[u8]>) -> Result<(), crate::checkers::Violation> {
        self.pipeline
            .as_ref()
            .map_or(Ok(()), |pipeline| pipeline.check(value))
    }

    /// How many pipelined `APPEND`s were acknowledged.
    pub fn pipelined_acknowledged(&self) -> u64 {
        self.pipeline
            .as_ref()
            .map_or(0, |pipeline| pipeline.acknowledged() as u64)
    }

    /// No new operations from now on; those in flight may still complete.
    pub fn stop_issuing(&mut self) {
        self.stopped = true;
    }

    /// Gives up on every operation still in flight (their outcomes are unknown).
    pub fn finish(&mut self, cluster: &mut Cluster) {
        if let Some(pipeline) = self.pipeline.as_mut() {
            pipeline.finish(cluster);
        }
        let now_ms = cluster.now_ms();
        for k in 0..self.clients.len() {
            if let Some(in_flight) = self.clients[k].in_flight.take() {
                self.abandon(k, in_flight, cluster, now_ms);
            }
        }
    }

    fn collect(&mut self, k: usize, cluster: &mut Cluster, now_ms: u64) {
        let Some(in_flight) = self.clients[k].in_flight.as_ref() else {
            return;
        };
        match cluster.take_reply(in_flight.request) {
            Some(reply) => {
                if reply == Reply::error(refusals::OUTCOME_UNKNOWN) {
                    self.outcome_unknown_replies += 1;
                }
                let in_flight = self.clients[k].in_flight.take().expect("checked above");
                if in_flight.timed.is_some() {
                    self.complete_timed(k, in_flight, Some(&reply), false, cluster, now_ms);
                    return;
                }
                let outcome = outcome(in_flight.record.op, &reply, false);
                self.complete(k, in_flight, outcome, cluster, now_ms);
            }
            None if now_ms - in_flight.started_ms > self.options.timeout_ms => {
                let in_flight = self.clients[k].in_flight.take().expect("checked above");
                self.abandon(k, in_flight, cluster, now_ms);
            }
            None => {}
        }
    }

    /// Records the operation as the reply says.
    fn complete(
        &mut self,
        k: usize,
        in_flight: InFlight,
        outcome: Outcome,
        cluster: &mut Cluster,
        now_ms: u64,
    ) {
        let mut record = in_flight.record;
        record.return_ns = now_ms * NS_PER_MS;
        match outcome {
            Outcome::Done {
                value,
                existed,
                swapped,
            } => {
                record.ok = Some(swapped.unwrap_or(true));
                record.existed = existed;
                if let Some(value) = value {
                    record.value = value;
                }
                self.clients[k].node_hint = Some(in_flight.node);
                self.history.push(record);
            }
            Outcome::NotApplied => {
                // Certainly not applied: recorded for get, put and delete (the checker skips
                // them); a cas's `ok: false` would mean "compare failed", so it is left out.
                record.ok = Some(false);
                if record.op != OpKind::Cas {
                    self.history.push(record);
                }
                let client = &mut self.clients[k];
                client.node_hint = None;
                client.idle_until_ms = now_ms + 10;
            }
            Outcome::Unknown => {
                self.abandon(
                    k,
                    InFlight {
                        record,
                        ..in_flight
                    },
                    cluster,
                    now_ms,
                );
            }
        }
    }

    /// The client stops waiting: the outcome is unknown, and it continues as a new client.
    fn abandon(&mut self, k: usize, in_flight: InFlight, cluster: &mut Cluster, now_ms: u64) {
        cluster.cancel(in_flight.request);
        let mut record = in_flight.record.clone();
        record.ok = None;
        record.return_ns = now_ms * NS_PER_MS;
        match in_flight.timed.clone() {
            Some(command) => {
                self.record_timed(k, &in_flight, command, TimedOutcome::Unknown, now_ms);
            }
            None => self.history.push(record),
        }
        let client = &mut self.clients[k];
        client.lock = LockStep::Free;
        client.id = self.next_client_id;
        client.sequence = 0;
        client.node_hint = None;
        self.next_client_id += 1;
    }

    fn issue(&mut self, k: usize, node: NodeId, cluster: &mut Cluster, rng: &mut ChaCha8Rng) {
        let now_ms = cluster.now_ms();
        // A lock holder takes the recipe's next step; other clients draw.
        let recorded =
            self.clients[k].lock == LockStep::Free && !rng.gen_bool(TTL_OPERATION_PROBABILITY);
        let key = format!("k{}", rng.gen_range(0..self.options.keys));
        let op = self.next_op;
        self.next_op += 1;
        self.issued += 1;
        let client_id = self.clients[k].id;
        let value = format!("c{client_id}-{op}");
        let mut record = Operation {
            client: client_id,
            op: OpKind::Get,
            key: key.clone(),
            value: None,
            expected: None,
            existed: None,
            ok: None,
            call_ns: now_ms * NS_PER_MS,
            return_ns: 0,
        };
        let unknown_writes = self
            .history
            .iter()
            .filter(|h| h.key == key && h.op != OpKind::Get && h.ok.is_none())
            .count();
        let roll = rng.gen_range(0..10);
        let roll = if unknown_writes >= MAX_UNKNOWN_WRITES_PER_KEY {
            0
        } else {
            roll
        };
        let clock_ms = crate::cluster::SIM_EPOCH_MS + now_ms;
        let timed = (!recorded).then(|| {
            let lock = &self.clients[k].lock;
            timed_command(lock, &self.revisions_seen, value.clone(), clock_ms, rng)
        });
        let command = match &timed {
            None => self.command(roll, &key, value, &mut record, rng),
            Some(command) => command.clone(),
        };
        let in_flight = InFlight {
            record,
            timed,
            request: op,
            node,
            started_ms: now_ms,
        };
        let session = (!command.is_read_only()).then(|| {
            let client = &mut self.clients[k];
            client.sequence += 1;
            // A sequential client waits for nothing but this write.
            ClientSession {
                client_id: client.id,
                sequence: client.sequence,
                lowest_unanswered: client.sequence,
                resubmitted: false,
                proposed_after: 0,
            }
        });
        match cluster.submit_in_session(node, op, command, session) {
            Submitted::Pending => self.clients[k].in_flight = Some(in_flight),
            Submitted::Answered(reply) if in_flight.timed.is_some() => {
                self.complete_timed(k, in_flight, Some(&reply), true, cluster, now_ms);
            }
            Submitted::Answered(reply) => {
                let outcome = outcome(in_flight.record.op, &reply, true);
                self.complete(k, in_flight, outcome, cluster, now_ms);
            }
            Submitted::Unreachable if in_flight.timed.is_some() => {
                self.complete_timed(k, in_flight, None, true, cluster, now_ms);
            }
            Submitted::Unreachable => {
                // The node is down or paused: the request reached nobody.
                self.complete(k, in_flight, Outcome::NotApplied, cluster, now_ms);
            }
        }
    }

    /// The command a roll of the dice asks for on `key`, written into `record` as the
    /// checker will see it.
    fn command(
        &self,
        roll: i32,
        key: &str,
        value: String,
        record: &mut Operation,
        rng: &mut ChaCha8Rng,
    ) -> Command {
        let key_bytes = key.as_bytes().to_vec();
        match roll {
            0..=3 => Command::Get { key: key_bytes },
            4..=6 => {
                record.op = OpKind::Put;
                record.value = Some(value.clone());
                if rng.gen_bool(0.25) {
                    let options = SetOptions {
                        expiry: Expiry::Until(Deadline::In(LONG_TTL_MS)),
                        ..SetOptions::default()
                    };
                    return Command::SetWith {
                        key: key_bytes,
                        value: value.into_bytes(),
                        options,
                    };
                }
                Command::Set {
                    key: key_bytes,
                    value: value.into_bytes(),
                    condition: SetCondition::Always,
                }
            }
            7 => {
                record.op = OpKind::Delete;
                Command::Del {
                    keys: vec![key_bytes],
                }
            }
            _ => {
                // Expect what some client wrote recently, or absence.
                let expected = self
                    .history
                    .iter()
                    .rev()
                    .find(|h| h.key == key && h.value.is_some())
                    .and_then(|h| h.value.clone());
                let expected = if rng.gen_bool(0.2) { None } else { expected };
                record.op = OpKind::Cas;
                record.expected = expected.clone();
                record.value = Some(value.clone());
                Command::Cas {
                    key: key_bytes,
                    expected: expected.map(String::into_bytes),
                    new: value.into_bytes(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_that_promise_nothing_was_applied_make_a_write_not_applied() {
        let error = |text: &str| Reply::error(text);
        assert_eq!(
            outcome(OpKind::Put, &error(refusals::LEADER_CHANGED), false),
            Outcome::NotApplied
        );
        assert_eq!(
            outcome(OpKind::Put, &error(refusals::NO_LEADER), true),
            Outcome::NotApplied,
            "a node that knew no leader forwarded nothing"
        );
        assert_eq!(
            outcome(OpKind::Put, &error(refusals::NO_LEADER), false),
            Outcome::Unknown,
            "a forwarded write's NO_LEADER comes from afar"
        );
        let moving = refusals::transferring(skiff_raft::NodeId(2));
        assert_eq!(
            outcome(OpKind::Cas, &error(&moving), true),
            Outcome::NotApplied,
            "a node handing leadership over proposed nothing"
        );
        assert_eq!(
            outcome(OpKind::Cas, &error(&moving), false),
            Outcome::NotApplied,
            "nor did the node it forwarded the write to, which no longer led"
        );
        for text in [
            refusals::OUTCOME_UNKNOWN,
            refusals::BUSY,
            "ERR anything else",
        ] {
            assert_eq!(outcome(OpKind::Cas, &error(text), true), Outcome::Unknown);
        }
        assert_eq!(
            outcome(OpKind::Get, &error(refusals::READ_NOT_CONFIRMED), false),
            Outcome::NotApplied,
            "a refused read was not served"
        );
    }

    #[test]
    fn replies_complete_operations() {
        assert_eq!(
            outcome(OpKind::Delete, &Reply::Integer(1), false),
            Outcome::Done {
                value: None,
                existed: Some(true),
                swapped: None
            }
        );
        assert_eq!(
            outcome(OpKind::Cas, &Reply::Integer(0), false),
            Outcome::Done {
                value: None,
                existed: None,
                swapped: Some(false)
            }
        );
        assert_eq!(
            outcome(OpKind::Get, &Reply::Nil, false),
            Outcome::Done {
                value: Some(None),
                existed: None,
                swapped: None
            }
        );
        assert_eq!(outcome(OpKind::Put, &Reply::Nil, false), Outcome::Unknown);
    }
}

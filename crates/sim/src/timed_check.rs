//! The timed linearizability check: operations on keys with a time to live, and revisions,
//! placed on the committed log (docs/COORDINATION.md, Raft §8 and thesis §6.4).
//!
//! The plain-register search ([`crate::linearizability`]) cannot judge expiry, because a key
//! expires at a point of the log that no client sees. The simulator can: its [`Ledger`] holds
//! every committed entry with its stamp, where each write was proposed and what each
//! answering node had applied. So here every operation gets a point on the log, and the
//! model ([`KeyspaceModel`]) is replayed along it:
//!
//! - a write's point is the committed entry it was proposed as (the first one, if proposed
//!   more than once under one session); its reply must be the model's at that entry, an
//!   acknowledged write must be in the log and a write refused as "not applied" must not;
//! - a read's point is the earliest index, at or after every write and read that completed
//!   before it began and at or before what its node had applied when it answered, where the
//!   model at that index and its log time gives the reply — `GET`'s value (a key is gone once
//!   the log time reaches its deadline), `REVISION`'s index of the last write, `PTTL`
//!   between 1 and what is left at that log time;
//! - points respect real time: an operation that completed before another began is placed
//!   no later (writes strictly earlier), so once a read reports a key expired no later read
//!   reports it present unless it was written again;
//! - log time never decreases along the log;
//! - fencing tokens (`REVISION` of a lock taken with `SET … NX PX`, confirmed by `GET`) of
//!   successive acquisitions strictly increase.
//!
//! An operation is a group of commands at one point: a transaction's entry is placed the
//! same way, its commands applied in order by the model.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use skiff_kv::{Command, Reply};
use skiff_node::RequestId;
use skiff_raft::NodeId;

use crate::clock_check;
use crate::keyspace_model::{describe, read_allows, single_key, KeyState, KeyspaceModel};
use crate::ledger::{commands_of, Ledger};

/// How a timed operation ended, as its client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimedOutcome {
    /// A reply that is not an error.
    Replied(Reply),
    /// Certainly not applied (for a read: not served).
    NotApplied,
    /// It may or may not have been applied.
    Unknown,
}

/// One client operation on a timed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedOp {
    /// The (sequential) client.
    pub client: u64,
    /// The request id it was submitted under.
    pub request: RequestId,
    /// The node it was handed to.
    pub node: NodeId,
    /// What it asked.
    pub command: Command,
    /// Simulated time it was sent.
    pub call_ms: u64,
    /// Simulated time the reply came (or the client gave up).
    pub return_ms: u64,
    /// How it ended.
    pub outcome: TimedOutcome,
}

impl TimedOp {
    fn is_read(&self) -> bool {
        self.command.is_read_only()
    }

    /// The key it is about (a transaction's: its first command's).
    fn key(&self) -> &[u8] {
        match &self.command {
            Command::Exec(transaction) => transaction.commands.first().and_then(single_key),
            command => single_key(command),
        }
        .unwrap_or_default()
    }

    fn known(&self) -> bool {
        !matches!(self.outcome, TimedOutcome::Unknown)
    }

    /// Whether this operation completed before `later` began: in real time, or earlier in
    /// the same sequential client (which sends its next request when the reply is in).
    fn precedes(&self, later: &TimedOp) -> bool {
        self.known()
            && (self.return_ms < later.call_ms
                || (self.client == later.client
                    && self.request < later.request
                    && self.return_ms <= later.call_ms))
    }
}

/// A lock holder's fencing token: after `SET lock token NX PX …` answered OK, the client read
/// `REVISION lock`, then `GET lock` still showed its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The acquiring request.
    pub acquire: RequestId,
    /// The holder's token (the value it wrote).
    pub token: String,
    /// The revision it read: its fencing token.
    pub revision: i64,
}

/// What the timed clients did.
#[derive(Clone, Debug, Default)]
pub struct TimedHistory {
    /// Every operation on a timed key, in the order they ended.
    pub ops: Vec<TimedOp>,
    /// The fencing tokens lock holders took.
    pub fences: Vec<Fence>,
}

/// What a passing check covered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimedSummary {
    /// Writes placed on the log.
    pub writes: u64,
    /// Reads placed and checked.
    pub reads: u64,
    /// Reads that saw a key with a deadline gone.
    pub expired_reads: u64,
    /// Fencing tokens checked.
    pub fences: u64,
    /// Stamps checked against the clock of the leader that appended them.
    pub stamps: u64,
    /// Transactions (`MULTI … EXEC`) placed with their reply checked.
    pub transactions: u64,
    /// Of those, the ones that aborted because a watched key had changed.
    pub aborted_transactions: u64,
    /// Write replies the model could not tell (a session's repeat): not checked.
    pub unchecked_replies: u64,
}

/// A broken property, with a readable trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedFailure {
    /// The property.
    pub property: &'static str,
    /// What happened, with the operations and model states that show it.
    pub detail: String,
}

/// The model replayed along the ledger: each key's state after each index it changed at,
/// and the log time after each stamped index.
struct Replay {
    states: BTreeMap<Vec<u8>, BTreeMap<u64, Option<KeyState>>>,
    log_times: BTreeMap<u64, u64>,
    replies: BTreeMap<u64, Vec<(Command, Option<Reply>)>>,
    /// Transactions whose watched key had changed: their `EXEC` answers nil.
    aborted: BTreeSet<u64>,
    last_index: u64,
}

impl Replay {
    fn run(keys: &BTreeSet<Vec<u8>>, ledger: &Ledger) -> Result<Replay, TimedFailure> {
        let mut model = KeyspaceModel::new(keys.iter().cloned());
        let mut replay = Replay {
            states: keys.iter().map(|k| (k.clone(), BTreeMap::new())).collect(),
            log_times: BTreeMap::new(),
            replies: BTreeMap::new(),
            aborted: BTreeSet::new(),
            last_index: 0,
        };
        for (&index, entry) in ledger.entries() {
            let replies = model.apply(index, entry).map_err(|error| TimedFailure {
                property: "Log time (docs/COORDINATION.md)",
                detail: error.to_string(),
            })?;
            replay.log_times.insert(index, model.log_time_ms());
            if model.aborted() {
                replay.aborted.insert(index);
            }
            for (key, states) in &mut replay.states {
                let now = model.key(key).cloned();
                if states.last_key_value().map(|(_, s)| s) != Some(&now) {
                    states.insert(index, now);
                }
            }
            replay
                .replies
                .insert(index, entry.commands.iter().cloned().zip(replies).collect());
            replay.last_index = index;
        }
        Ok(replay)
    }

    fn state_at(&self, key: &[u8], index: u64) -> Option<&KeyState> {
        let states = self.states.get(key)?;
        states
            .range(..=index)
            .next_back()
            .and_then(|(_, s)| s.as_ref())
    }

    fn log_time_at(&self, index: u64) -> u64 {
        self.log_times
            .range(..=index)
            .next_back()
            .map_or(0, |(_, t)| *t)
    }

    /// The model's answer to `command` applied at `index`: its own reply, or for a group
    /// (a transaction) the array of its commands' replies; `None` when the model cannot tell.
    fn reply_at(&self, index: u64, command: &Command) -> Option<Reply> {
        if matches!(command, Command::Exec(_)) && self.aborted.contains(&index) {
            return Some(Reply::NilArray);
        }
        let replies = self.replies.get(&index)?;
        let group = commands_of(command.clone());
        if let ([single], false) = (group.as_slice(), matches!(command, Command::Exec(_))) {
            return replies.iter().find(|(c, _)| c == single)?.1.clone();
        }
        if !replies.iter().map(|(c, _)| c).eq(group.iter()) {
            return None;
        }
        let answers: Option<Vec<Reply>> = replies.iter().map(|(_, r)| r.clone()).collect();
        answers.map(Reply::Array)
    }
}

/// Checks `history` against what `ledger` saw.
pub fn check(history: &TimedHistory, ledger: &Ledger) -> Result<TimedSummary, TimedFailure> {
    let keys: BTreeSet<Vec<u8>> = history.ops.iter().map(|op| op.key().to_vec()).collect();
    let mut summary = TimedSummary {
        stamps: clock_check::check_stamps(ledger)?,
        ..TimedSummary::default()
    };
    let replay = Replay::run(&keys, ledger)?;
    let points = place_writes(history, ledger, &replay, &mut summary)?;
    place_reads(history, ledger, &replay, points, &mut summary)?;
    check_fences(history, ledger, &mut summary)?;
    let last = replay.last_index;
    clock_check::check_idle_expiry(
        ledger,
        keys.iter()
            .filter_map(|key| Some((key.as_slice(), replay.state_at(key, last)?))),
        replay.log_time_at(last),
    )?;
    Ok(summary)
}

/// Each write's committed index, checked against its reply and against real time.
fn place_writes(
    history: &TimedHistory,
    ledger: &Ledger,
    replay: &Replay,
    summary: &mut TimedSummary,
) -> Result<BTreeMap<usize, u64>, TimedFailure> {
    let mut points = BTreeMap::new();
    for (k, op) in history.ops.iter().enumerate() {
        if op.is_read() {
            continue;
        }
        let at = ledger.committed_at(op.request);
        let fail = |property, why: String| TimedFailure {
            property,
            detail: format!("{why}\n{}", key_trace(history, op.key(), &points, replay)),
        };
        match (&op.outcome, at) {
            (TimedOutcome::Replied(_), None) => {
                return Err(fail(
                    "Acknowledged writes are committed",
                    format!("{} was answered but is in no committed entry", show(op)),
                ))
            }
            (TimedOutcome::NotApplied, Some(index)) => {
                return Err(fail(
                    "Refused writes are not applied",
                    format!(
                        "{} was refused as not applied but committed at {index}",
                        show(op)
                    ),
                ))
            }
            (TimedOutcome::Replied(reply), Some(index)) => {
                let expected = replay.reply_at(index, &op.command);
                summary.unchecked_replies += u64::from(expected.is_none());
                if matches!(op.command, Command::Exec(_)) && expected.is_some() {
                    summary.transactions += 1;
                    summary.aborted_transactions += u64::from(expected == Some(Reply::NilArray));
                }
                if expected.as_ref().is_some_and(|expected| expected != reply) {
                    return Err(fail(
                        "Linearizability (log time)",
                        format!(
                            "{} committed at {index} (log time {} ms) answered {}; the model answers {}",
                            show(op),
                            replay.log_time_at(index),
                            show_reply(reply),
                            expected.as_ref().map_or("nothing".to_string(), show_reply)
                        ),
                    ));
                }
            }
            _ => {}
        }
        if let Some(index) = at {
            points.insert(k, index);
            summary.writes += 1;
        }
    }
    // §8: a write that completed before another began is earlier in the log.
    for (&a, &at_a) in &points {
        let first = &history.ops[a];
        for (&b, &at_b) in &points {
            let second = &history.ops[b];
            if first.precedes(second) && at_a >= at_b {
                return Err(TimedFailure {
                    property: "Linearizability (log time)",
                    detail: format!(
                        "{} completed before {} began, yet is at {at_a}, not before {at_b}\n{}",
                        show(first),
                        show(second),
                        key_trace(history, first.key(), &points, replay)
                    ),
                });
            }
        }
    }
    Ok(points)
}

/// Places each read at the earliest index its window and its reply allow.
fn place_reads(
    history: &TimedHistory,
    ledger: &Ledger,
    replay: &Replay,
    mut points: BTreeMap<usize, u64>,
    summary: &mut TimedSummary,
) -> Result<(), TimedFailure> {
    let mut reads: Vec<usize> = (0..history.ops.len())
        .filter(|&k| {
            let op = &history.ops[k];
            op.is_read() && matches!(op.outcome, TimedOutcome::Replied(_))
        })
        .collect();
    reads.sort_by_key(|&k| (history.ops[k].call_ms, k));
    for k in reads {
        let op = &history.ops[k];
        let TimedOutcome::Replied(reply) = &op.outcome else {
            continue;
        };
        // Everything that completed before the read began is at or before its point, and so
        // is every entry committed before it began (§6.4: ReadIndex reads at least there)…
        let lo = points
            .iter()
            .filter(|(&j, _)| history.ops[j].precedes(op))
            .map(|(_, &at)| at)
            .max()
            .unwrap_or(0)
            .max(ledger.committed_before(op.call_ms));
        // …and every write that began after it completed is after it; the node answered
        // from what it had applied.
        let after = points
            .iter()
            .filter(|(&j, _)| {
                let other = &history.ops[j];
                !other.is_read() && op.precedes(other)
            })
            .map(|(_, &at)| at.saturating_sub(1))
            .min()
            .unwrap_or(u64::MAX);
        let served = ledger.answered_at(op.request).unwrap_or(replay.last_index);
        let hi = served.min(after);
        let key = op.key();
        // The serving node's clock while the read was in flight (TTL counts down by it).
        let clock_ms = ledger
            .clock_ms(op.node, op.call_ms)
            .zip(ledger.clock_ms(op.node, op.return_ms));
        let allows = |j: u64| {
            read_allows(
                &op.command,
                replay.state_at(key, j),
                replay.log_time_at(j),
                clock_ms,
                reply,
            )
        };
        let found = if lo <= hi {
            (lo..=hi).find(|&j| allows(j))
        } else {
            None
        };
        let Some(at) = found else {
            return Err(TimedFailure {
                property: read_property(op, replay, lo, hi),
                detail: format!(
                    "{} answered {}, but no index in [{lo}, {hi}] (after what completed or committed before it began, up to what {} had applied) gives that answer{}\n{}",
                    show(op),
                    show_reply(reply),
                    op.node,
                    clock_ms.map_or(String::new(), |(sent, back)| format!(
                        " ({}'s clock read {sent}..{back} ms)",
                        op.node
                    )),
                    key_trace(history, key, &points, replay)
                ),
            });
        };
        let expired = matches!(reply, Reply::Nil | Reply::Integer(-2))
            && replay
                .states
                .get(key)
                .and_then(|s| s.range(..=at).rev().find_map(|(_, s)| s.as_ref()))
                .is_some_and(|s| s.deadline_ms.is_some());
        summary.expired_reads += u64::from(expired);
        summary.reads += 1;
        points.insert(k, at);
    }
    Ok(())
}

/// Names what a read that found no point broke, for the report.
fn read_property(op: &TimedOp, replay: &Replay, lo: u64, hi: u64) -> &'static str {
    let key = op.key();
    let TimedOutcome::Replied(reply) = &op.outcome else {
        return "Linearizability (log time)";
    };
    if matches!(op.command, Command::Ttl { .. }) && matches!(reply, Reply::Integer(n) if *n >= 0) {
        return "TTL counts down from log time and the serving node's clock";
    }
    let absent = matches!(reply, Reply::Nil | Reply::Integer(-2));
    let present_throughout =
        (lo..=hi.min(replay.last_index)).all(|j| replay.state_at(key, j).is_some());
    if absent && present_throughout && lo <= hi {
        "No key expires before its deadline in log time"
    } else if !absent && op.is_read() && (lo..=hi).all(|j| replay.state_at(key, j).is_none()) {
        "No expired key comes back"
    } else {
        "Linearizability (log time)"
    }
}

/// §8 and docs/COORDINATION.md: each acquisition's fencing token is larger than every
/// earlier holder's, and no two holders share one.
fn check_fences(
    history: &TimedHistory,
    ledger: &Ledger,
    summary: &mut TimedSummary,
) -> Result<(), TimedFailure> {
    let mut held: Vec<(u64, &Fence)> = Vec::new();
    for fence in &history.fences {
        let Some(at) = ledger.committed_at(fence.acquire) else {
            return Err(TimedFailure {
                property: "Fencing tokens increase",
                detail: format!(
                    "the acquisition by {} (request {}) was answered OK but is in no committed entry",
                    fence.token, fence.acquire
                ),
            });
        };
        held.push((at, fence));
    }
    held.sort_by_key(|(at, _)| *at);
    for pair in held.windows(2) {
        let ((at_a, a), (at_b, b)) = (pair[0], pair[1]);
        if a.revision >= b.revision {
            return Err(TimedFailure {
                property: "Fencing tokens increase",
                detail: format!(
                    "{} acquired the lock at {at_a} with fencing token {}, {} acquired it later at {at_b} with token {}",
                    a.token, a.revision, b.token, b.revision
                ),
            });
        }
    }
    // The token is the lock key's revision: the index of the acquiring entry itself, read
    // from the ledger, not from the model (the holder wrote nothing to the lock between its
    // `SET NX` and the `GET` that confirmed it). A token older or newer than that would let
    // the protected resource admit the wrong holder.
    for (at, fence) in &held {
        if i64::try_from(*at).ok() != Some(fence.revision) {
            return Err(TimedFailure {
                property: "Fencing tokens increase",
                detail: format!(
                    "{} acquired the lock at {at} but was handed fencing token {}, not its acquisition's index",
                    fence.token, fence.revision
                ),
            });
        }
    }
    summary.fences += held.len() as u64;
    Ok(())
}

/// A reply as `redis-cli` would print it.
fn show_reply(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(bytes) => format!("{:?}", String::from_utf8_lossy(bytes)),
        Reply::Nil => "nil".to_string(),
        Reply::Integer(n) => format!("(integer) {n}"),
        Reply::Ok => "OK".to_string(),
        other => format!("{other:?}"),
    }
}

fn show(op: &TimedOp) -> String {
    format!(
        "client {} request {} `{}` via {} [{} ms, {} ms]",
        op.client,
        op.request,
        describe(&op.command),
        op.node,
        op.call_ms,
        op.return_ms
    )
}

/// The operations on `key` with their points, and the model's states of `key` along the log.
fn key_trace(
    history: &TimedHistory,
    key: &[u8],
    points: &BTreeMap<usize, u64>,
    replay: &Replay,
) -> String {
    let mut out = format!("operations on {}:\n", String::from_utf8_lossy(key));
    let mut ops: Vec<(usize, &TimedOp)> = history
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| op.key() == key)
        .collect();
    ops.sort_by_key(|(k, op)| (op.call_ms, *k));
    for (k, op) in ops.iter().rev().take(30).rev() {
        let point = points
            .get(k)
            .map_or("unplaced".to_string(), |at| format!("at {at}"));
        let outcome = match &op.outcome {
            TimedOutcome::Replied(reply) => show_reply(reply),
            TimedOutcome::NotApplied => "not applied".to_string(),
            TimedOutcome::Unknown => "unknown".to_string(),
        };
        let _ = writeln!(out, "  {} -> {outcome} ({point})", show(op));
    }
    let _ = writeln!(
        out,
        "model of {} along the log (index: log time, state):",
        String::from_utf8_lossy(key)
    );
    if let Some(states) = replay.states.get(key) {
        for (index, state) in states.iter().rev().take(30).rev() {
            let state = match state {
                None => "absent".to_string(),
                Some(s) => format!(
                    "{:?} deadline {} revision {}",
                    String::from_utf8_lossy(&s.value),
                    s.deadline_ms
                        .map_or("none".to_string(), |d| format!("{d} ms")),
                    s.revision
                ),
            };
            let _ = writeln!(out, "  {index}: {} ms, {state}", replay.log_time_at(*index));
        }
    }
    out
}

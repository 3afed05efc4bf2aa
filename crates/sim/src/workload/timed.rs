//! The timed operations: what clients ask of the keys with short TTLs and of the lock, the
//! lock recipe's steps (docs/COORDINATION.md: acquire with `SET lock token NX PX`, then
//! `REVISION lock`, then `GET lock` — the revision is the holder's fencing token if the value
//! is still its token), and how their replies are recorded for [`crate::timed_check`].

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use skiff_kv::transaction::{Transaction, Watched};
use skiff_kv::{
    Command, Deadline, ExpireCondition, Expiry, Reply, SetCondition, SetOptions, TimeUnit,
};
use skiff_node::RequestId;

use super::{promises_not_applied, InFlight, Workload};
use crate::cluster::Cluster;
use crate::timed_check::{Fence, TimedOp, TimedOutcome};

/// How many keys with short TTLs clients share.
const TTL_KEYS: usize = 2;

/// The lock's key.
const LOCK_KEY: &[u8] = b"lock";

/// The share of timed operations that try to take the lock.
const ACQUIRE_PROBABILITY: f64 = 0.25;

/// Where a client is in the lock recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LockStep {
    /// It holds no lock (or gave up on it).
    Free,
    /// `SET lock token NX PX` answered OK; next, `REVISION lock`.
    Acquired {
        /// The acquiring request.
        acquire: RequestId,
        /// Its token.
        token: String,
    },
    /// `REVISION lock` answered; next, `GET lock` confirms the token.
    Revised {
        /// The acquiring request.
        acquire: RequestId,
        /// Its token.
        token: String,
        /// The revision read.
        revision: i64,
    },
}

/// The share of operations on a key with a short TTL that are transactions.
const TRANSACTION_PROBABILITY: f64 = 0.1;

/// The next timed command of a client at `lock`; `value` is unique to the operation and
/// `clock_ms` the client's own clock (Unix milliseconds), for absolute deadlines;
/// `revisions_seen` the last `REVISION` answers, which a guarded transaction watches.
pub(super) fn timed_command(
    lock: &LockStep,
    revisions_seen: &BTreeMap<Vec<u8>, Option<u64>>,
    value: String,
    clock_ms: u64,
    rng: &mut ChaCha8Rng,
) -> Command {
    let key = LOCK_KEY.to_vec();
    match lock {
        LockStep::Acquired { .. } => return Command::Revision { key },
        LockStep::Revised { .. } => return Command::Get { key },
        LockStep::Free => {}
    }
    if rng.gen_bool(ACQUIRE_PROBABILITY) {
        return Command::SetWith {
            key,
            value: value.into_bytes(),
            options: SetOptions {
                condition: SetCondition::IfAbsent,
                expiry: Expiry::Until(Deadline::In(rng.gen_range(50..800))),
                get: false,
            },
        };
    }
    let key = format!("t{}", rng.gen_range(0..TTL_KEYS)).into_bytes();
    if rng.gen_bool(TRANSACTION_PROBABILITY) {
        return transaction(key, revisions_seen, value.into_bytes(), clock_ms, rng);
    }
    ttl_command(key, value.into_bytes(), clock_ms, rng)
}

/// `MULTI … EXEC` on one key with a short TTL, applied at one entry: a `SET … PX` then one
/// or two more timed commands; half the time guarded by `WATCH` at the last revision any
/// client read (a check-and-set that aborts, nil, if the key was written since).
fn transaction(
    key: Vec<u8>,
    revisions_seen: &BTreeMap<Vec<u8>, Option<u64>>,
    value: Vec<u8>,
    clock_ms: u64,
    rng: &mut ChaCha8Rng,
) -> Command {
    let mut commands = vec![Command::SetWith {
        key: key.clone(),
        value: value.clone(),
        options: SetOptions {
            condition: SetCondition::Always,
            expiry: Expiry::Until(Deadline::In(rng.gen_range(20..1_500))),
            get: rng.gen_bool(0.3),
        },
    }];
    for _ in 0..rng.gen_range(1..=2) {
        commands.push(ttl_command(key.clone(), value.clone(), clock_ms, rng));
    }
    let watched = match revisions_seen.get(&key) {
        Some(&revision) if rng.gen_bool(0.5) => vec![Watched { key, revision }],
        _ => Vec::new(),
    };
    Command::Exec(Transaction { watched, commands })
}

/// An operation on a key with a short TTL: it expires within the run, by log time.
fn ttl_command(key: Vec<u8>, value: Vec<u8>, clock_ms: u64, rng: &mut ChaCha8Rng) -> Command {
    let conditions = [
        SetCondition::Always,
        SetCondition::IfAbsent,
        SetCondition::IfPresent,
    ];
    let expire_conditions = [
        ExpireCondition::Always,
        ExpireCondition::IfNone,
        ExpireCondition::IfSome,
        ExpireCondition::IfLater,
        ExpireCondition::IfEarlier,
        ExpireCondition::IfSomeAndEarlier,
    ];
    let short = |rng: &mut ChaCha8Rng| Deadline::In(rng.gen_range(20..1_500));
    match rng.gen_range(0..12) {
        0..=3 => Command::SetWith {
            key,
            value,
            options: SetOptions {
                condition: conditions[rng.gen_range(0..conditions.len())],
                expiry: Expiry::Until(short(rng)),
                get: rng.gen_bool(0.3),
            },
        },
        4 | 5 => Command::Expire {
            key,
            // PEXPIREAT by the client's clock, which the leaders' stamps need not agree with.
            deadline: if rng.gen_bool(0.25) {
                let clock_ms = i64::try_from(clock_ms).unwrap_or(i64::MAX);
                Deadline::At(clock_ms.saturating_add(rng.gen_range(-100..1_500)))
            } else {
                Deadline::In(rng.gen_range(-100..1_500))
            },
            condition: expire_conditions[rng.gen_range(0..expire_conditions.len())],
        },
        6 => Command::GetEx {
            key,
            expiry: Expiry::Until(short(rng)),
        },
        7 => Command::Persist { key },
        8 => Command::Ttl {
            key,
            unit: if rng.gen_bool(0.8) {
                TimeUnit::Milliseconds
            } else {
                TimeUnit::Seconds
            },
        },
        9 => Command::Revision { key },
        _ => Command::Get { key },
    }
}

/// What a timed operation's reply says (`None`: the node was unreachable, so nothing was).
fn timed_outcome(command: &Command, reply: Option<&Reply>, at_once: bool) -> TimedOutcome {
    match reply {
        None => TimedOutcome::NotApplied,
        // A refused read was not served; a write's error promises nothing unless it says so.
        Some(Reply::Error(text))
            if command.is_read_only() || promises_not_applied(text, at_once) =>
        {
            TimedOutcome::NotApplied
        }
        Some(Reply::Error(_)) => TimedOutcome::Unknown,
        Some(reply) => TimedOutcome::Replied(reply.clone()),
    }
}

impl Workload {
    /// Records a timed operation as its reply says, and moves its client through the lock
    /// recipe.
    pub(super) fn complete_timed(
        &mut self,
        k: usize,
        in_flight: InFlight,
        reply: Option<&Reply>,
        at_once: bool,
        cluster: &mut Cluster,
        now_ms: u64,
    ) {
        let command = in_flight.timed.clone().expect("a timed operation");
        let outcome = timed_outcome(&command, reply, at_once);
        if outcome == TimedOutcome::Unknown {
            self.abandon(k, in_flight, cluster, now_ms);
            return;
        }
        self.advance_lock(k, in_flight.request, &command, &outcome);
        if let (Command::Revision { key }, TimedOutcome::Replied(reply)) = (&command, &outcome) {
            let revision = match reply {
                Reply::Integer(n) => u64::try_from(*n).ok(),
                _ => None,
            };
            self.revisions_seen.insert(key.clone(), revision);
        }
        let client = &mut self.clients[k];
        if matches!(outcome, TimedOutcome::Replied(_)) {
            client.node_hint = Some(in_flight.node);
        } else {
            client.node_hint = None;
            client.idle_until_ms = now_ms + 10;
        }
        self.record_timed(k, &in_flight, command, outcome, now_ms);
    }

    /// Appends a timed operation to the timed history.
    pub(super) fn record_timed(
        &mut self,
        k: usize,
        in_flight: &InFlight,
        command: Command,
        outcome: TimedOutcome,
        now_ms: u64,
    ) {
        self.timed.ops.push(TimedOp {
            client: self.clients[k].id,
            request: in_flight.request,
            node: in_flight.node,
            command,
            call_ms: in_flight.started_ms,
            return_ms: now_ms,
            outcome,
        });
    }

    /// The lock recipe's next step after `command` ended with `outcome`.
    fn advance_lock(
        &mut self,
        k: usize,
        request: RequestId,
        command: &Command,
        outcome: &TimedOutcome,
    ) {
        let client = &mut self.clients[k];
        let step = std::mem::replace(&mut client.lock, LockStep::Free);
        client.lock = match (step, command, outcome) {
            (
                LockStep::Free,
                Command::SetWith { key, value, .. },
                TimedOutcome::Replied(Reply::Ok),
            ) if key == LOCK_KEY => LockStep::Acquired {
                acquire: request,
                token: String::from_utf8_lossy(value).into_owned(),
            },
            (
                LockStep::Acquired { acquire, token },
                Command::Revision { .. },
                TimedOutcome::Replied(Reply::Integer(revision)),
            ) => LockStep::Revised {
                acquire,
                token,
                revision: *revision,
            },
            (
                LockStep::Revised {
                    acquire,
                    token,
                    revision,
                },
                Command::Get { .. },
                TimedOutcome::Replied(Reply::Bulk(value)),
            ) if value == token.as_bytes() => {
                self.timed.fences.push(Fence {
                    acquire,
                    token,
                    revision,
                });
                LockStep::Free
            }
            _ => LockStep::Free,
        };
    }
}

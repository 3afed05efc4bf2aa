//! The timed check (TTLs at log time, revisions, fencing tokens) on hand-made histories, one
//! scenario per property, and against a brute-force twin on small random ones.

use proptest::prelude::*;
use skiff_kv::{Command, Deadline, ExpireCondition, Expiry, Reply, SetCondition, SetOptions};
use skiff_raft::{NodeId, Term};
use skiff_sim::ledger::{Ledger, LedgerEntry};
use skiff_sim::timed_check::{check, Fence, TimedHistory, TimedOp, TimedOutcome};

const KEY: &[u8] = b"t";

fn set_px(value: &str, ms: i64) -> Command {
    Command::SetWith {
        key: KEY.to_vec(),
        value: value.as_bytes().to_vec(),
        options: SetOptions {
            condition: SetCondition::Always,
            expiry: Expiry::Until(Deadline::In(ms)),
            get: false,
        },
    }
}

fn pexpire(ms: i64) -> Command {
    Command::Expire {
        key: KEY.to_vec(),
        deadline: Deadline::In(ms),
        condition: ExpireCondition::Always,
    }
}

fn persist() -> Command {
    Command::Persist { key: KEY.to_vec() }
}

fn get() -> Command {
    Command::Get { key: KEY.to_vec() }
}

fn pttl() -> Command {
    Command::Ttl {
        key: KEY.to_vec(),
        unit: skiff_kv::TimeUnit::Milliseconds,
    }
}

fn revision() -> Command {
    Command::Revision { key: KEY.to_vec() }
}

/// A ledger of stamped entries, one per `(stamp, command)`, from index 1, all in term 1;
/// entry `i` is the proposal of request `i`.
fn ledger(entries: &[(u64, Option<Command>)]) -> Ledger {
    let mut ledger = Ledger::default();
    for (k, (stamp, command)) in entries.iter().enumerate() {
        let index = k as u64 + 1;
        ledger.insert(
            index,
            LedgerEntry {
                watched: Vec::new(),
                term: Term(1),
                log_time_ms: Some(*stamp),
                commands: command.iter().cloned().collect(),
                session: None,
                session_refused: false,
            },
        );
        ledger.proposed(index, index, Term(1));
    }
    ledger
}

fn op(request: u64, command: Command, call_ms: u64, return_ms: u64, reply: Reply) -> TimedOp {
    TimedOp {
        client: request,
        request,
        node: NodeId(1),
        command,
        call_ms,
        return_ms,
        outcome: TimedOutcome::Replied(reply),
    }
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(text.as_bytes().to_vec())
}

/// `SET t a PX 100` at log time 1000 (index 1), then a time entry at 1100 (index 2): the key
/// lives in log time [1000, 1100).
fn expiring_key() -> Ledger {
    ledger(&[(1000, Some(set_px("a", 100))), (1100, None)])
}

#[test]
fn a_key_read_before_and_after_its_deadline_passes() {
    let mut ledger = expiring_key();
    ledger.answered(10, 1);
    ledger.answered(11, 2);
    let history = TimedHistory {
        ops: vec![
            op(1, set_px("a", 100), 0, 10, Reply::Ok),
            op(10, get(), 11, 20, bulk("a")),
            op(11, get(), 21, 30, Reply::Nil),
        ],
        fences: Vec::new(),
    };
    let summary = check(&history, &ledger).expect("linearizable");
    assert_eq!(
        (summary.writes, summary.reads, summary.expired_reads),
        (1, 2, 1)
    );
}

#[test]
fn a_key_reported_expired_before_its_deadline_in_log_time_is_caught() {
    // The read was answered by a node that had applied only index 1 (log time 1000 < 1100).
    let mut ledger = expiring_key();
    ledger.answered(10, 1);
    let history = TimedHistory {
        ops: vec![
            op(1, set_px("a", 100), 0, 10, Reply::Ok),
            op(10, get(), 11, 20, Reply::Nil),
        ],
        fences: Vec::new(),
    };
    let failure = check(&history, &ledger).expect_err("expired early");
    assert_eq!(
        failure.property,
        "No key expires before its deadline in log time"
    );
    assert!(failure.detail.contains("GET t"), "{}", failure.detail);
}

#[test]
fn a_key_that_comes_back_after_a_read_saw_it_expired_is_caught() {
    let mut ledger = expiring_key();
    ledger.answered(10, 2);
    ledger.answered(11, 2);
    let history = TimedHistory {
        ops: vec![
            op(1, set_px("a", 100), 0, 10, Reply::Ok),
            op(10, get(), 11, 20, Reply::Nil),
            op(11, get(), 21, 30, bulk("a")),
        ],
        fences: Vec::new(),
    };
    let failure = check(&history, &ledger).expect_err("the key came back");
    assert_eq!(failure.property, "No expired key comes back");
}

#[test]
fn pttl_may_not_report_more_time_than_log_time_leaves() {
    let mut ledger = expiring_key();
    ledger.answered(10, 1);
    let within = TimedHistory {
        ops: vec![
            op(1, set_px("a", 100), 0, 10, Reply::Ok),
            op(10, pttl(), 11, 20, Reply::Integer(60)),
        ],
        fences: Vec::new(),
    };
    check(&within, &ledger).expect("60 ms of 100 left: a node clock ahead of log time");
    let mut beyond = within.clone();
    beyond.ops[1].outcome = TimedOutcome::Replied(Reply::Integer(101));
    check(&beyond, &ledger).expect_err("more than the 100 ms log time leaves");
}

#[test]
fn revision_reads_return_the_index_of_the_latest_write() {
    // SET at 1, PERSIST at 2 (a write: revision 2), then a read.
    let mut ledger = ledger(&[(1000, Some(set_px("a", 500))), (1010, Some(persist()))]);
    ledger.answered(10, 2);
    let history = |answer: i64| TimedHistory {
        ops: vec![
            op(1, set_px("a", 500), 0, 10, Reply::Ok),
            op(2, persist(), 11, 20, Reply::Integer(1)),
            op(10, revision(), 21, 30, Reply::Integer(answer)),
        ],
        fences: Vec::new(),
    };
    check(&history(2), &ledger).expect("revision of the last write");
    let failure = check(&history(1), &ledger).expect_err("a revision behind the PERSIST");
    assert_eq!(failure.property, "Linearizability (log time)");
}

#[test]
fn a_write_reply_the_model_would_not_give_is_caught() {
    // PEXPIRE on a key that expired at index 2 must answer 0.
    let ledger = ledger(&[
        (1000, Some(set_px("a", 100))),
        (1100, None),
        (1150, Some(pexpire(500))),
    ]);
    let history = TimedHistory {
        ops: vec![
            op(1, set_px("a", 100), 0, 10, Reply::Ok),
            op(3, pexpire(500), 20, 30, Reply::Integer(1)),
        ],
        fences: Vec::new(),
    };
    let failure = check(&history, &ledger).expect_err("the key had expired");
    assert!(
        failure.detail.contains("the model answers (integer) 0"),
        "{}",
        failure.detail
    );
}

#[test]
fn log_time_going_back_is_caught() {
    let ledger = ledger(&[(1000, Some(set_px("a", 100))), (900, None)]);
    let history = TimedHistory {
        ops: vec![op(1, set_px("a", 100), 0, 10, Reply::Ok)],
        fences: Vec::new(),
    };
    let failure = check(&history, &ledger).expect_err("a stamp went back");
    assert!(failure.property.starts_with("Log time"));
}

#[test]
fn a_refused_write_that_was_applied_is_caught() {
    let ledger = expiring_key();
    let mut refused = op(1, set_px("a", 100), 0, 10, Reply::Ok);
    refused.outcome = TimedOutcome::NotApplied;
    let history = TimedHistory {
        ops: vec![refused],
        fences: Vec::new(),
    };
    let failure = check(&history, &ledger).expect_err("it committed at 1");
    assert_eq!(failure.property, "Refused writes are not applied");
}

#[test]
fn fencing_tokens_of_successive_acquisitions_must_increase() {
    let lock = |value: &str| Command::SetWith {
        key: KEY.to_vec(),
        value: value.as_bytes().to_vec(),
        options: SetOptions {
            condition: SetCondition::IfAbsent,
            expiry: Expiry::Until(Deadline::In(100)),
            get: false,
        },
    };
    let ledger = ledger(&[
        (1000, Some(lock("a"))),
        (1100, None),
        (1150, Some(lock("b"))),
    ]);
    let history = |tokens: [i64; 2]| TimedHistory {
        ops: vec![
            op(1, lock("a"), 0, 10, Reply::Ok),
            op(3, lock("b"), 20, 30, Reply::Ok),
        ],
        fences: vec![
            Fence {
                acquire: 1,
                token: "a".into(),
                revision: tokens[0],
            },
            Fence {
                acquire: 3,
                token: "b".into(),
                revision: tokens[1],
            },
        ],
    };
    assert_eq!(
        check(&history([1, 3]), &ledger).expect("increasing").fences,
        2
    );
    let failure = check(&history([3, 3]), &ledger).expect_err("two holders, one token");
    assert_eq!(failure.property, "Fencing tokens increase");
    // Increasing, but b's token is not the index of b's acquisition (3).
    let failure = check(&history([1, 4]), &ledger).expect_err("a token of no acquisition");
    assert!(
        failure.detail.contains("not its acquisition's index"),
        "{}",
        failure.detail
    );
}

// The twin: a naive model and a brute-force placement of every read at every index.

/// The key's naive state: value, deadline, revision.
type Naive = Option<(String, Option<u64>, u64)>;

/// Replays entries 1..=upto naively; returns the state and log time after, and the reply
/// of the command at `upto`.
fn naive(entries: &[(u64, Option<Command>)], upto: usize) -> (Naive, u64, Option<Reply>) {
    let (mut state, mut now, mut reply): (Naive, u64, Option<Reply>) = (None, 0, None);
    for (k, (stamp, command)) in entries.iter().take(upto).enumerate() {
        let index = k as u64 + 1;
        now = *stamp;
        if matches!(state, Some((_, Some(deadline), _)) if deadline <= now) {
            state = None;
        }
        reply = match command {
            None => None,
            Some(Command::SetWith { value, options, .. }) => {
                let Expiry::Until(Deadline::In(ms)) = options.expiry else {
                    unreachable!("the twin sets PX only")
                };
                let value = String::from_utf8(value.clone()).unwrap();
                state = Some((value, Some(now + ms as u64), index));
                Some(Reply::Ok)
            }
            Some(Command::Expire {
                deadline: Deadline::In(ms),
                ..
            }) => match state.take() {
                None => Some(Reply::Integer(0)),
                Some((value, _, _)) => {
                    let at = now as i64 + ms;
                    if at > now as i64 {
                        state = Some((value, Some(at as u64), index));
                    }
                    Some(Reply::Integer(1))
                }
            },
            Some(Command::Persist { .. }) => match state.take() {
                Some((value, Some(_), _)) => {
                    state = Some((value, None, index));
                    Some(Reply::Integer(1))
                }
                other => {
                    state = other;
                    Some(Reply::Integer(0))
                }
            },
            Some(other) => unreachable!("the twin does not write {other:?}"),
        };
    }
    (state, now, reply)
}

fn naive_read_allows(command: &Command, state: &Naive, now: u64, reply: &Reply) -> bool {
    match command {
        Command::Get { .. } => *reply == state.as_ref().map_or(Reply::Nil, |(v, _, _)| bulk(v)),
        Command::Revision { .. } => {
            *reply
                == state
                    .as_ref()
                    .map_or(Reply::Nil, |(_, _, r)| Reply::Integer(*r as i64))
        }
        _ => match (state, reply) {
            (None, Reply::Integer(n)) => *n == -2,
            (Some((_, None, _)), Reply::Integer(n)) => *n == -1,
            (Some((_, Some(d), _)), Reply::Integer(n)) => *n >= 1 && *n <= (*d - now) as i64,
            _ => false,
        },
    }
}

/// Every placement of the reads on indices 0..=n that real time and the answering nodes
/// allow, tried one by one.
fn brute_force(
    entries: &[(u64, Option<Command>)],
    writes: &[TimedOp],
    reads: &[(TimedOp, u64)],
) -> bool {
    let n = entries.len();
    if entries.windows(2).any(|w| w[1].0 < w[0].0) {
        return false;
    }
    let write_at = |w: &TimedOp| w.request as usize;
    for w in writes {
        if let TimedOutcome::Replied(reply) = &w.outcome {
            if naive(entries, write_at(w)).2.as_ref() != Some(reply) {
                return false;
            }
        }
    }
    for a in writes {
        for b in writes {
            if a.return_ms < b.call_ms && write_at(a) >= write_at(b) {
                return false;
            }
        }
    }
    let mut points = vec![0usize; reads.len()];
    loop {
        let fits = reads.iter().enumerate().all(|(r, (read, answered))| {
            let p = points[r];
            let TimedOutcome::Replied(reply) = &read.outcome else {
                return true;
            };
            let (state, now, _) = naive(entries, p);
            p as u64 <= *answered
                && naive_read_allows(&read.command, &state, now, reply)
                && writes.iter().all(|w| {
                    (w.return_ms >= read.call_ms || write_at(w) <= p)
                        && (read.return_ms >= w.call_ms || p < write_at(w))
                })
                && reads
                    .iter()
                    .enumerate()
                    .all(|(o, (other, _))| other.return_ms >= read.call_ms || points[o] <= p)
        });
        if fits {
            return true;
        }
        // The next placement, as a number in base n + 1.
        let mut digit = 0;
        loop {
            if digit == points.len() {
                return false;
            }
            points[digit] += 1;
            if points[digit] <= n {
                break;
            }
            points[digit] = 0;
            digit += 1;
        }
    }
}

/// Entries of the ledger, writes, and reads with the index their node had applied.
type Case = (
    Vec<(u64, Option<Command>)>,
    Vec<TimedOp>,
    Vec<(TimedOp, u64)>,
);

/// A small random history: up to five entries (writes or time entries), their writes'
/// replies mostly right, and up to three reads mostly answered from some index.
fn arbitrary_case() -> impl Strategy<Value = Case> {
    let entry = (0u64..200, 0u8..5, 20i64..300);
    let right = || prop::bool::weighted(0.9);
    let read = (
        0u8..3,
        0u64..6,
        0u64..6,
        0u64..120,
        0u64..60,
        right(),
        -3i64..300,
    );
    (
        prop::collection::vec(entry, 1..=5),
        prop::collection::vec(read, 0..=3),
        prop::collection::vec((0u64..120, 0u64..60, right()), 5),
    )
        .prop_map(|(raw_entries, raw_reads, write_times)| {
            let mut stamp = 1000;
            let mut entries = Vec::new();
            for (k, (step, kind, ms)) in raw_entries.into_iter().enumerate() {
                stamp += step;
                let command = match kind {
                    0 | 1 => Some(set_px(&format!("v{k}"), ms)),
                    2 => Some(pexpire(ms - 60)),
                    3 => Some(persist()),
                    _ => None,
                };
                entries.push((stamp, command));
            }
            let mut writes = Vec::new();
            for (k, (_, command)) in entries.iter().enumerate() {
                let Some(command) = command else { continue };
                let (call, length, right) = write_times[k];
                let truth = naive(&entries, k + 1).2.expect("a write answers");
                let reply = if right { truth } else { Reply::Integer(7) };
                writes.push(op(
                    k as u64 + 1,
                    command.clone(),
                    call,
                    call + length,
                    reply,
                ));
            }
            let reads = raw_reads
                .into_iter()
                .enumerate()
                .map(|(r, (kind, from, answered, call, length, right, noise))| {
                    let command = [get(), pttl(), revision()][kind as usize].clone();
                    let from = (from as usize).min(entries.len());
                    let (state, now, _) = naive(&entries, from);
                    let reply = match (&command, right) {
                        (_, false) => Reply::Integer(noise),
                        (Command::Get { .. }, true) => {
                            state.as_ref().map_or(Reply::Nil, |(v, _, _)| bulk(v))
                        }
                        (Command::Revision { .. }, true) => state
                            .as_ref()
                            .map_or(Reply::Nil, |(_, _, r)| Reply::Integer(*r as i64)),
                        (_, true) => Reply::Integer(match &state {
                            None => -2,
                            Some((_, None, _)) => -1,
                            Some((_, Some(d), _)) => (*d - now) as i64,
                        }),
                    };
                    let read = op(100 + r as u64, command, call, call + length, reply);
                    (read, answered.min(entries.len() as u64))
                })
                .collect();
            (entries, writes, reads)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn timed_check_agrees_with_brute_force((entries, writes, reads) in arbitrary_case()) {
        let mut ledger = ledger(&entries);
        for (read, answered) in &reads {
            ledger.answered(read.request, *answered);
        }
        let history = TimedHistory {
            ops: writes.iter().cloned().chain(reads.iter().map(|(r, _)| r.clone())).collect(),
            fences: Vec::new(),
        };
        let expected = brute_force(&entries, &writes, &reads);
        let verdict = check(&history, &ledger);
        prop_assert_eq!(verdict.is_ok(), expected, "entries {:?}\nwrites {:?}\nreads {:?}\n{:?}", entries, writes, reads, verdict);
    }
}

/// The hand-made ledgers' one node: its clock reads exactly the simulated time (epoch 0).
fn with_clock(mut ledger: Ledger) -> Ledger {
    ledger.set_clock(NodeId(1), 0, 0);
    ledger
}

#[test]
fn a_stamp_ahead_of_its_leaders_clock_is_caught() {
    // Entry 2's leader read 1050 when it appended; the stamp before was 1000: it must stamp
    // 1050, not 1100. Then the same with a stamp behind the leader's clock (frozen time).
    let mut ahead = with_clock(expiring_key());
    ahead.appended(1, Term(1), 1000);
    ahead.appended(2, Term(1), 1050);
    let history = TimedHistory::default();
    let failure = check(&history, &ahead).expect_err("stamped ahead of the clock");
    assert_eq!(failure.property, "Log time follows the leaders' clocks");
    assert!(failure.detail.contains("entry 2"), "{}", failure.detail);
    let mut frozen = with_clock(expiring_key());
    frozen.appended(2, Term(1), 1200);
    let failure = check(&history, &frozen).expect_err("stamped behind the clock");
    assert!(
        failure.detail.contains("behind the clock"),
        "{}",
        failure.detail
    );
    let mut right = with_clock(expiring_key());
    right.appended(1, Term(1), 1000);
    right.appended(2, Term(1), 1100);
    assert_eq!(check(&history, &right).expect("as the rule says").stamps, 2);
    // A leader whose clock is behind the last stamp keeps that stamp (log time waits).
    let mut behind = with_clock(expiring_key());
    behind.appended(2, Term(1), 900);
    let failure = check(&history, &behind).expect_err("1100 is ahead of both 900 and 1000");
    assert!(
        failure.detail.contains("ahead of both"),
        "{}",
        failure.detail
    );
}

#[test]
fn pttl_is_pinned_from_below_by_the_serving_nodes_clock() {
    // SET t a PX 100 at log time 1000 (deadline 1100); node 1's clock reads 1010..1020
    // while the PTTL is in flight, at index 1: the answer is 80..90 ms, not 1 ms.
    let mut ledger = with_clock(expiring_key());
    ledger.answered(10, 1);
    let history = |answer| TimedHistory {
        ops: vec![
            op(1, set_px("a", 100), 0, 10, Reply::Ok),
            op(10, pttl(), 1010, 1020, Reply::Integer(answer)),
        ],
        fences: Vec::new(),
    };
    check(&history(85), &ledger).expect("within the clock's bounds");
    let failure = check(&history(1), &ledger).expect_err("a TTL that shrank to 1 ms");
    assert_eq!(
        failure.property,
        "TTL counts down from log time and the serving node's clock"
    );
    check(&history(95), &ledger).expect_err("more than the clock leaves");
}

#[test]
fn a_read_begun_after_an_expiring_entry_committed_may_not_see_the_key() {
    // Index 2, the time entry at 1100, was first applied at 50 ms; a GET sent at 60 ms by a
    // follower that had applied only index 1 returns the value: stale, although no timed
    // operation completed after index 2.
    let mut ledger = expiring_key();
    ledger.committed_by(2, 50);
    ledger.answered(10, 1);
    let history = TimedHistory {
        ops: vec![
            op(1, set_px("a", 100), 0, 10, Reply::Ok),
            op(10, get(), 60, 70, bulk("a")),
        ],
        fences: Vec::new(),
    };
    let failure = check(&history, &ledger).expect_err("a stale read");
    assert_eq!(failure.property, "No expired key comes back");
    // Sent before index 2 committed, the same read is fine.
    let mut early = history.clone();
    early.ops[1].call_ms = 40;
    check(&early, &ledger).expect("concurrent with the time entry");
}

#[test]
fn a_key_due_long_ago_must_be_gone_once_the_cluster_healed() {
    // SET t a PX 100 at 1000 and nothing since: by 3000 ms on every clock, a time entry
    // should have expired it.
    let mut ledger = with_clock(ledger(&[(1000, Some(set_px("a", 100)))]));
    let history = TimedHistory {
        ops: vec![op(1, set_px("a", 100), 0, 10, Reply::Ok)],
        fences: Vec::new(),
    };
    ledger.close(1500);
    check(&history, &ledger).expect("still within the slack");
    ledger.close(3000);
    let failure = check(&history, &ledger).expect_err("no time entry");
    assert_eq!(failure.property, "Idle keys expire");
}

#[test]
fn a_watched_transaction_applies_only_if_the_key_kept_its_revision() {
    // SET t a at 1 (revision 1), then EXEC of `SET t b` watching t at revision 1: applied
    // at 2 if nothing wrote t in between; aborted (nil) if a PERSIST at 2 moved it first.
    use skiff_kv::transaction::{Transaction, Watched};
    let set_b = Command::Set {
        key: KEY.to_vec(),
        value: b"b".to_vec(),
        condition: SetCondition::Always,
    };
    let exec = Command::Exec(Transaction {
        watched: vec![Watched {
            key: KEY.to_vec(),
            revision: Some(1),
        }],
        commands: vec![set_b.clone()],
    });
    let ledger_with = |between: Option<Command>| {
        let mut commands: Vec<(u64, Option<Command>)> = vec![(1000, Some(set_px("a", 500)))];
        commands.extend(between.map(|c| (1010, Some(c))));
        let mut ledger = ledger(&commands);
        let index = commands.len() as u64 + 1;
        ledger.insert(
            index,
            LedgerEntry {
                term: Term(1),
                log_time_ms: Some(1020),
                commands: vec![set_b.clone()],
                session: None,
                session_refused: false,
                watched: vec![Watched {
                    key: KEY.to_vec(),
                    revision: Some(1),
                }],
            },
        );
        ledger.proposed(9, index, Term(1));
        ledger
    };
    let history = |reply: Reply| TimedHistory {
        ops: vec![
            op(1, set_px("a", 500), 0, 10, Reply::Ok),
            op(9, exec.clone(), 20, 30, reply),
        ],
        fences: Vec::new(),
    };
    let applied = ledger_with(None);
    check(&history(Reply::Array(vec![Reply::Ok])), &applied).expect("nothing moved t");
    check(&history(Reply::NilArray), &applied).expect_err("EXEC must have run");
    let moved = ledger_with(Some(persist()));
    check(&history(Reply::NilArray), &moved).expect("t moved: aborted");
    let failure =
        check(&history(Reply::Array(vec![Reply::Ok])), &moved).expect_err("ran after a change");
    assert_eq!(failure.property, "Linearizability (log time)");
}

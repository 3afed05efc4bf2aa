//! Client sessions: exactly-once writes, stale and unknown requests, and bounded, log-driven
//! expiry and eviction. Reference: thesis §6.3.

mod common;

use common::*;
use skiff_kv::reply::errors;
use skiff_kv::{Command, KvConfig, Reply, SessionRequest, StateMachine};

/// retried_write_applies_once — exactly-once through client sessions (thesis §6.3), also
/// across a snapshot: a write committed twice (the client retried after losing the reply)
/// is applied once and both attempts get the same reply, including when the retry reaches a
/// replica restored from a snapshot taken between the two.
/// Reference: thesis §6.3.
#[test]
fn retried_write_applies_once() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply_session(1, 1, incr("n")), Reply::Integer(1));
    assert_eq!(kv.apply_session(1, 1, incr("n")), Reply::Integer(1));
    assert_eq!(kv.read(get("n")), bulk("1"));

    assert_eq!(kv.apply_session(1, 2, incr("n")), Reply::Integer(2));
    // Snapshot between the first attempt and the retry; the retry reaches the restored copy.
    let snapshot = kv.machine.snapshot();
    let mut restored = Kv {
        machine: StateMachine::restore(KvConfig::default(), &snapshot).expect("restore"),
        next_index: kv.next_index,
    };
    assert_eq!(restored.apply_session(1, 2, incr("n")), Reply::Integer(2));
    assert_eq!(restored.read(get("n")), bulk("2"));
    assert_eq!(restored.apply_session(1, 3, incr("n")), Reply::Integer(3));
    assert_eq!(restored.read(get("n")), bulk("3"));
}

/// A retried write that was refused is refused again with the same reply, even if the state
/// has changed so that it would now succeed: the reply is remembered, not recomputed.
/// Reference: thesis §6.3.
#[test]
fn retried_write_gets_remembered_reply_not_a_new_one() {
    let mut kv = Kv::new();
    kv.apply(set("k", "text"));
    assert_eq!(
        kv.apply_session(9, 1, incr("k")),
        Reply::error(errors::NOT_AN_INTEGER)
    );
    kv.apply(set("k", "5"));
    assert_eq!(
        kv.apply_session(9, 1, incr("k")),
        Reply::error(errors::NOT_AN_INTEGER)
    );
    assert_eq!(kv.read(get("k")), bulk("5"));

    assert_eq!(kv.apply_session(9, 2, set_nx("fresh", "a")), Reply::Ok);
    assert_eq!(kv.apply_session(9, 2, set_nx("fresh", "a")), Reply::Ok);
}

/// A request older than the client's last one is refused with "ERR stale request" and
/// applies nothing, also one the client gave up on that never was applied (5 came with
/// nothing below it awaited). Reference: thesis §6.3.
#[test]
fn stale_sequence_is_refused() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply_session(1, 1, incr("n")), Reply::Integer(1));
    assert_eq!(kv.apply_session(1, 5, incr("n")), Reply::Integer(2));
    assert_eq!(
        kv.apply_session(1, 4, incr("n")),
        Reply::error(errors::STALE_REQUEST)
    );
    assert_eq!(
        kv.apply_session(1, 1, incr("n")),
        Reply::error(errors::STALE_REQUEST)
    );
    assert!(errors::STALE_REQUEST.contains("may or may not have been applied"));
    assert_eq!(kv.read(get("n")), bulk("2"));
    assert_eq!(kv.machine.session(1).map(|s| s.last_sequence()), Some(5));
}

/// Sessions of different clients are independent: the same sequence from two clients is
/// two requests.
#[test]
fn clients_have_independent_sequences() {
    let mut kv = Kv::new();
    assert_eq!(kv.apply_session(1, 1, incr("n")), Reply::Integer(1));
    assert_eq!(kv.apply_session(2, 1, incr("n")), Reply::Integer(2));
    assert_eq!(kv.machine.session_count(), 2);
}

/// A client the store does not know starts a session only with a request that waits for
/// nothing below it: one ahead of an earlier request is refused as out of order; sequence 0
/// is no request. Reference: thesis §6.3.
#[test]
fn unknown_client_starts_only_with_a_request_in_order() {
    let mut kv = Kv::new();
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(3, 2, 1))),
        Reply::error(errors::OUT_OF_ORDER)
    );
    assert_eq!(
        kv.apply_session(3, 0, incr("n")),
        Reply::error(errors::STALE_REQUEST)
    );
    assert_eq!(kv.read(get("n")), Reply::Nil);
    assert_eq!(kv.machine.session_count(), 0);
    // Sequence 7 with nothing below it awaited: an idle connection whose session was
    // forgotten writes again.
    assert_eq!(kv.apply_session(3, 7, incr("n")), Reply::Integer(1));
    assert_eq!(kv.machine.session(3).map(|s| s.last_sequence()), Some(7));
}

/// A copy of `(client_id, sequence)` its node sent again, first sent when its node knew
/// `proposed_after` committed.
fn resent_after(client_id: u64, sequence: u64, proposed_after: u64) -> SessionRequest {
    SessionRequest {
        proposed_after,
        ..resent(client_id, sequence)
    }
}

/// A peer forges a re-sent copy of an unknown client's write that claims to have been first
/// sent after its own place in the log — no node can send that (every copy sits above the
/// commit index its node knew, §5.4) — to pass for a write no earlier copy of was applied.
/// It is refused as from a forgotten session and applies nothing; the same write with an
/// honest claim applies once. Reference: thesis §6.3, §5.4.
#[test]
fn a_resent_copy_claiming_to_be_sent_after_its_own_index_is_never_a_first_write() {
    let mut kv = Kv::new();
    kv.apply(set("other", "x")); // index 1
                                 // Index 2: the copy claims it was first sent once index 2 (itself) was committed.
    assert_eq!(
        kv.apply_with(incr("n"), Some(resent_after(8, 1, 2))),
        Reply::error(errors::SESSION_EXPIRED)
    );
    // Index 3: a claim far past the log.
    assert_eq!(
        kv.apply_with(incr("n"), Some(resent_after(8, 1, u64::MAX))),
        Reply::error(errors::SESSION_EXPIRED)
    );
    assert_eq!(
        kv.read(get("n")),
        Reply::Nil,
        "a forged copy applied nothing"
    );
    // Index 4: sent when index 1 was committed, as a node would say.
    assert_eq!(
        kv.apply_with(incr("n"), Some(resent_after(8, 1, 1))),
        Reply::Integer(1)
    );
}

/// A new connection's first write was lost with a crashed leader's uncommitted tail, and its
/// node sends it again flagged as re-sent. The store never knew the client and forgot no
/// session, so no copy can have been applied: the copy starts the session and is applied
/// once, and a later copy of it hears its first reply. A pipelined first burst lost the same
/// way comes back in any order: a copy ahead of the first waits (out of order, not applied).
/// Reference: thesis §6.3, §5.4.
#[test]
fn a_never_known_clients_resent_first_write_applies_once() {
    let mut kv = Kv::new();
    kv.apply(set("other", "x")); // index 1, committed before the client's write was sent
    assert_eq!(kv.machine.sessions_forgotten_through(), 0);
    // A copy that says nothing of when it was first sent (an older request) never starts one.
    assert_eq!(
        kv.apply_with(incr("n"), Some(resent_after(3, 1, 0))),
        Reply::error(errors::SESSION_EXPIRED)
    );
    assert_eq!(
        kv.apply_with(incr("n"), Some(resent_after(3, 1, 1))),
        Reply::Integer(1)
    );
    assert_eq!(
        kv.apply_with(incr("n"), Some(resent_after(3, 1, 1))),
        Reply::Integer(1)
    );
    assert_eq!(kv.read(get("n")), bulk("1"));
    // A burst of two, both waiting for 1, both re-sent: the second arrives first.
    let burst = |sequence| SessionRequest {
        lowest_unanswered: 1,
        ..resent_after(4, sequence, 1)
    };
    assert_eq!(
        kv.apply_with(append("log", "b"), Some(burst(2))),
        Reply::error(errors::OUT_OF_ORDER)
    );
    assert_eq!(
        kv.apply_with(append("log", "a"), Some(burst(1))),
        Reply::Integer(1)
    );
    assert_eq!(
        kv.apply_with(append("log", "b"), Some(burst(2))),
        Reply::Integer(2)
    );
    assert_eq!(kv.read(get("log")), bulk("ab"));
}

/// Once the store forgot a session last active at index i, a re-sent copy of a client it
/// does not know is refused as expired when it was first sent before i was committed (a
/// copy may have been applied at i and forgotten since), and applied as a first request
/// when it was first sent after (every copy sits above i, and nothing active above i was
/// forgotten). Restoring a snapshot keeps that index, also through its own evictions.
/// Reference: thesis §6.3, §5.4.
#[test]
fn a_forgotten_sessions_resent_write_is_still_refused() {
    let config = KvConfig {
        max_sessions: 1,
        session_evict_idle_ms: 0,
        ..KvConfig::default()
    };
    let mut kv = Kv::with_config(config.clone());
    kv.apply_with(incr("a"), Some(req(1, 1))); // index 1
    kv.apply_with(incr("b"), Some(req(2, 1))); // index 2: evicts client 1
    assert_eq!(kv.machine.sessions_forgotten_through(), 1);
    // Client 1's next write, first sent before index 1 was committed: its session may hold
    // it applied and forgotten.
    assert_eq!(
        kv.apply_with(incr("a"), Some(resent_after(1, 2, 0))),
        Reply::error(errors::SESSION_EXPIRED)
    );
    assert_eq!(kv.read(get("a")), bulk("1"));
    // Client 3's first write, first sent once index 1 was committed: applied (evicting 2).
    assert_eq!(
        kv.apply_with(incr("c"), Some(resent_after(3, 1, 1))),
        Reply::Integer(1)
    );
    assert_eq!(kv.machine.sessions_forgotten_through(), 2);
    // Through a snapshot and a restore that keeps fewer sessions: still refused below.
    let snapshot = kv.machine.snapshot();
    let mut restored = Kv {
        machine: StateMachine::restore(config, &snapshot).expect("restore"),
        next_index: kv.next_index,
    };
    assert_eq!(restored.machine.sessions_forgotten_through(), 2);
    assert_eq!(
        restored.apply_with(incr("b"), Some(resent_after(2, 2, 1))),
        Reply::error(errors::SESSION_EXPIRED)
    );
    assert_eq!(restored.read(get("b")), bulk("1"));
    let one_kept = KvConfig {
        max_sessions: 1,
        ..KvConfig::default()
    };
    let mut two_sessions = Kv::new();
    two_sessions.apply_with(incr("a"), Some(req(1, 1))); // index 1
    two_sessions.apply_with(incr("b"), Some(req(2, 1))); // index 2
    let shrunk =
        StateMachine::restore(one_kept, &two_sessions.machine.snapshot()).expect("restore");
    assert_eq!(
        shrunk.sessions_forgotten_through(),
        1,
        "client 1 dropped at restore"
    );
}

/// Writes without a session are applied every time (no deduplication), and open no session.
#[test]
fn sessionless_writes_are_not_deduplicated() {
    let mut kv = Kv::new();
    kv.apply(incr("n"));
    kv.apply(incr("n"));
    assert_eq!(kv.read(get("n")), bulk("2"));
    assert_eq!(kv.machine.session_count(), 0);
}

/// A session idle for session_expiry_ms of log time is forgotten at the first entry stamped
/// that late — exactly at the boundary — however many entries came in between, after which
/// a re-sent copy of its last write is refused as expired, never applied again.
/// Reference: thesis §6.3.
#[test]
fn idle_session_expires_after_expiry_ms_of_log_time() {
    let config = KvConfig {
        session_expiry_ms: 1_000,
        session_evict_idle_ms: 500,
        ..KvConfig::default()
    };
    let mut kv = Kv::with_config(config);
    let t0 = 1_700_000_000_000;
    kv.machine.apply_at(1, Some(t0), incr("n"), Some(req(1, 1)));
    kv.machine
        .apply_at(2, Some(t0 + 100), incr("n"), Some(req(1, 2)));
    // Many entries, little log time: the session stays.
    for index in 3..60 {
        kv.machine
            .apply_at(index, Some(t0 + 200), incr("other"), None);
    }
    // 999 ms after its last request: still alive, and the retry refreshes it.
    assert_eq!(
        kv.machine
            .apply_at(60, Some(t0 + 1_099), incr("n"), Some(resent(1, 2))),
        Reply::Integer(2)
    );
    assert_eq!(
        kv.machine
            .apply_at(61, Some(t0 + 2_098), Command::DbSize, None),
        Reply::Integer(2)
    );
    assert!(kv.machine.session(1).is_some(), "999 ms idle: kept");
    // 1000 ms after the retry: expired before the request is looked at.
    assert_eq!(
        kv.machine
            .apply_at(62, Some(t0 + 2_099), incr("n"), Some(resent(1, 2))),
        Reply::error(errors::SESSION_EXPIRED)
    );
    assert!(kv.machine.session(1).is_none());
    assert_eq!(kv.read(get("n")), bulk("2"));
}

/// When max_sessions are open and even the least recently active one was active within
/// session_evict_idle_ms, a new client's first write is refused as "too many client
/// sessions", applies nothing and evicts nothing — a busy client's session is never taken
/// away by others' churn. Once the least recently active session has been idle that long,
/// the new one evicts it, and a re-sent copy of the evicted client's write is refused, not
/// applied twice. Reference: thesis §6.3.
#[test]
fn a_table_full_of_busy_sessions_refuses_a_new_one() {
    let config = KvConfig {
        max_sessions: 2,
        session_expiry_ms: 10_000,
        session_evict_idle_ms: 1_000,
        ..KvConfig::default()
    };
    let mut kv = Kv::with_config(config);
    let t0 = 1_700_000_000_000;
    kv.machine.apply_at(1, Some(t0), incr("a"), Some(req(1, 1)));
    kv.machine
        .apply_at(2, Some(t0 + 500), incr("b"), Some(req(2, 1)));
    // Client 1 was active 900 ms ago: client 3 must wait.
    let refused = kv
        .machine
        .apply_at(3, Some(t0 + 900), incr("c"), Some(req(3, 1)));
    assert_eq!(refused, Reply::error(errors::TOO_MANY_SESSIONS));
    assert!(errors::TOO_MANY_SESSIONS.starts_with("TRYAGAIN too many client sessions"));
    assert!(errors::TOO_MANY_SESSIONS.contains("not applied"));
    assert_eq!(kv.read(get("c")), Reply::Nil, "not applied");
    assert!(kv.machine.session(3).is_none());
    // Client 1 retries (its reply was lost): the reply comes back and it is active again.
    assert_eq!(
        kv.machine
            .apply_at(4, Some(t0 + 1_000), incr("a"), Some(resent(1, 1))),
        Reply::Integer(1)
    );
    // Client 2 (active at t0 + 500) is now the least recently active, 900 ms idle: refused.
    assert_eq!(
        kv.machine
            .apply_at(5, Some(t0 + 1_400), incr("c"), Some(req(3, 2))),
        Reply::error(errors::TOO_MANY_SESSIONS)
    );
    // 1000 ms idle: client 2 is evicted for client 3.
    assert_eq!(
        kv.machine
            .apply_at(6, Some(t0 + 1_500), incr("c"), Some(req(3, 2))),
        Reply::Integer(1)
    );
    let clients: Vec<u64> = kv.machine.sessions().map(|(id, _)| id).collect();
    assert_eq!(clients, vec![1, 3]);
    assert_eq!(
        kv.machine
            .apply_at(7, Some(t0 + 1_600), incr("b"), Some(resent(2, 1))),
        Reply::error(errors::SESSION_EXPIRED)
    );
    assert_eq!(kv.read(get("a")), bulk("1"));
    assert_eq!(kv.read(get("b")), bulk("1"));
    assert_eq!(kv.read(get("c")), bulk("1"));
}

/// At most max_sessions sessions are kept; with no idle bound on eviction, opening one
/// more evicts the session whose last request has the lowest log index, and a retry of the
/// evicted client is refused. Reference: thesis §6.3.
#[test]
fn session_eviction_removes_least_recently_used() {
    let config = KvConfig {
        max_sessions: 3,
        session_evict_idle_ms: 0,
        ..KvConfig::default()
    };
    let mut kv = Kv::with_config(config);
    kv.apply_session(1, 1, incr("a")); // index 1
    kv.apply_session(2, 1, incr("b")); // index 2
    kv.apply_session(3, 1, incr("c")); // index 3
    kv.apply_session(1, 1, incr("a")); // index 4: a retry, which refreshes client 1
    kv.apply_session(4, 1, incr("d")); // index 5: evicts client 2 (last active at 2)
    let clients: Vec<u64> = kv.machine.sessions().map(|(id, _)| id).collect();
    assert_eq!(clients, vec![1, 3, 4]);
    assert_eq!(
        kv.apply_with(incr("b"), Some(resent(2, 1))),
        Reply::error(errors::SESSION_EXPIRED)
    );
    // A refused request opens nothing and evicts nothing.
    assert_eq!(kv.machine.session_count(), 3);
    assert_eq!(kv.read(get("a")), bulk("1"));
}

/// Eviction is a function of the log alone: two stores fed the same entries — one of them
/// snapshotted and restored halfway — keep exactly the same sessions, and never more than
/// max_sessions. Reference: thesis §6.3.
#[test]
fn session_eviction_is_deterministic_and_bounded() {
    let config = KvConfig {
        max_sessions: 5,
        session_evict_idle_ms: 0,
        ..KvConfig::default()
    };
    let mut a = Kv::with_config(config.clone());
    let mut b = Kv::with_config(config.clone());
    let mut sequences = [0u64; 16];
    for step in 0..200u64 {
        // A fixed, irregular pattern of clients, some retrying.
        let client = (step * 7 + step / 3) % 16;
        let retry = step % 5 == 0 && sequences[client as usize] > 0;
        if !retry {
            sequences[client as usize] += 1;
        }
        let mut sequence = sequences[client as usize];
        if a.machine.session(client).is_none() {
            // A forgotten client starts a new session.
            sequences[client as usize] = 1;
            sequence = 1;
        }
        let command = incr(&format!("key{}", step % 4));
        let ra = a.apply_session(client, sequence, command.clone());
        let rb = b.apply_session(client, sequence, command);
        assert_eq!(ra, rb, "step {step}");
        assert!(a.machine.session_count() <= 5);
        if step == 100 {
            let next_index = b.next_index;
            b = Kv {
                machine: StateMachine::restore(config.clone(), &b.machine.snapshot())
                    .expect("restore"),
                next_index,
            };
        }
    }
    assert_eq!(a.machine.snapshot(), b.machine.snapshot());
    assert_eq!(a.machine, b.machine);
    assert_eq!(a.machine.session_count(), 5);
}

/// Restoring a snapshot under a smaller max_sessions keeps the most recently used sessions.
#[test]
fn restore_with_fewer_sessions_evicts_least_recently_used() {
    let mut kv = Kv::new();
    for client in 1..=4 {
        kv.apply_session(client, 1, incr("n"));
    }
    let config = KvConfig {
        max_sessions: 2,
        ..KvConfig::default()
    };
    let restored = StateMachine::restore(config, &kv.machine.snapshot()).expect("restore");
    let clients: Vec<u64> = restored.sessions().map(|(id, _)| id).collect();
    assert_eq!(clients, vec![3, 4]);
}

fn req(client_id: u64, sequence: u64) -> SessionRequest {
    SessionRequest::sequential(client_id, sequence)
}

/// A copy of `(client_id, sequence)` its node sent again: an earlier one may be in the log.
fn resent(client_id: u64, sequence: u64) -> SessionRequest {
    SessionRequest {
        resubmitted: true,
        ..SessionRequest::sequential(client_id, sequence)
    }
}

fn pipelined(client_id: u64, sequence: u64, lowest_unanswered: u64) -> SessionRequest {
    SessionRequest {
        client_id,
        sequence,
        lowest_unanswered,
        resubmitted: false,
        proposed_after: 0,
    }
}

/// A pipelining client has requests 1 to 4 in flight; they reach the log out of order (2
/// was re-submitted after a leader change while 3 and 4 committed first): 3 and 4 are
/// refused as out of order, not applied, and applied in sequence order once 2 is; every
/// retry inside the window gets its own first reply. Reference: thesis §6.3.
#[test]
fn pipelined_requests_apply_in_sequence_order_once_each() {
    let mut kv = Kv::new();
    let at = |kv: &mut Kv, sequence, lowest| {
        kv.apply_with(incr("n"), Some(pipelined(5, sequence, lowest)))
    };
    // Each INCR's reply is its place in the applied order: sequence k answers k.
    assert_eq!(at(&mut kv, 1, 1), Reply::Integer(1));
    assert_eq!(at(&mut kv, 3, 1), Reply::error(errors::OUT_OF_ORDER));
    assert_eq!(at(&mut kv, 4, 1), Reply::error(errors::OUT_OF_ORDER));
    // The client has heard 1's answer: it waits for 2 and above.
    assert_eq!(at(&mut kv, 2, 2), Reply::Integer(2));
    assert_eq!(at(&mut kv, 3, 2), Reply::Integer(3));
    assert_eq!(at(&mut kv, 4, 2), Reply::Integer(4));
    // Retries of 2, 3 and 4 — each applied already — get their first replies.
    assert_eq!(at(&mut kv, 3, 2), Reply::Integer(3));
    assert_eq!(at(&mut kv, 2, 2), Reply::Integer(2));
    assert_eq!(at(&mut kv, 4, 2), Reply::Integer(4));
    // 1's reply was dropped when the client said it had it: a retry of 1 is stale.
    assert_eq!(at(&mut kv, 1, 1), Reply::error(errors::STALE_REQUEST));
    assert_eq!(kv.read(get("n")), bulk("4"));
    let session = kv.machine.session(5).expect("session");
    assert_eq!(session.lowest_kept, 2);
    assert_eq!(session.replies.sequences().collect::<Vec<_>>(), [2, 3, 4]);
}

/// The window keeps at most session_window_requests replies: past it the oldest is
/// forgotten and its retry refused as stale rather than applied again, even though the
/// client still waits for it. Reference: thesis §6.3.
#[test]
fn window_is_bounded_and_forgets_oldest() {
    let mut kv = Kv::with_config(KvConfig {
        session_window_requests: 2,
        ..KvConfig::default()
    });
    for sequence in 1..=3 {
        kv.apply_with(incr("n"), Some(pipelined(5, sequence, 1)));
    }
    let session = kv.machine.session(5).expect("session");
    assert_eq!(session.replies.sequences().collect::<Vec<_>>(), [2, 3]);
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(5, 1, 1))),
        Reply::error(errors::STALE_REQUEST)
    );
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(5, 2, 1))),
        Reply::Integer(2)
    );
    assert_eq!(kv.read(get("n")), bulk("3"));
}

/// A pipelining client whose session is evicted after 1 to 4 were applied: its 5 (waiting
/// for 1 and up) cannot start a new session ahead of them, and once its node sends 5
/// again waiting for nothing below, a re-submitted copy of 2 is stale, not applied twice.
/// Reference: thesis §6.3.
#[test]
fn forgotten_pipelined_session_never_applies_twice() {
    let mut kv = Kv::with_config(KvConfig {
        max_sessions: 1,
        session_evict_idle_ms: 0,
        ..KvConfig::default()
    });
    for sequence in 1..=4 {
        kv.apply_with(incr("n"), Some(pipelined(8, sequence, 1)));
    }
    kv.apply_session(9, 1, incr("other")); // evicts client 8
    assert!(kv.machine.session(8).is_none());
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(8, 5, 1))),
        Reply::error(errors::OUT_OF_ORDER)
    );
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(8, 5, 5))),
        Reply::Integer(5)
    );
    let copy_of_2 = SessionRequest {
        resubmitted: true,
        ..pipelined(8, 2, 1)
    };
    assert_eq!(
        kv.apply_with(incr("n"), Some(copy_of_2)),
        Reply::error(errors::STALE_REQUEST)
    );
    assert_eq!(kv.read(get("n")), bulk("5"));
}

/// A lowest unanswered sequence above the request's own is taken as the request's own: a
/// forged field cannot make the request drop its own reply.
#[test]
fn lowest_unanswered_above_sequence_is_clamped() {
    let mut kv = Kv::new();
    kv.apply_session(4, 1, incr("n"));
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(4, 2, 99))),
        Reply::Integer(2)
    );
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(4, 2, 2))),
        Reply::Integer(2)
    );
    assert_eq!(kv.machine.session(4).map(|s| s.lowest_kept), Some(2));
}

/// A session remembers at most session_reply_bytes of replies: a reply past the budget is
/// applied and answered, but remembered as "applied, reply not kept" (one word), which is
/// what a retry of it hears; small replies are still kept. Reference: thesis §6.3.
#[test]
fn replies_past_the_byte_budget_are_remembered_as_not_kept() {
    let mut kv = Kv::with_config(KvConfig {
        session_reply_bytes: 100,
        ..KvConfig::default()
    });
    let big = "x".repeat(200);
    kv.apply(set("big", &big));
    let getdel = Command::GetDel { key: "big".into() };
    assert_eq!(
        kv.apply_with(getdel.clone(), Some(pipelined(4, 1, 1))),
        bulk(&big)
    );
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(4, 2, 1))),
        Reply::Integer(1)
    );
    // The reply not kept counts one word, as the integer does: the marks of a long pipeline
    // never take a session far past its budget.
    assert_eq!(kv.machine.session_reply_bytes(), 8 + 8);
    // Retries: the large reply is not kept, the small one is.
    assert_eq!(
        kv.apply_with(getdel, Some(pipelined(4, 1, 1))),
        Reply::error(errors::REPLY_NOT_KEPT)
    );
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(4, 2, 1))),
        Reply::Integer(1)
    );
    assert_eq!(kv.read(get("big")), Reply::Nil, "applied once");
    assert_eq!(kv.read(get("n")), bulk("1"));
}

/// Only the replies a client still waits for count against its session's budget: a
/// reply below its new floor is about to be forgotten, so the next large reply is kept in
/// its place. Reference: thesis §6.3.
#[test]
fn replies_below_the_floor_leave_room_in_the_session_budget() {
    let mut kv = Kv::with_config(KvConfig {
        session_reply_bytes: 100,
        ..KvConfig::default()
    });
    let value = "v".repeat(60);
    for key in ["a", "b"] {
        kv.apply(set(key, &value));
    }
    let getdel = |key: &str| Command::GetDel { key: key.into() };
    assert_eq!(
        kv.apply_with(getdel("a"), Some(pipelined(4, 1, 1))),
        bulk(&value)
    );
    // Sent once write 1 was answered: 60 bytes more fit, as write 1's reply goes.
    assert_eq!(
        kv.apply_with(getdel("b"), Some(pipelined(4, 2, 2))),
        bulk(&value)
    );
    assert_eq!(kv.machine.session_reply_bytes(), 8 + 60);
    // A retry of write 2 hears its reply again, not that it was not kept.
    assert_eq!(
        kv.apply_with(getdel("b"), Some(pipelined(4, 2, 2))),
        bulk(&value)
    );
}

fn append(key: &str, value: &str) -> Command {
    Command::Append {
        key: key.into(),
        value: value.into(),
    }
}

/// All sessions together remember at most session_table_reply_bytes of replies: a reply
/// that would take the table past it is applied and answered, but remembered as "applied,
/// reply not kept", though its own session's budget had room; once a kept reply is no
/// longer awaited (its client's floor rose past it), the room is free again. Every replica
/// decides the same, from the log alone. Reference: thesis §6.3.
#[test]
fn replies_past_the_table_budget_are_remembered_as_not_kept() {
    let config = KvConfig {
        session_table_reply_bytes: 100,
        ..KvConfig::default()
    };
    let mut kv = Kv::with_config(config.clone());
    let value = "v".repeat(60);
    for key in ["a", "b", "c"] {
        kv.apply(set(key, &value));
    }
    let getdel = |key: &str| Command::GetDel { key: key.into() };
    // Client 1's 60-byte reply fits; client 2's would take the table to about 136 bytes.
    assert_eq!(
        kv.apply_with(getdel("a"), Some(pipelined(1, 1, 1))),
        bulk(&value)
    );
    assert_eq!(
        kv.apply_with(getdel("b"), Some(pipelined(2, 1, 1))),
        bulk(&value)
    );
    // The second reply is remembered as a one-word mark.
    assert_eq!(kv.machine.session_reply_bytes(), (8 + 60) + 8);
    let mut replica = StateMachine::restore(config, &kv.machine.snapshot()).expect("restore");
    assert_eq!(
        kv.apply_with(getdel("b"), Some(pipelined(2, 1, 1))),
        Reply::error(errors::REPLY_NOT_KEPT)
    );
    assert_eq!(
        kv.apply_with(getdel("a"), Some(pipelined(1, 1, 1))),
        bulk(&value)
    );
    // Clients 1 and 2 no longer wait for write 1: its reply and the marker go, and client
    // 3's reply fits.
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(1, 2, 2))),
        Reply::Integer(1)
    );
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(2, 2, 2))),
        Reply::Integer(2)
    );
    assert_eq!(
        kv.apply_with(getdel("c"), Some(pipelined(3, 1, 1))),
        bulk(&value)
    );
    assert_eq!(
        kv.apply_with(getdel("c"), Some(pipelined(3, 1, 1))),
        bulk(&value)
    );
    // The replica restored before the retries decides the same for client 2.
    assert_eq!(
        replica.apply(kv.next_index, getdel("b"), Some(pipelined(2, 1, 1))),
        Reply::error(errors::REPLY_NOT_KEPT)
    );
    assert_eq!(kv.read(get("b")), Reply::Nil, "applied once");
}

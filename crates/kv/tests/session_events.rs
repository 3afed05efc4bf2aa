//! Keyspace events and sessions: a session write records its events when it is applied,
//! and never again — a copy answered from the session's window, or refused (out of order,
//! stale), executes nothing, so a subscriber sees each write's changes once however often
//! its node sent it. Reference: thesis §6.3.

mod common;

use common::*;
use skiff_kv::reply::errors;
use skiff_kv::{Command, Reply, SessionRequest, Transaction};

const CLIENT: u64 = 5;

fn pipelined(sequence: u64, lowest_unanswered: u64) -> SessionRequest {
    SessionRequest {
        client_id: CLIENT,
        sequence,
        lowest_unanswered,
        resubmitted: false,
        proposed_after: 0,
    }
}

/// A copy its node sent again after a leader change lost the first's outcome.
fn resent(sequence: u64, lowest_unanswered: u64) -> SessionRequest {
    SessionRequest {
        resubmitted: true,
        ..pipelined(sequence, lowest_unanswered)
    }
}

/// The events recorded since the last take, as `(event, key)`.
fn events(kv: &mut Kv) -> Vec<(&'static str, String)> {
    kv.machine
        .take_events()
        .events
        .into_iter()
        .map(|e| (e.event, String::from_utf8_lossy(&e.key).into_owned()))
        .collect()
}

#[test]
fn replayed_and_refused_session_writes_record_no_keyspace_event() {
    let mut kv = Kv::new();
    kv.machine.record_events(true);
    // Without a session, the same write twice is two writes: two events (and the key's
    // creation once).
    kv.apply(set("plain", "v"));
    kv.apply(set("plain", "v"));
    assert_eq!(
        events(&mut kv),
        [
            ("new", "plain".into()),
            ("set", "plain".into()),
            ("set", "plain".into())
        ]
    );

    // Write 1 applied: its event, once.
    assert_eq!(
        kv.apply_with(incr("n"), Some(pipelined(1, 1))),
        Reply::Integer(1)
    );
    assert_eq!(
        events(&mut kv),
        [("new", "n".into()), ("incrby", "n".into())]
    );
    // A copy of write 1 is answered from the window: no event.
    assert_eq!(
        kv.apply_with(incr("n"), Some(resent(1, 1))),
        Reply::Integer(1)
    );
    assert!(
        events(&mut kv).is_empty(),
        "a replayed write recorded events"
    );

    // Write 3 ahead of write 2: refused as out of order, no event.
    let ahead = kv.apply_with(set("k", "3"), Some(pipelined(3, 2)));
    assert_eq!(ahead, Reply::error(errors::OUT_OF_ORDER));
    assert!(
        events(&mut kv).is_empty(),
        "an out-of-order write recorded events"
    );

    // Write 2, an EXEC, applied: its commands' events; a copy of it answers its first
    // array and records nothing.
    let exec = || {
        Command::Exec(Transaction {
            watched: vec![],
            commands: vec![set("a", "1"), incr("n")],
        })
    };
    let first = Reply::Array(vec![Reply::Ok, Reply::Integer(2)]);
    assert_eq!(kv.apply_with(exec(), Some(pipelined(2, 2))), first);
    assert_eq!(
        events(&mut kv),
        [
            ("new", "a".into()),
            ("set", "a".into()),
            ("incrby", "n".into())
        ]
    );
    assert_eq!(kv.apply_with(exec(), Some(resent(2, 2))), first);
    assert!(
        events(&mut kv).is_empty(),
        "a replayed EXEC recorded events"
    );

    // The client heard write 2's answer, so write 1's reply was dropped: a late copy of
    // write 1 is stale, refused, and records nothing.
    assert_eq!(
        kv.apply_with(set("k", "3"), Some(pipelined(3, 3))),
        Reply::Ok
    );
    assert_eq!(events(&mut kv), [("new", "k".into()), ("set", "k".into())]);
    let late = kv.apply_with(incr("n"), Some(resent(1, 1)));
    assert_eq!(late, Reply::error(errors::STALE_REQUEST));
    assert!(events(&mut kv).is_empty(), "a stale write recorded events");
    assert_eq!(kv.read(get("n")), bulk("2"), "each INCR applied once");
}

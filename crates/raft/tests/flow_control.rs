//! Flow control of replication (thesis §10.2.1): how many appends, and how many bytes of
//! entries, a leader sends a follower ahead of its answers, and how answers that move nothing
//! (a lost probe's heartbeat, a stopped follower's backlog) reopen the pipeline.

mod harness;

use harness::*;
use skiff_raft::{MemStorage, Message, MessageBody, NodeId, RawNode};

/// A leader of three whose pipeline to each follower is full: `window` unanswered appends of
/// one entry each, of `proposals` proposed.
fn full_pipeline(window: usize, proposals: u8) -> RawNode<MemStorage> {
    let mut leader = streaming_leader(3, |c| {
        c.max_inflight_appends = window;
        c.max_append_entries = 1;
    });
    for data in 0..proposals {
        leader.propose(vec![data]).unwrap();
    }
    drain(&mut leader);
    assert_eq!(
        leader.raft().progress()[&NodeId(2)].inflight_count(),
        window
    );
    leader
}

#[test]
fn heartbeat_answer_resends_a_lost_probe() {
    let mut leader = new_leader(3, |_| {});
    // The no-op append to node 2 was lost; its answer to a heartbeat says it holds nothing.
    leader.tick();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(0))).unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(1, 2, 1, append_in_round(0, 0, vec![noop(1, 1)], 0, 1))]
    );
    // Reference: §5.3 (the leader retries AppendEntries indefinitely)
}

#[test]
fn pipelining_respects_max_inflight_appends() {
    let mut leader = streaming_leader(3, |c| {
        c.max_inflight_appends = 2;
        c.max_append_entries = 1;
    });
    for data in [b"a", b"b", b"c", b"d"] {
        leader.propose(data.to_vec()).unwrap();
    }
    let sent = drain(&mut leader);
    let log = leader.storage().all_entries().to_vec();
    assert_eq!(
        sent,
        vec![
            msg(1, 2, 1, append(1, 1, vec![log[1].clone()], 1)),
            msg(1, 2, 1, append(2, 1, vec![log[2].clone()], 1)),
            msg(1, 3, 1, append(1, 1, vec![log[1].clone()], 1)),
            msg(1, 3, 1, append(2, 1, vec![log[2].clone()], 1)),
        ],
        "two appends in flight per follower"
    );
    assert_eq!(leader.raft().progress()[&NodeId(2)].inflight_count(), 2);

    // A heartbeat to a full pipeline carries no entries.
    leader.tick();
    assert_eq!(
        drain(&mut leader),
        vec![
            msg(1, 2, 1, append_in_round(3, 1, vec![], 1, 1)),
            msg(1, 3, 1, append_in_round(3, 1, vec![], 1, 1))
        ]
    );
    assert_eq!(leader.raft().progress()[&NodeId(2)].inflight_count(), 2);

    // Each answer frees one slot.
    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    assert_eq!(
        drain(&mut leader),
        vec![msg(
            1,
            2,
            1,
            append_in_round(3, 1, vec![log[3].clone()], 2, 1)
        )]
    );
    // Reference: thesis §10.2.1 (pipelining), etcd-io/raft tracker/inflights.go
}

#[test]
fn pipelining_respects_max_inflight_bytes() {
    // Entries of 124 bytes (100 of data): with 300 bytes allowed in flight, three appends go
    // to each follower before it answers, however many appends are allowed.
    let mut leader = streaming_leader(3, |c| {
        c.max_inflight_appends = 100;
        c.max_inflight_bytes = 300;
        c.max_append_entries = 1;
    });
    for byte in 0..10u8 {
        leader.propose(vec![byte; 100]).unwrap();
    }
    let sent = drain(&mut leader);
    for id in [2, 3] {
        assert_eq!(
            sent.iter().filter(|m| m.to == NodeId(id)).count(),
            3,
            "to node {id}"
        );
    }
    assert_eq!(leader.raft().progress()[&NodeId(2)].inflight_bytes(), 372);
    // An answer for the first two lets two more go.
    leader.step(msg(2, 1, 1, accepted(3))).unwrap();
    let sent = drain(&mut leader);
    assert_eq!(sent.iter().filter(|m| m.to == NodeId(2)).count(), 2);
    // Reference: thesis §10.2.1 (pipelining), etcd-io/raft Config.MaxInflightBytes
}

#[test]
fn heartbeat_answer_frees_one_slot_of_a_full_pipeline() {
    let mut leader = full_pipeline(1, 2);
    // No answer to the append of index 2 yet; the interval's heartbeat goes out, and an
    // answer that moves nothing comes (node 2's to an earlier heartbeat, sent before index 2).
    leader.tick();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    let log = leader.storage().all_entries().to_vec();
    assert_eq!(
        drain(&mut leader),
        vec![msg(
            1,
            2,
            1,
            append_in_round(2, 1, vec![log[2].clone()], 1, 1)
        )],
        "the oldest in-flight append is given up on, the next one goes out"
    );
    // Reference: etcd-io/raft tracker/progress.go (inflights freed on heartbeat response)
}

/// How many of `sent` are appends carrying entries to node `to`.
fn appends_with_entries(sent: &[Message], to: u64) -> usize {
    sent.iter()
        .filter(|m| {
            m.to == NodeId(to)
                && matches!(&m.body, MessageBody::AppendEntries { entries, .. } if !entries.is_empty())
        })
        .count()
}

#[test]
fn a_read_rounds_heartbeat_lets_no_answer_free_a_slot_but_the_intervals_does() {
    // Reads send heartbeats as often as they come; were each a grant, a stalled follower's
    // backlog of answers would again free a slot apiece.
    let mut leader = full_pipeline(1, 2);
    leader.read_index(7).unwrap();
    let sent = drain(&mut leader);
    assert!(
        sent.iter().any(|m| m.to == NodeId(2)),
        "the read round's heartbeat goes out at once: {sent:?}"
    );
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    assert_eq!(
        appends_with_entries(&drain(&mut leader), 2),
        0,
        "an answer after a read round's heartbeat frees nothing"
    );
    leader.tick();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    assert_eq!(
        appends_with_entries(&drain(&mut leader), 2),
        1,
        "after the interval's heartbeat, one slot"
    );
    // Reference: thesis §10.2.1 (pipelining), §6.4 (read rounds)
}

#[test]
fn answers_queued_while_a_follower_was_stopped_free_one_slot_an_interval_not_one_each() {
    // Node 2 stops reading with its pipeline full. When it reads again it answers every
    // heartbeat queued for it at once, each with the index it matched before it stopped: if
    // each answer freed a slot, the leader would send everything node 2 lags behind in one
    // burst (and hold it all in memory) instead of a pipeline's worth.
    let mut leader = full_pipeline(2, 10);
    leader.tick();
    drain(&mut leader);
    let appends_to_2 = |sent: &[Message]| appends_with_entries(sent, 2);
    for _ in 0..30 {
        leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    }
    assert_eq!(
        appends_to_2(&drain(&mut leader)),
        1,
        "thirty stale answers free one slot"
    );
    leader.tick();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    assert_eq!(
        appends_to_2(&drain(&mut leader)),
        1,
        "and one more after the next heartbeat"
    );
    // In flight now: the appends of 4 and 5. A real answer frees the slot it answers.
    leader.step(msg(2, 1, 1, accepted(4))).unwrap();
    assert_eq!(appends_to_2(&drain(&mut leader)), 1);
    // Reference: thesis §10.2.1 (pipelining bounds the appends in flight)
}

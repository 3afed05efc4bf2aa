//! Linearizable reads without writing the log (ReadIndex, thesis §6.4) and lease reads
//! (thesis §6.4.1): a read is answered only once the leader has shown it was still leader
//! after the read arrived, and only at a commit index that covers every earlier write.

mod harness;

use std::cell::RefCell;
use std::rc::Rc;

use harness::*;
use skiff_raft::{
    Config, ConfigError, HardState, LogIndex, MemStorage, Message, MessageBody, NodeId, RawNode,
    ReadIndexError, Role, StartError, Term,
};

/// The heartbeats of read round `round` from leader 1 of term `term` to nodes `2..=n`, each
/// follower having been sent everything up to `last` (index, term), with commit `commit`.
fn heartbeats(n: u64, term: u64, last: (u64, u64), commit: u64, round: u64) -> Vec<Message> {
    (2..=n)
        .map(|to| {
            let body = append_in_round(last.0, last.1, vec![], commit, round);
            msg(1, to, term, body)
        })
        .collect()
}

/// Round 1 of leader 1 of term 1 once node 2 acknowledged the no-op and node 3 has not:
/// node 3 is still probing, so its heartbeat is sent from before the no-op.
fn first_round_with_node_3_probing() -> Vec<Message> {
    vec![
        msg(1, 2, 1, append_in_round(1, 1, vec![], 1, 1)),
        msg(1, 3, 1, append_in_round(0, 0, vec![], 0, 1)),
    ]
}

/// Lease reads on, with the default timing: election timeout 10, drift 2, so a lease
/// lasts 8 ticks.
fn lease(config: &mut Config) {
    config.read_lease = true;
}

/// Steps `m` into `node` and hands back everything its Readies then held.
fn answer(node: &mut RawNode<MemStorage>, m: Message) -> Drained {
    node.step(m).unwrap();
    drain_reads(node)
}

/// What a node that handed out nothing drains to.
fn nothing() -> Drained {
    Drained::default()
}

/// The only thing drained is the confirmed read `ctx` at `index`.
fn served(ctx: u64, index: u64) -> Drained {
    Drained {
        read_states: vec![read_state(ctx, index)],
        ..Drained::default()
    }
}

// ---- ReadIndex on the leader ----

#[test]
fn leader_read_is_confirmed_by_a_majority_round() {
    // A leader's read is registered at its commit index and served once a majority has
    // answered a heartbeat round that began after the read arrived.
    let mut leader = streaming_leader(3, |_| {});
    leader.propose(b"x".to_vec()).unwrap();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    leader.propose(b"y".to_vec()).unwrap();
    drain(&mut leader);
    assert_eq!(leader.raft().log().committed(), LogIndex(2));
    assert_eq!(leader.raft().log().last_index(), LogIndex(3));

    leader.read_index(7).unwrap();
    assert!(leader.has_ready(), "the read needs a round at once");
    let out = drain_reads(&mut leader);
    assert_eq!(
        out.messages,
        heartbeats(3, 1, (3, 1), 2, 1),
        "a round starts at once and every follower hears it"
    );
    assert_eq!(out.read_states, vec![], "nobody has answered the round");

    // Node 3 answers an append sent before the round: entry 3 commits, the read stays.
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(3, 0)));
    assert_eq!(leader.raft().log().committed(), LogIndex(3));
    assert_eq!(
        out,
        nothing(),
        "an answer to an older round confirms nothing"
    );

    // Node 2 answers the round: with the leader that is a majority.
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(3, 1)));
    assert_eq!(
        out,
        served(7, 2),
        "served at the commit index it arrived at"
    );

    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(3, 1)));
    assert_eq!(out, nothing(), "a read is confirmed once");
    // Reference: thesis §6.4
}

#[test]
fn reads_share_one_round() {
    // Reads that arrive before a round begins share it; a later read waits for the next.
    let mut leader = streaming_leader(3, |_| {});
    leader.read_index(1).unwrap();
    leader.read_index(2).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 1), "one round");

    // A read that arrives after round 1 began needs round 2.
    leader.read_index(3).unwrap();
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(
        out.read_states,
        vec![read_state(1, 1), read_state(2, 1)],
        "both reads ride on round 1, in arrival order"
    );
    assert_eq!(
        out.messages,
        heartbeats(3, 1, (1, 1), 1, 2),
        "round 2 starts for read 3"
    );

    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out, nothing(), "round 1 does not vouch for read 3");
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 2)));
    assert_eq!(out, served(3, 1));
    // Reference: thesis §6.4
}

#[test]
fn heartbeat_rounds_confirm_reads_too() {
    // A read registered before a heartbeat round began is confirmed by that round; the
    // heartbeat's round and the round started for the read are one sequence.
    let mut leader = streaming_leader(3, |_| {});
    leader.tick();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 1));
    leader.read_index(4).unwrap();
    leader.tick();
    let out = drain_reads(&mut leader);
    assert_eq!(
        out.messages,
        heartbeats(3, 1, (1, 1), 1, 2),
        "the tick's heartbeat round serves the read: no extra round"
    );
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out, nothing(), "round 1 began before the read arrived");
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 2)));
    assert_eq!(out, served(4, 1));
    // Reference: thesis §6.4
}

#[test]
fn any_answer_in_the_term_confirms_even_a_rejection() {
    // A rejection still shows the follower was in our term after the round began.
    let mut leader = streaming_leader(3, |_| {});
    leader.read_index(5).unwrap();
    drain(&mut leader);
    let out = answer(&mut leader, msg(3, 1, 1, rejected_in_round(1, 0, 0, 1)));
    assert_eq!(out.read_states, vec![read_state(5, 1)]);
    // Reference: thesis §6.4
}

#[test]
fn answers_for_rounds_never_started_count_as_the_current_round() {
    // An answer naming a round the leader never started vouches only for rounds started.
    let mut leader = streaming_leader(3, |_| {});
    leader.read_index(5).unwrap();
    drain(&mut leader);
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 9)));
    assert_eq!(out, served(5, 1));
    // A read after round 1 began is not confirmed by that bogus round 9.
    leader.read_index(6).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 2));
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out, nothing());
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(1, 2)));
    assert_eq!(out, served(6, 1));
    // Reference: thesis §6.4
}

#[test]
fn a_majority_is_needed_in_a_five_node_cluster() {
    // With five voters the leader needs two distinct followers in the round.
    let mut leader = streaming_leader(5, |_| {});
    leader.read_index(8).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, heartbeats(5, 1, (1, 1), 1, 1));
    let out = answer(&mut leader, msg(4, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out, nothing(), "two of five");
    let out = answer(&mut leader, msg(4, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(
        out,
        nothing(),
        "the same follower twice is still two of five"
    );
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out, served(8, 1), "three of five");
    // Reference: thesis §6.4
}

#[test]
fn without_lease_every_read_needs_a_round() {
    // A round answered a moment ago is no lease unless lease reads are configured.
    let mut leader = streaming_leader(3, |_| {});
    leader.read_index(1).unwrap();
    drain(&mut leader);
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out, served(1, 1));
    leader.read_index(2).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 2));
    assert_eq!(out.read_states, vec![]);
    // Reference: thesis §6.4
}

#[test]
fn single_voter_reads_at_once() {
    // A single voter is its own majority: once its no-op commits, reads need no round.
    let mut node = node(config(1, 1), &[], HardState::default());
    node.campaign();
    while node.raft().role() != Role::Leader {
        process(&mut node);
    }
    assert_eq!(node.raft().log().committed(), LogIndex(0));
    node.read_index(1).unwrap();
    let out = drain_reads(&mut node);
    assert_eq!(
        out.read_states,
        vec![read_state(1, 1)],
        "it waits for its no-op to commit, and for nothing else"
    );
    assert_eq!(out.messages, vec![]);

    node.propose(b"x".to_vec()).unwrap();
    drain(&mut node);
    node.read_index(2).unwrap();
    assert!(node.has_ready());
    let batch = process(&mut node);
    assert_eq!(
        batch.read_states,
        vec![read_state(2, 2)],
        "no round: it is the whole majority"
    );
    assert_eq!(batch.messages, vec![]);
    assert!(!node.has_ready());
    // Reference: thesis §6.4
}

// ---- a new leader ----

#[test]
fn new_leader_reads_wait_for_noop() {
    // Node 1 knows entries 1..=2 of term 1, commit 1; it becomes leader of term 2.
    let mut leader = node(config(1, 3), &[1, 1], hard_state(1, 0, 1));
    let sent = elect(&mut leader);
    assert_eq!(sent[0], msg(1, 2, 2, append(2, 1, vec![noop(3, 2)], 1)));
    leader.read_index(5).unwrap();
    assert!(!leader.has_ready(), "no round before the no-op commits");

    // Every follower answers heartbeat round 1 (entry 2 is on all, but an entry of an
    // earlier term does not commit by counting): still no read.
    leader.tick();
    assert_eq!(drain(&mut leader), heartbeats(3, 2, (2, 1), 1, 1));
    for id in 2..=3 {
        let out = answer(&mut leader, msg(id, 1, 2, accepted_in_round(2, 1)));
        let resend = append_in_round(2, 1, vec![noop(3, 2)], 1, 1);
        assert_eq!(out.messages, vec![msg(1, id, 2, resend)], "node {id}");
        assert_eq!(out.read_states, vec![], "node {id}");
    }
    assert_eq!(leader.raft().log().committed(), LogIndex(1));

    // The no-op commits: the read registers at index 3 and gets round 2 of its own.
    let out = answer(&mut leader, msg(2, 1, 2, accepted_in_round(3, 1)));
    assert_eq!(leader.raft().log().committed(), LogIndex(3));
    assert_eq!(out.read_states, vec![]);
    assert_eq!(out.messages, heartbeats(3, 2, (3, 2), 3, 2));
    let out = answer(&mut leader, msg(3, 1, 2, accepted_in_round(3, 1)));
    assert_eq!(
        out,
        nothing(),
        "round 1 began before the read was registered"
    );
    let out = answer(&mut leader, msg(3, 1, 2, accepted_in_round(3, 2)));
    assert_eq!(out, served(5, 3));
    // Reference: thesis §6.4
}

#[test]
fn forwarded_read_waits_for_the_noop_too() {
    // A read a follower forwards to a new leader waits for the no-op like a local one.
    let mut leader = new_leader(3, |_| {});
    let out = answer(&mut leader, msg(2, 1, 1, read_index(6)));
    assert_eq!(out, nothing(), "neither answered nor refused");
    leader.step(msg(2, 1, 1, accepted(1))).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, first_round_with_node_3_probing());
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(
        out.messages,
        vec![msg(1, 2, 1, read_index_response(6, Some(1)))]
    );
    assert_eq!(out.read_states, vec![], "the answer goes to the follower");
    // Reference: thesis §6.4
}

// ---- a deposed leader ----

#[test]
fn deposed_leader_serves_no_stale_read() {
    // An answer from a higher term deposes the leader: its reads fail instead of being served.
    let mut leader = streaming_leader(3, |_| {});
    leader.read_index(9).unwrap();
    leader.step(msg(3, 1, 1, read_index(10))).unwrap();
    drain(&mut leader);
    // Node 2 has moved on to term 2: its answer to round 1 deposes the leader.
    let out = answer(&mut leader, msg(2, 1, 2, accepted_in_round(1, 1)));
    assert_eq!(leader.raft().role(), Role::Follower);
    assert_eq!(out.read_states, vec![]);
    assert_eq!(
        out.failed_reads,
        vec![9],
        "its own caller may retry elsewhere"
    );
    assert_eq!(
        out.messages,
        vec![msg(1, 3, 2, read_index_response(10, None))],
        "the forwarding follower is told too"
    );
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(
        out,
        nothing(),
        "a late answer of the old term confirms nothing"
    );
    // Reference: thesis §6.4
}

#[test]
fn isolated_leader_serves_no_read_and_refuses_it_on_stepping_down() {
    // A leader nobody answers never confirms a read, and fails it when CheckQuorum deposes it.
    let mut leader = streaming_leader(3, |_| {});
    leader.read_index(3).unwrap();
    drain(&mut leader);
    // The followers answered the no-op in the first election timeout, so CheckQuorum
    // deposes the leader at the end of the second.
    for tick in 1..20 {
        leader.tick();
        let out = drain_reads(&mut leader);
        assert_eq!(out.read_states, vec![], "tick {tick}");
        assert_eq!(out.failed_reads, vec![], "tick {tick}");
    }
    leader.tick();
    assert_eq!(leader.raft().role(), Role::Follower);
    let out = drain_reads(&mut leader);
    assert_eq!(out.failed_reads, vec![3]);
    assert_eq!(out.read_states, vec![]);
    // Reference: thesis §6.4, §6.2
}

#[test]
fn reads_waiting_for_the_noop_fail_when_the_leader_steps_down() {
    // Reads still waiting for the no-op fail too when the leader steps down.
    let mut leader = new_leader(3, |_| {});
    leader.read_index(1).unwrap();
    leader.step(msg(2, 1, 1, read_index(2))).unwrap();
    leader.read_index(3).unwrap();
    let out = answer(&mut leader, msg(3, 1, 4, append(0, 0, vec![], 0)));
    assert_eq!(leader.raft().role(), Role::Follower);
    assert_eq!(out.failed_reads, vec![1, 3]);
    assert_eq!(out.read_states, vec![]);
    assert_eq!(
        out.messages,
        vec![
            msg(1, 2, 4, read_index_response(2, None)),
            msg(1, 3, 4, accepted_in_round(0, 0)),
        ]
    );
    // Reference: thesis §6.4
}

#[test]
fn deposed_leader_in_a_cluster_serves_no_stale_read() {
    // The old leader is cut off; the others elect a new leader and commit a write. The old
    // leader's read never gets a ReadState, and fails once CheckQuorum deposes it.
    let mut cluster = CoreCluster::new(3);
    let old = cluster.tick_until_leader();
    cluster.propose(old, b"a");
    cluster.isolate(old);
    cluster.node_mut(old).read_index(77).unwrap();
    let mut new = None;
    for _tick in 0..40 {
        cluster.tick_all();
        if let Some(leader) = cluster.leader().filter(|&l| l.0 != old) {
            if new.is_none() && cluster.node(leader.0).raft().role() == Role::Leader {
                new = Some(leader.0);
                cluster.propose(leader.0, b"b");
            }
        }
    }
    let new = new.expect("the majority elects a new leader");
    assert_eq!(
        cluster.applied_data(new),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(
        cluster
            .read_states
            .get(&NodeId(old))
            .cloned()
            .unwrap_or_default(),
        vec![]
    );
    assert_eq!(cluster.failed_reads[&NodeId(old)], vec![77]);
    // Reference: thesis §6.4
}

// ---- reads through followers ----

#[test]
fn follower_read_is_forwarded_and_answered() {
    // A follower forwards its read; the leader confirms a round and answers with the index.
    let mut follower = node(config(2, 3), &[], HardState::default());
    follower
        .step(msg(1, 2, 1, append(0, 0, vec![noop(1, 1)], 1)))
        .unwrap();
    drain(&mut follower);
    follower.read_index(4).unwrap();
    let out = drain_reads(&mut follower);
    assert_eq!(out.messages, vec![msg(2, 1, 1, read_index(4))]);
    assert_eq!(out.read_states, vec![]);

    let mut leader = streaming_leader(3, |_| {});
    let out = answer(&mut leader, out.messages[0].clone());
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 1));
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(
        out.messages,
        vec![msg(1, 2, 1, read_index_response(4, Some(1)))]
    );
    assert_eq!(
        out.read_states,
        vec![],
        "the leader's own caller got nothing"
    );

    let out = answer(&mut follower, out.messages[0].clone());
    assert_eq!(out, served(4, 1));
    // Reference: thesis §6.4
}

#[test]
fn follower_read_in_a_cluster_is_served_after_the_last_write() {
    // End to end: a follower's read is served at an index covering the last write.
    let mut cluster = CoreCluster::new(3);
    let leader = cluster.tick_until_leader();
    let (index, _) = cluster.propose(leader, b"x");
    let follower = if leader == 2 { 3 } else { 2 };
    cluster.node_mut(follower).read_index(11).unwrap();
    cluster.deliver_all();
    assert_eq!(
        cluster.read_states[&NodeId(follower)],
        vec![skiff_raft::ReadState { ctx: 11, index }]
    );
    assert_eq!(cluster.failed_reads[&NodeId(follower)], vec![]);
    // Reference: thesis §6.4
}

#[test]
fn read_without_a_known_leader_is_refused() {
    // With no leader to forward to, the read is refused at once.
    let mut follower = node(config(2, 3), &[], HardState::default());
    assert_eq!(follower.read_index(1), Err(ReadIndexError::NoLeader));
    assert!(!follower.has_ready(), "nothing is queued");

    let mut candidate = node(config(2, 3), &[], HardState::default());
    candidate.campaign();
    assert_eq!(candidate.raft().role(), Role::PreCandidate);
    assert_eq!(candidate.read_index(1), Err(ReadIndexError::NoLeader));
    // Reference: thesis §6.4
}

#[test]
fn non_leader_refuses_a_forwarded_read() {
    // Node 3 believes node 2 leads; node 2 is only a follower of node 1.
    let mut not_leader = node(config(2, 3), &[], HardState::default());
    not_leader
        .step(msg(1, 2, 1, append(0, 0, vec![], 0)))
        .unwrap();
    drain(&mut not_leader);
    let out = answer(&mut not_leader, msg(3, 2, 1, read_index(8)));
    assert_eq!(
        out.messages,
        vec![msg(2, 3, 1, read_index_response(8, None))]
    );
    assert_eq!(out.failed_reads, vec![]);

    let mut asker = node(config(3, 3), &[], hard_state(1, 0, 0));
    asker.step(msg(2, 3, 1, append(0, 0, vec![], 0))).unwrap();
    drain(&mut asker);
    asker.read_index(8).unwrap();
    assert_eq!(drain(&mut asker), vec![msg(3, 2, 1, read_index(8))]);
    let out = answer(&mut asker, out.messages[0].clone());
    assert_eq!(out.failed_reads, vec![8], "its caller may retry");
    assert_eq!(out.read_states, vec![]);
    // Reference: thesis §6.4
}

#[test]
fn stale_term_read_index_is_refused_at_the_current_term() {
    // A ReadIndex from an older term is refused, and the refusal carries the current term.
    let mut leader = node(config(1, 3), &[1], hard_state(1, 0, 1));
    elect(&mut leader);
    assert_eq!(leader.raft().term(), Term(2));
    let out = answer(&mut leader, msg(3, 1, 1, read_index(12)));
    assert_eq!(
        out.messages,
        vec![msg(1, 3, 2, read_index_response(12, None))]
    );
    assert_eq!(leader.raft().role(), Role::Leader);
    // Reference: thesis §6.4, §5.1
}

// ---- limits ----

#[test]
fn too_many_pending_reads_are_refused() {
    // The book of reads waiting for a round is bounded by max_pending_reads.
    let mut leader = streaming_leader(3, |c| c.max_pending_reads = 2);
    leader.read_index(1).unwrap();
    leader.read_index(2).unwrap();
    assert_eq!(
        leader.read_index(3),
        Err(ReadIndexError::TooManyPending { pending: 2, max: 2 })
    );
    let out = answer(&mut leader, msg(2, 1, 1, read_index(4)));
    assert_eq!(
        out.messages,
        [
            vec![msg(1, 2, 1, read_index_response(4, None))],
            heartbeats(3, 1, (1, 1), 1, 1),
        ]
        .concat(),
        "a forwarded read over the limit is refused to its follower"
    );
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out.read_states, vec![read_state(1, 1), read_state(2, 1)]);
    leader.read_index(5).unwrap();
    leader.read_index(6).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 2), "room again");
    // Reference: thesis §6.4
}

#[test]
fn too_many_reads_waiting_for_the_noop_are_refused() {
    // The queue of reads waiting for the no-op is bounded by max_pending_reads.
    let mut leader = new_leader(3, |c| c.max_pending_reads = 2);
    leader.read_index(1).unwrap();
    leader.step(msg(2, 1, 1, read_index(2))).unwrap();
    assert_eq!(
        leader.read_index(3),
        Err(ReadIndexError::TooManyPending { pending: 2, max: 2 })
    );
    let out = answer(&mut leader, msg(3, 1, 1, read_index(4)));
    assert_eq!(
        out.messages,
        vec![msg(1, 3, 1, read_index_response(4, None))]
    );

    // The no-op commits: both waiting reads move into one round.
    let out = answer(&mut leader, msg(2, 1, 1, accepted(1)));
    assert_eq!(out.messages, first_round_with_node_3_probing());
    let out = answer(&mut leader, msg(3, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out.read_states, vec![read_state(1, 1)]);
    assert_eq!(
        out.messages,
        vec![msg(1, 2, 1, read_index_response(2, Some(1)))]
    );
    // Reference: thesis §6.4
}

// ---- lease reads ----

#[test]
fn lease_needs_check_quorum() {
    // Lease reads rely on CheckQuorum and on a drift allowance below the election timeout.
    let mut without_check_quorum = config(1, 3);
    lease(&mut without_check_quorum);
    without_check_quorum.check_quorum = false;
    let err = RawNode::new(
        without_check_quorum,
        MemStorage::new(),
        HardState::default(),
    );
    assert_eq!(
        err.err(),
        Some(StartError::Config(ConfigError::BadLease {
            drift: 2,
            election: 10
        }))
    );

    let mut drift_too_large = config(1, 3);
    lease(&mut drift_too_large);
    drift_too_large.lease_clock_drift_ticks = 10;
    let err = RawNode::new(drift_too_large, MemStorage::new(), HardState::default());
    assert_eq!(
        err.err(),
        Some(StartError::Config(ConfigError::BadLease {
            drift: 10,
            election: 10
        }))
    );

    let mut largest_drift = config(1, 3);
    lease(&mut largest_drift);
    largest_drift.lease_clock_drift_ticks = 9;
    assert!(RawNode::new(largest_drift, MemStorage::new(), HardState::default()).is_ok());
    // Reference: thesis §6.4.1
}

#[test]
fn lease_read_is_served_without_a_round_while_the_lease_holds() {
    // Once a majority answered a round, reads are served at once until the lease runs out.
    let mut leader = streaming_leader(3, lease);
    leader.read_index(1).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 1), "no lease yet");
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out, served(1, 1));

    leader.read_index(2).unwrap();
    assert_eq!(
        drain_reads(&mut leader),
        served(2, 1),
        "no round: the lease holds"
    );

    leader.step(msg(3, 1, 1, read_index(3))).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(
        out.messages,
        vec![msg(1, 3, 1, read_index_response(3, Some(1)))]
    );

    // A new commit index is what lease reads are served at.
    leader.propose(b"x".to_vec()).unwrap();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted(2))).unwrap();
    drain(&mut leader);
    leader.read_index(4).unwrap();
    assert_eq!(drain_reads(&mut leader), served(4, 2));
    // Reference: thesis §6.4.1
}

#[test]
fn lease_expires_after_election_timeout_minus_drift() {
    // Heartbeat rounds 1, 2 and 3 start at ticks 1, 2 and 3. The answer to round 2 gives a
    // lease from tick 2 for 10 - 2 = 8 ticks: reads are served at once at ticks 3..=9.
    let mut leader = streaming_leader(3, lease);
    for tick in 1..=3 {
        leader.tick();
        let sent = drain(&mut leader);
        assert_eq!(sent, heartbeats(3, 1, (1, 1), 1, tick), "tick {tick}");
    }
    leader.step(msg(2, 1, 1, accepted_in_round(1, 2))).unwrap();
    drain(&mut leader);
    for tick in 3..=9 {
        if tick > 3 {
            leader.tick();
            drain(&mut leader);
        }
        leader.read_index(tick).unwrap();
        assert_eq!(drain_reads(&mut leader), served(tick, 1), "tick {tick}");
    }
    leader.tick();
    drain(&mut leader);
    assert_eq!(leader.raft().role(), Role::Leader);
    leader.read_index(10).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.read_states, vec![], "the lease ran out at tick 10");
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 11));
    // Reference: thesis §6.4.1
}

#[test]
fn lease_runs_from_the_start_of_the_answered_round() {
    // A later answer for round 5 (started at tick 5) extends the lease to tick 13; an answer
    // for an older round afterwards never shortens it.
    let mut leader = streaming_leader(3, lease);
    for _tick in 1..=6 {
        leader.tick();
        drain(&mut leader);
    }
    leader.step(msg(3, 1, 1, accepted_in_round(1, 1))).unwrap();
    leader.step(msg(3, 1, 1, accepted_in_round(1, 5))).unwrap();
    leader.step(msg(2, 1, 1, accepted_in_round(1, 2))).unwrap();
    drain(&mut leader);
    for tick in 7..=12 {
        leader.tick();
        drain(&mut leader);
        leader.read_index(tick).unwrap();
        assert_eq!(drain_reads(&mut leader), served(tick, 1), "tick {tick}");
    }
    leader.tick();
    drain(&mut leader);
    leader.read_index(13).unwrap();
    assert_eq!(drain_reads(&mut leader).read_states, vec![], "tick 13");
    // Reference: thesis §6.4.1
}

#[test]
fn lease_counts_only_a_majority() {
    // Five nodes, heartbeat rounds 1..=4 at ticks 1..=4. The lease comes from the newest
    // round the leader and two followers have all answered, not from the newest answer.
    let mut leader = streaming_leader(5, lease);
    for _tick in 1..=4 {
        leader.tick();
        drain(&mut leader);
    }
    leader.step(msg(2, 1, 1, accepted_in_round(1, 4))).unwrap();
    leader.read_index(1).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.read_states, vec![], "two of five: no lease");
    assert_eq!(out.messages, heartbeats(5, 1, (1, 1), 1, 5));

    // Node 3 vouches for round 2 (tick 2): lease until tick 10.
    leader.step(msg(3, 1, 1, accepted_in_round(1, 2))).unwrap();
    leader.read_index(2).unwrap();
    assert_eq!(drain_reads(&mut leader), served(2, 1));
    // Node 4 vouches for round 3 (tick 3): lease until tick 11.
    leader.step(msg(4, 1, 1, accepted_in_round(1, 3))).unwrap();
    for tick in 5..=10 {
        leader.tick();
        drain(&mut leader);
        leader.read_index(100 + tick).unwrap();
        assert_eq!(
            drain_reads(&mut leader),
            served(100 + tick, 1),
            "tick {tick}"
        );
    }
    leader.tick();
    drain(&mut leader);
    leader.read_index(111).unwrap();
    assert_eq!(drain_reads(&mut leader).read_states, vec![], "tick 11");
    // Reference: thesis §6.4.1
}

#[test]
fn lease_reads_on_a_new_leader_wait_for_its_noop() {
    // A lease does not make up for a commit index that may lag: the no-op comes first.
    let mut leader = new_leader(3, lease);
    leader.tick();
    drain(&mut leader);
    leader.step(msg(2, 1, 1, accepted_in_round(0, 1))).unwrap();
    drain(&mut leader);
    assert_eq!(leader.raft().log().committed(), LogIndex(0));
    leader.read_index(1).unwrap();
    assert_eq!(
        drain_reads(&mut leader),
        nothing(),
        "a lease is no commit index"
    );
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(
        out,
        served(1, 1),
        "served under the lease once the no-op commits"
    );
    // Reference: thesis §6.4.1, §6.4
}

#[test]
fn a_new_term_starts_without_a_lease() {
    // A lease belongs to one term of leadership; a re-elected leader earns a new one.
    let mut leader = streaming_leader(3, lease);
    leader.read_index(1).unwrap();
    drain(&mut leader);
    let out = answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 1)));
    assert_eq!(out, served(1, 1));
    // Deposed and elected again at once, within what was its lease.
    leader.step(msg(3, 1, 2, accepted_in_round(1, 1))).unwrap();
    drain(&mut leader);
    elect(&mut leader);
    assert_eq!(leader.raft().term(), Term(3));
    leader.step(msg(2, 1, 3, accepted(2))).unwrap();
    drain(&mut leader);
    assert_eq!(leader.raft().log().committed(), LogIndex(2));
    leader.read_index(2).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.read_states, vec![], "the old term's lease is gone");
    assert_eq!(
        out.messages,
        vec![
            msg(1, 2, 3, append_in_round(2, 3, vec![], 2, 1)),
            msg(1, 3, 3, append_in_round(1, 1, vec![], 1, 1)),
        ],
        "rounds restart at 1"
    );
    // Reference: thesis §6.4.1
}

#[test]
fn lease_ends_when_a_leadership_transfer_begins() {
    // A transfer's vote requests are answered even by voters that heard from the leader a
    // moment ago, so the target can win inside the old leader's lease.
    let mut cluster = CoreCluster::with_config(3, lease);
    let old = cluster.tick_until_leader();
    cluster.propose(old, b"a");
    cluster.tick_all();
    let target = if old == 2 { 3 } else { 2 };
    // The old leader is cut off right after its TimeoutNow leaves.
    cluster.intercept(move |m| {
        m.to.0 != old && (m.from.0 != old || m.body == MessageBody::TimeoutNow)
    });
    cluster
        .node_mut(old)
        .transfer_leadership(NodeId(target))
        .unwrap();
    cluster.deliver_all();
    target_writes_b_and_the_cut_off_leader_reads_nothing(&mut cluster, old, target, 5);
    // Reference: thesis §6.4.1, §3.10
}

#[test]
fn lease_stays_off_after_an_abandoned_transfer() {
    // The TimeoutNow may still be in flight when the transfer is abandoned: the lease is
    // not trusted again in this term.
    let mut leader = streaming_leader(3, lease);
    leader.read_index(1).unwrap();
    drain(&mut leader);
    assert_eq!(
        answer(&mut leader, msg(2, 1, 1, accepted_in_round(1, 1))),
        served(1, 1)
    );
    leader.transfer_leadership(NodeId(2)).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.messages, vec![msg(1, 2, 1, MessageBody::TimeoutNow)]);
    leader.read_index(2).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.read_states, vec![], "no lease read during a transfer");
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 2));
    for tick in 1..=10 {
        leader.tick();
        drain(&mut leader);
        let round = leader_round(tick);
        leader
            .step(msg(3, 1, 1, accepted_in_round(1, round)))
            .unwrap();
        drain(&mut leader);
    }
    assert_eq!(leader.raft().lead_transferee(), None, "abandoned");
    assert_eq!(leader.raft().role(), Role::Leader);
    leader.read_index(3).unwrap();
    let out = drain_reads(&mut leader);
    assert_eq!(out.read_states, vec![], "still no lease in this term");
    assert_eq!(out.messages, heartbeats(3, 1, (1, 1), 1, 13));

    // Leading again in a later term, it has a lease again.
    leader.step(msg(3, 1, 2, accepted_in_round(1, 13))).unwrap();
    drain(&mut leader);
    elect(&mut leader);
    leader.step(msg(2, 1, 3, accepted_in_round(2, 0))).unwrap();
    leader.read_index(4).unwrap();
    drain(&mut leader);
    leader.step(msg(2, 1, 3, accepted_in_round(2, 1))).unwrap();
    assert_eq!(drain_reads(&mut leader), served(4, 2));
    leader.read_index(5).unwrap();
    assert_eq!(drain_reads(&mut leader), served(5, 2));
    // Reference: thesis §6.4.1, §3.10
}

#[test]
fn late_timeout_now_cannot_make_a_lease_read_stale() {
    // The TimeoutNow is held up until the transfer was abandoned and the old leader's
    // followers answered it again. When it arrives, the target is elected at once and
    // commits a write; the cut-off old leader must not serve a read from a lease.
    let mut cluster = CoreCluster::with_config(3, lease);
    let old = cluster.tick_until_leader();
    cluster.propose(old, b"a");
    let target = if old == 2 { 3 } else { 2 };
    let held = Rc::new(RefCell::new(Vec::new()));
    let hold = Rc::clone(&held);
    cluster.intercept(move |m| {
        let timeout_now = m.body == MessageBody::TimeoutNow;
        if timeout_now {
            hold.borrow_mut().push(m.clone());
        }
        !timeout_now
    });
    cluster
        .node_mut(old)
        .transfer_leadership(NodeId(target))
        .unwrap();
    for _tick in 0..12 {
        cluster.tick_all();
    }
    assert_eq!(
        cluster.node(old).raft().lead_transferee(),
        None,
        "abandoned"
    );
    assert_eq!(cluster.node(old).raft().role(), Role::Leader);

    cluster.heal();
    cluster.isolate(old);
    let timeout_now = held.borrow()[0].clone();
    cluster.node_mut(target).step(timeout_now).unwrap();
    cluster.deliver_all();
    target_writes_b_and_the_cut_off_leader_reads_nothing(&mut cluster, old, target, 6);
    // Reference: thesis §6.4.1, §3.10
}

/// The heartbeat round started at `tick` by a leader whose rounds 1 and 2 were started for
/// reads before its first tick.
/// The target has won: it commits `b` after `a`. The old leader, cut off and unaware, is asked
/// for read `ctx`: it must not answer from a lease, which would miss `b`.
fn target_writes_b_and_the_cut_off_leader_reads_nothing(
    cluster: &mut CoreCluster,
    old: u64,
    target: u64,
    ctx: u64,
) {
    assert_eq!(cluster.node(target).raft().role(), Role::Leader);
    cluster.propose(target, b"b");
    assert_eq!(
        cluster.applied_data(target),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(
        cluster.node(old).raft().role(),
        Role::Leader,
        "it heard nothing"
    );
    cluster.node_mut(old).read_index(ctx).unwrap();
    cluster.deliver_all();
    let old_reads = cluster.read_states.get(&NodeId(old)).cloned();
    assert_eq!(
        old_reads.unwrap_or_default(),
        vec![],
        "a lease read would miss b"
    );
}

fn leader_round(tick: u64) -> u64 {
    tick + 2
}

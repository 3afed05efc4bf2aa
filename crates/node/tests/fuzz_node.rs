//! Fuzzing the node on the stable toolchain: a healthy three-node cluster of real `Node`s over
//! `MemDisk` serves writes and ticks while an attacker with a forged peer connection sends
//! generated messages to its nodes — absurd terms and indexes, gaps, wrong ids, TimeoutNow
//! from anyone, snapshots of garbage or of a real state machine, whole or in chunks — and
//! nodes restart from their disks at random. No node may panic or stop, and after every
//! action every node keeps `applied <= committed <= last index`, a durable term that never
//! decreases and one durable vote per term; at the end every node opens again from its disk.
//!
//! An attacker who can pose as the leader can still make a node store forged entries (Raft
//! trusts the leader): what must hold is that the node survives it, not that the replicas
//! agree.
//!
//! `SKIFF_FUZZ_CASES` (or `SKIFF_FUZZ_CASES_NODE`) sets the number of cases.

mod common;
#[path = "../../raft/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use common::NodeCluster;
use std::cell::RefCell;

use fuzz_support::{addressed, fuzz_cases, fuzz_config, message, Outcomes};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use skiff_kv::{Command, KvConfig, StateMachine};
use skiff_raft::{LogIndex, LogStorage, Message, MessageBody, NodeId, SnapshotMeta, Term};

/// The bytes of a real node snapshot (address book, then a state machine with a few keys).
fn real_snapshot() -> Vec<u8> {
    let mut state_machine = StateMachine::new(KvConfig::default()).expect("default config");
    for (index, key) in ["a", "b", "c"].into_iter().enumerate() {
        let command = Command::Set {
            key: key.into(),
            value: b"forged".to_vec(),
            condition: Default::default(),
        };
        state_machine.apply(index as u64 + 1, command, None);
    }
    let mut data = Vec::new();
    skiff_node::payload::put_snapshot_header(&Default::default(), &mut data);
    state_machine.snapshot_into(&mut data);
    data
}

/// What an InstallSnapshot carries.
#[derive(Clone, Debug)]
enum SnapshotData {
    /// What the generator drew (garbage).
    AsDrawn,
    /// A real snapshot from `offset` on, or its first `offset` bytes.
    Real { split: usize, head: bool },
}

#[derive(Clone, Debug)]
enum Action {
    Forge {
        to: u64,
        draw: (NodeId, NodeId, u64, MessageBody),
        snapshot: SnapshotData,
    },
    /// An InstallSnapshot aimed to pass validation: sent in `to`'s current term (or the next)
    /// by a member, with a plausible configuration, at an index ahead of `to`'s log.
    ForgeSnapshot {
        to: u64,
        from: u64,
        next_term: bool,
        ahead: u64,
        snapshot: SnapshotData,
    },
    Tick(u8),
    Write(u64),
    Reopen(u64),
}

fn action() -> impl Strategy<Value = Action> {
    let data = prop::collection::vec(any::<u8>(), 0..8).boxed();
    let snapshot = prop_oneof![
        Just(SnapshotData::AsDrawn),
        (0usize..200, any::<bool>()).prop_map(|(split, head)| SnapshotData::Real { split, head }),
    ];
    prop_oneof![
        10 => (1u64..=3, message(data), snapshot.clone())
            .prop_map(|(to, draw, snapshot)| Action::Forge { to, draw, snapshot }),
        3 => (1u64..=3, 1u64..=3, any::<bool>(), 0u64..6, snapshot.clone()).prop_map(
            |(to, from, next_term, ahead, snapshot)| Action::ForgeSnapshot {
                to,
                from,
                next_term,
                ahead,
                snapshot,
            }
        ),
        3 => (1u8..30).prop_map(Action::Tick),
        2 => (1u64..=3).prop_map(Action::Write),
        1 => (1u64..=3).prop_map(Action::Reopen),
    ]
}

/// Puts a real snapshot (or part of it) in an InstallSnapshot when `snapshot` says so.
fn fill_snapshot(body: &mut MessageBody, snapshot: &SnapshotData, real: &[u8]) {
    if let (
        MessageBody::InstallSnapshot {
            offset, data, done, ..
        },
        SnapshotData::Real { split, head },
    ) = (body, snapshot)
    {
        let split = (*split).min(real.len());
        if *head {
            (*offset, *data, *done) = (0, real[..split].to_vec(), split == real.len());
        } else {
            (*offset, *data, *done) = (split as u64, real[split..].to_vec(), true);
        }
    }
}

/// Forges `m` and counts the outcome, and whether a snapshot got installed.
fn forge(cluster: &mut NodeCluster, m: Message, outcomes: &mut Outcomes) {
    let to = m.to;
    let before = cluster.nodes[&to].wal().snapshot_meta().index;
    outcomes.count(&cluster.forge(m));
    if cluster.nodes[&to].wal().snapshot_meta().index != before {
        outcomes.note("a snapshot was installed");
    }
}

fn run(
    cluster: &mut NodeCluster,
    action: &Action,
    real: &[u8],
    writes: &mut u64,
    outcomes: &mut Outcomes,
) {
    match action {
        Action::Forge { to, draw, snapshot } => {
            let mut m = addressed(draw.clone(), NodeId(*to));
            fill_snapshot(&mut m.body, snapshot, real);
            if cluster.nodes.contains_key(&m.to) {
                forge(cluster, m, outcomes);
            }
        }
        Action::ForgeSnapshot {
            to,
            from,
            next_term,
            ahead,
            snapshot,
        } => {
            let Some(node) = cluster.nodes.get(&NodeId(*to)) else {
                return;
            };
            let raft = node.raw().raft();
            let term = Term(raft.term().0 + u64::from(*next_term));
            let from = if from == to { to % 3 + 1 } else { *from };
            let mut body = MessageBody::InstallSnapshot {
                meta: SnapshotMeta {
                    index: LogIndex(raft.log().last_index().0 + ahead),
                    term: Term(term.0.max(1)),
                    voters: vec![NodeId(1), NodeId(2), NodeId(3)],
                    voters_outgoing: vec![],
                    learners: vec![],
                },
                offset: 0,
                data: b"garbage".to_vec(),
                done: true,
            };
            fill_snapshot(&mut body, snapshot, real);
            let m = Message {
                from: NodeId(from),
                to: NodeId(*to),
                term,
                body,
            };
            forge(cluster, m, outcomes);
        }
        Action::Tick(ticks) => cluster.tick(*ticks as usize),
        Action::Write(at) => {
            *writes += 1;
            let _ = cluster.write(*at, "k", &writes.to_string());
        }
        Action::Reopen(id) => cluster.reopen(*id),
    }
}

#[test]
fn hostile_messages_never_stop_a_node() {
    let cases = fuzz_cases("node", 64);
    let mut runner = TestRunner::new(fuzz_config(cases));
    let outcomes = RefCell::new(Outcomes::default());
    let real = real_snapshot();
    let result = runner.run(&prop::collection::vec(action(), 1..30), |actions| {
        let mut cluster = NodeCluster::new();
        cluster.elect(1);
        let mut writes = 0;
        for action in &actions {
            run(
                &mut cluster,
                action,
                &real,
                &mut writes,
                &mut outcomes.borrow_mut(),
            );
            cluster.check_invariants(&format!("{action:?}"));
        }
        for id in 1..=3 {
            cluster.reopen(id);
        }
        cluster.check_invariants("reopening every node");
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!(
        "{}",
        outcomes
            .borrow()
            .report(&format!("fuzz_node: {cases} cases; forged messages"))
    );
}

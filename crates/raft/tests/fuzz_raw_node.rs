//! Fuzzing the core on the stable toolchain: a live `RawNode` — a fresh follower, a follower
//! with a log, or a leader — takes generated message sequences (absurd terms and indexes,
//! gaps, wrong ids, garbage snapshots, TimeoutNow from anyone) between ticks and proposals,
//! and runs every Ready through the contract on `MemStorage`. It must never panic, and after
//! every step:
//! - the term never decreases, and a vote cast in a term never changes (§5.2, Figure 2);
//! - `applied <= committed <= last index` (the invariants on `RaftLog`);
//! - the durable hard state's commit index lies within the durable log;
//!
//! and at the end the node restarts from its storage and durable hard state.
//!
//! `SKIFF_FUZZ_CASES` (or `SKIFF_FUZZ_CASES_RAW_NODE`) sets the number of cases.

mod fuzz_support;
mod harness;

use std::cell::RefCell;

use fuzz_support::{addressed, fuzz_cases, fuzz_config, message, Outcomes};
use harness::*;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use skiff_raft::{HardState, LogStorage, MemStorage, Message, NodeId, RawNode, Term};

#[derive(Clone, Debug)]
enum Action {
    Deliver((NodeId, NodeId, u64, skiff_raft::MessageBody)),
    Tick(u8),
    Propose,
    Campaign,
}

fn action() -> impl Strategy<Value = Action> {
    let data = prop::collection::vec(any::<u8>(), 0..8).boxed();
    prop_oneof![
        8 => message(data).prop_map(Action::Deliver),
        2 => (1u8..40).prop_map(Action::Tick),
        1 => Just(Action::Propose),
        1 => Just(Action::Campaign),
    ]
}

/// The node under test, with what its storage durably holds.
struct Subject {
    node: RawNode<MemStorage>,
    durable: HardState,
    /// The highest term seen, and the vote cast in it.
    seen: (Term, Option<NodeId>),
}

impl Subject {
    fn start(kind: u8) -> Subject {
        let mut node = match kind {
            0 => node(config(1, 3), &[], HardState::default()),
            1 => node(config(1, 3), &[1, 1, 2, 2, 3], hard_state(3, 2, 3)),
            _ => {
                let mut leader = node(config(1, 3), &[1, 2], hard_state(2, 0, 1));
                elect(&mut leader);
                leader
            }
        };
        let durable = node.raft().hard_state();
        drain(&mut node);
        let seen = (node.raft().term(), node.raft().vote());
        Subject {
            node,
            durable,
            seen,
        }
    }

    /// Runs every Ready through the contract: persist, then advance.
    fn drive(&mut self) {
        for _ in 0..100 {
            if !self.node.has_ready() {
                return;
            }
            let ready = self.node.ready();
            if let Err(error) = ready.write_log(self.node.storage_mut()) {
                panic!("storage refused a Ready the core built: {error}");
            }
            if let Some(hard_state) = ready.hard_state {
                self.durable = hard_state;
            }
            self.node.advance(ready);
        }
        panic!("the node never ran out of work");
    }

    fn check(&mut self, after: &str) {
        let raft = self.node.raft();
        let (term, vote) = (raft.term(), raft.vote());
        assert!(
            term >= self.seen.0,
            "{after}: term went back from {:?} to {term:?}",
            self.seen.0
        );
        if term == self.seen.0 && self.seen.1.is_some() {
            assert_eq!(vote, self.seen.1, "{after}: a second vote in {term:?}");
        }
        self.seen = (term, vote);
        let log = raft.log();
        assert!(
            log.applied() <= log.committed(),
            "{after}: applied past committed"
        );
        assert!(
            log.committed() <= log.last_index(),
            "{after}: committed past the log"
        );
        let storage = self.node.raft().log().storage();
        assert!(
            self.durable.commit <= storage.last_index(),
            "{after}: durable commit {:?} past the durable log {:?}",
            self.durable.commit,
            storage.last_index()
        );
    }

    fn apply(&mut self, action: &Action, outcomes: &mut Outcomes) {
        match action {
            Action::Deliver(draw) => {
                let m: Message = addressed(draw.clone(), NodeId(1));
                outcomes.count(&self.node.step(m));
            }
            Action::Tick(ticks) => {
                for _ in 0..*ticks {
                    self.node.tick();
                    self.drive();
                }
            }
            Action::Propose => {
                let _ = self.node.propose(b"x".to_vec());
            }
            Action::Campaign => self.node.campaign(),
        }
        self.drive();
        self.check(&format!("{action:?}"));
    }

    /// Restarts from the storage and the durable hard state, as after a crash.
    fn restart(self) -> RawNode<MemStorage> {
        let storage = self.node.into_storage();
        let mut config = config(1, 3);
        config.applied = storage.snapshot_meta().index;
        RawNode::new(config, storage, self.durable).expect("restarts from its own storage")
    }
}

#[test]
fn hostile_messages_never_break_a_raw_node() {
    let cases = fuzz_cases("raw_node", 256);
    let mut runner = TestRunner::new(fuzz_config(cases));
    let outcomes = RefCell::new(Outcomes::default());
    let strategy = (0u8..3, prop::collection::vec(action(), 1..40));
    let result = runner.run(&strategy, |(kind, actions)| {
        let mut subject = Subject::start(kind);
        for action in &actions {
            subject.apply(action, &mut outcomes.borrow_mut());
        }
        let durable = subject.durable;
        let restarted = subject.restart();
        prop_assert_eq!(restarted.raft().term(), durable.term);
        prop_assert_eq!(restarted.raft().vote(), durable.vote);
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!(
        "{}",
        outcomes
            .borrow()
            .report(&format!("fuzz_raw_node: {cases} cases; messages"))
    );
}

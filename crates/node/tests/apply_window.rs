//! A node applies its committed entries a window at a time: before it applies an entry, its
//! state machine has been shown that entry's request, in a window of at most
//! [`APPLY_WINDOW`] ([`StateMachine::prefetch`]), and what is applied, and in what order,
//! is what was proposed. The state machine here records every hint and every apply.

use std::cell::RefCell;

use skiff_node::{ClientSession, NoObserver, Node, NodeConfig, StateMachine, APPLY_WINDOW};
use skiff_raft::{Config, LogIndex, NodeId, Role};
use skiff_wal::MemDisk;

/// What the state machine was told, in order.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    /// A hint: the numbers of the requests shown.
    Shown(Vec<u64>),
    Applied(u64),
}

/// A state machine of numbers that records what it is shown and what it applies.
#[derive(Debug, Default)]
struct Recorder {
    seen: RefCell<Vec<Seen>>,
    applied: LogIndex,
}

#[derive(Debug)]
struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed bytes")
    }
}

impl std::error::Error for Malformed {}

fn number(bytes: &[u8]) -> Result<u64, Malformed> {
    Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| Malformed)?))
}

impl StateMachine for Recorder {
    type Command = u64;
    type Reply = Result<u64, String>;
    type Config = ();
    type Error = Malformed;

    fn new(_: &()) -> Result<Recorder, Malformed> {
        Ok(Recorder::default())
    }
    fn is_read_only(_: &u64) -> bool {
        false
    }
    fn encode_command(n: u64, _: Option<ClientSession>) -> Vec<u8> {
        n.to_le_bytes().to_vec()
    }
    fn decode_command(bytes: &[u8]) -> Result<(u64, Option<ClientSession>), Malformed> {
        Ok((number(bytes)?, None))
    }
    fn apply(
        &mut self,
        index: LogIndex,
        n: u64,
        _: Option<ClientSession>,
        _: Option<u64>,
    ) -> Result<u64, String> {
        self.applied = index;
        self.seen.borrow_mut().push(Seen::Applied(n));
        Ok(n)
    }
    fn prefetch<'a>(&self, requests: impl Iterator<Item = &'a [u8]> + Clone) {
        let shown = requests.map(|bytes| number(bytes).unwrap_or(u64::MAX));
        self.seen.borrow_mut().push(Seen::Shown(shown.collect()));
    }
    fn read(&self, _: &u64) -> Result<u64, String> {
        Ok(0)
    }
    fn applied_index(&self) -> LogIndex {
        self.applied
    }
    fn snapshot_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.applied.0.to_le_bytes());
    }
    fn restore(_: &(), bytes: &[u8]) -> Result<Recorder, Malformed> {
        Ok(Recorder {
            applied: LogIndex(number(bytes)?),
            ..Recorder::default()
        })
    }
    fn encode_reply(reply: &Result<u64, String>) -> Vec<u8> {
        match reply {
            Ok(n) => n.to_le_bytes().to_vec(),
            Err(text) => text.as_bytes().to_vec(),
        }
    }
    fn decode_reply(bytes: &[u8]) -> Result<Result<u64, String>, Malformed> {
        Ok(Ok(number(bytes)?))
    }
    fn refused(text: String) -> Result<u64, String> {
        Err(text)
    }
    fn refusal_text(reply: &Result<u64, String>) -> Option<&str> {
        reply.as_ref().err().map(String::as_str)
    }
    fn done() -> Result<u64, String> {
        Ok(0)
    }
}

/// A one-node cluster, leading.
fn leader() -> Node<MemDisk, Recorder> {
    let mut raft = Config::new(NodeId(1), [NodeId(1)]);
    raft.seed = 1;
    let (mut node, _) =
        Node::open(MemDisk::new(), "/window", NodeConfig::new(raft, 7)).expect("opens");
    node.campaign();
    node.run(&mut NoObserver).expect("the in-memory disk works");
    assert_eq!(node.raw().raft().role(), Role::Leader);
    node
}

#[test]
fn every_entry_is_shown_in_a_window_before_it_is_applied_and_applied_in_order() {
    let mut node = leader();
    let writes: Vec<u64> = (1..=100).collect();
    for &n in &writes {
        node.submit_in_session(n, n, None);
    }
    node.run(&mut NoObserver).expect("the in-memory disk works");
    let seen = node.state_machine().seen.borrow().clone();
    let applied: Vec<u64> = seen
        .iter()
        .filter_map(|seen| match seen {
            Seen::Applied(n) => Some(*n),
            Seen::Shown(_) => None,
        })
        .collect();
    assert_eq!(applied, writes);
    let mut window: &[u64] = &[];
    let mut windows = 0;
    for seen in &seen {
        match seen {
            Seen::Shown(requests) => {
                assert!(
                    requests.len() <= APPLY_WINDOW,
                    "a window of {}",
                    requests.len()
                );
                window = requests;
                windows += 1;
            }
            Seen::Applied(n) => assert!(window.contains(n), "{n} applied, not shown first"),
        }
    }
    assert!(windows >= writes.len().div_ceil(APPLY_WINDOW));
}

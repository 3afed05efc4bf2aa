//! [`StateMachine`]: what a node replicates. The node hands each committed command to it in
//! log order, serves reads from it once their read index is applied, and snapshots and
//! restores it (freezing its state first, when it can, so that the snapshot is serialized off
//! the applying thread); the log, the network and the batch pipeline stay the node's.
//!
//! `skiff-kv`'s key-value store is the first implementation (see `kv.rs`); an application
//! brings its own to run on Skiff's driver and durable log (`examples/counter.rs`).

use std::fmt::Debug;

use skiff_raft::LogIndex;

/// A client's place in its exactly-once session (thesis §6.3): the state machine applies
/// each `(client_id, sequence)` once, and answers a retry with the reply it gave first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSession {
    /// Which client sent the request.
    pub client_id: u64,
    /// The client's request number: 1 for its first request, then increasing; a retry
    /// reuses the number of the request it retries.
    pub sequence: u64,
    /// The lowest sequence whose answer the client still waits for (at most `sequence`): a
    /// client with several requests in flight (pipelining) lets the state machine forget
    /// the replies below it.
    pub lowest_unanswered: u64,
    /// An earlier copy of this request may already be in the log (the node sends it again
    /// after a leader change lost its outcome): a state machine that does not know the
    /// session must not apply it as a first request unless it forgot no session active after
    /// [`proposed_after`](Self::proposed_after). Clients send `false`.
    pub resubmitted: bool,
    /// The commit index the node knew when it first sent the request; copies sent again keep
    /// it. Every copy sits above it (§5.4), so a state machine that forgot no session active
    /// after it never applied one. Set by [`Node::submit_in_session`](crate::Node::submit_in_session);
    /// clients send 0.
    pub proposed_after: u64,
}

/// A state machine's state frozen at one applied index ([`StateMachine::freeze`]), which a
/// driver serializes on whichever thread writes the snapshot file.
pub trait FrozenState: Send + 'static {
    /// Writes the state's snapshot bytes to `out`, exactly those the state machine's
    /// [`snapshot_into`](StateMachine::snapshot_into) appended when it was frozen, a part at
    /// a time (so that a driver streams them to the file and never holds them whole).
    fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()>;
}

/// A replicated state machine. Every replica applies the same commands in the same order,
/// so `apply` must be deterministic: no clock, randomness or I/O, and the same result for
/// the same state and command on every node.
pub trait StateMachine: Sized {
    /// A client's command.
    type Command: Debug;
    /// The answer to a command.
    type Reply: Debug;
    /// The settings it starts and restores with; the same on every node.
    type Config: Clone + Debug;
    /// Why bytes do not decode (a command, a reply or a snapshot) or settings are invalid.
    type Error: std::error::Error + Send + Sync + 'static;

    /// An empty state machine.
    fn new(config: &Self::Config) -> Result<Self, Self::Error>;

    /// Whether `command` only reads: it is then served through ReadIndex (thesis §6.4) and
    /// never enters the log.
    fn is_read_only(command: &Self::Command) -> bool;

    /// The bytes of a log entry holding `command` (and its client session). They must not
    /// begin with [`MEMBER_ADDRESS_TAG`](crate::payload::MEMBER_ADDRESS_TAG), the first byte
    /// of the node's own records.
    fn encode_command(command: Self::Command, session: Option<ClientSession>) -> Vec<u8>;

    /// The command (and client session) in a log entry's bytes.
    fn decode_command(bytes: &[u8]) -> Result<(Self::Command, Option<ClientSession>), Self::Error>;

    /// Applies a committed command at log index `index`, once, in log order. With a session,
    /// a sequence already applied is not applied again: its first reply comes back.
    ///
    /// `log_time_ms` is the entry's log time: the leader's wall clock in Unix milliseconds
    /// when it proposed it, never less than an earlier stamp in the log (`None` for an entry
    /// written before entries were stamped). Every replica sees the same stamp, so a state
    /// machine may decide by it (a key's time to live) and stay deterministic.
    fn apply(
        &mut self,
        index: LogIndex,
        command: Self::Command,
        session: Option<ClientSession>,
        log_time_ms: Option<u64>,
    ) -> Self::Reply;

    /// A hint that the commands of `requests` (each as [`encode_command`] wrote it) are
    /// about to be applied, in this order: the state machine may start loading what they
    /// will touch (a processor prefetch), so that a run of applies waits on memory once
    /// rather than once an entry. It must change nothing, and take bytes that do not decode
    /// as no hint. By default it does nothing.
    ///
    /// [`encode_command`]: StateMachine::encode_command
    fn prefetch<'a>(&self, requests: impl Iterator<Item = &'a [u8]> + Clone) {
        let _ = requests;
    }

    /// Applies an entry that carries only the log time (see
    /// [`next_deadline_ms`](StateMachine::next_deadline_ms)). By default nothing happens.
    fn pass_time(&mut self, index: LogIndex, log_time_ms: u64) {
        let _ = (index, log_time_ms);
    }

    /// The log time of the last stamped entry applied (or restored from a snapshot); 0 when
    /// the state machine does not keep time.
    fn log_time_ms(&self) -> u64 {
        0
    }

    /// The earliest log time at which the state machine wants to change without a command
    /// (a key expires): once the leader's clock passes it, the leader proposes an entry that
    /// carries only the time. `None` (the default): never.
    fn next_deadline_ms(&self) -> Option<u64> {
        None
    }

    /// Answers a read-only command from the current state.
    fn read(&self, command: &Self::Command) -> Self::Reply;

    /// [`read`](StateMachine::read) on a node whose wall clock reads `wall_clock_ms` (Unix
    /// milliseconds), for answers that count time down between entries (a key's TTL). It
    /// must change nothing. By default the clock is not used.
    fn read_at(&self, command: &Self::Command, wall_clock_ms: u64) -> Self::Reply {
        let _ = wall_clock_ms;
        self.read(command)
    }

    /// The last log index applied (or restored from a snapshot).
    fn applied_index(&self) -> LogIndex;

    /// Appends the whole state to `out`.
    fn snapshot_into(&self, out: &mut Vec<u8>);

    /// A frozen copy of the state, to be serialized on another thread while this one goes on
    /// applying: its [`FrozenState::write_snapshot`] must write exactly the bytes
    /// [`snapshot_into`](StateMachine::snapshot_into) writes now. It should take time
    /// independent of the state's size (a persistent map's clone). `None` (the default): the
    /// state machine cannot freeze, and the node serializes it in line.
    fn freeze(&self) -> Option<Box<dyn FrozenState>> {
        None
    }

    /// The state machine that [`snapshot_into`](StateMachine::snapshot_into) wrote.
    fn restore(config: &Self::Config, bytes: &[u8]) -> Result<Self, Self::Error>;

    /// The bytes of a reply, for a write a follower forwarded to the leader.
    fn encode_reply(reply: &Self::Reply) -> Vec<u8>;

    /// The reply in bytes from the leader.
    fn decode_reply(bytes: &[u8]) -> Result<Self::Reply, Self::Error>;

    /// The reply to a request the node refused or could not finish; `text` starts with a
    /// code (see [`refusals`](crate::refusals)).
    fn refused(text: String) -> Self::Reply;

    /// The text of `reply` if it is a refusal ([`refused`](StateMachine::refused) or a state
    /// machine's error), so the node can tell a session write's "not proposed" and "out of
    /// order" ([`refusals::OUT_OF_ORDER`](crate::refusals::OUT_OF_ORDER)) from its answer.
    fn refusal_text(reply: &Self::Reply) -> Option<&str>;

    /// The reply to a request the node completed that is not a command (a membership
    /// change, a member's address).
    fn done() -> Self::Reply;
}

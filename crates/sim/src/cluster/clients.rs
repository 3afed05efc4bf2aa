//! Clients of the simulated cluster: proposals, key-value requests handed to a node, and the
//! replies they get.

use super::*;
use skiff_node::ClientSession;

/// A proposal a leader accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The client's value.
    pub value: u64,
    /// The leader that accepted it.
    pub node: NodeId,
    /// Where it went in the log.
    pub index: LogIndex,
    /// The leader's term.
    pub term: Term,
}

/// Why a node did not take a proposal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The node is down or paused: nothing reached it.
    #[error("{0} is unreachable")]
    Unreachable(NodeId),
    /// Only the leader takes proposals (a scenario's proposal is not forwarded).
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The leader the node knows of.
        leader_hint: Option<NodeId>,
    },
    /// The node answered with this error at once.
    #[error("refused: {0:?}")]
    Reply(Reply),
}

/// What became of a client request handed to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// The node is down or paused: the request never reached it, so it was not applied.
    Unreachable,
    /// The node answered at once, without forwarding the request anywhere.
    Answered(Reply),
    /// The reply will come later (see [`Cluster::take_reply`]).
    Pending,
}

/// How a read ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Served: the value read (`None`: absent).
    Value(Option<String>),
    /// Refused by the node or the leader: certainly not served.
    Refused,
}

impl ReadOutcome {
    /// The outcome a `GET`'s reply tells.
    pub fn of(reply: &Reply) -> ReadOutcome {
        match reply {
            Reply::Bulk(bytes) => ReadOutcome::Value(Some(String::from_utf8_lossy(bytes).into())),
            Reply::Nil => ReadOutcome::Value(None),
            _ => ReadOutcome::Refused,
        }
    }
}

impl Cluster {
    /// Proposes `value` to the current leader. Returns the accepted proposal, if any leader took it.
    pub fn propose(&mut self, value: u64) -> Option<Proposal> {
        self.propose_padded(value, 0)
    }

    /// Proposes `value` followed by `padding` zero bytes to the current leader.
    pub fn propose_padded(&mut self, value: u64, padding: usize) -> Option<Proposal> {
        let leader = self.leader()?;
        self.propose_to(leader, value, padding).ok()
    }

    /// Proposes `value` (with `padding` more bytes) to `node`, which must lead: the write
    /// `SET last-value <value>` through [`Node::submit`].
    pub fn propose_to(
        &mut self,
        node: NodeId,
        value: u64,
        padding: usize,
    ) -> Result<Proposal, Refused> {
        let id = self.own_request();
        let command = value_command(value, padding);
        let (index, term) =
            self.propose_on_leader(node, id, |running| running.submit(id, command))?;
        let proposal = Proposal {
            value,
            node,
            index,
            term,
        };
        self.stats.proposals += 1;
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Proposed {
                node,
                value,
                index: index.0,
                term,
            },
        );
        self.clients.proposals.push(proposal.clone());
        Ok(proposal)
    }

    /// Proposes a key-value `command` to `node`, which must lead; its reply is kept for
    /// [`take_reply`](Cluster::take_reply) under the returned request id.
    pub fn propose_command(
        &mut self,
        node: NodeId,
        command: Command,
    ) -> Result<(RequestId, LogIndex, Term), Refused> {
        let id = self.own_request();
        let text = format!("{command:?}");
        let (index, term) =
            self.propose_on_leader(node, id, |running| running.submit(id, command))?;
        self.clients.waiting.insert(id, node);
        self.stats.proposals += 1;
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Note(format!("{node} accepted {text} at {index}/{term}")),
        );
        Ok((id, index, term))
    }

    /// A client hands `command` to `node` (leader or follower) under request `id`, which the
    /// caller keeps unique. A follower forwards a write to its leader; reads are served by
    /// `node` through ReadIndex.
    pub fn submit(&mut self, node: NodeId, id: RequestId, command: Command) -> Submitted {
        self.submit_in_session(node, id, command, None)
    }

    /// [`submit`](Cluster::submit) for a client with an exactly-once session (thesis §6.3):
    /// a write whose outcome a leader change lost is sent again by the node.
    pub fn submit_in_session(
        &mut self,
        node: NodeId,
        id: RequestId,
        command: Command,
        session: Option<ClientSession>,
    ) -> Submitted {
        if let Some(submitted) = self.injected_submit(node, id, &command) {
            return submitted;
        }
        let Some(running) = self.client_node(node) else {
            return Submitted::Unreachable;
        };
        let text = format!("{command:?}");
        let is_read = command.is_read_only();
        let before = running.raw().raft().log().last_index();
        running.submit_in_session(id, command, session);
        let session = session.map(|s| (s.client_id, s.sequence));
        self.note_proposals(node, id, before, session);
        self.clients.waiting.insert(id, node);
        if is_read {
            self.clients.reads.insert(id);
        }
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Note(format!("client request {id} to {node}: {text}")),
        );
        self.drain(node);
        self.mark_dirty(node);
        match self.clients.replies.remove(&id) {
            Some(reply) => Submitted::Answered(reply),
            None => Submitted::Pending,
        }
    }

    /// The reply to request `id`, once there is one.
    pub fn take_reply(&mut self, id: RequestId) -> Option<Reply> {
        self.clients.replies.remove(&id)
    }

    /// The reply to request `id`, if there is one, without taking it.
    pub fn peek_reply(&self, id: RequestId) -> Option<&Reply> {
        self.clients.replies.get(&id)
    }

    /// The client stops waiting for request `id` (it timed out): the node forgets it too.
    pub fn cancel(&mut self, id: RequestId) {
        self.clients.replies.remove(&id);
        self.clients.reads.remove(&id);
        if let Some(node) = self.clients.waiting.remove(&id) {
            if let Some(running) = self.running_mut(node) {
                // The node may send its client's later session writes again now.
                running.cancel(id);
                self.drain(node);
                self.mark_dirty(node);
            }
        }
    }

    /// Asks `node` for a linearizable read of `key`, identified by `ctx`. If the node
    /// refuses at once, returns the leader it knows of.
    pub fn read(&mut self, node: NodeId, ctx: u64, key: &str) -> Result<(), Option<NodeId>> {
        let command = Command::Get {
            key: key.as_bytes().to_vec(),
        };
        match self.submit(node, ctx, command) {
            Submitted::Pending => Ok(()),
            Submitted::Unreachable => Err(None),
            Submitted::Answered(reply) => {
                // Anything but a refusal answers the read at once; keep it for the caller.
                if ReadOutcome::of(&reply) != ReadOutcome::Refused {
                    self.clients.replies.insert(ctx, reply);
                    return Ok(());
                }
                Err(self
                    .running(node)
                    .and_then(|running| running.raw().raft().leader())
                    .filter(|&leader| leader != node))
            }
        }
    }

    /// The answer to read `ctx`, once there is one.
    pub fn take_read_reply(&mut self, ctx: u64) -> Option<ReadOutcome> {
        self.take_reply(ctx).as_ref().map(ReadOutcome::of)
    }

    /// The answer to read `ctx`, if there is one, without taking it.
    pub fn peek_read_reply(&self, ctx: u64) -> Option<ReadOutcome> {
        self.peek_reply(ctx).map(ReadOutcome::of)
    }

    /// Stops waiting for read `ctx`.
    pub fn forget_read(&mut self, ctx: u64) {
        self.cancel(ctx);
    }

    /// `node`'s key-value state machine (`None` while it is down).
    pub fn state_machine(&self, node: NodeId) -> Option<&StateMachine> {
        self.running(node).map(Node::state_machine)
    }

    /// Every proposal a leader accepted, in order.
    pub fn proposals(&self) -> &[Proposal] {
        &self.clients.proposals
    }
}

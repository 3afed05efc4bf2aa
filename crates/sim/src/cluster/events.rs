//! The event loop: the queue of simulated events, logical time, ticks, deliveries and pauses.

use super::*;

/// What the event queue holds; each is handled at its simulated time, in the order
/// scheduled. A node's events carry its `life`: those of a life that crashed are dropped.
#[derive(Debug)]
pub(super) enum SimEvent {
    /// One tick of the node's clock.
    Tick { node: NodeId, life: u64 },
    /// A message reaches its node.
    Deliver(Envelope),
    /// The node takes its next batch (`Node::begin_batch`) and sends what may leave now.
    Drive { node: NodeId, life: u64 },
    /// A seeded disk delay later, the batch is written (`Node::write_batch`).
    Persist { node: NodeId, life: u64 },
    /// Its sync returns (`Node::sync_batch`): what needed durability leaves, entries apply.
    Synced { node: NodeId, life: u64 },
    /// A snapshot file the node asked for is written and installed (`Node::write_snapshot`).
    SnapshotWritten { node: NodeId, life: u64 },
    /// A crashed node starts again from its disk.
    Restart { node: NodeId },
}

#[derive(Debug)]
pub(super) struct Scheduled {
    at_ms: u64,
    seq: u64,
    event: SimEvent,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: the earliest event is the greatest, for a max-heap.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

impl Cluster {
    pub(super) fn start_ticking(&mut self, id: NodeId, life: u64) {
        let phase = self.rng.gen_range(0..self.options.tick_ms);
        self.schedule(
            self.agenda.now_ms + phase + 1,
            SimEvent::Tick { node: id, life },
        );
    }

    pub(super) fn schedule(&mut self, at_ms: u64, event: SimEvent) {
        self.agenda.seq += 1;
        self.agenda.queue.push(Scheduled {
            at_ms,
            seq: self.agenda.seq,
            event,
        });
    }

    /// Simulated milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        self.agenda.now_ms
    }

    /// Runs for `ms` simulated milliseconds (stops early on a violation).
    pub fn run_for(&mut self, ms: u64) {
        let end = self.agenda.now_ms + ms;
        while self.checks.violation.is_none() && self.step_until(end) {}
        self.agenda.now_ms = self.agenda.now_ms.max(end);
    }

    /// Runs until `done` holds (checked after every event) or `budget_ms` passes.
    /// Returns whether `done` held.
    pub fn run_until(&mut self, budget_ms: u64, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        let end = self.agenda.now_ms + budget_ms;
        loop {
            if done(self) {
                return true;
            }
            if self.checks.violation.is_some() || !self.step_until(end) {
                self.agenda.now_ms = self.agenda.now_ms.max(end);
                return done(self);
            }
        }
    }

    /// Handles the next event if it is due by `end_ms`. Returns whether one was handled.
    pub(super) fn step_until(&mut self, end_ms: u64) -> bool {
        match self.agenda.queue.peek() {
            Some(next) if next.at_ms <= end_ms => {}
            _ => return false,
        }
        let Scheduled { at_ms, event, .. } = self.agenda.queue.pop().expect("peeked");
        self.agenda.now_ms = at_ms;
        match event {
            SimEvent::Tick { node, life } => self.on_tick(node, life),
            SimEvent::Deliver(message) => self.on_deliver(message),
            SimEvent::Drive { node, life } => self.on_drive(node, life),
            SimEvent::Persist { node, life } => self.on_persist(node, life),
            SimEvent::Synced { node, life } => self.on_synced(node, life),
            SimEvent::SnapshotWritten { node, life } => self.on_snapshot_written(node, life),
            SimEvent::Restart { node } => self.restart(node),
        }
        true
    }

    pub(super) fn paused_until(&self, node: NodeId) -> Option<u64> {
        self.timing
            .paused_until_ms
            .get(&node)
            .copied()
            .filter(|&until| until > self.agenda.now_ms)
    }

    pub(super) fn is_current_life(&self, node: NodeId, life: u64) -> bool {
        self.nodes
            .get(&node)
            .is_some_and(|n| n.is_up() && n.life == life)
    }

    pub(super) fn on_tick(&mut self, node: NodeId, life: u64) {
        if !self.is_current_life(node, life) {
            return;
        }
        self.schedule(
            self.agenda.now_ms + self.options.tick_ms,
            SimEvent::Tick { node, life },
        );
        if self.paused_until(node).is_some() {
            *self.timing.missed_ticks.entry(node).or_insert(0) += 1;
            return;
        }
        self.catch_up(node);
        if let Some(running) = self.running_mut(node) {
            running.tick();
            self.stats.ticks += 1;
            self.mark_dirty(node);
        }
    }

    /// A node that was paused first notices the time that passed.
    pub(super) fn catch_up(&mut self, node: NodeId) {
        let Some(missed) = self.timing.missed_ticks.remove(&node) else {
            return;
        };
        if let Some(running) = self.running_mut(node) {
            for _ in 0..missed {
                running.tick();
            }
            self.stats.ticks += missed;
            self.mark_dirty(node);
        }
    }

    pub(super) fn on_deliver(&mut self, message: Envelope) {
        let to = message.to();
        if let Some(until) = self.paused_until(to) {
            self.schedule(until, SimEvent::Deliver(message));
            return;
        }
        self.catch_up(to);
        let Some(running) = self.running_mut(to) else {
            self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Drop(message, "receiver down"),
            );
            self.stats.dropped += 1;
            return;
        };
        let before = running.raw().raft().log().last_index();
        let forwarded = match &message.message {
            PeerMessage::Forward { id, request, .. } => {
                Some((*id, omniscience::forwarded_session(request)))
            }
            _ => None,
        };
        // A write forwarded to a node that does not lead but knows who does: not proposed
        // here, refused `TRYAGAIN` naming the leader.
        let redirected = forwarded.is_some() && {
            let raft = running.raw().raft();
            raft.role() != Role::Leader && raft.leader().is_some_and(|leader| leader != to)
        };
        let result = running.step(message.clone());
        if redirected {
            self.stats.forwards_redirected += 1;
        }
        if let Some((request, session)) = forwarded {
            self.note_proposals(to, request, before, session);
        }
        self.trace
            .record(self.agenda.now_ms, TraceEvent::Deliver(message));
        if let Err(err) = result {
            if matches!(err, skiff_node::PeerMessageError::WrongIncarnation { .. }) {
                self.stats.incarnation_refusals += 1;
            }
            self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Note(format!("{to} refused a message: {err}")),
            );
        }
        self.drain(to);
        self.mark_dirty(to);
    }

    /// Whether an event of `node`'s `life` runs now: not if the node crashed since, and not
    /// yet if it is paused (`again` is scheduled for when it wakes). A node that runs first
    /// catches up on the ticks it missed.
    pub(super) fn runs_now(&mut self, node: NodeId, life: u64, again: SimEvent) -> bool {
        if !self.is_current_life(node, life) {
            return false;
        }
        if let Some(until) = self.paused_until(node) {
            self.schedule(until, again);
            return false;
        }
        self.catch_up(node);
        true
    }
}

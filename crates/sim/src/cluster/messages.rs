//! Messages between nodes: onto the seeded network, held back by a scenario, or delivered late.

use super::*;

impl Cluster {
    pub(super) fn send(&mut self, envelope: Envelope) {
        let message = &envelope.message;
        if let PeerMessage::Raft(raft) = message {
            if let Err(violation) = self.checks.checkers.sent(raft) {
                self.record_violation(violation);
            }
        }
        if let (Some(hold), PeerMessage::Raft(raft)) = (self.holding.filter.as_mut(), message) {
            if hold(raft) {
                self.trace.record(
                    self.agenda.now_ms,
                    TraceEvent::Note(format!("held back: {raft}")),
                );
                self.holding.held.push(raft.clone());
                return;
            }
        }
        self.stats.messages += 1;
        let is_request = match message {
            PeerMessage::Raft(raft) => {
                if matches!(
                    raft.body,
                    MessageBody::AppendEntriesResponse {
                        result: AppendResponse::Rejected { .. },
                        ..
                    }
                ) {
                    self.stats.append_rejections += 1;
                }
                if raft.body.is_request() {
                    self.stats.requests += 1;
                }
                self.stats.entry_bytes_sent += raft.entries_bytes();
                raft.body.is_request()
            }
            PeerMessage::Forward { .. } => {
                self.stats.forwards += 1;
                true
            }
            PeerMessage::ForwardReply { .. } => false,
            PeerMessage::IncarnationRefused { .. } => {
                self.stats.incarnation_notices += 1;
                false
            }
        };
        // Raft tolerates duplicated messages; forwards travel as on one connection, which
        // never delivers a message twice (a session write's copies are its node's to send).
        let may_duplicate = matches!(message, PeerMessage::Raft(_));
        let route = self.network.route(
            message.from(),
            message.to(),
            is_request,
            may_duplicate,
            &mut self.rng,
        );
        match route {
            Route::Lost(why) => {
                self.stats.dropped += 1;
                self.trace
                    .record(self.agenda.now_ms, TraceEvent::Drop(envelope, why));
            }
            Route::Deliver(delays) => {
                let late_by = self.late_by(message);
                for delay in delays {
                    let delay = delay + late_by;
                    self.schedule(
                        self.agenda.now_ms + delay,
                        SimEvent::Deliver(envelope.clone()),
                    );
                }
            }
        }
    }

    /// Until `ms` from now, client writes forwarded to `node` arrive only after that time (and
    /// their usual delay): a leader that hands leadership over meanwhile gets them after it
    /// has learned its successor, and must refuse them as not proposed.
    pub fn delay_forwards_to(&mut self, node: NodeId, ms: u64) {
        let until = self.agenda.now_ms + ms;
        self.holding.late_forwards = Some((node, until));
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Note(format!(
                "writes forwarded to {node} arrive after {until} ms"
            )),
        );
    }

    /// How much later than the network would deliver it `message` arrives.
    fn late_by(&self, message: &PeerMessage) -> u64 {
        match (message, self.holding.late_forwards) {
            (PeerMessage::Forward { to, .. }, Some((node, until))) if *to == node => {
                until.saturating_sub(self.agenda.now_ms)
            }
            _ => 0,
        }
    }

    /// From now on, Raft messages for which `filter` holds are kept back instead of sent.
    pub fn hold_messages(&mut self, filter: impl FnMut(&Message) -> bool + 'static) {
        self.holding.filter = Some(Box::new(filter));
    }

    /// Stops holding messages back; returns those held so far.
    pub fn stop_holding(&mut self) -> Vec<Message> {
        self.holding.filter = None;
        std::mem::take(&mut self.holding.held)
    }

    /// Delivers `message` after `delay_ms`, bypassing loss and partitions (a late arrival).
    pub fn deliver_later(&mut self, message: Message, delay_ms: u64) {
        // Sent by the node's current data directory.
        let incarnation = self
            .running(message.from)
            .map_or(1, |sender| sender.incarnation());
        self.schedule(
            self.agenda.now_ms + delay_ms,
            SimEvent::Deliver(Envelope::new(incarnation, PeerMessage::Raft(message))),
        );
    }
}

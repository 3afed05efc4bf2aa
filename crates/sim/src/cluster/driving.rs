//! Driving a node through its effects: each I/O step of a batch, and each snapshot file, in an event of its own, so that faults fall between them.

use super::*;

impl Cluster {
    /// The core has work: take its next Ready now, unless a batch is still being written
    /// (then the end of that write looks again).
    pub(super) fn mark_dirty(&mut self, node: NodeId) {
        self.note_appends(node);
        let Some(sim_node) = self.nodes.get(&node) else {
            return;
        };
        if !sim_node.is_writing() && self.timing.drive_scheduled.insert(node) {
            let life = sim_node.life;
            self.schedule(self.agenda.now_ms, SimEvent::Drive { node, life });
        }
    }

    /// First step of a batch: take a Ready, send what may go at once; the write comes a
    /// seeded disk delay later.
    pub(super) fn on_drive(&mut self, node: NodeId, life: u64) {
        if !self.runs_now(node, life, SimEvent::Drive { node, life }) {
            return;
        }
        self.timing.drive_scheduled.remove(&node);
        let began = self.running_mut(node).is_some_and(Node::begin_batch);
        if !began {
            return;
        }
        self.drain(node);
        self.check_log_settled(node);
        let (low, high) = self.options.disk_delay_ms;
        let delay = self.rng.gen_range(low..=high);
        self.schedule(self.agenda.now_ms + delay, SimEvent::Persist { node, life });
    }

    /// Second step, when the disk write reaches the file: the batch is written, and the
    /// entries durable before it are applied (`Node::apply_durable`), all of them or, with
    /// `apply_in_steps`, a step of them that `batch_synced` finishes. Its sync completes in a
    /// later event, as on a server that syncs on a writer thread; other events may come in
    /// between.
    pub(super) fn on_persist(&mut self, node: NodeId, life: u64) {
        let Some(BatchStep::Write(token)) =
            self.due_batch_step(node, life, SimEvent::Persist { node, life })
        else {
            return;
        };
        let mut recorder = Recorder::default();
        // Any node may apply early what was durable before its batch; the server's leader does,
        // in steps, and its followers leave it to `batch_synced`. The step comes from the time
        // and the node, not the seeded generator, so that the schedule stays the seed's.
        let at_most = if self.options.apply_in_steps {
            1 + usize::try_from((self.agenda.now_ms + node.0) % 64).unwrap_or(0)
        } else {
            usize::MAX
        };
        let Some(running) = self.running_mut(node) else {
            return;
        };
        if let Err(error) = running.write_batch(token) {
            self.record_violation(Violation {
                property: "Durable Log",
                detail: format!("{node} could not write a batch: {error}"),
            });
            return;
        }
        if let Err(error) = running.apply_durable(&mut recorder, at_most) {
            self.record_violation(Violation {
                property: "Durable Log",
                detail: format!(
                    "{node} could not apply what was durable before its batch: {error}"
                ),
            });
            return;
        }
        self.observe(node, recorder.observed);
        self.drain(node);
        let (low, high) = self.options.disk_delay_ms;
        let delay = self.rng.gen_range(0..=(high - low) / 2);
        self.schedule(self.agenda.now_ms + delay, SimEvent::Synced { node, life });
    }

    /// Third step, when the batch's sync returns: what needed durability is sent, the rest
    /// applied, clients answered, the core advanced.
    ///
    /// A snapshot the node then asks for is written in line, before the checkers look (as a
    /// node without a snapshot thread does), or with `snapshot_off_thread` in a later event.
    pub(super) fn on_synced(&mut self, node: NodeId, life: u64) {
        let in_line = !self.options.snapshot_off_thread;
        let mut recorder = Recorder::default();
        let Some(BatchStep::Sync(token)) =
            self.due_batch_step(node, life, SimEvent::Synced { node, life })
        else {
            return;
        };
        let Some(running) = self.running_mut(node) else {
            return;
        };
        let mut effects = Vec::new();
        let finished = running.sync_batch(token, &mut recorder).and_then(|()| {
            effects = running.take_effects();
            match take_snapshot_job(&mut effects) {
                // A node without a snapshot thread writes it before anything else.
                Some(job) if in_line => {
                    running.write_snapshot(job)?;
                    effects.extend(running.take_effects());
                    Ok(None)
                }
                job => Ok(job),
            }
        });
        let job = match finished {
            Ok(job) => job,
            Err(error) => {
                // The simulated disk fails only when a fault asks it to; none is asked here.
                self.record_violation(Violation {
                    property: "Durable Log",
                    detail: format!("{node} could not finish a batch: {error}"),
                });
                return;
            }
        };
        self.observe(node, recorder.observed);
        self.carry_out(node, effects);
        self.check_log_settled(node);
        if let Some(job) = job {
            self.schedule_snapshot_write(node, life, job);
        }
        self.mark_dirty(node);
    }

    /// With `snapshot_off_thread`: the frozen state is serialized and the snapshot file
    /// written and installed in a later event, as the server's snapshot thread does, so that
    /// messages, batches (applied to the live state machine, not to the frozen copy),
    /// crashes and snapshots from the leader come in between. One is written at a time: while a file
    /// of an earlier life is still pending, the node's new one is abandoned.
    pub(super) fn schedule_snapshot_write(&mut self, node: NodeId, life: u64, job: SnapshotJob) {
        if self.timing.pending_snapshots.contains_key(&node) {
            if let Some(running) = self.running_mut(node) {
                let _ = running.snapshot_abandoned(job.token);
            }
            return;
        }
        self.timing.pending_snapshots.insert(node, job);
        let (low, high) = self.options.disk_delay_ms;
        let delay = self.rng.gen_range(low..=high);
        self.schedule(
            self.agenda.now_ms + delay,
            SimEvent::SnapshotWritten { node, life },
        );
    }

    /// The snapshot file the node asked for is written and synced: install it.
    pub(super) fn on_snapshot_written(&mut self, node: NodeId, life: u64) {
        if !self.is_current_life(node, life) {
            // The node crashed meanwhile: the write never happened.
            self.timing.pending_snapshots.remove(&node);
            return;
        }
        if !self.runs_now(node, life, SimEvent::SnapshotWritten { node, life }) {
            return;
        }
        let Some(job) = self.timing.pending_snapshots.remove(&node) else {
            return;
        };
        let Some(running) = self.running_mut(node) else {
            return;
        };
        if let Err(error) = running.write_snapshot(job) {
            self.record_violation(Violation {
                property: "Durable Log",
                detail: format!(
                    "{node} could not install a snapshot written off its driver: {error}"
                ),
            });
            return;
        }
        self.drain(node);
        self.mark_dirty(node);
    }

    /// The I/O step `node`'s batch waits for, taken to be carried out, if the event `again`
    /// of its `life` runs now (see `runs_now`).
    pub(super) fn due_batch_step(
        &mut self,
        node: NodeId,
        life: u64,
        again: SimEvent,
    ) -> Option<BatchStep> {
        if !self.runs_now(node, life, again) {
            return None;
        }
        self.nodes.get_mut(&node).and_then(|n| n.batch.take())
    }

    /// Carries out what `node` asked for since the last time, and notes what it appended as
    /// leader meanwhile: a batch's start or end may append too (a new leader sends again
    /// the session writes a leader change lost).
    pub(super) fn drain(&mut self, node: NodeId) {
        let Some(running) = self.running_mut(node) else {
            return;
        };
        let effects = running.take_effects();
        self.note_appends(node);
        self.carry_out(node, effects);
    }

    /// Carries out `node`'s effects: events are noted and checked, then messages go on the
    /// network, then replies go to the clients waiting for them; the batch's next I/O step
    /// is kept for the event that runs it.
    pub(super) fn carry_out(&mut self, node: NodeId, effects: Vec<Effect>) {
        let mut messages = Vec::new();
        let mut replies = Vec::new();
        for effect in effects {
            match effect {
                Effect::Event(event) => self.on_node_event(node, event),
                Effect::Send(message) => messages.push(message),
                Effect::Reply(id, reply) => replies.push((id, reply)),
                Effect::WriteBatch(token) => self.keep_batch_step(node, BatchStep::Write(token)),
                Effect::SyncBatch(token) => self.keep_batch_step(node, BatchStep::Sync(token)),
                Effect::WriteSnapshot(job) => {
                    // Only the end of a batch hands one out, and `on_synced` takes it there.
                    if let Some(running) = self.running_mut(node) {
                        let _ = running.snapshot_abandoned(job.token);
                    }
                }
            }
        }
        for message in messages {
            self.send(message);
        }
        let applied = self.applied_seen(node);
        for (id, reply) in replies {
            self.checks.ledger.answered(id, applied);
            let reply = self.injected_reply(node, id, reply);
            if self.clients.waiting.get(&id) == Some(&node) {
                self.clients.waiting.remove(&id);
                if self.clients.reads.remove(&id) && !reply.is_error() {
                    self.stats.reads += 1;
                }
                self.clients.replies.insert(id, reply);
            }
        }
    }

    pub(super) fn keep_batch_step(&mut self, node: NodeId, step: BatchStep) {
        if let Some(sim_node) = self.nodes.get_mut(&node) {
            sim_node.batch = Some(step);
        }
    }
}

/// Takes the snapshot file a node asked for out of its effects.
pub(super) fn take_snapshot_job(effects: &mut Vec<Effect>) -> Option<SnapshotJob> {
    let at = effects
        .iter()
        .position(|effect| matches!(effect, Effect::WriteSnapshot(_)))?;
    match effects.remove(at) {
        Effect::WriteSnapshot(job) => Some(job),
        _ => unreachable!("found above"),
    }
}

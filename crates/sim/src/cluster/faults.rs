//! Faults the cluster injects: crashes (mid-write or not), restarts, pauses, partitions and
//! network settings.

use super::*;

impl Cluster {
    /// Crashes `node`: everything it had not made durable is lost. A crash while a batch is
    /// being written comes, by a seeded choice, before the write started (the batch is lost
    /// whole) or during it (the sync never returns; the disk may keep any prefix of the
    /// batch's bytes: a torn write).
    pub fn crash(&mut self, node: NodeId) {
        let Some(sim_node) = self.nodes.get(&node) else {
            return;
        };
        if !sim_node.is_up() {
            return;
        }
        let writing = sim_node.is_writing();
        let kind = if writing
            && self
                .disk_rng
                .gen_bool(self.options.mid_write_crash_probability)
        {
            self.stats.mid_write_crashes += 1;
            CrashKind::MidWrite
        } else {
            CrashKind::BetweenWrites
        };
        let tear = self.disk_rng.gen_bool(0.5);
        let mut choices = ChaCha8Rng::seed_from_u64(self.disk_rng.gen());
        let sim_node = self.nodes.get_mut(&node).expect("checked above");
        sim_node.crash(kind, |_, unsynced| {
            if tear {
                choices.gen_range(0..=unsynced)
            } else {
                0
            }
        });
        self.checks.checkers.crashed(node);
        self.checks.roles.insert(node, Role::Follower);
        self.checks.applied_values.remove(&node);
        self.timing.drive_scheduled.remove(&node);
        self.timing.paused_until_ms.remove(&node);
        self.timing.missed_ticks.remove(&node);
        self.stats.crashes += 1;
        let how = match kind {
            CrashKind::MidWrite => " in the middle of a write",
            CrashKind::BetweenWrites if writing => " before its write",
            CrashKind::BetweenWrites => "",
        };
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault(format!("crash {node}{how}")),
        );
    }

    /// Restarts a crashed `node` from its disk. If its durable log refuses to open, it stays
    /// down for the rest of the run.
    pub fn restart(&mut self, node: NodeId) {
        let Some(sim_node) = self.nodes.get(&node) else {
            return;
        };
        if !sim_node.is_down() {
            return;
        }
        let life = sim_node.life + 1;
        let config = self.config_for(node, life);
        let sim_node = self.nodes.get_mut(&node).expect("checked above");
        let corrupted = sim_node.corrupted;
        let report = match sim_node.restart(config) {
            Some(Ok(report)) => report,
            Some(Err(error)) => {
                self.stats.refused_starts += 1;
                self.trace.record(
                    self.agenda.now_ms,
                    TraceEvent::Fault(format!("{node} refuses to start and stays down: {error}")),
                );
                if !corrupted {
                    // Only media corruption may stop a log from opening: a crash, torn write
                    // or not, must always recover.
                    self.record_violation(Violation {
                        property: "Durable Log Recovery",
                        detail: format!("{node}'s log refused to open after a crash: {error}"),
                    });
                }
                return;
            }
            None => return,
        };
        self.check_restart_after_damage(node);
        self.stats.recycled_segments_read += report.segments_recycled as u64;
        if let Some(torn) = &report.torn_tail {
            self.stats.torn_tails += 1;
            self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Fault(format!(
                    "{node}'s recovery cut a torn write: {} bytes at {}:{}",
                    torn.bytes_dropped,
                    torn.file.display(),
                    torn.offset
                )),
            );
        }
        let running = self.nodes[&node].running().expect("just restarted");
        let commit = running.wal().hard_state().commit;
        let snapshot = running.wal().snapshot_meta().index;
        let raw = running.raw();
        let mut result = self.checks.checkers.restarted(node, commit, &NodeLog(raw));
        // The state machine restarts from the snapshot on disk.
        if snapshot.0 > 0 {
            let state = state_digest(running.state_machine());
            result = result.and(self.checks.checkers.restored(node, snapshot, state));
        }
        if let Err(violation) = result {
            self.record_violation(violation);
        }
        self.restore_values(node, snapshot);
        self.checks.applied_seen.insert(node, snapshot.0);
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault(format!("restart {node} (durable commit {commit})")),
        );
        self.start_ticking(node, life);
        self.mark_dirty(node);
    }

    /// Crashes `node` and restarts it `down_ms` later (a process bounce).
    pub fn bounce(&mut self, node: NodeId, down_ms: u64) {
        if self.is_up(node) {
            self.crash(node);
            self.schedule(self.agenda.now_ms + down_ms, SimEvent::Restart { node });
        }
    }

    /// Pauses `node` for `ms`: it handles nothing meanwhile, then catches up.
    pub fn pause(&mut self, node: NodeId, ms: u64) {
        self.timing
            .paused_until_ms
            .insert(node, self.agenda.now_ms + ms);
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault(format!("pause {node} for {ms} ms")),
        );
    }

    /// Ends a pause of `node` now.
    pub fn resume(&mut self, node: NodeId) {
        if self
            .timing
            .paused_until_ms
            .remove(&node)
            .is_some_and(|until| until > self.agenda.now_ms)
        {
            self.trace.record(
                self.agenda.now_ms,
                TraceEvent::Fault(format!("resume {node}")),
            );
        }
    }

    /// Cuts the network into `partition`.
    pub fn partition(&mut self, partition: Partition) {
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault(format!("partition {partition:?}")),
        );
        self.network.partition(&self.ids, &partition);
    }

    /// Cuts `node` off from every other node.
    pub fn isolate(&mut self, node: NodeId) {
        self.partition(Partition::Isolate(node));
    }

    /// Restores every link to and from `node`.
    pub fn reconnect(&mut self, node: NodeId) {
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault(format!("reconnect {node}")),
        );
        self.network.reconnect(node);
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault("heal partitions".to_string()),
        );
        self.network.heal();
    }

    /// Replaces how the network misbehaves.
    pub fn set_network(&mut self, options: NetworkOptions) {
        self.network.options = options;
    }
}

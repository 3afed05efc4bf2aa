//! Media damage to a crashed node's segment files: a flipped bit, a segment overwritten by
//! garbage, a lost segment (docs/TESTING.md, "Disk faults"). None of it is what a crash can
//! do, so a restart may refuse; what it must never do is come back with less than was durable
//! — above all an older term or vote (thesis §3.8: a node that forgets its vote can vote twice
//! in a term, §5.2).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use skiff_raft::NodeId;

use super::Cluster;
use crate::checkers::Violation;
use crate::node::DiskDamage;
use crate::trace::TraceEvent;

impl Cluster {
    /// Flips one bit at a seeded place in the durable segment files of `node`, which must be
    /// down (media corruption); with `spare_final_batch`, never in the last write batch of
    /// its log when that is in a segment written new. Returns whether a bit was flipped.
    pub fn flip_durable_bit(&mut self, node: NodeId, spare_final_batch: bool) -> bool {
        let mut choices = ChaCha8Rng::seed_from_u64(self.disk_rng.gen());
        let Some(sim_node) = self.nodes.get_mut(&node) else {
            return false;
        };
        let Some((file, offset)) =
            sim_node.flip_segment_bit(spare_final_batch, |total| choices.gen_range(0..total))
        else {
            return false;
        };
        self.stats.bit_flips += 1;
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault(format!(
                "flip a bit of {node}'s {} at byte {offset}",
                file.display()
            )),
        );
        true
    }

    /// Damages the durable segment files of `node`, which must be down, as `damage` says
    /// (`spare_final_batch` only for a bit flip). Returns whether anything was damaged.
    pub fn damage_disk(
        &mut self,
        node: NodeId,
        damage: DiskDamage,
        spare_final_batch: bool,
    ) -> bool {
        if damage == DiskDamage::BitFlip {
            return self.flip_durable_bit(node, spare_final_batch);
        }
        let mut choices = ChaCha8Rng::seed_from_u64(self.disk_rng.gen());
        let Some(sim_node) = self.nodes.get_mut(&node) else {
            return false;
        };
        let (done, file) = match damage {
            DiskDamage::GarbageSegment => (
                "overwrite with garbage",
                sim_node.garble_segment(&mut choices),
            ),
            _ => ("lose", sim_node.lose_segment(&mut choices)),
        };
        let Some(file) = file else {
            return false;
        };
        match damage {
            DiskDamage::GarbageSegment => self.stats.segments_garbled += 1,
            _ => self.stats.segments_lost += 1,
        }
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault(format!("{done} {node}'s {}", file.display())),
        );
        true
    }

    /// `node` restarted: if a segment of its log had been garbled or lost, recovery should
    /// have refused; starting is only right if it recovered exactly what was durable before
    /// (a lost segment that compaction had already covered).
    pub(super) fn check_restart_after_damage(&mut self, node: NodeId) {
        let Some(sim_node) = self.nodes.get_mut(&node) else {
            return;
        };
        let Some(before) = sim_node.durable_before_damage.take() else {
            return;
        };
        let after = sim_node.durable();
        if after != before {
            // Thesis §3.8: what was durable (term, vote, entries) must not silently go back.
            self.record_violation(Violation {
                property: "Durable Log Recovery",
                detail: format!(
                    "{node} started on a damaged log with {after:?} instead of refusing; it held {before:?}"
                ),
            });
        }
    }
}

impl Cluster {
    /// Replaces the disk of `node`, which must be down, by an empty one and restarts it under
    /// the same id with a new incarnation from the seed (an operator's wipe). The amnesia
    /// guard must keep it from counting as the member it was (thesis §3.8). Returns whether
    /// the node was wiped.
    pub fn wipe(&mut self, node: NodeId) -> bool {
        let Some(sim_node) = self.nodes.get_mut(&node) else {
            return false;
        };
        let before = sim_node.dir_incarnation;
        if !sim_node.wipe() {
            return false;
        }
        self.checks.checkers.wiped(node);
        self.stats.wipes += 1;
        self.trace.record(
            self.agenda.now_ms,
            TraceEvent::Fault(format!(
                "wipe {node}'s disk (incarnation {before:#x}) and start it again empty"
            )),
        );
        self.restart(node);
        true
    }

    /// Whether the cluster has recorded `node`'s current incarnation on every other node,
    /// all running: the guard's contract holds for it from then on (a member that never
    /// applied the record may still take it for new).
    pub fn incarnation_known_everywhere(&self, node: NodeId) -> bool {
        let Some(sim_node) = self.nodes.get(&node) else {
            return false;
        };
        let incarnation = sim_node.dir_incarnation;
        self.ids.iter().filter(|&&id| id != node).all(|&id| {
            self.running(id)
                .is_some_and(|n| n.member_incarnations().get(&node) == Some(&incarnation))
        })
    }

    /// Whether `node` runs with a data directory other than the one the leader recorded for
    /// it: a wiped node the cluster refuses, which an operator would remove and add back.
    pub fn is_amnesiac(&self, node: NodeId) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        match (self.running(node), self.running(leader)) {
            (Some(running), Some(leader)) => leader
                .member_incarnations()
                .get(&node)
                .is_some_and(|&recorded| recorded != running.incarnation()),
            _ => false,
        }
    }
}

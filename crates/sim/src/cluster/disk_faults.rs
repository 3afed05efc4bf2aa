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
    /// its log. Returns whether a bit was flipped.
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

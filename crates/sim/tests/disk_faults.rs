//! Disk faults on the real node driver: a crash in the middle of a write leaves a torn tail
//! that recovery cuts, and a flipped bit, a segment overwritten by garbage or a lost segment
//! stops that node for good while the majority carries on.

use skiff_raft::NodeId;
use skiff_sim::node::DiskDamage;
use skiff_sim::{Cluster, ClusterOptions};

const BUDGET_MS: u64 = 10_000;

#[test]
fn crash_mid_write_tears_the_tail_and_the_node_recovers() {
    // Followers are crashed while their disk writes are in progress, the crash always coming
    // during the write: some crashes keep part of the batch, recovery cuts it, and the node
    // rejoins holding every value the cluster committed.
    let mut options = ClusterOptions::new(3).seed(81);
    options.mid_write_crash_probability = 1.0;
    options.disk_delay_ms = (5, 20);
    let mut c = Cluster::new(options);
    let mut value = 1;
    c.one(value, 3, BUDGET_MS).expect("all three");
    for _round in 0..40 {
        let leader = c.leader().expect("leader");
        let follower = c
            .ids()
            .iter()
            .copied()
            .find(|&id| id != leader)
            .expect("a follower");
        value += 1;
        c.propose(value);
        if c.run_until(200, |c| c.is_writing(follower)) {
            c.crash(follower);
            c.run_for(20);
            c.restart(follower);
        }
        value += 1;
        c.one(value, 3, BUDGET_MS)
            .unwrap_or_else(|| panic!("v{value} commits on all three after the crash"));
        c.assert_safe();
    }
    assert!(
        c.stats().mid_write_crashes >= 20,
        "crashes came in the middle of writes: {}",
        c.stats().mid_write_crashes
    );
    assert!(
        c.stats().torn_tails >= 1,
        "some crash tore a batch, and recovery cut it"
    );
    let expected = c.applied_values(c.leader().expect("leader")).to_vec();
    for id in c.ids().to_vec() {
        assert_eq!(c.applied_values(id), expected.as_slice(), "{id} agrees");
    }
}

#[test]
fn flipped_bit_refuses_start_and_the_majority_goes_on() {
    // A bit of a crashed follower's durable log is flipped (never in its final batch, which
    // recovery could not tell from a torn write): its log refuses to open, it stays down, and
    // the other two keep committing.
    let mut c = Cluster::new(ClusterOptions::new(3).seed(82));
    for value in 1..=30 {
        c.one(value, 3, BUDGET_MS).expect("all three");
    }
    let leader = c.leader().expect("leader");
    let victim = c
        .ids()
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("a follower");
    c.crash(victim);
    assert!(c.flip_durable_bit(victim, true), "a bit was flipped");
    c.restart(victim);
    assert!(c.is_refused(victim), "the damaged log refused to open");
    assert!(!c.is_up(victim));
    assert_eq!(c.stats().refused_starts, 1);
    c.restart(victim);
    assert!(c.is_refused(victim), "it stays down");
    for value in 31..=40 {
        c.one(value, 2, BUDGET_MS)
            .expect("the other two commit without it");
    }
    assert_eq!(c.count_applied(40), 2);
    c.assert_safe();
}

#[test]
fn a_node_that_was_never_down_is_not_corrupted() {
    // Bits are flipped only on a crashed node's disk, as media corruption found at restart.
    let mut c = Cluster::new(ClusterOptions::new(3).seed(83));
    c.one(1, 3, BUDGET_MS).expect("all three");
    assert!(!c.flip_durable_bit(NodeId(1), true));
    assert_eq!(c.stats().bit_flips, 0);
}

/// Damages a crashed follower's log as `damage` says, then restarts it: it refuses to start
/// and stays down, and the other two keep committing. Returns the cluster and the victim.
fn damaged_follower_stays_down(
    damage: DiskDamage,
    options: ClusterOptions,
    values: u64,
) -> (Cluster, NodeId) {
    let mut c = Cluster::new(options);
    for value in 1..=values {
        c.one(value, 3, BUDGET_MS).expect("all three");
    }
    let leader = c.leader().expect("leader");
    let victim = c
        .ids()
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("a follower");
    c.crash(victim);
    assert!(c.damage_disk(victim, damage, true), "{damage:?} was done");
    c.restart(victim);
    assert!(c.is_refused(victim), "the damaged log refused to open");
    assert_eq!(c.stats().refused_starts, 1);
    c.restart(victim);
    assert!(c.is_refused(victim), "it stays down");
    for value in values + 1..=values + 10 {
        c.one(value, 2, BUDGET_MS)
            .expect("the other two commit without it");
    }
    c.assert_safe();
    (c, victim)
}

#[test]
fn a_segment_overwritten_by_garbage_refuses_start_and_the_majority_goes_on() {
    // Small segments, so the garbled one may be any of several; the last one holds the
    // follower's current term and vote, and garbage there must not be taken for a torn write.
    for seed in 90..96 {
        let mut options = ClusterOptions::new(3).seed(seed);
        options.max_segment_bytes = 512;
        let (c, _) = damaged_follower_stays_down(DiskDamage::GarbageSegment, options, 30);
        assert_eq!(c.stats().segments_garbled, 1);
    }
}

#[test]
fn a_lost_segment_refuses_start_and_the_majority_goes_on() {
    // Several segments: one before the last is lost, leaving a gap in the log.
    let mut options = ClusterOptions::new(3).seed(97);
    options.max_segment_bytes = 512;
    let (c, _) = damaged_follower_stays_down(DiskDamage::LostSegment, options, 30);
    assert_eq!(c.stats().segments_lost, 1);
}

#[test]
fn a_voter_whose_only_segment_is_lost_refuses_instead_of_voting_again_at_term_zero() {
    // One segment holds everything: losing it leaves an empty directory. The node has run, so
    // it refuses (thesis §3.8) rather than start at term 0 with no vote, from where it could
    // grant a second vote in a term it already voted in (§5.2).
    let (c, _) =
        damaged_follower_stays_down(DiskDamage::LostSegment, ClusterOptions::new(3).seed(98), 3);
    assert_eq!(c.stats().segments_lost, 1);
}

//! The lab's persistence and churn scenarios: crashes lose what was not durable, restarts
//! resume from what was, and every acknowledged value survives.

use rand::Rng;
use skiff_raft::NodeId;
use skiff_sim::{Cluster, ClusterOptions, NetworkOptions};

const AGREEMENT_BUDGET_MS: u64 = 10_000;

fn cluster(nodes: usize, seed: u64) -> Cluster {
    Cluster::new(ClusterOptions::new(nodes).seed(seed))
}

fn restart_all(c: &mut Cluster) {
    for id in c.ids().to_vec() {
        c.crash(id);
    }
    for id in c.ids().to_vec() {
        c.restart(id);
    }
}

#[test]
fn persist1() {
    // Crash and restart everyone, then the leader, then the leader while it is the only one
    // missing: every committed value survives and commands keep committing.
    let mut c = cluster(3, 31);
    c.one(11, 3, AGREEMENT_BUDGET_MS).expect("first");
    restart_all(&mut c);
    c.one(12, 3, AGREEMENT_BUDGET_MS)
        .expect("after a full restart");
    let leader = c.leader().expect("leader");
    c.crash(leader);
    c.restart(leader);
    c.one(13, 3, AGREEMENT_BUDGET_MS)
        .expect("after the leader restarted");
    let leader = c.leader().expect("leader");
    c.crash(leader);
    c.one(14, 2, AGREEMENT_BUDGET_MS)
        .expect("with the leader down");
    c.restart(leader);
    assert!(
        c.run_until(AGREEMENT_BUDGET_MS, |c| c.applied_values(leader)
            == [11, 12, 13, 14])
    );
    c.assert_safe();
}

#[test]
fn persist2() {
    // Five nodes, shifting majorities: each round two nodes crash, the other three commit,
    // and the crashed ones come back; in the end everyone holds every value.
    let mut c = cluster(5, 32);
    let mut value = 10;
    c.one(value, 5, AGREEMENT_BUDGET_MS).expect("all five");
    for round in 0..5 {
        let leader = c.leader().expect("leader");
        let next = NodeId(leader.0 % 5 + 1);
        c.crash(leader);
        c.crash(next);
        value += 1;
        c.one(value, 3, AGREEMENT_BUDGET_MS)
            .unwrap_or_else(|| panic!("round {round}: three commit"));
        c.restart(leader);
        c.restart(next);
        let others: Vec<NodeId> = c
            .ids()
            .iter()
            .copied()
            .filter(|&id| id != leader && id != next)
            .collect();
        c.crash(others[0]);
        c.crash(others[1]);
        value += 1;
        c.one(value, 3, AGREEMENT_BUDGET_MS)
            .unwrap_or_else(|| panic!("round {round}: the other three commit"));
        c.restart(others[0]);
        c.restart(others[1]);
    }
    value += 1;
    c.one(value, 5, AGREEMENT_BUDGET_MS)
        .expect("all five at the end");
    let expected: Vec<u64> = (10..=value).collect();
    for id in c.ids().to_vec() {
        assert_eq!(
            c.applied_values(id),
            expected.as_slice(),
            "{id} applied everything once, in order"
        );
    }
    c.assert_safe();
}

#[test]
fn persist3() {
    // A partitioned leader and one follower crash; the leader restarts and, with the third
    // node, commits; then everyone agrees.
    let mut c = cluster(3, 33);
    c.one(101, 3, AGREEMENT_BUDGET_MS).expect("all three");
    let leader = c.leader().expect("leader");
    c.isolate(leader);
    c.one(102, 2, AGREEMENT_BUDGET_MS)
        .expect("without the old leader");
    c.crash(leader);
    c.heal();
    let follower = c
        .ids()
        .iter()
        .copied()
        .find(|&id| id != leader && c.role(id) != skiff_raft::Role::Leader)
        .expect("follower");
    c.crash(follower);
    c.restart(leader);
    c.one(103, 2, AGREEMENT_BUDGET_MS)
        .expect("the restarted old leader and the new leader");
    c.restart(follower);
    c.one(104, 3, AGREEMENT_BUDGET_MS).expect("all three");
    assert_eq!(c.applied_values(follower), &[101, 102, 103, 104]);
    c.assert_safe();
}

/// Five nodes, on the lossy, reordering network when `unreliable`.
fn five_nodes(seed: u64, unreliable: bool) -> Cluster {
    let mut options = ClusterOptions::new(5).seed(seed);
    if unreliable {
        options.network = NetworkOptions::unreliable();
    }
    Cluster::new(options)
}

/// Every fault repaired — partitions, loss, crashed nodes: all five agree on a last value.
fn heal_and_agree(c: &mut Cluster) {
    c.heal();
    c.set_network(NetworkOptions::reliable());
    for id in c.ids().to_vec() {
        c.restart(id);
    }
    c.one(1_000_000, 5, AGREEMENT_BUDGET_MS)
        .expect("all five agree at the end");
}

/// Figure 8 (§5.4.2): leaders crash right after proposing, over and over, with random
/// pauses; at the end all five agree. `unreliable` adds loss and long reordering, and cuts
/// leaders off instead of crashing them.
fn figure_8_rounds(seed: u64, unreliable: bool) {
    let mut c = five_nodes(seed, unreliable);
    let ids = c.ids().to_vec();
    let mut value = 1;
    for _round in 0..1000 {
        if let Some(leader) = c.leader() {
            let _ = c.propose_to(leader, value, 0);
            value += 1;
        }
        let pause = if c.rng().gen_range(0..1000) < 100 {
            c.rng().gen_range(0..300)
        } else {
            c.rng().gen_range(0..15)
        };
        c.run_for(pause);
        if let Some(leader) = c.leader() {
            if unreliable {
                if c.rng().gen_bool(0.5) {
                    c.isolate(leader);
                }
            } else {
                c.crash(leader);
            }
        }
        let reachable = ids.iter().filter(|&&id| c.is_up(id)).count();
        if reachable < 3 || (unreliable && c.rng().gen_bool(0.3)) {
            let k = c.rng().gen_range(0..ids.len());
            if unreliable {
                c.reconnect(ids[k]);
            } else {
                c.restart(ids[k]);
            }
        }
        c.assert_safe();
    }
    heal_and_agree(&mut c);
    eprintln!(
        "figure 8: {} leaders elected, {} entries committed",
        c.stats().leaders_elected,
        c.committed_count()
    );
    let final_log: Vec<u64> = c.applied_values(ids[0]).to_vec();
    for &id in &ids {
        assert_eq!(
            c.applied_values(id),
            final_log.as_slice(),
            "{id} applied the same sequence"
        );
    }
    c.assert_safe();
}

#[test]
fn figure_8() {
    figure_8_rounds(34, false);
}

#[test]
fn figure_8_unreliable() {
    figure_8_rounds(35, true);
}

#[test]
fn unreliable_agree() {
    // Over a lossy, reordering network: 49 rounds of four concurrent proposals and one that
    // must commit; then everyone agrees.
    let mut c = Cluster::new(ClusterOptions::new(5).seed(36).unreliable());
    for round in 1..50u64 {
        for j in 0..4 {
            c.propose(100 * round + j);
        }
        c.one(round, 1, AGREEMENT_BUDGET_MS)
            .unwrap_or_else(|| panic!("round {round} commits"));
    }
    c.set_network(NetworkOptions::reliable());
    c.one(100, 5, AGREEMENT_BUDGET_MS).expect("all five agree");
    c.assert_safe();
}

/// Three clients write while nodes are cut off, crashed and restarted every 0.7 s; every value
/// a client saw committed is in the final log.
fn churn(seed: u64, unreliable: bool) {
    let mut c = five_nodes(seed, unreliable);
    let ids = c.ids().to_vec();
    let mut acknowledged = Vec::new();
    let mut pending: [Option<(u64, u64)>; 3] = [None; 3];
    let mut value = 1;
    let mut next_fault_ms = 700;
    while c.now_ms() < 20_000 {
        for slot in pending.iter_mut() {
            match *slot {
                Some((v, _)) if c.count_applied(v) > 0 => {
                    acknowledged.push(v);
                    *slot = None;
                }
                Some((_, since)) if c.now_ms() - since > 2_000 => *slot = None, // gave up: unknown outcome
                Some(_) => {}
                None => {
                    let node = ids[c.rng().gen_range(0..ids.len())];
                    if c.propose_to(node, value, 0).is_ok() {
                        *slot = Some((value, c.now_ms()));
                    }
                    value += 1;
                }
            }
        }
        c.run_for(10);
        if c.now_ms() >= next_fault_ms {
            next_fault_ms += 700;
            let node = ids[c.rng().gen_range(0..ids.len())];
            match c.rng().gen_range(0..6) {
                0 => c.isolate(node),
                1 => c.reconnect(node),
                2 => c.crash(node),
                3 => c.restart(node),
                _ => {}
            }
        }
        c.assert_safe();
    }
    heal_and_agree(&mut c);
    eprintln!(
        "churn: {} values acknowledged, {} leaders elected, {} crashes",
        acknowledged.len(),
        c.stats().leaders_elected,
        c.stats().crashes
    );
    assert!(
        acknowledged.len() >= 20,
        "the clients got work done: {} values acknowledged",
        acknowledged.len()
    );
    let final_values = c.applied_values(ids[0]).to_vec();
    for v in acknowledged {
        assert!(
            final_values.contains(&v),
            "acknowledged value {v} is missing from the final log"
        );
    }
    c.assert_safe();
}

#[test]
fn reliable_churn() {
    churn(37, false);
}

#[test]
fn unreliable_churn() {
    churn(38, true);
}

//! Membership changes on real processes: a node started with `--join` is added as a learner,
//! catches up, is promoted to voter, and an original member is removed, all through
//! `skiff admin`, while the cluster keeps its data and serves.

mod common;

use std::time::Duration;

use common::{eventually, serial, TestCluster};
use redis::Commands;

fn member_kind(cluster: &TestCluster, via: u64, id: u64) -> Option<String> {
    let status = cluster.status(via)?;
    status["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"].as_u64() == Some(id))
        .and_then(|m| m["kind"].as_str().map(str::to_string))
}

#[test]
fn a_joining_node_is_added_promoted_and_an_original_member_removed() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let mut connection = cluster.redis(leader);
    for i in 0..20 {
        let _: () = connection.set(format!("early-{i}"), i).expect("write");
    }

    cluster.start_joining(4);
    let peer_addr = cluster.nodes[&4].peer_proxy.to_string();
    assert!(cluster.admin_ok(2, &["add-learner", "--id", "4", "--peer-addr", &peer_addr]));
    // Every node shows the learner once the change reaches it (a follower one heartbeat later).
    eventually(Duration::from_secs(5), "node 4 listed as a learner", || {
        (member_kind(&cluster, leader, 4).as_deref() == Some("learner")).then_some(())
    });
    // The learner receives the log and serves linearizable reads of data older than it.
    let mut learner = cluster.redis(4);
    let early: Option<i64> = eventually(Duration::from_secs(10), "the learner to catch up", || {
        learner.get("early-19").ok().flatten()
    });
    assert_eq!(early, Some(19));

    eventually(Duration::from_secs(10), "the promotion", || {
        cluster.admin_ok(3, &["promote", "--id", "4"]).then_some(())
    });
    eventually(Duration::from_secs(5), "node 4 to be a voter", || {
        (member_kind(&cluster, 4, 4).as_deref() == Some("voter")).then_some(())
    });

    // Remove node 1 (perhaps the leader: it then steps down) and stop it.
    eventually(Duration::from_secs(10), "the removal", || {
        cluster.admin_ok(4, &["remove", "--id", "1"]).then_some(())
    });
    eventually(
        Duration::from_secs(10),
        "node 1 to leave the configuration",
        || (member_kind(&cluster, 4, 1).is_none()).then_some(()),
    );
    cluster.kill(1);
    let leader = cluster.wait_for_leader_among(&[2, 3, 4], Duration::from_secs(10));
    assert_ne!(leader, 1);
    let mut connection = cluster.redis(4);
    let _: () = connection
        .set("after-removal", "yes")
        .expect("write on {2,3,4}");
    for id in [2, 3, 4] {
        let value: Option<String> = cluster.redis(id).get("after-removal").expect("read");
        assert_eq!(value.as_deref(), Some("yes"), "node {id}");
        let early: Option<i64> = cluster.redis(id).get("early-0").expect("read");
        assert_eq!(early, Some(0), "node {id} kept the early writes");
    }
}

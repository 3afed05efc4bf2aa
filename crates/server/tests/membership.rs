//! Membership changes on real processes: a node started with `--join` is added as a learner,
//! catches up, is promoted to voter, and an original member is removed, all through
//! `skiff admin`, while the cluster keeps its data and serves.

mod common;

use std::time::Duration;

use common::{eventually, serial, TestCluster};
use redis::Commands;

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
        (cluster.member_kind(leader, 4).as_deref() == Some("learner")).then_some(())
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
        (cluster.member_kind(4, 4).as_deref() == Some("voter")).then_some(())
    });

    // Remove node 1 (perhaps the leader: it then steps down) and stop it.
    eventually(Duration::from_secs(10), "the removal", || {
        cluster.admin_ok(4, &["remove", "--id", "1"]).then_some(())
    });
    eventually(
        Duration::from_secs(10),
        "node 1 to leave the configuration",
        || (cluster.member_kind(4, 1).is_none()).then_some(()),
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

fn voters(cluster: &TestCluster, via: u64) -> Vec<u64> {
    let Some(status) = cluster.status(via) else {
        return Vec::new();
    };
    let mut voters: Vec<u64> = status["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["kind"] == "voter")
        .filter_map(|m| m["id"].as_u64())
        .collect();
    voters.sort_unstable();
    voters
}

#[test]
fn removing_down_to_two_voters_is_refused_without_force_and_done_with_it() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let id = follower.to_string();
    let mut rest: Vec<u64> = (1..=3).filter(|&n| n != follower).collect();
    rest.sort_unstable();

    // Both other voters answer, so only the count stops it: two voters may lose neither.
    let refused = eventually(Duration::from_secs(5), "a settled refusal", || {
        let output = cluster.admin(follower, &["remove", "--id", &id]);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (!stderr.contains("retry in a moment")).then_some((output, stderr))
    });
    let (output, stderr) = refused;
    assert_eq!(output.status.code(), Some(3), "refused exits 3: {stderr}");
    let leaves = format!(
        "removing {follower} leaves 2 voters ({}, {}), which tolerate no failure",
        rest[0], rest[1]
    );
    assert!(stderr.contains(&leaves), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing printed as done");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(voters(&cluster, leader), vec![1, 2, 3], "nothing changed");

    let output = cluster.admin(follower, &["remove", "--id", &id, "--force"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        stdout.trim(),
        format!(
            "done: 2 voters ({}, {}), tolerates no failure",
            rest[0], rest[1]
        )
    );
    eventually(
        Duration::from_secs(5),
        "the leader's view of two voters",
        || (voters(&cluster, leader) == rest).then_some(()),
    );
    let _: () = cluster
        .redis(leader)
        .set("on-two-voters", 1)
        .expect("two voters still commit");
}

#[test]
fn skiff_admin_exits_zero_when_done_three_when_refused_and_one_when_it_cannot_ask() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));

    let done = cluster.admin(leader, &["snapshot"]);
    assert_eq!(done.status.code(), Some(0), "{done:?}");

    // Checked by the leader and refused: nothing changed.
    let refused = cluster.admin(leader, &["promote", "--id", "99"]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("node 99 is not a member"), "{stderr}");

    // No node answers at all: a different failure, which a script must not read as "refused".
    let port = common::free_port();
    let output = std::process::Command::new(common::skiff_bin())
        .args(["admin", "--addr", &format!("127.0.0.1:{port}")])
        .args(["remove", "--id", "2"])
        .output()
        .expect("skiff admin runs");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no node answered"),
        "{output:?}"
    );
    assert_eq!(voters(&cluster, leader), vec![1, 2, 3]);
}

/// The line of `skiff status`'s table for node `id`.
fn row_of(table: &str, id: u64) -> &str {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(&id.to_string()))
        .unwrap_or_else(|| panic!("no row for node {id}:\n{table}"))
}

#[test]
fn status_asked_of_a_just_restarted_follower_shows_every_healthy_node_reachable() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let _: () = cluster.redis(leader).set("before", 1).expect("write");
    cluster.kill(follower);
    cluster.spawn(follower);

    // At once: the first answer of the restarted node.
    let table = eventually(Duration::from_secs(10), "the node to answer", || {
        let output = std::process::Command::new(common::skiff_bin())
            .args([
                "status",
                "--addr",
                &cluster.nodes[&follower].http.to_string(),
            ])
            .output()
            .expect("skiff status runs");
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    });
    assert!(!table.contains("unreachable"), "{table}");
    assert!(!table.contains("no leader"), "{table}");
    for id in 1..=3u64 {
        let row = row_of(&table, id);
        let role = if id == leader { "leader" } else { "follower" };
        assert!(row.contains(role), "node {id} is a {role}: {row}\n{table}");
    }
}

#[test]
fn status_without_a_leader_says_so_at_the_top_and_shows_the_asked_nodes_view() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let survivor = (1..=3).find(|&id| id != leader).expect("a follower");
    for id in (1..=3).filter(|&id| id != survivor) {
        cluster.kill(id);
    }
    eventually(
        Duration::from_secs(5),
        "the survivor to know no leader",
        || {
            let status = cluster.status(survivor)?;
            status["leader"].is_null().then_some(())
        },
    );
    let table = cluster.admin_status(survivor);
    let first = table.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "no leader is known: the members as node {survivor}"
        )),
        "{table}"
    );
    for id in (1..=3).filter(|&id| id != survivor) {
        let row = row_of(&table, id);
        assert!(row.contains("unreachable"), "{row}");
    }
}

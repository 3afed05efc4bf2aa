//! A node whose data directory is deleted and which is restarted with its first-start flags
//! (as a service manager would) is refused as a voter: both sides log why, `/status` shows it
//! refused, the cluster keeps serving, and with one more healthy node down the cluster cannot
//! commit rather than committing through the node that forgot its votes. Removed and added
//! back as a new member, it catches up. Reference: thesis §3.8.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, serial, TestCluster};
use redis::Commands;

fn commit_of(cluster: &TestCluster, id: u64) -> u64 {
    cluster.status(id).expect("status")["commit"]
        .as_u64()
        .expect("commit")
}

#[test]
fn a_wiped_node_is_refused_as_a_voter_then_replaced_as_a_new_member() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let mut connection = cluster.redis(leader);
    for i in 0..20 {
        let _: () = connection.set(format!("before-{i}"), i).expect("write");
    }
    // Every member's incarnation is recorded at its first contact; let the records commit.
    std::thread::sleep(Duration::from_secs(1));

    // The leader is killed, its data directory deleted, and it is started with its old flags.
    let wiped = leader;
    let old_incarnation = cluster.incarnation(wiped);
    cluster.kill(wiped);
    std::fs::remove_dir_all(&cluster.nodes[&wiped].dir).expect("delete the data directory");
    cluster.spawn(wiped);
    let intact: Vec<u64> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|&id| id != wiped)
        .collect();
    let leader = cluster.wait_for_leader_among(&intact, Duration::from_secs(10));
    assert_ne!(cluster.incarnation(wiped), old_incarnation);

    refused_on_both_sides(&cluster, wiped, &intact);

    // The cluster keeps serving writes and reads with its two intact members.
    let mut connection = cluster.redis(leader);
    let _: () = connection.set("after-wipe", "kept").expect("write");
    let read: Option<String> = cluster.redis(intact[0]).get("after-wipe").expect("read");
    assert_eq!(read.as_deref(), Some("kept"));

    // With one intact member down, the leader and the wiped node must not commit.
    let other = *intact
        .iter()
        .find(|&&id| id != leader)
        .expect("the other one");
    cluster.kill(other);
    no_commit_through_the_wiped_node(&cluster, leader);
    cluster.spawn(other);
    let leader = cluster.wait_for_leader_among(&intact, Duration::from_secs(10));

    replace_as_a_new_member(&cluster, leader, wiped);
}

/// The members log the refusal, the wiped node logs it from its side, and its status shows it.
fn refused_on_both_sides(cluster: &TestCluster, wiped: u64, intact: &[u64]) {
    // Both sides say what happened, and the wiped node's status shows it refused.
    let expected = format!("node {wiped}'s data directory is not the one the cluster knows");
    eventually(
        Duration::from_secs(10),
        "the refusal in a member's log",
        || {
            intact
                .iter()
                .any(|&id| cluster.node_log(id).contains(&expected))
                .then_some(())
        },
    );
    eventually(Duration::from_secs(10), "the wiped node's own line", || {
        cluster
            .node_log(wiped)
            .lines()
            .any(|line| {
                line.contains("this node's data directory is not the one the cluster knows")
                    && line.contains("adding `--force` if fewer than three voters would remain")
            })
            .then_some(())
    });
    eventually(Duration::from_secs(10), "status to show it refused", || {
        (cluster.status(wiped)?["refused"] == true).then_some(())
    });
    let status = cluster.admin_status(wiped);
    assert!(status.contains("REFUSED"), "{status}");
}

/// A write to `leader`, whose only live peer is the wiped node, must not commit.
fn no_commit_through_the_wiped_node(cluster: &TestCluster, leader: u64) {
    // The status is published a moment after each pass: let it show the last commit first.
    std::thread::sleep(Duration::from_millis(500));
    let before = commit_of(cluster, leader);
    let mut connection = cluster.redis(leader);
    connection
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let refused: redis::RedisResult<()> = connection.set("through-the-wiped-node", "no");
    assert!(refused.is_err(), "a write committed through the wiped node");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Some(status) = cluster.status(leader) {
            assert_eq!(
                status["commit"].as_u64(),
                Some(before),
                "the commit index moved with the wiped node's acknowledgement"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The operator removes the wiped node and adds it back: learner, then voter.
fn replace_as_a_new_member(cluster: &TestCluster, leader: u64, wiped: u64) {
    eventually(Duration::from_secs(10), "the removal", || {
        cluster
            // Three voters become two for a moment: that takes --force.
            .admin_ok(leader, &["remove", "--id", &wiped.to_string(), "--force"])
            .then_some(())
    });
    let peer_addr = cluster.nodes[&wiped].peer_proxy.to_string();
    eventually(Duration::from_secs(10), "adding it as a learner", || {
        let args = [
            "add-learner",
            "--id",
            &wiped.to_string(),
            "--peer-addr",
            &peer_addr,
        ];
        cluster.admin_ok(leader, &args).then_some(())
    });
    let mut learner = cluster.redis(wiped);
    let caught_up: Option<i64> = eventually(Duration::from_secs(20), "it to catch up", || {
        learner.get("before-19").ok().flatten()
    });
    assert_eq!(caught_up, Some(19));
    eventually(Duration::from_secs(10), "the promotion", || {
        cluster
            .admin_ok(leader, &["promote", "--id", &wiped.to_string()])
            .then_some(())
    });
    eventually(Duration::from_secs(10), "it serves as a voter", || {
        let status = cluster.status(wiped)?;
        (status["refused"] == false && status["applied"].as_u64()? >= commit_of(cluster, leader))
            .then_some(())
    });
}

#[test]
fn first_start_flags_that_disagree_with_the_data_directory_are_an_error() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    cluster.wait_for_leader(Duration::from_secs(10));
    cluster.kill(3);
    let command = cluster.spawn_command(3);
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let at = args
        .iter()
        .position(|a| a == "--initial-cluster")
        .expect("the flag")
        + 1;
    let changed = args[at].replace("1=", "9=");
    let mut changed_command = std::process::Command::new(command.get_program());
    changed_command
        .args(&args[..at])
        .arg(&changed)
        .args(&args[at + 1..]);
    let output = changed_command.output().expect("skiff serve runs");
    assert!(!output.status.success(), "it must refuse to start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--initial-cluster")
            && stderr.contains("member 1:")
            && stderr.contains("member 9:"),
        "{stderr}"
    );
    // The stored flags still start it.
    cluster.spawn(3);
    cluster.wait_for_leader(Duration::from_secs(10));
}

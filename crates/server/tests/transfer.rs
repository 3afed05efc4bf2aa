//! A planned leadership transfer on real processes: clients writing through the leader and
//! through a follower while `skiff admin transfer-leader` runs are told to retry (`TRYAGAIN`,
//! naming the node leadership moves to), never that the cluster may have lost its quorum
//! (`CLUSTERDOWN`), and every write that was answered OK is there afterwards.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, serial, TestCluster};
use redis::Commands;

/// What a client saw: the keys answered OK, and the text of every error reply.
#[derive(Default)]
struct Seen {
    written: Vec<String>,
    errors: Vec<String>,
}

/// Writes `prefix-0`, `prefix-1`, … through `connection` until `stop`.
fn write_until(mut connection: redis::Connection, prefix: &str, stop: &AtomicBool) -> Seen {
    let mut seen = Seen::default();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("{prefix}-{i}");
        i += 1;
        match connection.set::<_, _, ()>(&key, i) {
            Ok(()) => seen.written.push(key),
            Err(error) => {
                let code = error.code().unwrap_or("");
                seen.errors.push(format!("{code} {error}"));
            }
        }
    }
    seen
}

#[test]
fn clients_on_the_leader_and_a_follower_get_tryagain_not_clusterdown_during_a_transfer() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let first = cluster.wait_for_leader(Duration::from_secs(10));
    let others: Vec<u64> = (1..=3).filter(|&id| id != first).collect();
    let (target, bystander) = (others[0], others[1]);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [(first, "via-leader"), (bystander, "via-follower")]
        .into_iter()
        .map(|(id, prefix)| {
            let connection = cluster.redis(id);
            let stop = stop.clone();
            std::thread::spawn(move || write_until(connection, prefix, &stop))
        })
        .collect();

    // Back and forth, so each writer's node is in turn the one leading, one handing over and
    // one a bystander follower while the new leader is elected.
    std::thread::sleep(Duration::from_millis(300));
    for (to, via) in [
        (target, first),
        (first, target),
        (bystander, first),
        (first, bystander),
    ] {
        let to_text = to.to_string();
        let output = cluster.admin(via, &["transfer-leader", "--to", &to_text]);
        assert!(output.status.success(), "transfer to {to}: {output:?}");
        eventually(Duration::from_secs(5), "the target to lead", || {
            let status = cluster.status(to)?;
            (status["role"] == "leader").then_some(())
        });
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .collect();

    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let mut reader = cluster.redis(leader);
    for (seen, via) in seen.iter().zip(["the leader", "a follower"]) {
        assert!(seen.written.len() > 20, "writes through {via} went on");
        for error in &seen.errors {
            assert!(!error.contains("CLUSTERDOWN"), "through {via}: {error}");
            assert!(error.starts_with("TRYAGAIN"), "through {via}: {error}");
        }
        for key in &seen.written {
            let value: Option<u64> = reader.get(key).expect("read");
            assert!(
                value.is_some(),
                "{key}, answered OK through {via}, is missing"
            );
        }
    }
    let refusals: Vec<&String> = seen.iter().flat_map(|s| &s.errors).collect();
    eprintln!(
        "{} refusals during 4 transfers, e.g. {:?}",
        refusals.len(),
        refusals.first()
    );
}

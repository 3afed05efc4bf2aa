//! The core benchmark does the whole work it claims: every write is applied exactly once on the
//! leader and answered exactly once, and it is stored and applied on both followers too.

use skiff_bench::core::{run, CoreOptions, Shape, NODES};

fn check(clients: usize, ops: u64, snapshot_every: Option<u64>) {
    let mut options = CoreOptions::new(clients, ops);
    options.snapshot_every = snapshot_every;
    let result = run(&options);
    let per_client = ops / clients as u64;
    let total = per_client * clients as u64;
    let work = &result.check;

    assert_eq!(result.ops, total, "every write completes");
    assert_eq!(
        result.latency_ns.len(),
        total,
        "one latency sample per write"
    );
    assert!(work.leader_fixed, "node 1 led throughout");
    assert_eq!(
        work.leader_terms.0, work.leader_terms.1,
        "no election during the run"
    );
    for client in 0..clients {
        assert_eq!(
            work.proposed_per_client[client], per_client,
            "client {client} proposed"
        );
        assert_eq!(
            work.answered_per_client[client], per_client,
            "client {client} answered once per write"
        );
    }
    for node in 0..NODES {
        assert_eq!(
            work.applied_writes[node],
            total,
            "node {} applied every write",
            node + 1
        );
        assert_eq!(
            work.reapplied[node],
            0,
            "node {} applied nothing twice",
            node + 1
        );
        assert_eq!(
            work.stored_writes[node],
            total,
            "node {} stored every write in its log",
            node + 1
        );
        assert_eq!(
            work.last_index[node],
            work.last_index[0],
            "node {} holds the leader's log",
            node + 1
        );
        assert_eq!(
            work.committed[node],
            work.last_index[0],
            "node {} committed everything",
            node + 1
        );
        assert_eq!(
            work.durable_commit[node],
            work.committed[node],
            "node {} kept its last hard state",
            node + 1
        );
    }
    // The single loop delivers everything every round: no follower falls behind far enough to
    // be sent a snapshot.
    assert_eq!(work.snapshot_installs, [0; NODES]);
    // Client writes plus the leader's no-op: nothing else went into the log.
    assert_eq!(work.last_index[0].0, total + 1);
    assert!(work.messages >= 4, "messages went between the nodes");
}

#[test]
fn one_client_writes_are_replicated_committed_and_applied() {
    check(1, 200, Some(5000));
}

#[test]
fn many_clients_writes_are_replicated_committed_and_applied() {
    check(7, 700, Some(5000));
    check(64, 640, None);
}

#[test]
fn snapshots_and_compaction_do_not_lose_writes() {
    // A snapshot every 500 entries, 1024 entries kept below it: every log is compacted
    // several times during the run.
    let mut options = CoreOptions::new(16, 4000);
    options.snapshot_every = Some(500);
    let result = run(&options);
    assert!(
        result.check.snapshots.iter().all(|&s| s >= 7),
        "{:?}",
        result.check.snapshots
    );
    assert!(
        result.check.first_index.iter().all(|&i| i.0 > 2000),
        "{:?}",
        result.check.first_index
    );
    check(16, 4000, Some(500));
}

#[test]
fn the_threaded_shape_does_the_same_work() {
    for (clients, ops) in [(1, 300), (8, 800), (64, 6400)] {
        let mut options = CoreOptions::new(clients, ops);
        options.shape = Shape::Threads;
        options.snapshot_every = Some(500);
        let result = run(&options);
        let work = &result.check;
        assert_eq!(result.ops, ops);
        assert_eq!(result.latency_ns.len(), ops);
        assert!(work.leader_fixed);
        assert_eq!(work.leader_terms.0, work.leader_terms.1);
        assert!(work
            .answered_per_client
            .iter()
            .all(|&n| n == ops / clients as u64));
        assert!(work
            .proposed_per_client
            .iter()
            .all(|&n| n == ops / clients as u64));
        // A follower that fell behind may have been sent a snapshot instead of some entries;
        // its state machine (the count of writes) is then restored from it. Either way every
        // node ends with every write applied, and nothing applied twice.
        assert_eq!(work.applied_writes, [ops; NODES], "{work:?}");
        assert_eq!(work.reapplied, [0; NODES]);
        assert_eq!(work.stored_writes[0], ops);
        assert_eq!(work.last_index, [work.last_index[0]; NODES]);
        assert_eq!(work.last_index[0].0, ops + 1);
    }
}

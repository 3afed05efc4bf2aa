//! The core benchmark does the whole work it claims: every write is applied exactly once on the
//! leader and answered exactly once, and it is stored and applied on both followers too.

use skiff_bench::core::{run, CoreOptions, NODES};

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
    }
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

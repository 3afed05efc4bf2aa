//! A Jepsen-style test: concurrent clients run GET, SET and CAS on a few keys against every
//! node while a nemesis partitions, kills and pauses nodes. The recorded history (the JSON
//! lines format every linearizability check here uses) must be linearizable; a failing
//! history is saved for replay.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{serial, TestCluster};
use rand::{Rng, SeedableRng};
use skiff_sim::history::{write_history, OpKind, Operation};
use skiff_sim::linearizability::{check, Verdict};

/// Keys are checked one by one (a register each), and every unknown outcome stays open to the
/// end of its key's search, so spreading operations over more keys keeps each search small.
const KEYS: usize = 32;
/// Each client pauses this long between operations, so a history stays small enough to check
/// exhaustively (every unknown outcome stays open to the end of the search).
const THINK_TIME: Duration = Duration::from_millis(10);
const CLIENTS: u64 = 5;

struct Recorder {
    start: Instant,
    history: Mutex<Vec<Operation>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// One sequential client: after an unknown outcome it goes on as a fresh client id.
fn run_client(
    cluster_clients: Vec<String>,
    worker: u64,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut client_id = worker * 1_000_000;
    let mut connection: Option<redis::Connection> = None;
    let mut writes = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if connection.is_none() {
            let addr = &cluster_clients[rng.gen_range(0..cluster_clients.len())];
            connection = redis::Client::open(format!("redis://{addr}/"))
                .ok()
                .and_then(|c| {
                    c.get_connection_with_timeout(Duration::from_millis(500))
                        .ok()
                });
            if let Some(c) = &connection {
                let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
            } else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        std::thread::sleep(THINK_TIME);
        let c = connection.as_mut().expect("connected");
        let key = format!("k{}", rng.gen_range(0..KEYS));
        writes += 1;
        let fresh = format!("w{worker}-{writes}");
        let (op, value, expected);
        let call_ns = recorder.now();
        let ok: Option<bool>;
        let mut read_value = None;
        match rng.gen_range(0..3) {
            0 => {
                op = OpKind::Get;
                expected = None;
                let result: redis::RedisResult<Option<String>> =
                    redis::cmd("GET").arg(&key).query(c);
                match result {
                    Ok(v) => {
                        read_value = v;
                        ok = Some(true);
                    }
                    Err(_) => ok = None,
                }
                value = read_value.clone();
            }
            1 => {
                op = OpKind::Put;
                expected = None;
                value = Some(fresh.clone());
                let result: redis::RedisResult<()> =
                    redis::cmd("SET").arg(&key).arg(&fresh).query(c);
                ok = result.ok().map(|()| true);
            }
            _ => {
                op = OpKind::Cas;
                // Expect the value some recent write may have left.
                let guess_worker = rng.gen_range(1..=CLIENTS);
                let guess = format!(
                    "w{guess_worker}-{}",
                    rng.gen_range(writes.saturating_sub(20)..=writes)
                );
                expected = Some(guess.clone());
                value = Some(fresh.clone());
                let result: redis::RedisResult<i64> =
                    redis::cmd("CAS").arg(&key).arg(&guess).arg(&fresh).query(c);
                ok = match result {
                    Ok(1) => Some(true),
                    Ok(_) => Some(false),
                    Err(_) => None,
                };
            }
        }
        let return_ns = recorder.now();
        if op == OpKind::Get && ok.is_none() {
            // A failed read has no effect: it need not enter the history.
            connection = None;
            continue;
        }
        recorder.history.lock().expect("history").push(Operation {
            client: client_id,
            op,
            key,
            value,
            expected,
            existed: None,
            ok,
            call_ns,
            return_ns,
        });
        if ok.is_none() {
            client_id += 1;
            connection = None;
        }
    }
}

#[test]
fn concurrent_clients_under_partitions_kills_and_pauses_see_a_linearizable_history() {
    let _serial = serial();
    let seconds: u64 = std::env::var("SKIFF_JEPSEN_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("SKIFF_JEPSEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!(
        "jepsen: seed {seed}, {seconds} s (replay the schedule with SKIFF_JEPSEN_SEED={seed})"
    );
    let mut cluster = TestCluster::start_with(3, &["--request-timeout-ms", "1500"]);
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        history: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<String> = cluster
        .nodes
        .values()
        .map(|n| n.client.to_string())
        .collect();
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|worker| {
            let (addrs, recorder, stop) = (addrs.clone(), recorder.clone(), stop.clone());
            std::thread::spawn(move || run_client(addrs, worker, recorder, stop, seed ^ worker))
        })
        .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut faults = Vec::new();
    while Instant::now() < deadline {
        let victim = rng.gen_range(1..=3u64);
        let leader = cluster
            .status(victim)
            .and_then(|s| s["leader"].as_u64())
            .unwrap_or(victim);
        match rng.gen_range(0..4) {
            0 => {
                faults.push(format!("isolate leader {leader}"));
                cluster.isolate(&[leader]);
                std::thread::sleep(Duration::from_millis(rng.gen_range(1000..3000)));
                cluster.heal();
            }
            1 => {
                faults.push(format!("isolate {victim}"));
                cluster.isolate(&[victim]);
                std::thread::sleep(Duration::from_millis(rng.gen_range(1000..3000)));
                cluster.heal();
            }
            2 => {
                faults.push(format!("kill -9 {victim}"));
                cluster.kill(victim);
                std::thread::sleep(Duration::from_millis(rng.gen_range(500..2000)));
                cluster.spawn(victim);
            }
            _ => {
                faults.push(format!("pause leader {leader}"));
                cluster.signal(leader, libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(rng.gen_range(500..2000)));
                cluster.signal(leader, libc::SIGCONT);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(500..1500)));
    }
    cluster.heal();
    cluster.wait_for_leader(Duration::from_secs(10));
    // A quiet second at the end, so the history ends with successful operations.
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    let history = recorder.history.lock().expect("history").clone();
    let succeeded = history.iter().filter(|o| o.ok == Some(true)).count();
    let unknown = history.iter().filter(|o| o.ok.is_none()).count();
    eprintln!(
        "jepsen: faults {faults:?}; {} operations, {succeeded} succeeded, {unknown} unknown",
        history.len()
    );
    assert!(faults.len() >= 3, "the nemesis ran: {faults:?}");
    assert!(
        succeeded >= 200,
        "enough operations succeeded for the check to mean something: {succeeded}"
    );
    // The check has teeth on this very history: one read changed to a value nobody wrote
    // is caught.
    let mut tampered = history.clone();
    let read = tampered
        .iter_mut()
        .rev()
        .find(|o| o.op == OpKind::Get && o.ok == Some(true))
        .expect("a successful read");
    read.value = Some("never-written".to_string());
    assert!(matches!(check(&tampered), Verdict::NotLinearizable { .. }));

    let verdict = check(&history);
    if verdict != Verdict::Linearizable {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("jepsen-seed-{seed}.history.jsonl"));
        write_history(&path, &history).expect("history saved");
        cluster.dump_logs();
        panic!(
            "{verdict:?}: history saved to {} (seed {seed}, faults {faults:?})",
            path.display()
        );
    }
}

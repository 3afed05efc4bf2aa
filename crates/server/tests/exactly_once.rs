//! Exactly-once writes through real processes (thesis §6.3): clients run `INCR` through
//! followers, one request at a time and pipelined, while the leader is killed with `kill -9`
//! and restarted, and once cut off from the others. Each connection is a session, and a
//! write whose outcome a leader change lost is sent again by the node, so:
//!
//! - no client ever hears "the leader changed; the write may or may not have been applied";
//! - the shared counter ends at the acknowledged increments plus at most the ones of unknown
//!   outcome (a request timeout, or a connection lost with its node) — never less, never more;
//! - each client's own key, which only it increments, answers its acknowledged `INCR`s with
//!   values that grow in the order sent, also within a pipeline (a connection's writes take
//!   effect in the order sent), and ends at exactly the acknowledged ones when none had an
//!   unknown outcome.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, serial, TestCluster};

const CLIENTS: u64 = 4;
/// Commands a pipelined round sends before reading any reply.
const PIPELINE: usize = 8;
/// Longer than the server's request timeout (5 s), so the server answers first.
const READ_TIMEOUT: Duration = Duration::from_secs(12);
/// The refusal a leader change gave before sessions; no client may hear it now.
const OUTCOME_UNKNOWN: &str = "the leader changed; the write may or may not have been applied";

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    /// `INCR counter` acknowledged with a value.
    counter_acked: u64,
    /// `INCR counter` of unknown outcome: timed out, or its connection was lost.
    counter_unknown: u64,
    /// The values the client's own key's acknowledged `INCR`s answered.
    own_values: Vec<i64>,
    own_unknown: u64,
    /// Every error reply, as text.
    errors: Vec<String>,
}

/// How a reply (or its absence) counts.
enum Outcome {
    Value(i64),
    /// Certainly not applied: refused before it was sent anywhere.
    NotApplied,
    Unknown,
}

fn outcome(reply: Option<&str>, tally: &mut Tally) -> Outcome {
    let Some(reply) = reply else {
        return Outcome::Unknown;
    };
    if let Some(value) = reply.strip_prefix(':') {
        return Outcome::Value(value.parse().expect("an integer"));
    }
    tally.errors.push(reply.to_string());
    // No leader known, leadership moving, or too busy: the node answers these only to a
    // write's first attempt, which it sent nowhere. Too many sessions: the state machine
    // applied nothing of it.
    if reply.starts_with("-CLUSTERDOWN")
        || reply.starts_with("-TRYAGAIN leadership is moving")
        || reply.starts_with("-TRYAGAIN too many requests in flight")
        || reply.starts_with("-TRYAGAIN too many client sessions")
    {
        Outcome::NotApplied
    } else {
        Outcome::Unknown
    }
}

/// The RESP bytes of `INCR key`.
fn incr(key: &str) -> Vec<u8> {
    format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).into_bytes()
}

/// One reply line (`:n` or `-ERR …`), or `None` once the connection fails or times out.
fn read_line(reader: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_string()),
    }
}

/// One client: rounds of `INCR counter` and `INCR own:<worker>`, one at a time or pipelined,
/// against the nodes in turn (starting with a follower), reconnecting when its node dies.
fn run_client(worker: u64, nodes: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> Tally {
    let own = format!("own:{worker}");
    let mut tally = Tally::default();
    let mut next_node = worker as usize;
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let addr = nodes[next_node % nodes.len()];
        let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            next_node += 1;
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        // A connection serves rounds until it fails; a new one is a new session.
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            let pipelined = round % 2 == 0;
            let keys: Vec<&str> = (0..PIPELINE)
                .map(|i| if i % 2 == 0 { "counter" } else { own.as_str() })
                .collect();
            let mut replies: Vec<Option<String>> = Vec::new();
            if pipelined {
                let bytes: Vec<u8> = keys.iter().flat_map(|k| incr(k)).collect();
                if writer.write_all(&bytes).is_ok() {
                    for _ in &keys {
                        replies.push(read_line(&mut reader));
                        if replies.last().is_some_and(Option::is_none) {
                            break;
                        }
                    }
                }
            } else {
                for key in &keys {
                    let reply = match writer.write_all(&incr(key)) {
                        Ok(()) => read_line(&mut reader),
                        Err(_) => None,
                    };
                    let failed = reply.is_none();
                    replies.push(reply);
                    if failed {
                        break;
                    }
                }
            }
            // Requests never sent count as not applied; a sent one without a reply is unknown.
            let sent = if pipelined { keys.len() } else { replies.len() };
            let broken = replies.len() < sent || replies.iter().any(Option::is_none);
            for (i, key) in keys.iter().enumerate().take(sent) {
                let outcome = outcome(replies.get(i).cloned().flatten().as_deref(), &mut tally);
                match (*key == "counter", outcome) {
                    (true, Outcome::Value(_)) => tally.counter_acked += 1,
                    (true, Outcome::Unknown) => tally.counter_unknown += 1,
                    (false, Outcome::Value(value)) => tally.own_values.push(value),
                    (false, Outcome::Unknown) => tally.own_unknown += 1,
                    (_, Outcome::NotApplied) => {}
                }
            }
            if broken {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        next_node += 1;
    }
    tally
}

/// `GET key` on node `id` (a linearizable read, on any node) as an integer, 0 if missing.
fn read_counter(cluster: &TestCluster, id: u64, key: &str) -> Option<i64> {
    let mut stream = TcpStream::connect(cluster.nodes[&id].client).ok()?;
    stream.set_read_timeout(Some(READ_TIMEOUT)).ok()?;
    let request = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    stream.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let header = read_line(&mut reader)?;
    match header.strip_prefix('$')? {
        "-1" => Some(0),
        len => {
            let mut bulk = vec![0u8; len.parse::<usize>().ok()? + 2];
            reader.read_exact(&mut bulk).ok()?;
            std::str::from_utf8(&bulk[..bulk.len() - 2])
                .ok()?
                .parse()
                .ok()
        }
    }
}

/// INCRs through followers while leaders are killed, restarted and cut off: the counter ends
/// at the acknowledged increments plus at most the unknown ones, no client hears "may or may
/// not" because of a leader change, and each client's acknowledged increments took effect
/// once each, in the order sent.
/// Reference: thesis §6.3.
#[test]
fn incr_through_leader_kills_is_applied_exactly_once() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    // Followers first: each client starts on one, and moves on to the next node when its
    // connection fails.
    let mut order: Vec<u64> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|&id| id != leader)
        .collect();
    order.push(leader);
    let addrs: Vec<SocketAddr> = order.iter().map(|id| cluster.nodes[id].client).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|worker| {
            let (addrs, stop) = (addrs.clone(), stop.clone());
            std::thread::spawn(move || run_client(worker, addrs, stop))
        })
        .collect();

    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1500));
        let leader = cluster.wait_for_leader(Duration::from_secs(20));
        cluster.kill(leader);
        std::thread::sleep(Duration::from_millis(1000));
        cluster.spawn(leader);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    cluster.isolate(&[leader]);
    std::thread::sleep(Duration::from_millis(2500));
    cluster.heal();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = clients
        .into_iter()
        .map(|client| client.join().expect("client thread"))
        .collect();

    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let acked: u64 = tallies.iter().map(|t| t.counter_acked).sum();
    let unknown: u64 = tallies.iter().map(|t| t.counter_unknown).sum();
    let errors: Vec<&String> = tallies.iter().flat_map(|t| &t.errors).collect();
    assert!(acked > 50, "too few increments acknowledged: {acked}");
    assert!(
        !errors.iter().any(|e| e.contains(OUTCOME_UNKNOWN)),
        "a leader change answered a session write with an unknown outcome: {errors:?}"
    );
    let counter = eventually(Duration::from_secs(20), "the counter", || {
        read_counter(&cluster, leader, "counter")
    });
    let counter = u64::try_from(counter).expect("non-negative");
    eprintln!(
        "counter {counter}: {acked} acknowledged, {unknown} of unknown outcome; errors {errors:?}"
    );
    assert!(
        acked <= counter && counter <= acked + unknown,
        "counter {counter}: {acked} acknowledged, {unknown} of unknown outcome; errors {errors:?}"
    );
    for (worker, tally) in tallies.iter().enumerate() {
        let key = format!("own:{worker}");
        let own = eventually(Duration::from_secs(20), "a client's own key", || {
            read_counter(&cluster, leader, &key)
        });
        // In the order sent: each acknowledged INCR took effect after the ones sent before it.
        let values = tally.own_values.clone();
        let in_order = values.windows(2).all(|pair| pair[0] < pair[1]);
        assert!(
            in_order,
            "client {worker}'s acknowledged INCRs took effect out of the order sent: {values:?}"
        );
        let acked = values.len() as i64;
        assert!(
            values.last().is_none_or(|&top| top <= own)
                && acked <= own
                && own <= acked + tally.own_unknown as i64,
            "client {worker}: own key at {own}, {acked} acknowledged, {} unknown",
            tally.own_unknown
        );
    }
}

/// One connection, one write at a time: what `INCR key` answered (`:n` or `-…`), or `None`
/// once the connection failed.
struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(addr: SocketAddr) -> Connection {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        Connection {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    fn incr(&mut self, key: &str) -> Option<String> {
        self.writer.write_all(&incr(key)).ok()?;
        read_line(&mut self.reader)
    }
}

/// The log-time bounds on sessions, small (set by flags): a connection that pauses past the
/// idle bound keeps writing — its session forgotten, its next write starts one afresh and
/// applies once — and a new connection's first write while every session is busy is refused
/// with "too many client sessions; … not applied", which is true (a linearizable read finds
/// nothing of it), while the busy connections' writes all apply exactly once; once sessions
/// are idle past the eviction bound the new connection's write goes through.
/// Reference: thesis §6.3.
#[test]
fn session_bounds_forget_idle_connections_and_refuse_new_ones_while_all_are_busy() {
    let _serial = serial();
    let cluster = TestCluster::start_with(
        3,
        &[
            "--max-sessions",
            "3",
            "--session-evict-idle-ms",
            "1500",
            "--session-expiry-ms",
            "3000",
        ],
    );
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    let addr = cluster.nodes[&follower].client;

    // A connection writes, pauses past the expiry while others write (log time moves), and
    // writes again: never refused, applied once.
    let mut paused = Connection::open(addr);
    assert_eq!(paused.incr("paused").as_deref(), Some(":1"));
    let mut other = Connection::open(addr);
    for _ in 0..40 {
        assert!(other.incr("other").is_some_and(|r| r.starts_with(':')));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(paused.incr("paused").as_deref(), Some(":2"));
    drop((paused, other));
    // Both sessions go idle past the eviction bound, so three new ones take their places.
    std::thread::sleep(Duration::from_millis(1800));

    // Three busy connections fill the table; the ones above go idle past expiry meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..3)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let key = format!("busy:{i}");
                let mut connection = Connection::open(addr);
                let mut acked = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    match connection.incr(&key) {
                        Some(reply) if reply.starts_with(':') => {
                            acked += 1;
                            assert_eq!(reply, format!(":{acked}"), "{key} in order, once each");
                        }
                        reply => panic!("a busy connection's write got {reply:?}"),
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                (key, acked)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(4000));
    let mut newcomer = Connection::open(addr);
    let refused = newcomer.incr("newcomer").expect("a reply");
    assert_eq!(
        refused,
        "-TRYAGAIN too many client sessions; the write was not applied"
    );
    assert_eq!(
        read_counter(&cluster, leader, "newcomer"),
        Some(0),
        "not applied"
    );

    stop.store(true, Ordering::Relaxed);
    let done: Vec<(String, i64)> = busy
        .into_iter()
        .map(|t| t.join().expect("busy connection"))
        .collect();
    for (key, acked) in &done {
        assert_eq!(read_counter(&cluster, leader, key), Some(*acked), "{key}");
    }
    // The busy sessions go idle past the eviction bound; the next write evicts one. Log time
    // moves only with entries: the newcomer's refused attempts carry it.
    let applied = eventually(
        Duration::from_secs(10),
        "a session idle enough to evict",
        || {
            std::thread::sleep(Duration::from_millis(300));
            newcomer.incr("newcomer").filter(|r| r.starts_with(':'))
        },
    );
    assert_eq!(applied, ":1");
    assert_eq!(read_counter(&cluster, leader, "newcomer"), Some(1));
}

/// The server's `MAX_PIPELINE`: the replies a connection may owe in its queue.
const SERVER_MAX_PIPELINE: usize = 1024;
/// `INCR deep:n` and `APPEND deep:log` pairs one deep round sends before reading a reply:
/// more writes than the server's pipeline and the state machine's session window hold.
const DEEP_PAIRS: usize = SERVER_MAX_PIPELINE / 2 + 200;

/// The RESP bytes of `APPEND key value`.
fn append(key: &str, value: &str) -> Vec<u8> {
    format!(
        "*3\r\n$6\r\nAPPEND\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes()
}

/// What the deep pipeliner saw: for each token it appended, the `APPEND` reply's outcome
/// (the log's length just after it), and the `INCR` replies' outcomes.
#[derive(Debug, Default)]
struct DeepTally {
    /// `(token, length of deep:log after it)` of each acknowledged `APPEND`.
    appended: Vec<(u64, i64)>,
    /// Tokens whose `APPEND` was refused as certainly not applied.
    not_appended: Vec<u64>,
    appends_unknown: u64,
    incr_values: Vec<i64>,
    incrs_unknown: u64,
    errors: Vec<String>,
}

/// One connection to `addr` sends rounds of `DEEP_PAIRS` pipelined `INCR deep:n` /
/// `APPEND deep:log <token>,` pairs (the tokens count up across rounds), reading every reply
/// of a round before the next, until `stop`. The bytes of a round go from another thread,
/// so the server is never held up by replies the test has not read yet.
fn run_deep_pipeliner(addr: SocketAddr, stop: Arc<AtomicBool>) -> DeepTally {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut tally = DeepTally::default();
    // Where `outcome` records error texts.
    let mut seen = Tally::default();
    let mut token = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let tokens: Vec<u64> = (token..token + DEEP_PAIRS as u64).collect();
        token += DEEP_PAIRS as u64;
        let bytes: Vec<u8> = tokens
            .iter()
            .flat_map(|t| [incr("deep:n"), append("deep:log", &format!("{t},"))].concat())
            .collect();
        let mut writer = stream.try_clone().expect("clone");
        let sender = std::thread::spawn(move || writer.write_all(&bytes));
        for &t in &tokens {
            let incr_reply = read_line(&mut reader);
            let append_reply = read_line(&mut reader);
            assert!(
                append_reply.is_some(),
                "the connection to a node never killed failed"
            );
            match outcome(incr_reply.as_deref(), &mut seen) {
                Outcome::Value(value) => tally.incr_values.push(value),
                Outcome::Unknown => tally.incrs_unknown += 1,
                Outcome::NotApplied => {}
            }
            match outcome(append_reply.as_deref(), &mut seen) {
                Outcome::Value(length) => tally.appended.push((t, length)),
                Outcome::Unknown => tally.appends_unknown += 1,
                Outcome::NotApplied => tally.not_appended.push(t),
            }
        }
        sender.join().expect("sender").expect("the round sent");
    }
    tally.errors = seen.errors;
    tally
}

/// A connection to a follower pipelines more writes than the server's pipeline and the
/// session window hold, round after round, while the leader is killed and restarted (and,
/// when the connection's own node leads, leadership is moved away instead, so the
/// connection never breaks). Every acknowledged write was applied exactly once and in the
/// order sent: the `INCR` values rise, the log of appended tokens rises, each acknowledged
/// `APPEND` answered the log's length just after its token, tokens refused as not applied
/// are absent, and no write is answered "stale" or "may or may not" unless a request timed
/// out. Reference: thesis §6.3.
#[test]
fn a_pipeline_deeper_than_the_session_window_survives_leader_kills() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let client_node = cluster.followers(leader)[0];
    let stop = Arc::new(AtomicBool::new(false));
    let pipeliner = {
        let (addr, stop) = (cluster.nodes[&client_node].client, stop.clone());
        std::thread::spawn(move || run_deep_pipeliner(addr, stop))
    };
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let leader = cluster.wait_for_leader(Duration::from_secs(20));
        if leader == client_node {
            let to = cluster.followers(leader)[0].to_string();
            cluster.admin_ok(leader, &["transfer-leader", "--to", &to]);
            continue;
        }
        cluster.kill(leader);
        std::thread::sleep(Duration::from_millis(800));
        cluster.spawn(leader);
    }
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    let tally = pipeliner.join().expect("pipeliner");

    let timed_out = tally.errors.iter().any(|e| e.contains("no answer within"));
    let ambiguous: Vec<&String> = tally
        .errors
        .iter()
        .filter(|e| e.contains("stale") || e.contains("may or may not"))
        .collect();
    assert!(
        timed_out || ambiguous.is_empty(),
        "a leader change alone answered pipelined writes ambiguously: {ambiguous:?}"
    );
    assert!(
        tally.appended.len() > SERVER_MAX_PIPELINE,
        "too few appends acknowledged: {}",
        tally.appended.len()
    );
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let mut reads = cluster.redis(leader);
    let log: String = common::query(&mut reads, &["GET", "deep:log"]);
    let n: i64 = common::query(&mut reads, &["GET", "deep:n"]);
    let tokens: Vec<u64> = log
        .split_terminator(',')
        .map(|t| t.parse().expect("a token"))
        .collect();
    // Once each and in the order sent.
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "tokens repeated or out of order in the log"
    );
    for &(token, length) in &tally.appended {
        let prefix = usize::try_from(length).ok().and_then(|l| log.get(..l));
        assert!(
            prefix.is_some_and(|p| p.ends_with(&format!(",{token},")) || p == format!("{token},")),
            "APPEND of token {token} answered length {length}, which does not end at it"
        );
    }
    for token in &tally.not_appended {
        assert!(
            !tokens.contains(token),
            "token {token} was refused as not applied, yet is in the log"
        );
    }
    let acked_appends = tally.appended.len() as u64;
    assert!(
        acked_appends <= tokens.len() as u64
            && tokens.len() as u64 <= acked_appends + tally.appends_unknown,
        "{} tokens in the log: {acked_appends} acknowledged, {} unknown",
        tokens.len(),
        tally.appends_unknown
    );
    let values = &tally.incr_values;
    assert!(
        values.windows(2).all(|pair| pair[0] < pair[1]),
        "acknowledged INCRs took effect out of the order sent"
    );
    let acked = values.len() as i64;
    assert!(
        values.last().is_none_or(|&top| top <= n)
            && acked <= n
            && n <= acked + tally.incrs_unknown as i64,
        "deep:n at {n}: {acked} acknowledged, {} unknown; errors {:?}",
        tally.incrs_unknown,
        tally.errors
    );
}

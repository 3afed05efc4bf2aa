//! The hostile-input suite: every attack of the threat model (docs/SECURITY.md) replayed
//! against a real three-node cluster. For each: no process dies, every node still answers
//! `SET` and `GET`, no acknowledged write is lost, every node's resident memory stays under 300
//! MiB at its peak (`VmHWM`), and the refusal is a clear error reply or log line. (Admin requests, cross-origin requests and
//! the live view are in `hostile_http.rs`; damaged WAL files in `durability.rs`.)

#[macro_use]
#[path = "support/attack.rs"]
mod attack;
mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use attack::{
    acknowledged_writes, closed_by_server, cluster_survived, connect_peer, read_at_least,
    read_until_quiet,
};
use common::{eventually, peer_frame as frame, peer_hello as hello, serial, TestCluster, Wire};
use redis::Commands;
use skiff_node::{wire, PeerMessage};
use skiff_raft::{Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, SnapshotMeta, Term};

fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ---- the client port ----

fn pipelined_commands_take_effect_in_the_order_sent_on_every_node_on(secure: bool) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], secure);
    for &id in cluster.nodes.keys() {
        let addr = cluster.nodes[&id].client;
        let mut stream = cluster.connect_client(addr);
        for attempt in 0..50 {
            // A write then a read of the same key, sent together.
            let key = format!("order-{id}-{attempt}");
            let value = format!("v{attempt}");
            let mut pipeline = resp_command(&[b"SET", key.as_bytes(), value.as_bytes()]);
            pipeline.extend(resp_command(&[b"GET", key.as_bytes()]));
            // A read then a write: the read must not see the write sent after it.
            pipeline.extend(resp_command(&[b"GET", key.as_bytes()]));
            pipeline.extend(resp_command(&[b"SET", key.as_bytes(), b"later"]));
            pipeline.extend(resp_command(&[b"GET", key.as_bytes()]));
            stream.write_all(&pipeline).expect("send");
            let expected = format!(
                "+OK\r\n${len}\r\n{value}\r\n${len}\r\n{value}\r\n+OK\r\n$5\r\nlater\r\n",
                len = value.len()
            );
            let received = read_at_least(&mut stream, expected.len());
            assert_eq!(
                String::from_utf8_lossy(&received),
                expected,
                "node {id}, attempt {attempt}"
            );
        }
        // Writes in a row keep their order too (a follower forwards them).
        let mut pipeline = Vec::new();
        for _ in 0..100 {
            pipeline.extend(resp_command(&[b"INCR", format!("count-{id}").as_bytes()]));
        }
        pipeline.extend(resp_command(&[b"GET", format!("count-{id}").as_bytes()]));
        stream.write_all(&pipeline).expect("send");
        let replies =
            String::from_utf8(read_until_quiet(&mut stream, Duration::from_secs(2))).expect("text");
        let expected: String =
            (1..=100).map(|n| format!(":{n}\r\n")).collect::<String>() + "$3\r\n100\r\n";
        assert_eq!(replies, expected, "node {id}");
    }

    // The same through a client library's pipeline.
    let mut connection = cluster.redis(2);
    let (first, second): (String, String) = redis::pipe()
        .set("lib-key", "one")
        .ignore()
        .get("lib-key")
        .set("lib-key", "two")
        .ignore()
        .get("lib-key")
        .query(&mut connection)
        .expect("pipeline");
    assert_eq!((first.as_str(), second.as_str()), ("one", "two"));
    cluster_survived(&mut cluster, &[]);
}

fn a_pipeline_of_every_kind_ending_in_garbage_is_answered_in_order_up_to_the_garbage_on(
    secure: bool,
) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], secure);
    let follower = {
        let leader = cluster.wait_for_leader(Duration::from_secs(5));
        if leader == 1 {
            2
        } else {
            1
        }
    };
    let mut stream = cluster.connect_client(cluster.nodes[&follower].client);
    // 5,000 commands in one write, never read until the end: writes, reads, local commands,
    // errors and an inline request, then a framing error.
    let mut pipeline = Vec::new();
    let mut expected = String::new();
    for i in 0..1000 {
        let value = format!("v{i}");
        pipeline.extend(resp_command(&[b"SET", b"piped", value.as_bytes()]));
        pipeline.extend(resp_command(&[b"GET", b"piped"]));
        pipeline.extend(resp_command(&[b"PING"]));
        pipeline.extend(resp_command(&[b"NOSUCH"]));
        pipeline.extend(b"INCR piped-count\r\n");
        expected += &format!(
            "+OK\r\n${}\r\n{value}\r\n+PONG\r\n-ERR unknown command 'NOSUCH'\r\n:{}\r\n",
            value.len(),
            i + 1
        );
    }
    pipeline.extend(b"*1\r\n$-3\r\n");
    pipeline.extend(resp_command(&[b"SET", b"after-garbage", b"x"]));
    stream
        .socket()
        .set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(&pipeline).expect("send");
    let replies = read_until_quiet(&mut stream, Duration::from_secs(10));
    let replies = String::from_utf8_lossy(&replies);
    assert!(
        replies.starts_with(&expected),
        "replies diverge at byte {}",
        replies
            .bytes()
            .zip(expected.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(replies.len().min(expected.len()))
    );
    assert_eq!(
        &replies[expected.len()..],
        "-ERR Protocol error: invalid bulk length\r\n",
        "the garbage is refused and the connection closed"
    );
    let mut connection = cluster.redis(follower);
    let after: Option<String> = connection.get("after-garbage").expect("read");
    assert_eq!(after, None, "nothing after the garbage was run");
    let last: String = connection.get("piped").expect("read");
    assert_eq!(last, "v999");
    cluster_survived(&mut cluster, &[]);
}

fn huge_replies_unread_replies_and_unfinished_requests_are_cut_off_with_memory_bounded_on(
    secure: bool,
) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], secure);
    let kept = acknowledged_writes(&cluster, "kept", 20);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let addr = cluster.nodes[&leader].client;
    let value = vec![b'x'; 1_000_000];
    let mut connection = cluster.redis(leader);
    let _: () = connection
        .set("big", value.as_slice())
        .expect("a 1 MB value");

    // A write too large for one log entry, sent to a follower: refused there, not forwarded
    // to the leader (whose peer port would refuse the frame and drop the connection).
    let follower = if leader == 1 { 2 } else { 1 };
    let mut at_follower = cluster.redis(follower);
    let refused: redis::RedisResult<()> = at_follower.set("huge", vec![b'h'; 2 << 20]);
    let error = refused.expect_err("a 2 MiB write").to_string();
    assert!(
        error.contains("request too large for one log entry"),
        "{error}"
    );
    assert!(!cluster
        .node_log(leader)
        .contains("closed a peer connection"));

    // One small MGET of the big key 500 times: refused before the reply is built.
    let mut stream = cluster.connect_client(addr);
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(std::iter::repeat_n(b"big".as_slice(), 500));
    stream.write_all(&resp_command(&mget)).expect("send");
    let reply = read_until_quiet(&mut stream, Duration::from_secs(2));
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.starts_with("-ERR reply larger than the limit of 16777216 bytes"),
        "{reply}"
    );

    // A client that pipelines 2,000 GETs of the big value and never reads is disconnected
    // once its unread replies pass the output limit.
    let before = cluster.errors_counted(leader, "client_output_limit");
    let mut greedy = cluster.connect_client(addr);
    let get = resp_command(&[b"GET", b"big"]);
    greedy
        .socket()
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    for _ in 0..2000 {
        if greedy.write_all(&get).is_err() {
            break;
        }
    }
    eventually(Duration::from_secs(20), "the greedy client cut off", || {
        (cluster.errors_counted(leader, "client_output_limit") > before).then_some(())
    });
    assert!(cluster
        .node_log(leader)
        .contains("disconnecting a client over a memory limit"));
    drop(greedy);

    // An unfinished request of 200 bulk strings of 8 MiB each: the server stops reading it
    // at the request limit (32 MiB) and says why.
    let mut hoarder = cluster.connect_client(addr);
    hoarder
        .socket()
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let chunk = vec![b'y'; 8 * 1024 * 1024];
    let mut sent = 0usize;
    let _ = hoarder.write_all(b"*201\r\n$3\r\nSET\r\n");
    for _ in 0..200 {
        if hoarder.write_all(b"$8388608\r\n").is_err()
            || hoarder.write_all(&chunk).is_err()
            || hoarder.write_all(b"\r\n").is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    assert!(
        sent < 200 * chunk.len(),
        "the server read all {sent} bytes of the unfinished request"
    );
    let reply = read_until_quiet(&mut hoarder, Duration::from_secs(2));
    assert!(
        String::from_utf8_lossy(&reply).contains("request larger than the limit"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );

    // Many clients that declare 8 MiB values and send none of it hold nothing: a new client
    // is still served.
    let declarers: Vec<Box<dyn Wire>> = (0..80)
        .map(|_| {
            let mut stream = cluster.connect_client(addr);
            stream
                .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8388608\r\n")
                .expect("send");
            stream
        })
        .collect();
    let mut newcomer = cluster.redis(leader);
    let _: () = newcomer
        .set("newcomer", "served")
        .expect("a new client is served");
    drop(declarers);

    // A request dripped in small pieces (many tiny arguments) while other clients are served:
    // the parser keeps its place instead of re-reading the request on every piece.
    let mut dripper = cluster.connect_client(addr);
    dripper
        .write_all(b"*100001\r\n$4\r\nMGET\r\n")
        .expect("send");
    let mut bystander = cluster.redis(leader);
    for round in 0..200 {
        let piece: Vec<u8> = b"$1\r\nk\r\n".repeat(500);
        dripper.write_all(&piece).expect("drip");
        if round % 20 == 0 {
            let pong: String = redis::cmd("PING").query(&mut bystander).expect("ping");
            assert_eq!(pong, "PONG");
        }
    }
    dripper.write_all(b"$1\r\nk\r\n").expect("last argument");
    let reply = read_until_quiet(&mut dripper, Duration::from_secs(5));
    assert!(
        reply.starts_with(b"*100000\r\n"),
        "{:?}",
        &reply[..reply.len().min(40)]
    );

    cluster_survived(&mut cluster, &kept);
}

fn an_idle_client_is_disconnected_when_a_timeout_is_set_on(secure: bool) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &["--client-idle-timeout-secs", "1"], secure);
    let mut idle = cluster.connect_client(cluster.nodes[&1].client);
    idle.write_all(b"PING\r\n").expect("send");
    assert_eq!(
        read_until_quiet(&mut idle, Duration::from_millis(300)),
        b"+PONG\r\n"
    );
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(5)),
        "an idle client stays connected"
    );
    assert!(cluster.errors_counted(1, "idle_timeout") >= 1);
    cluster_survived(&mut cluster, &[]);
}

plain_and_tls! {
    pipelined_commands_take_effect_in_the_order_sent_on_every_node_on:
        pipelined_commands_take_effect_in_the_order_sent_on_every_node,
        pipelined_commands_take_effect_in_the_order_sent_on_every_node_over_tls;
    a_pipeline_of_every_kind_ending_in_garbage_is_answered_in_order_up_to_the_garbage_on:
        a_pipeline_of_every_kind_ending_in_garbage_is_answered_in_order_up_to_the_garbage,
        a_pipeline_of_every_kind_ending_in_garbage_is_answered_in_order_up_to_the_garbage_over_tls;
    huge_replies_unread_replies_and_unfinished_requests_are_cut_off_with_memory_bounded_on:
        huge_replies_unread_replies_and_unfinished_requests_are_cut_off_with_memory_bounded,
        huge_replies_unread_replies_and_unfinished_requests_are_cut_off_with_memory_bounded_over_tls;
    an_idle_client_is_disconnected_when_a_timeout_is_set_on:
        an_idle_client_is_disconnected_when_a_timeout_is_set,
        an_idle_client_is_disconnected_when_a_timeout_is_set_over_tls;
    forged_peer_messages_are_refused_and_no_node_crashes_or_loses_its_leader_on:
        forged_peer_messages_are_refused_and_no_node_crashes_or_loses_its_leader,
        forged_peer_messages_are_refused_and_no_node_crashes_or_loses_its_leader_over_tls;
}

// ---- the peer port ----

fn message(cluster_id: u64, from: u64, to: u64, term: u64, body: MessageBody) -> Vec<u8> {
    let mut payload = Vec::new();
    let message = PeerMessage::Raft(Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    });
    // The sender's incarnation is filled in by `forge`, which knows whom it impersonates.
    wire::encode_envelope(&skiff_node::Envelope::new(u64::MAX, message), &mut payload);
    frame(cluster_id, 1, &payload)
}

/// Opens a connection to `target`'s peer port pretending to be node `from`, sends `frames`.
fn forge(cluster: &TestCluster, target: u64, from: u64, frames: &[Vec<u8>]) {
    let cluster_id = cluster_id(cluster, target);
    // With TLS, the forger holds node `from`'s own certificate: what it may still not do is
    // what this test checks.
    let mut stream = connect_peer(cluster, target, from).expect("a peer connection");
    let mut bytes = hello(cluster_id, from, "127.0.0.1:1", "127.0.0.1:2");
    // The impersonated node's incarnation, so that the forgery gets past the amnesia guard
    // and reaches the checks under test.
    let incarnation = cluster.incarnation(from).to_le_bytes();
    for frame in frames {
        let mut frame = frame.clone();
        frame[14..22].copy_from_slice(&incarnation);
        bytes.extend_from_slice(&frame);
    }
    let _ = stream.write_all(&bytes).and_then(|()| stream.flush());
    std::thread::sleep(Duration::from_millis(300));
}

fn cluster_id(cluster: &TestCluster, id: u64) -> u64 {
    cluster.status(id).expect("status")["cluster_id"]
        .as_u64()
        .expect("cluster id")
}

fn term_and_leader(cluster: &TestCluster, id: u64) -> (u64, u64) {
    let status = cluster.status(id).expect("status");
    (
        status["term"].as_u64().expect("term"),
        status["leader"].as_u64().unwrap_or(0),
    )
}

fn forged_peer_messages_are_refused_and_no_node_crashes_or_loses_its_leader_on(secure: bool) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], secure);
    let kept = acknowledged_writes(&cluster, "kept", 20);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let followers: Vec<u64> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|&id| id != leader)
        .collect();
    let (follower, other) = (followers[0], followers[1]);
    let (term, _) = term_and_leader(&cluster, follower);
    let last_index = cluster.status(follower).expect("status")["last_index"]
        .as_u64()
        .expect("last index");
    let id = |target: u64| cluster_id(&cluster, target);

    // 1. An AppendEntries with the largest term, to every node.
    for &target in cluster.nodes.keys() {
        let from = if target == leader { follower } else { leader };
        let append = message(
            id(target),
            from,
            target,
            u64::MAX,
            MessageBody::AppendEntries {
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries: Vec::new(),
                leader_commit: LogIndex(0),
                read_round: 0,
            },
        );
        forge(&cluster, target, from, &[append]);
    }
    // 2. An AppendEntries whose entries skip indexes, as the leader in its own term.
    let gap = message(
        id(follower),
        leader,
        follower,
        term,
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(last_index),
            prev_log_term: Term(term),
            entries: vec![
                Entry {
                    term: Term(term),
                    index: LogIndex(last_index + 5),
                    kind: EntryKind::Normal,
                    data: b"forged".to_vec().into(),
                },
                Entry {
                    term: Term(term),
                    index: LogIndex(last_index + 9),
                    kind: EntryKind::Normal,
                    data: b"forged".to_vec().into(),
                },
            ],
            leader_commit: LogIndex(last_index + 9),
            read_round: 0,
        },
    );
    forge(&cluster, follower, leader, &[gap]);
    // 3. A snapshot of garbage, complete in one chunk, as the leader in its own term.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let snapshot = message(
        id(follower),
        leader,
        follower,
        term,
        MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(last_index + 100),
                term: Term(term),
                voters: vec![NodeId(1), NodeId(2), NodeId(3)],
                voters_outgoing: Vec::new(),
                learners: Vec::new(),
            },
            offset: 0,
            data: garbage,
            done: true,
        },
    );
    forge(&cluster, follower, leader, &[snapshot]);
    // 4. Five TimeoutNow from a node that does not lead.
    let (term_before, leader_before) = term_and_leader(&cluster, follower);
    let timeout_now: Vec<Vec<u8>> = (0..5)
        .map(|_| message(id(follower), other, follower, term, MessageBody::TimeoutNow))
        .collect();
    forge(&cluster, follower, other, &timeout_now);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        term_and_leader(&cluster, follower),
        (term_before, leader_before),
        "a forged TimeoutNow started an election"
    );

    // Each refusal is logged naming the peer, and counted.
    let log = cluster.node_log(follower);
    assert!(log.contains("refused a message from a peer"), "{log}");
    assert!(cluster.errors_counted(follower, "peer_message_refused") >= 3);
    let top_term = cluster
        .nodes
        .keys()
        .map(|&id| term_and_leader(&cluster, id).0)
        .max()
        .expect("terms");
    assert!(top_term < 1 << 32, "a forged term was adopted: {top_term}");
    cluster_survived(&mut cluster, &kept);

    // Nothing forged reached durable state: every node restarts and serves.
    for id in [1, 2, 3] {
        cluster.kill(id);
        cluster.spawn(id);
    }
    cluster_survived(&mut cluster, &kept);
}

/// Over TLS the stranger holds node 2's own certificate, signed by the cluster's CA: a
/// certificate buys a handshake, nothing more.
fn strangers_on_the_peer_port_cannot_make_a_node_hold_memory_on(secure: bool) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &["--max-peer-connections", "16"], secure);
    let kept = acknowledged_writes(&cluster, "kept", 10);
    let target = 1;
    let peer = cluster.nodes[&target].peer;
    let cluster_id = cluster_id(&cluster, target);
    let stranger = || connect_peer(&cluster, target, 2);

    // A first frame that claims 4 MiB: refused after its first 4 bytes, whatever follows.
    let mut strangers = Vec::new();
    for _ in 0..100 {
        if let Some(mut stream) = stranger() {
            let mut header = (4u32 * 1024 * 1024).to_le_bytes().to_vec();
            header.push(skiff_node::wire::WIRE_VERSION);
            header.extend_from_slice(&0x5eed_u64.to_le_bytes());
            header.push(1);
            let _ = stream.write_all(&header);
            let _ = stream.write_all(&vec![0u8; 64 * 1024]);
            strangers.push(stream);
        }
    }
    for stream in &mut strangers {
        assert!(closed_by_server(stream, Duration::from_secs(5)));
    }
    drop(strangers);
    // One who knows the (public) cluster id but sends a first frame far larger than a hello.
    let mut big_hello = stranger().expect("connect");
    let _ = big_hello.write_all(&frame(cluster_id, 0, &vec![0u8; 1 << 20]));
    assert!(closed_by_server(&mut big_hello, Duration::from_secs(5)));

    // A Hello dribbled a byte every 400 ms: closed at the Hello's deadline (2 s), not when
    // the last byte would have come (8 s).
    let mut slow = stranger().expect("connect");
    let started = Instant::now();
    for byte in hello(cluster_id, 2, "127.0.0.1:1", "127.0.0.1:2")
        .iter()
        .take(20)
    {
        if slow
            .write_all(&[*byte])
            .and_then(|()| slow.flush())
            .is_err()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(closed_by_server(&mut slow, Duration::from_secs(5)));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    // Connections that send nothing hold a slot for at most 2 s and beyond the limit are
    // closed at once.
    let silent: Vec<_> = (0..40).filter_map(|_| stranger()).collect();
    std::thread::sleep(Duration::from_millis(500));
    assert!(cluster.errors_counted(target, "max_peer_connections") > 0);
    drop(silent);

    // 500 hellos with new ids and advertised addresses that are markup.
    for from in 1000..1500u64 {
        if let Some(mut stream) = stranger() {
            let _ = stream.write_all(&hello(
                cluster_id,
                from,
                "<img src=x onerror=alert(1)>",
                "127.0.0.1:80",
            ));
        }
    }
    let log = cluster.node_log(target);
    assert!(
        log.contains("not HOST:PORT"),
        "the markup hello was not refused"
    );
    let status = cluster.http_get(target, "/status").expect("status");
    assert!(!status.contains("onerror"), "{status}");
    let log_has = |text: &str| {
        eventually(Duration::from_secs(5), text, || {
            cluster.node_log(target).contains(text).then_some(())
        });
        true
    };
    eventually(Duration::from_secs(10), "the old slots freed", || {
        TcpStream::connect(peer).ok().map(|_| ())
    });
    assert!(log_has("frame of 1048586 bytes exceeds the limit of 1024"));
    assert!(log_has("frame of 4194304 bytes exceeds the limit of 1024"));
    assert!(log_has("no hello within 2s"));
    // A small frame of another cluster is refused by its cluster id (tried again while the
    // connection limit, still full of the connections above, closes it before reading).
    eventually(
        Duration::from_secs(10),
        "a foreign hello refused by its cluster",
        || {
            let mut foreign = stranger()?;
            let _ = foreign.write_all(&hello(0x5eed, 9, "127.0.0.1:1", "127.0.0.1:2"));
            assert!(closed_by_server(&mut foreign, Duration::from_secs(5)));
            cluster
                .node_log(target)
                .contains("peer belongs to cluster 0x5eed")
                .then_some(())
        },
    );
    cluster_survived(&mut cluster, &kept);
}

plain_and_tls! {
    strangers_on_the_peer_port_cannot_make_a_node_hold_memory_on:
        strangers_on_the_peer_port_cannot_make_a_node_hold_memory,
        strangers_on_the_peer_port_cannot_make_a_node_hold_memory_over_tls;
}

// ---- the process ----

/// A single node on a 16 MiB file system that fills up: the durable log fails, and the
/// process exits with a failure status that a supervisor restarts on. A requested stop
/// exits 0.
#[test]
fn a_node_that_stops_for_any_reason_but_a_request_exits_with_failure() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let addr = |port: u16| -> SocketAddr { format!("127.0.0.1:{port}").parse().expect("addr") };
    // The log lives outside the data directory, which is to fill up.
    let log_of = |dir: &std::path::Path| {
        root.path().join(format!(
            "{}.log",
            dir.parent()
                .and_then(|p| p.file_name())
                .unwrap_or_default()
                .to_string_lossy()
        ))
    };
    let start = |dir: &std::path::Path| {
        let log = std::fs::File::create(log_of(dir)).expect("log");
        std::process::Command::new(common::skiff_bin())
            .args(["serve", "--id", "1", "--data-dir"])
            .arg(dir)
            .args(["--listen-client", &addr(ports[0]).to_string()])
            .args(["--listen-peer", &addr(ports[1]).to_string()])
            .args(["--listen-http", &addr(ports[2]).to_string()])
            .args(["--initial-cluster", &format!("1={}", addr(ports[1]))])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("skiff starts")
    };
    let connect = || connect_when_listening(ports[0]);

    // A requested stop: status 0.
    let plain = root.path().join("plain").join("node");
    let mut node = start(&plain);
    let mut connection = connect();
    eventually(Duration::from_secs(10), "a leader", || {
        connection.set::<_, _, ()>("k", "v").ok()
    });
    common::send_signal(node.id(), libc::SIGTERM);
    let status = node.wait().expect("wait");
    assert!(status.success(), "SIGTERM ended with {status}");

    // A full disk: a failure status.
    let small = root.path().join("small");
    std::fs::create_dir_all(&small).expect("dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        panic!("this test mounts a 16 MiB tmpfs and needs root (CI runs as root)");
    }
    let unmount = Unmount(small.clone());
    let mut node = start(&small.join("node"));
    let mut connection = connect();
    eventually(Duration::from_secs(10), "a leader", || {
        connection.set::<_, _, ()>("k", "v").ok()
    });
    let value = vec![b'z'; 512 * 1024];
    let exit = eventually(
        Duration::from_secs(60),
        "the node to stop on a full disk",
        || {
            let _: Result<(), _> = connection.set("fill", value.as_slice());
            node.try_wait().expect("wait")
        },
    );
    assert!(
        !exit.success(),
        "a node whose disk failed exited with {exit}"
    );
    let log = std::fs::read_to_string(log_of(&small.join("node"))).unwrap_or_default();
    assert!(log.contains("the durable log failed"), "{log}");
    drop(unmount);
}

/// Unmounts a test file system when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A second `skiff serve` on a data directory a running node holds refuses to start, saying
/// so, and writes nothing there: the first keeps serving. Once the first is stopped, the
/// directory starts again.
#[test]
fn a_second_process_on_a_data_directory_in_use_refuses_to_start() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("node");
    let addr = |port: u16| format!("127.0.0.1:{port}");
    let start = |ports: &[u16]| {
        std::process::Command::new(common::skiff_bin())
            .args(["serve", "--id", "1", "--data-dir"])
            .arg(&dir)
            .args(["--listen-client", &addr(ports[0])])
            .args(["--listen-peer", &addr(ports[1])])
            .args(["--listen-http", &addr(ports[2])])
            .args(["--initial-cluster", &format!("1={}", addr(ports[1]))])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("skiff starts")
    };
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let connect = || connect_when_listening(ports[0]);
    let mut first = start(&ports);
    let mut connection = connect();
    eventually(Duration::from_secs(10), "a leader", || {
        connection.set::<_, _, ()>("k", "first").ok()
    });
    let segments = |dir: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir.join("wal"))
            .expect("the log's directory")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        names.sort();
        names
    };
    let before = segments(&dir);

    // The same flags, as a supervisor would give: the lock refuses it before it listens.
    let second = start(&ports).wait_with_output().expect("the second ends");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second started: {stderr}");
    assert!(
        stderr.contains("in use by another skiff process"),
        "says why: {stderr}"
    );
    assert_eq!(segments(&dir), before, "the second wrote no log");
    let _: () = connection.set("k", "still").expect("the first serves on");
    let value: String = connection.get("k").expect("read");
    assert_eq!(value, "still");

    common::send_signal(first.id(), libc::SIGTERM);
    assert!(first.wait().expect("wait").success());
    let mut again = start(&ports);
    let mut connection = connect();
    let value: String = eventually(Duration::from_secs(10), "the write read back", || {
        connection.get("k").ok()
    });
    assert_eq!(value, "still");
    common::send_signal(again.id(), libc::SIGTERM);
    assert!(again.wait().expect("wait").success());
}

/// A connection to the single node whose client port is `port`, once it listens.
fn connect_when_listening(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    eventually(Duration::from_secs(10), "the node listening", || {
        client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    })
}

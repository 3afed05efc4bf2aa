//! Bad input from clients and from the peer port: each gets a clear error or is refused and
//! logged; the node keeps serving and loses nothing.

#[macro_use]
#[path = "support/attack.rs"]
mod attack;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use attack::peer_exchange;
use common::{serial, TestCluster};
use redis::Commands;

/// Sends raw bytes to an address and returns everything read until the peer closes or
/// goes quiet.
fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    stream.write_all(bytes).expect("send");
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    String::from_utf8_lossy(&received).to_string()
}

fn still_serves(cluster: &TestCluster, id: u64) {
    let mut connection = cluster.redis(id);
    let _: () = connection.set("after-bad-input", "ok").expect("write");
    let value: String = connection.get("after-bad-input").expect("read");
    assert_eq!(value, "ok");
}

#[test]
fn malformed_requests_get_protocol_errors_and_other_clients_are_unaffected() {
    let _serial = serial();
    let cluster = TestCluster::start_with(3, &["--max-bulk-bytes", "1024"]);
    let leader = cluster.wait_for_leader(Duration::from_secs(5));
    let addr = cluster.nodes[&leader].client;
    let mut bystander = cluster.redis(leader);
    let _: () = bystander.set("kept", "yes").expect("write");

    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length"),
        (b"*2\r\n:1\r\n", "-ERR Protocol error: expected '$'"),
        (b"*a\r\n", "-ERR Protocol error: invalid multibulk length"),
        (
            b"SET k \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes",
        ),
    ];
    for (input, expected) in cases {
        let reply = exchange(addr, input);
        assert!(reply.starts_with(expected), "{input:?} got {reply:?}");
    }

    // A value over the configured maximum is refused before it is read.
    let mut oversized = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$2000\r\n".to_vec();
    oversized.extend(std::iter::repeat_n(b'x', 2000));
    oversized.extend_from_slice(b"\r\n");
    let reply = exchange(addr, &oversized);
    assert!(reply.contains("exceeds the limit of 1024"), "{reply:?}");

    // An unknown command is an error reply; the connection stays usable.
    let reply = exchange(addr, b"NOSUCHCMD\r\nPING\r\n");
    assert!(
        reply.starts_with("-ERR unknown command 'NOSUCHCMD'\r\n+PONG\r\n"),
        "{reply:?}"
    );

    // Pipelined in one write: TOUCH without a key and TIME with an argument are arity
    // errors naming the command sent, answered in order; TIME alone answers two bulk
    // strings, the seconds and the microseconds since the epoch, as redis-server does.
    let reply = exchange(addr, b"TOUCH\r\nTIME now\r\nTIME\r\n");
    let words: Vec<&str> = reply.split("\r\n").collect();
    assert_eq!(
        words[..3],
        [
            "-ERR wrong number of arguments for 'touch' command",
            "-ERR wrong number of arguments for 'time' command",
            "*2"
        ],
        "{reply:?}"
    );
    let words = &words[1..];
    let bulk = |at: usize| -> u64 {
        assert_eq!(words[at], format!("${}", words[at + 1].len()), "{reply:?}");
        words[at + 1].parse().expect("digits")
    };
    let (seconds, micros) = (bulk(2), bulk(4));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after the epoch")
        .as_secs();
    assert!(
        seconds.abs_diff(now) < 60 && micros < 1_000_000,
        "{reply:?}"
    );

    let big: Option<String> = bystander.get("big").expect("read");
    assert_eq!(big, None, "the oversized write was not applied");
    let kept: String = bystander.get("kept").expect("read");
    assert_eq!(kept, "yes");
    still_serves(&cluster, leader);
}

/// Over TLS the bytes come through mutual TLS with node 2's own certificate.
fn garbage_and_foreign_clusters_on_the_peer_port_are_refused_and_logged_on(secure: bool) {
    let _serial = serial();
    let cluster = TestCluster::launch(3, &[], secure);
    let target = 1;

    // Garbage: an HTTP request where a frame should be.
    peer_exchange(&cluster, target, 2, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // A well-formed hello from a node of another cluster.
    let mut hello = Vec::new();
    hello.extend_from_slice(&(1u32 + 8 + 1 + 8 + 2 + 2).to_le_bytes());
    hello.push(skiff_node::wire::WIRE_VERSION);
    hello.extend_from_slice(&0xdead_beefu64.to_le_bytes()); // another cluster
    hello.push(0); // hello
    hello.extend_from_slice(&2u64.to_le_bytes());
    hello.extend_from_slice(&[0, 0, 0, 0]);
    peer_exchange(&cluster, target, 2, &hello);
    // A frame from an unsupported version.
    let mut future = hello.clone();
    future[4] = 99;
    peer_exchange(&cluster, target, 2, &future);

    let log = common::eventually(Duration::from_secs(5), "the refusals in the log", || {
        let log = cluster.node_log(target);
        (log.contains("cluster 0xdeadbeef") && log.contains("frame version 99")).then_some(log)
    });
    assert!(log.contains("closed a peer connection"), "{log}");
    let refused = cluster.errors_counted(target, "peer_connection_refused");
    assert!(refused >= 3, "{refused} refusals counted");
    cluster.wait_for_leader(Duration::from_secs(5));
    still_serves(&cluster, target);
}

plain_and_tls! {
    garbage_and_foreign_clusters_on_the_peer_port_are_refused_and_logged_on:
        garbage_and_foreign_clusters_on_the_peer_port_are_refused_and_logged,
        garbage_and_foreign_clusters_on_the_peer_port_are_refused_and_logged_over_tls;
}

#[test]
fn clients_beyond_the_limit_are_told_so_and_the_others_keep_working() {
    let _serial = serial();
    let cluster = TestCluster::start_with(3, &["--max-clients", "2"]);
    let addr = cluster.nodes[&1].client;
    let mut first = cluster.redis(1);
    let second = cluster.redis(1);
    let reply = exchange(addr, b"PING\r\n");
    assert_eq!(reply, "-ERR max number of clients reached\r\n");
    let pong: String = redis::cmd("PING").query(&mut first).expect("ping");
    assert_eq!(pong, "PONG");
    drop(second);
    let reply = common::eventually(Duration::from_secs(5), "a freed slot", || {
        let reply = exchange(addr, b"PING\r\n");
        reply.starts_with("+PONG").then_some(reply)
    });
    assert_eq!(reply, "+PONG\r\n");
}

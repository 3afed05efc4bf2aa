//! What the hostile-input suites share (`#[path = "support/attack.rs"] #[macro_use] mod attack;`):
//! the checks after every attack, readers that notice a connection the node closed, a peer
//! connection as a forger opens it (plain TCP, or mutual TLS with a real node certificate), and
//! the macro that runs each attack without and with TLS.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::Commands;

use crate::common::{client_config_with, tls_connect, TestCluster, Wire};

/// What every node must still do after an attack.
pub const RSS_LIMIT_MIB: u64 = 300;

/// Each attack as a test against a cluster without security and, as `…_over_tls`, against one
/// with TLS on every port (mutual on the peer port), a client password and an admin token.
#[allow(unused_macros)]
macro_rules! plain_and_tls {
    ($($body:ident: $plain:ident, $tls:ident;)*) => {$(
        #[test]
        fn $plain() {
            $body(false)
        }

        #[test]
        fn $tls() {
            $body(true)
        }
    )*};
}

/// Writes `count` keys through node 1 and returns them: acknowledged, so never to be lost.
pub fn acknowledged_writes(
    cluster: &TestCluster,
    prefix: &str,
    count: usize,
) -> Vec<(String, String)> {
    let mut connection = cluster.redis(1);
    (0..count)
        .map(|i| {
            let (key, value) = (format!("{prefix}-{i}"), format!("value-{i}"));
            let _: () = connection.set(&key, &value).expect("acknowledged write");
            (key, value)
        })
        .collect()
}

/// The most resident memory the process has held at any moment of its life (`VmHWM`), in MiB:
/// what an attack cost at its peak, not what is left after it.
pub fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM");
    kib / 1024
}

/// The checks after every attack: alive, small, serving, nothing acknowledged lost.
pub fn cluster_survived(cluster: &mut TestCluster, kept: &[(String, String)]) {
    for (id, node) in cluster.nodes.iter_mut() {
        let child = node.child.as_mut().expect("running");
        assert_eq!(
            child.try_wait().expect("wait"),
            None,
            "node {id} died under attack"
        );
        let rss = peak_rss_mib(child.id());
        eprintln!("node {id}: at most {rss} MiB resident");
        assert!(rss < RSS_LIMIT_MIB, "node {id} held {rss} MiB");
    }
    cluster.wait_for_leader(Duration::from_secs(10));
    for &id in cluster.nodes.keys() {
        let mut connection = cluster.redis(id);
        let key = format!("after-attack-{id}");
        let _: () = connection.set(&key, "ok").expect("write after the attack");
        let value: String = connection.get(&key).expect("read after the attack");
        assert_eq!(value, "ok");
        for (key, value) in kept {
            let found: Option<String> = connection.get(key).expect("read");
            assert_eq!(found.as_ref(), Some(value), "node {id} lost {key}");
        }
    }
}

/// Reads what the server sends until it closes or goes quiet for `quiet`.
pub fn read_until_quiet(stream: &mut impl Wire, quiet: Duration) -> Vec<u8> {
    stream
        .socket()
        .set_read_timeout(Some(quiet))
        .expect("timeout");
    let mut received = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    while let Ok(n) = stream.read_received(&mut chunk) {
        if n == 0 {
            break;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    received
}

/// Reads until `len` bytes arrived, or nothing more came for 2 s (then the shorter answer is
/// returned, for the assertion to show).
pub fn read_at_least(stream: &mut impl Wire, len: usize) -> Vec<u8> {
    stream
        .socket()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while received.len() < len {
        match stream.read_received(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
    received
}

/// Whether the server closed the connection (a read returns end of stream or a reset).
pub fn closed_by_server(stream: &mut impl Wire, within: Duration) -> bool {
    stream
        .socket()
        .set_read_timeout(Some(within))
        .expect("timeout");
    let deadline = Instant::now() + within;
    let mut chunk = [0u8; 64 * 1024];
    while Instant::now() < deadline {
        match stream.read_received(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
    false
}

/// A connection to node `target`'s peer port as a forger opens it: plain TCP, or on a secure
/// cluster mutual TLS with node `as_node`'s own certificate, its handshake completed (so what
/// is checked is what such a holder may still not do). `None` if the node refused it.
pub fn connect_peer(cluster: &TestCluster, target: u64, as_node: u64) -> Option<Box<dyn Wire>> {
    let peer = cluster.nodes[&target].peer;
    let Some(secure) = &cluster.secure else {
        return TcpStream::connect(peer)
            .ok()
            .map(|s| Box::new(s) as Box<dyn Wire>);
    };
    let certs = &secure.certs;
    let config = client_config_with(
        &certs.join("ca.crt"),
        Some((
            &certs.join(format!("node-{as_node}.crt")),
            &certs.join(format!("node-{as_node}.key")),
        )),
    );
    let mut stream = tls_connect(peer, &config).ok()?;
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).ok()?;
    }
    Some(Box::new(stream))
}

/// Sends `bytes` on a fresh forger's connection to node `target`'s peer port (see
/// [`connect_peer`]) and returns everything read until the node closes it or goes quiet.
pub fn peer_exchange(cluster: &TestCluster, target: u64, as_node: u64, bytes: &[u8]) -> Vec<u8> {
    let Some(mut stream) = connect_peer(cluster, target, as_node) else {
        return Vec::new();
    };
    let _ = stream.write_all(bytes).and_then(|()| stream.flush());
    read_until_quiet(&mut stream, Duration::from_millis(1500))
}

/// Reads a plain socket to its end (or for `within`), ignoring how it ended.
pub fn read_plain(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(within)).expect("timeout");
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    received
}

//! Nonsense only TLS ports meet, against a cluster with TLS on every port: handshakes of
//! garbage, handshakes that stop halfway, plain HTTP to the HTTPS port, a peer certificate
//! from another CA, and a peer with a good certificate that sends nonsense once the driver
//! reads its connection. Each is refused without a reply that means anything, frees what it
//! held by the handshake deadline (5 s), and leaves every node serving (the checks of
//! `hostile.rs`). Also TLS 1.3 key updates: followed between data, and a run of them past
//! rustls's bound closes the connection.

#[macro_use]
#[path = "support/attack.rs"]
mod attack;
mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use attack::{closed_by_server, cluster_survived, read_at_least, read_plain};
use common::TestCluster;
use common::{
    client_config_with, eventually, peer_frame, peer_hello, serial, skiff_bin, tls_connect,
};
use tokio_rustls::rustls;

/// The three ports of node `id`, named.
fn ports(cluster: &TestCluster, id: u64) -> [(&'static str, SocketAddr); 3] {
    let node = &cluster.nodes[&id];
    [
        ("client", node.client),
        ("http", node.http),
        ("peer", node.peer),
    ]
}

/// A TLS record header (handshake, TLS 1.0 framing) claiming `len` bytes, then `body`.
fn record(len: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x16, 0x03, 0x01];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn client_hellos_of_garbage_get_no_reply_that_means_anything_on_any_port() {
    let _serial = serial();
    let mut cluster = TestCluster::start_secure(3, &[]);
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let attempts: [(&str, Vec<u8>); 4] = [
        ("a record of noise", record(512, &noise[..512])),
        ("a record claiming 64 KiB", record(u16::MAX, &noise)),
        ("noise without a record header", noise.clone()),
        (
            "a ClientHello whose lengths lie",
            record(
                48,
                &[&[0x01, 0xff, 0xff, 0xff, 0x03, 0x03][..], &noise[..42]].concat(),
            ),
        ),
    ];
    let handshakes_before = cluster.errors_counted(1, "tls_handshake");
    for (port, addr) in ports(&cluster, 1) {
        for (what, bytes) in &attempts {
            let mut stream = TcpStream::connect(addr).expect("connect");
            let started = Instant::now();
            let _ = stream.write_all(bytes);
            let received = read_plain(&mut stream, Duration::from_secs(12));
            // At most a TLS alert (a 7-byte record), never a reply of the protocol behind it,
            // and never held much past the handshake deadline (5 s).
            assert!(
                received.len() <= 7 && received.first().is_none_or(|&b| b == 0x15),
                "{port}, {what}: {received:?}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{port}, {what}: held for {:?}",
                started.elapsed()
            );
        }
    }
    eventually(Duration::from_secs(5), "the failures counted", || {
        (cluster.errors_counted(1, "tls_handshake") >= handshakes_before + 12).then_some(())
    });
    cluster_survived(&mut cluster, &[]);
}

/// Sends a real ClientHello to `addr` and stops there: the server answers with its half of
/// the handshake and waits for the rest, which never comes.
fn stall_handshake(addr: SocketAddr, config: &std::sync::Arc<rustls::ClientConfig>) -> TcpStream {
    let mut socket = TcpStream::connect(addr).expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = rustls::ClientConnection::new(config.clone(), name).expect("client");
    while tls.wants_write() {
        tls.write_tls(&mut socket).expect("ClientHello sent");
    }
    socket
}

#[test]
fn handshakes_stalled_halfway_are_closed_at_the_deadline_and_free_their_slots() {
    let _serial = serial();
    let mut cluster =
        TestCluster::start_secure(3, &["--max-clients", "4", "--max-peer-connections", "8"]);
    let secure = cluster.secure.as_ref().expect("secure");
    let config = secure.client_config.clone();
    let node_2 = client_config_with(
        &secure.certs.join("ca.crt"),
        Some((
            &secure.certs.join("node-2.crt"),
            &secure.certs.join("node-2.key"),
        )),
    );
    let node = &cluster.nodes[&1];
    let started = Instant::now();
    // Every client slot, four of the peer port's eight, and some HTTPS handshakes.
    let mut stalled: Vec<(&str, TcpStream)> = Vec::new();
    for _ in 0..4 {
        stalled.push(("client", stall_handshake(node.client, &config)));
        stalled.push(("peer", stall_handshake(node.peer, &node_2)));
        stalled.push(("http", stall_handshake(node.http, &config)));
    }
    // The client port is full: a fifth client is closed at once.
    std::thread::sleep(Duration::from_millis(300));
    let refused = tls_connect(node.client, &config).and_then(|mut s| {
        s.write_all(b"PING\r\n")?;
        s.flush()
    });
    assert!(refused.is_err(), "a client past the limit was served");
    // Each stalled connection is closed by the deadline (5 s), not before it.
    for (port, socket) in &mut stalled {
        assert!(
            closed_by_server(socket, Duration::from_secs(15)),
            "a stalled {port} handshake is still open"
        );
        let held = started.elapsed();
        assert!(
            held >= Duration::from_secs(4) && held < Duration::from_secs(15),
            "a stalled {port} handshake was closed after {held:?}"
        );
    }
    // The slots are free again: clients are served.
    let mut served = cluster.redis(1);
    let pong: String = redis::cmd("PING").query(&mut served).expect("ping");
    assert_eq!(pong, "PONG");
    drop(served);
    let log = cluster.node_log(1);
    assert!(log.contains("no handshake within 5s"), "{log}");
    cluster_survived(&mut cluster, &[]);
}

#[test]
fn plain_http_to_the_https_port_gets_no_page_and_https_still_answers() {
    let _serial = serial();
    let mut cluster = TestCluster::start_secure(3, &[]);
    let http = cluster.nodes[&1].http;
    for request in [
        "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "POST /admin/snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_string(),
        format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(64 * 1024)),
    ] {
        let mut plain = TcpStream::connect(http).expect("connect");
        let _ = plain.write_all(request.as_bytes());
        let received = read_plain(&mut plain, Duration::from_secs(8));
        let text = String::from_utf8_lossy(&received);
        assert!(
            !text.contains("HTTP/1.1") && !text.contains("cluster_id"),
            "{text}"
        );
    }
    assert!(cluster.errors_counted(1, "tls_handshake") >= 3);
    let snapshots = cluster.status(1).expect("status")["snapshot_index"].clone();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cluster.status(1).expect("status")["snapshot_index"],
        snapshots,
        "a plain request reached the admin endpoint"
    );
    cluster_survived(&mut cluster, &[]);
}

#[test]
fn a_peer_certificate_from_another_ca_is_refused_at_the_handshake() {
    let _serial = serial();
    let mut cluster = TestCluster::start_secure(3, &[]);
    let cluster_id = cluster.status(1).expect("status")["cluster_id"]
        .as_u64()
        .expect("cluster id");
    // A CA of its own, and a certificate naming node 2 (and 127.0.0.1) from it.
    let other = cluster.root.path().join("other-ca");
    let output = Command::new(skiff_bin())
        .args(["certs", "--nodes", "3", "--hosts", "127.0.0.1", "--out"])
        .arg(&other)
        .output()
        .expect("skiff certs runs");
    assert!(output.status.success(), "{output:?}");
    let impostor = client_config_with(
        &cluster
            .secure
            .as_ref()
            .expect("secure")
            .certs
            .join("ca.crt"),
        Some((&other.join("node-2.crt"), &other.join("node-2.key"))),
    );
    let handshakes_before = cluster.errors_counted(1, "tls_handshake");
    let mut stream = tls_connect(cluster.nodes[&1].peer, &impostor).expect("connect");
    let sent = stream
        .write_all(&peer_hello(cluster_id, 2, "127.0.0.1:1", "127.0.0.1:2"))
        .and_then(|()| stream.flush());
    // TLS 1.3 finishes the client's side before the server has checked its certificate: the
    // refusal may come as the write's error or as the next read's.
    let refused = sent.is_err() || closed_by_server(&mut stream, Duration::from_secs(5));
    assert!(refused, "a certificate from another CA was let in");
    eventually(Duration::from_secs(5), "the refusal counted", || {
        (cluster.errors_counted(1, "tls_handshake") > handshakes_before).then_some(())
    });
    let log = cluster.node_log(1);
    assert!(
        log.lines()
            .any(|l| l.contains("TLS handshake failed") && l.contains("port=\"peer\"")),
        "{log}"
    );
    cluster_survived(&mut cluster, &[]);
}

#[test]
fn a_certified_peer_sending_nonsense_after_its_hello_is_closed_and_the_node_serves() {
    let _serial = serial();
    let mut cluster = TestCluster::start_secure(3, &[]);
    let cluster_id = cluster.status(1).expect("status")["cluster_id"]
        .as_u64()
        .expect("cluster id");
    let certs = cluster.secure.as_ref().expect("secure").certs.clone();
    // Node 2's own certificate: the handshake and the Hello pass, and the driver takes the
    // connection over.
    let node_2 = client_config_with(
        &certs.join("ca.crt"),
        Some((&certs.join("node-2.crt"), &certs.join("node-2.key"))),
    );
    let hello = peer_hello(cluster_id, 2, "127.0.0.1:1", "127.0.0.1:2");
    let refused_before = cluster.errors_counted(1, "peer_connection_refused");
    let attacks: [(&str, Vec<u8>, bool); 3] = [
        (
            "a frame of another cluster",
            peer_frame(cluster_id ^ 1, 1, b"x"),
            false,
        ),
        (
            "a frame of an unknown kind",
            peer_frame(cluster_id, 0x7f, b"x"),
            false,
        ),
        (
            "bytes that are not TLS records",
            b"*1\r\n$4\r\nPING\r\n".to_vec(),
            true,
        ),
    ];
    for (what, bytes, under_tls) in &attacks {
        let mut stream = tls_connect(cluster.nodes[&1].peer, &node_2).expect("connect");
        stream
            .write_all(&hello)
            .and_then(|()| stream.flush())
            .expect("the hello goes out");
        std::thread::sleep(Duration::from_millis(100));
        let sent = if *under_tls {
            stream.sock.write_all(bytes)
        } else {
            stream.write_all(bytes).and_then(|()| stream.flush())
        };
        let closed = sent.is_err() || closed_by_server(&mut stream, Duration::from_secs(5));
        assert!(closed, "{what}: the connection stayed open");
    }
    eventually(Duration::from_secs(5), "each refusal counted", || {
        (cluster.errors_counted(1, "peer_connection_refused") >= refused_before + 3).then_some(())
    });
    cluster_survived(&mut cluster, &[]);
}

/// Sends `updates` TLS 1.3 KeyUpdate requests at once, with no data between them.
fn flood_key_updates(
    stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    updates: usize,
) -> std::io::Result<()> {
    for _ in 0..updates {
        stream
            .conn
            .refresh_traffic_keys()
            .map_err(std::io::Error::other)?;
        while stream.conn.wants_write() {
            stream.conn.write_tls(&mut stream.sock)?;
        }
    }
    Ok(())
}

/// TLS 1.3 lets either side roll its keys at any time (RFC 8446 §4.6.3): a client that asks
/// for new keys between commands keeps being answered, under keys that moved both ways, and
/// a peer's link does the same (rustls rolls the keys of a busy link before its cipher's
/// record limit). Each key update asks the node to derive new keys, so rustls takes at most
/// 32 in a row with no data between them: the 33rd closes the connection, on the client
/// port and on the peer port, and the node serves on.
#[test]
fn key_updates_between_commands_are_followed_and_a_flood_of_them_is_closed() {
    let _serial = serial();
    let mut cluster = TestCluster::start_secure(3, &[]);
    let secure = cluster.secure.as_ref().expect("secure");
    let (config, password) = (secure.client_config.clone(), secure.password.clone());
    let certs = secure.certs.clone();
    let client_port = cluster.nodes[&1].client;
    let send = |stream: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
                bytes: &[u8]| {
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .expect("sent");
    };

    let mut client = tls_connect(client_port, &config).expect("connect");
    send(
        &mut client,
        format!("AUTH {password}\r\nSET rolled v0\r\n").as_bytes(),
    );
    assert_eq!(read_at_least(&mut client, 10), b"+OK\r\n+OK\r\n");
    for round in 1..=5 {
        client.conn.refresh_traffic_keys().expect("key update");
        send(
            &mut client,
            format!("SET rolled v{round}\r\nGET rolled\r\n").as_bytes(),
        );
        let expected = format!("+OK\r\n$2\r\nv{round}\r\n");
        assert_eq!(
            read_at_least(&mut client, expected.len()),
            expected.as_bytes(),
            "after key update {round}"
        );
    }
    // 32 in a row are taken; a command resets the count; 33 in a row close the connection.
    flood_key_updates(&mut client, 32).expect("32 key updates sent");
    send(&mut client, b"GET rolled\r\n");
    assert_eq!(read_at_least(&mut client, 8), b"$2\r\nv5\r\n");
    let flooded = flood_key_updates(&mut client, 33);
    assert!(
        flooded.is_err() || closed_by_server(&mut client, Duration::from_secs(5)),
        "a client that sent 33 key updates in a row is still connected"
    );

    let cluster_id = cluster.status(1).expect("status")["cluster_id"]
        .as_u64()
        .expect("cluster id");
    let node_2 = client_config_with(
        &certs.join("ca.crt"),
        Some((&certs.join("node-2.crt"), &certs.join("node-2.key"))),
    );
    let refused_before = cluster.errors_counted(1, "peer_connection_refused");
    let peer_after = |updates: usize| {
        let mut peer = tls_connect(cluster.nodes[&1].peer, &node_2).expect("connect");
        send(
            &mut peer,
            &peer_hello(cluster_id, 2, "127.0.0.1:1", "127.0.0.1:2"),
        );
        std::thread::sleep(Duration::from_millis(100));
        let flooded = flood_key_updates(&mut peer, updates);
        (peer, flooded)
    };
    // 32 key updates, then a frame the node refuses by its kind: the refusal shows the frame
    // was read under the newest keys.
    let (mut rolled, flooded) = peer_after(32);
    flooded.expect("32 key updates sent");
    send(&mut rolled, &peer_frame(cluster_id, 0x7f, b"x"));
    assert!(closed_by_server(&mut rolled, Duration::from_secs(5)));
    let (mut flooder, flooded) = peer_after(33);
    assert!(
        flooded.is_err() || closed_by_server(&mut flooder, Duration::from_secs(5)),
        "a peer that sent 33 key updates in a row is still connected"
    );
    eventually(
        Duration::from_secs(5),
        "both peer connections refused",
        || {
            let log = cluster.node_log(1);
            (log.contains("unexpected frame kind 127")
                && log.contains("TooManyKeyUpdateRequests")
                && cluster.errors_counted(1, "peer_connection_refused") >= refused_before + 2)
                .then_some(())
        },
    );

    // Another client is served, and so is everyone else.
    let mut other = tls_connect(client_port, &config).expect("connect");
    send(
        &mut other,
        format!("AUTH {password}\r\nGET rolled\r\n").as_bytes(),
    );
    assert_eq!(read_at_least(&mut other, 13), b"+OK\r\n$2\r\nv5\r\n");
    cluster_survived(&mut cluster, &[]);
}

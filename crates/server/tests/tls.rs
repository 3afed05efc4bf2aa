//! Security across hosts, through real tools on loopback: TLS on the three ports, the client
//! password, the admin token, mutual TLS between nodes, certificate rotation and protected mode
//! (docs/SECURITY.md).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    client_config, client_config_with, eventually, free_port, peer_hello, serial, skiff_bin,
    tls_connect, TestCluster,
};
use common::{free_base_port, Local};
use redis::Commands;

/// `redis-cli --tls` against node `id`, with `args` before the command.
fn redis_cli(cluster: &TestCluster, id: u64, args: &[&str], command: &[&str]) -> String {
    let secure = cluster.secure.as_ref().expect("secure cluster");
    let output = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(secure.certs.join("ca.crt"))
        .args(["-h", "127.0.0.1", "-p"])
        .arg(cluster.nodes[&id].client.port().to_string())
        .args(args)
        .args(command)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
        + String::from_utf8_lossy(&output.stderr).trim()
}

/// `curl --cacert` to node `id`'s HTTPS port; returns the status code and body.
fn curl(
    cluster: &TestCluster,
    id: u64,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let secure = cluster.secure.as_ref().expect("secure cluster");
    let mut command = Command::new("curl");
    command
        .args(["-s", "-w", "\n%{http_code}", "-X", method, "--cacert"])
        .arg(secure.certs.join("ca.crt"));
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    command.arg(format!("https://{}{path}", cluster.nodes[&id].http));
    let output = command.output().expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("status code line");
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn clients_over_tls_need_the_password_and_plain_tcp_gets_nothing() {
    let _serial = serial();
    let cluster = TestCluster::start_secure(3, &[]);
    let password = cluster.secure.as_ref().expect("secure").password.clone();

    // No password: every command but AUTH, HELLO and QUIT is refused, PING included.
    assert_eq!(
        redis_cli(&cluster, 1, &[], &["SET", "k", "v"]),
        "NOAUTH Authentication required."
    );
    assert_eq!(
        redis_cli(&cluster, 1, &[], &["PING"]),
        "NOAUTH Authentication required."
    );
    // A wrong one is refused and counted.
    let wrong = redis_cli(
        &cluster,
        1,
        &["--no-auth-warning", "-a", "not-the-password"],
        &["PING"],
    );
    assert!(wrong.contains("WRONGPASS"), "{wrong}");
    assert!(cluster.errors_counted(1, "auth_failed") >= 1);
    // The password, alone or as the default user's, lets every command through.
    let auth = ["--no-auth-warning", "-a", password.as_str()];
    assert_eq!(redis_cli(&cluster, 1, &auth, &["SET", "k", "v"]), "OK");
    let as_user = [
        "--no-auth-warning",
        "--user",
        "default",
        "--pass",
        password.as_str(),
    ];
    assert_eq!(redis_cli(&cluster, 2, &as_user, &["GET", "k"]), "v");

    // A careless client pipelines before, during and after authenticating, in one write,
    // with a 16 KiB wrong password (the most a request may hold before AUTH) and an AUTH
    // without arguments among them: each is answered in the order sent (the bare AUTH with
    // its syntax error, as Redis does), and only the commands after the right password take
    // effect, a 64 KiB value among them.
    let certs = cluster.secure.as_ref().expect("secure").certs.clone();
    let mut stream = tls_connect(
        cluster.nodes[&1].client,
        &client_config(&certs.join("ca.crt")),
    )
    .expect("tls");
    let huge = "x".repeat(16 * 1024);
    let big = "v".repeat(64 * 1024);
    let pipeline = format!(
        "SET early 1\r\nAUTH\r\n*2\r\n$4\r\nAUTH\r\n${}\r\n{huge}\r\nAUTH {password}\r\n*3\r\n$3\r\nSET\r\n$4\r\nlate\r\n${}\r\n{big}\r\nGET early\r\nSTRLEN late\r\n",
        huge.len(),
        big.len()
    );
    stream
        .write_all(pipeline.as_bytes())
        .expect("pipeline sent");
    let mut replies = String::new();
    let expected = [
        "-NOAUTH",
        "-ERR",
        "-WRONGPASS",
        "+OK",
        "+OK",
        "$-1",
        ":65536",
    ];
    let mut buf = [0u8; 4096];
    while replies.matches("\r\n").count() < expected.len() {
        let n = stream.read(&mut buf).expect("replies arrive");
        assert!(n > 0, "closed after {replies:?}");
        replies.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let mut rest = replies.as_str();
    for want in expected {
        let at = rest
            .find(want)
            .unwrap_or_else(|| panic!("{want} not in order in {replies:?}"));
        rest = &rest[at + want.len()..];
    }

    // Before AUTH a stranger may not declare more than 16 KiB in one argument (as Redis since
    // CVE-2021-32675): refused at the header, told why, the connection closed and the
    // protocol error counted.
    let protocol_errors = cluster.errors_counted(1, "protocol");
    let connect = || {
        tls_connect(
            cluster.nodes[&1].client,
            &client_config(&certs.join("ca.crt")),
        )
        .expect("tls")
    };
    let until_closed = |stream: &mut _| {
        let mut told = String::new();
        let mut buf = [0u8; 4096];
        loop {
            match Read::read(stream, &mut buf) {
                Ok(0) | Err(_) => return told,
                Ok(n) => told.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    };
    let mut stranger = connect();
    stranger
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n")
        .expect("header sent");
    let told = until_closed(&mut stranger);
    assert!(
        told.starts_with("-ERR Protocol error: bulk string of 1048576 bytes exceeds the limit of 16384 (before AUTH"),
        "{told:?}"
    );
    assert!(cluster.errors_counted(1, "protocol") > protocol_errors);

    // The same limit, met carelessly: a request answered before it in the same write gets
    // its reply first; a header dripped in two writes is refused once whole; a connection
    // that authenticated and then sent RESET is a stranger again; HELLO with AUTH and
    // SETNAME (seven arguments) fits, and authenticates for a 64 KiB value after it.
    let refused = |told: &str| told.contains("exceeds the limit of 16384 (before AUTH)\r\n");
    let mut pipelined = connect();
    pipelined
        .write_all(b"PING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n")
        .expect("sent");
    let told = until_closed(&mut pipelined);
    assert!(told.starts_with("-NOAUTH") && refused(&told), "{told:?}");
    let mut dripped = connect();
    dripped
        .write_all(b"*2\r\n$4\r\nAUTH\r\n$10485")
        .expect("sent");
    std::thread::sleep(Duration::from_millis(100));
    dripped.write_all(b"76\r\n").expect("sent");
    let told = until_closed(&mut dripped);
    assert!(refused(&told), "{told:?}");
    let mut reset = connect();
    reset
        .write_all(
            format!("AUTH {password}\r\nRESET\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20000\r\n")
                .as_bytes(),
        )
        .expect("sent");
    let told = until_closed(&mut reset);
    assert!(
        told.starts_with("+OK\r\n+RESET\r\n") && refused(&told),
        "{told:?}"
    );
    let mut hello = connect();
    let value = "h".repeat(64 * 1024);
    hello
        .write_all(
            format!(
                "HELLO 2 AUTH default {password} SETNAME careless\r\n*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n${}\r\n{value}\r\nSTRLEN hello\r\nQUIT\r\n",
                value.len()
            )
            .as_bytes(),
        )
        .expect("sent");
    let told = until_closed(&mut hello);
    assert!(told.ends_with("+OK\r\n:65536\r\n+OK\r\n"), "{told:?}");
    assert!(!told.contains("-ERR"), "{told:?}");

    // A Redis client library over TLS (the redis crate with rustls).
    let mut connection = cluster.redis(3);
    let _: () = connection.set("library", "yes").expect("set over TLS");
    let value: String = connection.get("library").expect("get over TLS");
    assert_eq!(value, "yes");
    // HELLO 2 AUTH authenticates too.
    let client = redis::Client::build_with_tls(
        format!("rediss://{}/", cluster.nodes[&1].client),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(
                std::fs::read(cluster.secure.as_ref().unwrap().certs.join("ca.crt")).unwrap(),
            ),
        },
    )
    .expect("client");
    let mut bare = client.get_connection().expect("connection");
    let refused: redis::RedisResult<String> = redis::cmd("GET").arg("k").query(&mut bare);
    assert!(format!("{:?}", refused.unwrap_err()).contains("NOAUTH"));
    let _: redis::Value = redis::cmd("HELLO")
        .arg("2")
        .arg("AUTH")
        .arg("default")
        .arg(&password)
        .query(&mut bare)
        .expect("HELLO 2 AUTH");
    let value: String = redis::cmd("GET")
        .arg("k")
        .query(&mut bare)
        .expect("get after HELLO");
    assert_eq!(value, "v");

    // Plain TCP to the TLS port: no reply but a TLS alert, and one log line for the address
    // however often it tries.
    for _ in 0..3 {
        let mut plain = TcpStream::connect(cluster.nodes[&1].client).expect("connect");
        plain.write_all(b"PING\r\n").expect("send");
        plain
            .set_read_timeout(Some(Duration::from_secs(6)))
            .expect("timeout");
        let mut received = Vec::new();
        let _ = plain.read_to_end(&mut received);
        assert!(
            !String::from_utf8_lossy(&received).contains("PONG"),
            "{received:?}"
        );
    }
    // A connection that never starts its handshake is closed at the handshake deadline (5 s).
    let mut silent = TcpStream::connect(cluster.nodes[&2].client).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    let started = std::time::Instant::now();
    let mut byte = [0u8; 1];
    let ended = silent.read(&mut byte);
    assert!(
        matches!(ended, Ok(0))
            || matches!(&ended, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{ended:?} after {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(7));
    let log = cluster.node_log(1);
    let logged = log
        .lines()
        .filter(|l| l.contains("TLS handshake failed") && l.contains("WARN"))
        .count();
    assert_eq!(logged, 1, "{log}");
    assert!(cluster.errors_counted(1, "tls_handshake") >= 3);
}

#[test]
fn without_a_password_auth_is_answered_as_redis_server_answers_it() {
    let _serial = serial();
    let cluster = TestCluster::start(1);
    let addr = cluster.nodes[&1].client;
    // redis-server 7 without requirepass: its `default` user takes any password, a bare
    // password is an error that says none is set, and another user is refused. HELLO is
    // answered with Redis's fields, the connection's id among them.
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(b"CLIENT ID\r\n").expect("sent");
    let mut id_line = Vec::new();
    let mut byte = [0u8; 1];
    while !id_line.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).expect("CLIENT ID's reply");
        id_line.push(byte[0]);
    }
    let id = String::from_utf8_lossy(&id_line[1..id_line.len() - 2]).to_string();
    assert!(
        id_line.starts_with(b":") && id.parse::<u64>().is_ok(),
        "{id_line:?}"
    );
    let hello = format!(
        "*14\r\n$6\r\nserver\r\n$5\r\nskiff\r\n$7\r\nversion\r\n${}\r\n{}\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0",
        env!("CARGO_PKG_VERSION").len(),
        env!("CARGO_PKG_VERSION")
    );
    let exchanges: [(&str, &str); 6] = [
        (
            "AUTH x",
            "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        ("AUTH default x", "+OK"),
        ("HELLO 2 AUTH default x", &hello),
        (
            "AUTH someone x",
            "-WRONGPASS invalid username-password pair or user is disabled.",
        ),
        (
            "HELLO 2 AUTH someone x",
            "-WRONGPASS invalid username-password pair or user is disabled.",
        ),
        ("SET after-auth 1", "+OK"),
    ];
    let pipeline: String = exchanges.iter().map(|(c, _)| format!("{c}\r\n")).collect();
    stream.write_all(pipeline.as_bytes()).expect("sent");
    let expected: String = exchanges.iter().map(|(_, r)| format!("{r}\r\n")).collect();
    let mut received = vec![0u8; expected.len()];
    stream.read_exact(&mut received).expect("every reply");
    assert_eq!(String::from_utf8_lossy(&received), expected);
    assert_eq!(cluster.errors_counted(1, "auth_failed"), 2);
    // A client library set up with a password connects to a node that requires none.
    let client = redis::Client::open(format!("redis://default:anything@{addr}/")).expect("url");
    let mut connection = client.get_connection().expect("connects with AUTH default");
    let value: String = connection.get("after-auth").expect("get");
    assert_eq!(value, "1");
}

#[test]
fn redis_benchmark_runs_over_tls() {
    let _serial = serial();
    let cluster = TestCluster::start_secure(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let secure = cluster.secure.as_ref().expect("secure");
    let output = Command::new("redis-benchmark")
        .args(["--tls", "--cacert"])
        .arg(secure.certs.join("ca.crt"))
        .args(["-h", "127.0.0.1", "-p"])
        .arg(cluster.nodes[&leader].client.port().to_string())
        .args([
            "-a",
            &secure.password,
            "-t",
            "set,get",
            "-n",
            "2000",
            "-c",
            "10",
            "-q",
        ])
        .output()
        .expect("redis-benchmark runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text} {:?}", output.stderr);
    assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
    let mut connection = cluster.redis(leader);
    let value: Option<String> = connection.get("key:__rand_int__").expect("get");
    assert!(value.is_some(), "the benchmark's writes landed");
}

#[test]
fn https_status_is_open_and_admin_needs_the_token() {
    let _serial = serial();
    let cluster = TestCluster::start_secure(3, &[]);
    let token = cluster.secure.as_ref().expect("secure").token.clone();
    let (code, body) = curl(&cluster, 1, "GET", "/status", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"cluster_id\""), "{body}");
    let (code, body) = curl(&cluster, 1, "POST", "/admin/snapshot", None);
    assert_eq!(code, 401, "{body}");
    let (code, _) = curl(
        &cluster,
        1,
        "POST",
        "/admin/snapshot",
        Some("wrong-token-123"),
    );
    assert_eq!(code, 401);
    assert!(cluster.errors_counted(1, "http_auth_failed") >= 2);
    let (code, body) = curl(&cluster, 1, "POST", "/admin/snapshot", Some(&token));
    assert_eq!(code, 200, "{body}");
    // The CLI with --tls-ca-cert-file and --token-file (the harness passes both).
    let output = cluster.admin(2, &["snapshot"]);
    assert!(output.status.success(), "{output:?}");
    let output = Command::new(skiff_bin())
        .args(["status", "--addr", &cluster.nodes[&1].http.to_string()])
        .arg("--tls-ca-cert-file")
        .arg(cluster.secure.as_ref().unwrap().certs.join("ca.crt"))
        .output()
        .expect("skiff status runs");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && table.contains("leader"),
        "{output:?}"
    );
    // A relay from the view's node to another carries the token over HTTPS.
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = if leader == 1 { 2 } else { 1 };
    let path = format!("/admin/transfer-leader?to={follower}");
    let (code, body) = curl(&cluster, follower, "POST", &path, Some(&token));
    assert_eq!(code, 200, "{body}");
    eventually(Duration::from_secs(10), "the follower to lead", || {
        (cluster.wait_for_leader(Duration::from_secs(10)) == follower).then_some(())
    });
    // Plain HTTP to the HTTPS port gets no page.
    assert!(common::http_get(cluster.nodes[&1].http, "/status")
        .map_or(true, |body| !body.contains("cluster_id")));
}

#[test]
fn a_peer_without_a_certificate_or_with_another_nodes_is_refused() {
    let _serial = serial();
    let cluster = TestCluster::start_secure(3, &[]);
    let secure = cluster.secure.as_ref().expect("secure");
    let cluster_id = cluster.status(1).expect("status")["cluster_id"]
        .as_u64()
        .expect("cluster id");
    let peer = cluster.nodes[&1].peer;
    // Says it is node `from` over a TLS connection made with `config`; true if the node
    // kept the connection open for 1 s (it closes a connection it refuses at once).
    let kept_open = |config, from: u64| {
        let Ok(mut stream) = tls_connect(peer, &config) else {
            return false;
        };
        let hello = peer_hello(cluster_id, from, "127.0.0.1:1", "127.0.0.1:2");
        if stream
            .write_all(&hello)
            .and_then(|()| stream.flush())
            .is_err()
        {
            return false;
        }
        stream
            .sock
            .set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut byte = [0u8; 1];
        matches!(stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
    };
    let certs = &secure.certs;
    let as_node = |id: u64| {
        client_config_with(
            &certs.join("ca.crt"),
            Some((
                &certs.join(format!("node-{id}.crt")),
                &certs.join(format!("node-{id}.key")),
            )),
        )
    };
    // The harness is right: node 2's own certificate and id are let in.
    assert!(
        kept_open(as_node(2), 2),
        "node 2's own certificate was refused"
    );
    let refused_before = cluster.errors_counted(1, "peer_connection_refused");
    let handshakes_before = cluster.errors_counted(1, "tls_handshake");
    // No certificate: the handshake fails.
    assert!(!kept_open(client_config(&certs.join("ca.crt")), 2));
    // Node 3's certificate claiming to be node 2: refused after the Hello.
    assert!(!kept_open(as_node(3), 2));
    // The client certificate names no node.
    let client_cert = client_config_with(
        &certs.join("ca.crt"),
        Some((&certs.join("client.crt"), &certs.join("client.key"))),
    );
    assert!(!kept_open(client_cert, 2));
    eventually(Duration::from_secs(5), "the refusals counted", || {
        (cluster.errors_counted(1, "tls_handshake") > handshakes_before
            && cluster.errors_counted(1, "peer_connection_refused") >= refused_before + 2)
            .then_some(())
    });
    let log = cluster.node_log(1);
    assert!(
        log.contains("hello from node 2 over a certificate naming node 3"),
        "{log}"
    );
    assert!(log.contains("names no node"), "{log}");
    // Plain TCP to the peer port: the cluster does not answer it.
    let mut plain = TcpStream::connect(peer).expect("connect");
    plain
        .write_all(&peer_hello(cluster_id, 2, "127.0.0.1:1", "127.0.0.1:2"))
        .expect("send");
    plain
        .set_read_timeout(Some(Duration::from_secs(6)))
        .expect("timeout");
    let mut received = Vec::new();
    let _ = plain.read_to_end(&mut received);
    assert!(received.len() < 64, "{received:?}");
    cluster.wait_for_leader(Duration::from_secs(10));
}

#[test]
fn a_certificate_rotated_with_sighup_under_load_fails_no_request() {
    let _serial = serial();
    let mut cluster = TestCluster::start_secure(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let certs = cluster.secure.as_ref().expect("secure").certs.clone();
    // New node certificates from the same CA.
    let rotated = cluster.root.path().join("rotated");
    let output = Command::new(skiff_bin())
        .args(["certs", "--nodes", "3", "--hosts", "127.0.0.1"])
        .arg("--out")
        .arg(&rotated)
        .arg("--ca-cert-file")
        .arg(certs.join("ca.crt"))
        .arg("--ca-key-file")
        .arg(certs.join("ca.key"))
        .output()
        .expect("skiff certs runs");
    assert!(output.status.success(), "{output:?}");

    // Load: writes through the leader on fresh connections (each a new handshake) and on
    // one long-lived connection, counting every failure.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..2 {
        let (stop, failures, done) = (stop.clone(), failures.clone(), done.clone());
        let mut connection = cluster.redis(leader);
        let fresh = worker == 0;
        let client = (
            cluster.secure.as_ref().unwrap().password.clone(),
            cluster.nodes[&leader].client,
            certs.join("ca.crt"),
        );
        workers.push(std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if fresh && i % 10 == 0 {
                    let redis = redis::Client::build_with_tls(
                        format!("rediss://:{}@{}/", client.0, client.1),
                        redis::TlsCertificates {
                            client_tls: None,
                            root_cert: Some(std::fs::read(&client.2).expect("ca")),
                        },
                    )
                    .expect("client");
                    match redis.get_connection_with_timeout(Duration::from_secs(5)) {
                        Ok(new) => connection = new,
                        Err(error) => {
                            eprintln!("connect: {error}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let result: redis::RedisResult<()> =
                    connection.set(format!("rotate-{worker}-{i}"), i);
                if let Err(error) = result {
                    eprintln!("set: {error}");
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let done_so_far = || done.load(Ordering::Relaxed);
    eventually(Duration::from_secs(30), "the load to run", || {
        (done_so_far() >= 20).then_some(())
    });
    for id in 1..=3u64 {
        for ext in ["crt", "key"] {
            let name = format!("node-{id}.{ext}");
            std::fs::copy(rotated.join(&name), certs.join(&name)).expect("rotate");
        }
    }
    for id in 1..=3u64 {
        cluster.signal(id, libc::SIGHUP);
    }
    // Each node reloads when it gets to the signal, later on a busy machine: the load runs on
    // until every node has said so and 50 more requests (5 on fresh connections) went through.
    eventually(Duration::from_secs(60), "every node to reload", || {
        (1..=3u64)
            .all(|id| {
                cluster
                    .node_log(id)
                    .contains("SIGHUP: reloaded the TLS certificates")
            })
            .then_some(())
    });
    let at_reload = done_so_far();
    eventually(Duration::from_secs(60), "requests after the reload", || {
        (done_so_far() >= at_reload + 50).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("worker");
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during the rotation"
    );
    // New connections see the new certificate, on every port.
    let new_cert = std::fs::read(rotated.join("node-1.crt")).expect("new cert");
    let new_der = tokio_rustls::rustls::pki_types::pem::PemObject::from_pem_slice(&new_cert)
        .map(|der: tokio_rustls::rustls::pki_types::CertificateDer<'static>| der.to_vec())
        .expect("pem");
    for addr in [cluster.nodes[&1].client, cluster.nodes[&1].http] {
        let mut stream = tls_connect(addr, &client_config(&certs.join("ca.crt"))).expect("connect");
        let _ = stream.write_all(b"PING\r\n").and_then(|()| stream.flush());
        let presented = stream.conn.peer_certificates().expect("certificate")[0].to_vec();
        assert_eq!(
            presented, new_der,
            "{addr} still presents the old certificate"
        );
    }
    // The cluster still replicates over the peers' new certificates: the two survivors elect
    // a leader (polled with a generous deadline: they may first dial each other, a handshake
    // each, on a busy machine) that commits a write.
    cluster.kill(leader);
    let survivors: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    eventually(
        Duration::from_secs(60),
        "a write after the rotation",
        || {
            let next = cluster.wait_for_leader_among(&survivors, Duration::from_secs(60));
            let written: redis::RedisResult<()> = cluster.redis(next).set("after-rotation", "ok");
            written.ok()
        },
    );
}

#[test]
fn protected_mode_refuses_a_public_address_without_tls_unless_insecure() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("dir");
    let peer = free_port();
    let start = |extra: &[&str]| {
        Command::new(skiff_bin())
            .args(["serve", "--id", "1"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client", &format!("0.0.0.0:{}", free_port())])
            .args(["--listen-peer", &format!("127.0.0.1:{peer}")])
            .args(["--listen-http", &format!("127.0.0.1:{}", free_port())])
            .args(["--initial-cluster", &format!("1=127.0.0.1:{peer}")])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("skiff starts")
    };
    let refused = start(&[]).wait_with_output().expect("exits");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let line = stderr.lines().last().unwrap_or_default();
    assert!(
        line.contains("protected mode")
            && line.contains("0.0.0.0")
            && line.contains("--tls-cert-file")
            && line.contains("--requirepass-file")
            && line.contains("--admin-token-file")
            && line.contains("--insecure"),
        "{stderr}"
    );
    let mut open = start(&["--insecure"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        open.try_wait().expect("wait"),
        None,
        "--insecure starts the node"
    );
    let _ = open.kill();
    let _ = open.wait();
}

/// Runs a command line `skiff local` printed, with `extra` words after it, through `sh`.
fn run_printed(command: &str, extra: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", &format!("{command} {extra}")])
        .output()
        .expect("sh runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn skiff_local_tls_makes_its_secrets_and_prints_commands_that_work() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = serial();
    let data = tempfile::tempdir().expect("temp dir");
    let local = Local::start_with(data.path(), free_base_port(), &["--tls"]);
    let banner = local.lines_until("Waiting for a leader");
    local.leader();
    for secret in [
        "requirepass",
        "admin-token",
        "certs/ca.key",
        "certs/node-1.key",
    ] {
        let mode = std::fs::metadata(data.path().join(secret))
            .expect("secret file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    let printed = |prefix: &str, until: &str| {
        let line = banner
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {banner:?}"));
        line.split(until)
            .next()
            .expect("command")
            .trim()
            .to_string()
    };
    let redis_cli = printed("node 1: ", "   https://");
    assert!(
        redis_cli.starts_with("redis-cli --tls --cacert"),
        "{redis_cli}"
    );
    assert_eq!(run_printed(&redis_cli, "SET from-banner yes"), "OK");
    let redis_cli_2 = printed("node 2: ", "   https://");
    assert_eq!(run_printed(&redis_cli_2, "GET from-banner"), "yes");
    let status = run_printed(&printed("status: ", "\n"), "");
    assert!(status.contains("cluster_id"), "{status}");
    let admin = run_printed(&printed("admin: ", "\n"), "");
    assert!(admin.contains("snapshot"), "{admin}");
    // The secrets are not printed, only where they are.
    let password = std::fs::read_to_string(data.path().join("requirepass")).expect("password");
    assert!(!banner.iter().any(|l| l.contains(password.trim())));
    local.stop();
}

//! Keyspace notifications through real `skiff serve` processes and the `redis` client's
//! pub/sub: a subscriber on a follower sees the writes made through the leader and another
//! follower, key expiry included, in commit order, on keyspace and keyevent channels; the
//! `notify-keyspace-events` flags filter what goes out; a subscriber that reads nothing is
//! disconnected while writers go on; hostile subscriptions and settings get errors, and the
//! connection stays usable.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{eventually, query, serial, TestCluster};

/// The next `n` messages as (channel, payload); panics if they do not come in time.
fn next_messages(pubsub: &mut redis::PubSub<'_>, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let message = pubsub
                .get_message()
                .expect("a message within the read timeout");
            let payload: String = message.get_payload().expect("a text payload");
            (message.get_channel_name().to_string(), payload)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(c, p)| (c.to_string(), p.to_string()))
        .collect()
}

/// `skiff_errors_total{kind}` on node `id`, 0 before the first.
fn errors(cluster: &TestCluster, id: u64, kind: &str) -> u64 {
    let metrics = cluster.http_get(id, "/metrics").unwrap_or_default();
    let prefix = format!("skiff_errors_total{{kind=\"{kind}\"}} ");
    let count = metrics.lines().find_map(|line| line.strip_prefix(&prefix));
    count.and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Sends a raw request and reads until `expected` bytes came (or the timeout).
fn raw_exchange(stream: &mut TcpStream, request: &[u8], expected: usize) -> Vec<u8> {
    stream.write_all(request).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < expected && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    got
}

/// A request in RESP, as the `redis` crate packs it.
fn resp_array(words: &[&[u8]]) -> Vec<u8> {
    let mut command = redis::cmd(std::str::from_utf8(words[0]).expect("a command name"));
    command.arg(&words[1..]);
    command.get_packed_command()
}

#[test]
fn a_subscriber_on_a_follower_sees_writes_through_every_node_in_commit_order() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let [watched, other] = cluster.followers(leader)[..] else {
        panic!("two followers")
    };
    // The setting is each node's own: the watched follower and the leader publish.
    for id in [watched, leader] {
        let mut config = cluster.redis(id);
        let ok: String = query(
            &mut config,
            &["CONFIG", "SET", "notify-keyspace-events", "KEA"],
        );
        assert_eq!(ok, "OK");
    }
    let mut subscriber = cluster.redis(watched);
    let mut pubsub = subscriber.as_pubsub();
    pubsub.psubscribe("__keyspace@0__:*").unwrap();
    pubsub.subscribe("__keyevent@0__:expired").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut on_leader_subscriber = cluster.redis(leader);
    let mut leader_pubsub = on_leader_subscriber.as_pubsub();
    leader_pubsub.psubscribe("__keyspace@0__:*").unwrap();
    leader_pubsub.subscribe("__keyevent@0__:expired").unwrap();
    leader_pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The other follower's setting stays off: its subscriber hears nothing.
    let mut on_silent = cluster.redis(other);
    let mut silent_pubsub = on_silent.as_pubsub();
    silent_pubsub.psubscribe("*").unwrap();
    silent_pubsub
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();

    // Each write is answered before the next is sent: their commit order is this order.
    let mut on_leader = cluster.redis(leader);
    let mut on_other = cluster.redis(other);
    let _: () = query(&mut on_leader, &["SET", "a", "1"]);
    let _: i64 = query(&mut on_other, &["INCRBY", "n", "5"]);
    let _: i64 = query(&mut on_leader, &["EXPIRE", "a", "100"]);
    let _: i64 = query(&mut on_other, &["DEL", "n"]);
    let _: () = query(&mut on_leader, &["SET", "brief", "v", "PX", "300"]);

    let space = |key: &str| format!("__keyspace@0__:{key}");
    let expected = [
        (space("a"), "set"),
        (space("n"), "incrby"),
        (space("a"), "expire"),
        (space("n"), "del"),
        (space("brief"), "set"),
        (space("brief"), "expire"),
        // No write comes: the leader's entry carrying the time expires it on every node.
        (space("brief"), "expired"),
        ("__keyevent@0__:expired".to_string(), "brief"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(c, p)| (c.clone(), p.to_string()))
        .collect();
    assert_eq!(next_messages(&mut pubsub, expected.len()), expected);
    assert_eq!(
        next_messages(&mut leader_pubsub, expected.len()),
        expected,
        "the leader publishes the same changes in the same order"
    );
    assert!(
        silent_pubsub.get_message().is_err(),
        "nothing on a node whose setting is off"
    );
}

#[test]
fn the_flags_choose_the_channels_and_classes_and_an_empty_setting_turns_them_off() {
    let _serial = serial();
    let cluster = TestCluster::start_with(1, &["--notify-keyspace-events", "E$"]);
    let mut connection = cluster.redis(1);
    let shown: Vec<String> = query(
        &mut connection,
        &["CONFIG", "GET", "notify-keyspace-events"],
    );
    assert_eq!(
        shown,
        ["notify-keyspace-events", "$E"],
        "printed back as Redis prints it"
    );
    let mut subscriber = cluster.redis(1);
    let mut pubsub = subscriber.as_pubsub();
    pubsub.psubscribe("__key*").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // Strings on keyevent channels only: DEL (generic) and every keyspace channel stay out.
    let _: () = query(&mut connection, &["SET", "x", "1"]);
    let _: i64 = query(&mut connection, &["DEL", "x"]);
    let _: i64 = query(&mut connection, &["INCR", "y"]);
    assert_eq!(
        next_messages(&mut pubsub, 2),
        pairs(&[("__keyevent@0__:set", "x"), ("__keyevent@0__:incrby", "y")])
    );

    let _: () = query(
        &mut connection,
        &["CONFIG", "SET", "notify-keyspace-events", ""],
    );
    let _: () = query(&mut connection, &["SET", "silent", "1"]);
    let _: () = query(
        &mut connection,
        &["CONFIG", "SET", "notify-keyspace-events", "Kg"],
    );
    let _: i64 = query(&mut connection, &["DEL", "silent"]);
    // Nothing came for the SET made while off: the next message is the DEL's.
    assert_eq!(
        next_messages(&mut pubsub, 1),
        pairs(&[("__keyspace@0__:silent", "del")])
    );
}

/// The `n` flag: a subscriber hears `new` for each write that creates a key — SET, HSET,
/// RENAME's destination, a transaction's INCR — and nothing for writes to keys already
/// there; without `n`, no `new` comes.
#[test]
fn new_keys_are_announced_under_the_n_flag_as_in_redis() {
    let _serial = serial();
    let cluster = TestCluster::start_with(1, &["--notify-keyspace-events", "En"]);
    let mut connection = cluster.redis(1);
    let mut subscriber = cluster.redis(1);
    let mut pubsub = subscriber.as_pubsub();
    pubsub.psubscribe("__keyevent@0__:*").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _: () = query(&mut connection, &["SET", "x", "1"]);
    let _: () = query(&mut connection, &["SET", "x", "2"]);
    let _: i64 = query(&mut connection, &["HSET", "h", "f", "1"]);
    let _: i64 = query(&mut connection, &["HSET", "h", "g", "1"]);
    let _: () = query(&mut connection, &["RENAME", "x", "z"]);
    let _: () = query(&mut connection, &["MULTI"]);
    let _: String = query(&mut connection, &["INCR", "n"]);
    let _: String = query(&mut connection, &["INCR", "n"]);
    let _: Vec<i64> = query(&mut connection, &["EXEC"]);
    let new = "__keyevent@0__:new";
    assert_eq!(
        next_messages(&mut pubsub, 4),
        pairs(&[(new, "x"), (new, "h"), (new, "z"), (new, "n")])
    );
    let _: () = query(
        &mut connection,
        &["CONFIG", "SET", "notify-keyspace-events", "E$"],
    );
    let _: () = query(&mut connection, &["SET", "fresh", "1"]);
    assert_eq!(
        next_messages(&mut pubsub, 1),
        pairs(&[("__keyevent@0__:set", "fresh")]),
        "without n, a new key is announced by its own event only"
    );
}

#[test]
fn a_subscriber_that_reads_nothing_is_disconnected_and_writers_go_on() {
    let _serial = serial();
    let cluster = TestCluster::start_with(1, &["--notify-keyspace-events", "KEA"]);
    let client = cluster.nodes[&1].client;
    let mut stalled = TcpStream::connect(client).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let confirmed = raw_exchange(&mut stalled, &resp_array(&[b"PSUBSCRIBE", b"*"]), 30);
    assert_eq!(confirmed, b"*3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n");
    let mut reader = cluster.redis(1);
    let mut pubsub = reader.as_pubsub();
    pubsub.subscribe("__keyevent@0__:del").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // Long keys make many bytes of messages: each SET sends the key on two channels.
    let mut writer = cluster.redis(1);
    let mut writes = 0;
    let mut key_batch = 0;
    eventually(
        Duration::from_secs(120),
        "the stalled subscriber's disconnection",
        || {
            for _ in 0..20 {
                let mut mset = redis::cmd("MSET");
                for i in 0..40 {
                    mset.arg(format!("{key_batch}-{i}-{}", "k".repeat(8 * 1024)))
                        .arg("v");
                }
                key_batch += 1;
                let () = mset.query(&mut writer).expect("writes go on");
                writes += 1;
            }
            (errors(&cluster, 1, "pubsub_slow_subscriber") >= 1).then_some(())
        },
    );
    assert!(writes > 0);
    let _: i64 = query(&mut writer, &["DEL", "after"]);
    let _: () = query(&mut writer, &["SET", "after", "1"]);
    let _: i64 = query(&mut writer, &["DEL", "after"]);
    // The subscriber that reads still gets its messages, in order, after the other one
    // was dropped.
    assert_eq!(
        next_messages(&mut pubsub, 1),
        pairs(&[("__keyevent@0__:del", "after")])
    );
    let log = cluster.node_log(1);
    assert!(
        log.contains("disconnecting a subscriber that fell behind"),
        "the reason is logged"
    );
    // What the stalled client finds when it reads at last: a closed connection after what
    // had been sent, never more than its bound and the socket's buffers.
    let mut drained = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stalled.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => drained += n,
            Err(error) => panic!("the connection should end, not stall: {error}"),
        }
    }
    assert!(drained < 64 * 1024 * 1024, "{drained} bytes");
}

#[test]
fn hostile_subscriptions_and_settings_get_errors_and_the_connection_stays_usable() {
    let _serial = serial();
    let cluster = TestCluster::start(1);
    let mut stream = TcpStream::connect(cluster.nodes[&1].client).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut exchange = |words: &[&[u8]], expected: &[u8]| {
        let got = raw_exchange(&mut stream, &resp_array(words), expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "{:?}",
            String::from_utf8_lossy(words[0])
        );
    };
    let huge = vec![b'*'; 1024 * 1024];
    exchange(
        &[b"PSUBSCRIBE", &huge],
        b"-ERR pattern longer than 1024 bytes\r\n",
    );
    exchange(
        &[b"SUBSCRIBE", &huge],
        b"-ERR channel longer than 16399 bytes\r\n",
    );
    let many: Vec<Vec<u8>> = (0..100_000).map(|i| format!("c{i}").into_bytes()).collect();
    let mut words: Vec<&[u8]> = vec![b"SUBSCRIBE"];
    words.extend(many.iter().map(Vec::as_slice));
    exchange(
        &words,
        b"-ERR too many subscriptions: a connection may hold at most 10000 channels and patterns\r\n",
    );
    // None of them was taken: the connection is not subscribed and serves any command.
    exchange(&[b"PING"], b"+PONG\r\n");
    exchange(
        &[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA\x00\xff"],
        b"-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class character. Use 'Ag$lshzxeKEtmdn'.\r\n",
    );
    exchange(
        &[b"CONFIG", b"GET", b"notify-keyspace-events"],
        b"*2\r\n$22\r\nnotify-keyspace-events\r\n$0\r\n\r\n",
    );
    let no_such = vec![b'x'; 1024 * 1024];
    exchange(&[b"CONFIG", b"GET", &no_such], b"*0\r\n");
    exchange(
        &[b"CONFIG", b"SET", b"maxmemory", b"1"],
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'maxmemory'\r\n",
    );
    let refused = b"-ERR PUBLISH is not supported: a message would reach only this node's subscribers; Skiff publishes keyspace notifications only (see docs/COMMANDS.md)\r\n";
    exchange(&[b"PUBLISH", b"c", b"m"], refused);
    // In subscribed mode, the pub/sub commands and PING only, as in Redis.
    exchange(
        &[b"SUBSCRIBE", b"c"],
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n",
    );
    exchange(
        &[b"SET", b"k", b"v"],
        b"-ERR Can't execute 'set': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    exchange(&[b"PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    exchange(
        &[b"UNSUBSCRIBE"],
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n",
    );
    exchange(&[b"SET", b"k", b"v"], b"+OK\r\n");
}

#[test]
fn the_idle_timeout_does_not_close_a_subscriber_as_in_redis() {
    let _serial = serial();
    let cluster = TestCluster::start_with(
        1,
        &[
            "--notify-keyspace-events",
            "Kg",
            "--client-idle-timeout-secs",
            "1",
        ],
    );
    let mut subscriber = cluster.redis(1);
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("__keyspace@0__:k").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    let mut writer = cluster.redis(1);
    let _: () = query(&mut writer, &["SET", "k", "1"]);
    let _: i64 = query(&mut writer, &["DEL", "k"]);
    assert_eq!(
        next_messages(&mut pubsub, 1),
        pairs(&[("__keyspace@0__:k", "del")])
    );
}

/// One raw connection's `PSUBSCRIBE` of `patterns`, its confirmations read in full.
fn psubscribe_raw(stream: &mut TcpStream, patterns: &[Vec<u8>]) {
    let mut words: Vec<&[u8]> = vec![b"PSUBSCRIBE"];
    words.extend(patterns.iter().map(Vec::as_slice));
    let mut expected = Vec::new();
    for (i, pattern) in patterns.iter().enumerate() {
        expected.extend_from_slice(
            format!("*3\r\n$10\r\npsubscribe\r\n${}\r\n", pattern.len()).as_bytes(),
        );
        expected.extend_from_slice(pattern);
        expected.extend_from_slice(format!("\r\n:{}\r\n", i + 1).as_bytes());
    }
    let got = raw_exchange(stream, &resp_array(&words), expected.len());
    assert!(got == expected, "the patterns are confirmed one by one");
}

#[test]
fn hostile_patterns_matched_against_long_keys_never_stop_the_node_from_answering() {
    let _serial = serial();
    let cluster = TestCluster::start_with(1, &["--notify-keyspace-events", "KA"]);
    let client = cluster.nodes[&1].client;
    // Four connections, each with 256 patterns that cost their length times the channel's
    // to refuse a channel of `a`s: `*a…ab0`, 1,024 bytes at most.
    let mut hostile = Vec::new();
    for connection in 0..4 {
        let mut stream = TcpStream::connect(client).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let patterns: Vec<Vec<u8>> = (0..256)
            .map(|i| format!("*{}b{connection}", "a".repeat(760 + i)).into_bytes())
            .collect();
        psubscribe_raw(&mut stream, &patterns);
        hostile.push(stream);
    }
    let mut watcher = cluster.redis(1);
    let mut pubsub = watcher.as_pubsub();
    pubsub.psubscribe("__keyspace@0__:a*").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    // Keys of the longest size allowed, all `a`: the worst channel for those patterns.
    let key = "a".repeat(16 * 1024);
    let mut writer = cluster.redis(1);
    for value in ["1", "2", "3"] {
        let _: () = query(&mut writer, &["SET", &key, value]);
    }
    // While the publisher works, new subscribers and plain clients are served at once (a
    // stall would hold them for minutes; 20 seconds is no speed target).
    let started = Instant::now();
    let subscribers: Vec<_> = (0..2)
        .map(|i| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(client).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                let channel = format!("c{i}");
                let expected = format!("*3\r\n$9\r\nsubscribe\r\n$2\r\n{channel}\r\n:1\r\n");
                let request = resp_array(&[b"SUBSCRIBE", channel.as_bytes()]);
                let got = raw_exchange(&mut stream, &request, expected.len());
                assert_eq!(String::from_utf8_lossy(&got), expected);
            })
        })
        .collect();
    let mut reader = cluster.redis(1);
    for _ in 0..10 {
        let value: String = query(&mut reader, &["GET", &key]);
        assert_eq!(value, "3");
        std::thread::sleep(Duration::from_millis(100));
    }
    for subscriber in subscribers {
        subscriber.join().expect("a new subscriber is answered");
    }
    let answered_in = started.elapsed();
    assert!(
        answered_in < Duration::from_secs(20),
        "answered in {answered_in:?}"
    );
    // The cheap pattern is matched first and its subscriber hears every write.
    let channel = format!("__keyspace@0__:{key}");
    assert_eq!(
        next_messages(&mut pubsub, 3),
        pairs(&[(&channel, "set"), (&channel, "set"), (&channel, "set")])
    );
    drop(hostile);
}

#[test]
fn reset_on_a_subscribed_connection_leaves_subscribed_mode_as_in_redis() {
    let _serial = serial();
    let cluster = TestCluster::start_with(1, &["--notify-keyspace-events", "KEA"]);
    let mut stream = TcpStream::connect(cluster.nodes[&1].client).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut exchange = |words: &[&[u8]], expected: &[u8]| {
        let got = raw_exchange(&mut stream, &resp_array(words), expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    };
    // redis-server 7.0.15 answers these bytes.
    exchange(
        &[b"SUBSCRIBE", b"a", b"a", b"b"],
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
    );
    exchange(
        &[b"GET", b"x"],
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    exchange(&[b"RESET"], b"+RESET\r\n");
    // Out of subscribed mode: PING answers as on any connection, and writes are served.
    exchange(&[b"PING"], b"+PONG\r\n");
    exchange(&[b"SET", b"__keyspace@0__:a", b"v"], b"+OK\r\n");
    // And nothing is left subscribed.
    exchange(
        &[b"UNSUBSCRIBE"],
        b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
    );
}

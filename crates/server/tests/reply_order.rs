//! A connection's replies come in the order its commands were sent (Redis's contract) while
//! the driver writes some of them to the socket itself and the connection's writer the rest:
//! pipelined mixes of store commands and commands the connection answers alone, replies too
//! large for the driver to write, and a client that stops reading mid-pipeline, so that the
//! socket takes only part of a reply.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{read_reply_text, run_pipelined_script, serial, TestCluster};

/// One request in RESP.
fn request(words: &[&str]) -> Vec<u8> {
    let mut bytes = format!("*{}\r\n", words.len()).into_bytes();
    for word in words {
        bytes.extend_from_slice(format!("${}\r\n{word}\r\n", word.len()).as_bytes());
    }
    bytes
}

#[test]
fn pipelined_and_one_by_one_replies_keep_their_order_on_leader_and_follower() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    // Over the size the driver writes itself (256 KiB): the writer writes it.
    let large = "L".repeat(300 * 1024);
    for node in [leader, follower] {
        let counter = format!("counter-{node}");
        let texts: Vec<(String, String, String)> = (1..=200)
            .map(|i| (i.to_string(), format!(":{i}"), format!("${i}")))
            .collect();
        let mut script: Vec<(Vec<&str>, &str)> = vec![(vec!["SET", "large", &large], "+OK")];
        for (i, integer, bulk) in &texts {
            // Writes in flight together, and reads, each with a reply of the connection's own
            // between them: the driver answers them in one batch, the writer owes the PONG.
            script.push((vec!["INCR", &counter], integer));
            script.push((vec!["PING"], "+PONG"));
            script.push((vec!["SET", "last", i], "+OK"));
            script.push((vec!["ECHO", i], bulk));
            script.push((vec!["GET", &counter], bulk));
            script.push((vec!["PING"], "+PONG"));
            script.push((vec!["GET", "last"], bulk));
            if i.ends_with('0') {
                script.push((vec!["GET", "large"], "$LLLL"));
                script.push((vec!["ECHO", i], bulk));
            }
        }
        let script: Vec<(&[&str], &str)> = script
            .iter()
            .map(|(words, expected)| (&words[..], *expected))
            .collect();
        run_pipelined_script(cluster.nodes[&node].client, &script);

        // One request at a time, as `redis-benchmark -c 1`: most replies written by the
        // driver, each the answer to its own request.
        let mut stream = TcpStream::connect(cluster.nodes[&node].client).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        for i in 201..=500 {
            stream
                .write_all(&request(&["INCR", &counter]))
                .expect("send");
            assert_eq!(read_reply_text(&mut reader), format!(":{i}"));
            stream.write_all(&request(&["PING"])).expect("send");
            assert_eq!(read_reply_text(&mut reader), "+PONG");
        }
    }
}

#[test]
fn a_client_that_stops_reading_gets_every_reply_whole_and_in_order_once_it_reads() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    // Ten keys of 60 KiB each, every one its own letter: a reply the driver may write, and
    // one a full socket takes only part of.
    let values: Vec<String> = (0..10u8)
        .map(|i| char::from(b'a' + i).to_string().repeat(60 * 1024))
        .collect();
    let mut stream = TcpStream::connect(cluster.nodes[&leader].client).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    for (i, value) in values.iter().enumerate() {
        stream
            .write_all(&request(&["SET", &format!("key-{i}"), value]))
            .expect("send");
    }
    let mut ok = [0u8; 50];
    stream.read_exact(&mut ok).expect("ten +OK");
    assert_eq!(&ok[..], "+OK\r\n".repeat(10).as_bytes());
    // 400 GETs (about 24 MiB of replies, under the 64 MiB output limit) sent while nothing
    // is read, with a write in the middle of them.
    let mut batch = Vec::new();
    for n in 0..400 {
        batch.extend_from_slice(&request(&["GET", &format!("key-{}", n % 10)]));
        if n == 200 {
            batch.extend_from_slice(&request(&["INCR", "in-the-middle"]));
        }
    }
    let mut sender = stream.try_clone().expect("clone");
    let sent = std::thread::spawn(move || sender.write_all(&batch).expect("send"));
    std::thread::sleep(Duration::from_millis(500));
    let mut reader = BufReader::new(stream);
    for n in 0..400 {
        let reply = read_reply_text(&mut reader);
        assert!(
            reply.len() == 1 + 60 * 1024 && reply[1..] == values[n % 10],
            "reply {n}: {} bytes beginning {:?}",
            reply.len(),
            &reply[..reply.len().min(8)]
        );
        if n == 200 {
            assert_eq!(read_reply_text(&mut reader), ":1");
        }
    }
    sent.join().expect("sent");
}

/// A careless client that sends one write and hangs up before its reply, a hundred times over,
/// on the leader and on a follower: the reply the driver would write itself meets a closed
/// socket, which is no error of the node's. Every write sent before the hang-up is applied
/// once, and the node goes on answering new connections in order.
#[test]
fn clients_that_hang_up_before_their_reply_lose_no_write_and_leave_the_node_serving() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    for node in [leader, follower] {
        let counter = format!("hung-up-{node}");
        for _ in 0..100 {
            let mut stream = TcpStream::connect(cluster.nodes[&node].client).expect("connect");
            stream
                .write_all(&request(&["INCR", &counter]))
                .expect("send");
            drop(stream);
        }
        let mut connection = cluster.redis(node);
        let applied = common::eventually(Duration::from_secs(10), "every INCR applied", || {
            let value: Option<u64> = redis::cmd("GET")
                .arg(&counter)
                .query(&mut connection)
                .expect("GET");
            value.filter(|&count| count == 100)
        });
        assert_eq!(applied, 100);
        let next: u64 = redis::cmd("INCR")
            .arg(&counter)
            .query(&mut connection)
            .expect("INCR");
        assert_eq!(next, 101, "applied once each, not again");
    }
}

/// Many clients pipelining at once, so that a batch carries more entries than the leader
/// applies in one step (64) and their replies go out step by step: every connection gets all
/// of its replies, in order; one careless client sends its burst and hangs up at once: what
/// the node took of it is applied at most once (the rest, never read, is never acknowledged),
/// and the node goes on serving. On the leader and through a follower.
#[test]
fn a_burst_larger_than_an_apply_step_is_answered_in_order_on_every_connection() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = cluster.followers(leader)[0];
    const CLIENTS: usize = 16;
    const WRITES: usize = 100;
    for node in [leader, follower] {
        let addr = cluster.nodes[&node].client;
        let mut streams: Vec<TcpStream> = (0..CLIENTS)
            .map(|_| {
                let stream = TcpStream::connect(addr).expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .expect("timeout");
                stream
            })
            .collect();
        // Every burst is sent before any reply is read.
        for (client, stream) in streams.iter_mut().enumerate() {
            let key = format!("burst-{node}-{client}");
            let burst: Vec<u8> = (0..WRITES).flat_map(|_| request(&["INCR", &key])).collect();
            stream.write_all(&burst).expect("send");
        }
        // The last client hangs up without reading a reply.
        drop(streams.pop());
        for (client, stream) in streams.iter().enumerate() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            for i in 1..=WRITES {
                assert_eq!(
                    read_reply_text(&mut reader),
                    format!(":{i}"),
                    "client {client} on node {node}"
                );
            }
        }
        let mut check = TcpStream::connect(addr).expect("connect");
        check
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut reader = BufReader::new(check.try_clone().expect("clone"));
        let hung_up = format!("burst-{node}-{}", CLIENTS - 1);
        check.write_all(&request(&["GET", &hung_up])).expect("send");
        let applied = read_reply_text(&mut reader);
        let count: usize = applied.trim_start_matches('$').parse().unwrap_or_else(|_| {
            if applied == "$-1" {
                0
            } else {
                panic!("{applied}")
            }
        });
        assert!(count <= WRITES, "applied more than sent: {applied}");
    }
}

//! Transactions and the connection commands through real `skiff serve` processes, the
//! `redis` client and raw RESP: `WATCH` on one node and a write through another aborts the
//! `EXEC`, on the leader and on a follower; a pipelined `MULTI … EXEC` in one write;
//! `EXECABORT` after a command that did not queue; the queue's bounds; the commands the node
//! answers itself queued and answered at `EXEC`, their replies bounded; a check-and-set loop
//! of many clients incrementing one counter with `WATCH` that ends exact; and `CLIENT`,
//! `COMMAND`, `HELLO` and `RESET` as client libraries use them at start-up.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{command, query, serial, TestCluster};
use redis::{Commands, Connection, Value};

/// The error text a command gets (code and message, as the client shows them).
fn refusal(connection: &mut Connection, words: &[&str]) -> String {
    let error = command(words)
        .query::<Value>(connection)
        .expect_err("an error reply");
    format!(
        "{} {}",
        error.code().unwrap_or("?"),
        error.detail().unwrap_or("")
    )
}

/// Sends `requests` in one write and reads exactly `expected` back.
fn exchange(addr: std::net::SocketAddr, requests: &str, expected: &str) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(requests.as_bytes()).expect("sent");
    let mut received = vec![0u8; expected.len()];
    stream.read_exact(&mut received).unwrap_or_else(|error| {
        panic!(
            "{error}: {:?} of {expected:?}",
            String::from_utf8_lossy(&received)
        )
    });
    assert_eq!(String::from_utf8_lossy(&received), expected);
}

fn follower_of(cluster: &TestCluster, leader: u64) -> u64 {
    *cluster
        .nodes
        .keys()
        .find(|&&id| id != leader)
        .expect("a follower")
}

#[test]
fn a_watch_on_one_node_and_a_write_through_another_aborts_the_exec() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = follower_of(&cluster, leader);
    for (watcher, writer) in [(follower, leader), (leader, follower)] {
        let key = format!("watched-{watcher}");
        let mut watching = cluster.redis(watcher);
        let mut writing = cluster.redis(writer);
        let _: () = writing.set(&key, "before").expect("set");

        // Unchanged since WATCH: the transaction runs.
        let ok: String = query(&mut watching, &["WATCH", &key]);
        assert_eq!(ok, "OK");
        let _: String = query(&mut watching, &["MULTI"]);
        let _: String = query(&mut watching, &["SET", &key, "mine"]);
        let _: String = query(&mut watching, &["GET", &key]);
        let replies: Value = query(&mut watching, &["EXEC"]);
        assert_eq!(
            replies,
            Value::Array(vec![Value::Okay, Value::BulkString(b"mine".to_vec())]),
            "watching on node {watcher}"
        );

        // Changed through another node after WATCH: nil, and nothing of it applies.
        let _: String = query(&mut watching, &["WATCH", &key]);
        let _: () = writing.set(&key, "theirs").expect("set elsewhere");
        let _: String = query(&mut watching, &["MULTI"]);
        let _: String = query(&mut watching, &["SET", &key, "lost"]);
        let _: String = query(&mut watching, &["SET", "bystander", "lost"]);
        let aborted: Value = query(&mut watching, &["EXEC"]);
        assert_eq!(
            aborted,
            Value::Nil,
            "watching on node {watcher}, writing on {writer}"
        );
        let value: String = watching.get(&key).expect("get");
        assert_eq!(value, "theirs");
        let bystander: Option<String> = watching.get("bystander").expect("get");
        assert_eq!(bystander, None);

        // EXEC unwatched: the next transaction runs whatever changes.
        let _: () = writing.set(&key, "again").expect("set");
        let replies: Value = redis::pipe()
            .atomic()
            .set(&key, "last")
            .query(&mut watching)
            .expect("atomic pipeline");
        assert_eq!(replies, Value::Array(vec![Value::Okay]));

        // A key absent at WATCH and created elsewhere aborts; UNWATCH forgets it.
        let fresh = format!("fresh-{watcher}");
        let _: String = query(&mut watching, &["WATCH", &fresh]);
        let _: () = writing.set(&fresh, "1").expect("create");
        let _: String = query(&mut watching, &["MULTI"]);
        let _: String = query(&mut watching, &["INCR", &fresh]);
        assert_eq!(query::<Value>(&mut watching, &["EXEC"]), Value::Nil);
        let _: String = query(&mut watching, &["WATCH", &fresh]);
        let _: () = writing.set(&fresh, "5").expect("write");
        let _: String = query(&mut watching, &["UNWATCH"]);
        let _: String = query(&mut watching, &["MULTI"]);
        let _: String = query(&mut watching, &["INCR", &fresh]);
        let replies: Value = query(&mut watching, &["EXEC"]);
        assert_eq!(replies, Value::Array(vec![Value::Int(6)]));
    }
}

#[test]
fn a_pipelined_multi_exec_in_one_write_answers_in_order_on_a_follower_and_the_leader() {
    let _serial = serial();
    let cluster = TestCluster::start(3);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = follower_of(&cluster, leader);
    for id in [follower, leader] {
        let key = format!("p{id}");
        // A write before, the transaction with a read, a local reply and a run-time error
        // inside, and reads after: each sees what was sent before it.
        let requests = format!(
            "SET {key} 1\r\nMULTI\r\nINCR {key}\r\nGET {key}\r\nPING\r\nSET t{key} x\r\nINCR t{key}\r\nEXEC\r\nGET {key}\r\nEXEC\r\nDISCARD\r\n"
        );
        let expected = "+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
             *5\r\n:2\r\n$1\r\n2\r\n+PONG\r\n+OK\r\n-ERR value is not an integer or out of range\r\n\
             $1\r\n2\r\n-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n";
        exchange(cluster.nodes[&id].client, &requests, expected);
    }
    // The redis crate's atomic pipeline, through a follower.
    let mut connection = cluster.redis(follower);
    let (a, b): (i64, String) = redis::pipe()
        .atomic()
        .incr("piped", 5)
        .ignore()
        .incr("piped", 1)
        .get("piped")
        .query(&mut connection)
        .expect("atomic pipeline");
    assert_eq!((a, b.as_str()), (6, "6"));
}

#[test]
fn a_command_that_does_not_queue_makes_exec_answer_execabort() {
    // SUBSCRIBE is refused inside MULTI: Redis 7.0 queues it but then writes one reply per
    // channel inside EXEC's array, which no client can read.
    let _serial = serial();
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(10));
    let requests =
        "MULTI\r\nMULTI\r\nSET a 1\r\nGET\r\nNOSUCH x\r\nWATCH a\r\nSUBSCRIBE ch\r\nEXEC\r\nGET a\r\n\
                    MULTI\r\nSET a 1\r\nDISCARD\r\nGET a\r\nMULTI\r\nEXEC\r\n";
    let expected = "+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n\
                    -ERR wrong number of arguments for 'get' command\r\n\
                    -ERR unknown command 'NOSUCH'\r\n-ERR WATCH inside MULTI is not allowed\r\n\
                    -ERR Command not allowed inside a transaction\r\n\
                    -EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n\
                    +OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n+OK\r\n*0\r\n";
    exchange(cluster.nodes[&1].client, requests, expected);
}

#[test]
fn a_queue_past_its_bounds_is_discarded_and_exec_answers_execabort() {
    let _serial = serial();
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(10));
    let addr = cluster.nodes[&1].client;
    let too_many = "ERR transaction discarded: more than 10000 commands or 1048576 bytes queued";

    // Ten thousand commands queue; the next is refused, and so is every one after it.
    let mut requests = String::from("MULTI\r\n");
    let mut expected = String::from("+OK\r\n");
    for _ in 0..10_000 {
        requests.push_str("INCR counted\r\n");
        expected.push_str("+QUEUED\r\n");
    }
    requests.push_str("INCR counted\r\nPING\r\nEXEC\r\nGET counted\r\n");
    expected.push_str(&format!("-{too_many}\r\n-{too_many}\r\n"));
    expected.push_str("-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n");
    exchange(addr, &requests, &expected);

    // Bytes: two values that fit one entry alone but not together.
    let mut connection = cluster.redis(1);
    let value = "v".repeat(600 * 1024);
    let _: String = query(&mut connection, &["MULTI"]);
    let _: String = query(&mut connection, &["SET", "big-1", &value]);
    assert_eq!(
        refusal(&mut connection, &["SET", "big-2", &value]),
        format!("ERR {}", too_many.trim_start_matches("ERR "))
    );
    assert!(refusal(&mut connection, &["EXEC"]).starts_with("EXECABORT"));
    let stored: Option<String> = connection.get("big-1").expect("get");
    assert_eq!(stored, None);
}

/// As in Redis 7.0, `CLIENT SETNAME`, `AUTH`, `CONFIG GET` and `HELLO` queue inside `MULTI`
/// and run at `EXEC`, in order with the store commands, without spoiling the transaction.
#[test]
fn commands_the_node_answers_itself_queue_and_run_at_exec() {
    let _serial = serial();
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(10));
    let requests = "MULTI\r\nCLIENT SETNAME queued\r\nCLIENT GETNAME\r\nAUTH x\r\n\
                    CONFIG GET databases\r\nSET k v\r\nGET k\r\nEXEC\r\nCLIENT GETNAME\r\n";
    let expected = "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
                    *6\r\n+OK\r\n$6\r\nqueued\r\n\
                    -ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n\
                    *2\r\n$9\r\ndatabases\r\n$1\r\n1\r\n+OK\r\n$1\r\nv\r\n\
                    $6\r\nqueued\r\n";
    exchange(cluster.nodes[&1].client, requests, expected);

    // What they answer describes the moment of EXEC, not of queueing: a name another
    // connection takes in between is in the CLIENT LIST the transaction answers.
    let mut first = cluster.redis(1);
    let mut second = cluster.redis(1);
    let id_2: i64 = query(&mut second, &["CLIENT", "ID"]);
    let _: String = query(&mut first, &["MULTI"]);
    let _: String = query(&mut first, &["CLIENT", "LIST", "ID", &id_2.to_string()]);
    let _: String = query(&mut first, &["HELLO", "2", "SETNAME", "hello-in-multi"]);
    let _: String = query(&mut second, &["CLIENT", "SETNAME", "named-meanwhile"]);
    let replies: Vec<Value> = query(&mut first, &["EXEC"]);
    let Value::BulkString(list) = &replies[0] else {
        panic!("CLIENT LIST's line: {replies:?}")
    };
    let list = String::from_utf8_lossy(list);
    assert!(list.contains("name=named-meanwhile"), "{list}");
    let Value::Array(hello) = &replies[1] else {
        panic!("HELLO's fields: {replies:?}")
    };
    assert_eq!(hello[0], Value::BulkString(b"server".to_vec()));
    assert_eq!(
        query::<String>(&mut first, &["CLIENT", "GETNAME"]),
        "hello-in-multi"
    );
}

/// The replies of the commands the node answers at `EXEC` are held to the reply limit: a
/// queue of a thousand `COMMAND`s (a few bytes each, the whole table each in reply) gets the
/// limit's error for the replies past it, and the store command after them still runs.
#[test]
fn replies_answered_at_exec_are_held_to_the_reply_limit() {
    const LIMIT: usize = 1024 * 1024;
    let _serial = serial();
    let cluster = TestCluster::start_with(1, &["--max-reply-bytes", &LIMIT.to_string()]);
    cluster.wait_for_leader(Duration::from_secs(10));
    let mut connection = cluster.redis(1);
    let table: Vec<Value> = query(&mut connection, &["COMMAND"]);
    // Sent and read raw: the client library would turn the array into its first error.
    let mut requests = redis::cmd("MULTI").get_packed_command();
    for _ in 0..1000 {
        requests.extend(redis::cmd("COMMAND").get_packed_command());
    }
    requests.extend(redis::cmd("SET").arg("after").arg("1").get_packed_command());
    requests.extend(redis::cmd("EXEC").get_packed_command());
    connection.send_packed_command(&requests).expect("sent");
    for _ in 0..1002 {
        let queued = connection.recv_response().expect("queued");
        assert!(
            matches!(queued, Value::Okay | Value::SimpleString(_)),
            "{queued:?}"
        );
    }
    let Value::Array(replies) = connection.recv_response().expect("EXEC answered") else {
        panic!("an array")
    };
    assert_eq!(replies.len(), 1001);
    assert_eq!(replies[0], Value::Array(table.clone()));
    let answered = replies[..1000]
        .iter()
        .filter(|reply| **reply == Value::Array(table.clone()))
        .count();
    let refused = replies[..1000]
        .iter()
        .filter(|reply| matches!(reply, Value::ServerError(e) if e.details().is_some_and(|d| d.starts_with("reply larger than the limit of 1048576 bytes"))))
        .count();
    assert!(answered < 1000, "every COMMAND answered in full");
    assert_eq!(answered + refused, 1000, "{:?}", &replies[answered]);
    assert_eq!(replies[1000], Value::Okay);
    let after: String = query(&mut connection, &["GET", "after"]);
    assert_eq!(after, "1");
}

#[test]
fn many_clients_incrementing_one_counter_with_watch_end_exact() {
    const CLIENTS: usize = 6;
    const INCREMENTS: usize = 15;
    let _serial = serial();
    let cluster = TestCluster::start(3);
    cluster.wait_for_leader(Duration::from_secs(10));
    let ids: Vec<u64> = cluster.nodes.keys().copied().collect();
    let mut retries = 0usize;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let mut connection = cluster.redis(ids[n % ids.len()]);
                scope.spawn(move || {
                    let mut attempts = 0usize;
                    for _ in 0..INCREMENTS {
                        // GET then SET, not INCR: only WATCH keeps two clients from writing
                        // the same next value.
                        let _: () =
                            redis::transaction(&mut connection, &["cas-counter"], |c, pipe| {
                                attempts += 1;
                                let now: Option<i64> = c.get("cas-counter")?;
                                pipe.set("cas-counter", now.unwrap_or(0) + 1)
                                    .ignore()
                                    .query(c)
                            })
                            .expect("transaction");
                    }
                    attempts - INCREMENTS
                })
            })
            .collect();
        for worker in workers {
            retries += worker.join().expect("worker");
        }
    });
    eprintln!("{retries} EXECs aborted by a concurrent write and retried");
    let mut connection = cluster.redis(ids[0]);
    let total: i64 = connection.get("cas-counter").expect("get");
    assert_eq!(
        total,
        (CLIENTS * INCREMENTS) as i64,
        "after {retries} aborted EXECs"
    );
}

#[test]
fn client_command_hello_and_reset_answer_as_client_libraries_expect() {
    let _serial = serial();
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(10));
    let mut first = cluster.redis(1);
    let mut second = cluster.redis(1);

    let id_1: i64 = query(&mut first, &["CLIENT", "ID"]);
    let id_2: i64 = query(&mut second, &["CLIENT", "ID"]);
    assert_ne!(id_1, id_2);
    assert_eq!(
        query::<Option<String>>(&mut first, &["CLIENT", "GETNAME"]),
        None
    );
    let _: String = query(&mut first, &["CLIENT", "SETNAME", "first-conn"]);
    let _: String = query(&mut first, &["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]);
    assert_eq!(
        query::<String>(&mut first, &["CLIENT", "GETNAME"]),
        "first-conn"
    );
    assert_eq!(
        refusal(&mut first, &["CLIENT", "SETNAME", "has space"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    let info: String = query(&mut first, &["CLIENT", "INFO"]);
    assert!(info.starts_with(&format!("id={id_1} ")), "{info}");
    assert!(
        info.contains(" name=first-conn ") && info.contains("lib-name=redis-rs"),
        "{info}"
    );
    let list: String = query(&mut second, &["CLIENT", "LIST"]);
    assert!(list.lines().count() >= 2, "{list}");
    assert!(list.contains(&format!("id={id_2} ")), "{list}");
    let only: String = query(&mut second, &["CLIENT", "LIST", "ID", &id_1.to_string()]);
    assert_eq!(only.lines().count(), 1, "{only}");
    assert!(only.contains("name=first-conn"), "{only}");

    // COMMAND: one entry per command, in Redis 7's ten fields; COUNT agrees.
    let count: i64 = query(&mut first, &["COMMAND", "COUNT"]);
    let all: Vec<Value> = query(&mut first, &["COMMAND"]);
    assert_eq!(all.len() as i64, count);
    let info: Value = query(&mut first, &["COMMAND", "INFO", "get", "nosuch"]);
    let Value::Array(entries) = info else {
        panic!("an array: {info:?}")
    };
    assert_eq!(entries[1], Value::Nil);
    let Value::Array(get) = &entries[0] else {
        panic!("get's entry: {entries:?}")
    };
    assert_eq!(get.len(), 10);
    assert_eq!(get[0], Value::BulkString(b"get".to_vec()));
    assert_eq!(get[1], Value::Int(2));
    assert_eq!(
        get[2],
        Value::Array(vec![
            Value::SimpleString("readonly".into()),
            Value::SimpleString("fast".into())
        ])
    );
    assert_eq!(&get[3..6], &[Value::Int(1), Value::Int(1), Value::Int(1)]);
    let docs: Value = query(&mut first, &["COMMAND", "DOCS"]);
    assert_eq!(docs, Value::Array(vec![]));

    // HELLO 2 names this connection; HELLO 3 is refused as Redis refuses a protocol it lacks.
    let hello: Vec<Value> = query(&mut first, &["HELLO", "2", "SETNAME", "renamed"]);
    let id_at = hello
        .iter()
        .position(|v| *v == Value::BulkString(b"id".to_vec()))
        .expect("an id field");
    assert_eq!(hello[id_at + 1], Value::Int(id_1));
    assert_eq!(
        query::<String>(&mut first, &["CLIENT", "GETNAME"]),
        "renamed"
    );
    assert_eq!(
        refusal(&mut first, &["HELLO", "3"]),
        "NOPROTO unsupported protocol version"
    );

    // RESET: the name, the transaction and the watches go.
    let _: String = query(&mut first, &["MULTI"]);
    let _: String = query(&mut first, &["SET", "after-reset", "no"]);
    let reset: String = query(&mut first, &["RESET"]);
    assert_eq!(reset, "RESET");
    assert_eq!(
        query::<Option<String>>(&mut first, &["CLIENT", "GETNAME"]),
        None
    );
    assert!(refusal(&mut first, &["EXEC"]).contains("EXEC without MULTI"));
    assert_eq!(
        query::<Option<String>>(&mut first, &["GET", "after-reset"]),
        None
    );
}

/// Nonsense for the new commands, pipelined in one write: each gets its error in order, the
/// connection stays usable, and nothing is watched, queued or named by what was refused.
#[test]
fn nonsense_transaction_and_connection_commands_are_refused_in_order() {
    let _serial = serial();
    let cluster = TestCluster::start(1);
    cluster.wait_for_leader(Duration::from_secs(10));
    let addr = cluster.nodes[&1].client;
    let mut too_many_watched = String::from("WATCH");
    for n in 0..1025 {
        too_many_watched.push_str(&format!(" w{n}"));
    }
    let long_name = "n".repeat(300);
    let requests = format!(
        "{too_many_watched}\r\nCLIENT SETNAME {long_name}\r\n\
         *3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$4\r\na\r\nb\r\n\
         CLIENT LIST ID 0\r\nCLIENT LIST ID 99999999999999999999\r\nCLIENT KILL x\r\n\
         COMMAND INFO \"\\xff\\x00\"\r\nHELLO 99999999999999999999\r\nHELLO -1\r\n\
         HELLO 2 SETNAME\r\nEXEC x\r\nCLIENT GETNAME\r\nWATCH k\r\nSET k changed\r\n\
         MULTI\r\nGET k\r\nEXEC\r\nPING\r\n"
    );
    let expected = "-ERR at most 1024 keys and 1048576 bytes of keys may be watched\r\n\
                    -ERR client names and library details are limited to 256 bytes\r\n\
                    -ERR Client names cannot contain spaces, newlines or special characters.\r\n\
                    -ERR Invalid client ID\r\n-ERR Invalid client ID\r\n\
                    -ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n*1\r\n$-1\r\n\
                    -ERR Protocol version is not an integer or out of range\r\n\
                    -NOPROTO unsupported protocol version\r\n\
                    -ERR Syntax error in HELLO option 'SETNAME'\r\n\
                    -ERR wrong number of arguments for 'exec' command\r\n$-1\r\n+OK\r\n+OK\r\n\
                    +OK\r\n+QUEUED\r\n*-1\r\n+PONG\r\n";
    exchange(addr, &requests, expected);
}

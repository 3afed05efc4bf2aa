//! Hostile requests to a node's HTTP, on real processes: membership changes that name a node
//! that does not exist or that would leave the cluster without a reachable majority are
//! refused and change nothing; a web page of another origin can neither write nor reconfigure;
//! and a hostile peer whose status and events are full of markup gets it shown in the live
//! view as text, never run; the view's speed control refuses every time per tick out of
//! its range, and the scenarios' PreVote switch every value but true and false. Every test but the live view's runs twice: over plain HTTP, and
//! as `…_over_tls` over HTTPS with the admin token (the token does not make a bad request good).

#[macro_use]
#[path = "support/attack.rs"]
mod attack;
#[path = "support/browser.rs"]
mod browser;
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use attack::read_until_quiet;
use browser::{wait_for, Browser};
use common::{eventually, serial, tls_connect, TestCluster, Wire};
use redis::Commands;
use serde_json::Value;

/// A connection to node `via`'s HTTP port: plain, or HTTPS on a secure cluster.
fn connect_http(cluster: &TestCluster, via: u64) -> Box<dyn Wire> {
    let addr = cluster.nodes[&via].http;
    match &cluster.secure {
        None => {
            Box::new(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).expect("connects"))
        }
        Some(secure) => Box::new(tls_connect(addr, &secure.client_config).expect("connects")),
    }
}

/// A raw HTTP/1.1 request to node `via`: (status code, lower-cased head, body). On a secure
/// cluster it goes over HTTPS with the admin token, as an operator's careless request would:
/// what is checked is what the token does not make right.
fn request(
    cluster: &TestCluster,
    via: u64,
    method: &str,
    path: &str,
    headers: &[&str],
) -> (u16, String, String) {
    let addr = cluster.nodes[&via].http;
    let mut stream = connect_http(cluster, via);
    let token = cluster
        .secure
        .as_ref()
        .map(|s| format!("Authorization: Bearer {}\r\n", s.token))
        .unwrap_or_default();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n{token}{extra}\r\n"
    )
    .and_then(|()| stream.flush())
    .expect("request sent");
    let response = String::from_utf8(read_until_quiet(&mut stream, Duration::from_secs(10)))
        .expect("a text response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, head.to_ascii_lowercase(), body.to_string())
}

fn post(cluster: &TestCluster, via: u64, path: &str, headers: &[&str]) -> (u16, String, String) {
    request(cluster, via, "POST", path, headers)
}

/// (id, kind) of every member, as node `via` reports them.
fn members(cluster: &TestCluster, via: u64) -> Vec<(u64, String)> {
    let status = cluster.status(via).expect("status");
    status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().expect("id"),
                m["kind"].as_str().expect("kind").to_string(),
            )
        })
        .collect()
}

fn three_voters() -> Vec<(u64, String)> {
    (1..=3).map(|id| (id, "voter".to_string())).collect()
}

fn set_through(cluster: &TestCluster, id: u64, key: &str) -> bool {
    let mut connection = cluster.redis(id);
    connection.set::<_, _, ()>(key, "v").is_ok()
}

fn promoting_a_node_that_does_not_exist_is_refused_and_the_cluster_still_tolerates_a_failure_on(
    secure: bool,
) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], secure);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));

    let (code, head, body) = post(&cluster, leader, "/admin/promote?id=99", &[]);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("node 99 is not a member"), "{body}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    let cli = cluster.admin(leader, &["promote", "--id", "99", "--force"]);
    assert!(!cli.status.success(), "--force does not make a node exist");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.contains("node 99 is not a member"), "{stderr}");
    for (path, expected) in [
        ("/admin/promote?id=0", "out of range"),
        ("/admin/remove?id=18446744073709551615", "out of range"),
        (
            "/admin/add-learner?id=7&peer_addr=nowhere",
            "bad peer address",
        ),
        (
            "/admin/add-learner?id=7&peer_addr=0.0.0.0:1",
            "bad peer address",
        ),
        ("/admin/add-learner?id=7", "peer_addr is required"),
    ] {
        let (code, _, body) = post(&cluster, leader, path, &[]);
        assert!(code == 400 || code == 409, "{path}: {code} {body}");
        assert!(body.contains(expected), "{path}: {body}");
    }
    assert_eq!(members(&cluster, leader), three_voters());

    // Still three voters: one may fail and the other two go on.
    let victim = (1..=3).find(|&id| id != leader).expect("a follower");
    cluster.kill(victim);
    assert!(set_through(&cluster, leader, "after-one-failure"));
}

fn a_removal_that_would_leave_no_reachable_majority_is_refused_and_removing_the_dead_node_is_not_on(
    secure: bool,
) {
    let _serial = serial();
    let mut cluster = TestCluster::launch(3, &[], secure);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let followers: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let (dead, alive) = (followers[0], followers[1]);
    cluster.kill(dead);
    // The leader forgets who answered every election timeout (150 ms here): after a few, the
    // dead node is no longer counted.
    std::thread::sleep(Duration::from_secs(1));

    // Removing the live follower would leave {leader, dead}: a majority of two needs both.
    let path = format!("/admin/remove?id={alive}");
    let body = eventually(Duration::from_secs(5), "the leader to notice", || {
        let (code, _, body) = post(&cluster, leader, &path, &[]);
        assert_ne!(code, 200, "removing {alive} was accepted: {body}");
        body.contains("a majority needs 2").then_some(body)
    });
    assert!(
        body.contains("--force"),
        "the refusal names the override: {body}"
    );
    assert_eq!(members(&cluster, leader), three_voters());
    assert!(set_through(&cluster, leader, "still-writable"));

    // The repair an operator wants: the dead node goes, the two live ones remain. Two voters
    // tolerate no failure, so it takes --force.
    let cli = cluster.admin(alive, &["remove", "--id", &dead.to_string()]);
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.contains("which tolerate no failure"), "{stderr}");
    let cli = cluster.admin(alive, &["remove", "--id", &dead.to_string(), "--force"]);
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(cli.status.success(), "{stderr}");
    eventually(Duration::from_secs(5), "the dead node to leave", || {
        (members(&cluster, leader).len() == 2).then_some(())
    });
    assert!(set_through(&cluster, leader, "after-repair"));
}

fn a_page_of_another_origin_can_neither_write_nor_reconfigure_on(secure: bool) {
    let _serial = serial();
    let cluster = TestCluster::launch(3, &[], secure);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let evil = "Origin: http://evil.example";
    let transfer = format!("/admin/transfer-leader?to={follower}");

    for (headers, what) in [
        (&[evil][..], "a foreign Origin"),
        (
            &["Sec-Fetch-Site: cross-site"],
            "Sec-Fetch-Site: cross-site",
        ),
        (&["Origin: null"], "an opaque origin"),
    ] {
        for (via, path) in [
            (leader, "/kv/set?key=stolen&value=1"),
            (follower, "/kv/set?key=stolen&value=1"),
            (leader, transfer.as_str()),
            (leader, "/admin/remove?id=3&force=1"),
            (leader, "/admin/snapshot"),
        ] {
            let (code, head, body) = post(&cluster, via, path, headers);
            assert_eq!(code, 403, "{what} {path}: {body}");
            assert!(!head.contains("access-control-allow-origin"), "{head}");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let stolen: Option<String> = cluster.redis(leader).get("stolen").expect("read");
    assert_eq!(stolen, None, "no write went through");
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(5)), leader);
    assert_eq!(members(&cluster, leader), three_voters());

    // The node's own page, and tools that send no Origin, still may.
    let scheme = if secure { "https" } else { "http" };
    let own = format!("Origin: {scheme}://{}", cluster.nodes[&leader].http);
    let (code, head, body) = post(&cluster, leader, "/kv/set?key=mine&value=1", &[&own]);
    assert_eq!(code, 200, "{body}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    let (code, _, body) = post(&cluster, follower, "/kv/set?key=curl&value=1", &[]);
    assert_eq!(code, 200, "{body}");
    let (code, head, _) = post(&cluster, leader, "/admin/promote?id=42", &[]);
    assert_eq!(code, 409);
    assert!(!head.contains("access-control-allow-origin"), "{head}");

    // The page allows no inline script and no sniffing.
    let (code, head, body) = request(&cluster, leader, "GET", "/", &[]);
    assert_eq!(code, 200);
    assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self';"));
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(!body.contains("<script>"), "no inline script in the page");
}

/// Sends node `to` a Hello frame as node `from` advertising `http_addr`, over a raw connection
/// to its peer port, and returns the connection (kept open so that it stays the latest).
fn forge_hello(to: SocketAddr, cluster_id: u64, from: u64, http_addr: &str) -> TcpStream {
    let mut payload = Vec::new();
    payload.extend_from_slice(&from.to_le_bytes());
    for text in ["127.0.0.1:1", http_addr, ""] {
        payload.extend_from_slice(&(text.len() as u16).to_le_bytes());
        payload.extend_from_slice(text.as_bytes());
    }
    let mut frame = Vec::new();
    let len = (1 + 8 + 1 + payload.len()) as u32;
    frame.extend_from_slice(&len.to_le_bytes());
    frame.push(skiff_node::wire::WIRE_VERSION);
    frame.extend_from_slice(&cluster_id.to_le_bytes());
    frame.push(0); // Hello
    frame.extend_from_slice(&payload);
    let mut stream = TcpStream::connect(to).expect("peer port");
    stream.write_all(&frame).expect("hello sent");
    stream
}

const HOSTILE: &str =
    "<img src=x onerror=\"document.title='pwned';window.pwned=1\"><script>window.pwned=2</script>";

/// A hostile "node 3" for the page to follow: an HTTP server whose `/events` reports markup in
/// every field the view shows (term, member kinds and addresses, event texts).
fn serve_hostile_events() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || stream_hostile_events(stream));
        }
    });
    addr
}

fn stream_hostile_events(mut stream: TcpStream) {
    let mut head = [0u8; 4096];
    let _ = stream.read(&mut head);
    let status = serde_json::json!({
        "id": 3, "cluster_id": 1, "role": "leader", "term": HOSTILE, "vote": HOSTILE,
        "leader": 3, "commit": 1, "applied": 1, "last_index": 1, "snapshot_index": 0,
        "keys": HOSTILE, "first_index": 1, "election_elapsed": 0, "election_timeout": 10,
        "members": [
            {"id": 3, "kind": "voter", "http_addr": null, "match_index": 1},
            {"id": 4, "kind": HOSTILE, "http_addr": HOSTILE, "match_index": null},
        ],
        "local_control": "javascript:window.pwned=3//",
        "fault_injection": false, "isolated": false,
    });
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nAccess-Control-Allow-Origin: *\r\n\r\n",
    );
    for at_ms in 0u64.. {
        let event =
            serde_json::json!({"at_ms": at_ms, "term": 1, "kind": HOSTILE, "text": HOSTILE});
        let frames = format!("event: status\ndata: {status}\n\nevent: raft\ndata: {event}\n\n");
        if stream.write_all(frames.as_bytes()).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn advertised_http(cluster: &TestCluster, via: u64, id: u64) -> Option<Value> {
    let status = cluster.status(via)?;
    let member = status["members"]
        .as_array()?
        .iter()
        .find(|m| m["id"] == id)?;
    Some(member["http_addr"].clone())
}

#[test]
fn a_hostile_peer_gets_its_markup_shown_in_the_live_view_as_text_and_never_run() {
    let _serial = serial();
    let mut cluster = TestCluster::start(3);
    cluster.kill(3);
    let cluster_id = cluster.status(1).expect("status")["cluster_id"]
        .as_u64()
        .expect("cluster id");

    // A Hello that advertises markup is refused by the transport itself...
    let _refused = forge_hello(cluster.nodes[&1].peer, cluster_id, 3, HOSTILE);
    std::thread::sleep(Duration::from_millis(500));
    assert_ne!(advertised_http(&cluster, 1, 3), Some(Value::from(HOSTILE)));

    // ...so the hostile peer advertises a real address, where it serves markup instead.
    let hostile = serve_hostile_events().to_string();
    let _forged: Vec<TcpStream> = [1, 2]
        .iter()
        .map(|id| forge_hello(cluster.nodes[id].peer, cluster_id, 3, &hostile))
        .collect();
    eventually(
        Duration::from_secs(5),
        "the forged address in /status",
        || (advertised_http(&cluster, 1, 3)? == hostile.as_str()).then_some(()),
    );

    let script = request(&cluster, 1, "GET", "/view.js", &[]).2;
    for sink in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ] {
        assert!(!script.contains(sink), "the view's script uses {sink}");
    }

    let browser = Browser::start();
    browser.navigate(&format!("http://{}/", cluster.nodes[&1].http));
    let card_text = |id: u64| {
        let text = browser.execute(&format!(
            "const c = document.querySelector('.card[data-node=\"{id}\"]'); return c ? c.innerText : null;"
        ));
        text.as_str().unwrap_or_default().to_string()
    };
    wait_for(
        "the hostile texts in the page",
        Duration::from_secs(15),
        || {
            let timeline = browser.execute("return document.getElementById('timeline').innerText;");
            let shown = card_text(3).contains(HOSTILE)
                && card_text(4).contains(HOSTILE)
                && timeline.as_str().is_some_and(|t| t.contains(HOSTILE));
            shown.then_some(())
        },
    );
    assert!(
        card_text(4).contains("unusable HTTP address"),
        "{}",
        card_text(4)
    );
    let ran = browser.execute(
        "return [document.title, String(window.pwned), document.querySelectorAll('body img, body script').length];",
    );
    assert_eq!(
        ran,
        serde_json::json!(["Skiff — live cluster view", "undefined", 0]),
        "the markup stayed text"
    );
    let kill = browser
        .execute("const b = document.querySelector('button[data-action=\"kill\"]'); return !!b;");
    assert_eq!(kill, Value::Bool(false), "a peer's control URL is not used");
}

/// Sends raw bytes to node `via`'s HTTP port (over TLS on a secure cluster) and returns what
/// came back before the node closed the connection or went quiet.
fn raw_exchange(cluster: &TestCluster, via: u64, bytes: &[u8]) -> String {
    let mut stream = connect_http(cluster, via);
    let _ = stream.write_all(bytes).and_then(|()| stream.flush());
    String::from_utf8_lossy(&read_until_quiet(&mut stream, Duration::from_secs(5))).to_string()
}

fn careless_http_requests_get_client_errors_and_change_nothing_on(secure: bool) {
    let _serial = serial();
    let cluster = TestCluster::launch(3, &[], secure);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    for path in [
        "/admin/promote?id=abc",
        "/admin/promote?id=18446744073709551616",
        "/admin/remove?id=-1",
        "/admin/transfer-leader?to=",
        "/kv/set",
        "/kv/set?key=k",
    ] {
        let (code, _, body) = post(&cluster, leader, path, &[]);
        assert!((400..500).contains(&code), "{path}: {code} {body}");
    }
    // The view's speed control and scenarios: a time per tick out of range, negative, not a
    // number, past u64 or missing, a PreVote switch that is not true or false, a node id that
    // is not one is a bad request (400, whether or not fault injection is on), and the node's
    // tick and PreVote stay as they were.
    for path in [
        "/admin/tick?ms=0",
        "/admin/tick?ms=4",
        "/admin/tick?ms=1001",
        "/admin/tick?ms=-5",
        "/admin/tick?ms=ten",
        "/admin/tick?ms=18446744073709551616",
        "/admin/tick?ms=",
        "/admin/tick",
        "/admin/tick?ms=50&node=x",
        "/admin/pre-vote",
        "/admin/pre-vote?on=maybe",
        "/admin/pre-vote?on=1",
        "/admin/pre-vote?on=false&node=-2",
        "/admin/campaign?node=18446744073709551616",
    ] {
        let (code, _, body) = post(&cluster, leader, path, &[]);
        assert_eq!(code, 400, "{path}: {body}");
    }
    // Well-formed, but this cluster runs without --allow-fault-injection: refused here, and
    // never relayed to the member a request names.
    let other = (1..=3).find(|&id| id != leader).expect("another member");
    for path in [
        "/admin/tick?ms=500".to_string(),
        "/admin/pre-vote?on=false".to_string(),
        "/admin/campaign".to_string(),
        "/admin/isolate?on=true".to_string(),
        format!("/admin/tick?ms=500&node={other}"),
        format!("/admin/pre-vote?on=false&node={other}"),
        format!("/admin/campaign?node={other}"),
    ] {
        let (code, _, body) = post(&cluster, leader, &path, &[]);
        assert_eq!(code, 403, "{path}: {body}");
    }
    for id in [leader, other] {
        let status = cluster.status(id).expect("status");
        assert_eq!(status["tick_ms"], 10, "node {id}");
        assert_eq!(status["pre_vote"], true, "node {id}");
        assert_eq!(status["isolated"], false, "node {id}");
    }
    assert_eq!(cluster.wait_for_leader(Duration::from_secs(5)), leader);
    // A request line of 1 MiB, and bytes that are not HTTP at all: refused or closed, never
    // a crash or a hang.
    let long = format!(
        "GET /status?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = raw_exchange(&cluster, leader, long.as_bytes());
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    let answer = raw_exchange(&cluster, leader, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    assert_eq!(
        members(&cluster, leader),
        three_voters(),
        "membership unchanged"
    );
    assert!(set_through(&cluster, leader, "after-careless-http"));
    let status = cluster.status(leader).expect("status");
    assert_eq!(status["role"], "leader");
}

plain_and_tls! {
    promoting_a_node_that_does_not_exist_is_refused_and_the_cluster_still_tolerates_a_failure_on:
        promoting_a_node_that_does_not_exist_is_refused_and_the_cluster_still_tolerates_a_failure,
        promoting_a_node_that_does_not_exist_is_refused_and_the_cluster_still_tolerates_a_failure_over_tls;
    a_removal_that_would_leave_no_reachable_majority_is_refused_and_removing_the_dead_node_is_not_on:
        a_removal_that_would_leave_no_reachable_majority_is_refused_and_removing_the_dead_node_is_not,
        a_removal_that_would_leave_no_reachable_majority_is_refused_and_removing_the_dead_node_is_not_over_tls;
    a_page_of_another_origin_can_neither_write_nor_reconfigure_on:
        a_page_of_another_origin_can_neither_write_nor_reconfigure,
        a_page_of_another_origin_can_neither_write_nor_reconfigure_over_tls;
    careless_http_requests_get_client_errors_and_change_nothing_on:
        careless_http_requests_get_client_errors_and_change_nothing,
        careless_http_requests_get_client_errors_and_change_nothing_over_tls;
}

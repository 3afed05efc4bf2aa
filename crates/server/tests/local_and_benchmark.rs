//! `skiff local` as a user runs it: it starts a cluster, reports the leader, takes
//! `redis-benchmark` load on the leader's and a follower's port without errors, stops every
//! node on Ctrl-C, and resumes from the same data when run again.

mod common;

use std::net::TcpListener;
use std::process::Command;

use common::{free_base_port, serial, Local};
use redis::Commands;

fn redis_benchmark(port: u16) -> String {
    let output = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "set,get",
            "-n",
            "100000",
            "-c",
            "50",
            "-q",
        ])
        .output()
        .expect("redis-benchmark is installed (Debian package redis-tools; .ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "redis-benchmark failed:\n{text}");
    text
}

#[test]
fn skiff_local_serves_redis_benchmark_on_leader_and_follower_and_resumes_its_data() {
    let _serial = serial();
    let data = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let local = Local::start(data.path(), base);
    let leader = local.leader();
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    for node in [leader, follower] {
        let report = redis_benchmark(base + node - 1);
        for test in ["SET:", "GET:"] {
            let line = report
                .split(['\r', '\n'])
                .rfind(|l| l.trim_start().starts_with(test) && l.contains("requests per second"))
                .unwrap_or_else(|| panic!("no {test} result from node {node}:\n{report}"));
            eprintln!("node {node}: {}", line.trim());
        }
        assert!(
            !report.contains("Error") && !report.contains("ERR"),
            "node {node} answered redis-benchmark with errors:\n{report}"
        );
    }
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}/", base + follower - 1)).expect("client");
    let mut connection = client.get_connection().expect("connects");
    let _: () = connection.set("survives-restart", "yes").expect("write");
    local.stop();
    for node in 0..3 {
        assert!(
            TcpListener::bind(("127.0.0.1", base + node)).is_ok(),
            "node {} stopped with skiff local",
            node + 1
        );
    }

    let local = Local::start(data.path(), base);
    let leader = local.leader();
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}/", base + leader - 1)).expect("client");
    let mut connection = client.get_connection().expect("connects");
    let value: Option<String> = connection.get("survives-restart").expect("read");
    assert_eq!(
        value.as_deref(),
        Some("yes"),
        "the second run resumed the data"
    );
    local.stop();
}

//! A node joining a cluster that runs TLS on every port and asks the admin token of every
//! HTTP request (`--http-auth all`): its `--join` list names an address nobody answers first,
//! then a member's HTTPS port; it asks `/cluster` there with the cluster's CA and the token,
//! is added as a learner and catches up over mutual TLS (docs/OPERATIONS.md, "Add a node").

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, free_port, https_request, serial, skiff_bin, Secure};
use serde_json::Value;

/// One node's ports and data directory.
struct Node {
    client: SocketAddr,
    peer: SocketAddr,
    http: SocketAddr,
    dir: PathBuf,
}

impl Node {
    fn new(root: &Path, id: u64) -> Node {
        let loopback = || -> SocketAddr {
            format!("127.0.0.1:{}", free_port())
                .parse()
                .expect("an address")
        };
        Node {
            client: loopback(),
            peer: loopback(),
            http: loopback(),
            dir: root.join(format!("node{id}")),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }
}

/// The `skiff serve` processes of a test, killed when it ends.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts node `id` with `args` after its ports and data directory, its output in `node.log`.
fn serve(node: &Node, id: u64, args: &[String]) -> Child {
    std::fs::create_dir_all(&node.dir).expect("node dir");
    let log = std::fs::File::create(node.dir.join("node.log")).expect("log file");
    Command::new(skiff_bin())
        .arg("serve")
        .args(["--id", &id.to_string()])
        .arg("--data-dir")
        .arg(&node.dir)
        .args(["--listen-client", &node.client.to_string()])
        .args(["--listen-peer", &node.peer.to_string()])
        .args(["--listen-http", &node.http.to_string()])
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("skiff starts")
}

/// `GET /status` over HTTPS with the admin token.
fn status(secure: &Secure, node: &Node) -> Option<Value> {
    let (code, body) = https_request(
        node.http,
        &secure.client_config,
        "GET",
        "/status",
        Some(&secure.token),
    )
    .ok()?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

#[test]
fn a_node_joins_a_tls_cluster_with_the_admin_token_past_an_unreachable_member() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("temp dir");
    let secure = Secure::create(root.path(), 3);
    // The joiner's certificate, from the cluster's CA.
    let joiner_certs = root.path().join("certs-4");
    let output = Command::new(skiff_bin())
        .args(["certs", "--nodes", "4", "--hosts", "127.0.0.1", "--out"])
        .arg(&joiner_certs)
        .arg("--ca-cert-file")
        .arg(secure.certs.join("ca.crt"))
        .arg("--ca-key-file")
        .arg(secure.certs.join("ca.key"))
        .output()
        .expect("skiff certs runs");
    assert!(output.status.success(), "skiff certs: {output:?}");

    let nodes: BTreeMap<u64, Node> = (1..=4).map(|id| (id, Node::new(root.path(), id))).collect();
    let initial_cluster = (1..=3)
        .map(|id| format!("{id}={}", nodes[&id].peer))
        .collect::<Vec<_>>()
        .join(",");
    let auth_all = ["--http-auth".to_string(), "all".to_string()];
    let mut running = Running(Vec::new());
    for id in 1..=3 {
        let mut args = secure.serve_args(id);
        args.extend(["--initial-cluster".to_string(), initial_cluster.clone()]);
        args.extend(auth_all.clone());
        running.0.push(serve(&nodes[&id], id, &args));
    }
    let leader = eventually(Duration::from_secs(15), "a leader", || {
        (1..=3).find(|id| status(&secure, &nodes[id]).is_some_and(|s| s["role"] == "leader"))
    });
    // Without the token, even /cluster is refused: the joiner must send it.
    let (code, _) = https_request(
        nodes[&1].http,
        &secure.client_config,
        "GET",
        "/cluster",
        None,
    )
    .expect("an answer");
    assert_eq!(code, 401);

    // The first --join address refuses connections; the second is member 1's HTTPS port.
    let unreachable = format!("127.0.0.1:{}", free_port());
    let path = |dir: &Path, name: &str| dir.join(name).display().to_string();
    let mut args: Vec<String> = [
        "--tls-cert-file",
        &path(&joiner_certs, "node-4.crt"),
        "--tls-key-file",
        &path(&joiner_certs, "node-4.key"),
        "--tls-ca-cert-file",
        &path(&secure.certs, "ca.crt"),
        "--requirepass-file",
        &secure.password_file.display().to_string(),
        "--admin-token-file",
        &secure.token_file.display().to_string(),
        "--join",
        &format!("{unreachable},{}", nodes[&1].http),
    ]
    .map(String::from)
    .into();
    args.extend(auth_all);
    running.0.push(serve(&nodes[&4], 4, &args));
    let next_step = format!("add-learner --id 4 --peer-addr {}", nodes[&4].peer);
    eventually(Duration::from_secs(15), "the joiner's next step", || {
        nodes[&4].log().contains(&next_step).then_some(())
    });
    let log = nodes[&4].log();
    assert!(
        log.contains(&format!("through={}", nodes[&1].http)),
        "joined through member 1: {log}"
    );

    let added = Command::new(skiff_bin())
        .args(["admin", "--addr", &nodes[&leader].http.to_string()])
        .arg("--tls-ca-cert-file")
        .arg(secure.certs.join("ca.crt"))
        .arg("--token-file")
        .arg(&secure.token_file)
        .args(["add-learner", "--id", "4", "--peer-addr"])
        .arg(nodes[&4].peer.to_string())
        .output()
        .expect("skiff admin runs");
    assert!(added.status.success(), "add-learner: {added:?}");
    let commit = status(&secure, &nodes[&leader]).expect("the leader's status")["commit"]
        .as_u64()
        .expect("a commit index");
    eventually(
        Duration::from_secs(20),
        "the joiner to catch up over mutual TLS",
        || {
            let joiner = status(&secure, &nodes[&4])?;
            let learner = joiner["members"]
                .as_array()?
                .iter()
                .any(|m| m["id"] == 4 && m["kind"] == "learner");
            (learner && joiner["applied"].as_u64()? >= commit).then_some(())
        },
    );
}

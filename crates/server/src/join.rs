//! Joining a running cluster through one of its members (`skiff serve --join ADDR`).
//!
//! A new node asks a member's HTTP port for `GET /cluster`: the cluster id, the founding
//! membership (the configuration the log starts from, which the new node must start from too,
//! so that the membership changes it replays land on the same configurations) and the current
//! members' peer addresses. The answer comes from the network and is judged as hostile input:
//! its size, counts and addresses are bounded and checked, and the cluster id must be the one
//! the founding membership derives, before anything of it is stored in the node's identity.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::config::{cluster_id_of, Identity};
use crate::httpc::{self, Access};

/// The largest `/cluster` answer a joining node reads.
pub const MAX_CLUSTER_ANSWER_BYTES: usize = 64 * 1024;
/// The most members (founding or current) an answer may list.
pub const MAX_MEMBERS: usize = 64;
/// The most addresses `--join` may list, and the longest one.
const MAX_JOIN_ADDRS: usize = 16;
const MAX_JOIN_ADDR_CHARS: usize = 256;

/// What `--join` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinTarget {
    /// `--join` alone (or `join = true` in the file): join with the cluster's original
    /// `--initial-cluster`, as before `--join ADDR` existed.
    InitialCluster,
    /// `--join ADDR[,ADDR…]`: the HTTP addresses of members, tried in order.
    Members(Vec<String>),
}

impl FromStr for JoinTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<JoinTarget, String> {
        let addrs: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if addrs.is_empty() {
            return Ok(JoinTarget::InitialCluster);
        }
        if addrs.len() > MAX_JOIN_ADDRS {
            return Err(format!("at most {MAX_JOIN_ADDRS} addresses"));
        }
        for addr in &addrs {
            let port = addr.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
            if addr.len() > MAX_JOIN_ADDR_CHARS || !matches!(port, Some(Ok(p)) if p > 0) {
                return Err(format!("{addr:.64} is not a member's HTTP HOST:PORT"));
            }
        }
        Ok(JoinTarget::Members(addrs))
    }
}

impl<'de> Deserialize<'de> for JoinTarget {
    /// `join = true` (the old form), `join = false` (not joining is an error here: leave the
    /// key out), or `join = "host:port,…"`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Switch(bool),
            Addrs(String),
        }
        match Given::deserialize(deserializer)? {
            Given::Switch(true) => Ok(JoinTarget::InitialCluster),
            Given::Switch(false) => Err(serde::de::Error::custom(
                "join = false: leave the key out to found or restart a node",
            )),
            Given::Addrs(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// One current member in a `/cluster` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMember {
    /// Its id.
    pub id: u64,
    /// `voter`, `voter (outgoing)` or `learner`.
    pub kind: String,
    /// Its peer address, if the answering node knows it.
    pub peer_addr: Option<String>,
}

/// `GET /cluster`: what a node needs to join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterAnswer {
    /// The cluster id every peer frame carries.
    pub cluster_id: u64,
    /// The founding members' peer addresses: the configuration the log starts from.
    pub initial_cluster: BTreeMap<u64, SocketAddr>,
    /// The members as the answering node knows them.
    pub members: Vec<ClusterMember>,
    /// The leader it knows of.
    pub leader: Option<u64>,
}

impl ClusterAnswer {
    /// The current members' peer addresses, as the driver may dial them.
    pub fn member_addrs(&self) -> BTreeMap<u64, SocketAddr> {
        self.members
            .iter()
            .filter_map(|m| Some((m.id, m.peer_addr.as_deref()?.parse().ok()?)))
            .collect()
    }

    /// Checks an answer received from `from` for node `id` to join with: bounded, its
    /// addresses ones a node could dial, its cluster id the one its founding membership
    /// derives, and `id` not already a voter or a founding member.
    pub fn check(&self, id: u64, from: &str) -> anyhow::Result<()> {
        let refuse = |why: String| anyhow::anyhow!("{from} answered /cluster with {why}");
        if self.initial_cluster.is_empty() || self.initial_cluster.len() > MAX_MEMBERS {
            return Err(refuse(format!(
                "{} founding members (1 to {MAX_MEMBERS} expected)",
                self.initial_cluster.len()
            )));
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(refuse(format!(
                "{} members, over {MAX_MEMBERS}",
                self.members.len()
            )));
        }
        let founding_addrs = self
            .initial_cluster
            .iter()
            .map(|(&id, a)| (id, a.to_string()));
        let member_addrs = self
            .members
            .iter()
            .filter_map(|m| Some((m.id, m.peer_addr.clone()?)));
        for (member, addr) in founding_addrs.chain(member_addrs) {
            if member == 0 {
                return Err(refuse("a member of id 0".into()));
            }
            if !dialable(&addr) {
                return Err(refuse(format!(
                    "member {member} at {addr:.64}, which no node can be reached at"
                )));
            }
        }
        if self.cluster_id != cluster_id_of(&self.initial_cluster) {
            return Err(refuse(format!(
                "cluster id {:#x}, which is not the one its founding members give",
                self.cluster_id
            )));
        }
        if self.initial_cluster.contains_key(&id) {
            bail!("node {id} is a founding member of the cluster at {from}: ids are never reused, pick a new one");
        }
        if self
            .members
            .iter()
            .any(|m| m.id == id && m.kind.starts_with("voter"))
        {
            bail!("node {id} is already a voter of the cluster at {from}: pick a new id");
        }
        Ok(())
    }

    /// The identity node `id` stores: the cluster's founding membership, and the members'
    /// addresses as they were when it joined.
    pub fn identity(&self, id: u64) -> Identity {
        Identity {
            id,
            cluster_id: self.cluster_id,
            initial_cluster: self
                .initial_cluster
                .iter()
                .map(|(id, addr)| (id.to_string(), *addr))
                .collect(),
            members_at_join: self
                .member_addrs()
                .into_iter()
                .map(|(id, addr)| (id.to_string(), addr))
                .collect(),
        }
    }
}

/// Whether `addr` is a socket address another node could dial: not unspecified, multicast or
/// port 0, and of a bounded length.
fn dialable(addr: &str) -> bool {
    addr.len() <= 64
        && addr
            .parse::<SocketAddr>()
            .is_ok_and(|a| !a.ip().is_unspecified() && !a.ip().is_multicast() && a.port() != 0)
}

/// A joining node's first start: asks the members at `addrs` and makes its identity from the
/// first valid answer; also returns the address that gave it.
pub fn first_start(
    access: &Access,
    addrs: &[String],
    id: u64,
) -> anyhow::Result<(Identity, String)> {
    let (answer, through) = block_on(ask(access, addrs, id))?
        .with_context(|| format!("node {id} cannot join through --join {}", addrs.join(",")))?;
    tracing::info!(
        node = id,
        through = %through,
        cluster = format!("{:#x}", answer.cluster_id),
        members = ?answer.member_addrs(),
        leader = ?answer.leader,
        "joining the cluster as a node with no vote"
    );
    Ok((answer.identity(id), through))
}

/// A restart given `--join` again: the cluster there must be the one the data directory
/// belongs to. A member that does not answer is no reason to stay down: the node starts from
/// its stored identity.
pub fn check_stored(
    access: &Access,
    addrs: &[String],
    identity: &Identity,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    match block_on(ask_cluster_id(access, addrs))? {
        Ok((cluster_id, _)) if cluster_id == identity.cluster_id => Ok(()),
        Ok((cluster_id, through)) => bail!(
            "--join {through} is a member of cluster {cluster_id:#x}, but node {} in {} belongs to cluster {:#x}: start it without --join, or give a member of its own cluster",
            identity.id,
            data_dir.display(),
            identity.cluster_id
        ),
        Err(error) => {
            tracing::warn!(node = identity.id, error = %format!("{error:#}"), "could not check --join against the stored identity; starting from it");
            Ok(())
        }
    }
}

/// The cluster id the first member at `addrs` that answers gives, with its address.
async fn ask_cluster_id(access: &Access, addrs: &[String]) -> anyhow::Result<(u64, String)> {
    let mut failures = Vec::new();
    for addr in addrs {
        match fetch(access, addr).await {
            Ok(answer) => return Ok((answer.cluster_id, addr.clone())),
            Err(error) => failures.push(format!("{addr}: {error:#}")),
        }
    }
    bail!("no member answered: {}", failures.join("; "))
}

/// Runs `work` on a runtime of its own: the node's runtime starts only after its identity.
fn block_on<T>(work: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(work))
}

/// Asks the members at `addrs`, in order, for `/cluster`; the first valid answer and the
/// address that gave it.
pub async fn ask(
    access: &Access,
    addrs: &[String],
    id: u64,
) -> anyhow::Result<(ClusterAnswer, String)> {
    let mut failures = Vec::new();
    for addr in addrs {
        match ask_one(access, addr, id).await {
            Ok(answer) => return Ok((answer, addr.clone())),
            Err(error) => failures.push(format!("{addr}: {error:#}")),
        }
    }
    bail!("no member answered: {}", failures.join("; "))
}

async fn ask_one(access: &Access, addr: &str, id: u64) -> anyhow::Result<ClusterAnswer> {
    let answer = fetch(access, addr).await?;
    answer.check(id, addr)?;
    Ok(answer)
}

/// `GET /cluster` from `addr`, bounded and parsed (not yet checked).
async fn fetch(access: &Access, addr: &str) -> anyhow::Result<ClusterAnswer> {
    let (code, body) = httpc::request_bounded(
        access,
        addr,
        "GET",
        "/cluster",
        MAX_CLUSTER_ANSWER_BYTES,
        httpc::ANSWER_WAIT,
    )
    .await?;
    if code != 200 {
        bail!("HTTP {code}: {:.200}", body.trim());
    }
    serde_json::from_str(&body).context("parsing /cluster")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> ClusterAnswer {
        let initial_cluster: BTreeMap<u64, SocketAddr> = (1..=3)
            .map(|id| (id, format!("10.0.0.{id}:7101").parse().unwrap()))
            .collect();
        ClusterAnswer {
            cluster_id: cluster_id_of(&initial_cluster),
            initial_cluster,
            members: [(2, "voter"), (4, "voter"), (5, "learner")]
                .into_iter()
                .map(|(id, kind)| ClusterMember {
                    id,
                    kind: kind.into(),
                    peer_addr: Some(format!("10.0.0.{id}:7101")),
                })
                .collect(),
            leader: Some(4),
        }
    }

    #[test]
    fn a_sound_answer_gives_the_founding_membership_and_the_members_addresses() {
        let answer = answer();
        answer.check(6, "m").unwrap();
        // A learner added before its node first started may join under its id.
        answer.check(5, "m").unwrap();
        let identity = answer.identity(6);
        assert_eq!(identity.cluster_id, answer.cluster_id);
        assert_eq!(identity.members().unwrap(), answer.initial_cluster);
        assert_eq!(identity.members_at_join.len(), 3);
        assert_eq!(
            identity.members_at_join["4"],
            "10.0.0.4:7101".parse::<SocketAddr>().unwrap()
        );
    }

    /// A change that makes an answer unacceptable.
    type Spoil = fn(&mut ClusterAnswer);

    #[test]
    fn a_hostile_or_mistaken_answer_is_refused_naming_why() {
        let cases: Vec<(&str, Spoil)> = vec![
            ("cluster id", (|a: &mut ClusterAnswer| a.cluster_id ^= 1)),
            (
                "founding members",
                (|a: &mut ClusterAnswer| a.initial_cluster.clear()),
            ),
            (
                "founding members",
                (|a: &mut ClusterAnswer| {
                    a.initial_cluster = (1..=100)
                        .map(|id| (id, "10.0.0.1:1".parse().unwrap()))
                        .collect()
                }),
            ),
            (
                "members, over",
                (|a: &mut ClusterAnswer| {
                    let one = a.members[0].clone();
                    a.members = vec![one; 1000]
                }),
            ),
            (
                "no node can be reached",
                (|a: &mut ClusterAnswer| a.members[0].peer_addr = Some("0.0.0.0:7101".into())),
            ),
            (
                "no node can be reached",
                (|a: &mut ClusterAnswer| a.members[0].peer_addr = Some("<b>x</b>".into())),
            ),
            (
                "no node can be reached",
                (|a: &mut ClusterAnswer| a.members[0].peer_addr = Some("10.0.0.2:0".into())),
            ),
            (
                "no node can be reached",
                (|a: &mut ClusterAnswer| a.members[0].peer_addr = Some("1".repeat(10_000))),
            ),
            (
                "id 0",
                (|a: &mut ClusterAnswer| {
                    a.members[0].id = 0;
                }),
            ),
        ];
        for (why, spoil) in cases {
            let mut answer = answer();
            spoil(&mut answer);
            let error = answer.check(6, "10.0.0.2:7201").unwrap_err().to_string();
            assert!(error.contains(why), "{why}: {error}");
        }
        let error = answer().check(2, "m").unwrap_err().to_string();
        assert!(error.contains("founding member"), "{error}");
        let error = answer().check(4, "m").unwrap_err().to_string();
        assert!(error.contains("already a voter"), "{error}");
    }

    /// A member that reads one request and answers `head`, then `repeated` `times` over.
    async fn hostile_member(head: Vec<u8>, repeated: &'static [u8], times: usize) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                request.push(byte[0]);
            }
            if stream.write_all(&head).await.is_err() {
                return;
            }
            // Until the reader hangs up, when the answer is endless.
            for _ in 0..times {
                if stream.write_all(repeated).await.is_err() {
                    return;
                }
            }
        });
        addr
    }

    const CHUNKED: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

    #[tokio::test]
    async fn a_cluster_answer_chunked_inside_a_character_is_joined_bytewise() {
        let mut sound = answer();
        sound.members[0].kind = "vötér".into();
        let json = serde_json::to_vec(&sound).unwrap();
        // One byte a chunk: every multi-byte character is split between two chunks.
        let mut bytes = Vec::from(CHUNKED);
        for byte in json {
            bytes.extend_from_slice(b"1\r\n");
            bytes.push(byte);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        let addr = hostile_member(bytes, b"", 0).await;
        let fetched = fetch(&Access::default(), &addr).await.unwrap();
        assert_eq!(fetched.members[0].kind, "vötér");
    }

    #[tokio::test]
    async fn a_hostile_cluster_answer_is_a_clear_error_read_no_further_than_the_limit() {
        let over = MAX_CLUSTER_ANSWER_BYTES + 1;
        let cases: Vec<(&str, String, &'static [u8], usize)> = vec![
            // A chunk that ends inside a character.
            (
                "not followed by CRLF",
                format!("{CHUNKED}1\r\né\r\n0\r\n\r\n"),
                b"",
                0,
            ),
            (
                "remain",
                format!("{CHUNKED}{:x}\r\n{{}}\r\n0\r\n\r\n", u64::MAX),
                b"",
                0,
            ),
            (
                "not a hex size",
                format!("{CHUNKED}1{:x}\r\n{{}}\r\n", u64::MAX),
                b"",
                0,
            ),
            ("not a hex size", format!("{CHUNKED}-1\r\n{{}}\r\n"), b"", 0),
            (
                "before its last chunk",
                format!("{CHUNKED}2\r\n{{}}\r\n"),
                b"",
                0,
            ),
            // Endless chunks, and a body of 10 MiB: reading stops at the limit.
            ("of over", CHUNKED.into(), b"1\r\n \r\n", usize::MAX),
            (
                "of over",
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 10 << 20),
                &[b' '; 1024],
                10 << 10,
            ),
            (
                "bytes from",
                format!("HTTP/1.1 200 OK\r\n\r\n{}", " ".repeat(over)),
                b"",
                0,
            ),
        ];
        for (why, head, repeated, times) in cases {
            let addr = hostile_member(head.clone().into_bytes(), repeated, times).await;
            let error = fetch(&Access::default(), &addr).await.unwrap_err();
            let error = format!("{error:#}");
            assert!(error.contains(why), "{head:.80}: {error}");
        }
    }

    #[test]
    fn the_join_flag_reads_addresses_or_the_old_switch() {
        assert_eq!("".parse(), Ok(JoinTarget::InitialCluster));
        assert_eq!(
            "10.0.0.1:7201, 10.0.0.2:7201".parse(),
            Ok(JoinTarget::Members(vec![
                "10.0.0.1:7201".into(),
                "10.0.0.2:7201".into()
            ]))
        );
        for bad in ["10.0.0.1", "host:0", "host:http", &"a,".repeat(40)] {
            assert!(bad.parse::<JoinTarget>().is_err(), "{bad}");
        }
        #[derive(Deserialize)]
        struct File {
            join: JoinTarget,
        }
        let old: File = toml::from_str("join = true").unwrap();
        assert_eq!(old.join, JoinTarget::InitialCluster);
        let new: File = toml::from_str("join = \"node1:7201\"").unwrap();
        assert_eq!(new.join, JoinTarget::Members(vec!["node1:7201".into()]));
        assert!(toml::from_str::<File>("join = false").is_err());
    }
}

//! `skiff status` and `skiff admin`: the operator's view and levers, over the nodes' HTTP.

use anyhow::{bail, Context};

use crate::httpc::{self, Access};
use crate::shared::NodeStatus;

/// How the CLI reaches nodes that use HTTPS or an admin token.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ReachArgs {
    /// The cluster's CA certificate: talk HTTPS to the nodes and trust what it signed.
    #[arg(long)]
    pub tls_ca_cert_file: Option<std::path::PathBuf>,
    /// A file whose first line is the admin token (sent as `Authorization: Bearer …`).
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
}

impl ReachArgs {
    fn access(&self) -> anyhow::Result<Access> {
        Access::from_files(self.tls_ca_cert_file.as_deref(), self.token_file.as_deref())
    }
}

/// `skiff status` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct StatusArgs {
    /// The HTTP address of any node; several, comma-separated, are tried in order.
    #[arg(long, default_value = DEFAULT_ADDRS)]
    pub addr: String,
    /// Print the raw JSON of every node instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub reach: ReachArgs,
}

/// `skiff admin` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminArgs {
    /// The HTTP address of any node (several, comma-separated, are tried in order); requests
    /// go to the leader it knows, except `snapshot`, which goes to the first that answers.
    #[arg(long, default_value = DEFAULT_ADDRS)]
    pub addr: String,
    #[command(flatten)]
    pub reach: ReachArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: AdminAction,
}

/// Operator actions.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum AdminAction {
    /// Hand leadership to another voter (for maintenance of the current leader).
    TransferLeader {
        /// The voter to lead.
        #[arg(long)]
        to: u64,
    },
    /// Snapshot the node's state now and compact its log (on the node given by --addr).
    Snapshot {
        /// How long to wait for the node to answer, in seconds: it answers once the snapshot
        /// file is written and synced, which for a large store takes a while.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        wait_secs: u64,
    },
    /// Re-read the TLS certificate, key and CA files (on the node given by --addr, as SIGHUP
    /// does): new connections use them, existing ones finish.
    ReloadTls,
    /// Add a node as a learner: it receives the log but does not vote. Start it first with
    /// `skiff serve --join`.
    AddLearner {
        /// The new node's id.
        #[arg(long)]
        id: u64,
        /// Its peer address (what it gave as --listen-peer).
        #[arg(long)]
        peer_addr: String,
        /// Add it even if a majority of the voters does not answer the leader now (it could
        /// not be promoted until they do).
        #[arg(long)]
        force: bool,
    },
    /// Make a learner that has caught up a voter. Refused if the learner is unknown, has no
    /// recorded address, or a majority of the new voters does not answer the leader.
    Promote {
        /// The learner's id.
        #[arg(long)]
        id: u64,
        /// Promote even if a majority of the new voters does not answer the leader now.
        #[arg(long)]
        force: bool,
    },
    /// Write a backup of the whole store, taken on the node given by --addr (a follower will
    /// do) at a point after every write acknowledged before it began: to FILE.tmp, synced and
    /// checked, then renamed to FILE. `skiff restore` starts a new cluster from it.
    Backup {
        /// The file to write.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Remove a member (a voter leaves through the joint configuration). Refused if it is not
    /// a member, a majority of the remaining voters does not answer the leader, or fewer than
    /// three voters would remain.
    Remove {
        /// The member's id.
        #[arg(long)]
        id: u64,
        /// Remove even if a majority of the remaining voters does not answer the leader now,
        /// or fewer than three voters remain (no failure tolerated).
        #[arg(long)]
        force: bool,
    },
}

/// A single-threaded runtime, for the commands that only wait on a few sockets.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The HTTP addresses `skiff local` uses for its first three nodes.
const DEFAULT_ADDRS: &str = "127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203";

/// The first of the comma-separated `addrs` that answers `/status`, with its status.
async fn first_answering(access: &Access, addrs: &str) -> anyhow::Result<(String, NodeStatus)> {
    let mut errors = Vec::new();
    for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match httpc::status(access, addr).await {
            Ok(status) => return Ok((addr.to_string(), status)),
            Err(error) => errors.push(format!("{error:#}")),
        }
    }
    bail!("no node answered: {}", errors.join("; "))
}

/// How long `skiff status` and `skiff admin` wait for a leader to be found: a node that has
/// just started names one within a heartbeat of the leader reaching it.
const LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The cluster as the CLI shows it: the member list (the leader's when one is found), and each
/// member's status as that member itself answers.
struct ClusterStatuses {
    /// The status whose member list is shown: the leader's, or the asked node's without one.
    view: NodeStatus,
    /// The leader's HTTP address, if one was found.
    leader_http: Option<String>,
    /// The asked node's id and address.
    asked: (u64, String),
    /// Every member's own status, or why it could not be had.
    all: Vec<(u64, Result<NodeStatus, String>)>,
}

/// How long `skiff status` waits for the members' own statuses once the member list is known:
/// a member that drops packets shows as unreachable after this, whatever the others do.
const MEMBERS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `/status` from every address in `addrs` at once, each given until `deadline`.
async fn probe_all(
    access: &Access,
    addrs: &[String],
    deadline: tokio::time::Instant,
) -> Vec<Result<NodeStatus, String>> {
    futures_util::future::join_all(addrs.iter().map(|addr| async move {
        match tokio::time::timeout_at(deadline, httpc::status(access, addr)).await {
            Ok(answer) => answer.map_err(|e| format!("{e:#}")),
            Err(_) => Err(format!("no answer from {addr} in time")),
        }
    }))
    .await
}

/// The leader of the highest term among `statuses`: a deposed leader that has not heard of
/// the newer term yet still says it leads (§5.1: terms tell stale leaders apart).
fn newest_leader<'a>(
    statuses: impl IntoIterator<Item = (&'a str, &'a NodeStatus)>,
) -> Option<(String, NodeStatus)> {
    statuses
        .into_iter()
        .filter(|(_, status)| status.role == "leader")
        .max_by_key(|(_, status)| status.term)
        .map(|(addr, status)| (addr.to_string(), status.clone()))
}

/// The leader, found through the node at `addr` (status `asked`): of the asked node and every
/// member it knows the HTTP address of, all asked at once until `deadline`, the one that says
/// it leads in the highest term.
async fn find_leader(
    access: &Access,
    addr: &str,
    asked: &NodeStatus,
    deadline: tokio::time::Instant,
) -> Option<(String, NodeStatus)> {
    let others: Vec<String> = asked
        .members
        .iter()
        .filter(|m| m.id != asked.id)
        .filter_map(|m| m.http_addr.clone())
        .collect();
    let answers = probe_all(access, &others, deadline).await;
    let answered = others
        .iter()
        .zip(&answers)
        .filter_map(|(http, answer)| Some((http.as_str(), answer.as_ref().ok()?)));
    newest_leader(std::iter::once((addr, asked)).chain(answered))
}

/// Every member's status: the member list and progress come from the leader (a node that has
/// just restarted may not know every member's address yet), found through the first node in
/// `addrs` that answers; each member is asked itself. Without a leader, the asked node's view.
async fn cluster_statuses(access: &Access, addrs: &str) -> anyhow::Result<ClusterStatuses> {
    let (asked_addr, mut asked) = first_answering(access, addrs).await?;
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    let leader = loop {
        if let Some(found) = find_leader(access, &asked_addr, &asked, deadline).await {
            break Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(status) = httpc::status(access, &asked_addr).await {
            asked = status;
        }
    };
    let (leader_http, view) = match leader {
        Some((http, status)) => (Some(http), status),
        None => (None, asked.clone()),
    };
    // Every other member is asked at once, so members that drop packets cost one wait.
    let to_ask: Vec<(u64, String)> = view
        .members
        .iter()
        .filter(|m| m.id != view.id && m.id != asked.id)
        .filter_map(|m| Some((m.id, m.http_addr.clone()?)))
        .collect();
    let addrs: Vec<String> = to_ask.iter().map(|(_, http)| http.clone()).collect();
    let answers = probe_all(access, &addrs, tokio::time::Instant::now() + MEMBERS_WAIT).await;
    let mut answers: std::collections::HashMap<u64, Result<NodeStatus, String>> =
        to_ask.iter().map(|(id, _)| *id).zip(answers).collect();
    let all = view
        .members
        .iter()
        .map(|member| {
            let status = if member.id == view.id {
                Ok(view.clone())
            } else if member.id == asked.id {
                Ok(asked.clone())
            } else {
                answers
                    .remove(&member.id)
                    .unwrap_or_else(|| Err("address not known yet".to_string()))
            };
            (member.id, status)
        })
        .collect();
    Ok(ClusterStatuses {
        view,
        leader_http,
        asked: (asked.id, asked_addr),
        all,
    })
}

/// The HTTP address of the leader, found through the nodes at `addr`.
async fn leader_http(access: &Access, addr: &str) -> anyhow::Result<String> {
    cluster_statuses(access, addr)
        .await?
        .leader_http
        .context("no leader is known; try again once one is elected")
}

/// The role, padded to `width` and, on a terminal, coloured as in the live view.
fn paint_role(role: &str, width: usize) -> String {
    use std::io::IsTerminal;
    let padded = format!("{role:<width$}");
    if !std::io::stdout().is_terminal() || std::env::var_os("NO_COLOR").is_some() {
        return padded;
    }
    let colour = match role {
        "leader" => "1;33",
        "follower" => "36",
        "candidate" => "35",
        "pre-candidate" => "34",
        _ => "2",
    };
    format!("\x1b[{colour}m{padded}\x1b[0m")
}

/// Prints the cluster as a table.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let access = args.reach.access()?;
    runtime()?.block_on(async {
        let ClusterStatuses {
            view: first,
            leader_http,
            asked,
            all,
        } = cluster_statuses(&access, &args.addr).await?;
        if args.json {
            for (_, status) in &all {
                if let Ok(status) = status {
                    println!("{}", serde_json::to_string_pretty(status)?);
                }
            }
            return Ok(());
        }
        let leader_view = leader_http.as_ref().map(|_| first.clone());
        if leader_http.is_none() {
            println!(
                "no leader is known: the members as node {} ({}) sees them",
                asked.0, asked.1
            );
        }
        println!("cluster {:#x}", first.cluster_id);
        println!(
            "ID   ROLE           TERM   LEADER     COMMIT   APPLIED      LAST     MATCH  CLIENT                KIND"
        );
        for member in &first.members {
            let status = all.iter().find(|(id, _)| *id == member.id).map(|(_, s)| s);
            let matched = leader_view
                .as_ref()
                .and_then(|l| l.members.iter().find(|m| m.id == member.id))
                .and_then(|m| m.match_index)
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into());
            let client = member.client_addr.clone().unwrap_or_else(|| "?".into());
            match status {
                Some(Ok(s)) => println!(
                    "{:<4} {} {:<6} {:<7} {:>9} {:>9} {:>9} {:>9}  {:<21} {}",
                    s.id,
                    paint_role(&s.role, 14),
                    s.term,
                    s.leader
                        .map(|l| l.to_string())
                        .unwrap_or_else(|| "-".into()),
                    s.commit,
                    s.applied,
                    s.last_index,
                    matched,
                    client,
                    if s.refused {
                        format!("{} REFUSED: wiped data directory", member.kind)
                    } else {
                        member.kind.to_string()
                    }
                ),
                Some(Err(error)) => println!("{:<4} {:<14} {}", member.id, "unreachable", error),
                None => println!("{:<4} {:<14}", member.id, "unknown"),
            }
        }
        Ok(())
    })
}

/// Runs an operator action.
pub fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let access = args.reach.access()?;
    runtime()?.block_on(async {
        if let AdminAction::Backup { out } = &args.action {
            let target = first_answering(&access, &args.addr).await?.0;
            return crate::backup::fetch(&access, &target, out).await;
        }
        let path = match &args.action {
            AdminAction::TransferLeader { to } => format!("/admin/transfer-leader?to={to}"),
            AdminAction::Snapshot { .. } => "/admin/snapshot".to_string(),
            AdminAction::ReloadTls => "/admin/reload-tls".to_string(),
            AdminAction::AddLearner {
                id,
                peer_addr,
                force,
            } => {
                format!(
                    "/admin/add-learner?id={id}&peer_addr={}{}",
                    query_escape(peer_addr),
                    force_flag(*force)
                )
            }
            AdminAction::Promote { id, force } => {
                format!("/admin/promote?id={id}{}", force_flag(*force))
            }
            AdminAction::Remove { id, force } => {
                format!("/admin/remove?id={id}{}", force_flag(*force))
            }
            AdminAction::Backup { .. } => unreachable!("fetched above"),
        };
        let target = match &args.action {
            AdminAction::Snapshot { .. } | AdminAction::ReloadTls => {
                first_answering(&access, &args.addr).await?.0
            }
            // Everything else is the leader's to do.
            _ => leader_http(&access, &args.addr).await?,
        };
        let (code, body) = match &args.action {
            // The node answers once the file is synced: a large store's takes a while.
            AdminAction::Snapshot { wait_secs } => {
                let wait = std::time::Duration::from_secs(*wait_secs);
                httpc::request_waiting(&access, &target, "POST", &path, wait)
                    .await
                    .context("the snapshot may still be under way: `skiff status --json` shows the snapshot_index")?
            }
            _ => httpc::request(&access, &target, "POST", &path).await?,
        };
        let body = body.trim();
        if code == 409 {
            // The node checked the request and said no: nothing changed.
            if body.starts_with("refused") {
                return Err(Refused(format!("{target}: {body}")).into());
            }
            return Err(Refused(format!("{target} refused: {body}")).into());
        }
        if code != 200 {
            bail!("{target} refused: {body}");
        }
        println!("{body}");
        Ok(())
    })
}

/// The exit status of `skiff admin` when the node refused the request and nothing changed, so
/// that a script can tell it from a node it could not ask (status 1).
pub const REFUSED_EXIT_CODE: u8 = 3;

/// A request the node checked and refused (HTTP 409): nothing changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn force_flag(force: bool) -> &'static str {
    if force {
        "&force=1"
    } else {
        ""
    }
}

/// `text` as one query-string value: every byte but unreserved ones percent-encoded, so that an
/// address cannot add parameters or break the request line.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Admin {
        #[command(flatten)]
        args: AdminArgs,
    }

    /// `skiff admin snapshot` waits for the node's answer 600 s unless told otherwise; a wait
    /// of nothing, past a day, negative or not a number is refused naming the flag.
    #[test]
    fn the_snapshot_wait_is_bounded_and_named_when_refused() {
        let wait = |argv: &[&str]| {
            let argv = ["admin", "snapshot"].iter().chain(argv).copied();
            Admin::try_parse_from(argv).map(|admin| match admin.args.action {
                AdminAction::Snapshot { wait_secs } => wait_secs,
                other => panic!("parsed as {other:?}"),
            })
        };
        assert_eq!(wait(&[]).unwrap(), 600);
        assert_eq!(wait(&["--wait-secs", "86400"]).unwrap(), 86_400);
        for bad in ["0", "86401", "-1", "18446744073709551616", "10s", ""] {
            let flag = format!("--wait-secs={bad}");
            let error = wait(&[flag.as_str()]).unwrap_err().to_string();
            assert!(error.contains("--wait-secs"), "{bad:?}: {error}");
        }
    }

    fn status(id: u64, role: &str, term: u64) -> NodeStatus {
        NodeStatus {
            id,
            role: role.into(),
            term,
            ..NodeStatus::default()
        }
    }

    #[test]
    fn the_leader_of_the_highest_term_is_trusted_over_a_deposed_one() {
        let deposed = status(1, "leader", 4);
        let follower = status(2, "follower", 7);
        let current = status(3, "leader", 7);
        let statuses = [("n1", &deposed), ("n2", &follower), ("n3", &current)];
        assert_eq!(
            newest_leader(statuses),
            Some(("n3".to_string(), current.clone()))
        );
        // Whatever the order the answers come in.
        let reversed = [("n3", &current), ("n2", &follower), ("n1", &deposed)];
        assert_eq!(newest_leader(reversed), Some(("n3".to_string(), current)));
        assert_eq!(newest_leader([("n2", &follower)]), None);
    }

    #[test]
    fn a_peer_address_stays_one_query_value() {
        assert_eq!(query_escape("127.0.0.1:7104"), "127.0.0.1%3A7104");
        assert_eq!(
            query_escape("1.2.3.4:5&force=1 HTTP/1.1\r\n"),
            "1.2.3.4%3A5%26force%3D1%20HTTP%2F1.1%0D%0A"
        );
    }
}

//! `skiff restore`: the data directory of one node of a new cluster, seeded from a backup
//! file (as `etcdutl snapshot restore` does for etcd).
//!
//! The new directory holds the node's identity (its id, and the cluster id derived from the
//! new `--initial-cluster`, as a first start would store them), a log with a fresh
//! incarnation, the backup's snapshot at its index and term, and a hard state of that term
//! with no vote. The snapshot's configuration is replaced by the new cluster's voters, and
//! its member book by their peer addresses: the old cluster's members, addresses and
//! incarnations do not carry over, and the new cluster records its members' incarnations at
//! first contact, as any cluster does. Every node of the new cluster is restored from the
//! same file, so they all begin with the same log prefix and state.
//!
//! Because no incarnation carries over, a restore whose `--initial-cluster` gives the id of the
//! cluster the backup was taken from is refused: a surviving old node would be taken into the
//! restored cluster at first contact. A restore that fails once it has begun writing removes
//! what it wrote, so the directory can take the next attempt.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use skiff_node::{backup, payload, Node, NodeConfig};
use skiff_raft::{Config, HardState, LogStorage, NodeId, SnapshotMeta};
use skiff_wal::{FsDisk, Wal, WalOptions};

use crate::config::{cluster_id_of, parse_initial_cluster, Identity};

/// `skiff restore` settings.
#[derive(clap::Args, Clone, Debug)]
pub struct RestoreArgs {
    /// The backup file (`skiff admin backup --out`).
    #[arg(long)]
    pub from: PathBuf,
    /// The new node's data directory: absent or empty.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The new node's id, one of --initial-cluster.
    #[arg(long)]
    pub id: u64,
    /// The new cluster's members and peer addresses: `1=host:port,2=host:port,…`, the same
    /// for every node restored.
    #[arg(long)]
    pub initial_cluster: String,
}

/// Checks the backup and writes the new data directory; on failure, leaves the directory as
/// it was.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let members = parse_initial_cluster(&args.initial_cluster)?;
    ensure!(
        members.contains_key(&args.id),
        "node {} is not in --initial-cluster {}",
        args.id,
        args.initial_cluster
    );
    let file = std::fs::read(&args.from)
        .with_context(|| format!("reading the backup {}", args.from.display()))?;
    let (header, data) = backup::decode(&file)
        .with_context(|| format!("{} is not a usable backup", args.from.display()))?;
    let cluster_id = cluster_id_of(&members);
    // The restored member book records no incarnations, so a node of the old cluster would
    // be taken for a new member at first contact: the new cluster must not share its id.
    ensure!(
        cluster_id != header.cluster_id,
        "--initial-cluster {} gives the id of the cluster the backup was taken from ({:#x}), whose surviving nodes could then join the restored one: give the new cluster a membership of its own (another address or port for at least one member)",
        args.initial_cluster,
        header.cluster_id
    );
    check_empty(&args.data_dir)?;
    let identity = Identity {
        id: args.id,
        cluster_id,
        initial_cluster: members
            .iter()
            .map(|(id, addr)| (id.to_string(), *addr))
            .collect(),
        members_at_join: BTreeMap::new(),
    };
    let meta = SnapshotMeta {
        voters: members.keys().map(|&id| NodeId(id)).collect(),
        voters_outgoing: Vec::new(),
        learners: Vec::new(),
        ..header.meta
    };
    let store = store_range(&file, data)
        .with_context(|| format!("{} holds no usable node snapshot", args.from.display()))?;
    let data = with_new_members(file, store, &members);
    let created = outermost_missing(&args.data_dir);
    let keys = write_dir(&args.data_dir, &identity, meta.clone(), data).inspect_err(|_| {
        undo(&args.data_dir, created.as_deref());
    })?;
    println!(
        "restored node {} of cluster {:#x} into {}: snapshot at index {}, term {}, {keys} keys; start it with `skiff serve --data-dir {}` and its listen flags",
        args.id,
        identity.cluster_id,
        args.data_dir.display(),
        meta.index.0,
        meta.term.0,
        args.data_dir.display(),
    );
    Ok(())
}

/// Writes the log and the identity into `dir` and opens it once; returns the number of keys.
fn write_dir(
    dir: &Path,
    identity: &Identity,
    meta: SnapshotMeta,
    data: Vec<u8>,
) -> anyhow::Result<usize> {
    let wal_dir = dir.join("wal");
    seed_log(&wal_dir, identity.cluster_id, meta, data)?;
    let keys = check_opens(identity, &wal_dir)?;
    // Last, as on a first start: a directory without it is not a node's yet.
    identity.store(dir)?;
    Ok(keys)
}

/// The outermost of `dir` and its parents that does not exist yet: what writing `dir` creates.
fn outermost_missing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .last()
        .map(Path::to_path_buf)
}

/// Removes what a failed restore wrote: the outermost directory it `created`, if any, else the
/// contents of `dir` (it was empty before, as [`check_empty`] found).
fn undo(dir: &Path, created: Option<&Path>) {
    let removed = if let Some(created) = created {
        std::fs::remove_dir_all(created)
    } else {
        std::fs::read_dir(dir).and_then(|entries| {
            entries.into_iter().try_for_each(|entry| {
                let path = entry?.path();
                if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                }
            })
        })
    };
    if let Err(error) = removed {
        eprintln!(
            "could not remove what the failed restore wrote in {}: {error}",
            dir.display()
        );
    }
}

/// Refuses a data directory that holds anything: a restore never mixes with a node's data.
fn check_empty(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: restore into a new or empty directory",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("reading {}", dir.display())),
    }
}

/// Where the store's bytes lie in `file`, given `data`, the node snapshot within it.
fn store_range(file: &[u8], data: &[u8]) -> anyhow::Result<std::ops::Range<usize>> {
    let (_, store) = payload::decode_snapshot(data)?;
    // `store` is the tail of `data`, itself a slice of `file`.
    let end = data.as_ptr() as usize - file.as_ptr() as usize + data.len();
    Ok(end - store.len()..end)
}

/// The node snapshot whose store lies at `store` in `file`, with its member book replaced by
/// the new cluster's addresses and no incarnations (each is recorded when the new leader first
/// hears from the member). Built in `file`'s own buffer: the store is not copied a second time.
fn with_new_members(
    mut file: Vec<u8>,
    store: std::ops::Range<usize>,
    members: &BTreeMap<u64, SocketAddr>,
) -> Vec<u8> {
    let book = payload::MemberBook {
        addresses: members
            .iter()
            .map(|(&id, addr)| (NodeId(id), addr.to_string()))
            .collect(),
        incarnations: BTreeMap::new(),
    };
    let mut header = Vec::new();
    payload::put_snapshot_header(&book, &mut header);
    file.truncate(store.end);
    file.splice(..store.start, header);
    file
}

/// A new log in `wal_dir` holding only the snapshot, and a hard state of its term.
fn seed_log(
    wal_dir: &Path,
    cluster_id: u64,
    meta: SnapshotMeta,
    data: Vec<u8>,
) -> anyhow::Result<()> {
    let options = WalOptions {
        // §3.8: a new directory, so a new incarnation the new cluster will record.
        new_incarnation: rand::random::<u64>().max(1),
        mask_seed: rand::random(),
        ..WalOptions::new(cluster_id)
    };
    let (mut wal, report) = Wal::open(FsDisk::new(), wal_dir, options)
        .with_context(|| format!("creating the log in {}", wal_dir.display()))?;
    ensure!(report.created, "{} already held a log", wal_dir.display());
    let (index, term) = (meta.index, meta.term);
    // §7: the snapshot is durable before the log is cut to it.
    wal.save_snapshot(meta, data)
        .context("writing the snapshot")?;
    wal.compact_to(index, term)
        .context("starting the log at the snapshot")?;
    // §5.1: the node's term is never behind the entries it holds; no vote in it yet.
    let hard_state = HardState {
        term,
        vote: None,
        commit: index,
    };
    wal.append_batch(&[], Some(hard_state))
        .context("writing the hard state")?;
    Ok(())
}

/// Opens the new directory as `skiff serve` would, so that a restore that would not start is
/// found now; returns the number of keys.
fn check_opens(identity: &Identity, wal_dir: &Path) -> anyhow::Result<usize> {
    let voters = identity.members()?.into_keys().map(NodeId);
    let mut config: NodeConfig = NodeConfig::new(
        Config::new(NodeId(identity.id), voters),
        identity.cluster_id,
    );
    config.wal.expect_existing_log = true;
    let (node, _) = Node::<FsDisk>::open(FsDisk::new(), wal_dir, config)
        .context("the restored directory does not open")?;
    Ok(node.state_machine().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_kv::Command;
    use skiff_raft::{LogIndex, Term};

    /// A backup of a store holding `a=1`, at index 40 in term 6, of an old cluster whose
    /// member book names other addresses and incarnations.
    fn backup_file() -> Vec<u8> {
        let mut store = skiff_kv::StateMachine::new(Default::default()).unwrap();
        let set = Command::Set {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            condition: Default::default(),
        };
        store.apply(40, set, None);
        let old_book = payload::MemberBook {
            addresses: BTreeMap::from([(NodeId(7), "10.0.0.7:7101".into())]),
            incarnations: BTreeMap::from([(NodeId(7), 0x77)]),
        };
        let mut data = Vec::new();
        payload::put_snapshot_header(&old_book, &mut data);
        store.snapshot_into(&mut data);
        let meta = SnapshotMeta {
            index: LogIndex(40),
            term: Term(6),
            voters: vec![NodeId(7), NodeId(8), NodeId(9)],
            voters_outgoing: Vec::new(),
            learners: vec![NodeId(10)],
        };
        backup::encode(0xdead, meta, &data)
    }

    /// `backup_file()` re-encoded with another source cluster id and node snapshot.
    fn backup_of(cluster_id: u64, data: Option<Vec<u8>>) -> Vec<u8> {
        let good = backup_file();
        let (header, good_data) = backup::decode(&good).unwrap();
        backup::encode(
            cluster_id,
            header.meta,
            &data.unwrap_or_else(|| good_data.to_vec()),
        )
    }

    fn args(from: &Path, dir: &Path) -> RestoreArgs {
        RestoreArgs {
            from: from.to_path_buf(),
            data_dir: dir.to_path_buf(),
            id: 2,
            initial_cluster: "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103".into(),
        }
    }

    #[test]
    fn a_restored_directory_opens_as_a_node_of_the_new_cluster_only() {
        let root = tempfile::tempdir().unwrap();
        let from = root.path().join("backup");
        std::fs::write(&from, backup_file()).unwrap();
        let dir = root.path().join("node2");
        restore(args(&from, &dir)).unwrap();

        let identity = Identity::load(&dir).unwrap().expect("an identity");
        assert_eq!(identity.id, 2);
        let members = parse_initial_cluster(&args(&from, &dir).initial_cluster).unwrap();
        assert_eq!(identity.cluster_id, cluster_id_of(&members));
        let mut config: NodeConfig = NodeConfig::new(
            Config::new(NodeId(2), [1, 2, 3].map(NodeId)),
            identity.cluster_id,
        );
        config.wal.expect_existing_log = true;
        let (node, report) = Node::<FsDisk>::open(FsDisk::new(), dir.join("wal"), config).unwrap();
        assert!(!report.created);
        // The snapshot's point, under the new cluster's voters and addresses only.
        let meta = node.wal().snapshot_meta();
        assert_eq!((meta.index, meta.term), (LogIndex(40), Term(6)));
        assert_eq!(meta.voters, vec![NodeId(1), NodeId(2), NodeId(3)]);
        assert!(meta.learners.is_empty());
        assert_eq!(node.raw().raft().conf_state().voters, meta.voters);
        let addresses: Vec<&String> = node.member_addresses().values().collect();
        assert_eq!(
            addresses,
            ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]
        );
        assert!(node.member_incarnations().is_empty());
        // A hard state in the snapshot's term, committed to it; the log starts after it.
        let hard_state = node.wal().hard_state();
        assert_eq!((hard_state.term, hard_state.vote), (Term(6), None));
        assert_eq!(hard_state.commit, LogIndex(40));
        assert_eq!(node.wal().last_index(), LogIndex(40));
        assert_eq!(node.applied(), LogIndex(40));
        assert_eq!(node.state_machine().len(), 1);
        assert_ne!(node.incarnation(), 0);
    }

    #[test]
    fn a_damaged_backup_or_a_used_directory_is_refused_and_nothing_is_written() {
        let root = tempfile::tempdir().unwrap();
        let good = backup_file();
        let cases: [(&str, Vec<u8>, &str); 4] = [
            ("truncated", good[..good.len() - 1].to_vec(), "cut short"),
            (
                "flipped",
                {
                    let mut bad = good.clone();
                    let at = bad.len() / 2;
                    bad[at] ^= 0x10;
                    bad
                },
                "checksum mismatch",
            ),
            (
                "magic",
                {
                    let mut bad = good.clone();
                    bad[..8].copy_from_slice(b"NOTABACK");
                    bad
                },
                "not a Skiff backup",
            ),
            ("empty", Vec::new(), "truncated"),
        ];
        for (name, bytes, says) in cases {
            let from = root.path().join(name);
            std::fs::write(&from, bytes).unwrap();
            let dir = root.path().join(format!("dir-{name}"));
            let error = format!("{:#}", restore(args(&from, &dir)).unwrap_err());
            assert!(error.contains(says), "{name}: {error}");
            assert!(!dir.exists(), "{name}: a directory was made");
        }
        let from = root.path().join("good");
        std::fs::write(&from, &good).unwrap();
        let used = root.path().join("used");
        std::fs::create_dir(&used).unwrap();
        std::fs::write(used.join("something"), b"x").unwrap();
        let error = format!("{:#}", restore(args(&from, &used)).unwrap_err());
        assert!(error.contains("is not empty"), "{error}");
        assert_eq!(std::fs::read_dir(&used).unwrap().count(), 1);
        let mut outsider = args(&from, &root.path().join("outsider"));
        outsider.id = 4;
        assert!(restore(outsider).is_err());
    }

    #[test]
    fn a_restore_onto_the_membership_the_backup_was_taken_from_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("node2");
        let same = args(&root.path().join("backup"), &dir);
        let old_id = cluster_id_of(&parse_initial_cluster(&same.initial_cluster).unwrap());
        std::fs::write(&same.from, backup_of(old_id, None)).unwrap();
        let error = format!("{:#}", restore(same.clone()).unwrap_err());
        assert!(
            error.contains("gives the id of the cluster the backup was taken from"),
            "{error}"
        );
        assert!(!dir.exists());
        // One member on another port is another cluster.
        let moved = RestoreArgs {
            initial_cluster: "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7203".into(),
            ..same
        };
        restore(moved).unwrap();
        let identity = Identity::load(&dir).unwrap().expect("an identity");
        assert_ne!(identity.cluster_id, old_id);
    }

    #[test]
    fn a_restore_that_fails_after_writing_leaves_the_directory_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        let from = root.path().join("backup");
        // A member book the restore replaces, then a store that does not decode: the log is
        // written before the opening check finds it.
        let mut data = Vec::new();
        payload::put_snapshot_header(&payload::MemberBook::default(), &mut data);
        data.extend_from_slice(b"not a store");
        std::fs::write(&from, backup_of(0xdead, Some(data))).unwrap();

        let absent = root.path().join("absent");
        let error = format!("{:#}", restore(args(&from, &absent)).unwrap_err());
        assert!(error.contains("does not open"), "{error}");
        assert!(!absent.exists(), "the directory the restore made stays");
        let nested = root.path().join("parent/absent");
        assert!(restore(args(&from, &nested)).is_err());
        assert!(
            !root.path().join("parent").exists(),
            "a parent it made stays"
        );

        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(restore(args(&from, &empty)).is_err());
        assert!(empty.is_dir(), "a directory the operator made was removed");
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        // Either directory takes a good restore afterwards.
        std::fs::write(&from, backup_file()).unwrap();
        restore(args(&from, &absent)).unwrap();
        restore(args(&from, &empty)).unwrap();
    }
}

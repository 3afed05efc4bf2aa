//! A node's identity: its id, its cluster's id and the initial membership, given by flags on
//! first start and kept in its data directory from then on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Parses `1=host:port,2=host:port`.
pub fn parse_initial_cluster(text: &str) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    let mut members = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, addr)) = part.split_once('=') else {
            bail!("initial cluster member {part:?} is not of the form ID=HOST:PORT");
        };
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("member id {id:?} is not a number"))?;
        if id == 0 {
            bail!("member ids start at 1");
        }
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("member {id} address {addr:?} is not HOST:PORT"))?;
        if members.insert(id, addr).is_some() {
            bail!("member {id} is listed twice");
        }
    }
    if members.is_empty() {
        bail!("the initial cluster is empty");
    }
    Ok(members)
}

/// What a node writes into its data directory on first start, so that a restart needs
/// nothing but the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// This node's id.
    pub id: u64,
    /// The cluster's id, derived from the initial membership: a node refuses peers and log
    /// files of another cluster.
    pub cluster_id: u64,
    /// The initial members' peer addresses, by id.
    pub initial_cluster: BTreeMap<String, SocketAddr>,
    /// For a node that joined through a member (`--join ADDR`): the members' peer addresses
    /// at that time, by id, so that it can reach them before its log records them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub members_at_join: BTreeMap<String, SocketAddr>,
}

const IDENTITY_FILE: &str = "identity.toml";

/// The largest identity file read: a few hundred bytes per member, for clusters far larger
/// than any Raft cluster runs.
const MAX_IDENTITY_BYTES: u64 = 1 << 20;

impl Identity {
    /// The identity stored in `data_dir`, if the node has started before.
    pub fn load(data_dir: &Path) -> anyhow::Result<Option<Identity>> {
        let path = data_dir.join(IDENTITY_FILE);
        // Opened as the log's files are: a pipe or a link under the name is refused, not
        // waited on or followed.
        let opened =
            skiff_wal::fs_disk::open_regular(&path, std::fs::OpenOptions::new().read(true), "open");
        let file = match opened {
            Ok(file) => file,
            Err(skiff_wal::DiskError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // Read no further than an identity can be: a damaged file is refused, not held.
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_IDENTITY_BYTES + 1),
            &mut text,
        )
        .with_context(|| format!("reading {}", path.display()))?;
        if text.len() as u64 > MAX_IDENTITY_BYTES {
            bail!(
                "{} is larger than {MAX_IDENTITY_BYTES} bytes: not a node's identity",
                path.display()
            );
        }
        Ok(Some(
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        ))
    }

    /// Writes the identity durably (temp file, fsync, rename, fsync of the directory).
    pub fn store(&self, data_dir: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let temp = data_dir.join(format!("{IDENTITY_FILE}.tmp"));
        // A leftover temp name goes first; the new file is created afresh, so that nothing
        // under the name (a link, a pipe) is followed or waited on.
        match std::fs::remove_file(&temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", temp.display()));
            }
            _ => {}
        }
        let mut file = std::fs::File::create_new(&temp)
            .with_context(|| format!("creating {}", temp.display()))?;
        file.write_all(toml::to_string(self)?.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, data_dir.join(IDENTITY_FILE))?;
        std::fs::File::open(data_dir)?.sync_all()?;
        Ok(())
    }

    /// The initial members by numeric id.
    pub fn members(&self) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
        by_number(&self.initial_cluster)
    }

    /// Every peer address the identity knows, by numeric id: the initial members', and over
    /// them those the members had when this node joined.
    pub fn peer_addrs(&self) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
        let mut addrs = self.members()?;
        addrs.extend(by_number(&self.members_at_join)?);
        Ok(addrs)
    }
}

fn by_number(members: &BTreeMap<String, SocketAddr>) -> anyhow::Result<BTreeMap<u64, SocketAddr>> {
    members
        .iter()
        .map(|(id, addr)| {
            Ok((
                id.parse()
                    .with_context(|| format!("member id {id:?} in identity file"))?,
                *addr,
            ))
        })
        .collect()
}

/// A cluster id from the initial membership (FNV-1a over `id=addr` pairs in id order), so
/// nodes started with the same `--initial-cluster` agree on it without coordination.
pub fn cluster_id_of(members: &BTreeMap<u64, SocketAddr>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, addr) in members {
        for byte in format!("{id}={addr};").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // 63 bits, so the id fits a TOML integer; zero is reserved for "no cluster".
    (hash >> 1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_name_taken_by_a_pipe_a_directory_or_a_link_is_refused_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Identity::load(dir.path()).unwrap().is_none());
        let path = dir.path().join(IDENTITY_FILE);
        std::fs::create_dir(&path).unwrap();
        let refused = Identity::load(dir.path()).unwrap_err();
        assert!(format!("{refused:#}").contains("not a regular file but a directory"));
        std::fs::remove_dir(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        // A blocking open would wait for a writer that never comes: the load runs on a thread
        // of its own, so that the test fails instead of hanging.
        let (done, outcome) = std::sync::mpsc::channel();
        let data_dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let loaded = Identity::load(&data_dir).map(drop);
            let _ = done.send(loaded.map_err(|e| format!("{e:#}")));
        });
        let refused = outcome
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the load waited on the pipe")
            .unwrap_err();
        assert!(
            refused.contains("not a regular file but a pipe"),
            "{refused}"
        );

        // Storing over a link left under the temp name replaces the name: the link's target
        // is not written.
        std::fs::remove_file(&path).unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"not the identity").unwrap();
        let temp = dir.path().join(format!("{IDENTITY_FILE}.tmp"));
        std::os::unix::fs::symlink(&target, &temp).unwrap();
        let identity = Identity {
            id: 1,
            cluster_id: 7,
            initial_cluster: BTreeMap::from([("1".to_owned(), "127.0.0.1:7101".parse().unwrap())]),
            members_at_join: BTreeMap::new(),
        };
        identity.store(dir.path()).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"not the identity");
        assert_eq!(Identity::load(dir.path()).unwrap(), Some(identity));
    }

    /// A damaged identity file — larger than any identity, or not text — is refused with
    /// an error naming it, and the oversized one is not read whole.
    #[test]
    fn a_huge_or_garbled_identity_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        let file = std::fs::File::create(&path).unwrap();
        // Sparse: 1 GiB on the file system's word, nothing on the disk.
        file.set_len(1 << 30).unwrap();
        let refused = format!("{:#}", Identity::load(dir.path()).unwrap_err());
        assert!(
            refused.contains("larger than") && refused.contains(IDENTITY_FILE),
            "{refused}"
        );
        std::fs::write(&path, [0xff, 0xfe, 0, 1, 2]).unwrap();
        let refused = format!("{:#}", Identity::load(dir.path()).unwrap_err());
        assert!(refused.contains(IDENTITY_FILE), "{refused}");
        std::fs::write(&path, "cluster_id = \"not a number\"").unwrap();
        let refused = format!("{:#}", Identity::load(dir.path()).unwrap_err());
        assert!(refused.contains("parsing"), "{refused}");
    }

    #[test]
    fn initial_cluster_parses_and_rejects_mistakes() {
        let members = parse_initial_cluster("1=127.0.0.1:7101, 2=127.0.0.1:7102").unwrap();
        assert_eq!(members.len(), 2);
        for bad in [
            "",
            "1",
            "x=127.0.0.1:1",
            "0=127.0.0.1:1",
            "1=nowhere",
            "1=127.0.0.1:1,1=127.0.0.1:2",
        ] {
            assert!(parse_initial_cluster(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_cluster_id_depends_on_the_whole_membership() {
        let a = parse_initial_cluster("1=127.0.0.1:7101,2=127.0.0.1:7102").unwrap();
        let b = parse_initial_cluster("1=127.0.0.1:7101,2=127.0.0.1:7103").unwrap();
        assert_eq!(cluster_id_of(&a), cluster_id_of(&a.clone()));
        assert_ne!(cluster_id_of(&a), cluster_id_of(&b));
    }
}

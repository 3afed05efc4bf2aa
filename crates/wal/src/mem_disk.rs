//! [`MemDisk`]: an in-memory [`Disk`] that models what a crash keeps and loses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::disk::{Disk, DiskError};

/// An in-memory disk that remembers, for every file and directory, what is durable.
///
/// Model (the same one a POSIX file system promises, and no more):
/// - a file's contents as of its last [`Disk::sync`] survive a crash; bytes written since
///   (appended, or written over older ones) may be lost, and a truncation since is undone;
/// - a directory's entries as of its last [`Disk::sync_dir`] survive a crash; a file created,
///   removed or renamed since reverts to its durable name (or disappears);
/// - directories themselves always exist: [`Disk::create_dir_all`] does nothing and `list` of
///   an unknown directory is empty.
///
/// [`MemDisk::crash`] applies the model; [`MemDisk::crash_tearing`] also keeps a chosen prefix
/// of each file's unsynced tail, as a crash in the middle of a write would. Faults for tests
/// and the simulator: [`MemDisk::flip_bit`] and [`MemDisk::set_syncs_fail`]. Everything is kept
/// in ordered maps, so a run is a deterministic function of the calls made.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    /// Every name as the running program sees it.
    names: BTreeMap<PathBuf, InodeId>,
    /// The names that survive a crash.
    durable_names: BTreeMap<PathBuf, InodeId>,
    /// File contents, referenced from `names` and `durable_names`.
    inodes: BTreeMap<InodeId, Inode>,
    next_inode: InodeId,
    file_syncs: u64,
    dir_syncs: u64,
    syncs_fail: bool,
    /// Syncs that succeed before every later one fails, when set.
    syncs_before_failing: Option<u64>,
}

type InodeId = u64;

/// One file's contents, current and durable.
#[derive(Clone, Debug, Default)]
struct Inode {
    /// What reads return.
    data: Vec<u8>,
    /// The durable contents are `data[..shared_len]` followed by `durable_rest`.
    ///
    /// Invariant: `shared_len <= data.len()`.
    shared_len: usize,
    /// Durable bytes that a truncation removed from `data` (empty while nothing was truncated
    /// below the durable length since the last sync).
    durable_rest: Vec<u8>,
}

impl Inode {
    fn sync(&mut self) {
        self.shared_len = self.data.len();
        self.durable_rest.clear();
    }

    fn truncate(&mut self, len: usize) {
        if len < self.shared_len {
            let mut rest = self.data[len..self.shared_len].to_vec();
            rest.append(&mut self.durable_rest);
            self.durable_rest = rest;
            self.shared_len = len;
        }
        self.data.resize(len, 0);
    }

    /// Writes `bytes` at `offset`: the durable bytes it covers move to `durable_rest`.
    fn write_at(&mut self, offset: usize, bytes: &[u8]) {
        if offset < self.shared_len {
            let mut rest = self.data[offset..self.shared_len].to_vec();
            rest.append(&mut self.durable_rest);
            self.durable_rest = rest;
            self.shared_len = offset;
        }
        let end = offset + bytes.len();
        if end > self.data.len() {
            self.data.resize(end, 0);
        }
        self.data[offset..end].copy_from_slice(bytes);
    }

    /// The unsynced bytes a crash may tear: from the first byte written since the last sync to
    /// the last one that differs from the durable contents (zeros past their end count as
    /// unchanged, so zeros written ahead of later writes are not part of it).
    fn unsynced_tail_bytes(&self) -> u64 {
        let durable = |at: usize| -> u8 {
            if at < self.shared_len {
                self.data[at]
            } else {
                self.durable_rest
                    .get(at - self.shared_len)
                    .copied()
                    .unwrap_or(0)
            }
        };
        (self.shared_len..self.data.len())
            .rev()
            .find(|&at| self.data[at] != durable(at))
            .map_or(0, |last| (last + 1 - self.shared_len) as u64)
    }

    /// Reverts to the durable contents, but for the first `keep_tail_bytes` of the unsynced
    /// tail, which reached the disk (a torn write) over the durable bytes there. Keeping the
    /// whole tail keeps everything written.
    fn crash(&mut self, keep_tail_bytes: u64) {
        let tail = self.unsynced_tail_bytes();
        if keep_tail_bytes < tail {
            let keep = keep_tail_bytes as usize;
            self.data.truncate(self.shared_len + keep);
            if let Some(rest) = self.durable_rest.get(keep..) {
                self.data.extend_from_slice(rest);
            }
        }
        self.sync();
    }
}

fn in_dir(path: &Path, dir: &Path) -> bool {
    path.parent() == Some(dir)
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// Loses everything that was not made durable: unsynced file contents and unsynced
    /// directory changes. The disk stays usable, as after a reboot.
    pub fn crash(&mut self) {
        self.crash_tearing(|_, _| 0);
    }

    /// Like [`MemDisk::crash`], but for each file with an unsynced tail (the bytes from the
    /// first one written since the last sync to the end), `keep(path, unsynced_bytes)` chooses
    /// how many bytes of that tail survive (a torn write).
    /// `keep` is called in path order, so a seeded choice is reproducible.
    pub fn crash_tearing(&mut self, mut keep: impl FnMut(&Path, u64) -> u64) {
        self.names = self.durable_names.clone();
        for (path, inode) in &self.names {
            if let Some(inode) = self.inodes.get_mut(inode) {
                let tail = inode.unsynced_tail_bytes();
                let kept = if tail > 0 { keep(path, tail) } else { 0 };
                inode.crash(kept);
            }
        }
        self.collect_garbage();
    }

    /// Flips the lowest bit of the byte at `offset` in `file`, in the current contents and,
    /// where those bytes are already durable, in the durable ones: media corruption.
    pub fn flip_bit(&mut self, file: &Path, offset: u64) -> Result<(), DiskError> {
        let inode = self.inode_mut(file)?;
        let len = inode.data.len() as u64;
        match usize::try_from(offset)
            .ok()
            .and_then(|at| inode.data.get_mut(at))
        {
            Some(byte) => {
                *byte ^= 1;
                Ok(())
            }
            None => Err(DiskError::ShortRead {
                path: file.to_path_buf(),
                offset,
                len_bytes: 1,
                file_len_bytes: len,
            }),
        }
    }

    /// Replaces the whole contents of `file` with `bytes`, durably: media damage (a segment
    /// overwritten by garbage, say), not a write of the program.
    pub fn replace_contents(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DiskError> {
        let inode = self.inode_mut(file)?;
        inode.data = bytes.to_vec();
        inode.sync();
        Ok(())
    }

    /// Removes `file` durably: a file lost to damage or to an operator's mistake.
    pub fn lose_file(&mut self, file: &Path) -> Result<(), DiskError> {
        let inode = self.names.remove(file).ok_or_else(|| DiskError::NotFound {
            path: file.to_path_buf(),
        })?;
        self.durable_names.retain(|_, durable| *durable != inode);
        self.collect_garbage();
        Ok(())
    }

    /// While `fail` is set, [`Disk::sync`] and [`Disk::sync_dir`] fail with
    /// [`DiskError::Injected`] and make nothing durable.
    pub fn set_syncs_fail(&mut self, fail: bool) {
        self.syncs_fail = fail;
        self.syncs_before_failing = None;
    }

    /// Lets the next `count` syncs (of files or directories) succeed, and makes every one
    /// after them fail as under [`MemDisk::set_syncs_fail`]: a crash at a chosen step of a
    /// sequence of writes.
    pub fn fail_syncs_after(&mut self, count: u64) {
        self.syncs_fail = false;
        self.syncs_before_failing = Some(count);
    }

    /// How many successful [`Disk::sync`] calls were made.
    pub fn sync_count(&self) -> u64 {
        self.file_syncs
    }

    /// How many successful [`Disk::sync_dir`] calls were made.
    pub fn dir_sync_count(&self) -> u64 {
        self.dir_syncs
    }

    /// How many bytes of `file` a crash now would lose (0 for a missing file).
    pub fn unsynced_bytes(&self, file: &Path) -> u64 {
        self.names
            .get(file)
            .and_then(|inode| self.inodes.get(inode))
            .map_or(0, Inode::unsynced_tail_bytes)
    }

    fn inode(&self, file: &Path) -> Result<&Inode, DiskError> {
        self.names
            .get(file)
            .and_then(|inode| self.inodes.get(inode))
            .ok_or_else(|| DiskError::NotFound {
                path: file.to_path_buf(),
            })
    }

    fn inode_mut(&mut self, file: &Path) -> Result<&mut Inode, DiskError> {
        self.names
            .get(file)
            .and_then(|inode| self.inodes.get_mut(inode))
            .ok_or_else(|| DiskError::NotFound {
                path: file.to_path_buf(),
            })
    }

    fn collect_garbage(&mut self) {
        let names = &self.names;
        let durable = &self.durable_names;
        self.inodes
            .retain(|id, _| names.values().any(|n| n == id) || durable.values().any(|n| n == id));
    }

    fn check_sync(&mut self, op: &'static str, path: &Path) -> Result<(), DiskError> {
        match &mut self.syncs_before_failing {
            Some(0) => self.syncs_fail = true,
            Some(left) => *left -= 1,
            None => {}
        }
        if self.syncs_fail {
            return Err(DiskError::Injected {
                op,
                path: path.to_path_buf(),
            });
        }
        Ok(())
    }
}

impl Disk for MemDisk {
    fn create_dir_all(&mut self, _dir: &Path) -> Result<(), DiskError> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>, DiskError> {
        let mut names: Vec<String> = self
            .names
            .keys()
            .filter(|path| in_dir(path, dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn create(&mut self, file: &Path) -> Result<(), DiskError> {
        if self.names.contains_key(file) {
            return Err(DiskError::AlreadyExists {
                path: file.to_path_buf(),
            });
        }
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::default());
        self.names.insert(file.to_path_buf(), id);
        Ok(())
    }

    fn append(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DiskError> {
        self.inode_mut(file)?.data.extend_from_slice(bytes);
        Ok(())
    }

    fn write_at(&mut self, file: &Path, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        let Ok(offset) = usize::try_from(offset) else {
            return Err(DiskError::Io {
                op: "write",
                path: file.to_path_buf(),
                source: std::io::Error::other("offset beyond the address space"),
            });
        };
        self.inode_mut(file)?.write_at(offset, bytes);
        Ok(())
    }

    fn read(&self, file: &Path, offset: u64, len_bytes: u64) -> Result<Vec<u8>, DiskError> {
        let data = &self.inode(file)?.data;
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len_bytes).ok())
            .and_then(|(start, len)| Some(start..start.checked_add(len)?));
        match range.and_then(|range| data.get(range)) {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(DiskError::ShortRead {
                path: file.to_path_buf(),
                offset,
                len_bytes,
                file_len_bytes: data.len() as u64,
            }),
        }
    }

    fn read_all(&self, file: &Path) -> Result<Vec<u8>, DiskError> {
        Ok(self.inode(file)?.data.clone())
    }

    fn len(&self, file: &Path) -> Result<u64, DiskError> {
        Ok(self.inode(file)?.data.len() as u64)
    }

    fn sync(&mut self, file: &Path) -> Result<(), DiskError> {
        self.inode(file)?;
        self.check_sync("sync", file)?;
        self.inode_mut(file)?.sync();
        self.file_syncs += 1;
        Ok(())
    }

    fn sync_dir(&mut self, dir: &Path) -> Result<(), DiskError> {
        self.check_sync("sync_dir", dir)?;
        self.durable_names.retain(|path, _| !in_dir(path, dir));
        for (path, inode) in &self.names {
            if in_dir(path, dir) {
                self.durable_names.insert(path.clone(), *inode);
            }
        }
        self.collect_garbage();
        self.dir_syncs += 1;
        Ok(())
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), DiskError> {
        let inode = self.names.remove(from).ok_or_else(|| DiskError::NotFound {
            path: from.to_path_buf(),
        })?;
        self.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn remove(&mut self, file: &Path) -> Result<(), DiskError> {
        self.names.remove(file).ok_or_else(|| DiskError::NotFound {
            path: file.to_path_buf(),
        })?;
        Ok(())
    }

    fn truncate(&mut self, file: &Path, len_bytes: u64) -> Result<(), DiskError> {
        let inode = self.inode_mut(file)?;
        let len = usize::try_from(len_bytes).map_err(|_| DiskError::ShortRead {
            path: file.to_path_buf(),
            offset: len_bytes,
            len_bytes: 0,
            file_len_bytes: inode.data.len() as u64,
        })?;
        inode.truncate(len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> PathBuf {
        Path::new("/d").join(name)
    }

    #[test]
    fn unsynced_appends_and_truncations_are_undone_by_a_crash() {
        let mut disk = MemDisk::new();
        disk.create(&p("a")).unwrap();
        disk.sync_dir(Path::new("/d")).unwrap();
        disk.append(&p("a"), b"hello").unwrap();
        disk.sync(&p("a")).unwrap();
        disk.truncate(&p("a"), 2).unwrap();
        disk.append(&p("a"), b"y!").unwrap();
        assert_eq!(disk.read_all(&p("a")).unwrap(), b"hey!");
        disk.crash();
        assert_eq!(disk.read_all(&p("a")).unwrap(), b"hello");
    }

    #[test]
    fn a_torn_crash_keeps_a_prefix_of_the_unsynced_tail() {
        let mut disk = MemDisk::new();
        disk.create(&p("a")).unwrap();
        disk.sync_dir(Path::new("/d")).unwrap();
        disk.append(&p("a"), b"abc").unwrap();
        disk.sync(&p("a")).unwrap();
        disk.append(&p("a"), b"defg").unwrap();
        disk.crash_tearing(|_, unsynced| {
            assert_eq!(unsynced, 4);
            2
        });
        assert_eq!(disk.read_all(&p("a")).unwrap(), b"abcde");
        assert_eq!(disk.unsynced_bytes(&p("a")), 0);
    }

    #[test]
    fn directory_changes_need_a_directory_sync() {
        let mut disk = MemDisk::new();
        let dir = Path::new("/d");
        disk.create(&p("kept")).unwrap();
        disk.sync_dir(dir).unwrap();
        disk.create(&p("lost")).unwrap();
        disk.sync(&p("lost")).unwrap();
        disk.remove(&p("kept")).unwrap();
        assert_eq!(disk.list(dir).unwrap(), vec!["lost".to_owned()]);
        disk.crash();
        assert_eq!(disk.list(dir).unwrap(), vec!["kept".to_owned()]);

        disk.rename(&p("kept"), &p("moved")).unwrap();
        disk.sync_dir(dir).unwrap();
        disk.crash();
        assert_eq!(disk.list(dir).unwrap(), vec!["moved".to_owned()]);
    }

    #[test]
    fn failing_syncs_make_nothing_durable() {
        let mut disk = MemDisk::new();
        disk.create(&p("a")).unwrap();
        disk.sync_dir(Path::new("/d")).unwrap();
        disk.append(&p("a"), b"x").unwrap();
        disk.set_syncs_fail(true);
        assert!(matches!(
            disk.sync(&p("a")),
            Err(DiskError::Injected { .. })
        ));
        disk.crash();
        assert_eq!(disk.read_all(&p("a")).unwrap(), b"");
        assert_eq!(disk.sync_count(), 0);
    }
}

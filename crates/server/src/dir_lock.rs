//! One process per data directory: `skiff serve` holds an exclusive lock on the directory's
//! `LOCK` file (`flock`) for as long as it runs, and a second process started on the same
//! directory — a supervisor's copy beside a hand-started one, say — refuses to start instead
//! of writing the same log (two writers would interleave their batches and cut each other's
//! files at recovery). The kernel drops the lock when the process ends, however it ends, so a
//! crash never leaves a directory locked.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// The lock on a data directory, held until this is dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Creates `data_dir` if need be and locks it for this process; an error if another process
/// holds it.
pub fn lock(data_dir: &Path) -> anyhow::Result<DirLock> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    // Never through a link, nor anything but a regular file (a pipe, a directory, a socket):
    // the lock is this directory's own file.
    let file = skiff_wal::fs_disk::open_regular(
        &path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        "open the lock file",
    )
    .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: a plain call on a descriptor that `file` keeps open.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let error = std::io::Error::last_os_error();
        if error.kind() == std::io::ErrorKind::WouldBlock {
            bail!(
                "the data directory {} is in use by another skiff process (it holds {}): \
                 one process per data directory",
                data_dir.display(),
                path.display()
            );
        }
        return Err(error).with_context(|| format!("locking {}", path.display()));
    }
    Ok(DirLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory locked by one holder refuses the next until the first lets go; the lock
    /// file stays (a later start reuses it) and a missing directory is created.
    #[test]
    fn a_data_directory_is_locked_by_one_holder_at_a_time() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("node1");
        let first = lock(&dir).expect("a new directory locks");
        let refused = lock(&dir).expect_err("held by the first");
        let message = format!("{refused:#}");
        assert!(
            message.contains("in use by another skiff process") && message.contains("node1"),
            "{message}"
        );
        drop(first);
        let again = lock(&dir).expect("free once the holder is gone");
        assert!(dir.join(LOCK_FILE).exists());
        drop(again);
    }

    /// Whatever else sits under the lock's name — a directory, a link to a file elsewhere —
    /// is refused with an error naming it, and the link's target is left alone.
    #[test]
    fn a_directory_a_link_or_a_pipe_under_the_lock_name_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (with_dir, with_link, with_pipe) = (
            root.path().join("a"),
            root.path().join("b"),
            root.path().join("c"),
        );
        std::fs::create_dir_all(with_dir.join(LOCK_FILE)).unwrap();
        std::fs::create_dir_all(&with_link).unwrap();
        let target = root.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, with_link.join(LOCK_FILE)).unwrap();
        std::fs::create_dir_all(&with_pipe).unwrap();
        let fifo = std::ffi::CString::new(
            with_pipe
                .join(LOCK_FILE)
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates the name.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        for dir in [&with_dir, &with_link, &with_pipe] {
            let refused = lock(dir).expect_err("not a lock file");
            assert!(format!("{refused:#}").contains(LOCK_FILE), "{refused:#}");
        }
        assert!(!target.exists(), "the link's target was not created");
    }
}

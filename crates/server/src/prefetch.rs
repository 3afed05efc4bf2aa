//! Files read whole ahead of their turn: while recovery checks one segment, the next one is
//! read on a thread of its own ([`Disk::read_all_ahead`]), so the copy out of the page cache
//! overlaps with the checksums. Two buffers at most (the one being checked and the one being
//! read, each a segment's size plus 1/8 room), reused from one segment to the next, and
//! dropped when recovery says it is done.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use skiff_wal::{Disk, DiskError, FsDisk};

/// The whole read under way, if any, and the buffer the next one reuses.
#[derive(Debug, Default)]
pub struct WholeReads {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The file being read, and the thread reading it.
    pending: Option<(PathBuf, Reading)>,
    spare: Vec<u8>,
}

/// A thread reading a file whole: its bytes, or why not.
type Reading = JoinHandle<Result<Vec<u8>, DiskError>>;

impl WholeReads {
    /// Starts reading `next` whole on a thread, or with `None` drops the buffer kept.
    pub fn read_ahead(&self, next: Option<&Path>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(next) = next else {
            *state = State::default();
            return;
        };
        let mut buffer = std::mem::take(&mut state.spare);
        let path = next.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("skiff-read-segment".to_owned())
            .spawn(move || {
                FsDisk::new()
                    .read_all_into(&path, &mut buffer)
                    .map(|()| buffer)
            });
        // Without a thread the file is simply read when asked for.
        state.pending = spawned.ok().map(|handle| (next.to_path_buf(), handle));
    }

    /// `file` is about to change (written, cut, renamed or removed): a read of it under way
    /// is let go, so that it is never handed out for the file's later bytes.
    pub fn forget(&self, file: &Path) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.pending.as_ref().is_some_and(|(path, _)| path == file) {
            state.pending = None;
        }
    }

    /// Reads `file` whole into `buffer`: what was read ahead if it is that file, else from
    /// `disk`. A thread that panicked is an error, not a half-read file.
    pub fn read_all_into(
        &self,
        disk: &FsDisk,
        file: &Path,
        buffer: &mut Vec<u8>,
    ) -> Result<(), DiskError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some((path, handle)) = state.pending.take() else {
            return disk.read_all_into(file, buffer);
        };
        let read = handle.join().unwrap_or_else(|_| {
            Err(DiskError::Io {
                op: "read ahead",
                path: path.clone(),
                source: std::io::Error::other("the thread reading it panicked"),
            })
        });
        if path != file {
            // Read ahead for nothing: another file is asked for.
            state.spare = read.unwrap_or_default();
            return disk.read_all_into(file, buffer);
        }
        let read = read?;
        state.spare = std::mem::replace(buffer, read);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_read_ahead_is_the_file_and_another_file_is_read_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        std::fs::write(&first, b"first segment").unwrap();
        std::fs::write(&second, b"second").unwrap();
        let (reads, disk) = (WholeReads::default(), FsDisk::new());
        let mut buffer = b"left over".to_vec();
        reads.read_ahead(Some(&first));
        reads.read_all_into(&disk, &first, &mut buffer).unwrap();
        assert_eq!(buffer, b"first segment");
        // Read ahead, then another file asked for: that one is read.
        reads.read_ahead(Some(&first));
        reads.read_all_into(&disk, &second, &mut buffer).unwrap();
        assert_eq!(buffer, b"second");
        // A file missing when read ahead is missing when asked for.
        let missing = dir.path().join("missing");
        reads.read_ahead(Some(&missing));
        assert!(matches!(
            reads.read_all_into(&disk, &missing, &mut buffer),
            Err(DiskError::NotFound { .. })
        ));
        reads.read_ahead(None);
        assert!(
            reads.state.lock().unwrap().spare.capacity() == 0,
            "nothing kept"
        );
    }
}

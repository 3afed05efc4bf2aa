//! The file operations the WAL needs, as a trait: a real file system and a simulated disk
//! are two implementations of it.
//!
//! The contract is deliberately small and states what is durable when:
//! - `append` and `truncate` change a file's contents, but only `sync` of that file makes the
//!   change survive a crash;
//! - `create`, `remove` and `rename` change a directory, but only `sync_dir` of the directory
//!   makes the change survive a crash (a synced file whose name was never made durable may
//!   vanish);
//! - reads see every change made so far, durable or not.

use std::path::{Path, PathBuf};

/// A whole file's bytes as [`Disk::read_whole`] gives them: read into memory, or mapped.
pub type WholeFile = Box<dyn std::ops::Deref<Target = [u8]> + Send>;

/// Why a disk operation failed. Every variant names the file (or directory) involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The file or directory does not exist.
    #[error("{}: no such file or directory", .path.display())]
    NotFound {
        /// The path that was missing.
        path: PathBuf,
    },
    /// `create` found a file already there.
    #[error("{}: already exists", .path.display())]
    AlreadyExists {
        /// The path that exists.
        path: PathBuf,
    },
    /// A read asked for bytes past the end of the file.
    #[error(
        "{}: read of {len_bytes} bytes at offset {offset} goes past the end ({file_len_bytes} bytes)",
        .path.display()
    )]
    ShortRead {
        /// The file read.
        path: PathBuf,
        /// Where the read started.
        offset: u64,
        /// How many bytes were asked for.
        len_bytes: u64,
        /// How long the file is.
        file_len_bytes: u64,
    },
    /// A name the log uses is taken by something other than a regular file: a directory, a
    /// symbolic link, a pipe, a socket or a device. It is refused rather than followed or
    /// waited on.
    #[error("{}: not a regular file but {kind}", .path.display())]
    NotAFile {
        /// The path that names it.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A fault injected by a simulated disk (see [`MemDisk`](crate::MemDisk)).
    #[error("{}: injected fault in {op}", .path.display())]
    Injected {
        /// The operation that failed.
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
    },
    /// The operating system reported an error.
    #[error("{}: {op} failed: {source}", .path.display())]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The minimal file operations of a write-ahead log.
///
/// Implementations must be deterministic functions of the calls made on them (a simulated disk
/// may add faults, but from its own seeded choices). Paths are used as given: the WAL always
/// passes `dir.join(file_name)`.
pub trait Disk {
    /// Creates `dir` and any missing parents; succeeds if it already exists.
    fn create_dir_all(&mut self, dir: &Path) -> Result<(), DiskError>;
    /// The names (not paths) of everything directly in `dir`, sorted: files, and anything
    /// else under a name (a directory, a link, a pipe), so that a name the log uses but
    /// something other than a file took is seen, not taken for a missing file (reading it
    /// then refuses).
    fn list(&self, dir: &Path) -> Result<Vec<String>, DiskError>;
    /// Creates an empty file; fails with [`DiskError::AlreadyExists`] if there is one.
    /// The new name is durable only after [`Disk::sync_dir`].
    fn create(&mut self, file: &Path) -> Result<(), DiskError>;
    /// Appends `bytes` at the end of `file`. Durable only after [`Disk::sync`].
    fn append(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DiskError>;
    /// Writes `bytes` at `offset` of `file`, over what is there and past its end if need be (a
    /// gap reads as zeros). Durable only after [`Disk::sync`].
    fn write_at(&mut self, file: &Path, offset: u64, bytes: &[u8]) -> Result<(), DiskError>;
    /// Reads exactly `len_bytes` bytes at `offset`; fails with [`DiskError::ShortRead`] if
    /// the file is shorter.
    fn read(&self, file: &Path, offset: u64, len_bytes: u64) -> Result<Vec<u8>, DiskError>;
    /// [`read`](Disk::read) into `buffer` (replacing what it held), reusing its allocation.
    fn read_into(
        &self,
        file: &Path,
        offset: u64,
        len_bytes: u64,
        buffer: &mut Vec<u8>,
    ) -> Result<(), DiskError> {
        *buffer = self.read(file, offset, len_bytes)?;
        Ok(())
    }
    /// Reads the whole file.
    fn read_all(&self, file: &Path) -> Result<Vec<u8>, DiskError>;
    /// The whole file's bytes, for reading while the caller changes nothing in the file. An
    /// implementation may map the file rather than copy it (a 64 MiB copy into fresh memory
    /// costs a restart more than checking the bytes does). By default it is read.
    fn read_whole(&self, file: &Path) -> Result<WholeFile, DiskError> {
        Ok(Box::new(self.read_all(file)?))
    }
    /// A hint while reading files whole in turn (recovery reads every segment): `Some(file)`
    /// is read whole next — an implementation may start bringing it in from the disk now.
    /// The default ignores it.
    fn read_whole_ahead(&self, _next: &Path) {}
    /// The file's current length in bytes.
    fn len(&self, file: &Path) -> Result<u64, DiskError>;
    /// Makes the file's contents durable (`fdatasync`).
    fn sync(&mut self, file: &Path) -> Result<(), DiskError>;
    /// Makes the directory's entries (creations, removals, renames) durable.
    fn sync_dir(&mut self, dir: &Path) -> Result<(), DiskError>;
    /// Renames `from` to `to`, replacing `to` if it exists. Durable after [`Disk::sync_dir`].
    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), DiskError>;
    /// Removes a file. Durable after [`Disk::sync_dir`].
    fn remove(&mut self, file: &Path) -> Result<(), DiskError>;
    /// Cuts the file to `len_bytes` (which must not exceed its length). Durable after
    /// [`Disk::sync`].
    fn truncate(&mut self, file: &Path, len_bytes: u64) -> Result<(), DiskError>;
}

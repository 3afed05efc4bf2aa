//! [`FsDisk`]: the [`Disk`] trait over the real file system.

use std::fs::{self, File, FileType, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::disk::{Disk, DiskError, WholeFile};

/// A [`Disk`] on the real file system: `sync` is `fdatasync` ([`File::sync_data`]) and
/// `sync_dir` opens the directory and calls [`File::sync_all`] on it.
///
/// It keeps the file last written open, for reading and writing: a run of writes to the active
/// segment does not reopen it, and neither do the reads that fetch each entry back from it to
/// apply (an open, stat, seek and close per entry were four of a leader's ~34 syscalls per
/// one-client write). Every other file is opened afresh for each operation.
#[derive(Debug, Default)]
pub struct FsDisk {
    /// The file last written, kept open for the next write, sync or read.
    appender: Option<Appender>,
}

/// An open handle on the file this disk wrote last (read and write, not in append mode:
/// positional writes need that).
#[derive(Debug)]
struct Appender {
    path: PathBuf,
    file: File,
    /// Bytes known to be in the file from this disk's own writes through the handle: a read
    /// within them needs no `stat`. A read past them stats the file; a cut closes the handle.
    known_len_bytes: u64,
}

impl FsDisk {
    /// A disk over the real file system.
    pub fn new() -> FsDisk {
        FsDisk::default()
    }

    /// Closes the cached handle if it refers to `file`.
    fn forget(&mut self, file: &Path) {
        if self.appender.as_ref().is_some_and(|open| open.path == file) {
            self.appender = None;
        }
    }

    fn appender(&mut self, file: &Path) -> Result<&mut Appender, DiskError> {
        let cached = self.appender.take().filter(|open| open.path == file);
        let appender = match cached {
            Some(appender) => appender,
            None => Appender {
                path: file.to_path_buf(),
                file: open_regular(
                    file,
                    OpenOptions::new().read(true).write(true),
                    "open for writing",
                )?,
                known_len_bytes: 0,
            },
        };
        Ok(self.appender.insert(appender))
    }

    /// The kept handle, if it is on `file`.
    fn kept(&self, file: &Path) -> Option<&Appender> {
        self.appender.as_ref().filter(|open| open.path == file)
    }
}

/// Opens `file` with `options` only if it is a regular file, and otherwise refuses it with
/// [`DiskError::NotAFile`]: a symbolic link is not followed (`O_NOFOLLOW`) and a pipe is not
/// waited on (`O_NONBLOCK`, which changes nothing for a regular file). `options`' custom
/// flags are replaced with these. Every file the log reads or writes is opened through here,
/// but for [`Disk::create`]'s (`O_CREAT | O_EXCL` neither follows a link nor opens what is
/// there).
pub fn open_regular(
    file: &Path,
    options: &mut OpenOptions,
    op: &'static str,
) -> Result<File, DiskError> {
    open_regular_with_len(file, options, op).map(|(opened, _)| opened)
}

/// `fdatasync` of `file`, opened afresh (as [`open_regular`]) for it: for a thread that syncs
/// what another writes, without a handle that could outlive the file.
pub fn sync_file(file: &Path) -> Result<(), DiskError> {
    open_regular(file, OpenOptions::new().read(true), "open for sync")?
        .sync_data()
        .map_err(|e| io_error("fsync", file, e))
}

/// [`open_regular`], with the file's length from the same `fstat`.
fn open_regular_with_len(
    file: &Path,
    options: &mut OpenOptions,
    op: &'static str,
) -> Result<(File, u64), DiskError> {
    let opened = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| match fs::symlink_metadata(file) {
            // A link (ELOOP), a directory opened to write (EISDIR), a socket or a pipe
            // nobody reads (ENXIO): say what took the name.
            Ok(meta) if !meta.file_type().is_file() => not_a_file(file, meta.file_type()),
            _ => io_error(op, file, e),
        })?;
    let meta = opened.metadata().map_err(|e| io_error("stat", file, e))?;
    if !meta.file_type().is_file() {
        return Err(not_a_file(file, meta.file_type()));
    }
    Ok((opened, meta.len()))
}

fn not_a_file(file: &Path, file_type: FileType) -> DiskError {
    let kind = if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a pipe"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "something else"
    };
    DiskError::NotAFile {
        path: file.to_path_buf(),
        kind,
    }
}

/// Reads `len_bytes` at `offset` of `handle` (the file `file`, `known_len_bytes` long at
/// least) into `buffer`. The length is checked before the buffer grows: a hostile offset or
/// length fails with [`DiskError::ShortRead`] and allocates nothing.
fn read_at(
    handle: &File,
    file: &Path,
    known_len_bytes: u64,
    offset: u64,
    len_bytes: u64,
    buffer: &mut Vec<u8>,
) -> Result<(), DiskError> {
    let end = offset.checked_add(len_bytes);
    let file_len_bytes = match end {
        Some(end) if end <= known_len_bytes => known_len_bytes,
        _ => handle
            .metadata()
            .map_err(|e| io_error("stat", file, e))?
            .len(),
    };
    let short_read = || DiskError::ShortRead {
        path: file.to_path_buf(),
        offset,
        len_bytes,
        file_len_bytes,
    };
    let len = usize::try_from(len_bytes)
        .ok()
        .filter(|_| end.is_some_and(|end| end <= file_len_bytes))
        .ok_or_else(short_read)?;
    // Bytes left from the last read are overwritten, not zeroed first: only growth is.
    buffer.resize(len, 0);
    handle
        .read_exact_at(buffer, offset)
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => short_read(),
            _ => io_error("read", file, e),
        })
}

/// Where a write of `bytes` at `offset` ends.
fn end_of(offset: u64, bytes: &[u8]) -> u64 {
    offset.saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX))
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> DiskError {
    let path = path.to_path_buf();
    match source.kind() {
        io::ErrorKind::NotFound => DiskError::NotFound { path },
        io::ErrorKind::AlreadyExists => DiskError::AlreadyExists { path },
        _ => DiskError::Io { op, path, source },
    }
}

impl Disk for FsDisk {
    fn create_dir_all(&mut self, dir: &Path) -> Result<(), DiskError> {
        if dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(|e| io_error("create directory", dir, e))?;
        // The new directory's own name lives in its parent.
        match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.sync_dir(parent),
            _ => Ok(()),
        }
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>, DiskError> {
        let mut names = Vec::new();
        for item in fs::read_dir(dir).map_err(|e| io_error("list", dir, e))? {
            let item = item.map_err(|e| io_error("list", dir, e))?;
            // Whatever took a name is listed: a directory or a link under the last segment's
            // name must refuse recovery, not read as a segment lost. A name that is not
            // UTF-8 is none of the log's.
            if let Some(name) = item.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn create(&mut self, file: &Path) -> Result<(), DiskError> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(file)
            .map_err(|e| io_error("create", file, e))?;
        Ok(())
    }

    fn append(&mut self, file: &Path, bytes: &[u8]) -> Result<(), DiskError> {
        let appender = self.appender(file)?;
        let handle = &mut appender.file;
        let written = handle
            .seek(SeekFrom::End(0))
            .and_then(|end| handle.write_all(bytes).map(|()| end));
        match written {
            Ok(end) => {
                appender.known_len_bytes = appender.known_len_bytes.max(end_of(end, bytes));
                Ok(())
            }
            Err(e) => {
                // The handle's position is unknown after a failed write: reopen next time.
                self.forget(file);
                Err(io_error("append", file, e))
            }
        }
    }

    fn write_at(&mut self, file: &Path, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        let appender = self.appender(file)?;
        if let Err(e) = appender.file.write_all_at(bytes, offset) {
            self.forget(file);
            return Err(io_error("write", file, e));
        }
        appender.known_len_bytes = appender.known_len_bytes.max(end_of(offset, bytes));
        Ok(())
    }

    fn read(&self, file: &Path, offset: u64, len_bytes: u64) -> Result<Vec<u8>, DiskError> {
        let mut buffer = Vec::new();
        self.read_into(file, offset, len_bytes, &mut buffer)?;
        Ok(buffer)
    }

    fn read_into(
        &self,
        file: &Path,
        offset: u64,
        len_bytes: u64,
        buffer: &mut Vec<u8>,
    ) -> Result<(), DiskError> {
        if let Some(kept) = self.kept(file) {
            return read_at(
                &kept.file,
                file,
                kept.known_len_bytes,
                offset,
                len_bytes,
                buffer,
            );
        }
        let (handle, len) =
            open_regular_with_len(file, OpenOptions::new().read(true), "open for read")?;
        read_at(&handle, file, len, offset, len_bytes, buffer)
    }

    fn read_all(&self, file: &Path) -> Result<Vec<u8>, DiskError> {
        let mut bytes = Vec::new();
        open_regular(file, OpenOptions::new().read(true), "open for read")?
            .read_to_end(&mut bytes)
            .map_err(|e| io_error("read", file, e))?;
        Ok(bytes)
    }

    /// Maps the file rather than copying it: recovery reads every segment whole, and a copy
    /// would fault in (and the kernel zero) a fresh 64 MiB buffer besides copying. A file
    /// that cannot be mapped (a file system without `mmap`) is read instead.
    fn read_whole(&self, file: &Path) -> Result<WholeFile, DiskError> {
        let (opened, len) = open_regular_with_len(file, OpenOptions::new().read(true), "open")?;
        if len == 0 {
            return Ok(Box::new(Vec::new()));
        }
        // SAFETY: the mapping is read only, and nothing in this process changes the file while
        // it is held (the `Disk::read_whole` contract; recovery drops each mapping, and joins
        // any thread holding one, before it cuts a file). The pages of a file another process
        // cuts meanwhile, or that the disk cannot read, fault with `SIGBUS`: the data
        // directory belongs to the node alone, and an unreadable disk stops it either way
        // (SECURITY.md).
        match unsafe { memmap2::Mmap::map(&opened) } {
            Ok(mapped) => Ok(Box::new(mapped)),
            Err(_) => Ok(Box::new(self.read_all(file)?)),
        }
    }

    fn read_whole_ahead(&self, next: &Path) {
        // The next file's pages are asked of the disk now, while this one is checked; a hint,
        // so a failure changes nothing.
        #[cfg(target_os = "linux")]
        if let Ok(opened) = open_regular(next, OpenOptions::new().read(true), "open") {
            use std::os::fd::AsRawFd;
            // SAFETY: a plain call on a descriptor that outlives it.
            unsafe {
                libc::posix_fadvise(opened.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED);
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = next;
    }

    fn len(&self, file: &Path) -> Result<u64, DiskError> {
        let meta = fs::symlink_metadata(file).map_err(|e| io_error("stat", file, e))?;
        if !meta.file_type().is_file() {
            return Err(not_a_file(file, meta.file_type()));
        }
        Ok(meta.len())
    }

    fn sync(&mut self, file: &Path) -> Result<(), DiskError> {
        match self.kept(file) {
            Some(kept) => kept
                .file
                .sync_data()
                .map_err(|e| io_error("fsync", file, e)),
            None => sync_file(file),
        }
    }

    fn sync_dir(&mut self, dir: &Path) -> Result<(), DiskError> {
        File::open(dir)
            .and_then(|handle| handle.sync_all())
            .map_err(|e| io_error("fsync directory", dir, e))
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), DiskError> {
        self.forget(from);
        self.forget(to);
        fs::rename(from, to).map_err(|e| io_error("rename", from, e))
    }

    fn remove(&mut self, file: &Path) -> Result<(), DiskError> {
        self.forget(file);
        // A link or a pipe goes as a name (a link's target stays); a directory is refused.
        fs::remove_file(file).map_err(|e| match fs::symlink_metadata(file) {
            Ok(meta) if meta.is_dir() => not_a_file(file, meta.file_type()),
            _ => io_error("remove", file, e),
        })
    }

    fn truncate(&mut self, file: &Path, len_bytes: u64) -> Result<(), DiskError> {
        self.forget(file);
        open_regular(file, OpenOptions::new().write(true), "open to truncate")?
            .set_len(len_bytes)
            .map_err(|e| io_error("truncate", file, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk() -> FsDisk {
        FsDisk::new()
    }

    #[test]
    fn reads_through_the_kept_handle_see_what_this_disk_wrote_since() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("seg");
        let mut disk = disk();
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"first").unwrap();
        assert_eq!(disk.read(&segment, 0, 5).unwrap(), b"first");
        // The handle is kept; the next entry lands past the length it knew.
        disk.write_at(&segment, 5, b"second").unwrap();
        assert_eq!(disk.read(&segment, 5, 6).unwrap(), b"second");
        disk.append(&segment, b"third").unwrap();
        let mut buffer = Vec::new();
        disk.read_into(&segment, 11, 5, &mut buffer).unwrap();
        assert_eq!(buffer, b"third");
    }

    #[test]
    fn a_file_replaced_or_removed_is_not_read_through_its_old_handle() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, staged) = (dir.path().join("seg"), dir.path().join("staged"));
        let mut disk = disk();
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"old bytes").unwrap();
        assert_eq!(disk.read(&segment, 0, 3).unwrap(), b"old");
        disk.create(&staged).unwrap();
        disk.write_at(&staged, 0, b"new bytes").unwrap();
        disk.rename(&staged, &segment).unwrap();
        assert_eq!(disk.read(&segment, 0, 3).unwrap(), b"new");
        disk.remove(&segment).unwrap();
        assert!(matches!(
            disk.read(&segment, 0, 3),
            Err(DiskError::NotFound { .. })
        ));
    }

    #[test]
    fn a_file_this_disk_did_not_write_last_is_read_afresh_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, snapshot) = (dir.path().join("seg"), dir.path().join("snap.tmp"));
        let mut disk = disk();
        std::fs::write(&snapshot, b"first snapshot").unwrap();
        assert_eq!(disk.read(&snapshot, 0, 5).unwrap(), b"first");
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"entry").unwrap();
        assert_eq!(disk.read(&segment, 0, 5).unwrap(), b"entry");
        // Replaced behind this disk's back, as the snapshot thread does with its file.
        std::fs::remove_file(&snapshot).unwrap();
        std::fs::write(&snapshot, b"later snapshot").unwrap();
        assert_eq!(disk.read(&snapshot, 0, 5).unwrap(), b"later");
        assert_eq!(disk.read(&segment, 0, 5).unwrap(), b"entry");
    }

    #[test]
    fn a_read_past_what_this_disk_wrote_asks_the_file_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("seg");
        let mut disk = disk();
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"ours").unwrap();
        // Grown by someone else: the kept handle's known length is only a lower bound.
        let mut other = OpenOptions::new().append(true).open(&segment).unwrap();
        other.write_all(b" and theirs").unwrap();
        assert_eq!(disk.read(&segment, 0, 15).unwrap(), b"ours and theirs");
        assert!(matches!(
            disk.read(&segment, 10, 6),
            Err(DiskError::ShortRead {
                file_len_bytes: 15,
                ..
            })
        ));
    }

    #[test]
    fn reads_past_the_end_fail_without_growing_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("seg");
        let mut disk = disk();
        disk.create(&segment).unwrap();
        disk.write_at(&segment, 0, b"0123456789").unwrap();
        assert_eq!(disk.read(&segment, 0, 10).unwrap(), b"0123456789");
        let mut buffer = Vec::new();
        for (offset, len) in [(8, 3), (0, u64::MAX), (u64::MAX, 1), (11, 0)] {
            let read = disk.read_into(&segment, offset, len, &mut buffer);
            assert!(
                matches!(
                    read,
                    Err(DiskError::ShortRead {
                        file_len_bytes: 10,
                        ..
                    })
                ),
                "{offset}+{len}: {read:?}"
            );
            assert!(buffer.capacity() < 1024);
        }
        // Cut under the kept handle: the bytes past the cut are gone.
        disk.truncate(&segment, 4).unwrap();
        assert!(disk.read(&segment, 2, 4).is_err());
        assert_eq!(disk.read(&segment, 0, 4).unwrap(), b"0123");
    }

    #[test]
    fn a_whole_read_is_the_file_as_it_is_and_a_missing_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let (long, empty) = (dir.path().join("long"), dir.path().join("empty"));
        let long_bytes: Vec<u8> = (0..300_000u32).map(|k| (k % 251) as u8).collect();
        fs::write(&long, &long_bytes).unwrap();
        fs::write(&empty, b"").unwrap();
        let disk = disk();
        disk.read_whole_ahead(&long);
        assert_eq!(&**disk.read_whole(&long).unwrap(), &long_bytes[..]);
        assert!(disk.read_whole(&empty).unwrap().is_empty());
        assert!(matches!(
            disk.read_whole(&dir.path().join("missing")),
            Err(DiskError::NotFound { .. })
        ));
        // A hint about a file that is not there is ignored.
        disk.read_whole_ahead(&dir.path().join("missing"));
    }

    /// Makes a pipe at `path`.
    fn make_pipe(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a plain call with a valid, NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_name_taken_by_anything_but_a_file_is_listed_and_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"a real file elsewhere").unwrap();
        let taken = [
            ("pipe", "a pipe"),
            ("directory", "a directory"),
            ("link", "a symbolic link"),
            ("socket", "a socket"),
        ];
        make_pipe(&dir.path().join("pipe"));
        fs::create_dir(dir.path().join("directory")).unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(dir.path().join("socket")).unwrap();
        let mut listed = disk().list(dir.path()).unwrap();
        listed.retain(|name| name != "target");
        assert_eq!(listed, ["directory", "link", "pipe", "socket"]);

        // Each operation runs on a thread of its own: opening a pipe could wait for ever,
        // and a test that hangs says less than one that fails.
        let (done, outcomes) = std::sync::mpsc::channel();
        let root = dir.path().to_path_buf();
        std::thread::spawn(move || {
            for (name, kind) in taken {
                let path = root.join(name);
                let mut disk = disk();
                disk.read_whole_ahead(&path);
                let results: [(&str, Result<(), DiskError>); 7] = [
                    ("read", disk.read(&path, 0, 1).map(drop)),
                    ("read_all", disk.read_all(&path).map(drop)),
                    ("read_whole", disk.read_whole(&path).map(drop)),
                    ("len", disk.len(&path).map(drop)),
                    ("sync", disk.sync(&path)),
                    ("append", disk.append(&path, b"x")),
                    ("truncate", disk.truncate(&path, 0)),
                ];
                for (op, result) in results {
                    done.send((name, kind, op, result)).unwrap();
                }
            }
        });
        for _ in 0..taken.len() * 7 {
            let (name, kind, op, result) = outcomes
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("an operation on a name not a file waited instead of refusing");
            match result {
                Err(DiskError::NotAFile { path, kind: said }) => {
                    assert_eq!((path, said), (dir.path().join(name), kind), "{op}");
                }
                other => panic!("{op} on {name}: expected it refused, got {other:?}"),
            }
        }
        // Nothing was written through the link.
        assert_eq!(fs::read(&target).unwrap(), b"a real file elsewhere");
        // Removing takes a link or a pipe as a name; a directory is refused.
        let mut disk = disk();
        disk.remove(&dir.path().join("link")).unwrap();
        disk.remove(&dir.path().join("pipe")).unwrap();
        assert!(target.exists());
        match disk.remove(&dir.path().join("directory")) {
            Err(DiskError::NotAFile { kind, .. }) => assert_eq!(kind, "a directory"),
            other => panic!("expected the directory refused, got {other:?}"),
        }
    }
}

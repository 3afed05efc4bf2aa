//! [`FsDisk`]: the [`Disk`] trait over the real file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::disk::{Disk, DiskError};

/// A [`Disk`] on the real file system: `sync` is `fdatasync` ([`File::sync_data`]) and
/// `sync_dir` opens the directory and calls [`File::sync_all`] on it.
///
/// It keeps the file last written open, so a run of writes to the active segment does not
/// reopen it; every other operation opens the file it needs.
#[derive(Debug, Default)]
pub struct FsDisk {
    /// The file last written, kept open (for writing, not in append mode: positional writes
    /// need that) for the next write or sync.
    appender: Option<(PathBuf, File)>,
}

impl FsDisk {
    /// A disk over the real file system.
    pub fn new() -> FsDisk {
        FsDisk::default()
    }

    /// Closes the cached handle if it refers to `file`.
    fn forget(&mut self, file: &Path) {
        if matches!(&self.appender, Some((open, _)) if open == file) {
            self.appender = None;
        }
    }

    fn appender(&mut self, file: &Path) -> Result<&mut File, DiskError> {
        let cached = self.appender.take().filter(|(open, _)| open == file);
        let appender = match cached {
            Some(appender) => appender,
            None => {
                let handle = OpenOptions::new()
                    .write(true)
                    .open(file)
                    .map_err(|e| io_error("open for writing", file, e))?;
                (file.to_path_buf(), handle)
            }
        };
        Ok(&mut self.appender.insert(appender).1)
    }
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
            let is_file = item
                .file_type()
                .map_err(|e| io_error("list", dir, e))?
                .is_file();
            if let (true, Some(name)) = (is_file, item.file_name().to_str()) {
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
        let handle = self.appender(file)?;
        let written = handle
            .seek(SeekFrom::End(0))
            .and_then(|_| handle.write_all(bytes));
        if let Err(e) = written {
            // The handle's position is unknown after a failed write: reopen next time.
            self.forget(file);
            return Err(io_error("append", file, e));
        }
        Ok(())
    }

    fn write_at(&mut self, file: &Path, offset: u64, bytes: &[u8]) -> Result<(), DiskError> {
        use std::os::unix::fs::FileExt;
        let handle = self.appender(file)?;
        if let Err(e) = handle.write_all_at(bytes, offset) {
            self.forget(file);
            return Err(io_error("write", file, e));
        }
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
        let short_read = |file_len_bytes| DiskError::ShortRead {
            path: file.to_path_buf(),
            offset,
            len_bytes,
            file_len_bytes,
        };
        let mut handle = File::open(file).map_err(|e| io_error("open for read", file, e))?;
        let file_len_bytes = handle
            .metadata()
            .map_err(|e| io_error("stat", file, e))?
            .len();
        let fits = matches!(offset.checked_add(len_bytes), Some(end) if end <= file_len_bytes);
        let len = usize::try_from(len_bytes)
            .ok()
            .filter(|_| fits)
            .ok_or_else(|| short_read(file_len_bytes))?;
        handle
            .seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("seek", file, e))?;
        // Bytes left from the last read are overwritten, not zeroed first: only growth is.
        buffer.resize(len, 0);
        handle.read_exact(buffer).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => short_read(file_len_bytes),
            _ => io_error("read", file, e),
        })
    }

    fn read_all(&self, file: &Path) -> Result<Vec<u8>, DiskError> {
        fs::read(file).map_err(|e| io_error("read", file, e))
    }

    fn read_all_into(&self, file: &Path, buffer: &mut Vec<u8>) -> Result<(), DiskError> {
        buffer.clear();
        File::open(file)
            .and_then(|mut opened| opened.read_to_end(buffer))
            .map_err(|e| io_error("read", file, e))?;
        Ok(())
    }

    fn len(&self, file: &Path) -> Result<u64, DiskError> {
        Ok(fs::metadata(file)
            .map_err(|e| io_error("stat", file, e))?
            .len())
    }

    fn sync(&mut self, file: &Path) -> Result<(), DiskError> {
        let synced = match &self.appender {
            Some((open, handle)) if open == file => handle.sync_data(),
            _ => File::open(file)
                .map_err(|e| io_error("open for sync", file, e))?
                .sync_data(),
        };
        synced.map_err(|e| io_error("fsync", file, e))
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
        fs::remove_file(file).map_err(|e| io_error("remove", file, e))
    }

    fn truncate(&mut self, file: &Path, len_bytes: u64) -> Result<(), DiskError> {
        self.forget(file);
        OpenOptions::new()
            .write(true)
            .open(file)
            .and_then(|handle| handle.set_len(len_bytes))
            .map_err(|e| io_error("truncate", file, e))
    }
}

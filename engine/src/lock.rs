//! The exclusive lock on a data directory: `LOCK`, held with `flock` for the engine's life.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// # Errors
    /// [`Error::Locked`] when another process (or another `Engine` here) holds the directory.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                });
            }
            return Err(Error::io("flock", &path, err));
        }
        Ok(DirLock { _file: file })
    }
}

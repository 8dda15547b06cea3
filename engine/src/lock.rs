//! The exclusive lock on a data directory: `LOCK`, held with `flock` for the engine's life.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

pub(crate) struct DirLock {
    file: File,
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
        Ok(DirLock { file })
    }
}

impl Drop for DirLock {
    /// Unlocks before the file is closed. Closing alone releases the lock only once every
    /// descriptor of the open file is closed, and a child process this one starts holds a copy
    /// of each until it executes its program: an engine closed while another thread was
    /// starting a process could not be opened again at once (`Locked`), as a test saw.
    fn drop(&mut self) {
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process forked while the lock is held (its copy of the descriptor open until it
    /// executes a program, or here, exits) does not keep the directory locked after the
    /// lock is dropped.
    #[test]
    fn a_dropped_lock_is_free_while_a_child_still_holds_its_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(Error::Locked { .. })
        ));
        // SAFETY: the child only sleeps and exits (async-signal-safe calls); the parent kills
        // and reaps it below.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: in the forked child, only async-signal-safe calls.
            unsafe {
                libc::sleep(30);
                libc::_exit(0);
            }
        }
        drop(lock);
        let again = DirLock::acquire(dir.path());
        // SAFETY: plain system calls on the child we started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        assert!(
            again.is_ok(),
            "the child's copy kept the lock: {:?}",
            again.err()
        );
    }
}

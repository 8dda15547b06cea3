//! A thin safe wrapper over Linux epoll: one instance per driver thread, level-triggered,
//! each registered socket identified by a `u64` token (its connection's index).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most events taken from the kernel per wait.
pub const EVENTS_PER_WAIT_MAX: usize = 1024;

/// What a registration waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    ReadWrite,
}

impl Interest {
    fn bits(self) -> u32 {
        let read = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        match self {
            Self::Read => read,
            Self::ReadWrite => read | libc::EPOLLOUT as u32,
        }
    }
}

/// One ready socket.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// Error or hang-up: a read will tell which.
    pub closed: bool,
}

/// An epoll instance and its event buffer.
pub struct Epoll {
    fd: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// # Errors
    /// The OS error of `epoll_create1`.
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT_MAX];
        Ok(Self { fd, events })
    }

    /// Registers `fd` under `token`.
    ///
    /// # Errors
    /// The OS error of `epoll_ctl`.
    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Changes what `fd` waits for.
    ///
    /// # Errors
    /// The OS error of `epoll_ctl`.
    pub fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Stops watching `fd`: a finished or failed connection must not wake the loop again.
    ///
    /// # Errors
    /// The OS error of `epoll_ctl`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed since Linux 2.6.9).
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest.bits(),
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event that outlives the call; the kernel copies it.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` and calls `on_event` for each ready socket. An interrupted
    /// wait returns no events.
    ///
    /// # Errors
    /// The OS error of `epoll_wait`, other than `EINTR`.
    pub fn wait(&mut self, timeout_ms: i32, mut on_event: impl FnMut(Event)) -> io::Result<()> {
        // SAFETY: the buffer holds `events.len()` initialised epoll_events and lives across the
        // call; the kernel writes at most that many.
        let ready = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                timeout_ms,
            )
        };
        if ready < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(err),
            };
        }
        for raw in &self.events[..ready as usize] {
            // Copy out of the (packed on x86-64) struct before reading fields.
            let raw = *raw;
            let bits = raw.events;
            on_event(Event {
                token: raw.u64,
                readable: bits & (libc::EPOLLIN as u32) != 0,
                writable: bits & (libc::EPOLLOUT as u32) != 0,
                closed: bits & ((libc::EPOLLERR | libc::EPOLLHUP | libc::EPOLLRDHUP) as u32) != 0,
            });
        }
        Ok(())
    }
}

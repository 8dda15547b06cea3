//! Cold reads on the caller's own io_uring.
//!
//! A server worker that hands a read to the pool pays two thread hand-offs per read: a pool
//! thread must be woken and scheduled (tens of microseconds on a busy machine), and when the
//! read is done the worker must be woken from another thread. A [`ColdRing`] belongs to one
//! thread instead: [`ColdRing::submit`] queues the records' reads on the ring and hands them
//! to the kernel in one `io_uring_enter`; the kernel signals completions on an eventfd, which
//! the owner's event loop polls like a socket, and [`ColdRing::reap`] then checks what was
//! read and wakes the waiting [`Fetch`]es on the same thread.
//!
//! Reads are buffered (not `O_DIRECT`): like the pool's, they leave the record's pages in the
//! page cache, where the memory map then finds them. Each read is the record's own pages (see
//! [`RecordRead`]), and at most the ring's depth are in flight; more wait in its queue.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::{opcode, types, IoUring};

use super::{ColdReads, ColdRecord, Fetch, Job, RecordRead};
use crate::error::{Error, Result};

/// One thread's io_uring for cold reads (see the module docs). Not `Send`-bound by design:
/// it lives on the thread that polls [`ColdRing::event_fd`].
pub struct ColdRing {
    cold: Arc<ColdReads>,
    ring: IoUring,
    /// Signalled by the kernel on each completion; also by [`ColdReads::hold`]'s release.
    event: Arc<OwnedFd>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Reads registered but not started: the ring is full, or reads are held (tests).
    waiting: VecDeque<Job>,
    /// Entries pushed since the last `io_uring_enter`.
    unsubmitted: bool,
}

impl std::fmt::Debug for ColdRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdRing")
            .field("depth", &self.slots.len())
            .field("in_flight", &(self.slots.len() - self.free.len()))
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// A record being read: its job, its checks, and the piece being read into `buf`.
struct Slot {
    job: Job,
    read: RecordRead,
    buf: Vec<u8>,
    /// Where the piece starts in the file; bytes of it that arrived.
    at: u64,
    filled: usize,
}

impl ColdRing {
    /// A ring for at most `depth` reads in flight.
    pub(crate) fn new(cold: Arc<ColdReads>, depth: u32) -> std::io::Result<ColdRing> {
        let depth = depth.clamp(1, 4096);
        let ring = IoUring::new(depth.next_power_of_two())?;
        // SAFETY: eventfd takes no pointers; a negative result is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let event = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        ring.submitter().register_eventfd(fd)?;
        cold.ring_events.lock().push(Arc::downgrade(&event));
        Ok(ColdRing {
            cold,
            ring,
            event,
            slots: (0..depth).map(|_| None).collect(),
            free: (0..depth as usize).rev().collect(),
            waiting: VecDeque::new(),
            unsubmitted: false,
        })
    }

    /// The descriptor that becomes readable when reads complete: poll it on the owner's event
    /// loop and call [`ColdRing::reap`] each time it is.
    pub fn event_fd(&self) -> RawFd {
        self.event.as_raw_fd()
    }

    /// Reads currently on the ring, and reads waiting to get on it.
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len() + self.waiting.len()
    }

    /// Reads `records` (merged with reads of the same records under way anywhere).
    pub(crate) fn submit(&mut self, records: Vec<ColdRecord>) -> Fetch {
        let (fetch, fresh) = self.cold.register(records);
        self.waiting.extend(fresh);
        self.start();
        fetch
    }

    /// Takes the completed reads (waking whoever waits for them) and starts waiting ones.
    pub fn reap(&mut self) {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`; EAGAIN (nothing signalled) is fine.
        let _ = unsafe { libc::read(self.event_fd(), count.as_mut_ptr().cast(), count.len()) };
        let mut done = Vec::new();
        loop {
            done.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
            if done.is_empty() {
                break;
            }
            for (slot, result) in done.drain(..) {
                self.complete(slot as usize, result);
            }
        }
        self.start();
    }

    /// Starts waiting reads while the ring has room, and hands them to the kernel.
    fn start(&mut self) {
        if !self.waiting.is_empty() && !self.cold.is_held() {
            while !self.free.is_empty() {
                let Some(job) = self.waiting.pop_front() else {
                    break;
                };
                self.begin(job);
            }
        }
        if self.unsubmitted {
            self.unsubmitted = false;
            if let Err(e) = self.ring.submit() {
                // Entries stay queued in the ring; the next submit hands them over.
                self.unsubmitted = true;
                tracing::warn!(error = %e, "io_uring submit of cold reads failed; retried on the next read");
            }
        }
    }

    fn begin(&mut self, job: Job) {
        if let Some(e) = self.cold.injected_failure(&job) {
            self.cold.finish(&job, &Err(e));
            return;
        }
        let read = match RecordRead::new(&job.seg, job.off) {
            Ok(r) => r,
            Err(e) => {
                self.cold.finish(&job, &Err(e));
                return;
            }
        };
        let Some((at, n)) = read.next() else {
            self.cold.finish(&job, &read.finish(&job.seg));
            return;
        };
        let Some(i) = self.free.pop() else {
            self.waiting.push_front(job);
            return;
        };
        self.slots[i] = Some(Slot {
            job,
            read,
            buf: vec![0; n],
            at,
            filled: 0,
        });
        self.push_read(i);
    }

    /// Queues the read of the rest of slot `i`'s piece.
    fn push_read(&mut self, i: usize) {
        let Some(s) = self.slots[i].as_mut() else {
            return;
        };
        let rest = &mut s.buf[s.filled..];
        let entry = opcode::Read::new(
            types::Fd(s.job.seg.raw_fd()),
            rest.as_mut_ptr(),
            rest.len() as u32,
        )
        .offset(s.at + s.filled as u64)
        .build()
        .user_data(i as u64);
        loop {
            // SAFETY: the buffer and the file stay alive in the slot until the completion for
            // `user_data` i arrives (`complete`, or `Drop`, which waits for every read).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.unsubmitted = true;
                return;
            }
            // The submission queue is full (it holds at least the ring's depth, so only when
            // earlier entries were not handed over yet): hand them over, then push.
            if let Err(e) = self.ring.submit() {
                tracing::warn!(error = %e, "io_uring submit of cold reads failed");
                let s = self.slots[i].take();
                self.free.push(i);
                if let Some(s) = s {
                    let err = Error::io("read segment", s.job.seg.path(), e);
                    self.cold.finish(&s.job, &Err(err));
                }
                return;
            }
        }
    }

    /// Slot `i`'s read returned `result` (bytes read, or a negative errno).
    fn complete(&mut self, i: usize, result: i32) {
        let Some(s) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let more = if result <= 0 {
            let e = if result == 0 {
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
            } else {
                std::io::Error::from_raw_os_error(-result)
            };
            Err(Error::io("read segment", s.job.seg.path(), e))
        } else {
            s.filled += result as usize;
            if s.filled < s.buf.len() {
                Ok(true) // a short read: the rest of the piece
            } else {
                s.read
                    .feed(&s.job.seg, &s.buf)
                    .map(|()| match s.read.next() {
                        Some((at, n)) => {
                            s.buf.clear();
                            s.buf.resize(n, 0);
                            s.at = at;
                            s.filled = 0;
                            true
                        }
                        None => false,
                    })
            }
        };
        match more {
            Ok(true) => self.push_read(i),
            Ok(false) => self.end(i, Ok(())),
            Err(e) => self.end(i, Err(e)),
        }
    }

    /// Slot `i`'s record is read (or failed): answer its waiters and free the slot.
    fn end(&mut self, i: usize, result: Result<()>) {
        if let Some(s) = self.slots[i].take() {
            self.free.push(i);
            let result = result.and_then(|()| s.read.finish(&s.job.seg));
            self.cold.finish(&s.job, &result);
        }
    }
}

impl Drop for ColdRing {
    fn drop(&mut self) {
        for job in std::mem::take(&mut self.waiting) {
            self.cold.finish(&job, &Err(Error::Closed));
        }
        // The kernel may still write into the slots' buffers: wait for every read.
        while self.free.len() < self.slots.len() {
            if self.ring.submit_and_wait(1).is_err() {
                // Cannot wait: leak the buffers rather than free memory the kernel may still
                // write.
                for s in self.slots.iter_mut().filter_map(Option::take) {
                    self.cold.finish(&s.job, &Err(Error::Closed));
                    std::mem::forget(s.buf);
                }
                return;
            }
            let done: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for i in done {
                if let Some(s) = self.slots.get_mut(i as usize).and_then(Option::take) {
                    self.free.push(i as usize);
                    self.cold.finish(&s.job, &Err(Error::Closed));
                }
            }
        }
    }
}

/// Wakes a ring's owner (its eventfd): held reads were released.
pub(super) fn nudge(event: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from `one`; a full counter (EAGAIN) already wakes the owner.
    let _ = unsafe { libc::write(event.as_raw_fd(), one.as_ptr().cast(), one.len()) };
}

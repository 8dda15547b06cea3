//! Cold reads on the caller's own io_uring, with `O_DIRECT`.
//!
//! A server worker that hands a read to the pool pays two thread hand-offs per read: a pool
//! thread is woken and scheduled, and when the read is done the worker is woken from that
//! thread; the pool thread itself sleeps and wakes around the disk. A [`ColdRing`] belongs to
//! one thread instead: [`ColdRing::submit`] queues the records' reads on the ring and hands
//! them to the kernel in one `io_uring_enter`; the kernel signals completions on an eventfd,
//! which the owner's event loop polls like a socket, and [`ColdRing::reap`] then checks what
//! was read and wakes the waiting [`Fetch`]es on the same thread.
//!
//! Only `O_DIRECT` reads go on the ring: they cost the submitting thread little (no page
//! cache to fill, charge or reclaim; measured in `docs/perf/HISTORY.md`). Reads the module
//! sends through the page cache (a record read recently, a large one, a file system without
//! `O_DIRECT`) go to the pool as before.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, types, IoUring};

use super::{done, ColdReads, ColdRecord, DirectRead, DirectStep, Fetch, Job, ReadResult};
use crate::error::{Error, Result};

/// One thread's io_uring for cold reads (see the module docs). It lives on the thread that
/// polls [`ColdRing::event_fd`].
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
    /// Whether a flusher polls [`ColdRing::poll_flush`]: reads are then handed to the kernel
    /// once per event-loop turn, by the flusher, instead of once per [`ColdRing::submit`].
    deferred: bool,
    /// Wakes the flusher (taken when woken: one wake per turn).
    flusher: Option<Waker>,
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

/// A record being read.
struct Slot {
    job: Job,
    read: DirectRead,
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
            deferred: false,
            flusher: None,
        })
    }

    /// The descriptor that becomes readable when reads complete: poll it on the owner's event
    /// loop and call [`ColdRing::reap`] each time it is.
    pub fn event_fd(&self) -> RawFd {
        self.event.as_raw_fd()
    }

    /// Reads `records` (merged with reads of the same records under way anywhere): on the
    /// ring with `O_DIRECT`, or on the pool when they go through the page cache.
    pub(crate) fn submit(&mut self, records: Vec<ColdRecord>) -> Fetch {
        let (fetch, fresh) = self.cold.register(records);
        let mut pooled = Vec::new();
        for job in fresh {
            if self.cold.wants_direct(&job) {
                self.waiting.push_back(job);
            } else {
                pooled.push(job);
            }
        }
        self.cold.enqueue(pooled);
        self.start();
        fetch
    }

    /// Takes the completed reads (waking whoever waits for them) and starts waiting ones.
    pub fn reap(&mut self) {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`; EAGAIN (nothing signalled) is fine.
        let _ = unsafe { libc::read(self.event_fd(), count.as_mut_ptr().cast(), count.len()) };
        let mut completed = Vec::new();
        loop {
            completed.extend(self.ring.completion().map(|c| (c.user_data(), c.result())));
            if completed.is_empty() {
                break;
            }
            for (slot, result) in completed.drain(..) {
                self.complete(slot as usize, result);
            }
        }
        self.start();
    }

    /// The flusher's poll: hands the reads queued since the last call to the kernel in one
    /// `io_uring_enter`, and is woken again when more are queued. Never ready.
    ///
    /// Once a task polls this, [`ColdRing::submit`] and [`ColdRing::reap`] only queue reads
    /// and wake it. On a single-threaded executor that runs woken tasks in order, the flusher
    /// then runs after the connections woken in the same event-loop turn, so their reads share
    /// one system call and one doorbell write to the device (under a hypervisor each doorbell
    /// is a VM exit: measured in `docs/perf/HISTORY.md`). The task must keep polling while the
    /// ring lives; reads queued meanwhile wait for it.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.deferred = true;
        self.hand_over();
        self.flusher = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Hands queued entries to the kernel.
    fn hand_over(&mut self) {
        if self.unsubmitted {
            self.unsubmitted = false;
            if let Err(e) = self.ring.submit() {
                // Entries stay queued in the ring; the next submit hands them over.
                self.unsubmitted = true;
                tracing::warn!(
                    error = %e,
                    "io_uring submit of cold reads failed; retried on the next read"
                );
            }
        }
    }

    /// Starts waiting reads while the ring has room, and hands them to the kernel (or has the
    /// flusher do it at the end of the turn).
    fn start(&mut self) {
        if !self.waiting.is_empty() && !self.cold.is_held() {
            while !self.free.is_empty() {
                let Some(job) = self.waiting.pop_front() else {
                    break;
                };
                self.begin(job);
            }
        }
        if !self.unsubmitted {
            return;
        }
        if !self.deferred {
            self.hand_over();
        } else if let Some(flusher) = self.flusher.take() {
            flusher.wake();
        }
    }

    fn begin(&mut self, job: Job) {
        if let Some(e) = self.cold.injected_failure(&job) {
            done(&self.cold, &job, &Err(e));
            return;
        }
        let end = match super::record_bound(&job.seg, job.off) {
            Ok(end) => end,
            Err(e) => {
                done(&self.cold, &job, &Err(e));
                return;
            }
        };
        let Some(i) = self.free.pop() else {
            self.waiting.push_front(job);
            return;
        };
        let read = DirectRead::new(job.off, end, self.cold.read_guess());
        self.slots[i] = Some(Slot { job, read });
        self.push_read(i);
    }

    /// Queues slot `i`'s next read.
    fn push_read(&mut self, i: usize) {
        let Some(s) = self.slots[i].as_mut() else {
            return;
        };
        let Some(fd) = s.job.seg.direct_file().map(AsRawFd::as_raw_fd) else {
            // `wants_direct` saw the file; it cannot have gone. Read it on the pool.
            self.hand_to_pool(i);
            return;
        };
        let entry = match s.read.want(&s.job.seg) {
            Ok((at, dst)) => opcode::Read::new(types::Fd(fd), dst.as_mut_ptr(), dst.len() as u32)
                .offset(at)
                .build()
                .user_data(i as u64),
            Err(e) => {
                self.end(i, Err(e));
                return;
            }
        };
        loop {
            // SAFETY: the buffer (in the slot's `DirectRead`, not resized while a read is in
            // flight) and the file (held by the slot's segment) stay alive until the
            // completion for `user_data` i arrives (`complete`, or `Drop`, which waits for
            // every read).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.unsubmitted = true;
                return;
            }
            // The submission queue is full (it holds at least the ring's depth, so only when
            // earlier entries were not handed over yet): hand them over, then push.
            if let Err(e) = self.ring.submit() {
                tracing::warn!(error = %e, "io_uring submit of cold reads failed");
                let path = self.slots[i].as_ref().map(|s| s.job.seg.path());
                let err = Error::io("read segment", path.unwrap_or_default(), e);
                self.end(i, Err(err));
                return;
            }
        }
    }

    /// Slot `i`'s read returned `result` (bytes read, or a negative errno).
    fn complete(&mut self, i: usize, result: i32) {
        let Some(s) = self.slots.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if result == -libc::EINVAL {
            self.cold.refuse_direct(&s.job.seg);
            self.hand_to_pool(i);
            return;
        }
        let step: Result<DirectStep> = if result < 0 {
            let e = std::io::Error::from_raw_os_error(-result);
            Err(Error::io("read segment (O_DIRECT)", s.job.seg.path(), e))
        } else {
            s.read.arrived(&self.cold, &s.job.seg, result as usize)
        };
        match step {
            Ok(DirectStep::More) => self.push_read(i),
            Ok(DirectStep::Staged(rec)) => self.end(i, Ok(Some(rec))),
            Ok(DirectStep::TooLarge) => self.hand_to_pool(i),
            Err(e) => self.end(i, Err(e)),
        }
    }

    /// Slot `i`'s record goes through the page cache instead: the pool reads it.
    fn hand_to_pool(&mut self, i: usize) {
        if let Some(s) = self.slots[i].take() {
            self.free.push(i);
            self.cold.enqueue(vec![s.job]);
        }
    }

    /// Slot `i`'s record is read (or failed): answer its waiters and free the slot.
    fn end(&mut self, i: usize, result: ReadResult) {
        if let Some(s) = self.slots[i].take() {
            self.free.push(i);
            done(&self.cold, &s.job, &result);
        }
    }
}

impl Drop for ColdRing {
    fn drop(&mut self) {
        for job in std::mem::take(&mut self.waiting) {
            done(&self.cold, &job, &Err(Error::Closed));
        }
        // The kernel may still write into the slots' buffers: wait for every read.
        while self.free.len() < self.slots.len() {
            if self.ring.submit_and_wait(1).is_err() {
                // Cannot wait: leak the buffers rather than free memory the kernel may still
                // write.
                for s in self.slots.iter_mut().filter_map(Option::take) {
                    done(&self.cold, &s.job, &Err(Error::Closed));
                    std::mem::forget(s.read);
                }
                return;
            }
            let completed: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
            for i in completed {
                if let Some(s) = self.slots.get_mut(i as usize).and_then(Option::take) {
                    self.free.push(i as usize);
                    done(&self.cold, &s.job, &Err(Error::Closed));
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

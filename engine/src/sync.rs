//! Durability: the sync thread, group commit, and poisoning after a failed write or fsync.
//!
//! Every record has a sequence number. `durable_seq` says how far the log is on disk. A writer
//! that needs durability asks for its sequence number ([`Syncer::request`]) and waits: a thread
//! sleeps on the `epoch` futex, a future's task is woken by the sync thread. The sync thread
//! syncs whatever has been written when it starts, so every writer that arrived during one
//! `fdatasync` shares the next one (group commit); before it starts, it waits briefly for as
//! many writers as its last group had (`gather`). With `EverySec` it also syncs once a second
//! when anything is unsynced.
//!
//! A failed fsync poisons the engine: the error is kept, every later write fails with it, and
//! waiters for writes that were not yet durable get it too. An fsync is never retried and
//! reported as a success (see "fsyncgate"). `FLIN_FAILPOINT=fsync-eio[:N]` injects that failure
//! into [`sync_now`] for tests (see `failpoint.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::engine::Shared;
use crate::error::{Error, Result};
use crate::options::Fsync;

/// `Syncer::wake_at` while the sync thread is idle: any new request wakes it.
const WAKE_ON_REQUEST: usize = 0;
/// `Syncer::wake_at` while it syncs or wakes waiters: nothing needs to wake it.
const WAKE_NEVER: usize = usize::MAX;

pub(crate) struct Syncer {
    pub(crate) durable_seq: AtomicU64,
    requested_seq: AtomicU64,
    mutex: Mutex<()>,
    cond: Condvar,
    /// Writers waiting for durability: the sequence number each waits for, and how to wake it.
    waiters: Mutex<Vec<(u64, Waiter)>>,
    /// Bumped (and futex-woken) whenever a blocked thread may have become free to go.
    epoch: AtomicU32,
    /// When the sync thread wants to be woken: [`WAKE_ON_REQUEST`] while idle, a number of
    /// waiters while it gathers a group, [`WAKE_NEVER`] while it syncs. Writers notify `cond`
    /// only then: a notification the sync thread does not need is a context switch, and
    /// with 16 writers on two cores those cost more than the fsync.
    wake_at: AtomicUsize,
    shutdown: AtomicBool,
    /// Separate from `cond` so group-commit traffic does not wake the compaction thread.
    stop_mutex: Mutex<()>,
    stop_cond: Condvar,
    /// Set by [`Syncer::kick_maintenance`] until the maintenance thread takes it.
    kicked: AtomicBool,
}

impl Syncer {
    pub(crate) fn new(durable_seq: u64) -> Syncer {
        // A malformed FLIN_FAILPOINT panics here, in the opening thread, not in the sync thread.
        crate::failpoint::init();
        Syncer {
            durable_seq: AtomicU64::new(durable_seq),
            requested_seq: AtomicU64::new(durable_seq),
            mutex: Mutex::new(()),
            cond: Condvar::new(),
            waiters: Mutex::new(Vec::new()),
            epoch: AtomicU32::new(0),
            wake_at: AtomicUsize::new(WAKE_NEVER),
            shutdown: AtomicBool::new(false),
            stop_mutex: Mutex::new(()),
            stop_cond: Condvar::new(),
            kicked: AtomicBool::new(false),
        }
    }

    pub(crate) fn durable(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// Asks the sync thread to make everything up to `seq` durable.
    pub(crate) fn request(&self, seq: u64) {
        if self.requested_seq.fetch_max(seq, Ordering::SeqCst) < seq
            && self.wake_at.load(Ordering::SeqCst) == WAKE_ON_REQUEST
        {
            self.notify();
        }
    }

    /// Adds a waiter; wakes the sync thread when it was gathering waiters and has enough.
    fn push_waiter(&self, seq: u64, waiter: Waiter) {
        let n = {
            let mut w = self.waiters.lock();
            w.push((seq, waiter));
            w.len()
        };
        let want = self.wake_at.load(Ordering::SeqCst);
        if want != WAKE_ON_REQUEST && want != WAKE_NEVER && n >= want {
            self.notify();
        }
    }

    /// Wakes the sync thread. Taking the mutex orders this after its last check: it cannot
    /// miss the notification between checking and sleeping.
    fn notify(&self) {
        let _g = self.mutex.lock();
        self.cond.notify_all();
    }

    pub(crate) fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        {
            let _g = self.mutex.lock();
            self.cond.notify_all();
        }
        let _g = self.stop_mutex.lock();
        self.stop_cond.notify_all();
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// Wakes the maintenance thread before its interval ends: the log's files grew, so disk
    /// use moved and compaction should look again. Cheap when repeated before it wakes.
    pub(crate) fn kick_maintenance(&self) {
        if !self.kicked.swap(true, Ordering::AcqRel) {
            let _g = self.stop_mutex.lock();
            self.stop_cond.notify_all();
        }
    }

    /// The maintenance thread's wait: up to `timeout`, or until a kick or shutdown; true once
    /// the engine is shutting down.
    pub(crate) fn wait_maintenance(&self, timeout: Duration) -> bool {
        let mut g = self.stop_mutex.lock();
        if !self.shutdown.load(Ordering::Acquire) && !self.kicked.swap(false, Ordering::AcqRel) {
            self.stop_cond.wait_for(&mut g, timeout);
            self.kicked.store(false, Ordering::Release);
        }
        self.shutdown.load(Ordering::Acquire)
    }

    /// Waits up to `timeout` for shutdown; true once the engine is shutting down.
    pub(crate) fn wait_shutdown(&self, timeout: Duration) -> bool {
        let mut g = self.stop_mutex.lock();
        if !self.shutdown.load(Ordering::Acquire) {
            self.stop_cond.wait_for(&mut g, timeout);
        }
        self.shutdown.load(Ordering::Acquire)
    }
}

/// How a waiting writer is woken.
enum Waiter {
    /// A future's task.
    Task(Waker),
    /// A thread blocked in [`wait_durable`], sleeping on the `epoch` futex.
    Thread,
}

/// Blocks until `seq` is durable or the engine is poisoned.
///
/// Blocked threads sleep on one futex word, `epoch`, which the sync thread bumps and wakes
/// with a single system call however many threads it frees. Unparking them one by one took
/// 105 us for 16 writers on this 2-core VM (an IPI and a context switch each), half an
/// fsync, during which the sync thread could not gather the next group.
pub(crate) fn wait_durable(shared: &Shared, seq: u64) -> Result<()> {
    let s = &shared.syncer;
    if let Some(r) = settled(shared, seq) {
        return r;
    }
    let mut epoch = s.epoch.load(Ordering::SeqCst);
    s.push_waiter(seq, Waiter::Thread);
    s.request(seq);
    loop {
        // The sync thread advances `durable_seq` (or poisons, or shuts down) before it bumps
        // `epoch`: a bump missed here makes the futex wait return at once.
        if let Some(r) = settled(shared, seq) {
            return r;
        }
        futex_wait(&s.epoch, epoch);
        epoch = s.epoch.load(Ordering::SeqCst);
    }
}

/// How a wait for `seq` ends, if it is over: durable, or the error that makes it impossible
/// (the engine is poisoned or shutting down).
fn settled(shared: &Shared, seq: u64) -> Option<Result<()>> {
    if shared.syncer.durable() >= seq {
        Some(Ok(()))
    } else if let Err(e) = shared.check_poison() {
        Some(Err(e))
    } else if shared.syncer.shutdown.load(Ordering::Acquire) {
        Some(Err(Error::Closed))
    } else {
        None
    }
}

/// Sleeps while `word` holds `expected` (or until a spurious wakeup).
fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word`, which outlives the call; a null
    // timeout waits without limit. Errors (EAGAIN: the value changed; EINTR) just return.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes every thread sleeping on `word`.
fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

/// A future that resolves when a write is durable; see [`crate::Engine::durable`].
pub struct Durable {
    shared: Arc<Shared>,
    seq: u64,
    registered: bool,
}

impl Durable {
    pub(crate) fn new(shared: Arc<Shared>, seq: u64) -> Durable {
        Durable {
            shared,
            seq,
            registered: false,
        }
    }
}

impl Future for Durable {
    type Output = Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let seq = self.seq;
        if let Some(r) = settled(&self.shared, seq) {
            return Poll::Ready(r);
        }
        let syncer = &self.shared.syncer;
        syncer.push_waiter(seq, Waiter::Task(cx.waker().clone()));
        if !self.registered {
            syncer.request(seq);
        }
        // The sync thread may have finished between the first check and the push.
        if syncer.durable() >= seq {
            return Poll::Ready(Ok(()));
        }
        self.registered = true;
        Poll::Pending
    }
}

/// The sync thread's body. Runs until [`Syncer::shutdown`], then syncs once more.
pub(crate) fn run(shared: Arc<Shared>) {
    let s = &shared.syncer;
    let tick = Duration::from_secs(1);
    let mut next_tick = Instant::now() + tick;
    let mut last_batch = 0usize;
    loop {
        let stopping = {
            let mut g = s.mutex.lock();
            s.wake_at.store(WAKE_ON_REQUEST, Ordering::SeqCst);
            let stopping = loop {
                if s.shutdown.load(Ordering::Acquire) {
                    break true;
                }
                if s.requested_seq.load(Ordering::SeqCst) > s.durable() {
                    break false;
                }
                if shared.options.fsync == Fsync::EverySec {
                    let now = Instant::now();
                    if now >= next_tick {
                        next_tick = now + tick;
                        if shared.log.last_seq() > s.durable() {
                            break false;
                        }
                        continue;
                    }
                    s.cond.wait_until(&mut g, next_tick);
                } else {
                    s.cond.wait(&mut g);
                }
            };
            s.wake_at.store(WAKE_NEVER, Ordering::SeqCst);
            stopping
        };
        if shared.is_poisoned() {
            wake_all(&shared);
            if stopping {
                return;
            }
            // Nothing more can become durable; sleep until shutdown.
            let mut g = s.mutex.lock();
            while !s.shutdown.load(Ordering::Acquire) {
                s.cond.wait(&mut g);
            }
            return;
        }
        if !stopping {
            gather(&shared, last_batch);
        }
        if let Err(e) = sync_now(&shared) {
            tracing::error!(error = %e, "fsync failed; the engine refuses writes from now on");
            shared.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            shared.poison(&e);
        }
        last_batch = wake_all(&shared);
        if stopping {
            return;
        }
    }
}

/// Syncs every segment with unsynced writes and advances `durable_seq`.
pub(crate) fn sync_now(shared: &Shared) -> Result<()> {
    let (segments, seq) = shared.log.unsynced();
    let started = Instant::now();
    for seg in &segments {
        crate::failpoint::fsync(seg)?;
        seg.sync()?;
    }
    shared.syncer.durable_seq.fetch_max(seq, Ordering::AcqRel);
    shared.counters.note_fsync(started.elapsed());
    Ok(())
}

/// Group commit's gathering step: the writers woken by the last fsync come back within
/// microseconds with their next write; an fsync started at the first of them would leave the
/// rest a whole fsync behind. So wait until as many writers as last time are waiting, for at
/// most half an fsync (capped at [`GATHER_MAX`]). A lone writer never waits.
fn gather(shared: &Shared, last_batch: usize) {
    if last_batch <= 1 {
        return;
    }
    let s = &shared.syncer;
    let fsync_us = shared
        .counters
        .last_fsync_duration_us
        .load(Ordering::Relaxed);
    let window = Duration::from_micros(fsync_us / 2).min(GATHER_MAX);
    let deadline = Instant::now() + window;
    let mut g = s.mutex.lock();
    s.wake_at.store(last_batch, Ordering::SeqCst);
    while s.waiters.lock().len() < last_batch && !s.shutdown.load(Ordering::Acquire) {
        if s.cond.wait_until(&mut g, deadline).timed_out() {
            break;
        }
    }
    s.wake_at.store(WAKE_NEVER, Ordering::SeqCst);
}

/// Longest a sync waits for more writers to join it.
const GATHER_MAX: Duration = Duration::from_micros(200);

/// Wakes the waiters whose writes are durable (all of them when poisoned or closing); returns
/// how many were woken.
fn wake_all(shared: &Shared) -> usize {
    let s = &shared.syncer;
    let durable = s.durable();
    let poisoned = shared.is_poisoned();
    let ready: Vec<Waiter> = {
        let mut w = s.waiters.lock();
        if poisoned || s.shutdown.load(Ordering::Acquire) {
            w.drain(..).map(|(_, w)| w).collect()
        } else {
            let (ready, wait): (Vec<_>, Vec<_>) = w.drain(..).partition(|(q, _)| *q <= durable);
            *w = wait;
            ready.into_iter().map(|(_, w)| w).collect()
        }
    };
    let woken = ready.len();
    let mut threads = false;
    for w in ready {
        match w {
            Waiter::Task(w) => w.wake(),
            Waiter::Thread => threads = true,
        }
    }
    if threads {
        s.epoch.fetch_add(1, Ordering::SeqCst);
        futex_wake_all(&s.epoch);
    }
    woken
}

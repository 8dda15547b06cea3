//! Group commit's shared state: how far the log is on disk, who waits for more, and how the
//! sync thread and the waiters wake each other.
//!
//! Every record has a sequence number. `durable_seq` says how far the log is on disk. A writer
//! that needs durability asks for its sequence number ([`Syncer::request`]) and waits: a thread
//! sleeps on the `epoch` futex, a future's task is woken by the sync thread. The sync thread
//! (`background::sync`) syncs whatever has been written when it starts, so every writer that
//! arrived during one `fdatasync` shares the next one; before it starts, it waits briefly for
//! as many writers as its last group had ([`Syncer::gather`]).
//!
//! The same struct carries the engine's shutdown flag and the wake-ups of the maintenance and
//! prealloc threads, so every background thread sleeps on something shutdown interrupts.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// `Syncer::wake_at` while the sync thread is idle: any new request wakes it.
const WAKE_ON_REQUEST: usize = 0;
/// `Syncer::wake_at` while it syncs or wakes waiters: nothing needs to wake it.
const WAKE_NEVER: usize = usize::MAX;

/// Longest a sync waits for more writers to join it.
const GATHER_MAX: Duration = Duration::from_micros(200);

pub(crate) struct Syncer {
    durable_seq: AtomicU64,
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
    /// The fsync policy changed: the sync thread's wait returns so it reads the new one.
    nudged: AtomicBool,
}

/// How a waiting writer is woken.
pub(crate) enum Waiter {
    /// A future's task.
    Task(Waker),
    /// A thread blocked in `wait::wait_durable`, sleeping on the `epoch` futex.
    Thread,
}

/// What woke the sync thread.
pub(crate) enum Work {
    /// Some writer asked for durability, or (every second under `EverySec`) writes are unsynced.
    Sync,
    /// The engine is shutting down: sync once more and stop.
    Stop,
}

impl Syncer {
    pub(crate) fn new(durable_seq: u64) -> Syncer {
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
            nudged: AtomicBool::new(false),
        }
    }

    pub(crate) fn durable(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// Records that everything up to `seq` is on disk.
    pub(crate) fn advance_durable(&self, seq: u64) {
        self.durable_seq.fetch_max(seq, Ordering::AcqRel);
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
    pub(crate) fn push_waiter(&self, seq: u64, waiter: Waiter) {
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

    /// The current epoch, read before a thread registers as a waiter (see [`Syncer::sleep`]).
    pub(crate) fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Sleeps while the epoch is still `epoch` (or until a spurious wakeup). Whoever frees
    /// waiters changes their state first and bumps the epoch after, so a bump missed between
    /// the caller's check and this call makes the futex wait return at once.
    pub(crate) fn sleep(&self, epoch: u32) {
        futex_wait(&self.epoch, epoch);
    }

    /// Wakes the sync thread. Taking the mutex orders this after its last check: it cannot
    /// miss the notification between checking and sleeping.
    /// Makes the sync thread's wait return (with a sync), so it reads a changed policy.
    pub(crate) fn nudge(&self) {
        self.nudged.store(true, Ordering::SeqCst);
        self.notify();
    }

    fn notify(&self) {
        let _g = self.mutex.lock();
        self.cond.notify_all();
    }

    /// Stops every background thread's sleep for good.
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

    /// The sync thread's wait for work. With `tick` (`EverySec`), it also wakes once a tick is
    /// due and `unsynced()` says writes wait for their second's sync.
    pub(crate) fn wait_for_work(
        &self,
        mut tick: Option<(&mut Instant, Duration)>,
        unsynced: impl Fn() -> bool,
    ) -> Work {
        let mut g = self.mutex.lock();
        self.wake_at.store(WAKE_ON_REQUEST, Ordering::SeqCst);
        let work = loop {
            if self.shutdown.load(Ordering::Acquire) {
                break Work::Stop;
            }
            if self.requested_seq.load(Ordering::SeqCst) > self.durable()
                || self.nudged.swap(false, Ordering::SeqCst)
            {
                break Work::Sync;
            }
            match tick.as_mut() {
                Some((next_tick, every)) => {
                    let now = Instant::now();
                    if now >= **next_tick {
                        **next_tick = now + *every;
                        if unsynced() {
                            break Work::Sync;
                        }
                        continue;
                    }
                    self.cond.wait_until(&mut g, **next_tick);
                }
                None => {
                    self.cond.wait(&mut g);
                }
            }
        };
        self.wake_at.store(WAKE_NEVER, Ordering::SeqCst);
        work
    }

    /// Sleeps until shutdown (the sync thread once nothing can become durable any more).
    pub(crate) fn wait_for_shutdown(&self) {
        let mut g = self.mutex.lock();
        while !self.shutdown.load(Ordering::Acquire) {
            self.cond.wait(&mut g);
        }
    }

    /// Group commit's gathering step: the writers woken by the last fsync come back within
    /// microseconds with their next write; an fsync started at the first of them would leave
    /// the rest a whole fsync behind. So wait until as many writers as last time are waiting,
    /// for at most half an fsync of `fsync_us` (capped at [`GATHER_MAX`]). A lone writer never
    /// waits.
    pub(crate) fn gather(&self, last_batch: usize, fsync_us: u64) {
        if last_batch <= 1 {
            return;
        }
        let window = Duration::from_micros(fsync_us / 2).min(GATHER_MAX);
        let deadline = Instant::now() + window;
        let mut g = self.mutex.lock();
        self.wake_at.store(last_batch, Ordering::SeqCst);
        while self.waiters.lock().len() < last_batch && !self.shutdown.load(Ordering::Acquire) {
            if self.cond.wait_until(&mut g, deadline).timed_out() {
                break;
            }
        }
        self.wake_at.store(WAKE_NEVER, Ordering::SeqCst);
    }

    /// Wakes the waiters whose writes are durable, or all of them when `all` (poisoned or
    /// closing); returns how many were woken.
    pub(crate) fn wake(&self, all: bool) -> usize {
        let durable = self.durable();
        let ready: Vec<Waiter> = {
            let mut w = self.waiters.lock();
            if all || self.shutdown.load(Ordering::Acquire) {
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
        if threads || all {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            futex_wake_all(&self.epoch);
        }
        woken
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

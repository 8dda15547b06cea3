//! Write stalls: backpressure for writers that outrun compaction.
//!
//! When the log grows past the space bound faster than compaction reclaims it (the rule is in
//! `space`), a stall is set. It lasts until compaction lifts it or
//! [`WRITE_STALL_MAX`] passes, whichever comes first, so a compaction that cannot keep up slows
//! writers by at most that much each time the log grows instead of stopping them.
//!
//! Two ways to wait, chosen by `Options::blocking_write_stalls`:
//! - blocking (the default, for threads that own their writes): `put`, `delete` and the other
//!   writes wait inside the call, before they take any lock (compaction needs the index locks
//!   to catch up);
//! - async (the server): writes never block; the caller checks `Engine::write_stall`
//!   between batches of requests and awaits `Engine::write_stall_lifted` with that
//!   time as its timeout, so a monoio worker keeps running its other tasks meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::stats::Counters;

/// Longest one stall lasts.
pub const WRITE_STALL_MAX: Duration = Duration::from_secs(1);

pub(crate) struct WriteStall {
    /// When the stall ends at the latest, in microseconds since `origin`; 0 = no stall.
    until_us: AtomicU64,
    origin: Instant,
    mutex: Mutex<()>,
    cond: Condvar,
    wakers: Mutex<Vec<Waker>>,
}

impl Default for WriteStall {
    fn default() -> Self {
        WriteStall {
            until_us: AtomicU64::new(0),
            origin: Instant::now(),
            mutex: Mutex::new(()),
            cond: Condvar::new(),
            wakers: Mutex::new(Vec::new()),
        }
    }
}

impl WriteStall {
    /// Never 0, so 0 can mean "no stall".
    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64 + 1
    }

    /// How long the stall may still last, if one is on.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let until = self.until_us.load(Ordering::Acquire);
        if until == 0 {
            return None;
        }
        let now = self.now_us();
        (until > now).then(|| Duration::from_micros(until - now))
    }

    /// Starts a stall unless one is on. Wakers left from a stall that ran out are woken (their
    /// tasks have moved on; this keeps the list from growing).
    pub(crate) fn set(&self) {
        if self.remaining().is_some() {
            return;
        }
        let until = self.now_us() + WRITE_STALL_MAX.as_micros() as u64;
        self.until_us.store(until, Ordering::Release);
        for w in std::mem::take(&mut *self.wakers.lock()) {
            w.wake();
        }
    }

    /// Ends the stall and lets every waiter go.
    pub(crate) fn lift(&self) {
        if self.until_us.swap(0, Ordering::AcqRel) == 0 {
            return;
        }
        {
            let _g = self.mutex.lock();
            self.cond.notify_all();
        }
        for w in std::mem::take(&mut *self.wakers.lock()) {
            w.wake();
        }
    }

    /// Registers a task to wake when the stall is lifted; false (nothing registered) when
    /// no stall is on any more.
    pub(crate) fn register(&self, waker: &Waker) -> bool {
        if self.remaining().is_none() {
            return false;
        }
        self.wakers.lock().push(waker.clone());
        // Lifted between the check and the registration: its wake may have missed us.
        self.remaining().is_some()
    }

    /// The blocking wait: returns when the stall is lifted or runs out.
    pub(crate) fn wait_if_active(&self, counters: &Counters) {
        if self.remaining().is_none() {
            return;
        }
        let started = Instant::now();
        {
            let mut g = self.mutex.lock();
            while let Some(left) = self.remaining() {
                self.cond.wait_for(&mut g, left);
            }
        }
        self.note_wait(counters, started);
    }

    /// Counts a wait that began at `started`.
    pub(crate) fn note_wait(&self, counters: &Counters, started: Instant) {
        let waited = started.elapsed();
        counters.write_stalls.fetch_add(1, Ordering::Relaxed);
        counters
            .write_stall_us
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        // Whoever sees a stall run out (rather than be lifted) says so, once per stall.
        let until = self.until_us.load(Ordering::Acquire);
        if until != 0
            && until <= self.now_us()
            && self
                .until_us
                .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            tracing::warn!(
                waited_ms = WRITE_STALL_MAX.as_millis() as u64,
                "writes outran compaction and it did not catch up in time; letting writes \
                 through, so disk use may pass the space bound (see the engine stats)"
            );
        }
    }
}

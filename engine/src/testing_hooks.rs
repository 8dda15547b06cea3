//! Faults that tests inject into a running engine's background threads (through the hidden
//! `Engine::inject_panic`), to check that a panicking thread poisons the engine instead of
//! leaving writers waiting. When nothing is injected a check is one relaxed load.

use std::sync::atomic::{AtomicU8, Ordering};

/// A background thread of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thread {
    /// `flin-sync`: group commit.
    Sync,
    /// `flin-prealloc`: prepares log segments.
    Prealloc,
    /// `flin-maint`: expiry, hints, compaction.
    Maintenance,
}

impl Thread {
    fn bit(self) -> u8 {
        match self {
            Thread::Sync => 1,
            Thread::Prealloc => 2,
            Thread::Maintenance => 4,
        }
    }
}

#[derive(Default)]
pub(crate) struct Hooks {
    /// Threads asked to panic at their next round of work.
    panic: AtomicU8,
    /// The verify thread leaves blind writes unchecked while set.
    pub(crate) verify_paused: std::sync::atomic::AtomicBool,
    /// The expiry sweep removes nothing while set (tests of the other ways keys expire).
    pub(crate) sweep_paused: std::sync::atomic::AtomicBool,
    /// Seconds added to the access clock (OBJECT IDLETIME), so tests need not wait.
    pub(crate) access_clock_skew_s: std::sync::atomic::AtomicU64,
    /// The sync thread skips `EverySec`'s once-a-second sync while set; syncs asked for
    /// still run (tests of what waits for the next periodic sync).
    pub(crate) periodic_sync_paused: std::sync::atomic::AtomicBool,
}

impl Hooks {
    pub(crate) fn inject_panic(&self, thread: Thread) {
        self.panic.fetch_or(thread.bit(), Ordering::SeqCst);
    }

    pub(crate) fn panic_pending(&self, thread: Thread) -> bool {
        self.panic.load(Ordering::Relaxed) & thread.bit() != 0
    }

    /// Panics when a test asked `thread` to.
    pub(crate) fn maybe_panic(&self, thread: Thread) {
        if self.panic_pending(thread)
            && self.panic.fetch_and(!thread.bit(), Ordering::SeqCst) & thread.bit() != 0
        {
            panic!("panic injected into the {thread:?} thread by a test");
        }
    }
}

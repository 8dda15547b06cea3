//! The state of a shutdown that waits for lagging replicas (`crate::shutdown` has the wait):
//! which wait runs, if any. One per server, in `Shared`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The wait in progress, if any (one per server).
#[derive(Default)]
pub struct ShutdownWait {
    /// The running wait's number; `None` once it ended or was aborted (its thread then stops
    /// without stopping the server).
    running: Mutex<Option<u64>>,
    next: AtomicU64,
}

impl ShutdownWait {
    /// The running wait's number, locked.
    pub fn lock(&self) -> MutexGuard<'_, Option<u64>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while a wait for lagging replicas runs.
    pub fn is_waiting(&self) -> bool {
        self.lock().is_some()
    }

    /// A number for a new wait.
    pub fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

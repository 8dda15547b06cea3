//! Poison: once a write, an fsync or a background thread fails in a way that leaves the store's
//! durability unknown, the engine refuses writes for good (reads go on) and says why.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};

#[derive(Default)]
pub(crate) struct Poison {
    set: AtomicBool,
    /// The first cause; later ones are only logged by whoever met them.
    cause: Mutex<Option<String>>,
}

impl Poison {
    /// [`Error::Poisoned`] with the cause once poisoned.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_set() {
            let cause = self.cause().unwrap_or_else(|| "unknown".into());
            return Err(Error::Poisoned { cause });
        }
        Ok(())
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    pub(crate) fn cause(&self) -> Option<String> {
        self.cause.lock().clone()
    }

    /// Poisons the engine with `cause`, unless it already is (the first cause is kept).
    pub(crate) fn set(&self, cause: String) {
        let mut c = self.cause.lock();
        if c.is_none() {
            *c = Some(cause);
        }
        self.set.store(true, Ordering::Release);
    }
}

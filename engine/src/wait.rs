//! What callers wait on: a write's durability ([`Durable`], [`wait_durable`]) and the end of a
//! write stall ([`StallLifted`]). Futures for async callers, which are woken from the engine's
//! threads without blocking their runtime; a blocking wait for threads.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::syncer::Waiter;

/// Blocks until `seq` is durable or the engine is poisoned.
///
/// Blocked threads sleep on one futex word, which the sync thread bumps and wakes with a
/// single system call however many threads it frees. Unparking them one by one took 105 us
/// for 16 writers on a 2-core VM (an IPI and a context switch each), half an fsync, during
/// which the sync thread could not gather the next group.
pub(crate) fn wait_durable(shared: &Shared, seq: u64) -> Result<()> {
    let s = &shared.syncer;
    if let Some(r) = settled(shared, seq) {
        return r;
    }
    let mut epoch = s.epoch();
    s.push_waiter(seq, Waiter::Thread);
    s.request(seq);
    loop {
        // The sync thread advances `durable_seq` (or poisons, or shuts down) before it bumps
        // the epoch: a bump missed here makes the sleep return at once.
        if let Some(r) = settled(shared, seq) {
            return r;
        }
        s.sleep(epoch);
        epoch = s.epoch();
    }
}

/// How a wait for `seq` ends, if it is over: durable, or the error that makes it impossible
/// (the engine is poisoned or shutting down).
fn settled(shared: &Shared, seq: u64) -> Option<Result<()>> {
    if shared.syncer.durable() >= seq {
        Some(Ok(()))
    } else if let Err(e) = shared.check_poison() {
        Some(Err(e))
    } else if shared.syncer.is_shutdown() {
        Some(Err(Error::Closed))
    } else {
        None
    }
}

/// A future that resolves when a write is durable; see `Engine::durable`.
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
        // The sync thread may have finished, or the engine been poisoned (which wakes only
        // the waiters registered then), between the first check and the push.
        if let Some(r) = settled(&self.shared, seq) {
            return Poll::Ready(r);
        }
        self.registered = true;
        Poll::Pending
    }
}

/// Resolves when the write stall is lifted (or is not on); see `Engine::write_stall` for the
/// time to give it as a timeout, since a stall that runs out wakes nobody. Counted in the
/// engine's stall statistics when it had to wait.
pub struct StallLifted {
    shared: Arc<Shared>,
    started: Option<Instant>,
}

impl StallLifted {
    pub(crate) fn new(shared: Arc<Shared>) -> StallLifted {
        StallLifted {
            shared,
            started: None,
        }
    }
}

impl Future for StallLifted {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.shared.write_stall.register(cx.waker()) {
            return Poll::Ready(());
        }
        self.started.get_or_insert_with(Instant::now);
        Poll::Pending
    }
}

impl Drop for StallLifted {
    fn drop(&mut self) {
        if let Some(started) = self.started {
            let sh = &self.shared;
            sh.write_stall.note_wait(&sh.counters, started);
        }
    }
}

//! Group commit inside a worker, for `--fsync always`: the connections of one worker share one
//! wait on the engine's durability.
//!
//! Every connection that holds replies for the disk could await the engine's `durable` future
//! itself, but the engine's sync thread then wakes each of them from its own thread, and each
//! such wake of a sleeping worker is a system call (monoio's eventfd): one per request, made by
//! the sync thread before it can start the next fdatasync. Here connections register with
//! their worker's [`DurabilityGate`] instead (same thread, no system call) and one task per
//! worker, [`watch`], awaits the engine for the newest write any of them waits for, then wakes
//! them all: one cross-thread wake per worker per fdatasync.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Weak;
use std::sync::Arc;
use std::task::{Poll, Waker};

use flin_engine::{Engine, WriteToken};

/// One worker's view of what is durable and who waits for what.
pub struct DurabilityGate {
    engine: Arc<Engine>,
    /// The newest write a connection waits for.
    wanted: Cell<Option<WriteToken>>,
    /// The newest write the engine said is durable.
    durable: Cell<Option<WriteToken>>,
    /// The engine refused: writes can no longer be made durable.
    failed: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
    watcher: Cell<Option<Waker>>,
}

/// The engine could not make the write durable; `Engine::durable` says why.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused;

impl DurabilityGate {
    /// A gate on `engine`'s durability, with nothing durable yet and nobody waiting.
    pub fn new(engine: Arc<Engine>) -> DurabilityGate {
        DurabilityGate {
            engine,
            wanted: Cell::new(None),
            durable: Cell::new(None),
            failed: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
            watcher: Cell::new(None),
        }
    }

    /// Resolves once `token` (and every earlier write) is durable, or with [`Refused`].
    pub fn wait(&self, token: WriteToken) -> impl Future<Output = Result<(), Refused>> + '_ {
        poll_fn(move |cx| {
            if self.durable.get() >= Some(token) {
                return Poll::Ready(Ok(()));
            }
            if self.failed.get() {
                return Poll::Ready(Err(Refused));
            }
            if self.wanted.get() < Some(token) {
                self.wanted.set(Some(token));
                if let Some(w) = self.watcher.take() {
                    w.wake();
                }
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        })
    }

    fn settle(&self, target: WriteToken, ok: bool) {
        if ok {
            self.durable.set(self.durable.get().max(Some(target)));
        } else {
            self.failed.set(true);
        }
        for w in self.waiters.take() {
            w.wake();
        }
    }
}

/// The worker's one waiter on the engine: waits for the newest write its connections want,
/// again and again. Holds the gate weakly, as the cron holds its worker, so a runtime that ends
/// with this task asleep does not keep the gate (and through it the engine) alive.
pub async fn watch(gate: Weak<DurabilityGate>) {
    loop {
        let next = poll_fn(|cx| {
            let Some(g) = gate.upgrade() else {
                return Poll::Ready(None);
            };
            match g.wanted.get() {
                Some(t) if g.durable.get() < Some(t) && !g.failed.get() => {
                    Poll::Ready(Some((t, g.engine.clone())))
                }
                _ => {
                    g.watcher.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            }
        })
        .await;
        let Some((target, engine)) = next else {
            return;
        };
        let ok = engine.durable(target).await.is_ok();
        let Some(g) = gate.upgrade() else {
            return;
        };
        g.settle(target, ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A gate on a new engine, and the tokens of `n` writes to it.
    fn gate_and_tokens(n: usize) -> (tempfile::TempDir, DurabilityGate, Vec<WriteToken>) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), flin_engine::Options::default()).unwrap();
        let t = (0..n)
            .map(|i| engine.put(format!("k{i}").as_bytes(), b"v", 0).unwrap())
            .collect();
        (dir, DurabilityGate::new(Arc::new(engine)), t)
    }

    #[test]
    fn waiters_resolve_when_their_write_is_settled_and_fail_after_a_refusal() {
        let (_dir, gate, t) = gate_and_tokens(3);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);

        // The worker's watcher, parked, is woken by a wait for a newer write.
        let watcher = Arc::new(Count(AtomicUsize::new(0)));
        gate.watcher.set(Some(Waker::from(watcher.clone())));
        let mut second = pin!(gate.wait(t[1]));
        assert!(second.as_mut().poll(&mut cx).is_pending());
        assert_eq!(gate.wanted.get(), Some(t[1]));
        assert_eq!(watcher.0.load(Ordering::SeqCst), 1);
        // An earlier write settled: the waiter is woken, and waits on.
        gate.settle(t[0], true);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(second.as_mut().poll(&mut cx).is_pending());
        // Its own write settled.
        gate.settle(t[1], true);
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
        // Earlier writes need no wait now.
        assert_eq!(pin!(gate.wait(t[0])).poll(&mut cx), Poll::Ready(Ok(())));

        let mut third = pin!(gate.wait(t[2]));
        assert!(third.as_mut().poll(&mut cx).is_pending());
        gate.settle(t[2], false);
        assert_eq!(third.as_mut().poll(&mut cx), Poll::Ready(Err(Refused)));
        // What was durable before the refusal still is.
        assert_eq!(pin!(gate.wait(t[1])).poll(&mut cx), Poll::Ready(Ok(())));
    }
}

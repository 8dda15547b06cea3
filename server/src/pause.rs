//! CLIENT PAUSE: clients' commands wait (all of them, or only writes) until a deadline or
//! CLIENT UNPAUSE. The check a command makes is one relaxed load while nothing is paused; a
//! held connection waits on its own (the worker's other clients go on) until the deadline,
//! or until UNPAUSE wakes it, from whichever worker it ran on.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// What a pause holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum PauseMode {
    /// Nothing is paused.
    None = 0,
    /// Commands that write.
    Write = 1,
    /// Every command.
    All = 2,
}

/// The server's pause.
#[derive(Default)]
pub struct ClientPause {
    mode: AtomicU8,
    /// Unix ms at which the pause ends by itself.
    end_ms: AtomicI64,
    /// Connections waiting for the pause to end.
    waiters: Mutex<Vec<Waker>>,
    /// The server is stopping: held connections are woken to close without running what
    /// they hold (a write held by a shutdown waiting for its replicas must not run after it).
    stopped: AtomicBool,
}

impl ClientPause {
    /// Pauses until `end_ms` (Unix ms); a pause still on keeps the later end and the stricter
    /// mode, as Redis does.
    pub fn pause(&self, end_ms: i64, mode: PauseMode, now_ms: i64) {
        let Ok(mut waiters) = self.waiters.lock() else {
            return;
        };
        let mut current = self.mode.load(Ordering::Acquire);
        if current != PauseMode::None as u8 && self.end_ms.load(Ordering::Acquire) <= now_ms {
            // The last pause ran out by itself: its waiters have moved on.
            current = PauseMode::None as u8;
            waiters.clear();
        }
        if current == PauseMode::None as u8 {
            self.end_ms.store(end_ms, Ordering::Release);
        } else {
            self.end_ms.fetch_max(end_ms, Ordering::AcqRel);
        }
        self.mode.store(current.max(mode as u8), Ordering::Release);
    }

    /// True while a pause may be on: the one load every command pays.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.mode.load(Ordering::Relaxed) != PauseMode::None as u8
    }

    /// The server is stopping: wakes every waiting connection (and any that starts to wait
    /// from now on) without ending the pause; they close without running what they hold.
    pub fn stop(&self) {
        let Ok(mut waiters) = self.waiters.lock() else {
            return;
        };
        self.stopped.store(true, Ordering::Release);
        for w in waiters.drain(..) {
            w.wake();
        }
    }

    /// Ends the pause and wakes every waiting connection.
    pub fn unpause(&self) {
        let Ok(mut waiters) = self.waiters.lock() else {
            return;
        };
        self.mode.store(PauseMode::None as u8, Ordering::Release);
        for w in waiters.drain(..) {
            w.wake();
        }
    }

    /// The deadline a command must wait for (`writes` when it is a write), or `None` when it
    /// may run now.
    #[inline]
    pub fn holds(&self, writes: bool, now_ms: i64) -> Option<i64> {
        let mode = self.mode.load(Ordering::Acquire);
        if mode == PauseMode::None as u8 {
            return None;
        }
        let end = self.end_ms.load(Ordering::Acquire);
        let held = mode == PauseMode::All as u8 || writes;
        (held && now_ms < end).then_some(end)
    }

    /// Resolves when UNPAUSE is called (the caller bounds the wait by the deadline).
    pub fn lifted(&self) -> Lifted<'_> {
        Lifted {
            pause: self,
            registered: false,
        }
    }
}

/// A wait for CLIENT UNPAUSE (see [`ClientPause::lifted`]).
pub struct Lifted<'a> {
    pause: &'a ClientPause,
    registered: bool,
}

impl Future for Lifted<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Ok(mut waiters) = self.pause.waiters.lock() else {
            return Poll::Ready(());
        };
        if self.pause.mode.load(Ordering::Acquire) == PauseMode::None as u8
            || self.pause.stopped.load(Ordering::Acquire)
        {
            return Poll::Ready(());
        }
        if !self.registered {
            waiters.push(cx.waker().clone());
            drop(waiters);
            self.registered = true;
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_writes_or_everything_until_the_end() {
        let p = ClientPause::default();
        assert_eq!(p.holds(true, 0), None);
        p.pause(1000, PauseMode::Write, 0);
        assert_eq!(p.holds(true, 10), Some(1000));
        assert_eq!(p.holds(false, 10), None);
        assert_eq!(p.holds(true, 1000), None, "the pause ended");
        p.pause(500, PauseMode::All, 0);
        assert_eq!(
            p.holds(false, 10),
            Some(1000),
            "the later end and the stricter mode"
        );
        p.unpause();
        assert_eq!(p.holds(true, 10), None);
        p.pause(100, PauseMode::All, 0);
        p.pause(300, PauseMode::Write, 200);
        assert_eq!(
            p.holds(false, 250),
            None,
            "a pause that ran out leaves nothing behind"
        );
        assert_eq!(p.holds(true, 250), Some(300));
    }

    #[test]
    fn unpause_wakes_the_waiters() {
        let p = ClientPause::default();
        p.pause(i64::MAX, PauseMode::All, 0);
        let mut wait = std::pin::pin!(p.lifted());
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Pending);
        p.unpause();
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(()));
    }
}

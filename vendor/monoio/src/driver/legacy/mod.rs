//! Monoio Legacy Driver.

use std::{
    cell::UnsafeCell,
    io,
    rc::Rc,
    task::{Context, Poll},
    time::Duration,
};

use super::{
    op::{CompletionMeta, Op, OpAble},
    ready::{self, Ready},
    scheduled_io::ScheduledIo,
    Driver, Inner, CURRENT,
};
use crate::utils::slab::Slab;

#[allow(missing_docs, unreachable_pub, dead_code, unused_imports)]
#[cfg(windows)]
pub(super) mod iocp;

#[cfg(feature = "sync")]
mod waker;
#[cfg(feature = "sync")]
pub(crate) use waker::UnparkHandle;

pub(crate) struct LegacyInner {
    pub(crate) io_dispatch: Slab<ScheduledIo>,
    #[cfg(unix)]
    events: mio::Events,
    #[cfg(unix)]
    poll: mio::Poll,
    #[cfg(windows)]
    events: iocp::Events,
    #[cfg(windows)]
    poll: iocp::Poller,

    #[cfg(feature = "sync")]
    shared_waker: std::sync::Arc<waker::EventWaker>,

    // Waker receiver
    #[cfg(feature = "sync")]
    waker_receiver: flume::Receiver<std::task::Waker>,

    idle_spin: IdleSpin,
}

/// Driver with Poll-like syscall.
#[allow(unreachable_pub)]
pub struct LegacyDriver {
    inner: Rc<UnsafeCell<LegacyInner>>,

    // Used for drop
    #[cfg(feature = "sync")]
    thread_id: usize,
}

#[cfg(feature = "sync")]
const TOKEN_WAKEUP: mio::Token = mio::Token(1 << 31);

#[allow(dead_code)]
impl LegacyDriver {
    const DEFAULT_ENTRIES: u32 = 1024;

    pub(crate) fn new() -> io::Result<Self> {
        Self::new_with_entries(Self::DEFAULT_ENTRIES)
    }

    pub(crate) fn new_with_entries(entries: u32) -> io::Result<Self> {
        #[cfg(unix)]
        let poll = mio::Poll::new()?;
        #[cfg(windows)]
        let poll = iocp::Poller::new()?;

        #[cfg(all(unix, feature = "sync"))]
        let shared_waker = std::sync::Arc::new(waker::EventWaker::new(mio::Waker::new(
            poll.registry(),
            TOKEN_WAKEUP,
        )?));
        #[cfg(all(windows, feature = "sync"))]
        let shared_waker = std::sync::Arc::new(waker::EventWaker::new(iocp::Waker::new(
            &poll,
            TOKEN_WAKEUP,
        )?));
        #[cfg(feature = "sync")]
        let (waker_sender, waker_receiver) = flume::unbounded::<std::task::Waker>();
        #[cfg(feature = "sync")]
        let thread_id = crate::builder::BUILD_THREAD_ID.with(|id| *id);

        let inner = LegacyInner {
            idle_spin: IdleSpin::new(Duration::ZERO),
            io_dispatch: Slab::new(),
            #[cfg(unix)]
            events: mio::Events::with_capacity(entries as usize),
            #[cfg(unix)]
            poll,
            #[cfg(windows)]
            events: iocp::Events::with_capacity(entries as usize),
            #[cfg(windows)]
            poll,
            #[cfg(feature = "sync")]
            shared_waker,
            #[cfg(feature = "sync")]
            waker_receiver,
        };
        let driver = Self {
            inner: Rc::new(UnsafeCell::new(inner)),
            #[cfg(feature = "sync")]
            thread_id,
        };

        // Register unpark handle
        #[cfg(feature = "sync")]
        {
            let unpark = driver.unpark();
            super::thread::register_unpark_handle(thread_id, unpark.into());
            super::thread::register_waker_sender(thread_id, waker_sender);
        }

        Ok(driver)
    }

    /// See [`crate::RuntimeBuilder::with_idle_spin`].
    pub(crate) fn set_idle_spin(&self, limit: Duration) {
        let inner = unsafe { &mut *self.inner.get() };
        inner.idle_spin = IdleSpin::new(limit);
    }

    fn inner_park(&self, mut timeout: Option<Duration>) -> io::Result<()> {
        let inner = unsafe { &mut *self.inner.get() };

        #[allow(unused_mut)]
        let mut need_wait = true;
        #[cfg(feature = "sync")]
        {
            // Process foreign wakers
            while let Ok(w) = inner.waker_receiver.try_recv() {
                w.wake();
                need_wait = false;
            }

            // Set status as not awake if we are going to sleep
            if need_wait {
                inner
                    .shared_waker
                    .awake
                    .store(false, std::sync::atomic::Ordering::Release);
            }

            // Process foreign wakers left
            while let Ok(w) = inner.waker_receiver.try_recv() {
                w.wake();
                need_wait = false;
            }
        }

        if !need_wait {
            timeout = Some(Duration::ZERO);
        }

        // here we borrow 2 mut self, but its safe.
        let events = unsafe { &mut (*self.inner.get()).events };
        let mut poll = |events: &mut _, timeout| match inner.poll.poll(events, timeout) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
            _ => Ok(()),
        };
        let mut polled = false;
        #[cfg(unix)]
        if let Some(budget) = inner.idle_spin.budget(timeout) {
            let start = std::time::Instant::now();
            loop {
                poll(events, Some(Duration::ZERO))?;
                if !events.is_empty() {
                    polled = true;
                    break;
                }
                if start.elapsed() >= budget {
                    break;
                }
                std::hint::spin_loop();
            }
            inner.idle_spin.record(polled);
        }
        if !polled {
            poll(events, timeout)?;
        }
        #[cfg(unix)]
        let iter = events.iter();
        #[cfg(windows)]
        let iter = events.events.iter();
        for event in iter {
            let token = event.token();

            #[cfg(feature = "sync")]
            if token != TOKEN_WAKEUP {
                inner.dispatch(token, Ready::from_mio(event));
            }

            #[cfg(not(feature = "sync"))]
            inner.dispatch(token, Ready::from_mio(event));
        }
        Ok(())
    }

    #[cfg(windows)]
    pub(crate) fn register(
        this: &Rc<UnsafeCell<LegacyInner>>,
        state: &mut iocp::SocketState,
        interest: mio::Interest,
    ) -> io::Result<usize> {
        let inner = unsafe { &mut *this.get() };
        let io = ScheduledIo::default();
        let token = inner.io_dispatch.insert(io);

        match inner.poll.register(state, mio::Token(token), interest) {
            Ok(_) => Ok(token),
            Err(e) => {
                inner.io_dispatch.remove(token);
                Err(e)
            }
        }
    }

    #[cfg(windows)]
    pub(crate) fn deregister(
        this: &Rc<UnsafeCell<LegacyInner>>,
        token: usize,
        state: &mut iocp::SocketState,
    ) -> io::Result<()> {
        let inner = unsafe { &mut *this.get() };

        // try to deregister fd first, on success we will remove it from slab.
        match inner.poll.deregister(state) {
            Ok(_) => {
                inner.io_dispatch.remove(token);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(unix)]
    pub(crate) fn register(
        this: &Rc<UnsafeCell<LegacyInner>>,
        source: &mut impl mio::event::Source,
        interest: mio::Interest,
    ) -> io::Result<usize> {
        let inner = unsafe { &mut *this.get() };
        let token = inner.io_dispatch.insert(ScheduledIo::new());

        let registry = inner.poll.registry();
        match registry.register(source, mio::Token(token), interest) {
            Ok(_) => Ok(token),
            Err(e) => {
                inner.io_dispatch.remove(token);
                Err(e)
            }
        }
    }

    #[cfg(unix)]
    pub(crate) fn deregister(
        this: &Rc<UnsafeCell<LegacyInner>>,
        token: usize,
        source: &mut impl mio::event::Source,
    ) -> io::Result<()> {
        let inner = unsafe { &mut *this.get() };

        // try to deregister fd first, on success we will remove it from slab.
        match inner.poll.registry().deregister(source) {
            Ok(_) => {
                inner.io_dispatch.remove(token);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl LegacyInner {
    fn dispatch(&mut self, token: mio::Token, ready: Ready) {
        let mut sio = match self.io_dispatch.get(token.0) {
            Some(io) => io,
            None => {
                return;
            }
        };
        let ref_mut = sio.as_mut();
        ref_mut.set_readiness(|curr| curr | ready);
        ref_mut.wake(ready);
    }

    pub(crate) fn poll_op<T: OpAble>(
        this: &Rc<UnsafeCell<Self>>,
        data: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<CompletionMeta> {
        let inner = unsafe { &mut *this.get() };
        let (direction, index) = match data.legacy_interest() {
            Some(x) => x,
            None => {
                // if there is no index provided, it means the action does not rely on fd
                // readiness. do syscall right now.
                return Poll::Ready(CompletionMeta {
                    result: OpAble::legacy_call(data),
                    flags: 0,
                });
            }
        };

        // wait io ready and do syscall
        let mut scheduled_io = inner.io_dispatch.get(index).expect("scheduled_io lost");
        let ref_mut = scheduled_io.as_mut();

        let readiness = ready!(ref_mut.poll_readiness(cx, direction));

        // check if canceled
        if readiness.is_canceled() {
            // clear CANCELED part only
            ref_mut.clear_readiness(readiness & Ready::CANCELED);
            return Poll::Ready(CompletionMeta {
                result: Err(io::Error::from_raw_os_error(125)),
                flags: 0,
            });
        }

        match OpAble::legacy_call(data) {
            Ok(n) => {
                if data.legacy_drained(n) {
                    // Only READABLE: a hang-up or a cancel already seen must still wake the
                    // next read (which then returns at once).
                    ref_mut.clear_readiness(Ready::READABLE);
                }
                Poll::Ready(CompletionMeta {
                    result: Ok(n),
                    flags: 0,
                })
            }
            Err(ref e) if e.kind() == io::ErrorKind::WouldBlock => {
                ref_mut.clear_readiness(direction.mask());
                ref_mut.set_waker(cx, direction);
                Poll::Pending
            }
            Err(e) => Poll::Ready(CompletionMeta {
                result: Err(e),
                flags: 0,
            }),
        }
    }

    pub(crate) fn cancel_op(
        this: &Rc<UnsafeCell<LegacyInner>>,
        index: usize,
        direction: ready::Direction,
    ) {
        let inner = unsafe { &mut *this.get() };
        let ready = match direction {
            ready::Direction::Read => Ready::READ_CANCELED,
            ready::Direction::Write => Ready::WRITE_CANCELED,
        };
        inner.dispatch(mio::Token(index), ready);
    }

    pub(crate) fn submit_with_data<T>(
        this: &Rc<UnsafeCell<LegacyInner>>,
        data: T,
    ) -> io::Result<Op<T>>
    where
        T: OpAble,
    {
        Ok(Op {
            driver: Inner::Legacy(this.clone()),
            // useless for legacy
            index: 0,
            data: Some(data),
        })
    }

    #[cfg(feature = "sync")]
    pub(crate) fn unpark(this: &Rc<UnsafeCell<LegacyInner>>) -> waker::UnparkHandle {
        let inner = unsafe { &*this.get() };
        let weak = std::sync::Arc::downgrade(&inner.shared_waker);
        waker::UnparkHandle(weak)
    }
}

impl Driver for LegacyDriver {
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        let inner = Inner::Legacy(self.inner.clone());
        CURRENT.set(&inner, f)
    }

    fn submit(&self) -> io::Result<()> {
        // wait with timeout = 0
        self.park_timeout(Duration::ZERO)
    }

    fn park(&self) -> io::Result<()> {
        self.inner_park(None)
    }

    fn park_timeout(&self, duration: Duration) -> io::Result<()> {
        self.inner_park(Some(duration))
    }

    #[cfg(feature = "sync")]
    type Unpark = waker::UnparkHandle;

    #[cfg(feature = "sync")]
    fn unpark(&self) -> Self::Unpark {
        LegacyInner::unpark(&self.inner)
    }
}

impl Drop for LegacyDriver {
    fn drop(&mut self) {
        // Deregister thread id
        #[cfg(feature = "sync")]
        {
            use crate::driver::thread::{unregister_unpark_handle, unregister_waker_sender};
            unregister_unpark_handle(self.thread_id);
            unregister_waker_sender(self.thread_id);
        }
    }
}

/// Polls for events without blocking for a short while before the driver sleeps.
///
/// A thread that blocks in `epoll_wait` is woken by whoever makes its socket readable: on a
/// virtual machine that is an inter-processor interrupt and a scheduler wake-up, paid by the
/// peer's `send` and by this thread's latency. Under request-response traffic the next
/// request often arrives a few microseconds after the thread runs out of work, so polling for
/// that long first saves both. Spinning only pays when it finds work, so the driver keeps a
/// running hit rate and spins only while at least a quarter of recent spins found events;
/// otherwise it probes one park in `PROBE_EVERY`, so it notices when traffic picks up again.
struct IdleSpin {
    limit: Duration,
    /// Recent fraction of spins that found events, in 1/1024ths (an average over ~8 spins).
    hit_rate: u32,
    parks_since_probe: u32,
}

impl IdleSpin {
    const ONE: u32 = 1024;
    const MIN_HIT_RATE: u32 = Self::ONE / 4;
    const PROBE_EVERY: u32 = 32;

    fn new(limit: Duration) -> Self {
        Self {
            limit,
            hit_rate: 0,
            parks_since_probe: 0,
        }
    }

    /// How long to spin before a park that would wait up to `timeout`, if at all.
    fn budget(&mut self, timeout: Option<Duration>) -> Option<Duration> {
        if self.limit.is_zero() {
            return None;
        }
        let budget = match timeout {
            Some(t) => t.min(self.limit),
            None => self.limit,
        };
        if budget.is_zero() {
            return None;
        }
        if self.hit_rate < Self::MIN_HIT_RATE {
            self.parks_since_probe += 1;
            if self.parks_since_probe < Self::PROBE_EVERY {
                return None;
            }
            self.parks_since_probe = 0;
        }
        Some(budget)
    }

    fn record(&mut self, hit: bool) {
        self.hit_rate -= self.hit_rate / 8;
        if hit {
            self.hit_rate += Self::ONE / 8;
        }
    }
}

#[cfg(test)]
mod idle_spin_tests {
    use std::time::Duration;

    use super::IdleSpin;

    const LIMIT: Duration = Duration::from_micros(5);

    #[test]
    fn zero_limit_never_spins() {
        let mut s = IdleSpin::new(Duration::ZERO);
        for _ in 0..100 {
            assert_eq!(s.budget(None), None);
        }
    }

    #[test]
    fn spins_no_longer_than_the_park_would_wait() {
        let mut s = IdleSpin::new(LIMIT);
        s.hit_rate = IdleSpin::ONE;
        assert_eq!(s.budget(None), Some(LIMIT));
        assert_eq!(s.budget(Some(Duration::from_secs(1))), Some(LIMIT));
        assert_eq!(s.budget(Some(Duration::from_micros(2))), Some(Duration::from_micros(2)));
        assert_eq!(s.budget(Some(Duration::ZERO)), None);
    }

    #[test]
    fn misses_stop_the_spinning_and_probes_bring_it_back() {
        let mut s = IdleSpin::new(LIMIT);
        s.hit_rate = IdleSpin::ONE;
        // Every spin misses: the thread stops spinning within a dozen parks.
        let mut spun = 0;
        for _ in 0..200 {
            if s.budget(None).is_some() {
                spun += 1;
                s.record(false);
            }
        }
        assert!(spun <= 12 + 200 / IdleSpin::PROBE_EVERY as usize, "spun {spun} times");
        assert!(s.hit_rate < IdleSpin::MIN_HIT_RATE);
        // Idle: it still probes one park in PROBE_EVERY, no more.
        let probes = (0..IdleSpin::PROBE_EVERY * 4)
            .filter(|_| {
                let b = s.budget(None);
                if b.is_some() {
                    s.record(false);
                }
                b.is_some()
            })
            .count();
        assert_eq!(probes, 4);
        // Traffic returns: probes hit, and after a few the thread spins at every park.
        let mut parks = 0;
        while s.hit_rate < IdleSpin::MIN_HIT_RATE {
            parks += 1;
            if s.budget(None).is_some() {
                s.record(true);
            }
            assert!(parks < 10 * IdleSpin::PROBE_EVERY, "never resumed spinning");
        }
        for _ in 0..10 {
            assert_eq!(s.budget(None), Some(LIMIT));
            s.record(true);
        }
    }

    #[test]
    fn a_mostly_hitting_spin_keeps_going() {
        let mut s = IdleSpin::new(LIMIT);
        s.hit_rate = IdleSpin::ONE;
        // Half the spins find work: above the threshold, so every park spins.
        for i in 0..1000 {
            assert_eq!(s.budget(None), Some(LIMIT), "park {i}");
            s.record(i % 2 == 0);
        }
    }
}

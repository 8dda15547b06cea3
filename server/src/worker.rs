//! Worker threads: each runs its own monoio runtime (io_uring or epoll, chosen at start),
//! pinned to a core when `--pin-cores yes` asks for it, accepts on its own SO_REUSEPORT
//! listener, and serves its connections for their whole life. A once-every-100-ms cron task per worker closes idle
//! clients, samples the ops rate, and carries out shutdown.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use monoio::io::{AsyncWriteRentExt, Canceller};
use monoio::net::{TcpListener, TcpStream};
use monoio::time::TimeDriver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::clients::ClientEntry;
use crate::config::Driver;
use crate::connection::{self, ConnShared};
use crate::durability;
use crate::shared::{Shared, WorkerShared};
use crate::stats::{self, ServerStats};

/// How often the cron task runs.
pub const CRON_INTERVAL: Duration = Duration::from_millis(100);
/// Cron ticks between PINGs down the replication stream.
const PING_TICKS: u64 = crate::backlog::REPL_PING_PERIOD.as_millis() as u64 / 100;
/// After a shutdown request, connections get this long to flush before they are cut.
const SHUTDOWN_GRACE_TICKS: u64 = 50;
/// Entries of each io_uring submission queue.
const URING_ENTRIES: u32 = 1024;

/// One worker: what its connections see ([`WorkerShared`]), and what only the worker itself
/// touches (its connections, the accept loop, the cron's clock). Never leaves its thread.
struct Worker {
    local: Rc<WorkerShared>,
    conns: RefCell<HashMap<u64, Rc<ConnShared>>>,
    /// Cron ticks since start: the clock of the shutdown grace period.
    tick: Cell<u64>,
    /// The tick at which shutdown began, once it has.
    stopping_since: Cell<Option<u64>>,
    accept_canceller: RefCell<Canceller>,
    drained_waker: Cell<Option<Waker>>,
}

impl Worker {
    fn shared(&self) -> &Shared {
        &self.local.shared
    }

    fn register(&self, id: u64, conn: Rc<ConnShared>) {
        self.conns.borrow_mut().insert(id, conn);
        stats::add(&self.local.counters().active_connections, 1);
        if self.stopping_since.get().is_some() {
            // Accepted just as shutdown began: serve nothing new.
            if let Some(c) = self.conns.borrow().get(&id) {
                c.shut_read();
            }
        }
    }

    fn unregister(&self, id: u64) {
        self.conns.borrow_mut().remove(&id);
        stats::sub(&self.local.counters().active_connections, 1);
        self.shared()
            .clients
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        if self.conns.borrow().is_empty() {
            if let Some(w) = self.drained_waker.take() {
                w.wake();
            }
        }
    }
}

/// Starts one worker thread per listener; returns once all of them accept.
///
/// # Errors
/// A thread could not be created or its event loop could not start; the workers already
/// started are stopped.
pub(crate) fn spawn_all(
    shared: &Arc<Shared>,
    listeners: Vec<std::net::TcpListener>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let cpus = allowed_cpus();
    let mut threads = Vec::with_capacity(listeners.len());
    for (id, listener) in listeners.into_iter().enumerate() {
        let for_thread = shared.clone();
        let tx = tx.clone();
        // Pin only a server that takes the usable cores (all but one, by default); a smaller
        // one leaves placement to the scheduler (several one-thread servers on a big machine
        // would otherwise all sit on the first core).
        let pin = shared.config.pin_cores
            && !cpus.is_empty()
            && shared.threads >= crate::config::default_workers(cpus.len());
        let cpu = pin.then(|| cpus[id % cpus.len()]);
        let spawned = std::thread::Builder::new()
            .name(format!("flin-worker-{id}"))
            .spawn(move || run(id, for_thread, listener, cpu, tx));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                stop_and_join(shared.clone(), threads);
                return Err(e);
            }
        }
    }
    drop(tx);
    let mut first_error = None;
    for _ in 0..threads.len() {
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => {
                first_error =
                    first_error.or(Some(io::Error::other("a worker thread died at start")))
            }
        }
    }
    if let Some(e) = first_error {
        stop_and_join(shared.clone(), threads);
        return Err(e);
    }
    Ok(threads)
}

fn stop_and_join(shared: Arc<Shared>, threads: Vec<JoinHandle<()>>) {
    shared.request_shutdown();
    for t in threads {
        let _ = t.join();
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a plain bit set that sched_getaffinity fills; zeroed is a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, which lives across the call.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    // SAFETY: CPU_ISSET only reads the bit set for an index below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

type Ready = std::sync::mpsc::Sender<io::Result<()>>;

fn run(
    id: usize,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    cpu: Option<usize>,
    ready: Ready,
) {
    if let Some(cpu) = cpu {
        if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
            tracing::debug!(worker = id, cpu, error = ?e, "could not pin worker to its core");
        }
    }
    match shared.driver {
        Driver::IoUring => {
            match RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .enable_timer()
                .build()
            {
                Ok(mut rt) => rt.block_on(worker_main(id, shared, listener, ready)),
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        }
        Driver::Epoll => {
            let built: io::Result<monoio::Runtime<TimeDriver<LegacyDriver>>> =
                RuntimeBuilder::<LegacyDriver>::new()
                    .with_idle_spin(shared.config.idle_spin())
                    .enable_timer()
                    .build();
            match built {
                Ok(mut rt) => rt.block_on(worker_main(id, shared, listener, ready)),
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            }
        }
    }
}

async fn worker_main(
    id: usize,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    ready: Ready,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let w = Rc::new(Worker {
        local: Rc::new(WorkerShared::new(id, shared)),
        conns: RefCell::new(HashMap::new()),
        tick: Cell::new(0),
        stopping_since: Cell::new(None),
        accept_canceller: RefCell::new(Canceller::new()),
        drained_waker: Cell::new(None),
    });
    // The cron holds a Weak: a task still asleep when the runtime ends must not keep the
    // worker (and through it the engine) alive.
    monoio::spawn(cron(Rc::downgrade(&w)));
    monoio::spawn(durability::watch(Rc::downgrade(&w.local.durability)));
    if w.local.cold_ring.is_some() {
        monoio::spawn(cold_reaper(Rc::downgrade(&w.local)));
        monoio::spawn(cold_flusher(Rc::downgrade(&w.local)));
    }
    if id == 0 {
        monoio::spawn(primary_streams(Rc::downgrade(&w)));
    }
    accept_loop(&w, &listener).await;
    // Closing the listener makes the kernel refuse new connections to this worker.
    drop(listener);
    poll_fn(|cx| {
        if w.conns.borrow().is_empty() {
            Poll::Ready(())
        } else {
            w.drained_waker.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    })
    .await;
    if id == 0 {
        // The task that waited for links is left asleep with the runtime.
        w.shared().repl_inbox.forget_waker();
    }
    tracing::debug!(worker = id, "worker stopped");
}

/// Worker 0 applies a replica's stream from its primary (`crate::replication`): each link the
/// link thread hands over, one at a time, as one of its connections (CLIENT KILL and shutdown
/// act on it as on the others).
async fn primary_streams(worker: Weak<Worker>) {
    loop {
        let handover = poll_fn(|cx| match worker.upgrade() {
            Some(w) => w.shared().repl_inbox.poll_take(cx).map(Some),
            None => Poll::Ready(None),
        })
        .await;
        let (Some(h), Some(w)) = (handover, worker.upgrade()) else {
            return;
        };
        if w.stopping_since.get().is_some() {
            // Dropped: the link thread learns that nothing applies the stream any more.
            continue;
        }
        let stream = match crate::replication::into_runtime(h.stream) {
            Ok(stream) => stream,
            Err(e) => {
                let _ = h.done.send(Err(e));
                continue;
            }
        };
        let shared = w.shared();
        let id = shared
            .next_client_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry = Arc::new(ClientEntry::new(
            id,
            stream.peer_addr().unwrap_or(shared.local_addr),
            stream.local_addr().unwrap_or(shared.local_addr),
            stream.as_raw_fd(),
            crate::clock::now_ms() as u64,
        ));
        // Listed while the stream flows (CLIENT LIST's flag `M`; CLIENT KILL TYPE master
        // drops the link, which reconnects).
        entry.set_role(crate::clients::Role::Primary);
        shared.registry.add(entry.clone());
        shared
            .clients
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let conn = Rc::new(ConnShared::new(&stream, entry));
        w.register(id, conn.clone());
        let ended = crate::replication::follow_stream(
            stream,
            h.buffered,
            h.generation,
            conn,
            w.local.clone(),
        )
        .await;
        w.unregister(id);
        w.shared().registry.remove(id);
        let _ = h.done.send(ended);
    }
}

/// Takes the worker's completed cold reads whenever its ring signals some (an eventfd the
/// event loop polls), which wakes the connections waiting for them.
async fn cold_reaper(w: Weak<WorkerShared>) {
    let Some(fd) = w
        .upgrade()
        .and_then(|w| w.cold_ring.as_ref().map(|r| r.borrow().event_fd()))
    else {
        return;
    };
    // monoio polls a descriptor for readability through its socket types; this one is an
    // eventfd, only ever polled here, never read or written as a socket. It is a duplicate, so
    // monoio owns and closes its own.
    // SAFETY: `fd` stays open while the ring lives, and the ring outlives this call.
    let dup = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }.try_clone_to_owned();
    let event = dup
        .and_then(|fd| monoio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(fd)));
    let mut polled = match event {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::error!(
                error = %e,
                "cannot poll the cold-read ring's eventfd; its reads are collected every \
                 millisecond instead (restart with --cold-read-depth 0 to use the pool)"
            );
            None
        }
    };
    loop {
        match &polled {
            Some(event) => {
                if let Err(e) = event.readable(false).await {
                    tracing::error!(
                        error = %e,
                        "polling the cold-read ring's eventfd failed; its reads are collected \
                         every millisecond instead (restart with --cold-read-depth 0 to use \
                         the pool)"
                    );
                    polled = None;
                }
            }
            // Never leave a read uncollected: its client would wait forever.
            None => monoio::time::sleep(Duration::from_millis(1)).await,
        }
        let Some(w) = w.upgrade() else {
            return;
        };
        if let Some(ring) = &w.cold_ring {
            ring.borrow_mut().reap();
        }
    }
}

/// Hands the cold reads the worker's connections queued in one event-loop turn to the kernel
/// together: it runs after the connections woken in that turn (see
/// `flin_engine::ColdRing::poll_flush`).
async fn cold_flusher(w: Weak<WorkerShared>) {
    poll_fn(|cx| match w.upgrade() {
        Some(w) => match &w.cold_ring {
            Some(ring) => ring.borrow_mut().poll_flush(cx),
            None => Poll::Ready(()),
        },
        None => Poll::Ready(()),
    })
    .await;
}

async fn accept_loop(w: &Rc<Worker>, listener: &TcpListener) {
    while !w.shared().is_shutting_down() {
        let handle = w.accept_canceller.borrow().handle();
        match listener.cancelable_accept(handle).await {
            Ok((stream, peer)) => admit(w, stream, peer),
            Err(_) if w.shared().is_shutting_down() => break,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of file descriptors and the like: do not spin.
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

const MAXCLIENTS_REPLY: &[u8] = b"-ERR max number of clients reached\r\n";
const DENIED_REPLY: &[u8] = b"-DENIED flin is running in protected mode because protected mode is \
enabled and no password is set. In this mode connections are only accepted from the loopback \
interface. If you want to connect from external computers to flin you may adopt one of the \
following solutions: 1) Set a password with --requirepass (FLIN_REQUIREPASS) and restart the \
server. 2) If the network is trusted, restart the server with '--protected-mode no'. 3) Bind \
to a loopback address only (--bind 127.0.0.1).\r\n";

fn admit(w: &Rc<Worker>, stream: TcpStream, peer: SocketAddr) {
    let shared = w.shared();
    let counters = w.local.counters();
    let now = shared
        .clients
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
        + 1;
    stats::add(&counters.connections, 1);
    // Protected mode guards a server without a password; CONFIG SET requirepass lifts it.
    let protected = shared.protected && shared.settings.requirepass().is_none();
    let refusal = refusal(now, shared.settings.maxclients(), protected, peer);
    if let Some(reply) = refusal {
        shared
            .clients
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        stats::add(&counters.rejected_connections, 1);
        monoio::spawn(refuse(stream, reply));
        return;
    }
    let id = shared
        .next_client_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let laddr = stream.local_addr().unwrap_or(shared.local_addr);
    let entry = Arc::new(ClientEntry::new(
        id,
        peer,
        laddr,
        stream.as_raw_fd(),
        crate::clock::now_ms() as u64,
    ));
    shared.registry.add(entry.clone());
    let conn = Rc::new(ConnShared::new(&stream, entry.clone()));
    w.register(id, conn.clone());
    let w = w.clone();
    monoio::spawn(async move {
        let handoff = connection::serve(stream, entry, conn, w.local.clone()).await;
        w.unregister(id);
        if let Some(h) = handoff {
            crate::replication::attach(w.local.shared.clone(), h);
        }
    });
}

/// Why a new connection, the `clients`-th open one, is refused, if it is: over maxclients, or
/// from another host while protected mode is on (as Redis checks, in that order).
fn refusal(
    clients: usize,
    maxclients: usize,
    protected: bool,
    peer: SocketAddr,
) -> Option<&'static [u8]> {
    if clients > maxclients {
        Some(MAXCLIENTS_REPLY)
    } else if protected && !is_loopback(peer) {
        Some(DENIED_REPLY)
    } else {
        None
    }
}

fn is_loopback(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

async fn refuse(mut stream: TcpStream, reply: &'static [u8]) {
    let _ = stream.write_all(reply).await;
}

/// Every [`CRON_INTERVAL`]: advance the tick, close idle clients, sample ops/s (worker 0),
/// and carry out shutdown.
async fn cron(worker: Weak<Worker>) {
    loop {
        monoio::time::sleep(CRON_INTERVAL).await;
        let Some(w) = worker.upgrade() else {
            return;
        };
        let (local, shared) = (&*w.local, w.shared());
        let timeout_ms = shared.settings.timeout_secs().saturating_mul(1000);
        let tick = w.tick.get() + 1;
        w.tick.set(tick);
        if local.id == 0 {
            let total = ServerStats::sum(&shared.workers).ops_processed;
            if let Ok(mut s) = shared.ops.lock() {
                s.record(total, crate::clock::now_ms() as u64);
            }
        }
        local.counters().major_faults.store(
            stats::thread_major_faults(),
            std::sync::atomic::Ordering::Relaxed,
        );
        // While replicas may be attached, expiring holds the stream: no write of the key can
        // come between its removal and its DEL in the stream.
        let mut stream = (shared.primary.is_active() && !shared.replica.is_replica())
            .then(|| shared.primary.lock());
        let expired = local
            .expiry
            .run(&shared.engine, crate::clock::now_ms() as u64, |db, key| {
                let expired = crate::notify::EXPIRED;
                shared.pubsub.key_event(expired, "expired", key, db, None);
                if let Some(stream) = stream.as_mut().filter(|s| !s.mirroring) {
                    stream.feed(Some(db), &[b"DEL", key]);
                }
            });
        if local.id == 0 {
            if let Some(stream) = stream.as_mut() {
                if tick % PING_TICKS == 0 && !stream.replicas.is_empty() {
                    // Redis's repl-ping-replica-period: replicas see the primary alive.
                    stream.feed(None, &[b"PING"]);
                }
                stream.free_if_unused(shared.primary.flag());
            }
        }
        drop(stream);
        if expired > 0 {
            stats::add(&local.counters().expired_keys, expired);
        }
        for c in w.conns.borrow().values() {
            if c.entry.is_killed() && !c.is_closing() {
                c.shut_both();
            }
        }
        if timeout_ms > 0 {
            let now = crate::clock::now_ms() as u64;
            for c in w.conns.borrow().values() {
                // As on Redis, the link to this replica's primary never times out.
                let primary = c.entry.role() == crate::clients::Role::Primary;
                if c.entry.idle_ms(now) > timeout_ms && !c.is_closing() && !primary {
                    stats::add(&local.counters().idle_closed, 1);
                    c.shut_both();
                }
            }
        }
        if shared.is_shutting_down() {
            match w.stopping_since.get() {
                None => {
                    w.stopping_since.set(Some(tick));
                    let c = w.accept_canceller.replace(Canceller::new());
                    c.cancel();
                    for c in w.conns.borrow().values() {
                        c.shut_read();
                    }
                }
                Some(since) if tick - since > SHUTDOWN_GRACE_TICKS => {
                    for c in w.conns.borrow().values() {
                        c.shut_both();
                    }
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn protected_mode_refuses_other_hosts_only() {
        for local in [
            "127.0.0.1:5000",
            "127.8.9.10:5000",
            "[::1]:5000",
            "[::ffff:127.0.0.1]:5000",
        ] {
            assert_eq!(refusal(1, 10, true, addr(local)), None, "{local}");
        }
        for remote in [
            "192.0.2.7:5000",
            "10.0.0.1:1",
            "[2001:db8::1]:5000",
            "[::ffff:192.0.2.7]:1",
        ] {
            assert_eq!(
                refusal(1, 10, true, addr(remote)),
                Some(DENIED_REPLY),
                "{remote}"
            );
            assert_eq!(refusal(1, 10, false, addr(remote)), None, "{remote}");
        }
        // maxclients is answered first, as Redis does.
        assert_eq!(
            refusal(11, 10, true, addr("192.0.2.7:1")),
            Some(MAXCLIENTS_REPLY)
        );
        assert_eq!(
            refusal(11, 10, false, addr("127.0.0.1:1")),
            Some(MAXCLIENTS_REPLY)
        );
        assert_eq!(refusal(10, 10, false, addr("127.0.0.1:1")), None);
    }
}

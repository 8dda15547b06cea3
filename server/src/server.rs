//! [`Server::start`]: opens the engine, binds the listeners, starts the workers; the
//! [`ServerHandle`] it returns reports the address and [`ServerStats`], and stops the server.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use flin_engine::{Engine, Options};
use socket2::{Domain, Protocol, Socket, Type};

use crate::checkpoints::Saves;
use crate::clients::Registry;
use crate::cmdstats::{Baseline, CommandStats};
use crate::commands;
use crate::config::{Config, Driver, DriverChoice};
use crate::heap::Heap;
use crate::latency::LatencyMonitor;
use crate::monitor::Monitors;
use crate::pause::ClientPause;
use crate::repl_resume::{Resume, Side};
use crate::settings::Settings;
use crate::shared::Shared;
use crate::slowlog::SlowLogs;
use crate::stats::{OpsSampler, ServerStats, WorkerCounters};
use crate::worker;

/// Why the server could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The engine could not open the data directory.
    Engine(flin_engine::Error),
    /// The address could not be bound (in use, not local, no permission).
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it could not be bound.
        source: io::Error,
    },
    /// A worker's event loop could not start (e.g. `--driver io-uring` on a kernel without it).
    Runtime {
        /// The driver's name, `io_uring` or `epoll`.
        driver: &'static str,
        /// Why the thread or its event loop could not start.
        source: io::Error,
    },
    /// The configuration is not usable.
    Config(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Engine(e) => write!(f, "cannot open the data directory: {e}"),
            StartError::Bind { addr, source } if source.kind() == io::ErrorKind::AddrInUse => {
                write!(
                    f,
                    "cannot listen on {addr}: the port is already in use (is another flin-server \
                 or redis-server running? choose another --port)"
                )
            }
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Runtime { driver, source } => {
                write!(
                    f,
                    "cannot start a {driver} event loop: {source} (try --driver epoll)"
                )
            }
            StartError::Config(msg) => write!(f, "invalid configuration: {msg}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Engine(e) => Some(e),
            StartError::Bind { source, .. } | StartError::Runtime { source, .. } => Some(source),
            StartError::Config(_) => None,
        }
    }
}

/// The server.
pub struct Server;

impl Server {
    /// Opens the engine in `config.dir`, binds `config.bind:config.port` (port 0 picks one)
    /// and starts the worker threads. Returns once every worker is accepting.
    ///
    /// # Errors
    /// [`StartError`]: the directory is locked or corrupt, the port is in use, the event loop
    /// cannot start.
    pub fn start(config: Config) -> Result<ServerHandle, StartError> {
        if config.maxclients == 0 {
            return Err(StartError::Config("--maxclients must be at least 1".into()));
        }
        let Some(events) = crate::notify::parse(config.notify_keyspace_events.as_bytes()) else {
            return Err(StartError::Config(format!(
                "--notify-keyspace-events: {}",
                crate::notify::INVALID
            )));
        };
        raise_open_file_limit(config.maxclients);
        let threads = config.worker_threads();
        let driver = resolve_driver(config.driver);
        let options = Options {
            fsync: config.fsync.engine(),
            segment_size_bytes: config.segment_size,
            compaction_rate_bytes_per_sec: config.compaction_rate,
            cold_read_threads: usize::from(config.cold_read_threads),
            repair: config.repair,
            databases: config.databases,
            // A worker must not block: a connection waits out a write stall at its next write
            // command (see `connection::process`).
            blocking_write_stalls: false,
            ..Options::default()
        };
        // `--replicaof` wins and is recorded (once the store is open, so its directory is
        // ours); without it, the role the server had when it stopped (REPLICAOF kept it in
        // the data directory). A replica's engine leaves expiry to its primary.
        let given = config.primary().map_err(StartError::Config)?;
        let primary = match &given {
            Some(p) => Some(p.clone()),
            None => {
                let p = crate::repl_state::load_role(&config.dir).map_err(StartError::Config)?;
                if let Some((host, port)) = &p {
                    tracing::info!(
                        primary = %format!("{host}:{port}"),
                        file = %config.dir.join(crate::repl_state::ROLE_FILE).display(),
                        "following the primary recorded in the data directory; REPLICAOF NO ONE makes this server a primary"
                    );
                }
                p
            }
        };
        // A primary taking up the stream it recorded at its last clean shutdown keeps the keys
        // that expired meanwhile until the stream exists: their DELs go down it then, to the
        // replicas that continue.
        let resuming = config.dir.join(crate::repl_resume::RESUME_FILE).exists();
        let options = Options {
            expire_keys: primary.is_none() && !resuming,
            ..options
        };
        let engine = Engine::open(&config.dir, options).map_err(StartError::Engine)?;
        crate::replication::clean_up(&config.dir);
        // Read now, removed only once the start can no longer fail before anything changes
        // the store (below): a start that fails (a port in use) keeps it for the next.
        let resume = crate::repl_resume::read(&config.dir).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            None
        });
        let listeners = bind_listeners(SocketAddr::new(config.bind, config.port), threads)?;
        let local_addr = listeners[0]
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: SocketAddr::new(config.bind, config.port),
                source,
            })?;
        let protected = config.protected_mode
            && config.requirepass.as_deref().unwrap_or_default().is_empty()
            && !config.bind.is_loopback();
        let saves = Arc::new(Saves::new(
            config.checkpoint_root(),
            engine.stats().last_seq,
        ));
        if let Some(p) = &given {
            crate::repl_state::save_role(&config.dir, Some(p)).map_err(|e| {
                StartError::Config(format!(
                    "cannot record --replicaof in {}: {e}",
                    config.dir.join(crate::repl_state::ROLE_FILE).display()
                ))
            })?;
        }
        let shared = Arc::new(Shared {
            engine: Arc::new(engine),
            workers: (0..threads).map(|_| WorkerCounters::default()).collect(),
            driver,
            local_addr,
            threads,
            shutdown: AtomicBool::new(false),
            clients: AtomicUsize::new(0),
            cold_rings: AtomicUsize::new(0),
            registry: Registry::default(),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            ops: Mutex::new(OpsSampler::default()),
            stats_baseline: Mutex::new(ServerStats::default()),
            protected,
            saves,
            heap: Heap::new(),
            settings: settings_of(&config),
            command_stats: (0..threads)
                .map(|_| CommandStats::new(commands::stat_slots()))
                .collect(),
            command_stats_baseline: Mutex::new(Baseline::default()),
            slowlog: SlowLogs::new(threads),
            latency: LatencyMonitor::new(threads),
            monitors: Monitors::default(),
            pubsub: {
                let p = crate::pubsub::PubSub::default();
                p.events.set(events);
                p
            },
            pause: ClientPause::default(),
            shutdown_wait: crate::shutdown_wait::ShutdownWait::default(),
            exec_gate: crate::transactions::ExecGate::new(threads),
            watches: crate::transactions::Watches::default(),
            replica: crate::repl_state::ReplicaLink::new(
                primary,
                config.masterauth.clone(),
                config.masteruser.clone(),
            ),
            repl_inbox: crate::repl_state::Inbox::default(),
            primary: crate::backlog::Primary::new(
                config.repl_backlog_size,
                crate::settings::Settings::default().output_buffer_limits()[1],
            ),
            config,
        });
        // Removed durably before any worker or the replication link can change the store: a
        // crash from here on leaves no position the store may no longer match.
        let resume = resume.filter(|_| match crate::repl_resume::consume(&shared.config.dir) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("{e}");
                false
            }
        });
        resume_stream(&shared, resume);
        // Keys the engine's own sweep expires are reported too (held weakly: the engine is
        // part of what it points at).
        let weak = Arc::downgrade(&shared);
        shared.engine.on_expired(move |db, key| {
            if let Some(s) = weak.upgrade() {
                s.pubsub
                    .key_event(crate::notify::EXPIRED, "expired", key, db, None);
                crate::commands::expired(&s);
            }
        });
        // Under the key's lock: the DEL is queued before any later write of the key.
        let weak = Arc::downgrade(&shared);
        shared.engine.on_expiring(move |db, key| {
            if let Some(s) = weak.upgrade() {
                s.primary.owe_del(db, key);
            }
        });
        let mut threads =
            worker::spawn_all(&shared, listeners).map_err(|source| StartError::Runtime {
                driver: shared.driver.name(),
                source,
            })?;
        threads.push(crate::replication::spawn(shared.clone()).map_err(|source| {
            StartError::Runtime {
                driver: shared.driver.name(),
                source,
            }
        })?);
        if !shared.replica.is_replica() {
            // Held off at open while a recorded stream was taken up (see above).
            shared.engine.set_expire_keys(true);
        }
        log_startup(&shared);
        Ok(ServerHandle { shared, threads })
    }
}

/// Takes up the replication stream the last clean shutdown recorded: a replica asks its
/// primary to continue it, a primary continues it for its replicas.
fn resume_stream(shared: &Shared, resume: Option<Resume>) {
    let Some(Resume {
        side,
        replid,
        offset,
        db,
    }) = resume
    else {
        return;
    };
    let flag = shared.primary.flag();
    if shared.replica.is_replica() {
        let mut link = shared.replica.lock();
        link.replid = Some(replid.clone());
        link.offset = offset;
        link.read_offset = offset;
        link.db = db;
        shared.primary.lock().mirror(&replid, offset, flag);
        tracing::info!(%replid, offset, "replication position kept by the last clean shutdown: asking the primary to continue from it");
    } else {
        let mut stream = shared.primary.lock();
        stream.resume(&replid, offset, side == Side::Replica, flag);
        tracing::info!(replid = %stream.replid, offset, "replication stream kept by the last clean shutdown: replicas that had all of it continue");
    }
}

/// Where this server's replication stream stands, for the next start: the stream a replica
/// applied, or a primary's own while it has a backlog (without one, writes do not move its
/// offset, so no offset describes the store).
fn stream_position(shared: &Shared) -> Option<Resume> {
    if shared.replica.is_replica() {
        let link = shared.replica.lock();
        return link.replid.clone().map(|replid| Resume {
            side: Side::Replica,
            replid,
            offset: link.offset,
            db: link.db,
        });
    }
    let stream = shared.primary.lock();
    (stream.active() && !stream.mirroring).then(|| Resume {
        side: Side::Primary,
        replid: stream.replid.clone(),
        offset: stream.offset,
        db: 0,
    })
}

/// Records the stream's position once the store is synced; a failure costs the replicas a
/// full sync, not the shutdown.
fn keep_position(dir: &std::path::Path, position: &Resume) {
    let file = dir.join(crate::repl_resume::RESUME_FILE);
    match crate::repl_resume::save(dir, position) {
        Ok(()) => tracing::info!(file = %file.display(), replid = %position.replid,
                                 offset = position.offset,
                                 "replication position kept: replication continues from it after a restart"),
        Err(e) => tracing::warn!(file = %file.display(), error = %e,
                                 "cannot keep the replication position; after a restart replicas full-sync"),
    }
}

/// How long stopping waits for the replicas' threads to let go of the store.
const REPLICA_THREADS_END_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// Descriptors the server needs beyond one per client: listeners, segment files, the log.
const FD_RESERVE: u64 = 64;

/// Raises the soft open-file limit so --maxclients clients fit, as Redis does; says so in the
/// log when the hard limit does not allow it.
fn raise_open_file_limit(maxclients: usize) {
    let want = maxclients as u64 + FD_RESERVE;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls with a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    let current = lim.rlim_cur;
    if current >= want {
        return;
    }
    let target = want.min(lim.rlim_max);
    lim.rlim_cur = target;
    // SAFETY: as above; raising the soft limit up to the hard one needs no privilege.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0;
    let now = if raised { target } else { current };
    if now < want {
        tracing::warn!(
            open_files = now,
            maxclients,
            "the open-file limit allows only about {} clients; raise it (ulimit -n) or lower \
             --maxclients",
            now.saturating_sub(FD_RESERVE)
        );
    }
}

fn log_startup(shared: &Shared) {
    let rec = &shared.engine.stats().recovery;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        address = %shared.local_addr,
        threads = shared.threads,
        driver = shared.driver.name(),
        idle_spin_us = match shared.driver {
            Driver::Epoll => shared.config.idle_spin().as_micros(),
            Driver::IoUring => 0,
        },
        dir = %shared.config.dir.display(),
        fsync = shared.config.fsync.name(),
        recovered_keys = rec.keys,
        recovered_segments = rec.segments,
        recovery_ms = rec.duration_ms,
        "flin-server ready"
    );
    if shared.protected {
        tracing::warn!(
            "protected mode: no --requirepass and a non-loopback --bind; clients from other \
             hosts will be refused"
        );
    }
}

/// `auto` becomes io_uring when the kernel lets this process create a ring.
fn resolve_driver(choice: DriverChoice) -> Driver {
    match choice {
        DriverChoice::IoUring => Driver::IoUring,
        DriverChoice::Epoll => Driver::Epoll,
        DriverChoice::Auto if monoio::utils::detect_uring() => Driver::IoUring,
        DriverChoice::Auto => Driver::Epoll,
    }
}

/// Binds one listener per worker with SO_REUSEPORT, after checking that nobody else listens
/// on the address: SO_REUSEPORT would otherwise let a second server silently share the port.
fn bind_listeners(addr: SocketAddr, n: usize) -> Result<Vec<std::net::TcpListener>, StartError> {
    let err = |source| StartError::Bind { addr, source };
    // The probe: a plain socket (no SO_REUSEPORT) fails with EADDRINUSE if anyone listens.
    let probe = new_socket(addr, false).map_err(err)?;
    probe.bind(&addr.into()).map_err(err)?;
    let port = probe
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(addr.port(), |a| a.port());
    drop(probe);
    let addr = SocketAddr::new(addr.ip(), port);
    let err = |source| StartError::Bind { addr, source };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = new_socket(addr, true).map_err(err)?;
        s.bind(&addr.into()).map_err(err)?;
        s.listen(1024).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        out.push(s.into());
    }
    Ok(out)
}

fn new_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let domain = match addr.ip() {
        IpAddr::V4(_) => Domain::IPV4,
        IpAddr::V6(_) => Domain::IPV6,
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    Ok(s)
}

/// A running server. Dropping it shuts the server down.
pub struct ServerHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the server listens on (with the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// True when protected mode is in force: no password, a non-loopback bind, and
    /// `--protected-mode yes`; clients from other hosts are refused.
    pub fn is_protected(&self) -> bool {
        self.shared.protected
    }

    /// The I/O driver the workers run (what `--driver auto` resolved to).
    pub fn driver(&self) -> Driver {
        self.shared.driver
    }

    /// The engine the server runs on (tests inject faults through it).
    #[doc(hidden)]
    pub fn engine(&self) -> &flin_engine::Engine {
        &self.shared.engine
    }

    /// Holds every full sync's load (the replica side) before it flushes the store, clients
    /// getting `-LOADING` meanwhile, until called with `false`. For tests.
    #[doc(hidden)]
    pub fn hold_replica_load(&self, held: bool) {
        self.shared.replica.hold_load(held);
    }

    /// Counters summed over the workers, and the engine's.
    pub fn stats(&self) -> ServerStats {
        self.shared.stats()
    }

    /// Asks the server to stop, from any thread; [`ServerHandle::wait`] returns once it has.
    pub fn request_shutdown(&self) {
        self.shared.request_shutdown();
    }

    /// A handle other threads (a signal handler) can use to request shutdown.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.shared.clone())
    }

    /// Stops the server: no new connections, replies to what was read, engine synced.
    ///
    /// # Errors
    /// The engine's final sync error.
    pub fn shutdown(self) -> Result<(), flin_engine::Error> {
        self.shared.request_shutdown();
        self.wait()
    }

    /// Blocks until the server stops (SHUTDOWN, a signal, [`ServerHandle::request_shutdown`]),
    /// then closes the engine.
    ///
    /// # Errors
    /// The engine's final sync error.
    pub fn wait(mut self) -> Result<(), flin_engine::Error> {
        self.join_workers();
        // A BGSAVE still running finishes: it would leave half a checkpoint otherwise.
        self.shared.saves.join_background();
        // The replicas' threads end within their tick once the server stops.
        let deadline = Instant::now() + REPLICA_THREADS_END_MAX;
        while !self.shared.primary.lock().replicas.is_empty() && Instant::now() < deadline {
            self.shared.primary.wake_senders();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Nothing writes any more but the engine's sweep, whose removals leave no trace in
        // the log (an expired key comes back at open and its DEL goes down the stream then).
        let position = stream_position(&self.shared);
        let dir = self.shared.config.dir.clone();
        let shared = self.shared.clone();
        drop(self);
        // Workers are gone; the last references to the engine are ours.
        match Arc::try_unwrap(shared) {
            Ok(shared) => match Arc::try_unwrap(shared.engine) {
                Ok(engine) => engine.close(),
                Err(engine) => engine.sync(),
            },
            Err(shared) => shared.engine.sync(),
        }?;
        if let Some(position) = position {
            keep_position(&dir, &position);
        }
        Ok(())
    }

    fn join_workers(&mut self) {
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shared.request_shutdown();
            self.join_workers();
        }
    }
}

/// Requests shutdown from another thread.
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<Shared>);

impl ShutdownTrigger {
    /// Asks the server to stop as SIGTERM does: after waiting up to `shutdown-timeout` for
    /// lagging replicas (writes paused); a second call while that wait runs stops at once.
    pub fn trigger(&self) {
        crate::shutdown::on_signal(&self.0);
    }
}

/// The run-time settings, from the flags.
fn settings_of(c: &Config) -> Settings {
    let s = Settings::default();
    s.set_maxclients(c.maxclients);
    s.set_replica_priority(u64::from(c.replica_priority));
    s.set_shutdown_timeout_secs(c.shutdown_timeout);
    s.set_replica_read_only(c.replica_read_only);
    s.set_timeout_secs(c.timeout);
    s.set_requirepass(c.requirepass.as_deref().unwrap_or_default().as_bytes());
    s.set_proto_max_bulk_len(c.proto_max_bulk_len);
    s.set_client_output_limit(c.client_output_limit);
    s.set_slowlog_log_slower_than_us(c.slowlog_log_slower_than);
    s.set_slowlog_max_len(c.slowlog_max_len);
    s.set_latency_monitor_threshold_ms(c.latency_monitor_threshold);
    s
}

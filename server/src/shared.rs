//! State the subsystems share, at the bottom of the layers that use it: [`Shared`], one per
//! server, which every thread reaches through an `Arc`, and [`WorkerShared`], one per worker,
//! which that worker's tasks (its connections, its cron, its durability watcher) reach through
//! an `Rc`. The commands, the connections and the workers take what they need from here, never
//! from the handle or the worker that owns them; this file imports only the modules below it
//! (configuration, counters, the client registry, saves, expiry, durability).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use flin_engine::{ColdRing, Engine};

use crate::backlog::Primary;
use crate::checkpoints::Saves;
use crate::clients::Registry;
use crate::cmdstats::{Baseline, CommandStats};
use crate::config::{Config, Driver};
use crate::durability::DurabilityGate;
use crate::expiry::ExpiryQueue;
use crate::heap::Heap;
use crate::latency::LatencyMonitor;
use crate::monitor::Monitors;
use crate::pause::ClientPause;
use crate::pubsub::PubSub;
use crate::repl_state::ReplicaLink;
use crate::settings::Settings;
use crate::slowlog::SlowLogs;
use crate::stats::{OpsSampler, ServerStats, WorkerCounters};
use crate::transactions::{ExecGate, Watches};

/// State every thread of the server shares (one per server).
pub struct Shared {
    pub config: Config,
    pub engine: Arc<Engine>,
    pub workers: Box<[WorkerCounters]>,
    pub driver: Driver,
    pub local_addr: SocketAddr,
    pub threads: usize,
    /// Set to stop the server (SHUTDOWN, a signal, `ServerHandle::shutdown`).
    pub shutdown: AtomicBool,
    /// Clients connected now, for --maxclients (touched once per connect and disconnect).
    pub clients: AtomicUsize,
    /// Workers that read cold values on their own io_uring (the others use the engine's pool).
    pub cold_rings: AtomicUsize,
    /// Every connected client, for CLIENT LIST / INFO / KILL.
    pub registry: Registry,
    pub next_client_id: AtomicU64,
    pub started: Instant,
    pub ops: Mutex<OpsSampler>,
    /// The counters' sums at the last CONFIG RESETSTAT; [`Shared::stats`] counts from there.
    pub stats_baseline: Mutex<ServerStats>,
    /// True when protected mode refuses non-loopback clients.
    pub protected: bool,
    /// SAVE / BGSAVE state.
    pub saves: Arc<Saves>,
    /// The heap at start and its peak (MEMORY STATS).
    pub heap: Heap,
    /// What CONFIG SET changes at run time.
    pub settings: Settings,
    /// Per-command statistics, one block per worker (INFO commandstats, latencystats,
    /// errorstats).
    pub command_stats: Box<[CommandStats]>,
    /// The command statistics at the last CONFIG RESETSTAT.
    pub command_stats_baseline: Mutex<Baseline>,
    /// SLOWLOG, one log per worker.
    pub slowlog: SlowLogs,
    /// LATENCY, one monitor per worker.
    pub latency: LatencyMonitor,
    /// MONITOR's clients.
    pub monitors: Monitors,
    /// CLIENT PAUSE.
    pub pause: ClientPause,
    /// A shutdown waiting for lagging replicas (`crate::shutdown`).
    pub shutdown_wait: crate::shutdown_wait::ShutdownWait,
    /// EXEC's gate: each worker holds its part while it runs a batch.
    pub exec_gate: ExecGate,
    /// The keys clients WATCH.
    pub watches: Watches,
    /// Pub/Sub: every client's subscriptions.
    pub pubsub: PubSub,
    /// The primary this server follows, if any, and the link's state.
    pub replica: ReplicaLink,
    /// The link thread hands a link in sync to worker 0 here, which applies its stream.
    pub repl_inbox: crate::repl_state::Inbox,
    /// The primary side: replication id and offset, the backlog, the attached replicas.
    pub primary: Primary,
}

impl Shared {
    /// The counters summed over the workers since the last CONFIG RESETSTAT, and the engine's.
    pub fn stats(&self) -> ServerStats {
        let baseline = self
            .stats_baseline
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default();
        let mut s = ServerStats::sum(&self.workers).since(&baseline);
        s.instantaneous_ops_per_sec = self.ops.lock().map_or(0, |o| o.per_sec());
        s.uptime_secs = self.started.elapsed().as_secs();
        s.engine = self.engine.stats();
        s.cold_read_rings = self.cold_rings.load(Ordering::Relaxed) as u64;
        s
    }

    /// CONFIG RESETSTAT: the counters, the command and error statistics start again from 0.
    pub fn reset_stats(&self) {
        let now = ServerStats::sum(&self.workers);
        if let Ok(mut b) = self.stats_baseline.lock() {
            *b = now;
        }
        let commands = Baseline::take(&self.command_stats);
        if let Ok(mut b) = self.command_stats_baseline.lock() {
            *b = commands;
        }
    }

    /// Asks every worker to stop (they see it at their next cron tick); logs the first ask.
    pub fn request_shutdown(&self) {
        if !self.shutdown.swap(true, Ordering::AcqRel) {
            tracing::info!("shutting down: no new connections, answering what was read");
        }
        self.replica.stop();
        // Connections a pause holds close (a shutdown waiting for replicas pauses writes).
        self.pause.stop();
        self.primary
            .lock()
            .drop_replicas("the server is shutting down");
        self.primary.wake_senders();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// The longest string a client may send or build (Redis's proto-max-bulk-len).
    pub fn proto_max_bulk_len(&self) -> u64 {
        self.settings.proto_max_bulk_len()
    }
}

/// What one worker's tasks share (one per worker thread; it never leaves that thread).
pub struct WorkerShared {
    /// The worker's index among the server's workers (its counters are `workers[id]`).
    pub id: usize,
    pub shared: Arc<Shared>,
    /// Keys this worker's clients gave an expiry, for active expiry.
    pub expiry: ExpiryQueue,
    /// The connections' shared wait for durability (`--fsync always`); its watcher task holds
    /// it weakly.
    pub durability: Rc<DurabilityGate>,
    /// The worker's own io_uring for cold reads (`None`: they go to the engine's pool).
    pub cold_ring: Option<RefCell<ColdRing>>,
}

impl WorkerShared {
    /// Worker `id`'s state: no expiry tracked yet, a durability gate on the engine, and a
    /// ring for cold reads unless `--cold-read-depth 0` (or the kernel refuses one).
    pub fn new(id: usize, shared: Arc<Shared>) -> WorkerShared {
        let durability = Rc::new(DurabilityGate::new(shared.engine.clone()));
        let cold_ring = match shared.config.cold_read_depth {
            0 => None,
            depth => match shared.engine.cold_ring(u32::from(depth)) {
                Ok(ring) => {
                    shared.cold_rings.fetch_add(1, Ordering::Relaxed);
                    Some(RefCell::new(ring))
                }
                Err(e) => {
                    tracing::warn!(
                        worker = id,
                        error = %e,
                        "no io_uring for cold reads; values not in memory are read on the \
                         --cold-read-threads pool instead (one thread hand-off per read)"
                    );
                    None
                }
            },
        };
        WorkerShared {
            id,
            shared,
            expiry: ExpiryQueue::default(),
            durability,
            cold_ring,
        }
    }

    /// Starts reading the records `keys` would touch that are not in memory (see
    /// `flin_engine::Db::fetch_cold_for`): on the worker's ring when it has one.
    pub fn fetch_cold(
        &self,
        db: &flin_engine::Db<'_>,
        keys: &[&[u8]],
        blind: impl Fn(usize) -> bool,
    ) -> Option<flin_engine::Fetch> {
        match &self.cold_ring {
            Some(ring) => db.fetch_cold_on(&mut ring.borrow_mut(), keys, blind),
            None => db.fetch_cold_for(keys, blind),
        }
    }

    /// This worker's counters, which only its thread writes.
    pub fn counters(&self) -> &WorkerCounters {
        &self.shared.workers[self.id]
    }
}

//! Server counters: one [`WorkerCounters`] per worker thread, written only by that thread and
//! summed when read ([`crate::Server::stats`], INFO).
//!
//! A counter is an `AtomicU64` updated with a relaxed load and a relaxed store, never a
//! read-modify-write: on x86 and ARM that compiles to a plain load and store, as cheap as a
//! `Cell`, while other threads may still read it soundly. No counter is shared between
//! threads, so there is no contention and no cache line ping-pong (each worker's block is
//! padded to its own cache lines).

use std::sync::atomic::{AtomicU64, Ordering};

/// One worker's counters. Only the owning worker calls the `add_*`/`set_*` methods.
#[derive(Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    pub commands: AtomicU64,
    pub connections: AtomicU64,
    pub active_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    /// Reply bytes produced and not yet written to sockets, over this worker's clients.
    pub output_queued_bytes: AtomicU64,
    /// The most reply bytes one client of this worker had queued at once.
    pub output_queued_bytes_peak: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub idle_closed: AtomicU64,
    /// Keys removed by active expiry.
    pub expired_keys: AtomicU64,
    /// Times a connection of this worker waited for cold records (not in memory) to be read.
    pub cold_waits: AtomicU64,
    /// Major page faults of this worker's thread (a read from disk it waited for), as the
    /// kernel counted them at the last cron tick.
    pub major_faults: AtomicU64,
}

/// Adds `n` to a counter owned by the calling thread.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Subtracts `n` from a gauge owned by the calling thread.
#[inline]
pub fn sub(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_sub(n), Ordering::Relaxed);
}

/// Raises a peak gauge owned by the calling thread.
#[inline]
pub fn raise(c: &AtomicU64, v: u64) {
    if v > c.load(Ordering::Relaxed) {
        c.store(v, Ordering::Relaxed);
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Server figures, summed over workers, plus the engine's.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ServerStats {
    /// Clients connected now.
    pub active_connections: u64,
    /// Connections accepted since start (Redis's total_connections_received).
    pub total_connections: u64,
    /// Connections refused (maxclients, protected mode).
    pub rejected_connections: u64,
    /// Commands executed (Redis's total_commands_processed).
    pub ops_processed: u64,
    /// Commands per second, averaged over about the last 1.6 s.
    pub instantaneous_ops_per_sec: u64,
    /// Key lookups that found the key.
    pub keyspace_hits: u64,
    /// Key lookups that did not.
    pub keyspace_misses: u64,
    /// Bytes read from clients.
    pub net_input_bytes: u64,
    /// Bytes written to clients.
    pub net_output_bytes: u64,
    /// Reply bytes queued for clients and not yet written, now.
    pub output_queued_bytes: u64,
    /// The most reply bytes any one client had queued at once since start.
    pub output_queued_bytes_peak: u64,
    /// Connections closed for broken framing or an exceeded limit.
    pub protocol_errors: u64,
    /// Clients closed by --timeout.
    pub idle_closed: u64,
    /// Keys removed by active expiry.
    pub expired_keys: u64,
    /// Times a connection waited for cold records to be read (see `Engine::fetch_cold`).
    pub cold_waits: u64,
    /// Major page faults of the worker threads, summed: each one stalled every client of its
    /// worker while the disk answered.
    pub worker_major_faults: u64,
    /// Workers that read cold values on their own io_uring (the rest use the engine's pool).
    pub cold_read_rings: u64,
    /// Seconds since the server started.
    pub uptime_secs: u64,
    /// The engine's own figures.
    pub engine: flin_engine::Stats,
}

impl ServerStats {
    /// Sums the workers' counters (the engine part is left default).
    pub(crate) fn sum(workers: &[WorkerCounters]) -> ServerStats {
        let mut s = ServerStats::default();
        for w in workers {
            s.ops_processed += get(&w.commands);
            s.total_connections += get(&w.connections);
            s.active_connections += get(&w.active_connections);
            s.rejected_connections += get(&w.rejected_connections);
            s.keyspace_hits += get(&w.keyspace_hits);
            s.keyspace_misses += get(&w.keyspace_misses);
            s.net_input_bytes += get(&w.net_input_bytes);
            s.net_output_bytes += get(&w.net_output_bytes);
            s.output_queued_bytes += get(&w.output_queued_bytes);
            s.output_queued_bytes_peak = s
                .output_queued_bytes_peak
                .max(get(&w.output_queued_bytes_peak));
            s.protocol_errors += get(&w.protocol_errors);
            s.idle_closed += get(&w.idle_closed);
            s.expired_keys += get(&w.expired_keys);
            s.cold_waits += get(&w.cold_waits);
            s.worker_major_faults += get(&w.major_faults);
        }
        s
    }

    /// These figures counted since `baseline` was taken (CONFIG RESETSTAT): the counters
    /// start again from 0; gauges (connections now, queued bytes, the peak) are left alone.
    pub(crate) fn since(mut self, baseline: &ServerStats) -> ServerStats {
        let b = baseline;
        for (v, base) in [
            (&mut self.ops_processed, b.ops_processed),
            (&mut self.total_connections, b.total_connections),
            (&mut self.rejected_connections, b.rejected_connections),
            (&mut self.keyspace_hits, b.keyspace_hits),
            (&mut self.keyspace_misses, b.keyspace_misses),
            (&mut self.net_input_bytes, b.net_input_bytes),
            (&mut self.net_output_bytes, b.net_output_bytes),
            (&mut self.protocol_errors, b.protocol_errors),
            (&mut self.idle_closed, b.idle_closed),
            (&mut self.expired_keys, b.expired_keys),
            (&mut self.cold_waits, b.cold_waits),
            (&mut self.worker_major_faults, b.worker_major_faults),
        ] {
            *v = v.saturating_sub(base);
        }
        self
    }
}

/// Samples of the command total, every 100 ms, for instantaneous_ops_per_sec (as Redis).
#[derive(Default)]
pub struct OpsSampler {
    samples: [u64; OPS_SAMPLES],
    next: usize,
    last_total: u64,
    last_ms: u64,
}

const OPS_SAMPLES: usize = 16;

impl OpsSampler {
    pub fn record(&mut self, total: u64, now_ms: u64) {
        if self.last_ms != 0 && now_ms > self.last_ms {
            let per_sec = (total.saturating_sub(self.last_total)) * 1000 / (now_ms - self.last_ms);
            self.samples[self.next] = per_sec;
            self.next = (self.next + 1) % OPS_SAMPLES;
        }
        self.last_total = total;
        self.last_ms = now_ms;
    }

    pub fn per_sec(&self) -> u64 {
        self.samples.iter().sum::<u64>() / OPS_SAMPLES as u64
    }
}

/// Major page faults of the calling thread so far (`getrusage(RUSAGE_THREAD)`).
pub(crate) fn thread_major_faults() -> u64 {
    // SAFETY: getrusage writes the struct we pass, which we own and zeroed.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut u) == 0 {
            u.ru_majflt as u64
        } else {
            0
        }
    }
}

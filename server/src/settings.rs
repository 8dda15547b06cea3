//! Settings CONFIG SET changes while the server runs, read where they apply: each is an
//! atomic (the password a lock), read with a relaxed load where the hot path reads it. The
//! server sets the start values from its flags ([`crate::Config`]).
//!
//! Thresholds compared against every command's duration are also kept in
//! [`crate::clock::ticks`], converted once when set, so the hot path compares integers.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::clock::us_to_ticks;

/// A threshold that nothing reaches.
const OFF: u64 = u64::MAX;

/// The settings that can change at run time.
pub struct Settings {
    maxclients: AtomicUsize,
    /// Redis's `replica-priority` (INFO's `slave_priority`).
    replica_priority: AtomicU64,
    /// Redis's `shutdown-timeout`: seconds a shutdown waits for lagging replicas.
    shutdown_timeout_secs: AtomicU64,
    /// Redis's `replica-read-only`: a replica refuses its clients' writes.
    replica_read_only: AtomicBool,
    timeout_secs: AtomicU64,
    requirepass: RwLock<Option<Arc<[u8]>>>,
    proto_max_bulk_len: AtomicU64,
    client_output_limit: AtomicU64,
    slowlog_log_slower_than_us: AtomicI64,
    slowlog_threshold_ticks: AtomicU64,
    slowlog_max_len: AtomicU64,
    latency_monitor_threshold_ms: AtomicU64,
    latency_threshold_ticks: AtomicU64,
    latency_tracking: AtomicBool,
    /// client-output-buffer-limit as last set: hard, soft, soft seconds of the normal,
    /// replica and pubsub classes (only normal's hard limit applies to flin, see CONFIG).
    output_buffer_limits: Mutex<[[u64; 3]; 3]>,
}

/// Redis's default client-output-buffer-limit.
const OUTPUT_BUFFER_LIMITS_DEFAULT: [[u64; 3]; 3] = [
    [0, 0, 0],
    [256 << 20, 64 << 20, 60],
    [32 << 20, 8 << 20, 60],
];

impl Default for Settings {
    /// Redis's defaults; the server then sets what its flags say.
    fn default() -> Settings {
        Settings {
            maxclients: AtomicUsize::new(10_000),
            replica_priority: AtomicU64::new(100),
            shutdown_timeout_secs: AtomicU64::new(10),
            replica_read_only: AtomicBool::new(true),
            timeout_secs: AtomicU64::new(0),
            requirepass: RwLock::new(None),
            proto_max_bulk_len: AtomicU64::new(512 << 20),
            client_output_limit: AtomicU64::new(1 << 20),
            slowlog_log_slower_than_us: AtomicI64::new(-1),
            slowlog_threshold_ticks: AtomicU64::new(OFF),
            slowlog_max_len: AtomicU64::new(128),
            latency_monitor_threshold_ms: AtomicU64::new(0),
            latency_threshold_ticks: AtomicU64::new(OFF),
            latency_tracking: AtomicBool::new(true),
            output_buffer_limits: Mutex::new(OUTPUT_BUFFER_LIMITS_DEFAULT),
        }
    }
}

impl Settings {
    /// A replica's priority for promotion by Sentinel (lowest non-zero first; 0 = never).
    pub fn replica_priority(&self) -> u64 {
        self.replica_priority.load(Ordering::Relaxed)
    }
    pub fn set_replica_priority(&self, n: u64) {
        self.replica_priority.store(n, Ordering::Relaxed);
    }

    /// Seconds SHUTDOWN, SIGTERM and SIGINT wait for lagging replicas (0: no wait).
    pub fn shutdown_timeout_secs(&self) -> u64 {
        self.shutdown_timeout_secs.load(Ordering::Relaxed)
    }
    pub fn set_shutdown_timeout_secs(&self, n: u64) {
        self.shutdown_timeout_secs.store(n, Ordering::Relaxed);
    }

    /// Whether a replica refuses its clients' writes.
    pub fn replica_read_only(&self) -> bool {
        self.replica_read_only.load(Ordering::Relaxed)
    }
    pub fn set_replica_read_only(&self, on: bool) {
        self.replica_read_only.store(on, Ordering::Relaxed);
    }

    pub fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }
    pub fn set_maxclients(&self, n: usize) {
        self.maxclients.store(n, Ordering::Relaxed);
    }

    /// Seconds a client may stay idle; 0 = forever.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.load(Ordering::Relaxed)
    }
    pub fn set_timeout_secs(&self, secs: u64) {
        self.timeout_secs.store(secs, Ordering::Relaxed);
    }

    /// The password clients must give, if any.
    pub fn requirepass(&self) -> Option<Arc<[u8]>> {
        self.requirepass.read().ok().and_then(|p| p.clone())
    }
    /// An empty password turns authentication off, as in Redis.
    pub fn set_requirepass(&self, pass: &[u8]) {
        if let Ok(mut p) = self.requirepass.write() {
            *p = (!pass.is_empty()).then(|| pass.into());
        }
    }

    pub fn proto_max_bulk_len(&self) -> u64 {
        self.proto_max_bulk_len.load(Ordering::Relaxed)
    }
    pub fn set_proto_max_bulk_len(&self, n: u64) {
        self.proto_max_bulk_len.store(n, Ordering::Relaxed);
    }

    /// Unsent reply bytes past which a client's requests wait (and a monitor is closed).
    pub fn client_output_limit(&self) -> u64 {
        self.client_output_limit.load(Ordering::Relaxed)
    }
    pub fn set_client_output_limit(&self, n: u64) {
        self.client_output_limit.store(n, Ordering::Relaxed);
    }

    pub fn slowlog_log_slower_than_us(&self) -> i64 {
        self.slowlog_log_slower_than_us.load(Ordering::Relaxed)
    }
    /// Negative turns the slow log off; 0 logs every command.
    pub fn set_slowlog_log_slower_than_us(&self, us: i64) {
        self.slowlog_log_slower_than_us.store(us, Ordering::Relaxed);
        let ticks = u64::try_from(us).map_or(OFF, us_to_ticks);
        self.slowlog_threshold_ticks.store(ticks, Ordering::Relaxed);
    }
    /// Commands that take this many ticks or more are logged.
    #[inline]
    pub fn slowlog_threshold_ticks(&self) -> u64 {
        self.slowlog_threshold_ticks.load(Ordering::Relaxed)
    }

    pub fn slowlog_max_len(&self) -> u64 {
        self.slowlog_max_len.load(Ordering::Relaxed)
    }
    pub fn set_slowlog_max_len(&self, n: u64) {
        self.slowlog_max_len.store(n, Ordering::Relaxed);
    }

    pub fn latency_monitor_threshold_ms(&self) -> u64 {
        self.latency_monitor_threshold_ms.load(Ordering::Relaxed)
    }
    /// 0 turns the latency monitor off.
    pub fn set_latency_monitor_threshold_ms(&self, ms: u64) {
        self.latency_monitor_threshold_ms
            .store(ms, Ordering::Relaxed);
        let ticks = match ms {
            0 => OFF,
            ms => us_to_ticks(ms.saturating_mul(1000)),
        };
        self.latency_threshold_ticks.store(ticks, Ordering::Relaxed);
    }
    /// Commands that take this many ticks or more are latency events.
    #[inline]
    pub fn latency_threshold_ticks(&self) -> u64 {
        self.latency_threshold_ticks.load(Ordering::Relaxed)
    }

    /// Whether per-command latency histograms are kept (Redis's `latency-tracking`).
    #[inline]
    pub fn latency_tracking(&self) -> bool {
        self.latency_tracking.load(Ordering::Relaxed)
    }
    pub fn set_latency_tracking(&self, on: bool) {
        self.latency_tracking.store(on, Ordering::Relaxed);
    }

    /// client-output-buffer-limit's classes (normal, replica, pubsub): hard, soft, seconds.
    pub fn output_buffer_limits(&self) -> [[u64; 3]; 3] {
        self.output_buffer_limits
            .lock()
            .map_or(OUTPUT_BUFFER_LIMITS_DEFAULT, |l| *l)
    }
    pub fn set_output_buffer_limits(&self, limits: [[u64; 3]; 3]) {
        if let Ok(mut l) = self.output_buffer_limits.lock() {
            *l = limits;
        }
    }
}

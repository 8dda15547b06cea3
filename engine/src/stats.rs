//! Engine statistics: cheap to read, no counter touched per read on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of the engine's state, from [`crate::Engine::stats`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Keys in the index (expired keys not yet removed included, as Redis's DBSIZE).
    pub keys: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes of records that the index points at (plus tombstones still needed).
    pub live_bytes: u64,
    /// Bytes of records superseded, deleted or expired, waiting for compaction.
    pub dead_bytes: u64,
    /// Bytes the segment files take on disk, the prepared spare segment included.
    pub disk_bytes: u64,
    /// Bytes the index's tables hold in memory.
    pub index_bytes: u64,
    /// Record bytes appended since open (user writes).
    pub bytes_written: u64,
    /// Record bytes written by compaction since open.
    pub compaction_bytes_written: u64,
    /// Compaction runs since open.
    pub compactions: u64,
    /// Disk bytes compaction freed since open.
    pub compaction_bytes_reclaimed: u64,
    /// Keys removed by the active-expiry sweep since open.
    pub expired_keys: u64,
    /// A compaction run is in progress.
    pub compaction_running: bool,
    /// Waits for compaction because writers outran it past the space bound (by writes, or by
    /// the callers of `Engine::write_stall_lifted`), and the milliseconds waited, summed over
    /// the waiters.
    pub write_stalls: u64,
    /// Milliseconds writers waited in stalls, summed.
    pub write_stall_ms: u64,
    /// Successful log syncs since open.
    pub fsyncs: u64,
    /// Unix time of the last successful fsync, in milliseconds; 0 before the first.
    pub last_fsync_unix_ms: u64,
    /// How long the last successful sync took, in microseconds.
    pub last_fsync_duration_us: u64,
    /// Failed writes and fsyncs since open.
    pub write_errors: u64,
    /// Reads that found a damaged record (not served).
    pub corrupt_reads: u64,
    /// Sealed segments not yet checked against their checksums since open (loaded from hints).
    pub segments_unverified: u64,
    /// Why writes are refused, when they are.
    pub poisoned: Option<String>,
    /// Highest sequence number written, and the highest known durable.
    pub last_seq: u64,
    /// Highest sequence number known to be on disk.
    pub durable_seq: u64,
    /// What `open` found.
    pub recovery: RecoveryStats,
    /// Records read off the caller's thread because they were not in memory (`fetch_cold`),
    /// those that failed (I/O error or checksum), those merged with a read of the same record
    /// already queued, and those queued or being read now.
    pub cold_reads: u64,
    /// See `cold_reads`.
    pub cold_read_errors: u64,
    /// See `cold_reads`.
    pub cold_reads_merged: u64,
    /// Cold reads made with `O_DIRECT` into a buffer handed to the caller, leaving the page
    /// cache alone (the others went through the page cache).
    pub cold_reads_direct: u64,
    /// The store is larger than the page cache could hold: cold reads skip it (`O_DIRECT`).
    pub cold_read_cache_bypass: bool,
    /// See `cold_reads`.
    pub cold_reads_in_flight: u64,
    /// Cold-read latency from request to data in memory, in microseconds (upper bounds of
    /// histogram buckets 25% wide): median, 99th and 99.9th percentiles since open.
    pub cold_read_p50_us: u64,
    /// See `cold_read_p50_us`.
    pub cold_read_p99_us: u64,
    /// See `cold_read_p50_us`.
    pub cold_read_p999_us: u64,
    /// Residency is being checked before reads: memory was short recently.
    pub residency_checks: bool,
    /// Blind writes (puts) that replaced a record not in memory without reading it, waiting
    /// to be checked, and checked since open.
    pub blind_writes_pending: u64,
    /// See `blind_writes_pending`.
    pub blind_writes_checked: u64,
    /// Keys found to share their 40-bit index fingerprint with another key whose blind write
    /// displaced their record (see `verify`; with `n` keys, one new key's write in
    /// `2^48 / n`): each stayed found meanwhile, and its slot is its own again.
    pub fingerprint_collisions: u64,
}

/// What [`crate::Engine::open`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveryStats {
    /// Segments kept.
    pub segments: u64,
    /// Records read (from hints or scans).
    pub records: u64,
    /// Live keys found.
    pub keys: u64,
    /// Bytes of a torn tail cut from the newest log segment.
    pub torn_bytes_truncated: u64,
    /// Bytes moved aside by repair.
    pub quarantined_bytes: u64,
    /// Segments whose hint file was used instead of a scan.
    pub segments_from_hints: u64,
    /// Records of transactions whose commit record never reached the disk (a crash in the
    /// middle of an EXEC): not applied.
    pub uncommitted_txn_records: u64,
    /// How long `open` took, in milliseconds.
    pub duration_ms: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub fsyncs: AtomicU64,
    pub last_fsync_unix_ms: AtomicU64,
    pub last_fsync_duration_us: AtomicU64,
    pub write_errors: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_bytes_written: AtomicU64,
    pub compaction_bytes_reclaimed: AtomicU64,
    pub expired_keys: AtomicU64,
    pub write_stalls: AtomicU64,
    pub write_stall_us: AtomicU64,
}

impl Counters {
    pub(crate) fn note_fsync(&self, took: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.last_fsync_unix_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
        self.last_fsync_duration_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }
}

/// One database's line of Redis's INFO keyspace (see `Engine::keyspace`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keyspace {
    /// The database number.
    pub db: u32,
    /// Keys, expired ones not yet removed included (DBSIZE).
    pub keys: u64,
    /// Of those, the keys with an expiry.
    pub expires: u64,
    /// The average time to live of the keys with an expiry, in ms: an estimate from the
    /// expiry sweep's samples (0 until it has sampled the database, and when `expires` is 0).
    pub avg_ttl_ms: u64,
}

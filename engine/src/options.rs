//! Engine options and fsync policies.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{DATABASES_MAX, SEGMENT_SIZE_MAX_BYTES, SEGMENT_SIZE_MIN_BYTES};

/// When appended records reach the disk, as Redis's `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fsync {
    /// A write is durable before it is acknowledged; concurrent writers share one fdatasync.
    Always,
    /// A background thread syncs every second: at most about a second of writes at risk.
    #[default]
    EverySec,
    /// The OS decides; the engine syncs only when sealing a segment and on close.
    Never,
}

impl Fsync {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Fsync::Always => 0,
            Fsync::EverySec => 1,
            Fsync::Never => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Fsync {
        match v {
            0 => Fsync::Always,
            1 => Fsync::EverySec,
            _ => Fsync::Never,
        }
    }
}

/// How an engine runs: see each field; `Options::default()` is what `flin-server` starts from.
#[derive(Clone, Debug)]
pub struct Options {
    /// When writes reach the disk.
    pub fsync: Fsync,
    /// A segment is sealed and a new one started when the next record would not fit.
    pub segment_size_bytes: u64,
    /// On a checksum failure that is not a torn tail, move the damaged segment aside
    /// (`*.corrupt`) keeping the records before the damage, instead of failing `open`.
    pub repair: bool,
    /// Run background compaction.
    pub compaction: bool,
    /// A sealed segment whose dead bytes reach this share of its size is compacted.
    pub compaction_dead_ratio: f64,
    /// Compact whenever disk bytes exceed this multiple of live bytes.
    pub compaction_space_amplification_max: f64,
    /// How often the compaction thread looks for work.
    pub compaction_interval: Duration,
    /// Bytes per second compaction may write; 0 = unlimited.
    pub compaction_rate_bytes_per_sec: u64,
    /// Write a hint file beside each sealed segment and use it at open.
    pub hints: bool,
    /// Niceness (0-19) of the maintenance thread that compacts, writes hints and sweeps
    /// expired keys: when the cores are busy the scheduler favours the threads serving
    /// clients, and compaction still gets a share (about a tenth of a core at 10 against one
    /// busy thread), so it falls behind only under saturation. 0 keeps normal priority.
    pub background_nice: i32,
    /// When writers outrun compaction past the space bound, writes wait inside `put`,
    /// `delete` and the other write calls (true), or never block and leave the waiting to
    /// the caller through `Engine::write_stall` and `Engine::write_stall_lifted` (false: an
    /// async server, whose threads must not block). See [`crate::stall`].
    pub blocking_write_stalls: bool,
    /// Threads that read records not in memory for callers that must not wait for the disk
    /// (see `Engine::fetch_cold`): at most this many such reads are in flight at once.
    pub cold_read_threads: usize,
    /// Databases served (Redis's `databases`), numbered from 0: see [`crate::Engine::db`].
    /// A store written with more keeps them all.
    pub databases: u32,
    /// The engine removes keys past their expiry itself: the expiry sweep, compaction and
    /// `open` drop them, and `remove_expired` does. A replica turns this off: its primary
    /// alone decides when a key expires and sends the DEL, as Redis's replicas do; reads
    /// still hide such keys (see [`crate::follow_primary_expiry`] for the thread applying
    /// the primary's stream). Changed at run time with `Engine::set_expire_keys`.
    pub expire_keys: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: Fsync::EverySec,
            segment_size_bytes: 16 * 1024 * 1024,
            repair: false,
            compaction: true,
            compaction_dead_ratio: 0.5,
            compaction_space_amplification_max: 1.5,
            compaction_interval: Duration::from_millis(500),
            compaction_rate_bytes_per_sec: 0,
            hints: true,
            background_nice: 10,
            blocking_write_stalls: true,
            cold_read_threads: 16,
            databases: 16,
            expire_keys: true,
        }
    }
}

impl Options {
    pub(crate) fn validate(&self) -> Result<()> {
        if !(SEGMENT_SIZE_MIN_BYTES..=SEGMENT_SIZE_MAX_BYTES).contains(&self.segment_size_bytes) {
            return Err(Error::InvalidOptions(format!(
                "segment size {} bytes is outside {SEGMENT_SIZE_MIN_BYTES}..={SEGMENT_SIZE_MAX_BYTES}",
                self.segment_size_bytes
            )));
        }
        if !(self.compaction_dead_ratio > 0.0 && self.compaction_dead_ratio <= 1.0) {
            return Err(Error::InvalidOptions(format!(
                "compaction dead ratio {} is outside (0, 1]",
                self.compaction_dead_ratio
            )));
        }
        if self.compaction_space_amplification_max.is_nan()
            || self.compaction_space_amplification_max < 1.0
        {
            return Err(Error::InvalidOptions(format!(
                "space amplification {} is below 1.0",
                self.compaction_space_amplification_max
            )));
        }
        if !(0..=19).contains(&self.background_nice) {
            return Err(Error::InvalidOptions(format!(
                "background niceness {} is outside 0..=19",
                self.background_nice
            )));
        }
        if !(1..=COLD_READ_THREADS_MAX).contains(&self.cold_read_threads) {
            return Err(Error::InvalidOptions(format!(
                "cold read threads {} is outside 1..={COLD_READ_THREADS_MAX}",
                self.cold_read_threads
            )));
        }
        if !(1..=DATABASES_MAX).contains(&self.databases) {
            return Err(Error::InvalidOptions(format!(
                "databases {} is outside 1..={}",
                self.databases, DATABASES_MAX
            )));
        }
        Ok(())
    }
}

/// Most cold-read threads an engine starts.
pub const COLD_READ_THREADS_MAX: usize = 256;

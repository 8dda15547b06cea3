//! [`Shared`]: the state every part of the engine works on, the handle's and the background
//! threads'. It holds the lower layers (index, registry, log, syncer, stall, poison) and the
//! few steps they take together: appending a record and reacting to the log's growth, and
//! turning a failed write into poison. The read and write paths, compaction, checkpoints and
//! the background threads sit above it and take what they need from here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use parking_lot::Mutex;

use crate::cold::ColdReads;
use crate::databases::Databases;
use crate::error::{Error, Result};
use crate::index::{Index, Loc};
use crate::lock::DirLock;
use crate::log::{Append, Log, LogEnv, Prepared};
use crate::options::{Fsync, Options};
use crate::poison::Poison;
use crate::registry::Registry;
use crate::stall::WriteStall;
use crate::stats::{Counters, RecoveryStats};
use crate::syncer::Syncer;
use crate::testing_hooks::Hooks;
use crate::verify::Verifier;

/// What `Engine::on_expired` registers.
pub(crate) type ExpiredHook = Box<dyn Fn(u32, &[u8]) + Send + Sync>;

pub(crate) struct Shared {
    /// Called with each key the expiry sweep removes, once set (see `Engine::on_expired`).
    pub(crate) expired_hook: std::sync::OnceLock<ExpiredHook>,
    /// Called under the key's shard lock as the sweep removes it (see `Engine::on_expiring`).
    pub(crate) expiring_hook: std::sync::OnceLock<ExpiredHook>,
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    /// The fsync policy in force: `options.fsync` at open, changed by `Engine::set_fsync`.
    pub(crate) fsync: AtomicU8,
    pub(crate) index: Index,
    /// Which namespace holds each database.
    pub(crate) databases: Databases,
    pub(crate) registry: Registry,
    pub(crate) log: Log,
    /// The prealloc thread's mailbox: the next log segment, and pages to fault in.
    pub(crate) prepared: Prepared,
    pub(crate) syncer: Syncer,
    pub(crate) poison: Poison,
    pub(crate) counters: Counters,
    pub(crate) recovery: RecoveryStats,
    /// Held by compaction for a whole run and by FLUSHALL, so they never interleave.
    pub(crate) compaction_lock: Mutex<()>,
    /// Held by an open transaction (`txn`): one at a time.
    pub(crate) txn_lock: Mutex<()>,
    pub(crate) compaction_running: AtomicBool,
    /// Backpressure: writers wait here while the log outgrows what compaction reclaims.
    pub(crate) write_stall: WriteStall,
    /// Some record may carry an expiry: the maintenance thread sweeps for expired keys.
    pub(crate) has_expiring: AtomicBool,
    /// `Options::expire_keys`, changed at run time by `Engine::set_expire_keys`.
    pub(crate) expire_keys: AtomicBool,
    /// By namespace, a running average of the time to live (ms) of the keys with an expiry
    /// the expiry sweep met (Redis's `avg_ttl`, an estimate by sampling as Redis's is).
    /// Written by the sweep once per step, read by INFO: off the write path.
    pub(crate) ttl_avg_ms: Mutex<std::collections::BTreeMap<u32, u64>>,
    /// Reads of records not in memory, for callers that must not block on the disk.
    pub(crate) cold: std::sync::Arc<ColdReads>,
    /// Blind overwrites whose old record is still to be checked (see `verify`).
    pub(crate) verifier: Verifier,
    /// Faults tests inject into the background threads.
    pub(crate) hooks: Hooks,
    pub(crate) _dir_lock: DirLock,
}

impl Shared {
    /// The fsync policy in force.
    pub(crate) fn fsync(&self) -> Fsync {
        Fsync::from_u8(self.fsync.load(Ordering::Relaxed))
    }

    /// The access clock now (see `clock::access_clock`).
    #[inline]
    pub(crate) fn access_clock(&self) -> u32 {
        crate::clock::access_clock(self.hooks.access_clock_skew_s.load(Ordering::Relaxed))
    }

    pub(crate) fn check_poison(&self) -> Result<()> {
        self.poison.check()
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poison.is_set()
    }

    /// Refuses writes from now on, with `cause`, and lets every waiter go: writers waiting
    /// for durability get the error at once, stalled writers stop waiting.
    pub(crate) fn poison(&self, cause: String) {
        self.poison.set(cause);
        self.syncer.wake(true);
        self.write_stall.lift();
    }

    /// What the log needs to roll to a new segment.
    pub(crate) fn log_env(&self) -> LogEnv<'_> {
        LogEnv {
            dir: &self.dir,
            registry: &self.registry,
            syncer: &self.syncer,
            prepared: &self.prepared,
            segment_size_bytes: self.options.segment_size_bytes,
            cold: &self.cold,
            hints: self.options.hints,
            every_sec: self.fsync() == Fsync::EverySec,
        }
    }

    /// What checking blind overwrites needs.
    pub(crate) fn verify_env(&self) -> crate::verify::Env<'_> {
        crate::verify::Env {
            dir: &self.dir,
            index: &self.index,
            registry: &self.registry,
            verifier: &self.verifier,
        }
    }

    /// Under `Options::blocking_write_stalls`, waits while writers outrun compaction. Called
    /// before a write takes any lock: compaction needs the index locks to catch up.
    pub(crate) fn wait_out_write_stall(&self) {
        if self.options.blocking_write_stalls {
            self.write_stall.wait_if_active(&self.counters);
        }
    }

    /// The log's files grew (a chunk or a new segment): disk use moved. Stalls writers that
    /// outran compaction past the space bound, and wakes compaction. Called with the log lock
    /// held or not: takes no lock the log's writers wait on.
    pub(crate) fn on_log_grew(&self) {
        if self.options.compaction {
            let segs = self.registry.load();
            let spare = self.prepared.spare_allocated();
            if crate::space::over_bound_with_work(&self.options, &segs, spare) {
                self.write_stall.set();
            }
            self.syncer.kick_maintenance();
        }
    }

    /// Appends a record, turning failures of writes already begun into poison.
    pub(crate) fn append(&self, rec: &Append<'_>) -> Result<(u64, Loc)> {
        self.check_poison()?;
        let a = self
            .log
            .append(rec, &self.log_env())
            .map_err(|e| self.note_write_error(e))?;
        if a.grew {
            self.on_log_grew();
        }
        Ok((a.seq, a.loc))
    }

    /// Appends a value record (not a tombstone), noting that some key may now expire.
    pub(crate) fn append_value(
        &self,
        ns: u32,
        key: &[u8],
        value: &[u8],
        expire_at_ms: u64,
        body_crc: u32,
    ) -> Result<(u64, Loc)> {
        if expire_at_ms != 0 && !self.has_expiring.load(Ordering::Relaxed) {
            self.has_expiring.store(true, Ordering::Relaxed);
        }
        self.append(&Append {
            ns,
            key,
            value,
            expire_at_ms,
            flags: 0,
            body_crc,
        })
    }

    /// Appends records as one atomic batch (see [`Log::append_batch`]).
    pub(crate) fn append_batch(&self, recs: &[Append<'_>]) -> Result<Vec<(u64, Loc)>> {
        self.check_poison()?;
        let (written, grew) = self
            .log
            .append_batch(recs, &self.log_env())
            .map_err(|e| self.note_write_error(e))?;
        if grew {
            self.on_log_grew();
        }
        Ok(written)
    }

    /// Counts a failed write and poisons the engine unless the failure left the log intact
    /// and the write can be retried.
    pub(crate) fn note_write_error(&self, e: Error) -> Error {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        // Creating, preallocating or mapping a new segment fails before anything is written:
        // the write can be retried (a full disk). So does running out of sequence numbers
        // (nothing is written; it is permanent, but the log is intact). A failed truncate or
        // sync cannot.
        let retryable = matches!(
            &e,
            Error::Io { op, .. } if matches!(*op, "create segment" | "fallocate" | "mmap")
        ) || matches!(e, Error::SeqExhausted { .. });
        if !retryable && !e.is_poisoned() {
            tracing::error!(error = %e, "write failed; the engine refuses writes from now on");
            self.poison(e.to_string());
        }
        e
    }
}

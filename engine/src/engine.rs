//! [`Engine`]: the public handle. It opens the store (recovery, then the background threads)
//! and hands each call to the read path (`read`), the write path (`write`), compaction,
//! checkpoints or the waits (`wait`); closing stops the threads and syncs.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::background;
use crate::checkpoint::CheckpointReport;
use crate::cold::{ColdReads, ColdRing, Fetch};
use crate::compaction::RunReport;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::format;
use crate::lock::DirLock;
use crate::log::{create_log_segment, Log, Prepared};
use crate::options::{Fsync, Options};
use crate::poison::Poison;
use crate::read::{Entry, ScanCursor};
use crate::registry::{Registry, SegmentMap};
use crate::segment::Segment;
use crate::shared::Shared;
use crate::stall::WriteStall;
use crate::stats::{Counters, Keyspace, Stats};
use crate::syncer::Syncer;
use crate::testing_hooks::{Hooks, Thread};
use crate::txn::Transaction;
use crate::wait::{self, Durable, StallLifted};
use crate::write::{self, Update, WriteToken};

/// The store. `Send + Sync`: share it between threads with an `Arc`.
///
/// Dropping the engine stops its threads, syncs what was written and releases the directory.
pub struct Engine {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Opens (creating if needed) the store in `dir`, recovering whatever it holds.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process has the directory, [`Error::Corrupt`] for damage
    /// that is not a torn tail (unless `options.repair`), I/O errors, invalid options.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Engine> {
        options.validate()?;
        // A malformed FLIN_FAILPOINT panics here, in the opening thread, not in a background one.
        crate::failpoint::init();
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let dir_lock = DirLock::acquire(&dir)?;
        let databases = crate::databases::Databases::load(&dir, options.databases)?;
        let recovered = crate::recovery::recover(&dir, &options)?;
        release_freed_heap();
        // Keys of a namespace FLUSHDB made (at least DATABASES_MAX) that no database holds any
        // more: written to the old namespace as it was retired (see `write::remap_ns`).
        for &ns in recovered.index.ns_lens().keys() {
            if ns >= format::DATABASES_MAX && databases.db_of(ns).is_none() {
                databases.retire(ns);
            }
        }
        let next_id = recovered.next_segment_id;
        if next_id > format::SEGMENT_ID_MAX {
            return Err(Error::InvalidOptions(format!(
                "segment ids exhausted in {} (next would be {next_id})",
                dir.display()
            )));
        }
        let active = Arc::new(create_log_segment(
            &dir,
            next_id,
            options.segment_size_bytes,
        )?);
        let map = SegmentMap::from_segments(
            recovered
                .segments
                .iter()
                .cloned()
                .chain(Some(active.clone())),
        );
        let last_seq = recovered.next_seq - 1;
        let shared = Arc::new(Shared {
            expired_hook: std::sync::OnceLock::new(),
            expiring_hook: std::sync::OnceLock::new(),
            dir,
            index: recovered.index,
            databases,
            registry: Registry::new(map, next_id + 1),
            log: Log::new(active, recovered.next_seq, options.fsync != Fsync::Always),
            prepared: Prepared::default(),
            syncer: Syncer::new(last_seq),
            poison: Poison::default(),
            counters: Counters::default(),
            recovery: recovered.stats,
            compaction_lock: Mutex::new(()),
            txn_lock: Mutex::new(()),
            compaction_running: AtomicBool::new(false),
            write_stall: WriteStall::default(),
            has_expiring: AtomicBool::new(recovered.has_expiring),
            expire_keys: AtomicBool::new(options.expire_keys),
            ttl_avg_ms: Mutex::new(Default::default()),
            cold: Arc::new(ColdReads::default()),
            verifier: crate::verify::Verifier::default(),
            hooks: Hooks::default(),
            fsync: AtomicU8::new(options.fsync.to_u8()),
            options,
            _dir_lock: dir_lock,
        });
        let threads = background::spawn(&shared)?;
        Ok(Engine { shared, threads })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the engine was opened with.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// Calls `f` with the key's live value, or `None` (absent or expired). The value borrows the
    /// mapped segment: copy what you need inside `f`. `f` must not call back into the engine.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(Option<Entry<'_>>) -> R) -> R {
        self.db(0).get_with(key, f)
    }

    /// Starts bringing into cache what reading or writing each of `keys` will touch: its
    /// index slot, then the record that slot points at. A lookup that misses the cache waits
    /// for memory twice in a row; prefetching a batch of keys first lets those waits overlap,
    /// so a caller that knows its next keys (a pipelined batch, MGET) calls this before
    /// running them. Only a hint: it changes nothing and costs a hash and two read locks per
    /// key. At most [`PREFETCH_BATCH`] keys are looked at; the rest are ignored.
    pub fn prefetch(&self, keys: &[&[u8]]) {
        self.db(0).prefetch(keys)
    }

    /// Starts reading into memory, off this thread, the records that reading or writing
    /// `keys` would touch and that are not in memory; `None` when there are none. A caller
    /// that must not wait for the disk (an event loop) calls this before running its next
    /// commands, awaits the [`Fetch`] if there is one (its other work goes on meanwhile), then
    /// runs them: their reads find the records in memory. The fetch reports the keys whose
    /// records could not be read (an I/O error, a checksum mismatch): answer those with the
    /// error instead of reading them, which would fault on the same bad page.
    ///
    /// Cheap while memory is not short: residency is checked (a `mincore` per record) only
    /// after a sample of the store found records evicted, and then for a while.
    pub fn fetch_cold(&self, keys: &[&[u8]]) -> Option<Fetch> {
        self.fetch_cold_for(keys, |_| false)
    }

    /// As [`Engine::fetch_cold`], where `blind(i)` says that `keys[i]` is about to be written
    /// with [`Engine::put`] (a SET whatever the key holds): such a write needs the key's old
    /// record read only in rare cases, so it is fetched only then.
    pub fn fetch_cold_for(&self, keys: &[&[u8]], blind: impl Fn(usize) -> bool) -> Option<Fetch> {
        self.db(0).fetch_cold_for(keys, blind)
    }

    /// A ring for this thread's cold reads (see [`Db::fetch_cold_on`]): they then cost no
    /// thread hand-off. The caller polls [`ColdRing::event_fd`] on its event loop and calls
    /// [`ColdRing::reap`] whenever it is readable. At most `depth` reads are in flight on it.
    ///
    /// # Errors
    /// The kernel refused an io_uring or an eventfd (an old kernel, a seccomp policy, the
    /// locked-memory limit): use [`Engine::fetch_cold_for`], whose pool needs neither.
    pub fn cold_ring(&self, depth: u32) -> std::io::Result<ColdRing> {
        ColdRing::new(self.shared.cold.clone(), depth)
    }

    /// True while memory is short (some records were found evicted recently): callers that
    /// must not block should ask [`Engine::fetch_cold`] before reading. One atomic load.
    pub fn memory_short(&self) -> bool {
        self.shared.cold.checking()
    }

    /// True when reading or writing `key` now would read a record from disk on this thread.
    pub fn would_block(&self, key: &[u8]) -> bool {
        self.db(0).would_block(key)
    }

    /// Names the key's live value: the sequence number of the record holding it, or `None`
    /// when the key is absent or expired. Every write of the key (even of the same bytes)
    /// gives it a new version; compaction, which moves records, keeps it. WATCH compares
    /// versions to learn whether a key changed.
    pub fn version(&self, key: &[u8]) -> Option<u64> {
        self.db(0).version(key)
    }

    /// The key's live value, copied.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get_with(key, |e| e.map(|e| e.value.to_vec()))
    }

    /// True when the key has a live value.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get_with(key, |e| e.is_some())
    }

    /// Writes `value` under `key`, visible to readers when this returns, whatever the key
    /// held (a blind write): when memory is short and the key's old record is not in memory,
    /// the write does not read it (see `Engine::fetch_cold_for`).
    /// `expire_at_ms` is Unix time in milliseconds, 0 = never.
    ///
    /// With [`Fsync::Always`] the write is on disk only once [`Engine::durable`] (or
    /// [`Engine::wait_durable`]) for the returned token has completed; acknowledge it then.
    ///
    /// # Errors
    /// Oversized key or value, a full disk, or [`Error::Poisoned`] after an earlier failure.
    pub fn put(&self, key: &[u8], value: &[u8], expire_at_ms: u64) -> Result<WriteToken> {
        self.db(0).put(key, value, expire_at_ms)
    }

    /// Deletes `key`. Returns `None` when it had no live value (nothing is written).
    ///
    /// # Errors
    /// As for [`Engine::put`].
    pub fn delete(&self, key: &[u8]) -> Result<Option<WriteToken>> {
        Ok(self.update(key, |_| (Update::Delete, ()))?.1)
    }

    /// Reads the key's live value and decides what to write, atomically with respect to every
    /// other write of the key (INCR, SETNX, GETSET, APPEND...). `f` sees `None` for an absent or
    /// expired key and must not call back into the engine. Returns `f`'s result and the token
    /// of the write, if one was made.
    ///
    /// # Errors
    /// As for [`Engine::put`]; `f`'s decision is not applied then.
    pub fn update<'v, R>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<Entry<'_>>) -> (Update<'v>, R),
    ) -> Result<(R, Option<WriteToken>)> {
        self.db(0).update(key, f)
    }

    /// Calls `f` with the live values of several keys, read at one instant: no write of any of
    /// them is seen halfway (MGET beside MSET). `f` must not call back into the engine.
    pub fn get_many_with<R>(&self, keys: &[&[u8]], f: impl FnOnce(&[Option<Entry<'_>>]) -> R) -> R {
        self.db(0).get_many_with(keys, f)
    }

    /// Registers `hook`, called (on the maintenance thread) with each key the engine's own
    /// expiry sweep removes: a server reports those expirations (keyspace notifications).
    /// Only the first registration takes effect.
    pub fn on_expired(&self, hook: impl Fn(u32, &[u8]) + Send + Sync + 'static) {
        let _ = self.shared.expired_hook.set(Box::new(hook));
    }

    /// Registers `hook`, called with each key the engine's own expiry sweep removes while
    /// the key's shard lock is still held, before [`Engine::on_expired`]'s hook: a write of
    /// the key that follows the removal starts only once `hook` returned (a primary queues
    /// the key's DEL there, so that it reaches replicas before that write). `hook` must be
    /// quick and must not call into the engine. Only the first registration takes effect.
    pub fn on_expiring(&self, hook: impl Fn(u32, &[u8]) + Send + Sync + 'static) {
        let _ = self.shared.expiring_hook.set(Box::new(hook));
    }

    /// Whether the engine removes expired keys itself (see `Options::expire_keys`): off on a
    /// replica, whose primary's DELs remove them; on again when it becomes a primary.
    pub fn set_expire_keys(&self, on: bool) {
        self.shared.expire_keys.store(on, Ordering::Relaxed);
    }

    /// Drops `key` from memory if its record has expired (reads already hide it), and says
    /// whether it did: a server that reports expirations (Redis's keyspace notifications)
    /// calls this before a command touches the key, as Redis expires keys lazily on access.
    /// Nothing is written: an expired record stays invisible on disk. The caller counts it
    /// (the engine's `expired_keys` counts only its own sweep).
    pub fn remove_expired(&self, key: &[u8]) -> bool {
        self.db(0).remove_expired(key)
    }

    /// Reads several keys and decides what to write to each, as one atomic step (MSET, MSETNX,
    /// RENAME, DEL of several keys): `f` sees every key's live value (`None` when absent or
    /// expired) and returns one [`Update`] per key, in the order of `keys`. No reader sees some
    /// of the writes without the others, and the records are appended as one batch, so after
    /// a crash either all of them are recovered or none. When a key appears more than once,
    /// its last decision is the one applied. `f` must not call back into the engine.
    ///
    /// Returns `f`'s result and the token of the batch (covering all its records), if anything
    /// was written.
    ///
    /// # Errors
    /// As for [`Engine::put`], and [`Error::BatchTooLarge`] when the records would take more
    /// than [`BATCH_LEN_MAX`](crate::BATCH_LEN_MAX) bytes; nothing is written then.
    ///
    /// # Panics
    /// When `f` returns a different number of decisions than there are keys.
    pub fn update_many<'v, R>(
        &self,
        keys: &[&[u8]],
        f: impl FnOnce(&[Option<Entry<'_>>]) -> (Vec<Update<'v>>, R),
    ) -> Result<(R, Option<WriteToken>)> {
        self.db(0).update_many(keys, f)
    }

    /// How long the current write stall may still last, if one is on: writers are outrunning
    /// compaction past the space bound. Cheap: one atomic load.
    pub fn write_stall(&self) -> Option<std::time::Duration> {
        self.shared.write_stall.remaining()
    }

    /// Resolves when the write stall is lifted. A stall that runs out wakes nobody: await this
    /// with [`Engine::write_stall`]'s time as a timeout.
    pub fn write_stall_lifted(&self) -> StallLifted {
        StallLifted::new(self.shared.clone())
    }

    /// A future that resolves once the write named by `token` (and every earlier one) is on
    /// disk, or with the error that made that impossible. It does not block the thread that
    /// polls it: the sync thread wakes it. Asks for a sync under every fsync policy.
    pub fn durable(&self, token: WriteToken) -> Durable {
        Durable::new(self.shared.clone(), token.0)
    }

    /// Blocks until the write named by `token` is on disk.
    ///
    /// # Errors
    /// [`Error::Poisoned`] when an fsync failed first.
    pub fn wait_durable(&self, token: WriteToken) -> Result<()> {
        wait::wait_durable(&self.shared, token.0)
    }

    /// True when writes must await [`Engine::durable`] before they are acknowledged.
    pub fn acks_wait_for_disk(&self) -> bool {
        self.shared.fsync() == Fsync::Always
    }

    /// The fsync policy in force.
    pub fn fsync(&self) -> Fsync {
        self.shared.fsync()
    }

    /// Changes the fsync policy while the engine runs (Redis's `CONFIG SET appendfsync`).
    /// Writes acknowledged before keep the promise they were made under; from `Always`,
    /// writes still waiting for their sync get it. Whether the prealloc thread faults the
    /// active segment's pages in ahead of the writer stays as the policy at open chose.
    pub fn set_fsync(&self, fsync: Fsync) {
        self.shared.fsync.store(fsync.to_u8(), Ordering::Relaxed);
        self.shared.syncer.nudge();
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    /// The fsync error (which also poisons the engine).
    pub fn sync(&self) -> Result<()> {
        let seq = self.shared.log.last_seq();
        wait::wait_durable(&self.shared, seq)
    }

    /// Writes a consistent copy of the store into the new directory `dest` while it keeps
    /// serving: every write made before the call, as of one moment.
    /// Sealed segments are hard-linked, so it is quick and takes little space until compaction
    /// deletes the originals. Writers, readers and compaction do not wait for it.
    ///
    /// # Errors
    /// `dest` exists; an I/O error (nothing is left under `dest` then); the sync's error.
    pub fn checkpoint(&self, dest: impl AsRef<std::path::Path>) -> Result<CheckpointReport> {
        crate::checkpoint::checkpoint(&self.shared, dest.as_ref())
    }

    /// Keys in the index, every database's, including expired keys not yet removed (a
    /// database's own count is [`Db::len`], Redis's DBSIZE).
    pub fn len(&self) -> u64 {
        self.shared.index.len()
    }

    /// True when the index holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` for a batch of about `count` live keys starting at `cursor`; returns the cursor
    /// of the next batch, 0 when the scan is complete. Every key present for the whole scan is
    /// returned at least once, whatever the index does meanwhile (growth, compaction), because
    /// the cursor walks (shard, hash tag) space, which neither changes.
    pub fn scan(
        &self,
        cursor: ScanCursor,
        count: usize,
        f: impl FnMut(&[u8], Entry<'_>),
    ) -> ScanCursor {
        self.db(0).scan(cursor, count, f)
    }

    /// A random live key, or `None` when there is none.
    pub fn random_key(&self, random: impl FnMut() -> u64) -> Option<Vec<u8>> {
        self.db(0).random_key(random)
    }

    /// Sizes the index for `keys` more keys at once, instead of growing it (rehashing every key
    /// so far) several times while they are written: a replica's full sync knows the count
    /// from the RDB before the keys.
    pub fn reserve_keys(&self, keys: u64) {
        let per_shard = usize::try_from(keys)
            .unwrap_or(usize::MAX)
            .div_ceil(crate::index::SHARD_COUNT);
        for i in 0..crate::index::SHARD_COUNT {
            let mut shard = self.shared.index.shard(i).write();
            let len = shard.len();
            shard.reserve(len.saturating_add(per_shard));
        }
    }

    /// Deletes every key of every database (FLUSHALL). Durable when this returns, under every
    /// fsync policy.
    ///
    /// # Errors
    /// The write or fsync error.
    pub fn clear(&self) -> Result<()> {
        write::clear(&self.shared)
    }

    /// Database `db` (numbered from 0, below [`Engine::databases`]): the key calls of the
    /// engine confined to it. The calls of `Engine` itself work on database 0.
    ///
    /// # Panics
    /// When `db` is not below [`Engine::databases`] (check a client's number first).
    #[inline]
    pub fn db(&self, db: u32) -> Db<'_> {
        Db::new(&self.shared, db)
    }

    /// How many databases the engine serves: [`Options::databases`], or more when the store
    /// was written with more.
    pub fn databases(&self) -> u32 {
        self.shared.databases.count()
    }

    /// Swaps the contents of databases `a` and `b` (SWAPDB), whatever they hold, without
    /// moving a record. Durable when this returns, with every write made before it: after a
    /// crash the swap happened or not, and a write acknowledged before it is in place.
    ///
    /// # Errors
    /// A database out of range ([`Error::InvalidOptions`]), the fsync or file error.
    pub fn swap_databases(&self, a: u32, b: u32) -> Result<()> {
        let n = self.databases();
        if a >= n || b >= n {
            return Err(Error::InvalidOptions(format!(
                "database {} is outside 0..{n}",
                a.max(b)
            )));
        }
        let sh = &self.shared;
        sh.check_poison()?;
        sh.databases
            .swap(&sh.dir, a, b, || wait::wait_durable(sh, sh.log.last_seq()))
    }

    /// As [`Engine::update_many`], for keys in several databases: `keys[i]` is key `keys[i].1`
    /// of database `keys[i].0`. One atomic batch whatever databases it spans (MOVE, COPY ...
    /// DB). The keys found have their access clocks stamped when `touch` (see
    /// [`Db::touching`]), the keys written whatever `touch` says.
    ///
    /// # Errors
    /// As for [`Engine::update_many`].
    ///
    /// # Panics
    /// When `f` returns a different number of decisions than there are keys, or a database
    /// is not below [`Engine::databases`].
    pub fn update_many_across<'v, R>(
        &self,
        keys: &[(u32, &[u8])],
        touch: bool,
        f: impl FnOnce(&[Option<Entry<'_>>]) -> (Vec<Update<'v>>, R),
    ) -> Result<(R, Option<WriteToken>)> {
        let nss: Vec<u32> = keys
            .iter()
            .map(|&(db, _)| self.shared.databases.ns(db))
            .collect();
        let names: Vec<&[u8]> = keys.iter().map(|&(_, k)| k).collect();
        write::update_many(&self.shared, |i| nss[i], &names, touch, f)
    }

    /// Opens a transaction on the calling thread: its writes until
    /// [`Transaction::commit`] land on disk all or nothing (a server's EXEC). They are
    /// applied at once as any write; a crash before the commit record is on disk drops all
    /// of them at the next open. Waits while another thread's transaction is open.
    ///
    /// SWAPDB is not part of it: a swap is durable when it returns.
    ///
    /// # Panics
    /// When the calling thread has a transaction open already (they do not nest).
    pub fn transaction(&self) -> Transaction<'_> {
        Transaction::begin(&self.shared)
    }

    /// Keys of each database that has any (expired keys not yet removed included), by
    /// database number.
    pub fn database_sizes(&self) -> Vec<(u32, u64)> {
        self.keyspace().iter().map(|k| (k.db, k.keys)).collect()
    }

    /// Redis's INFO keyspace: for each database that has any key, by database number, its
    /// keys, those with an expiry (both exact, expired keys not yet removed included) and
    /// the estimated average time to live of the latter.
    pub fn keyspace(&self) -> Vec<Keyspace> {
        let by_ns = self.shared.index.ns_lens();
        let ttl = self.shared.ttl_avg_ms.lock().clone();
        let map = self.shared.databases.snapshot();
        let mut out: Vec<Keyspace> = map
            .iter()
            .enumerate()
            .filter_map(|(db, ns)| {
                let c = by_ns.get(ns)?;
                Some(Keyspace {
                    db: db as u32,
                    keys: c.keys,
                    expires: c.expires,
                    avg_ttl_ms: if c.expires > 0 {
                        ttl.get(ns).copied().unwrap_or(0)
                    } else {
                        0
                    },
                })
            })
            .filter(|k| k.keys > 0)
            .collect();
        out.sort_unstable_by_key(|k| k.db);
        out
    }

    /// Compacts every sealed segment holding dead bytes now, whatever the thresholds; returns
    /// what the run did. Background compaction does the same by itself when enabled.
    ///
    /// # Errors
    /// The I/O error that stopped the run; the input segments are kept then.
    pub fn compact_now(&self) -> Result<RunReport> {
        crate::compaction::compact_all(&self.shared)
    }

    /// Runs one compaction of the segments the background thread would pick now (by dead
    /// ratio, and by dead bytes under the space bound); an empty report when none is due.
    /// For tests and tools of a store opened with `compaction: false`.
    ///
    /// # Errors
    /// As for [`Engine::compact_now`].
    #[doc(hidden)]
    pub fn compact_due(&self) -> Result<RunReport> {
        crate::compaction::retire_waiting_now(&self.shared)?;
        let plan = crate::compaction::pick(&self.shared);
        crate::compaction::compact(&self.shared, &plan, crate::compaction::Retire::Now)
    }

    /// Compacts exactly these segments (tests of partial compaction). Active or unknown ids are
    /// skipped.
    ///
    /// # Errors
    /// As for [`Engine::compact_now`].
    #[doc(hidden)]
    pub fn compact_segments(&self, ids: &[u32]) -> Result<RunReport> {
        let active = self.shared.log.active_id();
        let segs = self.shared.registry.load();
        let plan: Vec<Arc<Segment>> = segs
            .iter()
            .filter(|s| ids.contains(&s.id) && s.id != active && s.is_sealed())
            .cloned()
            .collect();
        drop(segs);
        crate::compaction::retire_waiting_now(&self.shared)?;
        crate::compaction::compact(&self.shared, &plan, crate::compaction::Retire::Now)
    }

    /// Runs the active-expiry sweep over about `budget` index slots now (the maintenance
    /// thread does this by itself every interval); returns the keys removed.
    pub fn expire_now(&self, budget: usize) -> u64 {
        let mut cursor = 0;
        crate::expiry::sweep(&self.shared, &mut cursor, budget)
    }

    /// Ids of the registered segments, oldest first, and which one is active.
    #[doc(hidden)]
    pub fn segment_ids(&self) -> (Vec<u32>, u32) {
        let mut ids: Vec<u32> = self.shared.registry.load().iter().map(|s| s.id).collect();
        ids.sort_unstable();
        (ids, self.shared.log.active_id())
    }

    /// A snapshot of counters and sizes.
    pub fn stats(&self) -> Stats {
        let sh = &self.shared;
        let segs = sh.registry.load();
        let mut st = Stats {
            keys: sh.index.len(),
            segments: segs.len() as u64,
            index_bytes: sh.index.memory_bytes(),
            bytes_written: sh.log.bytes_written(),
            fsyncs: sh.counters.fsyncs.load(Ordering::Relaxed),
            last_fsync_unix_ms: sh.counters.last_fsync_unix_ms.load(Ordering::Relaxed),
            last_fsync_duration_us: sh.counters.last_fsync_duration_us.load(Ordering::Relaxed),
            write_errors: sh.counters.write_errors.load(Ordering::Relaxed),
            compactions: sh.counters.compactions.load(Ordering::Relaxed),
            expired_keys: sh.counters.expired_keys.load(Ordering::Relaxed),
            compaction_bytes_written: sh.counters.compaction_bytes_written.load(Ordering::Relaxed),
            compaction_bytes_reclaimed: sh
                .counters
                .compaction_bytes_reclaimed
                .load(Ordering::Relaxed),
            compaction_running: sh.compaction_running.load(Ordering::Relaxed),
            write_stalls: sh.counters.write_stalls.load(Ordering::Relaxed),
            write_stall_ms: sh.counters.write_stall_us.load(Ordering::Relaxed) / 1000,
            poisoned: sh.poison.cause(),
            last_seq: sh.log.last_seq(),
            durable_seq: sh.syncer.durable(),
            recovery: sh.recovery.clone(),
            cold_reads: sh.cold.stats.reads.load(Ordering::Relaxed),
            cold_read_errors: sh.cold.stats.errors.load(Ordering::Relaxed),
            cold_reads_merged: sh.cold.stats.merged.load(Ordering::Relaxed),
            cold_reads_direct: sh.cold.stats.direct.load(Ordering::Relaxed),
            cold_read_cache_bypass: sh.cold.cache_bypassed(),
            cold_reads_in_flight: sh.cold.stats.in_flight.load(Ordering::Relaxed),
            cold_read_p50_us: sh.cold.stats.percentile_us(0.5),
            cold_read_p99_us: sh.cold.stats.percentile_us(0.99),
            cold_read_p999_us: sh.cold.stats.percentile_us(0.999),
            residency_checks: sh.cold.checking(),
            blind_writes_pending: sh.verifier.len() as u64,
            blind_writes_checked: sh.verifier.checked.load(Ordering::Relaxed),
            fingerprint_collisions: sh.verifier.repaired.load(Ordering::Relaxed),
            ..Stats::default()
        };
        st.disk_bytes = sh.prepared.spare_allocated();
        for s in segs.iter() {
            let live = s.live_bytes();
            st.disk_bytes += s.allocated();
            st.dead_bytes += s.len() - live;
            st.live_bytes += live;
            st.corrupt_reads += s.corrupt_reads();
            st.segments_unverified += u64::from(!s.is_verified());
        }
        st
    }

    /// Stops background threads and syncs. Also done on drop; this reports the sync's error.
    ///
    /// # Errors
    /// The final fsync's error.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.threads.is_empty() {
            return Ok(());
        }
        self.shared.syncer.shutdown();
        self.shared.cold.shutdown();
        self.shared.write_stall.lift();
        {
            let _prepared = self.shared.prepared.state.lock();
            self.shared.prepared.cond.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let prepared = std::mem::take(&mut *self.shared.prepared.state.lock());
        if let Some(spare) = prepared.spare {
            spare.mark_obsolete();
        }
        let sh = &self.shared;
        if sh.is_poisoned() {
            return sh.check_poison();
        }
        // Cut the preallocated tail so the file holds just its records.
        let st = sh.log.lock();
        let res = st.active.seal().and_then(|()| st.active.sync());
        drop(st);
        let res = res.and_then(|()| background::sync::sync_now(sh));
        if res.is_ok() {
            // Compaction inputs left for the next sync: the log is durable now.
            sh.registry.retire_durable(sh.syncer.durable());
        }
        if res.is_ok() && sh.options.hints {
            // So the next open reads hints for everything but the newest segment.
            background::maintenance::write_missing_hints_including_active(sh);
        }
        if let Err(e) = &res {
            tracing::error!(error = %e, "final sync at close failed");
        }
        res
    }

    /// How many holders the engine's shared state has (tests: nothing leaks a reference).
    #[doc(hidden)]
    pub fn shared_for_tests(&self) -> usize {
        Arc::strong_count(&self.shared)
    }

    /// Holds every cold read before it starts (a disk that does not answer yet) until called
    /// again with `false`, for tests.
    #[doc(hidden)]
    pub fn hold_cold_reads(&self, held: bool) {
        self.shared.cold.hold(held);
    }

    /// Makes cold reads skip the page cache as for a store larger than memory (`true`, what
    /// [`Engine::evict_for_tests`] sets), or decide by the store's size again, for tests.
    #[doc(hidden)]
    pub fn force_cache_bypass_for_tests(&self, on: bool) {
        self.shared.cold.force_bypass.store(on, Ordering::Relaxed);
    }

    /// Makes every cold read fail with EIO (or stop failing), for tests.
    #[doc(hidden)]
    pub fn inject_cold_read_eio(&self, fail: bool) {
        self.shared.cold.fail_eio.store(fail, Ordering::Relaxed);
    }

    /// Syncs, then drops every segment's pages from memory (this process's page tables and
    /// the page cache), and keeps residency checks on: the next reads are cold, as on a store
    /// larger than memory. For tests.
    ///
    /// # Errors
    /// The sync's error, or pages that would not leave memory (a background thread kept
    /// faulting them back in).
    #[doc(hidden)]
    pub fn evict_for_tests(&self) -> Result<()> {
        let sh = &self.shared;
        // Residency checks on from here: reads ask for cold records first.
        sh.cold.force_checks.store(true, Ordering::Relaxed);
        // And cold reads skip the page cache, as for a store larger than it.
        sh.cold.force_bypass.store(true, Ordering::Relaxed);
        // The maintenance thread writing a sealed segment's hint reads it back: go again until
        // every sealed segment that gets one has it and no page is in memory. (The prealloc
        // thread faults in only pages past the written length, see `Segment::populate_to`.)
        let active = sh.log.active_id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            let segs = sh.registry.load();
            let unhinted = sh.options.hints
                && segs.iter().any(|s| {
                    s.id != active
                        && s.is_sealed()
                        && !s.is_hinted()
                        && !s.is_retiring()
                        && !background::maintenance::hint_waits(sh, s)
                });
            if unhinted {
                sh.syncer.kick_maintenance();
                std::thread::yield_now();
                continue;
            }
            self.sync()?;
            for seg in segs.iter() {
                seg.release(0, seg.len());
            }
            let page = 4096;
            if segs
                .iter()
                // Every page that holds a byte of a record, the last partial one too.
                .all(|s| (0..s.len().div_ceil(page)).all(|p| !s.resident(p * page, page)))
            {
                return Ok(());
            }
            std::thread::yield_now();
        }
        Err(Error::InvalidOptions(
            "evict_for_tests: pages kept coming back into memory".into(),
        ))
    }

    /// Moves this engine's access clock (OBJECT IDLETIME) `secs` seconds forward, so tests of
    /// idle times need not wait for them.
    #[doc(hidden)]
    pub fn advance_access_clock_for_tests(&self, secs: u64) {
        self.shared
            .hooks
            .access_clock_skew_s
            .fetch_add(secs, Ordering::SeqCst);
    }

    /// Stops (or lets go on) the expiry sweep (the maintenance thread's and
    /// [`Engine::expire_now`]), for tests of the other ways keys expire.
    #[doc(hidden)]
    pub fn pause_expiry_sweep_for_tests(&self, paused: bool) {
        self.shared
            .hooks
            .sweep_paused
            .store(paused, Ordering::SeqCst);
    }

    /// Stops (or lets go on) `EverySec`'s once-a-second sync, for tests of what waits for
    /// it; syncs asked for ([`Engine::sync`], a roll) still run.
    #[doc(hidden)]
    pub fn pause_periodic_sync_for_tests(&self, paused: bool) {
        self.shared
            .hooks
            .periodic_sync_paused
            .store(paused, Ordering::SeqCst);
    }

    /// [`Engine::compact_due`] as the background thread runs it: under `EverySec` its inputs
    /// are retired at the log's next sync rather than before it returns (tests).
    ///
    /// # Errors
    /// As for [`Engine::compact_now`].
    #[doc(hidden)]
    pub fn compact_due_as_background_for_tests(&self) -> Result<RunReport> {
        let plan = crate::compaction::pick(&self.shared);
        let retire = background::maintenance::retire_mode(&self.shared);
        crate::compaction::compact(&self.shared, &plan, retire)
    }

    /// Stops (or lets go on) the checking of blind writes, for tests.
    #[doc(hidden)]
    pub fn pause_verify_for_tests(&self, paused: bool) {
        self.shared
            .hooks
            .verify_paused
            .store(paused, Ordering::SeqCst);
    }

    /// Makes `thread` panic at its next round of work (tests of poisoning). The sync thread's
    /// next round comes with a write that asks for durability, the maintenance thread's at
    /// once, the prealloc thread's at once.
    #[doc(hidden)]
    pub fn inject_panic(&self, thread: Thread) {
        let sh = &self.shared;
        sh.hooks.inject_panic(thread);
        sh.syncer.kick_maintenance();
        let _prepared = sh.prepared.state.lock();
        sh.prepared.cond.notify_all();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Gives the heap memory that `open` used and freed back to the system: the hint files and
/// the recovery threads' tables (tens of MiB for millions of keys) are freed by now, but
/// glibc's allocator keeps freed memory of its arenas for reuse, which would count in the
/// process's resident memory for as long as it runs.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's own arenas to the
    // system; it touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

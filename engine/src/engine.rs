//! [`Engine`]: the public handle, and the read and write paths.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use parking_lot::{Condvar, Mutex};

use crate::clock::{expired_now, is_expired, now_ms};
use crate::error::{Error, Result};
use crate::format::{
    self, trusted_header, RecordHeader, FLAG_FLUSH, FLAG_TOMBSTONE, KEY_LEN_MAX, RECORD_HEADER_LEN,
    VALUE_LEN_MAX,
};
use crate::index::{Index, KeyHash, Loc, SHARD_COUNT};
use crate::lock::DirLock;
use crate::log::{create_log_segment, Append, Log, SegmentFactory};
use crate::options::{Fsync, Options};
use crate::segment::Segment;
use crate::stats::{Counters, RecoveryStats, Stats};
use crate::sync::{self, Durable, Syncer};

/// A live value, as a read sees it. `value` borrows the mapped segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub value: &'a [u8],
    /// Expiry as Unix time in milliseconds; 0 = never.
    pub expire_at_ms: u64,
}

/// What [`Engine::update`]'s closure decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update<'v> {
    /// Write nothing.
    Keep,
    /// Write this value and expiry.
    Put { value: &'v [u8], expire_at_ms: u64 },
    /// Keep the current value, change its expiry. Does nothing when the key is absent.
    SetExpiry { expire_at_ms: u64 },
    /// Delete the key. Does nothing when the key is absent.
    Delete,
}

/// Names a write for durability: see [`Engine::durable`] and [`Engine::wait_durable`].
/// Tokens are ordered: waiting for a later token covers every earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WriteToken(pub(crate) u64);

impl WriteToken {
    /// The record's sequence number.
    pub fn seq(self) -> u64 {
        self.0
    }
}

/// Position of a [`Engine::scan`]: 0 starts a scan, and a scan that returns 0 is complete.
pub type ScanCursor = u64;

/// The segments the engine knows, by id. Replaced whole (copy on write) when one is added or
/// retired; readers load it without a lock.
#[derive(Default)]
pub(crate) struct SegmentMap {
    /// Sorted by id. Ids are untrusted (file names), so they index nothing directly; they are
    /// kept apart from the segments so a lookup searches one small array without touching
    /// each segment's memory.
    ids: Vec<u32>,
    segs: Vec<Arc<Segment>>,
}

impl SegmentMap {
    pub(crate) fn get(&self, id: u32) -> Option<&Arc<Segment>> {
        let i = self.ids.binary_search(&id).ok()?;
        Some(&self.segs[i])
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.segs.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.segs.len()
    }

    pub(crate) fn from_segments(segs: impl IntoIterator<Item = Arc<Segment>>) -> SegmentMap {
        let mut segs: Vec<Arc<Segment>> = segs.into_iter().collect();
        segs.sort_by_key(|s| s.id);
        segs.dedup_by_key(|s| s.id);
        let ids = segs.iter().map(|s| s.id).collect();
        SegmentMap { ids, segs }
    }

    fn with(&self, seg: Arc<Segment>) -> SegmentMap {
        SegmentMap::from_segments(self.iter().cloned().chain(Some(seg)))
    }

    fn without(&self, ids: &[u32]) -> SegmentMap {
        SegmentMap::from_segments(self.iter().filter(|s| !ids.contains(&s.id)).cloned())
    }
}

/// What the prealloc thread hands over and is asked for.
#[derive(Default)]
struct Prepared {
    spare: Option<Arc<Segment>>,
    populate: Option<Arc<Segment>>,
}

/// State shared by the engine handle, the sync thread and the compaction thread.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) index: Index,
    pub(crate) segments: ArcSwap<SegmentMap>,
    registry_lock: Mutex<()>,
    pub(crate) log: Log,
    pub(crate) syncer: Syncer,
    poisoned: AtomicBool,
    poison_cause: Mutex<Option<String>>,
    pub(crate) counters: Counters,
    pub(crate) next_segment_id: AtomicU32,
    pub(crate) recovery: RecoveryStats,
    /// Held by compaction for a whole run and by FLUSHALL, so they never interleave.
    pub(crate) compaction_lock: Mutex<()>,
    pub(crate) compaction_running: AtomicBool,
    /// Backpressure: writers wait here while the log outgrows what compaction reclaims.
    pub(crate) write_stall: crate::stall::WriteStall,
    /// Some record may carry an expiry: the maintenance thread sweeps for expired keys.
    pub(crate) has_expiring: AtomicBool,
    /// Work for the prealloc thread: the next log segment, created ahead of need so rolling is
    /// a rename, and the active segment when its writer nears the end of its faulted-in pages,
    /// so appends do not wait for page faults.
    spare: Mutex<Prepared>,
    spare_cond: Condvar,
    _dir_lock: DirLock,
}

impl Shared {
    pub(crate) fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            let cause = self
                .poison_cause
                .lock()
                .clone()
                .unwrap_or_else(|| "unknown".into());
            return Err(Error::Poisoned { cause });
        }
        Ok(())
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn poison(&self, e: &Error) {
        let mut cause = self.poison_cause.lock();
        if cause.is_none() {
            *cause = Some(e.to_string());
        }
        self.poisoned.store(true, Ordering::Release);
    }

    pub(crate) fn register(&self, seg: Arc<Segment>) {
        let _g = self.registry_lock.lock();
        let next = self.segments.load().with(seg);
        self.segments.store(Arc::new(next));
    }

    /// Removes segments from the registry and marks them obsolete: each file is deleted once
    /// the last reader drops it.
    pub(crate) fn retire(&self, ids: &[u32]) {
        let _g = self.registry_lock.lock();
        let current = self.segments.load();
        for id in ids {
            if let Some(s) = current.get(*id) {
                s.mark_obsolete();
            }
        }
        let next = current.without(ids);
        self.segments.store(Arc::new(next));
    }

    /// Under `Options::blocking_write_stalls`, waits while writers outrun compaction. Called
    /// before a write takes any lock: compaction needs the index locks to catch up.
    fn wait_out_write_stall(&self) {
        if self.options.blocking_write_stalls {
            self.write_stall.wait_if_active(&self.counters);
        }
    }

    /// Disk taken by the prepared spare segment, if there is one.
    pub(crate) fn spare_allocated(&self) -> u64 {
        self.spare
            .lock()
            .spare
            .as_ref()
            .map_or(0, |s| s.allocated())
    }

    /// The next segment id. Ids found at open are at most `SEGMENT_ID_MAX`, so the counter
    /// cannot wrap in any realistic life of a store; if it ever passes the bound, writes fail
    /// with a clear error instead of reusing ids.
    pub(crate) fn allocate_segment_id(&self) -> Result<u32> {
        let id = self.next_segment_id.fetch_add(1, Ordering::AcqRel);
        if id == 0 || id > format::SEGMENT_ID_MAX {
            return Err(Error::InvalidOptions(format!(
                "segment ids exhausted (next would be {id}); compact into a new directory"
            )));
        }
        Ok(id)
    }

    /// Appends a record, turning failures of writes already begun into poison.
    fn append(&self, rec: &Append<'_>) -> Result<(u64, Loc)> {
        self.check_poison()?;
        self.log
            .append(rec, self.options.segment_size_bytes, self)
            .map_err(|e| self.note_write_error(e))
    }

    /// Appends a value record (not a tombstone), noting that some key may now expire.
    fn append_value(
        &self,
        key: &[u8],
        value: &[u8],
        expire_at_ms: u64,
        body_crc: u32,
    ) -> Result<(u64, Loc)> {
        if expire_at_ms != 0 && !self.has_expiring.load(Ordering::Relaxed) {
            self.has_expiring.store(true, Ordering::Relaxed);
        }
        self.append(&Append {
            key,
            value,
            expire_at_ms,
            flags: 0,
            body_crc,
        })
    }

    /// Appends records as one atomic batch (see [`Log::append_batch`]).
    fn append_batch(&self, recs: &[Append<'_>]) -> Result<Vec<(u64, Loc)>> {
        self.check_poison()?;
        self.log
            .append_batch(recs, self.options.segment_size_bytes, self)
            .map_err(|e| self.note_write_error(e))
    }

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
            self.poison(&e);
        }
        e
    }
}

impl SegmentFactory for Shared {
    fn log_grew(&self) {
        if self.options.compaction {
            crate::compaction::stall_writers_if_over_bound(self);
            self.syncer.kick_maintenance();
        }
    }

    fn request_populate(&self, seg: &Arc<Segment>) {
        self.spare.lock().populate = Some(seg.clone());
        self.spare_cond.notify_all();
    }

    fn new_log_segment(&self, capacity: u64) -> Result<Arc<Segment>> {
        // The segment being sealed goes to the sync thread; under every policy it is synced
        // and released soon, so retired files do not linger (Never would otherwise wait
        // forever).
        self.syncer.request(self.log.last_seq());
        if capacity <= self.options.segment_size_bytes {
            let spare = self.spare.lock().spare.take();
            self.spare_cond.notify_all();
            // Log segments must be numbered in the order they are used (recovery and FLUSHALL
            // rely on it): a spare numbered before a segment created meanwhile is discarded.
            let newest = self
                .segments
                .load()
                .iter()
                .filter(|s| s.kind == format::SegmentKind::Log)
                .map(|s| s.id)
                .max()
                .unwrap_or(0);
            let spare = spare.filter(|s| {
                let usable = s.id > newest;
                if !usable {
                    s.mark_obsolete();
                }
                usable
            });
            if let Some(seg) = spare {
                let path = self.dir.join(format::segment_file_name(seg.id));
                match seg
                    .rename(path)
                    .and_then(|()| crate::segment::sync_dir(&self.dir))
                {
                    Ok(()) => {
                        self.register(seg.clone());
                        return Ok(seg);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "prepared segment unusable; creating one");
                        seg.mark_obsolete();
                    }
                }
            }
        }
        let id = self.allocate_segment_id()?;
        let seg = Arc::new(create_log_segment(&self.dir, id, capacity)?);
        self.register(seg.clone());
        Ok(seg)
    }
}

/// The record at `loc`: header and the whole record's bytes. Records of segments whose
/// checksums have not been checked since open (loaded from a hint) are verified here; a
/// damaged one reads as absent, is counted and logged, and is never served.
///
/// # Panics
/// When the index points at a segment the registry does not hold: an engine bug.
pub(crate) fn record_at(segs: &SegmentMap, loc: Loc) -> Option<(RecordHeader, &[u8])> {
    let seg = segs
        .get(loc.seg)
        .unwrap_or_else(|| panic!("index points at unknown segment {}", loc.seg));
    let off = u64::from(loc.off);
    if seg.is_verified() {
        let header = trusted_header(seg.bytes(off, RECORD_HEADER_LEN));
        return Some((header, seg.bytes(off, header.record_len())));
    }
    let rest = seg.bytes_from(off.min(seg.len()));
    match RecordHeader::decode(rest) {
        Ok(h) if h.record_len() <= rest.len() && format::verify_record(&h, rest) => {
            Some((h, &rest[..h.record_len()]))
        }
        _ => {
            if seg.note_corrupt_read() {
                tracing::error!(
                    path = %seg.path().display(),
                    offset = off,
                    "damaged record not served (checksum mismatch); restore the file or \
                     restart with repair"
                );
            }
            None
        }
    }
}

fn key_matches(segs: &SegmentMap, loc: Loc, key: &[u8]) -> bool {
    record_at(segs, loc).is_some_and(|(h, rec)| format::record_key(&h, rec) == key)
}

fn check_sizes(key: &[u8], value: &[u8]) -> Result<()> {
    if key.len() > KEY_LEN_MAX {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: KEY_LEN_MAX,
        });
    }
    if value.len() > VALUE_LEN_MAX {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            max: VALUE_LEN_MAX,
        });
    }
    Ok(())
}

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
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        let dir_lock = DirLock::acquire(&dir)?;
        let recovered = crate::recovery::recover(&dir, &options)?;
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
            dir,
            index: recovered.index,
            segments: ArcSwap::from_pointee(map),
            registry_lock: Mutex::new(()),
            log: Log::new(active, recovered.next_seq, options.fsync != Fsync::Always),
            syncer: Syncer::new(last_seq),
            poisoned: AtomicBool::new(false),
            poison_cause: Mutex::new(None),
            counters: Counters::default(),
            next_segment_id: AtomicU32::new(next_id + 1),
            recovery: recovered.stats,
            compaction_lock: Mutex::new(()),
            compaction_running: AtomicBool::new(false),
            write_stall: crate::stall::WriteStall::default(),
            has_expiring: AtomicBool::new(recovered.has_expiring),
            spare: Mutex::new(Prepared::default()),
            spare_cond: Condvar::new(),
            options,
            _dir_lock: dir_lock,
        });
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("flin-sync".into())
                .spawn(move || sync::run(s))
                .map_err(|e| Error::io("spawn sync thread", &shared.dir, e))?,
        );
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("flin-prealloc".into())
                .spawn(move || prepare_segments(s))
                .map_err(|e| Error::io("spawn prealloc thread", &shared.dir, e))?,
        );
        let s = shared.clone();
        let (niced_tx, niced) = std::sync::mpsc::channel();
        threads.push(
            std::thread::Builder::new()
                .name("flin-maint".into())
                .spawn(move || {
                    crate::compaction::lower_priority(&s);
                    let _ = niced_tx.send(());
                    crate::compaction::run(s)
                })
                .map_err(|e| Error::io("spawn maintenance thread", &shared.dir, e))?,
        );
        // So background work never starts at the clients' priority.
        let _ = niced.recv();
        Ok(Engine { shared, threads })
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// Calls `f` with the key's live value, or `None` (absent or expired). The value borrows the
    /// mapped segment: copy what you need inside `f`. `f` must not call back into the engine.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(Option<Entry<'_>>) -> R) -> R {
        let h = KeyHash::of(key);
        let shard = self.shared.index.shard(h.shard()).read();
        // Load the registry after taking the shard lock: every segment the shard points at was
        // registered before the write that made it point there released the lock.
        let segs = self.shared.segments.load();
        let mut hit = None;
        shard.find(h.tag(), |loc| {
            let Some((hdr, rec)) = record_at(&segs, loc) else {
                return false;
            };
            let same = format::record_key(&hdr, rec) == key;
            if same {
                hit = Some((hdr, rec));
            }
            same
        });
        match hit {
            Some((hdr, rec)) if !expired_now(hdr.expire_at_ms) => f(Some(Entry {
                value: format::record_value(&hdr, rec),
                expire_at_ms: hdr.expire_at_ms,
            })),
            _ => f(None),
        }
    }

    /// Starts bringing into cache what reading or writing each of `keys` will touch: its
    /// index slot, then the record that slot points at. A lookup that misses the cache waits
    /// for memory twice in a row; prefetching a batch of keys first lets those waits overlap,
    /// so a caller that knows its next keys (a pipelined batch, MGET) calls this before
    /// running them. Only a hint: it changes nothing and costs a hash and two read locks per
    /// key. At most [`PREFETCH_BATCH`] keys are looked at; the rest are ignored.
    pub fn prefetch(&self, keys: &[&[u8]]) {
        let mut hashes = [KeyHash::of(b""); PREFETCH_BATCH];
        let n = keys.len().min(PREFETCH_BATCH);
        for (h, key) in hashes.iter_mut().zip(keys) {
            *h = KeyHash::of(key);
        }
        let segs = self.shared.segments.load();
        prefetch_keys(&hashes[..n], &segs, |h| {
            self.shared.index.shard(h.shard()).read()
        });
    }

    /// The key's live value, copied.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get_with(key, |e| e.map(|e| e.value.to_vec()))
    }

    /// True when the key has a live value.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get_with(key, |e| e.is_some())
    }

    /// Writes `value` under `key`, visible to readers when this returns.
    /// `expire_at_ms` is Unix time in milliseconds, 0 = never.
    ///
    /// With [`Fsync::Always`] the write is on disk only once [`Engine::durable`] (or
    /// [`Engine::wait_durable`]) for the returned token has completed; acknowledge it then.
    ///
    /// # Errors
    /// Oversized key or value, a full disk, or [`Error::Poisoned`] after an earlier failure.
    pub fn put(&self, key: &[u8], value: &[u8], expire_at_ms: u64) -> Result<WriteToken> {
        // What `update` does for a decision known in advance, reordered so the two memory
        // reads a put waits on (the key's slot, then its old record) overlap with work that
        // does not need them: the checksum, then the append.
        check_sizes(key, value)?;
        let h = KeyHash::of(key);
        let sh = &self.shared;
        sh.wait_out_write_stall();
        let mut shard = sh.index.shard(h.shard()).write();
        shard.prefetch(h.tag());
        let body_crc = format::body_crc(key, value);
        let segs = sh.segments.load();
        prefetch_record(&shard, &segs, h);
        let (seq, loc) = sh.append_value(key, value, expire_at_ms, body_crc)?;
        // `segs` predates the append: it holds every record the shard points at.
        let found = find_current(&shard, &segs, key, h);
        point_at(&mut shard, &segs, found, h, loc);
        Ok(WriteToken(seq))
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
        if key.len() > KEY_LEN_MAX {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: KEY_LEN_MAX,
            });
        }
        let h = KeyHash::of(key);
        let sh = &self.shared;
        sh.wait_out_write_stall();
        let mut shard = sh.index.shard(h.shard()).write();
        let segs = sh.segments.load();
        let (slot, current) = find_current(&shard, &segs, key, h);
        let entry = live_entry(current);
        let (decision, result) = f(entry);
        let (value, expire_at_ms) = match decision {
            Update::Keep => return Ok((result, None)),
            Update::Put {
                value,
                expire_at_ms,
            } => (value, expire_at_ms),
            Update::SetExpiry { expire_at_ms } => match entry {
                Some(e) => (e.value, expire_at_ms),
                None => return Ok((result, None)),
            },
            Update::Delete => {
                let Some(i) = slot else {
                    return Ok((result, None));
                };
                let (loc, hdr, _) = current.expect("slot found");
                if entry.is_none() {
                    // Expired: drop it from memory; its record stays invisible on disk.
                    shard.remove_at(i);
                    add_dead(&segs, loc, hdr.record_len());
                    return Ok((result, None));
                }
                let (seq, tomb) = sh.append(&Append {
                    key,
                    value: &[],
                    expire_at_ms: 0,
                    flags: FLAG_TOMBSTONE,
                    body_crc: format::body_crc(key, &[]),
                })?;
                shard.remove_at(i);
                add_dead(&segs, loc, hdr.record_len());
                // The tombstone is dead weight from birth; compaction keeps it only while an
                // older segment may still hold the key.
                add_dead(&sh.segments.load(), tomb, RECORD_HEADER_LEN + key.len());
                return Ok((result, Some(WriteToken(seq))));
            }
        };
        check_sizes(key, value)?;
        let body_crc = format::body_crc(key, value);
        let (seq, loc) = sh.append_value(key, value, expire_at_ms, body_crc)?;
        point_at(&mut shard, &segs, (slot, current), h, loc);
        Ok((result, Some(WriteToken(seq))))
    }

    /// Calls `f` with the live values of several keys, read at one instant: no write of any of
    /// them is seen halfway (MGET beside MSET). `f` must not call back into the engine.
    pub fn get_many_with<R>(&self, keys: &[&[u8]], f: impl FnOnce(&[Option<Entry<'_>>]) -> R) -> R {
        let hashes: Vec<KeyHash> = keys.iter().map(|k| KeyHash::of(k)).collect();
        let shard_nos = distinct_shards(&hashes);
        // Ascending shard order, as every holder of several shard locks takes them.
        let guards: Vec<_> = shard_nos
            .iter()
            .map(|&i| self.shared.index.shard(i).read())
            .collect();
        let segs = self.shared.segments.load();
        let entries: Vec<Option<Entry<'_>>> = find_all(&guards, &shard_nos, keys, &hashes, &segs)
            .into_iter()
            .map(live_entry)
            .collect();
        f(&entries)
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
    /// than [`format::BATCH_LEN_MAX`] bytes; nothing is written then.
    ///
    /// # Panics
    /// When `f` returns a different number of decisions than there are keys.
    pub fn update_many<'v, R>(
        &self,
        keys: &[&[u8]],
        f: impl FnOnce(&[Option<Entry<'_>>]) -> (Vec<Update<'v>>, R),
    ) -> Result<(R, Option<WriteToken>)> {
        if let Some(key) = keys.iter().find(|k| k.len() > KEY_LEN_MAX) {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: KEY_LEN_MAX,
            });
        }
        let sh = &self.shared;
        sh.wait_out_write_stall();
        let hashes: Vec<KeyHash> = keys.iter().map(|k| KeyHash::of(k)).collect();
        let shard_nos = distinct_shards(&hashes);
        let mut guards: Vec<_> = shard_nos
            .iter()
            .map(|&i| sh.index.shard(i).write())
            .collect();
        let segs = sh.segments.load();
        let current = find_all(&guards, &shard_nos, keys, &hashes, &segs);
        let entries: Vec<Option<Entry<'_>>> = current.iter().map(|&c| live_entry(c)).collect();
        let (decisions, result) = f(&entries);
        assert_eq!(
            decisions.len(),
            keys.len(),
            "update_many: one decision per key"
        );

        // What each key's last decision does: a record to append, or only an index change.
        let superseded = superseded(keys);
        let mut appends = Vec::new();
        let mut changes = Vec::new();
        for (i, decision) in decisions.iter().enumerate() {
            let key = keys[i];
            if superseded[i] {
                continue;
            }
            let (value, expire_at_ms, flags) = match (*decision, entries[i], current[i]) {
                (Update::Keep, ..) => continue,
                (
                    Update::Put {
                        value,
                        expire_at_ms,
                    },
                    ..,
                ) => (value, expire_at_ms, 0),
                (Update::SetExpiry { expire_at_ms }, Some(e), _) => (e.value, expire_at_ms, 0),
                (Update::SetExpiry { .. }, None, _) | (Update::Delete, None, None) => continue,
                (Update::Delete, Some(_), _) => (&[][..], 0, FLAG_TOMBSTONE),
                (Update::Delete, None, Some(_)) => {
                    // Expired: drop it from memory; its record stays invisible on disk.
                    changes.push((i, None));
                    continue;
                }
            };
            check_sizes(key, value)?;
            changes.push((i, Some(appends.len())));
            appends.push(Append {
                key,
                value,
                expire_at_ms,
                flags,
                body_crc: format::body_crc(key, value),
            });
        }
        let total: usize = appends
            .iter()
            .map(|a| RECORD_HEADER_LEN + a.key.len() + a.value.len())
            .sum();
        if total > format::BATCH_LEN_MAX {
            return Err(Error::BatchTooLarge {
                len: total,
                max: format::BATCH_LEN_MAX,
            });
        }
        if appends.iter().any(|a| a.expire_at_ms != 0) {
            sh.has_expiring.store(true, Ordering::Relaxed);
        }
        let written = if appends.is_empty() {
            Vec::new()
        } else {
            sh.append_batch(&appends)?
        };

        // The batch may have rolled to a segment registered since `segs` was loaded, and
        // earlier changes may have moved slots: look each key up again.
        let segs_now = sh.segments.load();
        for (i, append) in changes {
            let (key, h) = (keys[i], hashes[i]);
            let shard = &mut guards[guard_of(&shard_nos, &h)];
            let (slot, old) = find_current(shard, &segs_now, key, h);
            let old = slot.zip(old);
            let new = append.map(|a| (appends[a].flags, written[a].1));
            match (old, new) {
                (Some((slot, (loc, hdr, _))), Some((flags, new)))
                    if flags & FLAG_TOMBSTONE != 0 =>
                {
                    shard.remove_at(slot);
                    add_dead(&segs_now, loc, hdr.record_len());
                    add_dead(&segs_now, new, RECORD_HEADER_LEN + key.len());
                }
                (Some((slot, (loc, hdr, _))), Some((_, new))) => {
                    shard.set(slot, new, false);
                    add_dead(&segs_now, loc, hdr.record_len());
                }
                (None, Some((flags, new))) if flags & FLAG_TOMBSTONE != 0 => {
                    add_dead(&segs_now, new, RECORD_HEADER_LEN + key.len());
                }
                (None, Some((_, new))) => shard.insert_absent(h.tag(), new, false),
                (Some((slot, (loc, hdr, _))), None) => {
                    shard.remove_at(slot);
                    add_dead(&segs_now, loc, hdr.record_len());
                }
                (None, None) => {}
            }
        }
        let token = written.last().map(|&(seq, _)| WriteToken(seq));
        Ok((result, token))
    }

    /// How long the current write stall may still last, if one is on: writers are outrunning
    /// compaction past the space bound (see [`crate::stall`]). Cheap: one atomic load.
    pub fn write_stall(&self) -> Option<std::time::Duration> {
        self.shared.write_stall.remaining()
    }

    /// Resolves when the write stall is lifted. A stall that runs out wakes nobody: await this
    /// with [`Engine::write_stall`]'s time as a timeout.
    pub fn write_stall_lifted(&self) -> crate::stall::StallLifted {
        crate::stall::StallLifted::new(self.shared.clone())
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
        sync::wait_durable(&self.shared, token.0)
    }

    /// True when writes must await [`Engine::durable`] before they are acknowledged.
    pub fn acks_wait_for_disk(&self) -> bool {
        self.shared.options.fsync == Fsync::Always
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    /// The fsync error (which also poisons the engine).
    pub fn sync(&self) -> Result<()> {
        let seq = self.shared.log.last_seq();
        sync::wait_durable(&self.shared, seq)
    }

    /// Writes a consistent copy of the store into the new directory `dest` while it keeps
    /// serving: every write made before the call, as of one moment (see [`crate::checkpoint`]).
    /// Sealed segments are hard-linked, so it is quick and takes little space until compaction
    /// deletes the originals. Writers, readers and compaction do not wait for it.
    ///
    /// # Errors
    /// `dest` exists; an I/O error (nothing is left under `dest` then); the sync's error.
    pub fn checkpoint(
        &self,
        dest: impl AsRef<std::path::Path>,
    ) -> Result<crate::checkpoint::CheckpointReport> {
        crate::checkpoint::checkpoint(&self.shared, dest.as_ref())
    }

    /// Keys in the index, including expired keys not yet removed (as Redis's DBSIZE).
    pub fn len(&self) -> u64 {
        self.shared.index.len()
    }

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
        mut f: impl FnMut(&[u8], Entry<'_>),
    ) -> ScanCursor {
        let count = count.max(1);
        let mut shard_no = (cursor >> 32) as usize;
        let mut tag_from = cursor as u32;
        let mut seen = 0usize;
        let now = now_ms();
        while shard_no < SHARD_COUNT {
            let shard = self.shared.index.shard(shard_no).read();
            let segs = self.shared.segments.load();
            let mut tags = shard.tags_from(tag_from);
            // Take whole groups of equal tags so a resumed scan never splits one.
            let mut cut = tags.len();
            let want = count - seen;
            if tags.len() > want {
                tags.select_nth_unstable_by_key(want, |t| t.0);
                let boundary = tags[want].0;
                tags.retain(|t| t.0 < boundary);
                tags.sort_unstable_by_key(|t| t.0);
                cut = tags.len();
                for &(_, i) in &tags {
                    emit(&shard, &segs, i, now, &mut f);
                }
                if boundary == tag_from || cut == 0 {
                    // One tag group larger than `count`: emit it whole and move past it.
                    let group: Vec<usize> = shard
                        .tags_from(boundary)
                        .into_iter()
                        .filter(|t| t.0 == boundary)
                        .map(|t| t.1)
                        .collect();
                    for i in group {
                        emit(&shard, &segs, i, now, &mut f);
                    }
                    return next_cursor(shard_no, boundary);
                }
                return (shard_no as u64) << 32 | u64::from(boundary);
            }
            for &(_, i) in &tags {
                emit(&shard, &segs, i, now, &mut f);
            }
            seen += cut;
            shard_no += 1;
            tag_from = 0;
            if seen >= count {
                break;
            }
        }
        if shard_no >= SHARD_COUNT {
            0
        } else {
            (shard_no as u64) << 32
        }
    }

    /// A random live key, or `None` when there is none.
    pub fn random_key(&self, mut random: impl FnMut() -> u64) -> Option<Vec<u8>> {
        let now = now_ms();
        for _ in 0..64 {
            let r = random();
            let start = (r >> 56) as usize;
            for k in 0..SHARD_COUNT {
                let shard = self.shared.index.shard((start + k) % SHARD_COUNT).read();
                let Some(i) = shard.occupied_from(r as usize) else {
                    continue;
                };
                let segs = self.shared.segments.load();
                match record_at(&segs, shard.loc(i)) {
                    Some((hdr, rec)) if !is_expired(hdr.expire_at_ms, now) => {
                        return Some(format::record_key(&hdr, rec).to_vec());
                    }
                    _ => break,
                }
            }
        }
        None
    }

    /// Deletes every key (FLUSHALL). Durable when this returns, under every fsync policy.
    ///
    /// # Errors
    /// The write or fsync error.
    pub fn clear(&self) -> Result<()> {
        let sh = &self.shared;
        let _c = sh.compaction_lock.lock();
        let mut shards: Vec<_> = (0..SHARD_COUNT)
            .map(|i| sh.index.shard(i).write())
            .collect();
        sh.check_poison()?;
        let (seq, old) = {
            let mut st = sh.log.lock();
            // The flush record opens a fresh segment, so every older segment can go.
            sh.log
                .roll_locked(
                    &mut st,
                    RECORD_HEADER_LEN as u64,
                    sh.options.segment_size_bytes,
                    &**sh,
                )
                .map_err(|e| sh.note_write_error(e))?;
            let (seq, _) = sh
                .log
                .append_locked(
                    &mut st,
                    &Append {
                        key: &[],
                        value: &[],
                        expire_at_ms: 0,
                        flags: FLAG_FLUSH,
                        body_crc: format::body_crc(&[], &[]),
                    },
                    sh.options.segment_size_bytes,
                    &**sh,
                )
                .map_err(|e| sh.note_write_error(e))?;
            // Every segment but the one holding the flush record predates it.
            let active = st.active.id;
            let old: Vec<u32> = sh
                .segments
                .load()
                .iter()
                .filter(|s| s.id != active)
                .map(|s| s.id)
                .collect();
            (seq, old)
        };
        for s in shards.iter_mut() {
            s.clear();
        }
        drop(shards);
        sync::wait_durable(sh, seq)?;
        sh.retire(&old);
        crate::segment::sync_dir(&sh.dir)?;
        Ok(())
    }

    /// Compacts every sealed segment holding dead bytes now, whatever the thresholds; returns
    /// what the run did. Background compaction does the same by itself when enabled.
    ///
    /// # Errors
    /// The I/O error that stopped the run; the input segments are kept then.
    pub fn compact_now(&self) -> Result<crate::compaction::RunReport> {
        crate::compaction::compact_all(&self.shared)
    }

    /// Compacts exactly these segments (tests of partial compaction). Active or unknown ids are
    /// skipped.
    ///
    /// # Errors
    /// As for [`Engine::compact_now`].
    #[doc(hidden)]
    pub fn compact_segments(&self, ids: &[u32]) -> Result<crate::compaction::RunReport> {
        let active = self.shared.log.active_id();
        let segs = self.shared.segments.load();
        let plan: Vec<Arc<Segment>> = segs
            .iter()
            .filter(|s| ids.contains(&s.id) && s.id != active && s.is_sealed())
            .cloned()
            .collect();
        crate::compaction::compact(&self.shared, &plan)
    }

    /// Runs the active-expiry sweep over about `budget` index slots now (the maintenance
    /// thread does this by itself every interval); returns the keys removed.
    pub fn expire_now(&self, budget: usize) -> u64 {
        let mut cursor = 0;
        expire_sweep(&self.shared, &mut cursor, budget)
    }

    /// Ids of the registered segments, oldest first, and which one is active.
    #[doc(hidden)]
    pub fn segment_ids(&self) -> (Vec<u32>, u32) {
        let mut ids: Vec<u32> = self.shared.segments.load().iter().map(|s| s.id).collect();
        ids.sort_unstable();
        (ids, self.shared.log.active_id())
    }

    /// A snapshot of counters and sizes.
    pub fn stats(&self) -> Stats {
        let sh = &self.shared;
        let segs = sh.segments.load();
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
            poisoned: sh.poison_cause.lock().clone(),
            last_seq: sh.log.last_seq(),
            durable_seq: sh.syncer.durable(),
            recovery: sh.recovery.clone(),
            ..Stats::default()
        };
        st.disk_bytes = sh.spare_allocated();
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
        self.shared.write_stall.lift();
        {
            let _spare = self.shared.spare.lock();
            self.shared.spare_cond.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let prepared = std::mem::take(&mut *self.shared.spare.lock());
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
        let res = res.and_then(|()| sync::sync_now(sh));
        if res.is_ok() && sh.options.hints {
            // So the next open reads hints for everything but the newest segment.
            crate::compaction::write_missing_hints_including_active(sh);
        }
        if let Err(e) = &res {
            tracing::error!(error = %e, "final sync at close failed");
        }
        res
    }

    #[doc(hidden)]
    pub fn shared_for_tests(&self) -> usize {
        Arc::strong_count(&self.shared)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The prealloc thread: keeps one log segment created and preallocated, named
/// `<id>.seg.tmp` until the log takes it (an unused one is removed at the next open), and
/// faults the active segment's pages in a chunk ahead of its writer.
fn prepare_segments(shared: Arc<Shared>) {
    let ahead = shared.options.fsync != Fsync::Always;
    loop {
        let populate = {
            let mut p = shared.spare.lock();
            while p.spare.is_some() && p.populate.is_none() && !shared.syncer.is_shutdown() {
                shared.spare_cond.wait(&mut p);
            }
            p.populate.take()
        };
        if shared.syncer.is_shutdown() {
            return;
        }
        if let Some(seg) = populate {
            let end = (seg.len() + 2 * crate::segment::POPULATE_CHUNK).min(seg.capacity());
            // Grow the file first (pages past its end cannot be faulted in). On failure (a
            // full disk) the writer meets the error itself when it gets there.
            match seg.reserve(end) {
                Ok(true) => shared.log_grew(),
                Ok(false) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "could not grow the active segment ahead of its writer")
                }
            }
            seg.populate_to(end);
            continue;
        }
        let id = match shared.allocate_segment_id() {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot prepare the next segment");
                return;
            }
        };
        let path = shared
            .dir
            .join(format!("{}.tmp", format::segment_file_name(id)));
        match Segment::create(
            path,
            id,
            format::SegmentKind::Log,
            shared.options.segment_size_bytes,
        ) {
            Ok(seg) => {
                if ahead {
                    seg.populate_to(2 * crate::segment::POPULATE_CHUNK);
                }
                shared.spare.lock().spare = Some(Arc::new(seg));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not prepare the next segment; will retry");
                if shared
                    .syncer
                    .wait_shutdown(std::time::Duration::from_secs(1))
                {
                    return;
                }
            }
        }
    }
}

/// Most keys one [`Engine::prefetch`] call looks at: enough to keep a core's outstanding
/// memory reads busy, few enough that the first prefetched lines are still in cache when used.
pub const PREFETCH_BATCH: usize = 32;

/// Slots examined under one shard lock by the expiry sweep (about 0.1 ms of cache misses).
const EXPIRE_SLOTS_PER_LOCK: usize = 1024;

/// Active expiry: examines about `budget` index slots from `cursor` onward and removes the
/// entries whose records have expired, so they leave memory (and DBSIZE) without being read and
/// compaction reclaims their records. No tombstone is needed: an expired record stays invisible
/// on disk. Returns how many keys were removed.
pub(crate) fn expire_sweep(shared: &Shared, cursor: &mut u64, budget: usize) -> u64 {
    if !shared.has_expiring.load(Ordering::Relaxed) {
        return 0;
    }
    let now = now_ms();
    let mut removed = 0u64;
    let mut examined = 0usize;
    while examined < budget {
        let shard_no = ((*cursor >> 32) as usize) % SHARD_COUNT;
        let pos = (*cursor as u32) as usize;
        let mut shard = shared.index.shard(shard_no).write();
        let segs = shared.segments.load();
        let cap = shard.capacity_slots();
        let start = pos.min(cap);
        let end = (start + EXPIRE_SLOTS_PER_LOCK).min(cap);
        let expired: Vec<(u32, Loc, usize)> = (start..end)
            .filter_map(|i| shard.slot_at(i))
            .filter_map(|(tag, loc)| {
                let (h, _) = record_at(&segs, loc)?;
                is_expired(h.expire_at_ms, now).then_some((tag, loc, h.record_len()))
            })
            .collect();
        for (tag, loc, len) in expired {
            if let Some(i) = shard.find(tag, |l| l == loc) {
                shard.remove_at(i);
                add_dead(&segs, loc, len);
                removed += 1;
            }
        }
        examined += (end - start).max(1);
        *cursor = if end >= cap {
            (((shard_no + 1) % SHARD_COUNT) as u64) << 32
        } else {
            (shard_no as u64) << 32 | end as u64
        };
    }
    shared
        .counters
        .expired_keys
        .fetch_add(removed, Ordering::Relaxed);
    removed
}

/// The distinct index shards of `hashes`, ascending: the order in which every holder of
/// several shard locks takes them, so two such holders never deadlock.
fn distinct_shards(hashes: &[KeyHash]) -> Vec<usize> {
    let mut shards: Vec<usize> = hashes.iter().map(|h| h.shard()).collect();
    shards.sort_unstable();
    shards.dedup();
    shards
}

/// For each key, whether the same key appears again later (its later decision wins).
fn superseded(keys: &[&[u8]]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    let mut out = vec![false; keys.len()];
    for (i, key) in keys.iter().enumerate().rev() {
        out[i] = !seen.insert(*key);
    }
    out
}

/// Where the guard of `h`'s shard sits among guards taken in `distinct_shards` order.
fn guard_of(shard_nos: &[usize], h: &KeyHash) -> usize {
    shard_nos
        .binary_search(&h.shard())
        .expect("every key's shard is locked")
}

/// Prefetches the record of the first slot whose tag matches `h` (see [`Engine::prefetch`]).
fn prefetch_record(shard: &crate::index::Table, segs: &SegmentMap, h: KeyHash) {
    if let Some(loc) = shard.first_match(h.tag()) {
        if let Some(seg) = segs.get(loc.seg) {
            seg.prefetch(u64::from(loc.off));
        }
    }
}

/// Prefetches every key's home slot, then every key's record, so the misses of a batch
/// overlap. `table_of` gives the shard table of a hash (a fresh read lock, or one held).
fn prefetch_keys<T: std::ops::Deref<Target = crate::index::Table>>(
    hashes: &[KeyHash],
    segs: &SegmentMap,
    table_of: impl Fn(&KeyHash) -> T,
) {
    for h in hashes {
        table_of(h).prefetch(h.tag());
    }
    for h in hashes {
        prefetch_record(&table_of(h), segs, *h);
    }
}

/// Points the key's slot (found by `find_current`) at its new record `loc`, counting the old
/// record dead, or adds a slot when the key had none.
fn point_at(
    shard: &mut crate::index::Table,
    segs: &SegmentMap,
    found: (Option<usize>, Current<'_>),
    h: KeyHash,
    loc: Loc,
) {
    match found {
        (Some(i), Some((old, hdr, _))) => {
            shard.set(i, loc, false);
            add_dead(segs, old, hdr.record_len());
        }
        _ => shard.insert_absent(h.tag(), loc, false),
    }
}

/// The current record of every key (see `find_current`), each shard locked in `guards`. Each
/// chunk of keys has its slots, then its records, prefetched first (as in
/// [`Engine::prefetch`]) so their memory reads overlap.
fn find_all<'a, G: std::ops::Deref<Target = crate::index::Table>>(
    guards: &[G],
    shard_nos: &[usize],
    keys: &[&[u8]],
    hashes: &[KeyHash],
    segs: &'a SegmentMap,
) -> Vec<Current<'a>> {
    let mut found = Vec::with_capacity(keys.len());
    for (keys, hashes) in keys
        .chunks(PREFETCH_BATCH)
        .zip(hashes.chunks(PREFETCH_BATCH))
    {
        if keys.len() > 1 {
            prefetch_keys(hashes, segs, |h| &*guards[guard_of(shard_nos, h)]);
        }
        found.extend(
            keys.iter()
                .zip(hashes)
                .map(|(key, h)| find_current(&guards[guard_of(shard_nos, h)], segs, key, *h).1),
        );
    }
    found
}

type Current<'a> = Option<(Loc, RecordHeader, &'a [u8])>;

/// The key's slot in its shard and the record it points at (live, expired or unreadable).
fn find_current<'a>(
    shard: &crate::index::Table,
    segs: &'a SegmentMap,
    key: &[u8],
    h: KeyHash,
) -> (Option<usize>, Current<'a>) {
    let slot = shard.find(h.tag(), |loc| key_matches(segs, loc, key));
    let current = slot.and_then(|i| {
        let loc = shard.loc(i);
        record_at(segs, loc).map(|(hdr, rec)| (loc, hdr, rec))
    });
    (slot, current)
}

/// The value a read sees in `current`: none when absent, expired or unreadable.
fn live_entry(current: Current<'_>) -> Option<Entry<'_>> {
    current
        .filter(|(_, hdr, _)| !expired_now(hdr.expire_at_ms))
        .map(|(_, hdr, rec)| Entry {
            value: format::record_value(&hdr, rec),
            expire_at_ms: hdr.expire_at_ms,
        })
}

fn add_dead(segs: &SegmentMap, loc: Loc, bytes: usize) {
    if let Some(s) = segs.get(loc.seg) {
        s.add_dead(bytes as u64);
    }
}

fn emit(
    shard: &crate::index::Table,
    segs: &SegmentMap,
    i: usize,
    now: u64,
    f: &mut impl FnMut(&[u8], Entry<'_>),
) {
    let Some((hdr, rec)) = record_at(segs, shard.loc(i)) else {
        return;
    };
    if !is_expired(hdr.expire_at_ms, now) {
        f(
            format::record_key(&hdr, rec),
            Entry {
                value: format::record_value(&hdr, rec),
                expire_at_ms: hdr.expire_at_ms,
            },
        );
    }
}

fn next_cursor(shard_no: usize, tag: u32) -> ScanCursor {
    match tag.checked_add(1) {
        Some(t) => (shard_no as u64) << 32 | u64::from(t),
        None if shard_no + 1 < SHARD_COUNT => ((shard_no + 1) as u64) << 32,
        None => 0,
    }
}

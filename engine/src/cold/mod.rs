//! Cold reads: records that are not in memory are read off the caller's thread.
//!
//! Reads go through the memory map, so a record whose pages the kernel evicted is read from
//! disk inside a page fault, and the thread that touched it waits for the disk: on a server,
//! every client of that worker waits. So a caller that must not block (the server's workers)
//! first asks [`check`] which records its next keys would touch and are not resident, then
//! hands those to [`ColdReads::submit`] and awaits the [`Fetch`] while its other work goes on.
//! The pool's threads read each record with `pread` and check its checksums; a read that
//! fails or whose checksum does not match is reported for that key, logged with file and
//! offset, and never served.
//!
//! While the store is larger than the page cache could hold (see `room`), a record is read
//! with `O_DIRECT` into a buffer of its own, which the fetch hands to the caller (see
//! `staged`): the page cache is not touched, so the read costs no page-cache
//! insertion, no charge against a memory cap and no reclaim, and exactly the record's blocks
//! are read. A record read again while it is still among the last [`RECENT_SLOTS`] cold
//! reads is read through the page cache instead, which keeps it in memory for the map: a key
//! read once in a while costs one disk read each time and evicts nothing, a key read often
//! stays resident. Records larger than [`STAGE_RECORD_MAX`], reads beyond
//! [`STAGED_BYTES_MAX`] held at once, and file systems without `O_DIRECT` take the page cache
//! too.
//!
//! Asking the kernel whether pages are resident costs a system call (`mincore`), which a
//! store that fits in memory should not pay on every read. So residency is checked only while
//! memory is short: one pool thread samples a few random records every
//! [`SAMPLE_INTERVAL`] and, when at least one in [`ABSENT_RATIO`] of those it looked at over
//! the last [`SAMPLE_WINDOW`] samples was not resident, turns checking on for
//! [`PRESSURE_HOLD`]; every cold read found extends it. Outside those times a read goes
//! straight to the map, as before. A single record out of memory is no sign of pressure:
//! hosts that reclaim idle pages proactively (DAMON's pageout, a proactive `memory.reclaim`)
//! take a page here and there from a store that fits, and a read that meets one pays one page
//! fault, less than a `mincore` on every read and write would cost.
//!
//! Concurrent reads of one record are merged into one `pread`; at most `threads` reads are in
//! flight, the rest queue in order (callers wait their turn, they get no error).

mod ring;
mod room;

pub use ring::ColdRing;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::format::{self, trusted_header, RecordHeader, RECORD_HEADER_LEN};
use crate::index::{Index, KeyHash, Loc, SHARD_COUNT};
use crate::registry::Registry;
use crate::segment::Segment;
use crate::staged::{AlignedBuf, Staged, StagedRecord, BLOCK_BYTES};

/// How often a pool thread samples records for residency.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// How long residency checks stay on after the last sign of memory pressure.
pub const PRESSURE_HOLD: Duration = Duration::from_secs(10);
/// The store's size is compared with the page cache's room every this many samples.
const ROOM_CHECK_SAMPLES: u64 = 10;
/// Records one sample looks at.
const SAMPLE_RECORDS: usize = 64;
/// Samples whose records are counted together to decide whether memory is short (one
/// second's worth).
const SAMPLE_WINDOW: usize = 10;
/// Memory is short when at least one in this many sampled records was not resident: below
/// it, the page faults of the reads that meet one (1-2% of reads, ~100 us each on a disk)
/// cost about what a `mincore` on every read and write would.
const ABSENT_RATIO: u32 = 50;
/// ... and at least this many, so that one record of a small first sample is not enough.
const ABSENT_MIN: u32 = 2;
/// The first read of a record: the rest of its first page (at least a header's worth), which
/// holds a small record whole; a larger one takes a second read for the rest.
const PAGE_BYTES: u64 = 4096;
/// A large record is read and checked in pieces of this size.
const READ_CHUNK_BYTES: usize = 1 << 20;
/// Records up to this size are read into a buffer handed to the caller; larger ones through
/// the page cache, in pieces, for the map.
pub const STAGE_RECORD_MAX: usize = 256 << 10;
/// Buffers of staged records alive at once, at most (beyond it reads take the page cache).
pub const STAGED_BYTES_MAX: u64 = 64 << 20;
/// The first `O_DIRECT` read of a record covers at most this many bytes from its start (see
/// [`ColdReads::read_guess`]); a longer record takes a second read for the rest.
const READ_GUESS_MAX: u32 = 16 << 10;
/// Cold reads remembered, to read a record again through the page cache.
pub const RECENT_SLOTS: usize = 16384;

/// A record some key's read or write would touch, not in memory.
#[derive(Clone)]
pub(crate) struct ColdRecord {
    /// Which of the caller's keys needs it.
    pub key: usize,
    pub seg: Arc<Segment>,
    pub off: u64,
}

/// The records that reading or writing `keys` would touch (each key's candidates: the
/// records whose hash tag matches, which a lookup reads to compare keys) and that are not in
/// memory. Empty, without any system call, while memory is not short.
///
/// A key for which `blind(i)` holds is about to be written blindly (`Engine::put`), which
/// needs no record read when the key has a single candidate: none is fetched for it then.
pub(crate) fn check(
    cold: &ColdReads,
    index: &Index,
    registry: &Registry,
    ns: u32,
    keys: &[&[u8]],
    blind: impl Fn(usize) -> bool,
) -> Vec<ColdRecord> {
    let mut out = Vec::new();
    if !cold.checking() {
        return out;
    }
    for (i, key) in keys.iter().enumerate() {
        let h = KeyHash::of_ns(ns, key);
        let shard = index.shard(h.shard()).read();
        if blind(i) {
            let mut candidates = 0;
            shard.find(h, |_| {
                candidates += 1;
                false
            });
            if candidates <= 1 {
                continue;
            }
        }
        let segs = registry.load();
        shard.find(h, |loc| {
            if let Some(seg) = segs.get(loc.seg) {
                let off = u64::from(loc.off);
                if !record_resident(seg, off) {
                    out.push(ColdRecord {
                        key: i,
                        seg: seg.clone(),
                        off,
                    });
                }
            }
            // Every candidate: a lookup may compare the key against each of them.
            false
        });
    }
    if !out.is_empty() {
        cold.note_pressure();
    }
    out
}

/// True when the whole record at `off` is in memory: its header's pages first (the record's
/// length is in it), then the rest.
pub(crate) fn record_resident(seg: &Segment, off: u64) -> bool {
    if off + RECORD_HEADER_LEN as u64 > seg.capacity() {
        return true; // not a record the map can hold: the read path reports it
    }
    if !seg.resident(off, RECORD_HEADER_LEN as u64) {
        return false;
    }
    let head = seg.bytes(off, RECORD_HEADER_LEN);
    let len = if seg.is_verified() {
        trusted_header(head).record_len()
    } else {
        match RecordHeader::decode(head) {
            Ok(h) => h.record_len(),
            // Damaged: the read path finds it, counts it and serves nothing.
            Err(_) => return true,
        }
    };
    let len = (len as u64).min(seg.capacity() - off);
    len <= PAGE_BYTES - off % PAGE_BYTES || seg.resident(off, len)
}

/// What a fetch reports: the keys whose records could not be read, with why.
pub type Failures = Vec<(usize, Error)>;

/// What a [`Fetch`] resolves to.
pub struct Fetched {
    /// The keys whose records could not be read, with why.
    pub failures: Failures,
    /// Records read into buffers rather than the page cache: run the commands that waited
    /// inside [`crate::with_staged`] with these, or their reads fault on the map.
    pub staged: Staged,
}

/// Resolves once every record of a [`ColdReads::submit`] is read (or failed).
pub struct Fetch {
    state: Arc<FetchState>,
}

struct FetchState {
    remaining: AtomicUsize,
    failures: Mutex<Failures>,
    staged: Mutex<Vec<Arc<StagedRecord>>>,
    waker: Mutex<Option<Waker>>,
}

/// What one read produced: the record in a buffer, or in the page cache (`None`).
type ReadResult = Result<Option<Arc<StagedRecord>>>;

impl FetchState {
    fn complete(&self, key: usize, result: &ReadResult) {
        match result {
            Err(e) => self.failures.lock().push((key, e.duplicate())),
            Ok(Some(rec)) => self.staged.lock().push(rec.clone()),
            Ok(None) => {}
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(w) = self.waker.lock().take() {
                w.wake();
            }
        }
    }
}

impl FetchState {
    fn take(&self) -> Fetched {
        Fetched {
            failures: std::mem::take(&mut *self.failures.lock()),
            staged: Staged(std::mem::take(&mut *self.staged.lock())),
        }
    }
}

impl Future for Fetch {
    type Output = Fetched;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Fetched> {
        if self.state.remaining.load(Ordering::Acquire) == 0 {
            return Poll::Ready(self.state.take());
        }
        *self.state.waker.lock() = Some(cx.waker().clone());
        // Completed between the check and the registration: its wake may have missed us.
        if self.state.remaining.load(Ordering::Acquire) == 0 {
            return Poll::Ready(self.state.take());
        }
        Poll::Pending
    }
}

/// One read for the pool: a record, and everyone waiting for it.
struct Job {
    seg: Arc<Segment>,
    off: u64,
    queued: Instant,
}

/// A fetch waiting for a record, and which of its keys the record is for.
type Waiting = (Arc<FetchState>, usize);

/// The pool's shared state.
pub(crate) struct ColdReads {
    queue: Mutex<VecDeque<Job>>,
    cond: Condvar,
    /// Records queued or being read, by (segment id, offset), with who waits for each.
    pending: Mutex<HashMap<(u32, u64), Vec<Waiting>>>,
    /// Residency checks are on until this instant (microseconds since `origin`; 0 = off).
    pressure_until_us: AtomicU64,
    origin: Instant,
    pub(crate) stats: ColdStats,
    /// Tests: checks always on, whatever the samples say.
    pub(crate) force_checks: AtomicBool,
    /// Tests: reads wait while held (a disk that does not answer yet), or fail with EIO.
    held: Mutex<bool>,
    held_cond: Condvar,
    pub(crate) fail_eio: AtomicBool,
    stop: AtomicBool,
    /// Bytes of staged records' buffers alive (see [`STAGED_BYTES_MAX`]).
    staged_bytes: Arc<AtomicU64>,
    /// The last cold reads, by hash of (segment, offset): a record met here again is read
    /// through the page cache (see the module's documentation).
    recent: Box<[AtomicU64]>,
    /// Set when a file system refused an `O_DIRECT` read: every read takes the page cache.
    direct_refused: AtomicBool,
    /// The store is larger than the page cache could hold (see `room`): cold reads skip it.
    /// Otherwise they go through it, which warms a store that fits after a restart.
    bypass_cache: AtomicBool,
    /// Tests: as if the store did not fit, whatever the machine says.
    pub(crate) force_bypass: AtomicBool,
    /// The rings' eventfds, nudged when held reads are released (tests).
    ring_events: Mutex<Vec<std::sync::Weak<std::os::fd::OwnedFd>>>,
    /// A moving average of the lengths of the records read with `O_DIRECT`: the first read of
    /// the next one covers this much (see [`ColdReads::read_guess`]).
    typical_len: AtomicU32,
}

impl Default for ColdReads {
    fn default() -> Self {
        ColdReads {
            queue: Mutex::new(VecDeque::new()),
            cond: Condvar::new(),
            pending: Mutex::new(HashMap::new()),
            pressure_until_us: AtomicU64::new(0),
            origin: Instant::now(),
            stats: ColdStats::default(),
            force_checks: AtomicBool::new(false),
            held: Mutex::new(false),
            held_cond: Condvar::new(),
            fail_eio: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            staged_bytes: Arc::new(AtomicU64::new(0)),
            recent: (0..RECENT_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            direct_refused: AtomicBool::new(false),
            bypass_cache: AtomicBool::new(false),
            force_bypass: AtomicBool::new(false),
            ring_events: Mutex::new(Vec::new()),
            typical_len: AtomicU32::new(0),
        }
    }
}

impl ColdReads {
    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64 + 1
    }

    /// True while residency is worth checking before a read (memory is short).
    pub(crate) fn checking(&self) -> bool {
        let until = self.pressure_until_us.load(Ordering::Relaxed);
        (until != 0 && until > self.now_us()) || self.force_checks.load(Ordering::Relaxed)
    }

    /// Keeps residency checks on for [`PRESSURE_HOLD`] from now.
    pub(crate) fn note_pressure(&self) {
        let until = self.now_us() + PRESSURE_HOLD.as_micros() as u64;
        self.pressure_until_us.fetch_max(until, Ordering::Relaxed);
    }

    /// Queues a read of each record on the pool (merged with reads of the same record
    /// already under way).
    pub(crate) fn submit(&self, records: Vec<ColdRecord>) -> Fetch {
        let (fetch, fresh) = self.register(records);
        self.enqueue(fresh);
        fetch
    }

    /// A fetch of `records`, and the reads to start for it: those of records nobody reads yet
    /// (the others are merged with the read under way).
    fn register(&self, records: Vec<ColdRecord>) -> (Fetch, Vec<Job>) {
        let state = Arc::new(FetchState {
            remaining: AtomicUsize::new(records.len()),
            failures: Mutex::new(Vec::new()),
            staged: Mutex::new(Vec::new()),
            waker: Mutex::new(None),
        });
        let mut fresh = Vec::new();
        {
            let mut pending = self.pending.lock();
            for r in records {
                let waiting = pending.entry((r.seg.id, r.off)).or_default();
                if waiting.is_empty() {
                    fresh.push(Job {
                        seg: r.seg,
                        off: r.off,
                        queued: Instant::now(),
                    });
                } else {
                    self.stats.merged.fetch_add(1, Ordering::Relaxed);
                }
                waiting.push((state.clone(), r.key));
            }
        }
        self.stats
            .in_flight
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        (Fetch { state }, fresh)
    }

    /// Hands `jobs` to the pool's threads.
    fn enqueue(&self, fresh: Vec<Job>) {
        if !fresh.is_empty() {
            let n = fresh.len();
            self.queue.lock().extend(fresh);
            // One thread per read: waking all of them for one read costs a context switch each
            // (32 threads, two cores) and most go back to sleep.
            for _ in 0..n {
                self.cond.notify_one();
            }
        }
    }

    /// Stops the pool's threads (at their next wake-up; queued reads are failed).
    pub(crate) fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        self.hold(false);
        let _q = self.queue.lock();
        self.cond.notify_all();
    }

    /// Tests: while `held`, every read waits before it starts, as on a disk that does not
    /// answer yet; releasing lets them all go.
    pub(crate) fn hold(&self, held: bool) {
        *self.held.lock() = held;
        self.held_cond.notify_all();
        if !held {
            for event in self.ring_events.lock().iter().filter_map(|e| e.upgrade()) {
                ring::nudge(&event);
            }
        }
    }

    /// True when the record at (`seg`, `off`) was among the last cold reads (it is read
    /// often: let the page cache keep it); remembers it otherwise.
    fn read_recently(&self, seg: u32, off: u64) -> bool {
        let id = (u64::from(seg) << 32 | off) + 1;
        let slot =
            &self.recent[xxhash_rust::xxh3::xxh3_64(&id.to_le_bytes()) as usize % RECENT_SLOTS];
        slot.swap(id, Ordering::Relaxed) == id
    }

    /// Tests: the failure a read of `job` is made to have (`Engine::inject_cold_read_eio`).
    fn injected_failure(&self, job: &Job) -> Option<Error> {
        self.fail_eio.load(Ordering::Relaxed).then(|| {
            Error::io(
                "read segment",
                job.seg.path(),
                std::io::Error::from_raw_os_error(libc::EIO),
            )
        })
    }

    fn is_held(&self) -> bool {
        *self.held.lock()
    }

    /// True when `job` should be read with `O_DIRECT` into a buffer (see the module's
    /// documentation); remembers the read either way (see [`ColdReads::read_recently`]).
    fn wants_direct(&self, job: &Job) -> bool {
        self.cache_bypassed()
            && !self.read_recently(job.seg.id, job.off)
            && !self.direct_refused.load(Ordering::Relaxed)
            && self.staged_bytes.load(Ordering::Relaxed) < STAGED_BYTES_MAX
            && job.seg.direct_file().is_some()
    }

    /// True while cold reads skip the page cache: the store does not fit in it.
    pub(crate) fn cache_bypassed(&self) -> bool {
        self.bypass_cache.load(Ordering::Relaxed) || self.force_bypass.load(Ordering::Relaxed)
    }

    /// Compares the store's `bytes` with the memory its page cache could get (see `room`).
    fn update_bypass(&self, bytes: u64) {
        let bypass = room::cache_room().is_some_and(|room| bytes > room / 10 * 9);
        if self.bypass_cache.swap(bypass, Ordering::Relaxed) != bypass {
            tracing::info!(
                store_bytes = bytes,
                "{}",
                if bypass {
                    "the store is larger than the page cache can hold: values read from disk \
                     skip it (O_DIRECT), only values read again soon are kept in memory"
                } else {
                    "the page cache can hold the store: values read from disk stay in memory"
                }
            );
        }
    }

    /// How many bytes from a record's start its first `O_DIRECT` read covers: about the length
    /// of the records read lately (at least a header, at most [`READ_GUESS_MAX`]).
    ///
    /// The index does not keep record lengths (16 bytes per key), so without a guess the first
    /// read takes the block(s) holding the header, and a record that runs into the next block
    /// (a quarter of 1 KB records, at random offsets in 4 KiB blocks) takes a second read: a
    /// second device round trip for it and a second submission. Records of one store are
    /// usually of similar sizes; a guess too long costs only more blocks in the same read.
    fn read_guess(&self) -> usize {
        (self.typical_len.load(Ordering::Relaxed).min(READ_GUESS_MAX) as usize)
            .max(RECORD_HEADER_LEN)
    }

    /// Takes `len`, a record's length just read, into [`ColdReads::read_guess`].
    fn note_len(&self, len: usize) {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        let old = self.typical_len.load(Ordering::Relaxed);
        // An average over about the last 8 records; racing updates may lose one, harmless.
        let new = if old == 0 {
            len
        } else {
            (u64::from(old) * 7 + u64::from(len)).div_ceil(8) as u32
        };
        self.typical_len.store(new, Ordering::Relaxed);
    }

    /// Notes that the file system refused an `O_DIRECT` read of `seg`: from now on every
    /// read takes the page cache.
    fn refuse_direct(&self, seg: &Segment) {
        if !self.direct_refused.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                path = %seg.path().display(),
                "the file system refused an O_DIRECT read; cold reads go through the page \
                 cache from now on"
            );
        }
    }

    fn wait_while_held(&self) {
        let mut held = self.held.lock();
        while *held {
            self.held_cond.wait(&mut held);
        }
    }
}

/// A pool thread's body: reads queued records; thread 0 also samples for memory pressure.
pub(crate) fn run(cold: &ColdReads, index: &Index, registry: &Registry, thread: usize) {
    let mut buf = Vec::new();
    let mut next_sample = Instant::now();
    let mut samples = 0u64;
    let mut window = PressureWindow::default();
    loop {
        let job = {
            let mut q = cold.queue.lock();
            loop {
                if cold.stop.load(Ordering::Acquire) {
                    break None;
                }
                if let Some(job) = q.pop_front() {
                    break Some(job);
                }
                if thread == 0 {
                    let now = Instant::now();
                    if now >= next_sample {
                        break None;
                    }
                    cold.cond.wait_until(&mut q, next_sample);
                } else {
                    cold.cond.wait(&mut q);
                }
            }
        };
        if cold.stop.load(Ordering::Acquire) {
            fail_all(cold);
            return;
        }
        match job {
            Some(job) => read_one(cold, job, &mut buf),
            None => {
                let (looked, absent) = sample(cold, index, registry);
                if window.note(looked, absent) {
                    cold.note_pressure();
                }
                next_sample = Instant::now() + SAMPLE_INTERVAL;
                samples += 1;
                if samples % ROOM_CHECK_SAMPLES == 1 {
                    let bytes = registry.load().iter().map(|s| s.len()).sum();
                    cold.update_bypass(bytes);
                }
            }
        }
    }
}

/// Answers every queued read with an error: the engine is closing.
fn fail_all(cold: &ColdReads) {
    let jobs: Vec<Job> = cold.queue.lock().drain(..).collect();
    for job in jobs {
        finish(cold, &job, &Err(Error::Closed));
    }
}

fn read_one(cold: &ColdReads, job: Job, buf: &mut Vec<u8>) {
    cold.wait_while_held();
    let result = match cold.injected_failure(&job) {
        Some(e) => Err(e),
        None => read_record(cold, &job.seg, job.off, cold.wants_direct(&job), buf),
    };
    done(cold, &job, &result);
}

/// A read ended: counts it (and its failure, logged with file and offset) and answers
/// everyone waiting for it.
fn done(cold: &ColdReads, job: &Job, result: &ReadResult) {
    if let Err(e) = result {
        cold.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            path = %job.seg.path().display(),
            offset = job.off,
            error = %e,
            "cold read failed; the command that needed it gets an error, nothing is served \
             from this record"
        );
    }
    cold.stats.note(job.queued.elapsed());
    finish(cold, job, result);
}

fn finish(cold: &ColdReads, job: &Job, result: &ReadResult) {
    let waiting = cold
        .pending
        .lock()
        .remove(&(job.seg.id, job.off))
        .unwrap_or_default();
    cold.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    for (state, key) in waiting {
        state.complete(key, result);
    }
}

fn corrupt(seg: &Segment, off: u64, reason: &str) -> Error {
    Error::Corrupt {
        path: seg.path(),
        offset: off,
        reason: reason.into(),
    }
}

/// The segment's length, which bounds the record at `off`; an error when not even its header
/// fits below it (the index points past the end).
fn record_bound(seg: &Segment, off: u64) -> Result<u64> {
    let end = seg.len();
    if off + RECORD_HEADER_LEN as u64 > end {
        return Err(corrupt(
            seg,
            off,
            "index points past the end of the segment",
        ));
    }
    Ok(end)
}

/// The record header at the start of `b`, decoded and checked; a damaged one is counted.
fn header_of(seg: &Segment, off: u64, b: &[u8]) -> Result<RecordHeader> {
    RecordHeader::decode(b).map_err(|e| {
        seg.note_corrupt_read();
        corrupt(
            seg,
            off,
            match e {
                format::HeaderError::Bad(r) | format::HeaderError::Invalid(r) => r,
                _ => "no record header here",
            },
        )
    })
}

/// Reads the record at `off` and checks both its checksums: into a buffer of its own with
/// `O_DIRECT` when it can (see the module's documentation), else into the page cache.
/// `direct`: try `O_DIRECT` first (see [`ColdReads::wants_direct`]).
fn read_record(
    cold: &ColdReads,
    seg: &Segment,
    off: u64,
    direct: bool,
    buf: &mut Vec<u8>,
) -> ReadResult {
    let end = record_bound(seg, off)?;
    if let Some(file) = direct.then(|| seg.direct_file()).flatten() {
        match read_direct(cold, seg, file, off, end) {
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
                cold.refuse_direct(seg);
            }
            Ok(None) => {}
            done => return done,
        }
    }
    read_buffered(seg, off, end, buf).map(|()| None)
}

/// Reads the record at `off` with `O_DIRECT` through `file` (see [`DirectRead`]). `None` for
/// a record larger than [`STAGE_RECORD_MAX`], which the caller reads through the page cache.
fn read_direct(
    cold: &ColdReads,
    seg: &Segment,
    file: &std::fs::File,
    off: u64,
    end: u64,
) -> ReadResult {
    use std::os::unix::fs::FileExt;
    let mut read = DirectRead::new(off, end, cold.read_guess());
    loop {
        let (at, dst) = read.want(seg)?;
        let n = loop {
            match file.read_at(dst, at) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                r => break r.map_err(|e| Error::io("read segment (O_DIRECT)", seg.path(), e))?,
            }
        };
        match read.arrived(cold, seg, n)? {
            DirectStep::More => {}
            DirectStep::Staged(rec) => return Ok(Some(rec)),
            DirectStep::TooLarge => return Ok(None),
        }
    }
}

/// One record's `O_DIRECT` read into an aligned buffer of whole blocks: the block(s) holding
/// its header and, as a guess, as many bytes as records read lately took; then the rest when
/// the record runs past them; then its checksums. The pool
/// drives it with `pread`, a worker's ring with io_uring reads.
pub(crate) struct DirectRead {
    off: u64,
    /// The segment's length: no record runs past it.
    end: u64,
    /// The first block's file offset, and where the record starts in `buf`.
    base: u64,
    start: usize,
    buf: AlignedBuf,
    /// Bytes of `buf` filled from the file, and bytes to read (whole blocks).
    have: usize,
    need: usize,
    header: Option<RecordHeader>,
}

/// What a [`DirectRead`] needs after some bytes arrived.
pub(crate) enum DirectStep {
    /// Another read: [`DirectRead::want`] says which.
    More,
    /// The record, checked, in its buffer.
    Staged(Arc<StagedRecord>),
    /// Larger than [`STAGE_RECORD_MAX`]: read it through the page cache instead.
    TooLarge,
}

impl DirectRead {
    /// The read of the record at `off` in a segment `end` bytes long; the first read covers
    /// `guess` bytes of it (at least its header; never past the segment's last block).
    pub(crate) fn new(off: u64, end: u64, guess: usize) -> DirectRead {
        let block = BLOCK_BYTES as u64;
        let base = off / block * block;
        let start = (off - base) as usize;
        let blocks = |bytes: usize| bytes.div_ceil(BLOCK_BYTES) * BLOCK_BYTES;
        let header = blocks(start + RECORD_HEADER_LEN);
        let file_rest = usize::try_from(end.saturating_sub(base)).unwrap_or(usize::MAX);
        let need = blocks(start + guess).min(blocks(file_rest)).max(header);
        let mut buf = AlignedBuf::default();
        buf.reserve_bytes(need);
        DirectRead {
            off,
            end,
            base,
            start,
            buf,
            have: 0,
            need,
            header: None,
        }
    }

    /// The next read: its file offset and the part of the buffer it fills (both block
    /// aligned, as `O_DIRECT` requires).
    ///
    /// # Errors
    /// A previous read ended inside a block (the end of the file) short of the record.
    pub(crate) fn want(&mut self, seg: &Segment) -> Result<(u64, &mut [u8])> {
        if self.have % BLOCK_BYTES != 0 {
            return Err(corrupt(
                seg,
                self.off,
                "segment file shorter than its records",
            ));
        }
        let at = self.base + self.have as u64;
        Ok((at, &mut self.buf.as_mut_slice()[self.have..self.need]))
    }

    /// `n` more bytes arrived in the part [`DirectRead::want`] gave (0: the file ended there).
    ///
    /// # Errors
    /// The file ended before the record did, or the record is damaged (counted on `seg`).
    pub(crate) fn arrived(
        &mut self,
        cold: &ColdReads,
        seg: &Segment,
        n: usize,
    ) -> Result<DirectStep> {
        if n == 0 {
            return Err(corrupt(
                seg,
                self.off,
                "segment file shorter than its records",
            ));
        }
        self.have += n;
        let header = match self.header {
            Some(h) => h,
            None => {
                if self.have < self.start + RECORD_HEADER_LEN {
                    return Ok(DirectStep::More);
                }
                let h = header_of(seg, self.off, &self.buf.as_slice()[self.start..self.have])?;
                let len = h.record_len();
                if self.off + len as u64 > self.end {
                    return Err(corrupt(
                        seg,
                        self.off,
                        "record runs past the end of the segment",
                    ));
                }
                if len > STAGE_RECORD_MAX {
                    return Ok(DirectStep::TooLarge);
                }
                cold.note_len(len);
                self.header = Some(h);
                self.need = self
                    .need
                    .max((self.start + len).div_ceil(BLOCK_BYTES) * BLOCK_BYTES);
                self.buf.reserve_bytes(self.need);
                h
            }
        };
        let len = header.record_len();
        if self.have < self.start + len {
            return Ok(DirectStep::More);
        }
        if !format::verify_record(&header, &self.buf.as_slice()[self.start..self.start + len]) {
            seg.note_corrupt_read();
            return Err(corrupt(seg, self.off, "record checksum mismatch"));
        }
        let loc = Loc {
            seg: seg.id,
            off: self.off as u32,
        };
        let buf = std::mem::take(&mut self.buf);
        let counted = cold.staged_bytes.clone();
        cold.stats.direct.fetch_add(1, Ordering::Relaxed);
        Ok(DirectStep::Staged(Arc::new(StagedRecord::new(
            loc, buf, self.start, len, counted,
        ))))
    }
}

/// Reads the record at `off` through the page cache and checks both its checksums: after
/// this its pages are in memory for the map, read by exactly the record's own pages.
fn read_buffered(seg: &Segment, off: u64, end: u64, buf: &mut Vec<u8>) -> Result<()> {
    // The rest of the first page, and at least a header.
    let first = (PAGE_BYTES - off % PAGE_BYTES)
        .max(RECORD_HEADER_LEN as u64)
        .min(end - off) as usize;
    buf.resize(first.max(buf.len()), 0);
    seg.read_at(off, &mut buf[..first])?;
    let header = header_of(seg, off, &buf[..first])?;
    let body_crc = format::get_u32(buf, format::RH_BODY_CRC);
    let len = header.record_len() as u64;
    if off + len > end {
        return Err(corrupt(seg, off, "record runs past the end of the segment"));
    }
    let mut crc = crc32fast::Hasher::new();
    let have = first.min(len as usize);
    crc.update(&buf[RECORD_HEADER_LEN..have]);
    let mut at = off + have as u64;
    while at < off + len {
        let n = ((off + len - at) as usize).min(READ_CHUNK_BYTES);
        buf.resize(n.max(buf.len()), 0);
        seg.read_at(at, &mut buf[..n])?;
        crc.update(&buf[..n]);
        at += n as u64;
    }
    if crc.finalize() != body_crc {
        seg.note_corrupt_read();
        return Err(corrupt(seg, off, "record checksum mismatch"));
    }
    Ok(())
}

/// Looks at a few random records: how many it found, and how many of those were not in
/// memory.
fn sample(cold: &ColdReads, index: &Index, registry: &Registry) -> (u32, u32) {
    let mut x = cold.now_us() | 1;
    let (mut looked, mut absent) = (0, 0);
    for _ in 0..SAMPLE_RECORDS {
        // xorshift: cheap, and good enough to spread samples over shards and slots.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let shard = index.shard((x >> 56) as usize % SHARD_COUNT).read();
        let Some(i) = shard.occupied_from(x as usize) else {
            continue;
        };
        let loc = shard.loc(i);
        drop(shard);
        let segs = registry.load();
        if let Some(seg) = segs.get(loc.seg) {
            looked += 1;
            if !seg.resident(u64::from(loc.off), RECORD_HEADER_LEN as u64) {
                absent += 1;
            }
        }
    }
    (looked, absent)
}

/// The last [`SAMPLE_WINDOW`] samples' counts, and whether they say memory is short.
#[derive(Default)]
struct PressureWindow {
    /// (looked, absent) per sample, oldest overwritten first.
    counts: [(u32, u32); SAMPLE_WINDOW],
    next: usize,
}

impl PressureWindow {
    /// Adds a sample's counts; true when the window's counts say memory is short.
    fn note(&mut self, looked: u32, absent: u32) -> bool {
        self.counts[self.next] = (looked, absent);
        self.next = (self.next + 1) % SAMPLE_WINDOW;
        let (looked, absent) = self
            .counts
            .iter()
            .fold((0, 0), |(l, a), &(sl, sa)| (l + sl, a + sa));
        absent >= ABSENT_MIN && absent * ABSENT_RATIO >= looked
    }
}

/// Cold-read counters, and a latency histogram with four buckets per power of two.
pub(crate) struct ColdStats {
    pub reads: AtomicU64,
    pub errors: AtomicU64,
    pub merged: AtomicU64,
    pub direct: AtomicU64,
    pub in_flight: AtomicU64,
    latency_us: [AtomicU64; LATENCY_BUCKETS],
}

const LATENCY_BUCKETS: usize = 128;

impl Default for ColdStats {
    fn default() -> Self {
        ColdStats {
            reads: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            merged: AtomicU64::new(0),
            direct: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            latency_us: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The histogram bucket of `us`: exact below 4, then four per power of two.
fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let b = 63 - us.leading_zeros() as usize; // >= 2
    let sub = ((us >> (b - 2)) & 3) as usize;
    (4 + (b - 2) * 4 + sub).min(LATENCY_BUCKETS - 1)
}

/// The largest value bucket `i` holds.
fn bucket_top(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let b = (i - 4) / 4 + 2;
    let sub = ((i - 4) % 4) as u64;
    ((4 + sub + 1) << (b - 2)) - 1
}

impl ColdStats {
    fn note(&self, took: Duration) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let us = took.as_micros() as u64;
        self.latency_us[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The latency (microseconds, a bucket's upper bound) below which `q` of the reads fell.
    pub(crate) fn percentile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .latency_us
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return bucket_top(i);
            }
        }
        bucket_top(LATENCY_BUCKETS - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_here_and_there_out_of_memory_is_no_pressure() {
        let mut w = PressureWindow::default();
        // One record in a hundred paged out (a host's proactive reclaim of idle pages): one
        // absent record in some samples, never enough.
        for i in 0..100 {
            assert!(!w.note(64, u32::from(i % 2 == 0)), "sample {i}");
        }
        // Then a burst of four in one sample, 8 of 640 (1 in 80) over the window: still not.
        assert!(!w.note(64, 4));
    }

    #[test]
    fn a_store_beyond_memory_is_pressure_at_the_first_sample() {
        let mut w = PressureWindow::default();
        assert!(w.note(64, 20));
        // And it stays so while the window holds enough absent records.
        for _ in 0..SAMPLE_WINDOW - 1 {
            assert!(w.note(64, 2));
        }
        // Once the window has forgotten the sample of 20: 2 x 10 absent of 640 is 1 in 32.
        assert!(w.note(64, 2));
        // Samples with nothing absent bring it below one in fifty.
        for _ in 0..SAMPLE_WINDOW {
            w.note(64, 0);
        }
        assert!(!w.note(64, 0));
    }

    #[test]
    fn a_small_store_needs_two_absent_records() {
        let mut w = PressureWindow::default();
        assert!(!w.note(3, 1));
        assert!(w.note(3, 1));
    }

    #[test]
    fn buckets_are_ordered_and_hold_their_values() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            last = b;
            assert!(
                bucket_top(b) >= us,
                "{us} in bucket {b} topping at {}",
                bucket_top(b)
            );
            if b > 0 {
                assert!(bucket_top(b - 1) < us, "{us}");
            }
        }
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        let s = ColdStats::default();
        for us in 1..=1000u64 {
            s.note(Duration::from_micros(us));
        }
        let p50 = s.percentile_us(0.5);
        let p99 = s.percentile_us(0.99);
        assert!((500..=640).contains(&p50), "{p50}");
        assert!((990..=1280).contains(&p99), "{p99}");
    }
}

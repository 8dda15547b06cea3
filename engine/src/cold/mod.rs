//! Cold reads: records that are not in memory are read off the caller's thread.
//!
//! Reads go through the memory map, so a record whose pages the kernel evicted is read from
//! disk inside a page fault, and the thread that touched it waits for the disk: on a server,
//! every client of that worker waits. So a caller that must not block (the server's workers)
//! first asks [`check`] which records its next keys would touch and are not resident, then
//! has them read and awaits the [`Fetch`] while its other work goes on. Two readers exist:
//! - a [`ColdRing`] (`ring`): the caller's own io_uring, which it polls for completions on
//!   its event loop; no other thread takes part, so a read costs no thread hand-off;
//! - the pool (`pool`): threads that `pread`, for callers without a ring (an older kernel, or
//!   a caller that has no event loop).
//!
//! Either reads each record by its own pages (no read-around), checks its checksums
//! ([`RecordRead`]), and so leaves it in the page cache for the map; a read that fails or
//! whose checksum does not match is reported for that key, logged with file and offset, and
//! never served.
//!
//! Asking the kernel whether pages are resident costs a system call (`mincore`), which a
//! store that fits in memory should not pay on every read. So residency is checked only while
//! memory is short: one pool thread samples a few random records every
//! [`SAMPLE_INTERVAL`] and, when one is not resident, turns checking on for
//! [`PRESSURE_HOLD`]; every cold read found extends it. Outside those times a read goes
//! straight to the map, as before.
//!
//! Concurrent reads of one record (from any caller, through either reader) are merged into
//! one read; the pool has at most `threads` reads in flight and a ring at most its depth, the
//! rest queue in order (callers wait their turn, they get no error).

mod pool;
mod ring;
mod stats;

pub(crate) use pool::run;
pub use ring::ColdRing;
pub(crate) use stats::ColdStats;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::format::{self, trusted_header, RecordHeader, RECORD_HEADER_LEN};
use crate::index::{Index, KeyHash, SHARD_COUNT};
use crate::registry::Registry;
use crate::segment::Segment;

/// How often a pool thread samples records for residency.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// How long residency checks stay on after the last sign of memory pressure.
pub const PRESSURE_HOLD: Duration = Duration::from_secs(10);
/// Records one sample looks at.
const SAMPLE_RECORDS: usize = 64;
/// The first read of a record: the rest of its first page (at least a header's worth), which
/// holds a small record whole; a larger one takes a second read for the rest.
const PAGE_BYTES: u64 = 4096;
/// A large record is read and checked in pieces of this size.
const READ_CHUNK_BYTES: usize = 1 << 20;

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

/// Resolves once every record of a [`ColdReads::submit`] is in memory (or failed).
pub struct Fetch {
    state: Arc<FetchState>,
}

struct FetchState {
    remaining: AtomicUsize,
    failures: Mutex<Failures>,
    waker: Mutex<Option<Waker>>,
}

impl FetchState {
    fn complete(&self, key: usize, result: &Result<()>) {
        if let Err(e) = result {
            self.failures.lock().push((key, e.duplicate()));
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(w) = self.waker.lock().take() {
                w.wake();
            }
        }
    }
}

impl Future for Fetch {
    type Output = Failures;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Failures> {
        if self.state.remaining.load(Ordering::Acquire) == 0 {
            return Poll::Ready(std::mem::take(&mut *self.state.failures.lock()));
        }
        *self.state.waker.lock() = Some(cx.waker().clone());
        // Completed between the check and the registration: its wake may have missed us.
        if self.state.remaining.load(Ordering::Acquire) == 0 {
            return Poll::Ready(std::mem::take(&mut *self.state.failures.lock()));
        }
        Poll::Pending
    }
}

/// One record to read, for whoever waits for it.
struct Job {
    seg: Arc<Segment>,
    off: u64,
    queued: Instant,
}

/// A fetch waiting for a record, and which of its keys the record is for.
type Waiting = (Arc<FetchState>, usize);

/// What both readers share: who waits for which record, whether memory is short, the counters,
/// the pool's queue, and the test hooks.
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
    /// The rings' event descriptors, to wake them when `held` is released.
    ring_events: Mutex<Vec<std::sync::Weak<std::os::fd::OwnedFd>>>,
    pub(crate) fail_eio: AtomicBool,
    stop: AtomicBool,
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
            ring_events: Mutex::new(Vec::new()),
            fail_eio: AtomicBool::new(false),
            stop: AtomicBool::new(false),
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

    /// Registers a fetch of `records`: returns it, and the reads to start, one per record no
    /// one is reading yet (the others are merged with the read already under way).
    fn register(&self, records: Vec<ColdRecord>) -> (Fetch, Vec<Job>) {
        let state = Arc::new(FetchState {
            remaining: AtomicUsize::new(records.len()),
            failures: Mutex::new(Vec::new()),
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

    /// Has the pool read each record (merged with reads of the same record under way).
    pub(crate) fn submit(&self, records: Vec<ColdRecord>) -> Fetch {
        let (fetch, fresh) = self.register(records);
        if !fresh.is_empty() {
            let n = fresh.len();
            self.queue.lock().extend(fresh);
            // One thread per read: waking all of them for one read costs a context switch each
            // (32 threads, two cores) and most go back to sleep.
            for _ in 0..n {
                self.cond.notify_one();
            }
        }
        fetch
    }

    /// A read is over: counts it, logs a failure with the file and offset, and answers
    /// everyone who waits for the record.
    fn finish(&self, job: &Job, result: &Result<()>) {
        if let Err(e) = result {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                path = %job.seg.path().display(),
                offset = job.off,
                error = %e,
                "cold read failed; the command that needed it gets an error, nothing is served \
                 from this record"
            );
        }
        self.stats.note(job.queued.elapsed());
        let waiting = self
            .pending
            .lock()
            .remove(&(job.seg.id, job.off))
            .unwrap_or_default();
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        for (state, key) in waiting {
            state.complete(key, result);
        }
    }

    /// Tests: the error an injected failure gives, if one is on.
    fn injected_failure(&self, job: &Job) -> Option<Error> {
        self.fail_eio.load(Ordering::Relaxed).then(|| {
            Error::io(
                "read segment",
                job.seg.path(),
                std::io::Error::from_raw_os_error(libc::EIO),
            )
        })
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
            let mut events = self.ring_events.lock();
            events.retain(|e| e.strong_count() > 0);
            for e in events.iter().filter_map(std::sync::Weak::upgrade) {
                ring::nudge(&e);
            }
        }
    }

    fn is_held(&self) -> bool {
        *self.held.lock()
    }

    fn wait_while_held(&self) {
        let mut held = self.held.lock();
        while *held {
            self.held_cond.wait(&mut held);
        }
    }
}

/// Reading one record and checking both its checksums, piece by piece: the pool reads each
/// piece with `pread`, a ring with io_uring; both hand what they read to [`RecordRead::feed`].
/// The first piece is the rest of the record's first page (at least a header), which holds a
/// small record whole; a larger one is read on in pieces of at most [`READ_CHUNK_BYTES`].
struct RecordRead {
    off: u64,
    /// The segment's length when the read began: the record must end before it.
    end: u64,
    /// The record's length, once its header was read.
    len: Option<u64>,
    /// The next byte to read.
    at: u64,
    body_crc: u32,
    crc: crc32fast::Hasher,
}

impl RecordRead {
    fn new(seg: &Segment, off: u64) -> Result<RecordRead> {
        let end = seg.len();
        if off + RECORD_HEADER_LEN as u64 > end {
            return Err(corrupt(
                seg,
                off,
                "index points past the end of the segment",
            ));
        }
        Ok(RecordRead {
            off,
            end,
            len: None,
            at: off,
            body_crc: 0,
            crc: crc32fast::Hasher::new(),
        })
    }

    /// The next piece to read (offset, length), or `None` once the record is read whole.
    fn next(&self) -> Option<(u64, usize)> {
        match self.len {
            None => {
                let first = (PAGE_BYTES - self.off % PAGE_BYTES)
                    .max(RECORD_HEADER_LEN as u64)
                    .min(self.end - self.off);
                Some((self.off, first as usize))
            }
            Some(len) if self.at < self.off + len => {
                let n = ((self.off + len - self.at) as usize).min(READ_CHUNK_BYTES);
                Some((self.at, n))
            }
            Some(_) => None,
        }
    }

    /// Takes the piece [`RecordRead::next`] named, read whole.
    fn feed(&mut self, seg: &Segment, piece: &[u8]) -> Result<()> {
        if self.len.is_some() {
            self.crc.update(piece);
            self.at += piece.len() as u64;
            return Ok(());
        }
        let header = RecordHeader::decode(piece).map_err(|e| {
            seg.note_corrupt_read();
            corrupt(
                seg,
                self.off,
                match e {
                    format::HeaderError::Bad(r) | format::HeaderError::Invalid(r) => r,
                    _ => "no record header here",
                },
            )
        })?;
        self.body_crc = format::get_u32(piece, format::RH_BODY_CRC);
        let len = header.record_len() as u64;
        if self.off + len > self.end {
            return Err(corrupt(
                seg,
                self.off,
                "record runs past the end of the segment",
            ));
        }
        let have = piece.len().min(len as usize);
        self.crc.update(&piece[RECORD_HEADER_LEN..have]);
        self.len = Some(len);
        self.at = self.off + have as u64;
        Ok(())
    }

    /// After the last piece: whether the record's checksum matches.
    fn finish(self, seg: &Segment) -> Result<()> {
        if self.crc.finalize() != self.body_crc {
            seg.note_corrupt_read();
            return Err(corrupt(seg, self.off, "record checksum mismatch"));
        }
        Ok(())
    }
}

fn corrupt(seg: &Segment, offset: u64, reason: &str) -> Error {
    Error::Corrupt {
        path: seg.path(),
        offset,
        reason: reason.into(),
    }
}

/// Looks at a few random records; any not in memory turns residency checks on.
fn sample(cold: &ColdReads, index: &Index, registry: &Registry) {
    let mut x = cold.now_us() | 1;
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
            if !seg.resident(u64::from(loc.off), RECORD_HEADER_LEN as u64) {
                cold.note_pressure();
                return;
            }
        }
    }
}

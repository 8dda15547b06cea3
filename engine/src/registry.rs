//! The segment registry: which segments the store holds, by id, and the ids of new ones.
//!
//! Readers load the current [`SegmentMap`] without a lock (it is replaced whole, copy on write,
//! when a segment is added or retired) and hold it while they read: a retired segment's file
//! is removed only once the last map holding it is dropped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::{self, trusted_header, RecordHeader, RECORD_HEADER_LEN};
use crate::index::Loc;
use crate::segment::Segment;

/// The segments the engine knows, by id.
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

    /// The id of the newest log segment (0 when there is none).
    pub(crate) fn newest_log_id(&self) -> u32 {
        self.iter()
            .filter(|s| s.kind == format::SegmentKind::Log)
            .map(|s| s.id)
            .max()
            .unwrap_or(0)
    }

    /// The header of the record at `loc`, checked by its own checksum only (the value is not
    /// read): for walks that need a record's namespace or length, not its value.
    pub(crate) fn header(&self, loc: Loc) -> Option<RecordHeader> {
        let seg = self.get(loc.seg)?;
        // A record a cold read put in a buffer for this thread (checked by that read).
        if let Some(rec) = crate::staged::find(loc) {
            return Some(trusted_header(rec));
        }
        let off = u64::from(loc.off);
        if seg.is_verified() {
            return Some(trusted_header(seg.bytes(off, RECORD_HEADER_LEN)));
        }
        RecordHeader::decode(seg.bytes_from(off.min(seg.len()))).ok()
    }

    /// The record at `loc`: header and the whole record's bytes. Records of segments whose
    /// checksums have not been checked since open (loaded from a hint) are verified here; a
    /// damaged one reads as absent, is counted and logged, and is never served.
    ///
    /// # Panics
    /// When the index points at a segment the registry does not hold: an engine bug.
    pub(crate) fn record(&self, loc: Loc) -> Option<(RecordHeader, &[u8])> {
        let seg = self
            .get(loc.seg)
            .unwrap_or_else(|| panic!("index points at unknown segment {}", loc.seg));
        // A record a cold read put in a buffer for this thread (checked by that read).
        if let Some(rec) = crate::staged::find(loc) {
            return Some((trusted_header(rec), rec));
        }
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

    /// True when the record at `loc` holds `key` of namespace `ns`.
    pub(crate) fn key_matches(&self, loc: Loc, ns: u32, key: &[u8]) -> bool {
        self.record(loc)
            .is_some_and(|(h, rec)| h.ns == ns && format::record_key(&h, rec) == key)
    }

    /// Counts `bytes` of the record at `loc` as dead (superseded, deleted or expired).
    pub(crate) fn add_dead(&self, loc: Loc, bytes: usize) {
        if let Some(s) = self.get(loc.seg) {
            s.add_dead(bytes as u64);
        }
    }
}

/// The current [`SegmentMap`] and the ids of segments to come.
pub(crate) struct Registry {
    segments: ArcSwap<SegmentMap>,
    /// Serialises the copy-on-write replacements of `segments`.
    lock: Mutex<()>,
    next_id: AtomicU32,
    /// Compaction inputs waiting for the log to be durable up to a sequence number before
    /// they are retired (see [`Registry::retire_when_durable`]).
    retiring: Mutex<Vec<(u64, Vec<u32>)>>,
}

impl Registry {
    pub(crate) fn new(map: SegmentMap, next_id: u32) -> Registry {
        Registry {
            segments: ArcSwap::from_pointee(map),
            lock: Mutex::new(()),
            next_id: AtomicU32::new(next_id),
            retiring: Mutex::new(Vec::new()),
        }
    }

    /// The current map, without a lock. Load it after taking an index shard lock: every
    /// segment the shard points at was registered before the write that made it point there
    /// released the lock.
    pub(crate) fn load(&self) -> Guard<Arc<SegmentMap>> {
        self.segments.load()
    }

    /// The current map, held for as long as the caller likes (a checkpoint's snapshot).
    pub(crate) fn load_full(&self) -> Arc<SegmentMap> {
        self.segments.load_full()
    }

    pub(crate) fn register(&self, seg: Arc<Segment>) {
        let _g = self.lock.lock();
        let next = self.segments.load().with(seg);
        self.segments.store(Arc::new(next));
    }

    /// Removes segments from the registry and marks them obsolete: each file is deleted once
    /// the last reader drops it.
    pub(crate) fn retire(&self, ids: &[u32]) {
        let _g = self.lock.lock();
        let current = self.segments.load();
        for id in ids {
            if let Some(s) = current.get(*id) {
                s.mark_obsolete();
            }
        }
        let next = current.without(ids);
        self.segments.store(Arc::new(next));
    }

    /// Retires `ids` once the log is durable up to `seq` ([`Registry::retire_durable`]),
    /// rather than making it durable now. A compaction run's inputs hold older versions of
    /// keys whose newest version may be only in the page cache, so they may not go before
    /// the log is on disk; under `--fsync everysec` the next once-a-second sync gets it there,
    /// where forcing a sync at the end of each run made 40 syncs a second under pipelined
    /// SETs, each writing back and faulting in again the pages ahead of the log's writer.
    /// Until then the inputs stay registered (readers of the index no longer reach them) and
    /// no run takes them again.
    pub(crate) fn retire_when_durable(&self, seq: u64, ids: Vec<u32>) {
        let current = self.segments.load();
        for id in &ids {
            if let Some(s) = current.get(*id) {
                s.mark_retiring();
            }
        }
        self.retiring.lock().push((seq, ids));
    }

    /// Retires the segments that waited for the log to be durable up to `durable` or less.
    pub(crate) fn retire_durable(&self, durable: u64) {
        let due: Vec<u32> = {
            let mut r = self.retiring.lock();
            let mut due = Vec::new();
            r.retain_mut(|(seq, ids)| {
                let now = *seq <= durable;
                if now {
                    due.append(ids);
                }
                !now
            });
            due
        };
        if !due.is_empty() {
            self.retire(&due);
        }
    }

    /// The highest sequence number a segment waiting to be retired waits for, if any.
    pub(crate) fn retiring_up_to(&self) -> Option<u64> {
        self.retiring.lock().iter().map(|(seq, _)| *seq).max()
    }

    /// The next segment id. Ids found at open are at most `SEGMENT_ID_MAX`, so the counter
    /// cannot wrap in any realistic life of a store; if it ever passes the bound, writes fail
    /// with a clear error instead of reusing ids.
    pub(crate) fn allocate_id(&self) -> Result<u32> {
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        if id == 0 || id > format::SEGMENT_ID_MAX {
            return Err(Error::InvalidOptions(format!(
                "segment ids exhausted (next would be {id}); compact into a new directory"
            )));
        }
        Ok(id)
    }
}

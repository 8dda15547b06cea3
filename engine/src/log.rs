//! The write-ahead log: the active segment, sequence numbers, and rolling to a new segment.
//!
//! One mutex guards the active segment's write position. Appending encodes the record in place
//! in the preallocated map: the lock is held for a `memcpy` and two CRCs, never for a system
//! call, except when the segment is full and a new one is created. Sealed segments are handed
//! to the sync thread, which syncs them in the background.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::format::{self, RecordHeader, SegmentKind};
use crate::index::Loc;
use crate::segment::{sync_dir, Segment};

pub(crate) struct Log {
    state: Mutex<LogState>,
    /// Sequence number of the newest appended record (readable without the lock).
    last_seq: AtomicU64,
    /// Fault the active segment's pages in ahead of the writer. Off under `Fsync::Always`,
    /// where every sync would write the faulted-in pages back as zeros and write-protect them
    /// again, and where appends are few enough that their own page faults do not matter.
    populate_ahead: bool,
}

pub(crate) struct LogState {
    pub(crate) active: Arc<Segment>,
    pub(crate) next_seq: u64,
    /// Sealed segments the sync thread has not synced yet.
    pub(crate) unsynced_sealed: Vec<Arc<Segment>>,
    pub(crate) bytes_written: u64,
}

/// A record to append.
pub(crate) struct Append<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub expire_at_ms: u64,
    pub flags: u8,
    /// `format::body_crc(key, value)`, computed before the log lock is taken.
    pub body_crc: u32,
}

/// What the caller must do to create a segment when rolling: the engine owns ids and the
/// registry of segments.
pub(crate) trait SegmentFactory {
    /// Creates, registers and returns a new log segment of at least `capacity` bytes.
    fn new_log_segment(&self, capacity: u64) -> Result<Arc<Segment>>;

    /// Asks for the next pages of the active segment to be faulted in ahead of the writer.
    fn request_populate(&self, seg: &Arc<Segment>);

    /// The log's files grew (a chunk or a new segment): disk use moved.
    fn log_grew(&self);
}

impl Log {
    pub(crate) fn new(active: Arc<Segment>, next_seq: u64, populate_ahead: bool) -> Log {
        Log {
            state: Mutex::new(LogState {
                active,
                next_seq,
                unsynced_sealed: Vec::new(),
                bytes_written: 0,
            }),
            last_seq: AtomicU64::new(next_seq - 1),
            populate_ahead,
        }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, LogState> {
        self.state.lock()
    }

    /// The segments to sync and the sequence number they will make durable.
    pub(crate) fn unsynced(&self) -> (Vec<Arc<Segment>>, u64) {
        let mut st = self.state.lock();
        let mut segs = std::mem::take(&mut st.unsynced_sealed);
        segs.push(st.active.clone());
        (segs, st.next_seq - 1)
    }

    pub(crate) fn bytes_written(&self) -> u64 {
        self.state.lock().bytes_written
    }

    pub(crate) fn active_id(&self) -> u32 {
        self.state.lock().active.id
    }

    /// Appends one record; returns its sequence number and location.
    pub(crate) fn append(
        &self,
        rec: &Append<'_>,
        segment_size_bytes: u64,
        factory: &dyn SegmentFactory,
    ) -> Result<(u64, Loc)> {
        let mut st = self.state.lock();
        self.append_locked(&mut st, rec, segment_size_bytes, factory)
    }

    /// Appends records as one atomic batch: all in the same segment, one after another, each
    /// but the last flagged [`format::FLAG_BATCH_NEXT`], so recovery applies all or none.
    /// Returns each record's sequence number and location, in order.
    pub(crate) fn append_batch(
        &self,
        recs: &[Append<'_>],
        segment_size_bytes: u64,
        factory: &dyn SegmentFactory,
    ) -> Result<Vec<(u64, Loc)>> {
        let total: u64 = recs
            .iter()
            .map(|r| (format::RECORD_HEADER_LEN + r.key.len() + r.value.len()) as u64)
            .sum();
        let mut st = self.state.lock();
        // Checked for the whole batch before any record is appended: a batch cut short by
        // the limit would be an open batch, which recovery drops as torn.
        check_seqs(&st, recs.len() as u64)?;
        if st.active.len() + total > st.active.capacity() {
            self.roll_locked(&mut st, total, segment_size_bytes, factory)?;
        }
        let last = recs.len().saturating_sub(1);
        recs.iter()
            .enumerate()
            .map(|(i, rec)| {
                let flags = if i < last {
                    rec.flags | format::FLAG_BATCH_NEXT
                } else {
                    rec.flags
                };
                // The batch fits the active segment now, so no record rolls it.
                self.append_locked(
                    &mut st,
                    &Append { flags, ..*rec },
                    segment_size_bytes,
                    factory,
                )
            })
            .collect()
    }

    pub(crate) fn append_locked(
        &self,
        st: &mut LogState,
        rec: &Append<'_>,
        segment_size_bytes: u64,
        factory: &dyn SegmentFactory,
    ) -> Result<(u64, Loc)> {
        check_seqs(st, 1)?;
        let len = format::RECORD_HEADER_LEN + rec.key.len() + rec.value.len();
        if st.active.len() + len as u64 > st.active.capacity() {
            self.roll_locked(st, len as u64, segment_size_bytes, factory)?;
        }
        let seq = st.next_seq;
        let header = RecordHeader {
            seq,
            expire_at_ms: rec.expire_at_ms,
            key_len: rec.key.len() as u32,
            value_len: rec.value.len() as u32,
            flags: rec.flags,
        };
        let seg = &st.active;
        let off = seg.len();
        // Usually a no-op: the prealloc thread grows the file ahead of the writer.
        if seg.reserve(off + len as u64)? {
            factory.log_grew();
        }
        // SAFETY: we hold the log lock, the only writer of the active segment, and
        // [off, off + len) is past every published record.
        let dst = unsafe { seg.slice_mut(off, len) };
        header.encode_record_with(rec.body_crc, rec.key, rec.value, dst);
        seg.set_len(off + len as u64);
        seg.note_seq_exclusive(seq);
        if self.populate_ahead && seg.wants_populate(off + len as u64) {
            factory.request_populate(seg);
        }
        st.next_seq += 1;
        st.bytes_written += len as u64;
        self.last_seq.store(seq, Ordering::Release);
        Ok((
            seq,
            Loc {
                seg: seg.id,
                off: u32::try_from(off).expect("segment offsets fit u32"),
            },
        ))
    }

    /// Starts a new active segment with room for at least `need` bytes of records.
    pub(crate) fn roll_locked(
        &self,
        st: &mut LogState,
        need: u64,
        segment_size_bytes: u64,
        factory: &dyn SegmentFactory,
    ) -> Result<()> {
        let capacity = segment_size_bytes.max(format::SEGMENT_HEADER_LEN as u64 + need);
        // Create the new segment first: if the disk is full, the old one stays active and
        // nothing is lost.
        let next = factory.new_log_segment(capacity)?;
        let old = std::mem::replace(&mut st.active, next);
        old.seal()?;
        st.unsynced_sealed.push(old);
        factory.log_grew();
        Ok(())
    }
}

/// Fails unless `count` more records can take sequence numbers no higher than
/// [`format::SEQ_MAX`]: recovery treats a higher one as damage, so writing it would lose it.
fn check_seqs(st: &LogState, count: u64) -> Result<()> {
    if st.next_seq.saturating_add(count.saturating_sub(1)) > format::SEQ_MAX {
        return Err(Error::SeqExhausted {
            last_seq: st.next_seq - 1,
        });
    }
    Ok(())
}

/// Creates a log segment file `dir/<id>.seg` and makes its name durable.
pub(crate) fn create_log_segment(dir: &Path, id: u32, capacity: u64) -> Result<Segment> {
    let seg = Segment::create(
        dir.join(format::segment_file_name(id)),
        id,
        SegmentKind::Log,
        capacity,
    )?;
    sync_dir(dir)?;
    Ok(seg)
}

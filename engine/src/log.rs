//! The write-ahead log: the active segment, sequence numbers, and rolling to a new segment.
//!
//! One mutex guards the active segment's write position. Appending encodes the record in place
//! in the preallocated map: the lock is held for a `memcpy` and two CRCs, never for a system
//! call, except when the segment is full and a new one is created. Sealed segments are handed
//! to the sync thread, which syncs them in the background.
//!
//! The prealloc thread (`background::prealloc`) works for the log through [`Prepared`]: it keeps
//! the next segment created ahead of need, so rolling is a rename, and faults the active
//! segment's pages in ahead of its writer. An append says when the log's files grew
//! ([`Appended::grew`]); its caller reacts (the write stall, compaction), not the log.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::cold::ColdReads;
use crate::error::{Error, Result};
use crate::format::{self, RecordHeader, SegmentKind};
use crate::hint::HintBuilder;
use crate::index::Loc;
use crate::registry::Registry;
use crate::segment::{sync_dir, Segment};
use crate::syncer::Syncer;

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
    /// The active segment's hint entries, collected as records are appended when memory was
    /// short as it began; the maintenance thread then writes its hint file from these instead
    /// of reading the sealed segment back from disk.
    hint: Option<HintBuilder>,
    /// Hint entries of sealed segments, waiting for the maintenance thread.
    built_hints: Vec<(u32, HintBuilder)>,
    /// The transaction open now, if one is (see [`Log::txn_begin`]).
    txn: Option<TxnState>,
    /// A segment was renamed into place since the sync thread last synced the directory: its
    /// name must be made durable before any of its records is reported durable.
    dir_unsynced: bool,
}

/// An open transaction: what its commit needs.
#[derive(Default)]
struct TxnState {
    /// Sequence number of its first record, once it has one.
    first_seq: Option<u64>,
    /// Segments whose retirement waits for its commit to be durable: they may hold records
    /// that only the transaction's uncommitted records make dead (FLUSHALL's, compaction's
    /// inputs).
    retire: Vec<u32>,
}

thread_local! {
    /// This thread opened the transaction open now: its appends join it, and only its own
    /// (another thread's writes meanwhile are not part of it).
    static TXN_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A record to append.
pub(crate) struct Append<'a> {
    /// The key's namespace (database).
    pub ns: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub expire_at_ms: u64,
    pub flags: u8,
    /// `format::body_crc(key, value)`, computed before the log lock is taken.
    pub body_crc: u32,
}

/// A record appended: where it went, and whether the log's files grew for it (a new chunk or
/// a new segment), so disk use moved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Appended {
    pub seq: u64,
    pub loc: Loc,
    pub grew: bool,
}

/// What the prealloc thread hands the log and is asked for by it.
#[derive(Default)]
pub(crate) struct PreparedState {
    /// The next log segment, created and preallocated, named `<id>.seg.tmp`.
    pub spare: Option<Arc<Segment>>,
    /// The active segment, when its writer nears the end of its faulted-in pages.
    pub populate: Option<Arc<Segment>>,
}

/// The prealloc thread's mailbox.
#[derive(Default)]
pub(crate) struct Prepared {
    pub state: Mutex<PreparedState>,
    pub cond: Condvar,
}

impl Prepared {
    fn request_populate(&self, seg: &Arc<Segment>) {
        self.state.lock().populate = Some(seg.clone());
        self.cond.notify_all();
    }

    fn take_spare(&self) -> Option<Arc<Segment>> {
        let spare = self.state.lock().spare.take();
        self.cond.notify_all();
        spare
    }

    /// Disk taken by the prepared spare segment, if there is one.
    pub(crate) fn spare_allocated(&self) -> u64 {
        self.state
            .lock()
            .spare
            .as_ref()
            .map_or(0, |s| s.allocated())
    }
}

/// What rolling to a new segment needs from the rest of the engine.
pub(crate) struct LogEnv<'a> {
    pub dir: &'a Path,
    pub registry: &'a Registry,
    pub syncer: &'a Syncer,
    pub prepared: &'a Prepared,
    pub segment_size_bytes: u64,
    /// Whether memory is short (new segments then collect their hint entries).
    pub cold: &'a ColdReads,
    /// Hint files are written.
    pub hints: bool,
    /// The fsync policy is `EverySec`: a roll leaves the sealed segment to the next
    /// once-a-second sync.
    pub every_sec: bool,
}

impl Log {
    pub(crate) fn new(active: Arc<Segment>, next_seq: u64, populate_ahead: bool) -> Log {
        Log {
            state: Mutex::new(LogState {
                active,
                next_seq,
                unsynced_sealed: Vec::new(),
                bytes_written: 0,
                hint: None,
                built_hints: Vec::new(),
                txn: None,
                dir_unsynced: false,
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
    /// What the sync thread must make durable for every record up to the returned sequence
    /// number: these segments' data, and the data directory first when the last flag is set
    /// (a segment was renamed into place since; taken).
    pub(crate) fn unsynced(&self) -> (Vec<Arc<Segment>>, u64, bool) {
        let mut st = self.state.lock();
        let mut segs = std::mem::take(&mut st.unsynced_sealed);
        segs.push(st.active.clone());
        let dir = std::mem::take(&mut st.dir_unsynced);
        (segs, st.next_seq - 1, dir)
    }

    pub(crate) fn bytes_written(&self) -> u64 {
        self.state.lock().bytes_written
    }

    pub(crate) fn in_txn(&self) -> bool {
        self.state.lock().txn.is_some()
    }

    pub(crate) fn active_id(&self) -> u32 {
        self.state.lock().active.id
    }

    /// Opens a transaction on the calling thread: its appends from now until
    /// [`Log::txn_commit`] are flagged [`format::FLAG_TXN`], and recovery applies them only
    /// with the commit record. One at a time: the caller serialises transactions.
    pub(crate) fn txn_begin(&self) {
        let mut st = self.state.lock();
        assert!(st.txn.is_none(), "one transaction at a time");
        st.txn = Some(TxnState::default());
        TXN_HERE.with(|t| t.set(true));
    }

    /// Closes the calling thread's transaction: appends its commit record when it wrote
    /// anything. Closed even when the append fails (the caller poisons the engine then: the
    /// index holds writes recovery would drop).
    pub(crate) fn txn_commit(&self, env: &LogEnv<'_>) -> (Result<Option<Appended>>, Vec<u32>) {
        let mut st = self.state.lock();
        TXN_HERE.with(|t| t.set(false));
        let Some(txn) = st.txn.take() else {
            return (Ok(None), Vec::new());
        };
        let Some(first_seq) = txn.first_seq else {
            return (Ok(None), txn.retire);
        };
        let commit = Append {
            ns: 0,
            key: &[],
            value: &[],
            expire_at_ms: first_seq,
            flags: format::FLAG_TXN_COMMIT,
            body_crc: format::body_crc(&[], &[]),
        };
        (
            self.append_locked(&mut st, &commit, env).map(Some),
            txn.retire,
        )
    }

    /// True when the calling thread has a transaction open.
    pub(crate) fn txn_here(&self) -> bool {
        TXN_HERE.with(|t| t.get())
    }

    /// When a transaction is open: the sequence number of its first record (`Some(None)`
    /// before it wrote one). Compaction copies no record of a transaction still open.
    pub(crate) fn open_txn_first_seq(&self) -> Option<Option<u64>> {
        self.state.lock().txn.as_ref().map(|t| t.first_seq)
    }

    /// Retires `ids` once durable: at once (`false`: the caller retires them after making
    /// the log durable up to now) when no transaction is open, else when the open one
    /// commits (`true`), so that no record only its uncommitted writes made dead is lost
    /// with them.
    pub(crate) fn retire_after_txn(&self, ids: &[u32]) -> (bool, u64) {
        let mut st = self.state.lock();
        let last_seq = st.next_seq - 1;
        match &mut st.txn {
            Some(t) => {
                t.retire.extend_from_slice(ids);
                (true, last_seq)
            }
            None => (false, last_seq),
        }
    }

    /// Appends one record.
    pub(crate) fn append(&self, rec: &Append<'_>, env: &LogEnv<'_>) -> Result<Appended> {
        let mut st = self.state.lock();
        self.append_locked(&mut st, rec, env)
    }

    /// Appends records as one atomic batch: all in the same segment, one after another, each
    /// but the last flagged [`format::FLAG_BATCH_NEXT`], so recovery applies all or none.
    /// Returns each record's sequence number and location, in order, and whether the log grew.
    pub(crate) fn append_batch(
        &self,
        recs: &[Append<'_>],
        env: &LogEnv<'_>,
    ) -> Result<(Vec<(u64, Loc)>, bool)> {
        let total: u64 = recs
            .iter()
            .map(|r| (format::RECORD_HEADER_LEN + r.key.len() + r.value.len()) as u64)
            .sum();
        let mut st = self.state.lock();
        // Checked for the whole batch before any record is appended: a batch cut short by
        // the limit would be an open batch, which recovery drops as torn.
        check_seqs(&st, recs.len() as u64)?;
        let mut grew = false;
        if st.active.len() + total > st.active.capacity() {
            self.roll_locked(&mut st, total, env)?;
            grew = true;
        }
        let last = recs.len().saturating_sub(1);
        let mut written = Vec::with_capacity(recs.len());
        for (i, rec) in recs.iter().enumerate() {
            let flags = if i < last {
                rec.flags | format::FLAG_BATCH_NEXT
            } else {
                rec.flags
            };
            // The batch fits the active segment now, so no record rolls it.
            let a = self.append_locked(&mut st, &Append { flags, ..*rec }, env)?;
            grew |= a.grew;
            written.push((a.seq, a.loc));
        }
        Ok((written, grew))
    }

    pub(crate) fn append_locked(
        &self,
        st: &mut LogState,
        rec: &Append<'_>,
        env: &LogEnv<'_>,
    ) -> Result<Appended> {
        check_seqs(st, 1)?;
        let len = format::RECORD_HEADER_LEN + rec.key.len() + rec.value.len();
        let mut grew = false;
        if st.active.len() + len as u64 > st.active.capacity() {
            self.roll_locked(st, len as u64, env)?;
            grew = true;
        }
        let seq = st.next_seq;
        let mut flags = rec.flags;
        // One branch on the log's own state while no transaction is open.
        if let Some(txn) = &mut st.txn {
            if TXN_HERE.with(|t| t.get()) {
                flags |= format::FLAG_TXN;
                txn.first_seq.get_or_insert(seq);
            }
        }
        let header = RecordHeader {
            seq,
            expire_at_ms: rec.expire_at_ms,
            key_len: rec.key.len() as u32,
            value_len: rec.value.len() as u32,
            flags,
            ns: rec.ns,
        };
        let seg = &st.active;
        seg.note_flags(flags);
        let off = seg.len();
        // Usually a no-op: the prealloc thread grows the file ahead of the writer.
        grew |= seg.reserve(off + len as u64)?;
        // SAFETY: we hold the log lock, the only writer of the active segment, and
        // [off, off + len) is past every published record.
        let dst = unsafe { seg.slice_mut(off, len) };
        header.encode_record_with(rec.body_crc, rec.key, rec.value, dst);
        seg.set_len(off + len as u64);
        seg.note_seq_exclusive(seq);
        if let Some(hint) = &mut st.hint {
            hint.push(off, &header, rec.key);
        }
        if self.populate_ahead && seg.wants_populate(off + len as u64) {
            env.prepared.request_populate(seg);
        }
        st.next_seq += 1;
        st.bytes_written += len as u64;
        self.last_seq.store(seq, Ordering::Release);
        Ok(Appended {
            seq,
            loc: Loc {
                seg: seg.id,
                off: u32::try_from(off).expect("segment offsets fit u32"),
            },
            grew,
        })
    }

    /// Starts a new active segment with room for at least `need` bytes of records. The log's
    /// files grow: the caller reacts as to [`Appended::grew`].
    pub(crate) fn roll_locked(&self, st: &mut LogState, need: u64, env: &LogEnv<'_>) -> Result<()> {
        let capacity = env
            .segment_size_bytes
            .max(format::SEGMENT_HEADER_LEN as u64 + need);
        // Create the new segment first: if the disk is full, the old one stays active and
        // nothing is lost.
        let (next, dir_unsynced) = new_log_segment(env, st.next_seq - 1, capacity)?;
        st.dir_unsynced |= dir_unsynced;
        let old = std::mem::replace(&mut st.active, next);
        old.seal()?;
        if let Some(hint) = st.hint.take() {
            st.built_hints.push((old.id, hint));
        }
        st.hint = (env.hints && env.cold.checking()).then(HintBuilder::default);
        st.unsynced_sealed.push(old);
        Ok(())
    }

    /// The hint entries collected for sealed segment `id`, if it had them (taken). The
    /// active segment's count too once it is sealed (at close).
    pub(crate) fn take_built_hint(&self, id: u32) -> Option<HintBuilder> {
        let mut st = self.state.lock();
        if st.active.id == id && st.active.is_sealed() {
            return st.hint.take();
        }
        let i = st.built_hints.iter().position(|(s, _)| *s == id)?;
        Some(st.built_hints.swap_remove(i).1)
    }

    /// True when the hint entries of segment `id` were collected as it was written.
    pub(crate) fn has_built_hint(&self, id: u32) -> bool {
        let st = self.state.lock();
        (st.active.id == id && st.hint.is_some()) || st.built_hints.iter().any(|(s, _)| *s == id)
    }

    /// Drops collected hint entries of segments that are gone (retired by FLUSHALL).
    pub(crate) fn forget_built_hints(&self, keep: impl Fn(u32) -> bool) {
        self.state.lock().built_hints.retain(|(id, _)| keep(*id));
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

/// Creates, registers and returns a new log segment of at least `capacity` bytes: the prepared
/// spare when it fits, else a new file. `last_seq` is the newest record written so far.
/// The next active segment, and whether its name is not durable yet (the sync thread syncs the
/// directory before it reports any of its records durable).
///
/// The prepared spare is renamed into place without syncing the directory here: the caller
/// holds the log lock, and the directory's fsync (an ext4 journal commit) took 2.35 ms on
/// average and up to 107 ms per roll under a load of SETs, stalling every writer (measured in
/// `docs/perf/HISTORY.md`). Should the rename be lost in a crash, the file is left as
/// `<id>.seg.tmp`, removed at the next open with records nobody was told were durable.
fn new_log_segment(env: &LogEnv<'_>, last_seq: u64, capacity: u64) -> Result<(Arc<Segment>, bool)> {
    // The segment being sealed goes to the sync thread, synced and released soon, so retired
    // files do not linger (Never would otherwise wait forever). Under EverySec the next
    // periodic sync, within a second, does it: a sync asked for here, several a second under
    // pipelined writes, also dropped and faulted in again the pages ahead of the writer and
    // wrote them out as zeros (see `Segment::sync_periodic`).
    if !env.every_sec {
        env.syncer.request(last_seq);
    }
    if capacity <= env.segment_size_bytes {
        let spare = env.prepared.take_spare();
        // Log segments must be numbered in the order they are used (recovery and FLUSHALL
        // rely on it): a spare numbered before a segment created meanwhile is discarded.
        let newest = env.registry.load().newest_log_id();
        let spare = spare.filter(|s| {
            let usable = s.id > newest;
            if !usable {
                s.mark_obsolete();
            }
            usable
        });
        if let Some(seg) = spare {
            let path = env.dir.join(format::segment_file_name(seg.id));
            match seg.rename(path) {
                Ok(()) => {
                    env.registry.register(seg.clone());
                    return Ok((seg, true));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "prepared segment unusable; creating one");
                    seg.mark_obsolete();
                }
            }
        }
    }
    let id = env.registry.allocate_id()?;
    let seg = Arc::new(create_log_segment(env.dir, id, capacity)?);
    env.registry.register(seg.clone());
    Ok((seg, false))
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

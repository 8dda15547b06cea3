//! Recovery: rebuild the index from the segment files at open.
//!
//! Segments are read in id order; a record replaces a key's entry only when its sequence
//! number is higher, so the order of files does not matter for correctness (compaction writes
//! old records into new files). Tombstones and expired records enter the index marked, so that
//! an older record of the same key met later cannot come back, and are swept at the end. A
//! flush record (FLUSHALL) empties the index; every older segment is retired.
//!
//! Damage is classified without trusting unverified lengths: when a record fails its checks,
//! the rest of the file is searched byte by byte for a record whose header and body both verify.
//! - nothing valid follows and the file is the newest log segment: a torn tail from a crash,
//!   cut off and reported;
//! - zero bytes to the end: preallocated space never written, not damage;
//! - anything else: corruption. `open` fails naming the file and offset, or with
//!   `Options::repair` the damaged bytes are copied to `quarantine/`, the loss is reported,
//!   and the segment is written again without them (`Loaded::rewrite_without_damage`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::clock::{is_expired, now_ms};
use crate::error::{Error, Result};
use crate::format::{self, RecordHeader, SegmentHeader, SegmentKind, SEGMENT_HEADER_LEN};
use crate::hint::{hint_path, Hint, HintBuilder};
use crate::index::{Index, KeyHash, Loc};
use crate::options::Options;
use crate::scan::{scan_records, ScanEnd};
use crate::segment::{Access, Segment};
use crate::stats::RecoveryStats;

pub(crate) struct Recovered {
    pub index: Index,
    pub segments: Vec<Arc<Segment>>,
    pub next_seq: u64,
    pub next_segment_id: u32,
    pub stats: RecoveryStats,
    /// Some live record carries an expiry.
    pub has_expiring: bool,
}

struct Found {
    id: u32,
    path: PathBuf,
}

fn list_segments(dir: &Path) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            // A compaction or hint output that never completed.
            let p = entry.path();
            tracing::info!(path = %p.display(), "removing unfinished temporary file");
            std::fs::remove_file(&p).map_err(|e| Error::io("remove temporary file", &p, e))?;
            continue;
        }
        if let Some(id) = format::parse_segment_file_name(name) {
            found.push(Found {
                id,
                path: entry.path(),
            });
        } else if name.ends_with(".seg") {
            // Looks like ours but names no valid id: refuse rather than silently skip data.
            return Err(Error::Corrupt {
                path: entry.path(),
                offset: 0,
                reason: format!(
                    "segment file name is not a valid id (1..={})",
                    format::SEGMENT_ID_MAX
                ),
            });
        }
    }
    found.sort_by_key(|f| f.id);
    Ok(found)
}

pub(crate) fn recover(dir: &Path, options: &Options) -> Result<Recovered> {
    let started = Instant::now();
    let found = list_segments(dir)?;
    let next_segment_id = found.last().map_or(1, |f| f.id + 1);
    let newest_log = newest_log_segment(&found);
    remove_orphan_hints(dir, &found)?;
    let mut stats = RecoveryStats::default();

    // Phase 1: open every segment and decide which records it holds: from its hint file, or by
    // scanning (checksums verified), split over the cores.
    let mut loaded = Vec::new();
    for f in &found {
        if let Some(l) = open_segment(f, Some(f.id) == newest_log, options)? {
            loaded.push(l);
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let scans: Vec<Result<()>> = parallel_map(&mut loaded, threads, |l| l.scan(dir));
    for r in scans {
        r?;
    }
    for l in &mut loaded {
        l.settle(dir, options, &mut stats)?;
    }
    stats.segments_from_hints = loaded.iter().filter(|l| l.hint.is_some()).count() as u64;
    let read_ms = started.elapsed().as_millis() as u64;

    // Phase 2: build the index, each thread owning a share of the shards. Its first thread
    // notes which segments hold records compaction keeps without an index entry.
    for l in &loaded {
        l.seg.clear_unindexed();
    }
    let index = Index::new();
    let hinted: u64 = loaded
        .iter()
        .filter_map(|l| l.hint.as_ref())
        .map(|h| h.count)
        .sum();
    // Each thread sizes its own shards below: zeroing the tables is a good share of the work.
    let per_shard = (hinted as usize).div_ceil(crate::index::SHARD_COUNT);
    let map = Records::new(&loaded);
    let committed = Committed::new(loaded.iter().flat_map(|l| l.commits.iter().copied()));
    // A replica keeps expired keys until its primary's DEL (see `Options::expire_keys`):
    // nothing is expired at time 0.
    let now = if options.expire_keys { now_ms() } else { 0 };
    let parts: Vec<Part> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (loaded, map, index, committed) = (&loaded, &map, &index, &committed);
                s.spawn(move || {
                    // This thread owns its shards for the whole phase: lock them once.
                    let mut guards: Vec<Option<_>> = (0..crate::index::SHARD_COUNT)
                        .map(|i| (i % threads == t).then(|| index.shard(i).write()))
                        .collect();
                    for g in guards.iter_mut().flatten() {
                        g.reserve(per_shard);
                    }
                    let mut part = Part::new(t, now, committed);
                    let mut batch: Vec<Pending<'_>> = Vec::with_capacity(PREFETCH_BATCH);
                    for l in loaded {
                        l.for_each_record(|off, h, key| {
                            let kh = KeyHash::of_ns(h.ns, key);
                            if let Some(g) = &guards[kh.shard()] {
                                g.prefetch(kh);
                            }
                            batch.push(Pending {
                                off,
                                header: *h,
                                key,
                                kh,
                            });
                            if batch.len() == PREFETCH_BATCH {
                                for p in batch.drain(..) {
                                    part.apply(&mut guards, map, &l.seg, p);
                                }
                            }
                        });
                        for p in batch.drain(..) {
                            part.apply(&mut guards, map, &l.seg, p);
                        }
                    }
                    // Every record is in: the tombstones kept to shadow older versions go.
                    for g in guards.iter_mut().flatten() {
                        g.sweep_marked();
                        // Sized for the records met, which overwrites leave fewer keys of.
                        g.shrink_to_fit();
                        // The sweep dropped slots of namespaces it could not tell apart.
                        if part.saw_ns {
                            g.recount_ns(|loc| map.header_key(loc).map_or(0, |(h, _)| h.ns));
                        }
                    }
                    // From here the mark means "expires": the sweep reads only those.
                    for (kh, loc, ns) in std::mem::take(&mut part.expiring) {
                        if let Some(g) = guards[kh.shard()].as_mut() {
                            if let Some(i) = g.find_loc(kh.tag(), loc) {
                                g.set(i, loc, true, ns, part.access_clock);
                            }
                        }
                    }
                    part
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("recovery thread"))
            .collect()
    });
    let index_ms = started.elapsed().as_millis() as u64 - read_ms;
    let max_seq = parts.iter().map(|p| p.max_seq).max().unwrap_or(0);
    stats.records = parts.iter().map(|p| p.records).sum();
    stats.uncommitted_txn_records = parts.iter().map(|p| p.uncommitted_txn_records).sum();
    if stats.uncommitted_txn_records > 0 {
        tracing::warn!(
            records = stats.uncommitted_txn_records,
            "records of a transaction cut short by a crash were not applied (EXEC is all or nothing)"
        );
    }
    // Every thread sees every flush record: segments holding only older records are void.
    let flush_seq = parts.first().map_or(0, |p| p.flush_seq);
    // Files emptied by a FLUSHALL, and segments with no records, go now.
    let mut keep = Vec::new();
    for l in loaded {
        let seg = l.seg;
        let flushed = flush_seq > 0 && seg.max_seq() < flush_seq;
        if flushed || seg.is_empty() {
            seg.mark_obsolete();
            let _ = std::fs::remove_file(hint_path(dir, seg.id));
        } else {
            if l.hint.is_some() {
                seg.mark_hinted();
            } else {
                seg.mark_verified();
            }
            // From now on reads are point reads: a fault brings in its own pages only.
            seg.advise(Access::Random);
            keep.push(seg);
        }
    }
    stats.segments = keep.len() as u64;
    stats.keys = index.len();
    stats.duration_ms = started.elapsed().as_millis() as u64;
    let index_bytes = index.memory_bytes();
    tracing::info!(
        keys = stats.keys,
        index_bytes,
        index_bytes_per_key = index_bytes / stats.keys.max(1),
        segments = stats.segments,
        from_hints = stats.segments_from_hints,
        records = stats.records,
        ms = stats.duration_ms,
        read_ms,
        index_ms,
        "recovery finished"
    );
    Ok(Recovered {
        index,
        segments: keep,
        next_seq: max_seq + 1,
        next_segment_id,
        has_expiring: parts.iter().any(|p| p.saw_expiring),
        stats,
    })
}

/// The id of the newest segment written by the log, judged by header; a file whose header is
/// unreadable counts as a log segment (it may be one whose creation was cut short).
fn newest_log_segment(found: &[Found]) -> Option<u32> {
    found.iter().rev().find_map(|f| {
        let mut head = [0u8; SEGMENT_HEADER_LEN];
        let n = std::fs::File::open(&f.path)
            .and_then(|mut file| std::io::Read::read(&mut file, &mut head))
            .unwrap_or(0);
        match SegmentHeader::decode(&head[..n], &f.path) {
            Ok(h) if h.kind == SegmentKind::Compacted => None,
            _ => Some(f.id),
        }
    })
}

/// Runs `f` over `items` on up to `threads` threads, results in order.
fn parallel_map<T: Send, R: Send>(
    items: &mut [T],
    threads: usize,
    f: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    let chunk = items.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks_mut(chunk)
            .map(|c| {
                let f = &f;
                s.spawn(move || c.iter_mut().map(f).collect::<Vec<R>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("recovery thread"))
            .collect()
    })
}

/// Hint files whose segment is gone (a crash between retiring a segment and removing its hint).
fn remove_orphan_hints(dir: &Path, found: &[Found]) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".hint") else {
            continue;
        };
        let id = format::parse_segment_file_name(&format!("{stem}.seg"));
        if id.is_some_and(|id| !found.iter().any(|f| f.id == id)) || id.is_none() {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| Error::io("remove orphan hint", &p, e))?;
        }
    }
    Ok(())
}

/// One segment during recovery.
struct Loaded {
    seg: Arc<Segment>,
    newest_log: bool,
    use_hint: bool,
    hint: Option<Hint>,
    /// For a scanned segment: its records' entries, collected as the scan read them, so the
    /// index is built and keys compared without reading the segment a second time (under a
    /// memory limit its pages are gone by then). Only entries inside `spans` are valid.
    scanned: Option<Hint>,
    /// Verified runs of records `[start, end)` when scanned.
    spans: Vec<(u64, u64)>,
    /// How the scan ended after the last span.
    damage: Vec<ScanEnd>,
    /// The transaction commit records it holds: (first seq, commit seq).
    commits: Vec<(u64, u64)>,
}

fn open_segment(f: &Found, newest_log: bool, options: &Options) -> Result<Option<Loaded>> {
    let (file, map, file_len) = match Segment::open_existing(&f.path) {
        Ok(x) => x,
        Err(Error::Corrupt { .. }) if newest_log => {
            remove_stillborn(&f.path, "empty file")?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let head_len = (file_len as usize).min(SEGMENT_HEADER_LEN);
    // SAFETY: nothing writes this map during recovery; the copy is taken at once.
    let head = unsafe { std::slice::from_raw_parts(map.as_ptr(), head_len) }.to_vec();
    let header = match SegmentHeader::decode(&head, &f.path) {
        Ok(h) => h,
        Err(_) if newest_log && head.iter().all(|&b| b == 0) => {
            drop(map);
            remove_stillborn(&f.path, "header never written")?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if header.segment_id != f.id {
        return Err(Error::Corrupt {
            path: f.path.clone(),
            offset: 0,
            reason: format!(
                "header says segment {}, file name says {}",
                header.segment_id, f.id
            ),
        });
    }
    let seg = Arc::new(Segment::from_parts(
        f.path.clone(),
        file,
        map,
        f.id,
        header.kind,
        file_len,
    ));
    Ok(Some(Loaded {
        seg,
        newest_log,
        use_hint: options.hints && !newest_log,
        hint: None,
        scanned: None,
        spans: Vec::new(),
        damage: Vec::new(),
        commits: Vec::new(),
    }))
}

impl Loaded {
    /// Loads the segment's hint, or else finds its verified runs of records.
    fn scan(&mut self, dir: &Path) -> Result<()> {
        if self.use_hint {
            let file_len = self.seg.len();
            match Hint::load(dir, self.seg.id, file_len) {
                Ok(Some(mut h)) => {
                    self.commits = std::mem::take(&mut h.commits);
                    self.hint = Some(h);
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "hint file unusable; scanning the segment instead");
                }
            }
        }
        // Read from start to end: big read-ahead, not the point reads' page at a time.
        self.seg.advise(Access::Sequential);
        let bytes = self.seg.mapped_bytes();
        let log = self.seg.kind == SegmentKind::Log;
        let mut start = SEGMENT_HEADER_LEN as u64;
        let mut entries = HintBuilder::default();
        let commits = &mut self.commits;
        loop {
            let mut end_of_run = start;
            // Where the batch still open at the current record began, if one is.
            let mut open_batch = None;
            let end = scan_records(bytes, start, |off, h, rec| {
                entries.push(off, h, format::record_key(h, rec));
                if h.is_txn_commit() {
                    commits.push((h.txn_first_seq(), h.seq));
                }
                end_of_run = off + h.record_len() as u64;
                if h.batch_continues() {
                    open_batch.get_or_insert(off);
                } else {
                    open_batch = None;
                }
            });
            let end = match open_batch {
                // A batch whose last record never made it to disk: none of it happened, and
                // its records are cut as part of the damage that follows (a torn tail, as a
                // crash in the middle of the batch leaves).
                Some(batch_start) if log => {
                    end_of_run = batch_start;
                    drop_open_batch(end, batch_start)
                }
                _ => end,
            };
            self.spans.push((start, end_of_run));
            match end {
                ScanEnd::Corrupt { next_valid, .. } => {
                    self.damage.push(end);
                    start = next_valid;
                }
                other => {
                    self.damage.push(other);
                    let scanned = entries.into_hint();
                    self.scanned = Some(scanned);
                    return Ok(());
                }
            }
        }
    }

    /// Applies the verdict on damage found by `scan`: errors, quarantine, truncation.
    fn settle(&mut self, dir: &Path, options: &Options, stats: &mut RecoveryStats) -> Result<()> {
        let file_len = self.seg.len();
        let path = self.seg.path();
        if self.hint.is_some() {
            self.seg.mark_sealed();
            return Ok(());
        }
        let mut valid_end = file_len;
        // Damage between valid records was quarantined: the file is written again without it.
        let mut rewrite = false;
        let damage = std::mem::take(&mut self.damage);
        for d in &damage {
            match *d {
                ScanEnd::Clean { end } => valid_end = end,
                ScanEnd::Corrupt {
                    at,
                    next_valid,
                    reason,
                } => {
                    if !options.repair {
                        return Err(Error::Corrupt {
                            path,
                            offset: at,
                            reason: format!(
                                "{reason}; valid records resume at offset {next_valid}"
                            ),
                        });
                    }
                    stats.quarantined_bytes += quarantine(dir, &self.seg, at, next_valid)?;
                    rewrite = true;
                }
                ScanEnd::Torn { at, reason } => {
                    let dropped = file_len - at;
                    if !self.newest_log && !options.repair {
                        return Err(Error::Corrupt {
                            path,
                            offset: at,
                            reason: format!(
                                "{reason}; {dropped} bytes to the end of a sealed segment"
                            ),
                        });
                    }
                    if !self.newest_log {
                        stats.quarantined_bytes += quarantine(dir, &self.seg, at, file_len)?;
                    }
                    tracing::warn!(
                        path = %path.display(),
                        offset = at,
                        bytes = dropped,
                        reason,
                        "torn tail cut from segment (a write cut short by a crash)"
                    );
                    stats.torn_bytes_truncated += dropped;
                    valid_end = at;
                }
            }
        }
        if rewrite {
            return self.rewrite_without_damage(dir);
        }
        self.seg.set_len(valid_end);
        if valid_end < file_len {
            self.seg.seal()?;
            self.seg.sync()?;
            // A hint written for the longer file no longer applies.
            let _ = std::fs::remove_file(hint_path(dir, self.seg.id));
        } else {
            self.seg.mark_sealed();
        }
        Ok(())
    }

    /// After repair quarantined damage between valid records: writes the segment again as its
    /// header and its verified runs back to back, and replaces the file with it (a temporary
    /// file, synced, renamed over the old one). The damage is then gone from the store, not
    /// only skipped: the next open needs no repair, and a hint file written later lists
    /// exactly the records recovery serves now. A crash before the rename leaves the damaged
    /// file and a `.tmp` file that the next open removes; repair then runs again.
    fn rewrite_without_damage(&mut self, dir: &Path) -> Result<()> {
        let path = self.seg.path();
        let tmp = path.with_extension("seg.tmp");
        let bytes = self.seg.mapped_bytes();
        let io = |op, e| Error::io(op, &tmp, e);
        let file = File::create(&tmp).map_err(|e| io("create segment", e))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        // The header was verified when the segment was opened.
        let mut runs = vec![&bytes[..SEGMENT_HEADER_LEN]];
        runs.extend(
            self.spans
                .iter()
                .map(|&(start, end)| &bytes[start as usize..end as usize]),
        );
        for run in &runs {
            w.write_all(run).map_err(|e| io("write segment", e))?;
        }
        let file = w
            .into_inner()
            .map_err(|e| io("write segment", e.into_error()))?;
        file.sync_data().map_err(|e| io("fdatasync", e))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(|e| io("rename segment", e))?;
        crate::segment::sync_dir(dir)?;
        // A hint written for the damaged file no longer applies.
        let _ = std::fs::remove_file(hint_path(dir, self.seg.id));

        let kept: u64 = runs.iter().map(|r| r.len() as u64).sum();
        tracing::warn!(
            path = %path.display(),
            bytes_before = self.seg.len(),
            bytes_after = kept,
            "repair: segment rewritten without its damaged parts (copies in quarantine/)"
        );
        let (file, map, len) = Segment::open_existing(&path)?;
        let seg = Segment::from_parts(path, file, map, self.seg.id, self.seg.kind, len);
        seg.mark_sealed();
        self.seg = Arc::new(seg);
        // Offsets moved: read records from the rewritten file instead.
        self.scanned = None;
        self.spans = if len > SEGMENT_HEADER_LEN as u64 {
            vec![(SEGMENT_HEADER_LEN as u64, len)]
        } else {
            Vec::new()
        };
        Ok(())
    }

    /// True when a record starting at `off` lies in a verified run (not cut as damage).
    fn in_spans(&self, off: u32) -> bool {
        let off = u64::from(off);
        self.spans
            .iter()
            .any(|&(start, end)| start <= off && off < end)
    }

    /// Every record: offset, header, key.
    fn for_each_record<'a>(&'a self, mut f: impl FnMut(u64, &RecordHeader, &'a [u8])) {
        if let Some(hint) = &self.hint {
            for e in hint.entries().flatten() {
                f(u64::from(e.offset), &e.header, e.key);
            }
            return;
        }
        if let Some(scanned) = &self.scanned {
            for e in scanned.entries().flatten() {
                if self.in_spans(e.offset) {
                    f(u64::from(e.offset), &e.header, e.key);
                }
            }
            return;
        }
        let bytes = self.seg.mapped_bytes();
        for &(start, end) in &self.spans {
            let mut off = start;
            while off < end {
                let h = format::trusted_header(&bytes[off as usize..]);
                let rec = &bytes[off as usize..off as usize + h.record_len()];
                f(off, &h, format::record_key(&h, rec));
                off += h.record_len() as u64;
            }
        }
    }
}

/// The scan end once the records of an incomplete batch from `batch_start` count as damage.
fn drop_open_batch(end: ScanEnd, batch_start: u64) -> ScanEnd {
    match end {
        ScanEnd::Clean { .. } => ScanEnd::Torn {
            at: batch_start,
            reason: "atomic batch without its last record",
        },
        ScanEnd::Torn { reason, .. } => ScanEnd::Torn {
            at: batch_start,
            reason,
        },
        ScanEnd::Corrupt {
            next_valid, reason, ..
        } => ScanEnd::Corrupt {
            at: batch_start,
            next_valid,
            reason,
        },
    }
}

/// Copies bytes `[from, to)` of a damaged segment into `quarantine/`; returns the byte count.
fn quarantine(dir: &Path, seg: &Segment, from: u64, to: u64) -> Result<u64> {
    let qdir = dir.join("quarantine");
    std::fs::create_dir_all(&qdir).map_err(|e| Error::io("create directory", &qdir, e))?;
    let name = format!("{}.{from}-{to}.bad", format::segment_file_name(seg.id));
    let path = qdir.join(name);
    let bytes = &seg.mapped_bytes()[from as usize..to as usize];
    std::fs::write(&path, bytes).map_err(|e| Error::io("write quarantine file", &path, e))?;
    tracing::error!(
        segment = %seg.path().display(),
        from,
        to,
        copy = %path.display(),
        "repair: damaged bytes skipped; any records in them are lost"
    );
    Ok(to - from)
}

/// Every transaction committed on disk, as (first seq, commit seq) ranges sorted by first
/// seq. Transactions never overlap (one at a time), so a record of one lies in its range.
struct Committed(Vec<(u64, u64)>);

impl Committed {
    fn new(commits: impl Iterator<Item = (u64, u64)>) -> Committed {
        let mut v: Vec<(u64, u64)> = commits.collect();
        v.sort_unstable();
        v.dedup();
        Committed(v)
    }

    /// Whether the transaction record with sequence number `seq` was committed.
    fn covers(&self, seq: u64) -> bool {
        let i = self.0.partition_point(|&(first, _)| first <= seq);
        i > 0 && seq < self.0[i - 1].1
    }
}

/// The index-building state of one recovery thread, which owns shards `t`, `t + n`, ...
struct Part<'c> {
    /// Committed transactions: a log record of any other transaction is not applied.
    committed: &'c Committed,
    thread: usize,
    now: u64,
    /// The access clock every key starts with: a store opens with every key idle for 0 s
    /// (Redis's restart from an AOF does the same).
    access_clock: u32,
    max_seq: u64,
    flush_seq: u64,
    /// The newest namespace flush (FLUSHDB) met, by namespace.
    ns_flush_seq: std::collections::HashMap<u32, u64>,
    /// Some record named a namespace other than 0.
    saw_ns: bool,
    records: u64,
    saw_expiring: bool,
    uncommitted_txn_records: u64,
    /// Records with a future expiry that took a slot: marked for the expiry sweep once every
    /// record is in (the mark means "tombstone" until then).
    expiring: Vec<(KeyHash, Loc, u32)>,
}

impl<'c> Part<'c> {
    fn new(thread: usize, now: u64, committed: &'c Committed) -> Part<'c> {
        Part {
            committed,
            thread,
            now,
            access_clock: crate::clock::access_clock(0),
            max_seq: 0,
            flush_seq: 0,
            ns_flush_seq: Default::default(),
            saw_ns: false,
            records: 0,
            saw_expiring: false,
            uncommitted_txn_records: 0,
            expiring: Vec::new(),
        }
    }

    fn apply(
        &mut self,
        guards: &mut [Option<ShardGuard<'_>>],
        map: &Records<'_>,
        seg: &Segment,
        p: Pending<'_>,
    ) {
        let h = &p.header;
        self.max_seq = self.max_seq.max(h.seq);
        let len = h.record_len() as u64;
        let first = self.thread == 0;
        if first {
            self.records += 1;
            seg.note_seq(h.seq);
            seg.note_flags(h.flags);
        }
        self.saw_ns |= h.ns != 0;
        // A commit record is no key; a log record of a transaction whose commit record is
        // not on disk never happened (a crash cut the EXEC short). Compacted segments hold
        // records of committed transactions only.
        let uncommitted = h.in_txn()
            && seg.kind == crate::format::SegmentKind::Log
            && !self.committed.covers(h.seq);
        if h.is_txn_commit() || uncommitted {
            if first {
                seg.add_dead(len);
                self.uncommitted_txn_records += u64::from(uncommitted);
            }
            return;
        }
        if h.is_flush() && h.flushes_ns_only() {
            // Only the namespace's records older than the flush go (one met earlier may be
            // newer: compaction copies records into segments with higher ids).
            for g in guards.iter_mut().flatten() {
                let ns_of = |loc| match map.header_key(loc) {
                    Some((oh, _)) if oh.seq < h.seq => oh.ns,
                    _ => u32::MAX,
                };
                for (loc, marked) in g.remove_ns(h.ns, ns_of) {
                    if !marked {
                        if let Some((oh, _)) = map.header_key(loc) {
                            map.add_dead(loc, oh.record_len() as u64);
                        }
                    }
                }
            }
            let at = self.ns_flush_seq.entry(h.ns).or_insert(0);
            *at = (*at).max(h.seq);
            if first {
                seg.add_dead(len);
            }
            return;
        }
        if h.is_flush() {
            for g in guards.iter_mut().flatten() {
                g.clear();
            }
            self.flush_seq = self.flush_seq.max(h.seq);
            if first {
                seg.add_dead(len);
            }
            return;
        }
        let Some(shard) = guards[p.kh.shard()].as_mut() else {
            return;
        };
        let ns_flush_seq = self.ns_flush_seq.get(&h.ns).copied().unwrap_or(0);
        if h.seq < self.flush_seq || h.seq < ns_flush_seq {
            seg.add_dead(len);
            return;
        }
        let gone = h.is_tombstone() || is_expired(h.expire_at_ms, self.now);
        self.saw_expiring |= !gone && h.expire_at_ms != 0;
        let loc = Loc {
            seg: seg.id,
            off: p.off as u32,
        };
        if !gone && h.expire_at_ms != 0 {
            // Only the record a slot ends up with is marked; a superseded one is not found.
            self.expiring.push((p.kh, loc, h.ns));
        }
        let key = p.key;
        let slot = shard.find(p.kh, |l| {
            map.header_key(l)
                .is_some_and(|(oh, k)| oh.ns == h.ns && k == key)
        });
        match slot {
            Some(i) => {
                let old = shard.loc(i);
                let old_seq = map.header_key(old).map_or(0, |(oh, _)| oh.seq);
                if h.seq > old_seq {
                    if !shard.is_marked(i) {
                        if let Some((oh, _)) = map.header_key(old) {
                            map.add_dead(old, oh.record_len() as u64);
                        }
                    }
                    shard.set(i, loc, gone, h.ns, self.access_clock);
                    if gone {
                        seg.add_dead(len);
                    }
                } else {
                    seg.add_dead(len);
                }
            }
            None => {
                shard.insert_absent(p.kh, loc, gone, h.ns, self.access_clock);
                if gone {
                    seg.add_dead(len);
                }
            }
        }
    }
}

/// Records are applied in batches: the home slots of a batch are prefetched first, so the
/// cache misses of a batch overlap instead of queueing.
const PREFETCH_BATCH: usize = 16;

type ShardGuard<'a> = parking_lot::RwLockWriteGuard<'a, crate::index::Table>;

struct Pending<'a> {
    off: u64,
    header: RecordHeader,
    key: &'a [u8],
    kh: KeyHash,
}

/// The header and key of any record recovery has met, by location: from the segment's hint
/// when it was loaded from one (so resolving a key seen twice reads no segment: under a memory
/// limit, reading old records through the map faulted on every overwritten key), else from
/// the scanned segment's bytes.
struct Records<'a> {
    /// Sorted by segment id.
    by_id: Vec<(u32, &'a Loaded)>,
}

impl<'a> Records<'a> {
    fn new(loaded: &'a [Loaded]) -> Records<'a> {
        let mut by_id: Vec<(u32, &Loaded)> = loaded.iter().map(|l| (l.seg.id, l)).collect();
        by_id.sort_by_key(|(id, _)| *id);
        Records { by_id }
    }

    /// Checked: a hint or a record may point anywhere.
    fn header_key(&self, loc: Loc) -> Option<(RecordHeader, &'a [u8])> {
        let i = self
            .by_id
            .binary_search_by_key(&loc.seg, |(id, _)| *id)
            .ok()?;
        let l = self.by_id[i].1;
        if let Some(hint) = &l.hint {
            let e = hint.entry_at_offset(loc.off)?;
            return Some((e.header, e.key));
        }
        if let Some(scanned) = &l.scanned {
            let e = scanned.entry_at_offset(loc.off)?;
            return l.in_spans(loc.off).then_some((e.header, e.key));
        }
        let seg = &l.seg;
        let bytes = seg.mapped_bytes().get(..seg.len() as usize)?;
        let rest = bytes.get(loc.off as usize..)?;
        let h = RecordHeader::decode(rest).ok()?;
        let key =
            rest.get(format::RECORD_HEADER_LEN..format::RECORD_HEADER_LEN + h.key_len as usize)?;
        Some((h, key))
    }

    fn add_dead(&self, loc: Loc, bytes: u64) {
        if let Ok(i) = self.by_id.binary_search_by_key(&loc.seg, |(id, _)| *id) {
            self.by_id[i].1.seg.add_dead(bytes);
        }
    }
}

fn remove_stillborn(path: &Path, why: &str) -> Result<()> {
    tracing::warn!(path = %path.display(), why, "removing a segment whose creation was cut short");
    std::fs::remove_file(path).map_err(|e| Error::io("remove segment", path, e))
}

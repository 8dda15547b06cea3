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
//!   `Options::repair` the damaged bytes are copied to `quarantine/` and skipped, and the loss
//!   is reported; compaction later rewrites the segment without them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::clock::{is_expired, now_ms};
use crate::engine::{record_at, SegmentMap};
use crate::error::{Error, Result};
use crate::format::{
    self, verify_record, HeaderError, RecordHeader, SegmentHeader, SegmentKind, SEGMENT_HEADER_LEN,
};
use crate::index::{Index, KeyHash, Loc};
use crate::options::Options;
use crate::segment::Segment;
use crate::stats::RecoveryStats;

pub(crate) struct Recovered {
    pub index: Index,
    pub segments: Vec<Arc<Segment>>,
    pub next_seq: u64,
    pub next_segment_id: u32,
    pub stats: RecoveryStats,
}

/// How a scan of one segment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// All records valid up to `end`; anything after is zero (never written).
    Clean { end: u64 },
    /// Bad bytes from `at` to the end of the file, and no valid record after them.
    Torn { at: u64, reason: &'static str },
    /// Bad bytes from `at`, but a valid record starts at `next_valid`.
    Corrupt {
        at: u64,
        next_valid: u64,
        reason: &'static str,
    },
}

/// Walks the records of `bytes` (a whole segment file) from `start`, calling `on_record` with
/// the offset, header and record bytes of each valid record, until the end or the first damage.
pub fn scan_records(
    bytes: &[u8],
    start: u64,
    mut on_record: impl FnMut(u64, &RecordHeader, &[u8]),
) -> ScanEnd {
    let len = bytes.len() as u64;
    let mut off = start;
    loop {
        if off >= len {
            return ScanEnd::Clean { end: off };
        }
        let rest = &bytes[off as usize..];
        let reason = match RecordHeader::decode(rest) {
            Ok(h) if (h.record_len() as u64) > len - off => "record runs past the end of the file",
            Ok(h) if !verify_record(&h, rest) => "record checksum mismatch",
            Ok(h) => {
                on_record(off, &h, &rest[..h.record_len()]);
                off += h.record_len() as u64;
                continue;
            }
            Err(HeaderError::Zero | HeaderError::Short) if rest.iter().all(|&b| b == 0) => {
                return ScanEnd::Clean { end: off };
            }
            Err(HeaderError::Zero) => "zeroed record header before later data",
            Err(HeaderError::Short) => "partial record header at the end of the file",
            Err(HeaderError::Bad(reason)) => reason,
        };
        return match find_valid_record(bytes, off + 1) {
            Some(next_valid) => ScanEnd::Corrupt {
                at: off,
                next_valid,
                reason,
            },
            None => ScanEnd::Torn { at: off, reason },
        };
    }
}

/// The first offset at or after `from` where a record's header and body both verify.
fn find_valid_record(bytes: &[u8], from: u64) -> Option<u64> {
    let len = bytes.len();
    (from as usize..len.saturating_sub(format::RECORD_HEADER_LEN - 1)).find_map(|p| {
        let rest = &bytes[p..];
        match RecordHeader::decode(rest) {
            Ok(h) if h.record_len() <= rest.len() && verify_record(&h, rest) => Some(p as u64),
            _ => None,
        }
    })
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
    let mut r = Recovery {
        dir,
        options,
        index: Index::new(),
        map: SegmentMap::default(),
        segments: Vec::new(),
        max_seq: 0,
        flush_seq: 0,
        retired: Vec::new(),
        stats: RecoveryStats::default(),
        now: now_ms(),
    };
    for f in &found {
        r.load_segment(f, Some(f.id) == newest_log)?;
    }
    for i in 0..crate::index::SHARD_COUNT {
        r.index.shard(i).write().sweep_marked();
    }
    // Files emptied by a FLUSHALL, and segments with no records, go now.
    let mut keep = Vec::new();
    for seg in r.segments {
        if r.retired.contains(&seg.id) || seg.is_empty() {
            seg.mark_obsolete();
        } else {
            keep.push(seg);
        }
    }
    r.stats.segments = keep.len() as u64;
    r.stats.keys = r.index.len();
    r.stats.duration_ms = started.elapsed().as_millis() as u64;
    Ok(Recovered {
        index: r.index,
        segments: keep,
        next_seq: r.max_seq + 1,
        next_segment_id,
        stats: r.stats,
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

struct Recovery<'a> {
    dir: &'a Path,
    options: &'a Options,
    index: Index,
    map: SegmentMap,
    segments: Vec<Arc<Segment>>,
    max_seq: u64,
    flush_seq: u64,
    retired: Vec<u32>,
    stats: RecoveryStats,
    now: u64,
}

impl Recovery<'_> {
    fn load_segment(&mut self, f: &Found, newest_log: bool) -> Result<()> {
        let (file, map, file_len) = match Segment::open_existing(&f.path) {
            Ok(x) => x,
            Err(Error::Corrupt { .. }) if newest_log => {
                return remove_stillborn(&f.path, "empty file");
            }
            Err(e) => return Err(e),
        };
        let head_len = (file_len as usize).min(SEGMENT_HEADER_LEN);
        // SAFETY: nothing writes this map during recovery; the slice dies with this block.
        let head = unsafe { std::slice::from_raw_parts(map.as_ptr(), head_len) }.to_vec();
        let header = match SegmentHeader::decode(&head, &f.path) {
            Ok(h) => h,
            Err(_) if newest_log && head.iter().all(|&b| b == 0) => {
                drop(map);
                return remove_stillborn(&f.path, "header never written");
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
        self.map = SegmentMap::from_segments(self.map.iter().cloned().chain(Some(seg.clone())));
        self.segments.push(seg.clone());
        let mut start = SEGMENT_HEADER_LEN as u64;
        loop {
            let bytes = seg.mapped_bytes();
            let end = scan_records(bytes, start, |off, h, rec| self.apply(&seg, off, h, rec));
            match end {
                ScanEnd::Clean { end } => {
                    self.finish_segment(&seg, end, file_len)?;
                    return Ok(());
                }
                ScanEnd::Torn { at, reason } => {
                    let dropped = file_len - at;
                    if !newest_log && !self.options.repair {
                        return Err(Error::Corrupt {
                            path: f.path.clone(),
                            offset: at,
                            reason: format!(
                                "{reason}; {dropped} bytes to the end of a sealed segment"
                            ),
                        });
                    }
                    if !newest_log {
                        self.quarantine(&seg, at, file_len)?;
                    }
                    tracing::warn!(
                        path = %f.path.display(),
                        offset = at,
                        bytes = dropped,
                        reason,
                        "torn tail cut from segment (a write cut short by a crash)"
                    );
                    self.stats.torn_bytes_truncated += dropped;
                    self.finish_segment(&seg, at, file_len)?;
                    return Ok(());
                }
                ScanEnd::Corrupt {
                    at,
                    next_valid,
                    reason,
                } => {
                    if !self.options.repair {
                        return Err(Error::Corrupt {
                            path: f.path.clone(),
                            offset: at,
                            reason: format!(
                                "{reason}; valid records resume at offset {next_valid}"
                            ),
                        });
                    }
                    self.quarantine(&seg, at, next_valid)?;
                    seg.add_dead(next_valid - at);
                    start = next_valid;
                }
            }
        }
    }

    fn finish_segment(&mut self, seg: &Segment, end: u64, file_len: u64) -> Result<()> {
        seg.set_len(end);
        if end < file_len {
            seg.seal()?;
            seg.sync()?;
        } else {
            seg.mark_sealed();
        }
        self.stats.segments += 1;
        Ok(())
    }

    /// Copies bytes `[from, to)` of a damaged segment into `quarantine/` and reports the loss.
    fn quarantine(&mut self, seg: &Segment, from: u64, to: u64) -> Result<()> {
        let qdir = self.dir.join("quarantine");
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
        self.stats.quarantined_bytes += to - from;
        Ok(())
    }

    fn apply(&mut self, seg: &Arc<Segment>, off: u64, h: &RecordHeader, rec: &[u8]) {
        self.stats.records += 1;
        self.max_seq = self.max_seq.max(h.seq);
        seg.note_seq(h.seq);
        let loc = Loc {
            seg: seg.id,
            off: off as u32,
        };
        let len = h.record_len() as u64;
        if h.is_flush() {
            for i in 0..crate::index::SHARD_COUNT {
                self.index.shard(i).write().clear();
            }
            self.flush_seq = h.seq;
            self.retired.extend(
                self.segments
                    .iter()
                    .map(|s| s.id)
                    .filter(|&id| id != seg.id),
            );
            seg.add_dead(len);
            return;
        }
        if h.seq < self.flush_seq {
            seg.add_dead(len);
            return;
        }
        let key = format::record_key(h, rec);
        let gone = h.is_tombstone() || is_expired(h.expire_at_ms, self.now);
        let kh = KeyHash::of(key);
        let mut shard = self.index.shard(kh.shard()).write();
        let map = &self.map;
        let slot = shard.find(kh.tag(), |l| {
            let (oh, orec) = record_at(map, l);
            format::record_key(&oh, orec) == key
        });
        match slot {
            Some(i) => {
                let old = shard.loc(i);
                let (oh, _) = record_at(map, old);
                if h.seq > oh.seq {
                    if !shard.is_marked(i) {
                        add_dead(map, old, oh.record_len() as u64);
                    }
                    shard.set(i, loc, gone);
                    if gone {
                        seg.add_dead(len);
                    }
                } else {
                    seg.add_dead(len);
                }
            }
            None => {
                shard.insert_absent(kh.tag(), loc, gone);
                if gone {
                    seg.add_dead(len);
                }
            }
        }
    }
}

fn add_dead(map: &SegmentMap, loc: Loc, bytes: u64) {
    if let Some(s) = map.get(loc.seg) {
        s.add_dead(bytes);
    }
}

fn remove_stillborn(path: &Path, why: &str) -> Result<()> {
    tracing::warn!(path = %path.display(), why, "removing a segment whose creation was cut short");
    std::fs::remove_file(path).map_err(|e| Error::io("remove segment", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::RecordHeader;

    fn record(seq: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
        let h = RecordHeader {
            seq,
            expire_at_ms: 0,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            flags: 0,
        };
        let mut b = vec![0u8; h.record_len()];
        h.encode_record(key, value, &mut b);
        b
    }

    fn file(records: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0u8; SEGMENT_HEADER_LEN];
        for r in records {
            b.extend_from_slice(r);
        }
        b
    }

    fn count(bytes: &[u8]) -> (usize, ScanEnd) {
        let mut n = 0;
        let end = scan_records(bytes, SEGMENT_HEADER_LEN as u64, |_, _, _| n += 1);
        (n, end)
    }

    #[test]
    fn clean_file_and_zero_tail_are_clean() {
        let recs = [record(1, b"a", b"1"), record(2, b"b", b"22")];
        let mut b = file(&recs);
        let end = b.len() as u64;
        assert_eq!(count(&b), (2, ScanEnd::Clean { end }));
        b.extend_from_slice(&[0u8; 1000]);
        assert_eq!(count(&b), (2, ScanEnd::Clean { end }));
    }

    #[test]
    fn torn_tail_at_every_offset_of_the_last_record() {
        let recs = [record(1, b"a", b"1"), record(2, b"key", b"value-value")];
        let full = file(&recs);
        let last_start = full.len() - recs[1].len();
        for cut in last_start + 1..full.len() {
            let (n, end) = count(&full[..cut]);
            assert_eq!(n, 1, "cut at {cut}");
            assert!(
                matches!(end, ScanEnd::Torn { at, .. } if at == last_start as u64),
                "cut at {cut}: {end:?}"
            );
        }
    }

    #[test]
    fn garbage_tail_is_torn_and_flip_in_the_middle_is_corrupt() {
        let recs = [
            record(1, b"a", b"1"),
            record(2, b"b", b"2"),
            record(3, b"c", b"3"),
        ];
        let b = file(&recs);
        let mut torn = b.clone();
        torn.extend_from_slice(&[0xAB; 17]);
        assert!(matches!(count(&torn).1, ScanEnd::Torn { .. }));

        let second = SEGMENT_HEADER_LEN + recs[0].len();
        let mut flipped = b.clone();
        flipped[second + format::RECORD_HEADER_LEN] ^= 0x40;
        let (n, end) = count(&flipped);
        assert_eq!(n, 1);
        assert_eq!(
            end,
            ScanEnd::Corrupt {
                at: second as u64,
                next_valid: (second + recs[1].len()) as u64,
                reason: "record checksum mismatch",
            }
        );
    }
}

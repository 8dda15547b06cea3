//! Hint files: for each sealed segment, the key, location, sequence number, expiry and flags
//! of every record, without the values, so `open` need not read the data.
//!
//! ```text
//! header (40 bytes)
//! 0   8  magic "FLINHNT\x01"
//! 8   4  format version (2; version 1 entries lack the namespace: 29 bytes + key)
//! 12  4  segment id
//! 16  8  segment length in bytes (the hint describes exactly this many bytes)
//! 24  8  entry count
//! 32  4  reserved, 0
//! 36  4  CRC32 of bytes 0..36
//! entries, back to back (32 bytes + key)
//! 0   8  seq
//! 8   8  expire_at_ms
//! 16  4  record offset in the segment
//! 20  4  value length
//! 24  4  key length
//! 28  1  flags
//! 29  3  namespace (24 bits)
//! 32  .. key
//! trailer
//! 0   4  CRC32 of all entry bytes
//! ```
//!
//! A hint is written to `<id>.hint.tmp`, synced and renamed, so a hint file is complete or
//! absent. It is used only when the header, the trailer checksum, the segment id and the segment
//! length all match; anything else falls back to scanning the segment, and says so in the log.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{self, get_u32, get_u64, put_u32, put_u64, RecordHeader, KEY_LEN_MAX};
use crate::scan::{scan_records, ScanEnd};
use crate::segment::Segment;

/// "FLINHNT" and a format byte, the first 8 bytes of every hint file.
pub const HINT_MAGIC: [u8; 8] = *b"FLINHNT\x01";
/// The hint format version.
pub const HINT_VERSION: u32 = 2;
/// Version 1 hints (written before records had namespaces) are still read: their entries are
/// [`HINT_ENTRY_FIXED_LEN_V1`] bytes, and every record is in namespace 0.
const HINT_VERSION_V1: u32 = 1;
/// Bytes of the hint file header.
pub const HINT_HEADER_LEN: usize = 40;
/// Bytes of an entry before its key.
pub const HINT_ENTRY_FIXED_LEN: usize = 32;
/// Bytes of a version 1 entry before its key.
pub const HINT_ENTRY_FIXED_LEN_V1: usize = 29;
/// Bytes of the trailer (the entries' CRC32).
pub const HINT_TRAILER_LEN: usize = 4;
const HH_VERSION: usize = 8;
const HH_SEGMENT_ID: usize = 12;
const HH_SEGMENT_LEN: usize = 16;
const HH_COUNT: usize = 24;
const HH_CRC: usize = 36;
const _: () = assert!(HH_CRC + 4 == HINT_HEADER_LEN);

/// `0000000042.hint`: the hint file of segment 42.
pub fn hint_file_name(id: u32) -> String {
    format!("{id:010}.hint")
}

pub fn hint_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(hint_file_name(id))
}

/// One record as a hint describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HintEntry<'a> {
    pub offset: u32,
    pub header: RecordHeader,
    pub key: &'a [u8],
}

/// The hint entries of a segment, collected as its records are appended (the log does this
/// while memory is short, so the hint need not be written by reading the segment back from
/// disk once it is sealed).
#[derive(Default)]
pub(crate) struct HintBuilder {
    entries: Vec<u8>,
    count: u64,
}

impl HintBuilder {
    /// Adds the record at `offset`.
    pub(crate) fn push(&mut self, offset: u64, h: &RecordHeader, key: &[u8]) {
        self.entries.extend_from_slice(&encode_entry(offset, h));
        self.entries.extend_from_slice(key);
        self.count += 1;
    }
}

impl HintBuilder {
    /// The entries as a [`Hint`] in memory, as if read from a hint file (no file is written).
    pub(crate) fn into_hint(self) -> Hint {
        let mut bytes = vec![0u8; HINT_HEADER_LEN];
        bytes.extend_from_slice(&self.entries);
        bytes.extend_from_slice(&[0u8; HINT_TRAILER_LEN]);
        Hint {
            bytes,
            count: self.count,
            commits: Vec::new(),
            fixed_len: HINT_ENTRY_FIXED_LEN,
        }
    }
}

/// The fixed part of the hint entry of the record at `offset`.
fn encode_entry(offset: u64, h: &RecordHeader) -> [u8; HINT_ENTRY_FIXED_LEN] {
    let mut fixed = [0u8; HINT_ENTRY_FIXED_LEN];
    put_u64(&mut fixed, 0, h.seq);
    put_u64(&mut fixed, 8, h.expire_at_ms);
    put_u32(&mut fixed, 16, offset as u32);
    put_u32(&mut fixed, 20, h.value_len);
    put_u32(&mut fixed, 24, h.key_len);
    fixed[28] = h.flags;
    fixed[29..32].copy_from_slice(&h.ns.to_le_bytes()[..3]);
    fixed
}

/// The record header an entry's fixed part describes (`f` is the whole fixed part).
fn decode_entry(f: &[u8]) -> RecordHeader {
    RecordHeader {
        seq: get_u64(f, 0),
        expire_at_ms: get_u64(f, 8),
        key_len: get_u32(f, 24),
        value_len: get_u32(f, 20),
        flags: f[28],
        ns: if f.len() >= HINT_ENTRY_FIXED_LEN {
            u32::from(f[29]) | u32::from(f[30]) << 8 | u32::from(f[31]) << 16
        } else {
            0
        },
    }
}

/// Writes the hint file of a sealed segment. The segment's records are read through its map,
/// unless `built` holds its entries already (collected as they were appended).
///
/// # Errors
/// I/O errors; the temporary file is removed then.
pub(crate) fn write_hint(dir: &Path, seg: &Segment, built: Option<HintBuilder>) -> Result<()> {
    let path = hint_path(dir, seg.id);
    let tmp = dir.join(format!("{}.tmp", hint_file_name(seg.id)));
    let result = write_hint_to(&tmp, seg, built).and_then(|()| {
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename hint file", &tmp, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_hint_to(tmp: &Path, seg: &Segment, built: Option<HintBuilder>) -> Result<()> {
    let io = |e| Error::io("write hint file", tmp, e);
    let file = File::create(tmp).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let seg_len = seg.len();
    w.write_all(&[0u8; HINT_HEADER_LEN]).map_err(io)?;
    let mut crc = crc32fast::Hasher::new();
    let count = match built {
        Some(b) => {
            crc.update(&b.entries);
            w.write_all(&b.entries).map_err(io)?;
            b.count
        }
        None => scan_into(seg, &mut w, &mut crc).map_err(|e| match e {
            ScanFailure::Io(e) => io(e),
            ScanFailure::Damaged(e) => e,
        })?,
    };
    w.write_all(&crc.finalize().to_le_bytes()).map_err(io)?;
    let mut header = [0u8; HINT_HEADER_LEN];
    header[..8].copy_from_slice(&HINT_MAGIC);
    put_u32(&mut header, HH_VERSION, HINT_VERSION);
    put_u32(&mut header, HH_SEGMENT_ID, seg.id);
    put_u64(&mut header, HH_SEGMENT_LEN, seg_len);
    put_u64(&mut header, HH_COUNT, count);
    let hcrc = crc32fast::hash(&header[..HH_CRC]);
    put_u32(&mut header, HH_CRC, hcrc);
    let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&header).map_err(io)?;
    file.sync_data()
        .map_err(|e| Error::io("fdatasync hint file", tmp, e))
}

enum ScanFailure {
    Io(std::io::Error),
    Damaged(Error),
}

/// Writes the entry of every record of `seg` (read through its map) to `w`; returns how many.
fn scan_into(
    seg: &Segment,
    w: &mut impl Write,
    crc: &mut crc32fast::Hasher,
) -> std::result::Result<u64, ScanFailure> {
    let mut count = 0u64;
    let mut failure = None;
    let end = scan_records(
        seg.bytes_from(0),
        format::SEGMENT_HEADER_LEN as u64,
        |off, h, rec| {
            if failure.is_some() {
                return;
            }
            let key = format::record_key(h, rec);
            let fixed = encode_entry(off, h);
            crc.update(&fixed);
            crc.update(key);
            count += 1;
            if let Err(e) = w.write_all(&fixed).and_then(|()| w.write_all(key)) {
                failure = Some(e);
            }
        },
    );
    if let Some(e) = failure {
        return Err(ScanFailure::Io(e));
    }
    match end {
        // Recovery rewrites a repaired segment without its damage, so a sealed segment
        // has none unless it was damaged since; then it gets no hint, and the next open
        // scans it and finds the damage itself.
        ScanEnd::Corrupt { at, reason, .. } | ScanEnd::Torn { at, reason } => {
            Err(ScanFailure::Damaged(Error::Corrupt {
                path: seg.path(),
                offset: at,
                reason: format!("{reason}; no hint file written for this segment"),
            }))
        }
        ScanEnd::Clean { .. } => Ok(count),
    }
}

/// A hint file read into memory and verified as a whole.
pub struct Hint {
    bytes: Vec<u8>,
    pub count: u64,
    /// The transaction commit records among the entries: (first seq, commit seq), each
    /// checked as a record header is (see `format::FLAG_TXN_COMMIT`).
    pub commits: Vec<(u64, u64)>,
    /// Bytes of each entry before its key: by the hint's version.
    fixed_len: usize,
}

impl Hint {
    /// Reads and verifies the hint of segment `id`, which must describe `segment_len` bytes.
    ///
    /// # Errors
    /// `Ok(None)` when there is no hint file; `Err` with the reason when it is unusable.
    pub fn load(dir: &Path, id: u32, segment_len: u64) -> Result<Option<Hint>> {
        let path = hint_path(dir, id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read hint file", &path, e)),
        };
        let bad = |reason: String| Error::Corrupt {
            path: path.clone(),
            offset: 0,
            reason,
        };
        if bytes.len() < HINT_HEADER_LEN + HINT_TRAILER_LEN {
            return Err(bad(format!(
                "{} bytes is too short for a hint file",
                bytes.len()
            )));
        }
        let h = &bytes[..HINT_HEADER_LEN];
        if h[..8] != HINT_MAGIC || get_u32(h, HH_CRC) != crc32fast::hash(&h[..HH_CRC]) {
            return Err(bad("bad hint header (magic or checksum)".into()));
        }
        let fixed_len = match get_u32(h, HH_VERSION) {
            HINT_VERSION => HINT_ENTRY_FIXED_LEN,
            HINT_VERSION_V1 => HINT_ENTRY_FIXED_LEN_V1,
            v => return Err(bad(format!("hint version {v}"))),
        };
        if get_u32(h, HH_SEGMENT_ID) != id {
            return Err(bad("hint names another segment".into()));
        }
        if get_u64(h, HH_SEGMENT_LEN) != segment_len {
            return Err(bad(format!(
                "hint describes {} bytes, the segment has {segment_len}",
                get_u64(h, HH_SEGMENT_LEN)
            )));
        }
        let body_end = bytes.len() - HINT_TRAILER_LEN;
        let crc = get_u32(&bytes, body_end);
        if crc != crc32fast::hash(&bytes[HINT_HEADER_LEN..body_end]) {
            return Err(bad("hint entries checksum mismatch".into()));
        }
        let count = get_u64(h, HH_COUNT);
        let mut hint = Hint {
            bytes,
            count,
            commits: Vec::new(),
            fixed_len,
        };
        let mut commits = Vec::new();
        // Walk once so later iteration can rely on well-formed entries.
        let mut n = 0u64;
        let mut last_offset = None;
        for e in hint.entries() {
            let e = e.map_err(|(at, why)| Error::Corrupt {
                path: path.clone(),
                offset: at,
                reason: why.into(),
            })?;
            if u64::from(e.offset) + e.header.record_len() as u64 > segment_len {
                return Err(bad("hint entry points past the end of the segment".into()));
            }
            // Recovery finds entries by offset with a binary search.
            if last_offset.is_some_and(|last| e.offset <= last) {
                return Err(bad("hint entries out of offset order".into()));
            }
            last_offset = Some(e.offset);
            if e.header.is_txn_commit() {
                let h = e.header;
                let first = h.txn_first_seq();
                if h.key_len != 0 || h.value_len != 0 || first == 0 || first >= h.seq {
                    return Err(bad("hint entry of a malformed commit record".into()));
                }
                commits.push((first, h.seq));
            }
            n += 1;
        }
        if n != count {
            return Err(bad(format!("hint header says {count} entries, found {n}")));
        }
        hint.commits = commits;
        Ok(Some(hint))
    }

    /// Where each entry starts in the file, in order (the file is whole and verified: every
    /// entry fits). Hint files stay far below 4 GiB: an entry per record of one segment.
    pub(crate) fn entry_positions(&self) -> Vec<u32> {
        let body = &self.bytes[..self.bytes.len() - HINT_TRAILER_LEN];
        let mut out = Vec::with_capacity(self.count.min(1 << 24) as usize);
        let mut at = HINT_HEADER_LEN;
        while at + self.fixed_len <= body.len() {
            out.push(at as u32);
            at += self.fixed_len + get_u32(&body[at..], 24) as usize;
        }
        out
    }

    /// The entry for the record at `offset`, found among `positions` (from
    /// [`Hint::entry_positions`]; entries are in offset order).
    pub(crate) fn entry_at_offset(&self, positions: &[u32], offset: u32) -> Option<HintEntry<'_>> {
        let body = &self.bytes[..self.bytes.len() - HINT_TRAILER_LEN];
        let off_of = |pos: &u32| get_u32(&body[*pos as usize..], 16);
        let i = positions.binary_search_by_key(&offset, off_of).ok()?;
        let at = positions[i] as usize;
        let fixed = self.fixed_len;
        let f = &body[at..at + fixed];
        let key_len = get_u32(f, 24) as usize;
        let key = body.get(at + fixed..at + fixed + key_len)?;
        Some(HintEntry {
            offset,
            header: decode_entry(f),
            key,
        })
    }

    /// The entries in order; an entry that does not fit yields its offset and the reason.
    pub fn entries(
        &self,
    ) -> impl Iterator<Item = std::result::Result<HintEntry<'_>, (u64, &'static str)>> {
        let body = &self.bytes[..self.bytes.len() - HINT_TRAILER_LEN];
        let mut at = HINT_HEADER_LEN;
        let mut failed = false;
        let fixed = self.fixed_len;
        std::iter::from_fn(move || {
            if failed || at >= body.len() {
                return None;
            }
            let pos = at as u64;
            if body.len() - at < fixed {
                failed = true;
                return Some(Err((pos, "truncated hint entry")));
            }
            let f = &body[at..at + fixed];
            let header = decode_entry(f);
            let key_len = header.key_len as usize;
            let key_start = at + fixed;
            if key_len > KEY_LEN_MAX || body.len() - key_start < key_len {
                failed = true;
                return Some(Err((pos, "hint entry key runs past the end")));
            }
            if header.value_len as usize > format::VALUE_LEN_MAX
                || header.flags & !format::FLAGS_KNOWN != 0
                || header.seq == 0
                || header.seq > format::SEQ_MAX
            {
                failed = true;
                return Some(Err((pos, "hint entry out of range")));
            }
            at = key_start + key_len;
            Some(Ok(HintEntry {
                offset: get_u32(f, 16),
                header,
                key: &body[key_start..key_start + key_len],
            }))
        })
    }
}

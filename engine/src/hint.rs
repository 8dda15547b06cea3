//! Hint files: for each sealed segment, the key, location, sequence number, expiry and flags
//! of every record, without the values, so `open` need not read the data.
//!
//! ```text
//! header (40 bytes)
//! 0   8  magic "FLINHNT\x01"
//! 8   4  format version (3; versions 1 and 2 are read too, see below)
//! 12  4  segment id
//! 16  8  segment length in bytes (the hint describes exactly this many bytes)
//! 24  8  entry count
//! 32  4  restart interval R (version 3; 0 before)
//! 36  4  CRC32 of bytes 0..36
//! entries, back to back, in record-offset order (version 3)
//! 0   1  control bits: which fields follow, which repeat the previous entry's
//! ..  1  flags                       when control & FLAGS, else 0
//! ..  v  seq, zigzag delta from the previous entry's seq   unless control & SEQ_NEXT (+1)
//! ..  v  key length                  unless control & KEY_LEN_SAME
//! ..  v  value length                unless control & VALUE_LEN_SAME
//! ..  v  expire_at_ms                when control & EXPIRE, else 0
//! ..  v  namespace                   when control & NS, else 0
//! ..  v  gap: bytes between the previous record's end and this record, when control & GAP
//! ..  .. key
//! trailer
//! 0   4  CRC32 of all entry bytes
//! ```
//!
//! `v` is a LEB128 varint. A record's offset is not stored: the first record starts after the
//! segment header, each next one where the previous ends plus its gap (0 but where recovery cut
//! damage out). Every R-th entry (the 0th, the R-th...) is a restart: "the previous entry" is
//! then all zeros, so an entry is found by offset by decoding at most R entries from the last
//! restart before it. A segment of 16-byte keys and 100-byte values takes 17 bytes an entry
//! (version 2 took 48).
//!
//! Versions 1 and 2 (written before) have fixed entries: seq u64, expire_at_ms u64, offset
//! u32, value length u32, key length u32, flags u8, and in version 2 a 24-bit namespace (29
//! and 32 bytes), then the key. Every such entry stands alone (a restart interval of 1).
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
/// The hint format version this build writes.
pub const HINT_VERSION: u32 = 3;
/// Version 2 hints (fixed 32-byte entries) are still read.
const HINT_VERSION_V2: u32 = 2;
/// Version 1 hints (written before records had namespaces) are still read: their entries are
/// [`HINT_ENTRY_FIXED_LEN_V1`] bytes, and every record is in namespace 0.
const HINT_VERSION_V1: u32 = 1;
/// Bytes of the hint file header.
pub const HINT_HEADER_LEN: usize = 40;
/// Bytes of a version 2 entry before its key.
const HINT_ENTRY_FIXED_LEN_V2: usize = 32;
/// Bytes of a version 1 entry before its key.
const HINT_ENTRY_FIXED_LEN_V1: usize = 29;
/// Bytes of the trailer (the entries' CRC32).
pub const HINT_TRAILER_LEN: usize = 4;
/// Every this many entries of a version 3 hint, one restarts from zeros: finding an entry by
/// offset decodes at most this many, and each restart costs a few bytes more than an entry.
pub const HINT_RESTART_INTERVAL: u32 = 16;
/// The largest restart interval a hint may declare (a damaged header could say anything).
const HINT_RESTART_INTERVAL_MAX: u32 = 1 << 12;
const HH_VERSION: usize = 8;
const HH_SEGMENT_ID: usize = 12;
const HH_SEGMENT_LEN: usize = 16;
const HH_COUNT: usize = 24;
const HH_RESTART: usize = 32;
const HH_CRC: usize = 36;
const _: () = assert!(HH_CRC + 4 == HINT_HEADER_LEN);

/// Control bit: the entry's seq is the previous entry's plus one (no seq field).
const C_SEQ_NEXT: u8 = 1 << 0;
/// Control bit: the key length is the previous entry's (no key length field).
const C_KEY_LEN_SAME: u8 = 1 << 1;
/// Control bit: the value length is the previous entry's (no value length field).
const C_VALUE_LEN_SAME: u8 = 1 << 2;
/// Control bit: a flags byte follows.
const C_FLAGS: u8 = 1 << 3;
/// Control bit: an expiry field follows.
const C_EXPIRE: u8 = 1 << 4;
/// Control bit: a namespace field follows.
const C_NS: u8 = 1 << 5;
/// Control bit: a gap field follows.
const C_GAP: u8 = 1 << 6;
const C_KNOWN: u8 =
    C_SEQ_NEXT | C_KEY_LEN_SAME | C_VALUE_LEN_SAME | C_FLAGS | C_EXPIRE | C_NS | C_GAP;
/// The most bytes an entry's fields take before its key.
const ENTRY_FIELDS_MAX: usize = 1 + 1 + 10 + 5 + 5 + 10 + 5 + 5;

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

/// What a version 3 entry is encoded against: the previous entry's fields (zeros at a
/// restart) and where the previous record ended.
#[derive(Clone, Copy, Debug)]
struct Prev {
    seq: u64,
    key_len: u32,
    value_len: u32,
    /// Where the previous record ended: the next one starts here plus its gap.
    end: u64,
}

impl Prev {
    fn start() -> Prev {
        Prev {
            seq: 0,
            key_len: 0,
            value_len: 0,
            end: format::SEGMENT_HEADER_LEN as u64,
        }
    }

    /// Forgets the fields, not the position (a restart).
    fn restart(&mut self) {
        *self = Prev {
            end: self.end,
            ..Prev::start()
        };
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint at `*at`, advancing it; `None` when it runs past the end or past 64 bits.
fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        let bits = u64::from(byte & 0x7f);
        if shift == 63 && bits > 1 {
            return None;
        }
        v |= bits << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn zigzag(d: i64) -> u64 {
    ((d << 1) ^ (d >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Encodes version 3 entries one after another.
struct Encoder {
    prev: Prev,
    count: u64,
}

impl Encoder {
    fn new() -> Encoder {
        Encoder {
            prev: Prev::start(),
            count: 0,
        }
    }

    /// Appends the entry of the record at `offset` (after the previous entry's record) to
    /// `out`.
    fn push(&mut self, out: &mut Vec<u8>, offset: u64, h: &RecordHeader, key: &[u8]) {
        if self.count % u64::from(HINT_RESTART_INTERVAL) == 0 {
            self.prev.restart();
        }
        let p = self.prev;
        let gap = offset.saturating_sub(p.end);
        let mut control = 0u8;
        if h.seq == p.seq.wrapping_add(1) {
            control |= C_SEQ_NEXT;
        }
        if h.key_len == p.key_len {
            control |= C_KEY_LEN_SAME;
        }
        if h.value_len == p.value_len {
            control |= C_VALUE_LEN_SAME;
        }
        if h.flags != 0 {
            control |= C_FLAGS;
        }
        if h.expire_at_ms != 0 {
            control |= C_EXPIRE;
        }
        if h.ns != 0 {
            control |= C_NS;
        }
        if gap != 0 {
            control |= C_GAP;
        }
        out.push(control);
        if h.flags != 0 {
            out.push(h.flags);
        }
        if control & C_SEQ_NEXT == 0 {
            put_varint(out, zigzag(h.seq.wrapping_sub(p.seq) as i64));
        }
        if control & C_KEY_LEN_SAME == 0 {
            put_varint(out, u64::from(h.key_len));
        }
        if control & C_VALUE_LEN_SAME == 0 {
            put_varint(out, u64::from(h.value_len));
        }
        if h.expire_at_ms != 0 {
            put_varint(out, h.expire_at_ms);
        }
        if h.ns != 0 {
            put_varint(out, u64::from(h.ns));
        }
        if gap != 0 {
            put_varint(out, gap);
        }
        out.extend_from_slice(key);
        self.prev = Prev {
            seq: h.seq,
            key_len: h.key_len,
            value_len: h.value_len,
            end: offset + h.record_len() as u64,
        };
        self.count += 1;
    }
}

/// Decodes the version 3 entry at `*at` of `body` against `prev`, advancing both; the reason
/// when it does not fit. The fields are checked against the format's limits.
fn decode_v3<'a>(
    body: &'a [u8],
    at: &mut usize,
    prev: &mut Prev,
) -> std::result::Result<HintEntry<'a>, &'static str> {
    let truncated = "truncated hint entry";
    let control = *body.get(*at).ok_or(truncated)?;
    *at += 1;
    if control & !C_KNOWN != 0 {
        return Err("unknown hint entry control bits");
    }
    let flags = if control & C_FLAGS != 0 {
        let f = *body.get(*at).ok_or(truncated)?;
        *at += 1;
        f
    } else {
        0
    };
    let mut field = |present: bool| -> std::result::Result<u64, &'static str> {
        if present {
            get_varint(body, at).ok_or(truncated)
        } else {
            Ok(0)
        }
    };
    let seq = if control & C_SEQ_NEXT != 0 {
        prev.seq.wrapping_add(1)
    } else {
        prev.seq.wrapping_add(unzigzag(field(true)?) as u64)
    };
    let key_len = if control & C_KEY_LEN_SAME != 0 {
        u64::from(prev.key_len)
    } else {
        field(true)?
    };
    let value_len = if control & C_VALUE_LEN_SAME != 0 {
        u64::from(prev.value_len)
    } else {
        field(true)?
    };
    let expire_at_ms = field(control & C_EXPIRE != 0)?;
    let ns = field(control & C_NS != 0)?;
    let gap = field(control & C_GAP != 0)?;
    if key_len > KEY_LEN_MAX as u64
        || value_len > format::VALUE_LEN_MAX as u64
        || ns > u64::from(format::NS_MAX)
        || gap > format::SEGMENT_SIZE_MAX_BYTES
    {
        return Err("hint entry out of range");
    }
    let key_start = *at;
    let key = body
        .get(key_start..key_start + key_len as usize)
        .ok_or("hint entry key runs past the end")?;
    *at = key_start + key_len as usize;
    let offset = prev.end + gap;
    let header = RecordHeader {
        seq,
        expire_at_ms,
        key_len: key_len as u32,
        value_len: value_len as u32,
        flags,
        ns: ns as u32,
    };
    let end = offset + header.record_len() as u64;
    let offset = u32::try_from(offset).map_err(|_| "hint entry out of range")?;
    *prev = Prev {
        seq,
        key_len: header.key_len,
        value_len: header.value_len,
        end,
    };
    Ok(HintEntry {
        offset,
        header,
        key,
    })
}

/// Decodes the version 1 or 2 entry at `*at` (`fixed` bytes before its key), advancing `at`.
fn decode_fixed<'a>(
    body: &'a [u8],
    at: &mut usize,
    fixed: usize,
) -> std::result::Result<HintEntry<'a>, &'static str> {
    let f = body.get(*at..*at + fixed).ok_or("truncated hint entry")?;
    let header = RecordHeader {
        seq: get_u64(f, 0),
        expire_at_ms: get_u64(f, 8),
        key_len: get_u32(f, 24),
        value_len: get_u32(f, 20),
        flags: f[28],
        ns: if fixed >= HINT_ENTRY_FIXED_LEN_V2 {
            u32::from(f[29]) | u32::from(f[30]) << 8 | u32::from(f[31]) << 16
        } else {
            0
        },
    };
    let key_len = header.key_len as usize;
    let key_start = *at + fixed;
    if key_len > KEY_LEN_MAX || body.len() - key_start < key_len {
        return Err("hint entry key runs past the end");
    }
    if header.value_len as usize > format::VALUE_LEN_MAX {
        return Err("hint entry out of range");
    }
    *at = key_start + key_len;
    Ok(HintEntry {
        offset: get_u32(f, 16),
        header,
        key: &body[key_start..key_start + key_len],
    })
}

/// How a hint's entries are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Version 3: varints against the previous entry, restarting every this many entries.
    Compact { restart: u32 },
    /// Versions 1 and 2: fixed fields of this many bytes, then the key.
    Fixed(usize),
}

/// Walks a hint's entries in order.
struct Walker {
    layout: Layout,
    at: usize,
    prev: Prev,
    n: u64,
}

impl Walker {
    fn new(layout: Layout) -> Walker {
        Walker {
            layout,
            at: HINT_HEADER_LEN,
            prev: Prev::start(),
            n: 0,
        }
    }

    /// The next entry of `body` (the file without its trailer), `None` at its end.
    fn next<'a>(
        &mut self,
        body: &'a [u8],
    ) -> Option<std::result::Result<HintEntry<'a>, (u64, &'static str)>> {
        if self.at >= body.len() {
            return None;
        }
        let pos = self.at as u64;
        let e = match self.layout {
            Layout::Compact { restart } => {
                if self.n % u64::from(restart) == 0 {
                    self.prev.restart();
                }
                decode_v3(body, &mut self.at, &mut self.prev)
            }
            Layout::Fixed(fixed) => decode_fixed(body, &mut self.at, fixed),
        };
        self.n += 1;
        Some(e.and_then(check_entry).map_err(|why| (pos, why)))
    }
}

/// Checks what any entry must satisfy, whatever its layout.
fn check_entry(e: HintEntry<'_>) -> std::result::Result<HintEntry<'_>, &'static str> {
    let h = &e.header;
    if h.flags & !format::FLAGS_KNOWN != 0 || h.seq == 0 || h.seq > format::SEQ_MAX {
        return Err("hint entry out of range");
    }
    Ok(e)
}

/// The hint entries of a segment, collected as its records are appended (the log does this
/// while memory is short, so the hint need not be written by reading the segment back from
/// disk once it is sealed).
pub(crate) struct HintBuilder {
    entries: Vec<u8>,
    encoder: Encoder,
}

impl Default for HintBuilder {
    fn default() -> HintBuilder {
        HintBuilder {
            entries: Vec::new(),
            encoder: Encoder::new(),
        }
    }
}

impl HintBuilder {
    /// Adds the record at `offset`, which lies after every record added before.
    pub(crate) fn push(&mut self, offset: u64, h: &RecordHeader, key: &[u8]) {
        debug_assert!(
            offset >= self.encoder.prev.end,
            "hint entries in offset order"
        );
        debug_assert_eq!(key.len(), h.key_len as usize);
        self.encoder.push(&mut self.entries, offset, h, key);
    }

    /// The entries as a [`Hint`] in memory, as if read from a hint file (no file is written).
    pub(crate) fn into_hint(self) -> Hint {
        let mut bytes = vec![0u8; HINT_HEADER_LEN];
        bytes.extend_from_slice(&self.entries);
        bytes.extend_from_slice(&[0u8; HINT_TRAILER_LEN]);
        let layout = Layout::Compact {
            restart: HINT_RESTART_INTERVAL,
        };
        let mut hint = Hint {
            bytes,
            count: self.encoder.count,
            commits: Vec::new(),
            layout,
            offsets: Vec::new(),
            restarts: Vec::new(),
        };
        // Entries this build encoded a moment ago: the walk cannot fail.
        let walked = hint.walk();
        debug_assert!(walked.is_ok(), "{walked:?}");
        hint
    }
}

/// The entries of `records` (offset, header, key, in offset order) encoded as this build
/// writes them, for tests that write hint files by hand. An offset before the end of the
/// record before is taken as that end (the layout cannot say otherwise).
pub fn encode_hint_entries<'a>(
    records: impl IntoIterator<Item = (u64, RecordHeader, &'a [u8])>,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = Encoder::new();
    for (off, h, key) in records {
        encoder.push(&mut out, off, &h, key);
    }
    out
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
            b.encoder.count
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
    put_u32(&mut header, HH_RESTART, HINT_RESTART_INTERVAL);
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
    let mut encoder = Encoder::new();
    let mut entry = Vec::with_capacity(ENTRY_FIELDS_MAX + KEY_LEN_MAX);
    let mut failure = None;
    let end = scan_records(
        seg.bytes_from(0),
        format::SEGMENT_HEADER_LEN as u64,
        |off, h, rec| {
            if failure.is_some() {
                return;
            }
            entry.clear();
            encoder.push(&mut entry, off, h, format::record_key(h, rec));
            crc.update(&entry);
            if let Err(e) = w.write_all(&entry) {
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
        ScanEnd::Clean { .. } => Ok(encoder.count),
    }
}

/// A hint file read into memory and verified as a whole.
pub struct Hint {
    bytes: Vec<u8>,
    pub count: u64,
    /// The transaction commit records among the entries: (first seq, commit seq), each
    /// checked as a record header is (see `format::FLAG_TXN_COMMIT`).
    pub commits: Vec<(u64, u64)>,
    layout: Layout,
    /// Each entry's record offset, in order (filled by `walk`).
    offsets: Vec<u32>,
    /// Where each restart entry starts in `bytes`: entry `i * restart`'s position.
    restarts: Vec<u32>,
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
        let layout = match get_u32(h, HH_VERSION) {
            HINT_VERSION => match get_u32(h, HH_RESTART) {
                r @ 1..=HINT_RESTART_INTERVAL_MAX => Layout::Compact { restart: r },
                r => return Err(bad(format!("hint restart interval {r}"))),
            },
            HINT_VERSION_V2 => Layout::Fixed(HINT_ENTRY_FIXED_LEN_V2),
            HINT_VERSION_V1 => Layout::Fixed(HINT_ENTRY_FIXED_LEN_V1),
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
            layout,
            offsets: Vec::new(),
            restarts: Vec::new(),
        };
        let last_end = hint.walk().map_err(|(at, why)| Error::Corrupt {
            path: path.clone(),
            offset: at,
            reason: why.into(),
        })?;
        if last_end > segment_len {
            return Err(bad("hint entry points past the end of the segment".into()));
        }
        let n = hint.offsets.len() as u64;
        if n != count {
            return Err(bad(format!("hint header says {count} entries, found {n}")));
        }
        Ok(Some(hint))
    }

    /// Walks every entry once, checking each, so later reads can rely on well-formed entries:
    /// fills `offsets`, `restarts` and `commits`; returns where the last record ends.
    fn walk(&mut self) -> std::result::Result<u64, (u64, &'static str)> {
        let body = &self.bytes[..self.bytes.len() - HINT_TRAILER_LEN];
        let restart = match self.layout {
            Layout::Compact { restart } => restart as usize,
            Layout::Fixed(_) => 1,
        };
        let mut offsets = Vec::with_capacity(self.count.min(1 << 24) as usize);
        let mut restarts = Vec::with_capacity(offsets.capacity() / restart + 1);
        let mut commits = Vec::new();
        let mut last_end = 0u64;
        let mut w = Walker::new(self.layout);
        loop {
            let pos = w.at;
            let Some(e) = w.next(body) else { break };
            let e = e?;
            // Entries are found by offset with a binary search. (Version 3 offsets increase
            // by construction; the old layouts store them.)
            if u64::from(e.offset) < last_end {
                return Err((pos as u64, "hint entries out of offset order"));
            }
            if offsets.len() % restart == 0 {
                restarts.push(pos as u32);
            }
            offsets.push(e.offset);
            last_end = u64::from(e.offset) + e.header.record_len() as u64;
            if e.header.is_txn_commit() {
                let h = e.header;
                let first = h.txn_first_seq();
                if h.key_len != 0 || h.value_len != 0 || first == 0 || first >= h.seq {
                    return Err((pos as u64, "hint entry of a malformed commit record"));
                }
                commits.push((first, h.seq));
            }
        }
        self.offsets = offsets;
        self.restarts = restarts;
        self.commits = commits;
        Ok(last_end)
    }

    /// The entry for the record at `offset`, if one starts there.
    pub(crate) fn entry_at_offset(&self, offset: u32) -> Option<HintEntry<'_>> {
        let i = self.offsets.binary_search(&offset).ok()?;
        let body = &self.bytes[..self.bytes.len() - HINT_TRAILER_LEN];
        let restart = match self.layout {
            Layout::Compact { restart } => restart as usize,
            Layout::Fixed(_) => 1,
        };
        let first = i - i % restart;
        let mut w = Walker::new(self.layout);
        w.at = *self.restarts.get(first / restart)? as usize;
        w.n = first as u64;
        let mut e = None;
        for &offset in &self.offsets[first..=i] {
            let mut entry = w.next(body)?.ok()?;
            // A walker started at a restart does not know where the record before it ended,
            // so it gets the offsets wrong; the full walk in `walk` got them right.
            entry.offset = offset;
            e = Some(entry);
        }
        e
    }

    /// The entries in order; an entry that does not fit yields its offset and the reason.
    pub fn entries(
        &self,
    ) -> impl Iterator<Item = std::result::Result<HintEntry<'_>, (u64, &'static str)>> {
        let body = &self.bytes[..self.bytes.len() - HINT_TRAILER_LEN];
        let mut w = Walker::new(self.layout);
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let e = w.next(body)?;
            failed = e.is_err();
            Some(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records as a log or compaction lays them out: mostly alike, with every field's unusual
    /// case somewhere (seq jumps and falls, flags, expiry, namespaces, gaps of cut damage).
    fn records() -> Vec<(u64, RecordHeader, Vec<u8>)> {
        let mut out = Vec::new();
        let mut off = format::SEGMENT_HEADER_LEN as u64;
        let mut seq = 1u64;
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..1000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seq = match x % 11 {
                0 => seq + 1 + x % 100_000,
                1 => seq.saturating_sub(x % 50).max(1),
                2 => (1 << 40) + x % 1000,
                _ => seq + 1,
            };
            let key = format!("key:{:0w$}", i, w = if x % 7 == 0 { 3 } else { 8 });
            let h = RecordHeader {
                seq,
                expire_at_ms: if x % 5 == 0 { 1_780_000_000_000 + i } else { 0 },
                key_len: key.len() as u32,
                value_len: if x % 3 == 0 { (x % 5000) as u32 } else { 100 },
                flags: match x % 13 {
                    0 => format::FLAG_TOMBSTONE,
                    1 => format::FLAG_BATCH_NEXT,
                    _ => 0,
                },
                ns: if x % 17 == 0 {
                    (x % u64::from(format::NS_MAX)) as u32
                } else {
                    0
                },
            };
            if x % 19 == 0 {
                off += 1 + x % 4096;
            }
            out.push((off, h, key.into_bytes()));
            off += h.record_len() as u64;
        }
        out
    }

    fn file(id: u32, segment_len: u64, version: u32, restart: u32, entries: &[u8]) -> Vec<u8> {
        let mut header = [0u8; HINT_HEADER_LEN];
        header[..8].copy_from_slice(&HINT_MAGIC);
        put_u32(&mut header, HH_VERSION, version);
        put_u32(&mut header, HH_SEGMENT_ID, id);
        put_u64(&mut header, HH_SEGMENT_LEN, segment_len);
        let count = if version == HINT_VERSION {
            records().len() as u64
        } else {
            (entries.len() / 1000) as u64
        };
        put_u64(&mut header, HH_COUNT, count);
        put_u32(&mut header, HH_RESTART, restart);
        let hcrc = crc32fast::hash(&header[..HH_CRC]);
        put_u32(&mut header, HH_CRC, hcrc);
        let mut b = header.to_vec();
        b.extend_from_slice(entries);
        b.extend_from_slice(&crc32fast::hash(entries).to_le_bytes());
        b
    }

    fn segment_len(recs: &[(u64, RecordHeader, Vec<u8>)]) -> u64 {
        let (off, h, _) = recs.last().unwrap();
        off + h.record_len() as u64
    }

    #[test]
    fn entries_read_back_in_order_and_by_offset() {
        let recs = records();
        let bytes = encode_hint_entries(recs.iter().map(|(o, h, k)| (*o, *h, k.as_slice())));
        let dir = tempfile::tempdir().unwrap();
        let len = segment_len(&recs);
        std::fs::write(
            hint_path(dir.path(), 7),
            file(7, len, HINT_VERSION, HINT_RESTART_INTERVAL, &bytes),
        )
        .unwrap();
        let hint = Hint::load(dir.path(), 7, len).unwrap().unwrap();
        let got: Vec<_> = hint.entries().map(|e| e.unwrap()).collect();
        assert_eq!(got.len(), recs.len());
        for ((off, h, key), e) in recs.iter().zip(&got) {
            assert_eq!(
                (u64::from(e.offset), e.header, e.key),
                (*off, *h, key.as_slice())
            );
            let found = hint.entry_at_offset(*off as u32).unwrap();
            assert_eq!(found, *e);
            assert!(hint.entry_at_offset(*off as u32 + 1).is_none());
        }
        // The builder's in-memory hint is the same.
        let mut b = HintBuilder::default();
        for (o, h, k) in &recs {
            b.push(*o, h, k);
        }
        let built = b.into_hint();
        assert_eq!(built.offsets, hint.offsets);
        assert_eq!(built.entry_at_offset(recs[500].0 as u32), Some(got[500]));
        // Alike records take a byte and their key.
        let alike = records()
            .iter()
            .filter(|(_, h, _)| h.value_len == 100)
            .count();
        assert!(
            bytes.len() < alike * 17 + (recs.len() - alike) * 40,
            "{}",
            bytes.len()
        );
    }

    #[test]
    fn version_2_hints_are_still_read() {
        let recs = records();
        let mut entries = Vec::new();
        for (off, h, key) in &recs {
            let mut f = [0u8; HINT_ENTRY_FIXED_LEN_V2];
            put_u64(&mut f, 0, h.seq);
            put_u64(&mut f, 8, h.expire_at_ms);
            put_u32(&mut f, 16, *off as u32);
            put_u32(&mut f, 20, h.value_len);
            put_u32(&mut f, 24, h.key_len);
            f[28] = h.flags;
            f[29..32].copy_from_slice(&h.ns.to_le_bytes()[..3]);
            entries.extend_from_slice(&f);
            entries.extend_from_slice(key);
        }
        let dir = tempfile::tempdir().unwrap();
        let len = segment_len(&recs);
        let mut b = file(3, len, HINT_VERSION_V2, 0, &entries);
        put_u64(&mut b, HH_COUNT, recs.len() as u64);
        let hcrc = crc32fast::hash(&b[..HH_CRC]);
        put_u32(&mut b, HH_CRC, hcrc);
        std::fs::write(hint_path(dir.path(), 3), b).unwrap();
        let hint = Hint::load(dir.path(), 3, len).unwrap().unwrap();
        for (off, h, key) in &recs {
            let e = hint.entry_at_offset(*off as u32).unwrap();
            assert_eq!((e.header, e.key), (*h, key.as_slice()));
        }
        assert_eq!(hint.entries().count(), recs.len());
    }

    /// Every truncation and every flipped byte of the entries (with the checksum made to
    /// match, as damage that a checksum misses would be) is an error or a well-formed hint,
    /// never a panic; and a hint that loads still answers every lookup without one.
    #[test]
    fn damaged_entries_are_refused_without_panics() {
        let recs: Vec<_> = records().into_iter().take(40).collect();
        let good = encode_hint_entries(recs.iter().map(|(o, h, k)| (*o, *h, k.as_slice())));
        let len = segment_len(&recs);
        let dir = tempfile::tempdir().unwrap();
        let mut refused = 0;
        let mut cases = Vec::new();
        for cut in 0..good.len() {
            cases.push(good[..cut].to_vec());
        }
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut b = good.clone();
                b[i] ^= bit;
                cases.push(b);
            }
        }
        for entries in cases {
            let mut b = file(9, len, HINT_VERSION, HINT_RESTART_INTERVAL, &entries);
            put_u64(&mut b, HH_COUNT, recs.len() as u64);
            let hcrc = crc32fast::hash(&b[..HH_CRC]);
            put_u32(&mut b, HH_CRC, hcrc);
            std::fs::write(hint_path(dir.path(), 9), &b).unwrap();
            match Hint::load(dir.path(), 9, len) {
                Err(_) => refused += 1,
                Ok(h) => {
                    let h = h.unwrap();
                    for (off, _, _) in &recs {
                        let _ = h.entry_at_offset(*off as u32);
                    }
                    assert_eq!(h.entries().filter(|e| e.is_ok()).count(), recs.len());
                }
            }
        }
        assert!(refused > good.len(), "most damage is refused: {refused}");
    }
}

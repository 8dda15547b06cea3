//! The grammar that turns fuzz input into a data directory.
//!
//! Random bytes almost never pass a CRC, so most of the input is structure: segment headers
//! and records that the harness encodes with correct checksums (through the engine's own
//! `format` code), mixed with raw bytes, zero runs, headers whose verified lengths lie about
//! what follows, bit flips and cuts. Names cover segments with any id, unfinished `.tmp` files,
//! hint files, a `LOCK` with content, a directory where a segment should be, and names the
//! engine must ignore.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use arbitrary::{Arbitrary, Result, Unstructured};
use flin_engine::testing::{
    put_u32, put_u64, segment_file_name, RecordHeader, SegmentHeader, SegmentKind, FLAG_FLUSH,
    FLAG_TOMBSTONE, FLAG_TXN, FLAG_TXN_COMMIT, RECORD_HEADER_LEN, RH_BODY_CRC, RH_FLAGS, RH_HEADER_CRC, RH_KEY_LEN, RH_SEQ,
    RH_VALUE_LEN, SEGMENT_HEADER_LEN, SH_CRC, SH_KIND, SH_SEGMENT_ID,
};
use flin_engine::testing::{
    encode_hint_entries, hint_file_name, HINT_HEADER_LEN, HINT_MAGIC, HINT_RESTART_INTERVAL,
    HINT_VERSION,
};

/// Directory entries per input.
pub const FILES_MAX: usize = 6;
/// A file stops growing here, so one iteration stays short whatever the input says.
pub const FILE_LEN_MAX_BYTES: usize = 256 * 1024;
/// Small segment ids are drawn from 1..=SMALL_ID_MAX, so files often share a store.
const SMALL_ID_MAX: u32 = 8;
/// Names the engine must ignore, or must handle as something other than a segment.
const OTHER_NAMES: [&str; 7] = [
    "0000000000.seg",
    "1.seg",
    "00000000001.seg",
    "000000000a.seg",
    "0000000001.seg.bak",
    "quarantine",
    "0000000001.SEG",
];

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Name {
    /// `<id>.seg` with a small id.
    Segment(u8),
    /// `<id>.seg` with any id, including 0 (ignored) and `u32::MAX`.
    SegmentId(u32),
    /// `<id>.seg.tmp`: an unfinished compaction output or prepared segment.
    Tmp(u8),
    /// `<id>.hint`.
    Hint(u8),
    /// The lock file, with content.
    Lock,
    /// A directory named like a segment.
    Directory(u8),
    Other(u8),
}

fn small_id(n: u8) -> u32 {
    1 + u32::from(n) % SMALL_ID_MAX
}

impl Name {
    pub fn file_name(self) -> String {
        match self {
            Name::Segment(n) | Name::Directory(n) => segment_file_name(small_id(n)),
            Name::SegmentId(id) => format!("{id:010}.seg"),
            Name::Tmp(n) => format!("{}.tmp", segment_file_name(small_id(n))),
            Name::Hint(n) => hint_file_name(small_id(n)),
            Name::Lock => "LOCK".into(),
            Name::Other(n) => OTHER_NAMES[usize::from(n) % OTHER_NAMES.len()].into(),
        }
    }

    /// The id a segment header in this file claims by default.
    fn id(self) -> u32 {
        match self {
            Name::Segment(n) | Name::Directory(n) | Name::Tmp(n) | Name::Hint(n) => small_id(n),
            Name::SegmentId(id) => id,
            Name::Lock | Name::Other(_) => 1,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Kind {
    Log,
    Compacted,
    Unknown(u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Seq {
    /// One past the previous record's, across files: what the engine writes.
    Next,
    Repeat,
    Back(u8),
    Exact(u64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Expiry {
    Never,
    Past,
    /// A day from now.
    Future,
    Exact(u64),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Key {
    /// One of a few short keys, so records of different files meet.
    Small(u8),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Flags {
    Put,
    Tombstone,
    Flush,
    /// A record of a transaction: applied only with a commit record covering its seq.
    Txn,
    /// A commit record (its expiry names the transaction's first seq).
    TxnCommit,
    Raw(u8),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Chunk {
    Raw(Vec<u8>),
    Zeros(u16),
    /// A segment header; `id` defaults to the one the file name says.
    Header {
        kind: Kind,
        id: Option<u32>,
    },
    /// A record with both checksums right (its fields may still break the format's rules).
    Record {
        seq: Seq,
        expiry: Expiry,
        key: Key,
        value: Vec<u8>,
        flags: Flags,
    },
    /// A record header with a correct header checksum over lengths that need not match what
    /// follows: recovery must not trust them further than the format allows.
    LyingHeader {
        seq: Seq,
        key_len: u32,
        value_len: u32,
        flags: Flags,
        body_crc: u32,
    },
    /// A whole hint file (header, entries, trailer) with correct checksums, describing the
    /// segment of the file's id as encoded so far in this input, true or with lies.
    Hint(HintSpec),
    /// XORs one byte, counted back from the end of the file so far.
    Flip {
        back: u16,
        xor: u8,
    },
    /// Cuts bytes off the end of the file so far.
    Cut {
        back: u16,
    },
}

/// A hint file. By default it tells the truth about the segment as encoded so far; the spec
/// can drop or reorder entries and lie in any field that its checksums cover.
#[derive(Arbitrary, Debug, Clone)]
pub struct HintSpec {
    /// One entry per record, in order; otherwise the entries listed in `entries`.
    pub every_record: bool,
    /// The fixed 32-byte entries of version 2 hints (which flin still reads) instead of the
    /// compact ones it writes.
    pub version_2: bool,
    pub entries: Vec<u8>,
    pub lies: Vec<(u8, HintLie)>,
    pub segment_id: Option<u32>,
    pub segment_len: Option<u64>,
    pub count: Option<u64>,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum HintLie {
    Seq(Seq),
    Expiry(Expiry),
    Offset(u32),
    ValueLen(u32),
    Key(Key),
    Flags(Flags),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct FileSpec {
    pub name: Name,
    pub chunks: Vec<Chunk>,
}

/// A whole data directory.
#[derive(Debug, Clone)]
pub struct DirSpec {
    pub files: Vec<FileSpec>,
}

impl<'a> Arbitrary<'a> for DirSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let files = u
            .arbitrary_iter::<FileSpec>()?
            .take(FILES_MAX)
            .collect::<Result<Vec<_>>>()?;
        Ok(DirSpec { files })
    }
}

/// State carried from one record to the next while encoding a directory.
struct Encoder {
    last_seq: u64,
    now_ms: u64,
    /// Per segment id: the records encoded so far (offset, header, key), for hints to describe.
    records: BTreeMap<u32, Vec<(u32, RecordHeader, Vec<u8>)>>,
    /// Per segment id: the length of its file as last encoded.
    lengths: BTreeMap<u32, u64>,
}

impl DirSpec {
    /// Creates the directory's entries in `dir` (a later entry of the same name replaces an
    /// earlier one). Expiries "in the future" count from `now_ms`, so two copies of a directory
    /// made from one input are identical.
    ///
    /// # Errors
    /// The I/O error of creating an entry.
    pub fn write(&self, dir: &Path, now_ms: u64) -> io::Result<()> {
        let mut enc = Encoder {
            last_seq: 0,
            now_ms,
            records: BTreeMap::new(),
            lengths: BTreeMap::new(),
        };
        for f in &self.files {
            let path = dir.join(f.name.file_name());
            let bytes = enc.file(f);
            if path.is_dir() {
                continue;
            }
            if matches!(f.name, Name::Directory(_)) {
                if path.exists() {
                    std::fs::remove_file(&path)?;
                }
                std::fs::create_dir(&path)?;
            } else {
                std::fs::write(&path, bytes)?;
            }
        }
        Ok(())
    }
}

impl Encoder {
    fn file(&mut self, f: &FileSpec) -> Vec<u8> {
        let mut b = Vec::new();
        for c in &f.chunks {
            if b.len() >= FILE_LEN_MAX_BYTES {
                break;
            }
            self.chunk(f.name.id(), c, &mut b);
        }
        b.truncate(FILE_LEN_MAX_BYTES);
        if matches!(f.name, Name::Segment(_) | Name::SegmentId(_)) {
            self.lengths.insert(f.name.id(), b.len() as u64);
        }
        b
    }

    fn chunk(&mut self, file_id: u32, c: &Chunk, b: &mut Vec<u8>) {
        match c {
            Chunk::Raw(bytes) => b.extend_from_slice(bytes),
            Chunk::Zeros(n) => b.resize(b.len() + usize::from(*n), 0),
            Chunk::Header { kind, id } => {
                b.extend_from_slice(&segment_header(*kind, id.unwrap_or(file_id)))
            }
            Chunk::Record {
                seq,
                expiry,
                key,
                value,
                flags,
            } => {
                let key = key_bytes(key);
                let h = RecordHeader {
                    seq: self.seq(*seq),
                    expire_at_ms: self.expiry(*expiry),
                    key_len: key.len() as u32,
                    value_len: value.len() as u32,
                    flags: flags.bits(),
                    ns: 0,
                };
                let at = b.len();
                b.resize(at + h.record_len(), 0);
                h.encode_record(&key, value, &mut b[at..]);
                self.records
                    .entry(file_id)
                    .or_default()
                    .push((at as u32, h, key));
            }
            Chunk::LyingHeader {
                seq,
                key_len,
                value_len,
                flags,
                body_crc,
            } => {
                let mut h = [0u8; RECORD_HEADER_LEN];
                put_u32(&mut h, RH_BODY_CRC, *body_crc);
                put_u64(&mut h, RH_SEQ, self.seq(*seq));
                put_u32(&mut h, RH_KEY_LEN, *key_len);
                put_u32(&mut h, RH_VALUE_LEN, *value_len);
                h[RH_FLAGS] = flags.bits();
                let crc = record_header_crc(&h);
                put_u32(&mut h, RH_HEADER_CRC, crc);
                b.extend_from_slice(&h);
            }
            Chunk::Hint(spec) => self.hint(file_id, spec, b),
            Chunk::Flip { back, xor } => {
                if let Some(i) = b.len().checked_sub(1 + usize::from(*back)) {
                    b[i] ^= xor;
                }
            }
            Chunk::Cut { back } => b.truncate(b.len().saturating_sub(usize::from(*back))),
        }
    }

    fn hint(&mut self, file_id: u32, spec: &HintSpec, b: &mut Vec<u8>) {
        let id = spec.segment_id.unwrap_or(file_id);
        let records = self.records.get(&file_id).cloned().unwrap_or_default();
        let mut entries: Vec<(u32, RecordHeader, Vec<u8>)> = if spec.every_record {
            records
        } else if records.is_empty() {
            Vec::new()
        } else {
            spec.entries
                .iter()
                .map(|&i| records[usize::from(i) % records.len()].clone())
                .collect()
        };
        for (i, lie) in &spec.lies {
            let n = entries.len().max(1);
            let Some(e) = entries.get_mut(usize::from(*i) % n) else {
                break;
            };
            match lie {
                HintLie::Seq(s) => e.1.seq = self.seq(*s),
                HintLie::Expiry(x) => e.1.expire_at_ms = self.expiry(*x),
                HintLie::Offset(o) => e.0 = *o,
                HintLie::ValueLen(v) => e.1.value_len = *v,
                HintLie::Key(k) => e.2 = key_bytes(k),
                HintLie::Flags(f) => e.1.flags = f.bits(),
            }
        }
        let body = if spec.version_2 {
            let mut body = Vec::new();
            for (offset, h, key) in &entries {
                body.extend_from_slice(&h.seq.to_le_bytes());
                body.extend_from_slice(&h.expire_at_ms.to_le_bytes());
                body.extend_from_slice(&offset.to_le_bytes());
                body.extend_from_slice(&h.value_len.to_le_bytes());
                body.extend_from_slice(&(key.len() as u32).to_le_bytes());
                body.push(h.flags);
                body.extend_from_slice(&h.ns.to_le_bytes()[..3]);
                body.extend_from_slice(key);
            }
            body
        } else {
            // The compact layout stores no offsets, so a lie about one moves the entry: the
            // entries go in offset order, and one that overlaps the one before lands after it.
            entries.sort_by_key(|e| e.0);
            encode_hint_entries(entries.iter().map(|(off, h, key)| {
                let h = RecordHeader {
                    key_len: key.len() as u32,
                    ..*h
                };
                (u64::from(*off), h, key.as_slice())
            }))
        };
        let segment_len = spec
            .segment_len
            .unwrap_or_else(|| self.lengths.get(&file_id).copied().unwrap_or(0));
        let count = spec.count.unwrap_or(entries.len() as u64);
        let mut header = [0u8; HINT_HEADER_LEN];
        header[..8].copy_from_slice(&HINT_MAGIC);
        put_u32(&mut header, 8, if spec.version_2 { 2 } else { HINT_VERSION });
        put_u32(&mut header, 32, HINT_RESTART_INTERVAL);
        put_u32(&mut header, 12, id);
        put_u64(&mut header, 16, segment_len);
        put_u64(&mut header, 24, count);
        let hcrc = crc(&header[..36]);
        put_u32(&mut header, 36, hcrc);
        b.extend_from_slice(&header);
        b.extend_from_slice(&body);
        b.extend_from_slice(&crc(&body).to_le_bytes());
    }

    fn seq(&mut self, s: Seq) -> u64 {
        let seq = match s {
            Seq::Next => self.last_seq.wrapping_add(1),
            Seq::Repeat => self.last_seq,
            Seq::Back(n) => self.last_seq.saturating_sub(u64::from(n)),
            Seq::Exact(v) => v,
        };
        self.last_seq = seq;
        seq
    }

    fn expiry(&self, e: Expiry) -> u64 {
        match e {
            Expiry::Never => 0,
            Expiry::Past => 1,
            Expiry::Future => self.now_ms + 86_400_000,
            Expiry::Exact(v) => v,
        }
    }
}

impl Flags {
    fn bits(self) -> u8 {
        match self {
            Flags::Put => 0,
            Flags::Tombstone => FLAG_TOMBSTONE,
            Flags::Flush => FLAG_FLUSH,
            Flags::Txn => FLAG_TXN,
            Flags::TxnCommit => FLAG_TXN_COMMIT,
            Flags::Raw(b) => b,
        }
    }
}

/// A segment header with a correct checksum; the kind may be one the engine does not know.
fn segment_header(kind: Kind, id: u32) -> [u8; SEGMENT_HEADER_LEN] {
    let known = |k| {
        SegmentHeader {
            kind: k,
            segment_id: id,
        }
        .encode()
    };
    match kind {
        Kind::Log => known(SegmentKind::Log),
        Kind::Compacted => known(SegmentKind::Compacted),
        Kind::Unknown(k) => {
            let mut b = known(SegmentKind::Log);
            put_u32(&mut b, SH_KIND, k);
            put_u64(&mut b, SH_SEGMENT_ID, u64::from(id));
            let crc = crc(&b[..SH_CRC]);
            put_u32(&mut b, SH_CRC, crc);
            b
        }
    }
}

fn key_bytes(k: &Key) -> Vec<u8> {
    match k {
        Key::Small(n) => format!("k{}", n % 8).into_bytes(),
        Key::Bytes(k) => k.clone(),
    }
}

/// `header_crc` as `docs/FORMAT.md` defines it: `body_crc`, then bytes 8..36.
fn record_header_crc(h: &[u8; RECORD_HEADER_LEN]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&h[RH_BODY_CRC..RH_HEADER_CRC]);
    c.update(&h[RH_SEQ..]);
    c.finalize()
}

fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

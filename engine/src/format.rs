//! The bytes on disk. `docs/FORMAT.md` draws the same layout; change both together.
//!
//! All integers are little-endian. A segment file is a 32-byte [`SegmentHeader`] followed by
//! records. A record is a 36-byte [`RecordHeader`] followed by the key and the value.
//!
//! Two checksums protect a record: `body_crc` covers the key and the value, and `header_crc`
//! covers every other header byte, `body_crc` included, so the chain covers the whole record and
//! the lengths are verified before they are used to find anything. A scan never trusts a length
//! that `header_crc` has not verified. `body_crc` depends only on the key and value, so writers
//! compute it before taking the log lock.

use crate::error::{Error, Result};

/// "FLINSEG" and a format byte, the first 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"FLINSEG\x01";
/// Bumped on any incompatible change to segment or record layout. Version 2 gave records a
/// namespace (database) in what were version 1's reserved header bytes; version 3 added
/// transactions ([`FLAG_TXN`], [`FLAG_TXN_COMMIT`]), which a version 2 reader would take for
/// damage.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest version this build still reads: a version 1 segment's records are version 2
/// records of namespace 0 (their reserved bytes are zero), and a version 2 segment is a
/// version 3 one without transactions, so both are read as they are.
pub const FORMAT_VERSION_OLDEST: u32 = 1;

/// Bytes of the segment header at the start of every segment file.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Offsets inside the segment header.
pub const SH_MAGIC: usize = 0;
/// Offset of the format version in the segment header.
pub const SH_VERSION: usize = 8;
/// Offset of the segment kind in the segment header.
pub const SH_KIND: usize = 12;
/// Offset of the segment id in the segment header.
pub const SH_SEGMENT_ID: usize = 16;
/// Offset of the reserved (zero) bytes in the segment header.
pub const SH_RESERVED: usize = 24;
/// Offset of the CRC32 of the header's other bytes.
pub const SH_CRC: usize = 28;
const _: () = assert!(SH_CRC + 4 == SEGMENT_HEADER_LEN);
const _: () = assert!(SH_RESERVED + 4 == SH_CRC);

/// Bytes of the fixed header before every record's key and value.
pub const RECORD_HEADER_LEN: usize = 36;
/// Offsets inside the record header.
pub const RH_BODY_CRC: usize = 0;
/// Offset of the CRC32 of the header's other bytes (`body_crc` included).
pub const RH_HEADER_CRC: usize = 4;
/// Offset of the sequence number.
pub const RH_SEQ: usize = 8;
/// Offset of the expiry (Unix milliseconds, 0 = never).
pub const RH_EXPIRE_AT_MS: usize = 16;
/// Offset of the key length.
pub const RH_KEY_LEN: usize = 24;
/// Offset of the value length.
pub const RH_VALUE_LEN: usize = 28;
/// Offset of the flags byte.
pub const RH_FLAGS: usize = 32;
/// Offset of the namespace (database), 24 bits; 0 in every version 1 record.
pub const RH_NS: usize = 33;
const _: () = assert!(RH_NS + 3 == RECORD_HEADER_LEN);
/// Highest namespace a record may name (24 bits).
pub const NS_MAX: u32 = (1 << 24) - 1;
/// Most databases an engine serves (each is a namespace; the map of them is an array).
pub const DATABASES_MAX: u32 = 1 << 16;
const _: () = assert!(RH_HEADER_CRC + 4 == RH_SEQ);

/// Record flag: the record deletes its key (no value).
pub const FLAG_TOMBSTONE: u8 = 1 << 0;
/// Record flag: every record with a lower sequence number is void (FLUSHALL). No key, no value.
pub const FLAG_FLUSH: u8 = 1 << 1;
/// Record flag, in log segments: more records of the same atomic batch (MSET, RENAME...)
/// follow this one. Recovery applies a batch only when its last record, which lacks the flag,
/// is present. Compacted segments copy records whole and ignore the flag: every batch they
/// copy from was complete.
pub const FLAG_BATCH_NEXT: u8 = 1 << 2;
/// Record flag, with [`FLAG_FLUSH`] only: the flush voids the older records of its own
/// namespace (FLUSHDB) instead of every namespace's (FLUSHALL).
pub const FLAG_FLUSH_NS: u8 = 1 << 3;
/// Record flag: the record belongs to a transaction (EXEC), which recovery applies only when
/// the transaction's commit record ([`FLAG_TXN_COMMIT`]) is on disk, wherever that lies: a
/// transaction may span segments, unlike a batch. Compacted segments copy records whole and
/// ignore the flag: compaction copies only records of committed transactions.
pub const FLAG_TXN: u8 = 1 << 4;
/// Record flag, alone: the commit record of a transaction. No key, no value, namespace 0;
/// `expire_at_ms` holds the sequence number of the transaction's first record
/// ([`RecordHeader::txn_first_seq`]), so it commits exactly the [`FLAG_TXN`] records whose
/// sequence numbers lie from there to its own.
pub const FLAG_TXN_COMMIT: u8 = 1 << 5;
/// Flags of records that no index entry points at while they still matter: tombstones and
/// flush records (shadowing older versions), transaction commits (committing older records).
pub const FLAGS_UNINDEXED: u8 = FLAG_TOMBSTONE | FLAG_FLUSH | FLAG_TXN_COMMIT;
/// Every flag flin writes; any other bit set is damage.
pub const FLAGS_KNOWN: u8 =
    FLAG_TOMBSTONE | FLAG_FLUSH | FLAG_BATCH_NEXT | FLAG_FLUSH_NS | FLAG_TXN | FLAG_TXN_COMMIT;

/// Longest key accepted, in bytes.
pub const KEY_LEN_MAX: usize = 64 * 1024;
/// Longest value accepted, in bytes (Redis's proto-max-bulk-len default).
pub const VALUE_LEN_MAX: usize = 512 * 1024 * 1024;
/// The largest record, so a segment offset plus a record always fits the index's u32 offset.
pub const RECORD_LEN_MAX: usize = RECORD_HEADER_LEN + KEY_LEN_MAX + VALUE_LEN_MAX;
/// Segments are at most this large, so offsets fit in the index's `u32`.
pub const SEGMENT_SIZE_MAX_BYTES: u64 = 1 << 30;
/// Segments are at least this large (tests use small segments to exercise rolling).
pub const SEGMENT_SIZE_MIN_BYTES: u64 = 4096;
const _: () = assert!(SEGMENT_SIZE_MAX_BYTES as usize + RECORD_LEN_MAX < u32::MAX as usize);
/// The most bytes one atomic batch may append. A batch lands in one segment, so its offsets
/// must fit the index's `u32` even when it follows a full segment's worth of records.
pub const BATCH_LEN_MAX: usize = 1 << 30;
const _: () = assert!(SEGMENT_SIZE_MAX_BYTES as usize + BATCH_LEN_MAX < u32::MAX as usize);

/// Highest segment id. Ids come from file names and headers, untrusted: anything above is
/// damage, and the id counter can never wrap (2^30 segments of even 4 KiB is 4 TiB written).
pub const SEGMENT_ID_MAX: u32 = 1 << 30;
/// Highest sequence number a record may carry; above is damage, so `seq + 1` never wraps.
pub const SEQ_MAX: u64 = 1 << 62;

/// What wrote a segment: the write-ahead log, or compaction (which copies older records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum SegmentKind {
    /// Written by the log: records in sequence order.
    Log = 1,
    /// Written by compaction: older records copied whole.
    Compacted = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The segment header's fields.
pub struct SegmentHeader {
    /// Who wrote the segment.
    pub kind: SegmentKind,
    /// The segment's id, as its file name says too.
    pub segment_id: u32,
}

impl SegmentHeader {
    /// The header's bytes, checksum included.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[SH_MAGIC..SH_MAGIC + 8].copy_from_slice(&SEGMENT_MAGIC);
        put_u32(&mut b, SH_VERSION, FORMAT_VERSION);
        put_u32(&mut b, SH_KIND, self.kind as u32);
        put_u64(&mut b, SH_SEGMENT_ID, u64::from(self.segment_id));
        let crc = crc32fast::hash(&b[..SH_CRC]);
        put_u32(&mut b, SH_CRC, crc);
        b
    }

    /// Decodes and verifies a segment header; `what` names the file for errors.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the magic, checksum, version or kind is wrong.
    pub fn decode(b: &[u8], what: &std::path::Path) -> Result<SegmentHeader> {
        let corrupt = |reason: String| Error::Corrupt {
            path: what.to_path_buf(),
            offset: 0,
            reason,
        };
        if b.len() < SEGMENT_HEADER_LEN {
            return Err(corrupt(format!(
                "file is {} bytes, shorter than the {SEGMENT_HEADER_LEN}-byte segment header",
                b.len()
            )));
        }
        if b[SH_MAGIC..SH_MAGIC + 8] != SEGMENT_MAGIC {
            return Err(corrupt("not a flin segment (bad magic)".into()));
        }
        let crc = get_u32(b, SH_CRC);
        if crc != crc32fast::hash(&b[..SH_CRC]) {
            return Err(corrupt("segment header checksum mismatch".into()));
        }
        let version = get_u32(b, SH_VERSION);
        if version > FORMAT_VERSION {
            return Err(corrupt(format!(
                "written by a newer flin: format version {version}, this build reads versions \
                 {FORMAT_VERSION_OLDEST} to {FORMAT_VERSION}"
            )));
        }
        if version < FORMAT_VERSION_OLDEST {
            return Err(corrupt(format!(
                "format version {version}, this build reads versions {FORMAT_VERSION_OLDEST} \
                 to {FORMAT_VERSION}"
            )));
        }
        let kind = match get_u32(b, SH_KIND) {
            1 => SegmentKind::Log,
            2 => SegmentKind::Compacted,
            k => return Err(corrupt(format!("unknown segment kind {k}"))),
        };
        let id = get_u64(b, SH_SEGMENT_ID);
        let segment_id = u32::try_from(id)
            .ok()
            .filter(|&id| id != 0 && id <= SEGMENT_ID_MAX)
            .ok_or_else(|| corrupt(format!("segment id {id} out of range")))?;
        Ok(SegmentHeader { kind, segment_id })
    }
}

/// The fixed part of a record. `key_len` and `value_len` are checked against the limits on
/// decode, so a verified header never asks for more than [`RECORD_LEN_MAX`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The record's sequence number: a higher one is newer.
    pub seq: u64,
    /// Expiry as Unix time in milliseconds; 0 = never.
    pub expire_at_ms: u64,
    /// Bytes of the key.
    pub key_len: u32,
    /// Bytes of the value.
    pub value_len: u32,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// The namespace (database) of the key; 0 for the default one. At most [`NS_MAX`].
    pub ns: u32,
}

/// Why the bytes at an offset are not a valid record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`RECORD_HEADER_LEN`] bytes remain.
    Short,
    /// The header bytes are all zero: preallocated space never written.
    Zero,
    /// The header checksum does not match: torn or damaged bytes.
    Bad(&'static str),
    /// The checksum matches but a field is out of range: not something flin writes, and not
    /// what a torn write leaves, so it is damage even at the end of the newest segment.
    Invalid(&'static str),
}

impl RecordHeader {
    /// The record deletes its key.
    pub fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }

    /// The record voids older records: every namespace's (FLUSHALL), or with
    /// [`FLAG_FLUSH_NS`] its own namespace's (FLUSHDB).
    pub fn is_flush(&self) -> bool {
        self.flags & FLAG_FLUSH != 0
    }

    /// The flush voids only its own namespace's older records (see [`RecordHeader::is_flush`]).
    pub fn flushes_ns_only(&self) -> bool {
        self.flags & FLAG_FLUSH_NS != 0
    }

    /// More records of the same atomic batch follow (meaningful in log segments only).
    pub fn batch_continues(&self) -> bool {
        self.flags & FLAG_BATCH_NEXT != 0
    }

    /// The record belongs to a transaction (meaningful in log segments only).
    pub fn in_txn(&self) -> bool {
        self.flags & FLAG_TXN != 0
    }

    /// The record commits a transaction (see [`FLAG_TXN_COMMIT`]).
    pub fn is_txn_commit(&self) -> bool {
        self.flags & FLAG_TXN_COMMIT != 0
    }

    /// For a commit record, the sequence number of its transaction's first record.
    pub fn txn_first_seq(&self) -> u64 {
        debug_assert!(self.is_txn_commit());
        self.expire_at_ms
    }

    /// Header plus key plus value, in bytes.
    pub fn record_len(&self) -> usize {
        RECORD_HEADER_LEN + self.key_len as usize + self.value_len as usize
    }

    /// Writes the whole record (header, key, value) into `out`, which must be exactly
    /// `record_len()` bytes long.
    pub fn encode_record(&self, key: &[u8], value: &[u8], out: &mut [u8]) {
        self.encode_record_with(body_crc(key, value), key, value, out);
    }

    /// As [`RecordHeader::encode_record`], with `body_crc(key, value)` computed beforehand.
    pub fn encode_record_with(&self, body_crc: u32, key: &[u8], value: &[u8], out: &mut [u8]) {
        assert_eq!(key.len(), self.key_len as usize);
        assert_eq!(value.len(), self.value_len as usize);
        assert_eq!(out.len(), self.record_len());
        let (h, body) = out.split_at_mut(RECORD_HEADER_LEN);
        put_u64(h, RH_SEQ, self.seq);
        put_u64(h, RH_EXPIRE_AT_MS, self.expire_at_ms);
        put_u32(h, RH_KEY_LEN, self.key_len);
        put_u32(h, RH_VALUE_LEN, self.value_len);
        h[RH_FLAGS] = self.flags;
        assert!(self.ns <= NS_MAX);
        h[RH_NS..RECORD_HEADER_LEN].copy_from_slice(&self.ns.to_le_bytes()[..3]);
        put_u32(h, RH_BODY_CRC, body_crc);
        let header_crc = header_crc(h);
        put_u32(h, RH_HEADER_CRC, header_crc);
        body[..key.len()].copy_from_slice(key);
        body[key.len()..].copy_from_slice(value);
        debug_assert_eq!(crc32fast::hash(body), body_crc);
    }

    /// Decodes the header at the start of `b` and verifies its own checksum and ranges. The key
    /// and value are not checked here: see [`verify_record`].
    pub fn decode(b: &[u8]) -> std::result::Result<RecordHeader, HeaderError> {
        if b.len() < RECORD_HEADER_LEN {
            return Err(HeaderError::Short);
        }
        let h = &b[..RECORD_HEADER_LEN];
        if h.iter().all(|&x| x == 0) {
            return Err(HeaderError::Zero);
        }
        if get_u32(h, RH_HEADER_CRC) != header_crc(h) {
            return Err(HeaderError::Bad("record header checksum mismatch"));
        }
        let header = RecordHeader {
            seq: get_u64(h, RH_SEQ),
            expire_at_ms: get_u64(h, RH_EXPIRE_AT_MS),
            key_len: get_u32(h, RH_KEY_LEN),
            value_len: get_u32(h, RH_VALUE_LEN),
            flags: h[RH_FLAGS],
            ns: get_ns(h),
        };
        if header.flags & !FLAGS_KNOWN != 0 {
            return Err(HeaderError::Invalid("unknown record flags"));
        }
        if header.flushes_ns_only() && !header.is_flush() {
            return Err(HeaderError::Invalid("namespace flush flag without flush"));
        }
        if header.is_flush() && !header.flushes_ns_only() && header.ns != 0 {
            return Err(HeaderError::Invalid("FLUSHALL record with a namespace"));
        }
        if header.key_len as usize > KEY_LEN_MAX {
            return Err(HeaderError::Invalid("key length over KEY_LEN_MAX"));
        }
        if header.value_len as usize > VALUE_LEN_MAX {
            return Err(HeaderError::Invalid("value length over VALUE_LEN_MAX"));
        }
        if header.seq == 0 || header.seq > SEQ_MAX {
            return Err(HeaderError::Invalid("sequence number out of range"));
        }
        if (header.is_tombstone() || header.is_flush()) && header.value_len != 0 {
            return Err(HeaderError::Invalid("tombstone with a value"));
        }
        if header.is_flush() && (header.key_len != 0 || header.is_tombstone()) {
            return Err(HeaderError::Invalid("flush record with a key"));
        }
        if header.is_txn_commit()
            && (header.flags != FLAG_TXN_COMMIT
                || header.key_len != 0
                || header.value_len != 0
                || header.ns != 0
                || header.expire_at_ms == 0
                || header.expire_at_ms >= header.seq)
        {
            return Err(HeaderError::Invalid(
                "transaction commit record with other flags, a key, a value or a bad range",
            ));
        }
        Ok(header)
    }
}

/// Checks `body_crc` of a whole record whose header already decoded; `b` starts at the
/// record and holds at least `header.record_len()` bytes.
pub fn verify_record(header: &RecordHeader, b: &[u8]) -> bool {
    let len = header.record_len();
    debug_assert!(b.len() >= len);
    get_u32(b, RH_BODY_CRC) == crc32fast::hash(&b[RECORD_HEADER_LEN..len])
}

/// CRC32 of a record's key followed by its value.
pub fn body_crc(key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(value);
    h.finalize()
}

/// CRC32 of the header bytes other than `header_crc` itself: `body_crc`, then bytes 8..36.
fn header_crc(h: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&h[RH_BODY_CRC..RH_HEADER_CRC]);
    c.update(&h[RH_SEQ..RECORD_HEADER_LEN]);
    c.finalize()
}

/// The key of a record that starts at `b[0]`.
pub fn record_key<'a>(header: &RecordHeader, b: &'a [u8]) -> &'a [u8] {
    &b[RECORD_HEADER_LEN..RECORD_HEADER_LEN + header.key_len as usize]
}

/// The value of a record that starts at `b[0]`.
pub fn record_value<'a>(header: &RecordHeader, b: &'a [u8]) -> &'a [u8] {
    let start = RECORD_HEADER_LEN + header.key_len as usize;
    &b[start..start + header.value_len as usize]
}

/// The 24-bit namespace at [`RH_NS`] of a record header.
fn get_ns(h: &[u8]) -> u32 {
    u32::from(h[RH_NS]) | u32::from(h[RH_NS + 1]) << 8 | u32::from(h[RH_NS + 2]) << 16
}

/// Reads the fields of a record header that was verified when it was written or recovered.
/// Used on the read path, where the index only points at verified records.
pub fn trusted_header(b: &[u8]) -> RecordHeader {
    RecordHeader {
        seq: get_u64(b, RH_SEQ),
        expire_at_ms: get_u64(b, RH_EXPIRE_AT_MS),
        key_len: get_u32(b, RH_KEY_LEN),
        value_len: get_u32(b, RH_VALUE_LEN),
        flags: b[RH_FLAGS],
        ns: get_ns(b),
    }
}

/// Stores `v` little-endian at `at`.
pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Stores `v` little-endian at `at`.
pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Loads a little-endian `u32` from `at`.
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Loads a little-endian `u64` from `at`.
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `0000000042.seg`: fixed width so a directory listing sorts by id.
pub fn segment_file_name(id: u32) -> String {
    format!("{id:010}.seg")
}

/// The segment id of a file name made by [`segment_file_name`], or `None`.
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 10 || !stem.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    stem.parse()
        .ok()
        .filter(|&id| id != 0 && id <= SEGMENT_ID_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sample() -> (RecordHeader, Vec<u8>) {
        let key = b"hello";
        let value = b"world!";
        let h = RecordHeader {
            seq: 7,
            expire_at_ms: 1234,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            flags: 0,
            ns: 0,
        };
        let mut buf = vec![0u8; h.record_len()];
        h.encode_record(key, value, &mut buf);
        (h, buf)
    }

    #[test]
    fn record_round_trips() {
        let (h, buf) = sample();
        let d = RecordHeader::decode(&buf).unwrap();
        assert_eq!(d, h);
        assert!(verify_record(&d, &buf));
        assert_eq!(record_key(&d, &buf), b"hello");
        assert_eq!(record_value(&d, &buf), b"world!");
        assert_eq!(trusted_header(&buf), h);
    }

    #[test]
    fn the_namespace_round_trips_and_flush_flags_are_checked() {
        let mut h = RecordHeader {
            seq: 9,
            expire_at_ms: 0,
            key_len: 1,
            value_len: 1,
            flags: 0,
            ns: NS_MAX,
        };
        let mut buf = vec![0u8; h.record_len()];
        h.encode_record(b"k", b"v", &mut buf);
        assert_eq!(RecordHeader::decode(&buf).unwrap(), h);
        assert_eq!(trusted_header(&buf), h);
        let encode = |h: &RecordHeader| {
            let mut b = vec![0u8; h.record_len()];
            h.encode_record(&[], &[], &mut b);
            RecordHeader::decode(&b)
        };
        h.key_len = 0;
        h.value_len = 0;
        h.flags = FLAG_FLUSH | FLAG_FLUSH_NS;
        assert!(encode(&h).is_ok(), "FLUSHDB of a namespace");
        h.flags = FLAG_FLUSH;
        assert!(encode(&h).is_err(), "FLUSHALL names no namespace");
        h.ns = 0;
        assert!(encode(&h).is_ok());
        h.flags = FLAG_FLUSH_NS;
        assert!(encode(&h).is_err(), "namespace flush flag without flush");
    }

    #[test]
    fn a_commit_record_must_stand_alone_and_name_an_earlier_first_record() {
        let commit = |seq, first, flags, key: &[u8]| {
            let h = RecordHeader {
                seq,
                expire_at_ms: first,
                key_len: key.len() as u32,
                value_len: 0,
                flags,
                ns: 0,
            };
            let mut b = vec![0u8; h.record_len()];
            h.encode_record(key, &[], &mut b);
            RecordHeader::decode(&b)
        };
        let ok = commit(10, 3, FLAG_TXN_COMMIT, b"").unwrap();
        assert!(ok.is_txn_commit() && ok.txn_first_seq() == 3);
        assert!(
            commit(10, 10, FLAG_TXN_COMMIT, b"").is_err(),
            "first at itself"
        );
        assert!(commit(10, 0, FLAG_TXN_COMMIT, b"").is_err(), "no first");
        assert!(commit(10, 3, FLAG_TXN_COMMIT | FLAG_TXN, b"").is_err());
        assert!(commit(10, 3, FLAG_TXN_COMMIT, b"k").is_err(), "a key");
        assert!(commit(10, 0, FLAG_TXN | FLAG_TOMBSTONE, b"k").is_ok());
    }

    #[test]
    fn a_newer_segment_version_is_refused_naming_both() {
        let mut b = SegmentHeader {
            kind: SegmentKind::Log,
            segment_id: 1,
        }
        .encode();
        put_u32(&mut b, SH_VERSION, FORMAT_VERSION + 1);
        let crc = crc32fast::hash(&b[..SH_CRC]);
        put_u32(&mut b, SH_CRC, crc);
        let e = SegmentHeader::decode(&b, std::path::Path::new("x.seg")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("version {}", FORMAT_VERSION + 1)),
            "{msg}"
        );
        assert!(msg.contains(&format!("to {FORMAT_VERSION}")), "{msg}");
        put_u32(&mut b, SH_VERSION, 1);
        let crc = crc32fast::hash(&b[..SH_CRC]);
        put_u32(&mut b, SH_CRC, crc);
        assert!(SegmentHeader::decode(&b, std::path::Path::new("x.seg")).is_ok());
    }

    #[test]
    fn every_header_byte_flip_is_detected() {
        let (_, buf) = sample();
        for i in 0..RECORD_HEADER_LEN {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                let detected = match RecordHeader::decode(&b) {
                    Err(_) => true,
                    Ok(h) => !verify_record(&h, &b),
                };
                assert!(
                    detected,
                    "flip of bit {bit} in header byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn body_byte_flip_is_detected_by_body_crc() {
        let (_, buf) = sample();
        for i in RECORD_HEADER_LEN..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            let h = RecordHeader::decode(&b).expect("header untouched");
            assert!(
                !verify_record(&h, &b),
                "flip in body byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn zero_and_short_headers_are_told_apart() {
        assert_eq!(
            RecordHeader::decode(&[0u8; RECORD_HEADER_LEN]),
            Err(HeaderError::Zero)
        );
        assert_eq!(RecordHeader::decode(&[1u8; 3]), Err(HeaderError::Short));
    }

    #[test]
    fn oversized_lengths_are_rejected_even_with_a_valid_checksum() {
        let mut b = [0u8; RECORD_HEADER_LEN];
        put_u64(&mut b, RH_SEQ, 1);
        put_u32(&mut b, RH_KEY_LEN, KEY_LEN_MAX as u32 + 1);
        let crc = header_crc(&b);
        put_u32(&mut b, RH_HEADER_CRC, crc);
        assert!(matches!(
            RecordHeader::decode(&b),
            Err(HeaderError::Invalid("key length over KEY_LEN_MAX"))
        ));
    }

    #[test]
    fn segment_header_round_trips_and_detects_flips() {
        let h = SegmentHeader {
            kind: SegmentKind::Compacted,
            segment_id: 42,
        };
        let b = h.encode();
        let p = Path::new("x.seg");
        assert_eq!(SegmentHeader::decode(&b, p).unwrap(), h);
        for i in 0..SEGMENT_HEADER_LEN {
            let mut c = b;
            c[i] ^= 0x01;
            assert!(SegmentHeader::decode(&c, p).is_err(), "flip in byte {i}");
        }
        assert!(SegmentHeader::decode(&b[..10], p).is_err());
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(segment_file_name(42), "0000000042.seg");
        assert_eq!(parse_segment_file_name("0000000042.seg"), Some(42));
        assert_eq!(parse_segment_file_name("0000000000.seg"), None);
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000042.hint"), None);
    }
}

//! Redis's RDB encoding, for what flin stores: strings. [`FileReader`] reads whole RDB files
//! (a replica's full sync), [`FileWriter`] writes them (a primary's). `crc64` is the checksum Redis puts
//! after DUMP payloads and RDB files, `lzf` the compression of long strings. This module
//! writes and reads the pieces (lengths, strings in their plain, integer and LZF forms) and
//! DUMP payloads; it does no I/O, so replication can run whole RDB files through the same
//! [`Reader`].
//!
//! DUMP payload: `<type byte> <object> <RDB version, u16 LE> <CRC-64 of all before, u64 LE>`.
//! A string object is one RDB string: a length (below) and the bytes; or `0xC0`/`0xC1`/`0xC2`
//! and a signed 8/16/32-bit little-endian integer; or `0xC3`, the compressed length, the
//! plain length and the LZF bytes.
//!
//! Lengths: `00xxxxxx` (6 bits), `01xxxxxx xxxxxxxx` (14 bits, big-endian), `0x80` and a
//! big-endian u32, `0x81` and a big-endian u64; `11xxxxxx` marks a special string encoding.
//!
//! Nothing a payload declares sizes an allocation by itself: plain strings are slices of the
//! payload, and LZF output grows only as the compressed bytes produce it, up to the caller's
//! limit.

mod crc64;
mod file;
mod lzf;
mod write;

use std::borrow::Cow;

pub use crc64::crc64;
pub use file::{FileError, FileReader, Item, RDB_FILE_VERSION_MAX};
pub use write::{FileWriter, RDB_WRITE_VERSION};

use crate::protocol::parse::string_to_i64;

/// The RDB version Redis 7.0 writes (and the newest it reads).
pub const RDB_VERSION: u16 = 10;
/// The object type of a string.
pub const TYPE_STRING: u8 = 0;

// The opcodes of an RDB file (`RDB_OPCODE_*`), for `file` and `write`.
const OP_SLOT_INFO: u8 = 0xF4;
const OP_FUNCTION2: u8 = 0xF5;
const OP_FUNCTION_PRE_GA: u8 = 0xF6;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_EXPIRETIME: u8 = 0xFD;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;

const LEN_6BIT: u8 = 0;
const LEN_14BIT: u8 = 1;
const LEN_32BIT: u8 = 0x80;
const LEN_64BIT: u8 = 0x81;
const ENCODED: u8 = 3;
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;
/// Redis does not try to compress shorter strings.
const COMPRESS_LEN_MIN: usize = 21;
/// Nor to store as an integer longer ones.
const INT_ENCODED_LEN_MAX: usize = 11;
/// A DUMP payload's footer: RDB version and CRC-64.
const FOOTER_LEN: usize = 10;

/// Why RDB bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The input ends inside an item.
    Truncated,
    /// A length byte of no known form.
    BadLength(u8),
    /// A special string encoding of no known kind.
    BadEncoding(u8),
    /// LZF data that does not decompress to its declared length.
    BadLzf,
    /// A string longer than the caller allows.
    TooLong {
        /// Its declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Truncated => write!(f, "unexpected end of RDB data"),
            Error::BadLength(b) => write!(f, "unknown RDB length encoding {b:#04x}"),
            Error::BadEncoding(e) => write!(f, "unknown RDB string encoding {e}"),
            Error::BadLzf => write!(f, "invalid LZF compressed string"),
            Error::TooLong { len, max } => {
                write!(f, "RDB string of {len} bytes is over the limit of {max}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Appends an RDB length.
pub fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push((LEN_14BIT << 6) | (len >> 8) as u8);
        out.push(len as u8);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(LEN_32BIT);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends `s` as Redis's `rdbSaveRawString` does: a short canonical integer (`string2ll`
/// accepts it, so it prints back the same) that fits 32
/// bits as an integer, a string over 20 bytes LZF-compressed when that saves at least 4
/// bytes (and `compress` is on), anything else as it is.
pub fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= INT_ENCODED_LEN_MAX {
        if let Some(v) = string_to_i64(s).and_then(|v| i32::try_from(v).ok()) {
            return write_int(out, v);
        }
    }
    if compress && s.len() >= COMPRESS_LEN_MIN {
        if let Some(c) = lzf::compress(s, s.len() - 4) {
            out.push((ENCODED << 6) | ENC_LZF);
            write_len(out, c.len() as u64);
            write_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn write_int(out: &mut Vec<u8>, v: i32) {
    if let Ok(b) = i8::try_from(v) {
        out.extend_from_slice(&[(ENCODED << 6) | ENC_INT8, b as u8]);
    } else if let Ok(h) = i16::try_from(v) {
        out.push((ENCODED << 6) | ENC_INT16);
        out.extend_from_slice(&h.to_le_bytes());
    } else {
        out.push((ENCODED << 6) | ENC_INT32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A length as read: a plain length, or the kind of a special string encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// A length.
    Plain(u64),
    /// `11xxxxxx`: the low six bits.
    Encoded(u8),
}

/// Reads RDB items from bytes in memory.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    /// [`Error::Truncated`] when fewer are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(Error::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// One byte.
    ///
    /// # Errors
    /// [`Error::Truncated`] at the end.
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    /// An RDB length, or the kind of a special string encoding.
    ///
    /// # Errors
    /// The input ends, or the first byte is of no known form.
    pub fn len(&mut self) -> Result<Len, Error> {
        let first = self.u8()?;
        Ok(match first >> 6 {
            ENCODED => Len::Encoded(first & 0x3f),
            LEN_6BIT => Len::Plain(u64::from(first & 0x3f)),
            LEN_14BIT => Len::Plain((u64::from(first & 0x3f) << 8) | u64::from(self.u8()?)),
            _ if first == LEN_32BIT => Len::Plain(u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            ))),
            _ if first == LEN_64BIT => Len::Plain(u64::from_be_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            _ => return Err(Error::BadLength(first)),
        })
    }

    /// A plain length.
    ///
    /// # Errors
    /// As [`Reader::len`], and [`Error::BadLength`] for a special encoding.
    pub fn plain_len(&mut self) -> Result<u64, Error> {
        match self.len()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(e) => Err(Error::BadLength((ENCODED << 6) | e)),
        }
    }

    /// An RDB string in any of its forms, at most `max_len` bytes once decoded: borrowed from
    /// the input when stored plain, built otherwise.
    ///
    /// # Errors
    /// Truncated or damaged input, an unknown encoding, or a string over `max_len`.
    pub fn string(&mut self, max_len: u64) -> Result<Cow<'a, [u8]>, Error> {
        let too_long = |len: u64| Error::TooLong { len, max: max_len };
        match self.len()? {
            Len::Plain(n) => {
                if n > max_len {
                    return Err(too_long(n));
                }
                let n = usize::try_from(n).map_err(|_| Error::Truncated)?;
                Ok(Cow::Borrowed(self.take(n)?))
            }
            Len::Encoded(ENC_INT8) => Ok(int_string(i64::from(self.u8()? as i8))),
            Len::Encoded(ENC_INT16) => {
                let v = i16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
                Ok(int_string(i64::from(v)))
            }
            Len::Encoded(ENC_INT32) => {
                let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                Ok(int_string(i64::from(v)))
            }
            Len::Encoded(ENC_LZF) => {
                let compressed = self.plain_len()?;
                let plain = self.plain_len()?;
                if plain > max_len {
                    return Err(too_long(plain));
                }
                let c = usize::try_from(compressed).map_err(|_| Error::Truncated)?;
                let data = self.take(c)?;
                let plain = usize::try_from(plain).map_err(|_| too_long(plain))?;
                lzf::decompress(data, plain)
                    .map(Cow::Owned)
                    .ok_or(Error::BadLzf)
            }
            Len::Encoded(other) => Err(Error::BadEncoding(other)),
        }
    }
}

fn int_string(v: i64) -> Cow<'static, [u8]> {
    Cow::Owned(v.to_string().into_bytes())
}

/// DUMP of a string value: its RDB form, the RDB version and the CRC-64, as Redis 7.0 (with
/// `rdbcompression yes`) serialises it.
pub fn dump_string(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len().min(1 << 20) + 16);
    out.push(TYPE_STRING);
    write_string(&mut out, value, true);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why RESTORE refused a payload, as Redis words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// Too short, from a newer RDB version, or the checksum does not match.
    VersionOrChecksum,
    /// The checksum matches but the object cannot be loaded: damaged, or of a type flin does
    /// not have (lists, hashes...).
    BadData,
}

/// Redis's `verifyDumpPayload`: the footer's version is one Redis 7.0 reads and the CRC-64
/// matches.
pub fn verify_payload(payload: &[u8]) -> Result<(), PayloadError> {
    let Some(body_len) = payload.len().checked_sub(8) else {
        return Err(PayloadError::VersionOrChecksum);
    };
    if payload.len() < FOOTER_LEN {
        return Err(PayloadError::VersionOrChecksum);
    }
    let footer = &payload[payload.len() - FOOTER_LEN..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    if version > RDB_VERSION || crc64(0, &payload[..body_len]) != crc {
        return Err(PayloadError::VersionOrChecksum);
    }
    Ok(())
}

/// The string a verified DUMP payload holds, at most `max_len` bytes. Like Redis, the object
/// is read from the whole payload: bytes left before the footer are ignored, and an object
/// that runs into the footer takes its bytes.
pub fn payload_string(payload: &[u8], max_len: u64) -> Result<Cow<'_, [u8]>, PayloadError> {
    let mut r = Reader::new(payload);
    match r.u8() {
        Ok(TYPE_STRING) => r.string(max_len).map_err(|_| PayloadError::BadData),
        _ => Err(PayloadError::BadData),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore(p: &[u8]) -> Result<Vec<u8>, PayloadError> {
        verify_payload(p)?;
        payload_string(p, 1 << 20).map(Cow::into_owned)
    }

    #[test]
    fn dump_encodes_like_redis() {
        // redis-server 7.0: DUMP of "hello", of "-1", of "300" and of "70000".
        assert_eq!(&dump_string(b"hello")[..7], b"\x00\x05hello");
        assert_eq!(&dump_string(b"-1")[..3], b"\x00\xc0\xff");
        assert_eq!(&dump_string(b"300")[..4], b"\x00\xc1\x2c\x01");
        assert_eq!(&dump_string(b"70000")[..6], b"\x00\xc2\x70\x11\x01\x00");
        // Not canonical, or over 32 bits: stored as text.
        assert_eq!(&dump_string(b"007")[..5], b"\x00\x03007");
        assert_eq!(&dump_string(b"4294967296")[..2], b"\x00\x0a");
        let p = dump_string(b"hello");
        assert_eq!(&p[p.len() - 10..p.len() - 8], &RDB_VERSION.to_le_bytes());
    }

    #[test]
    fn payloads_round_trip() {
        let long: Vec<u8> = b"abcdefgh".repeat(100);
        let noise: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        for v in [
            &b""[..],
            b"0",
            b"-128",
            b"-129",
            b"32767",
            b"-2147483648",
            b"2147483648",
            b"12345678901",
            b"x",
            &[b'y'; 63],
            &[b'z'; 64],
            &long,
            &noise,
            &[7u8; 20000],
        ] {
            assert_eq!(restore(&dump_string(v)).as_deref(), Ok(v), "{v:?}");
        }
        assert!(dump_string(&long).len() < 100, "compressed");
    }

    #[test]
    fn lengths_in_every_form() {
        for n in [
            0u64,
            63,
            64,
            16383,
            16384,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
        ] {
            let mut b = Vec::new();
            write_len(&mut b, n);
            let mut r = Reader::new(&b);
            assert_eq!(r.plain_len(), Ok(n));
            assert_eq!(r.remaining(), 0);
        }
        assert_eq!(Reader::new(&[0x82]).len(), Err(Error::BadLength(0x82)));
        assert_eq!(Reader::new(&[0x40]).len(), Err(Error::Truncated));
    }

    #[test]
    fn damaged_payloads_are_refused_without_panic() {
        let good = dump_string(&b"compress me please, compress me please".repeat(3));
        assert!(restore(&good).is_ok());
        for cut in 0..good.len() {
            assert!(restore(&good[..cut]).is_err());
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert_eq!(
                restore(&bad),
                Err(PayloadError::VersionOrChecksum),
                "byte {i}"
            );
        }
        // Valid checksums over bad objects: another type, a string longer than the payload,
        // an unknown encoding, LZF claiming more than it makes, a string over the limit.
        for body in [
            &b"\x02\x01\x00"[..],
            b"\x00\x3fabc",
            b"\x00\xc4",
            b"\x00\xc3\x02\x0a\x00a",
            b"\x00\x80\x7f\xff\xff\xff",
        ] {
            let mut p = body.to_vec();
            p.extend_from_slice(&RDB_VERSION.to_le_bytes());
            let crc = crc64(0, &p);
            p.extend_from_slice(&crc.to_le_bytes());
            assert_eq!(restore(&p), Err(PayloadError::BadData), "{body:?}");
        }
        let mut newer = b"\x00\x01a".to_vec();
        newer.extend_from_slice(&(RDB_VERSION + 1).to_le_bytes());
        let crc = crc64(0, &newer);
        newer.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(restore(&newer), Err(PayloadError::VersionOrChecksum));
    }
}

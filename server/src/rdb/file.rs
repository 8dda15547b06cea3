//! Whole RDB files, read as a stream: what a replica receives in a full sync (from redis-server
//! or from flin) and what `redis-cli --rdb` saves.
//!
//! File: `REDIS` and a four-digit version, then items until the `0xFF` opcode, then (from
//! version 5) the CRC-64 of every byte before it, little-endian (zero when the writer turned
//! checksums off). An item is an opcode (aux field, database selector, hash table sizes, an
//! expiry, LRU idle time or LFU frequency, module aux data, a function library, slot info) or
//! a key: its type byte, the key (an RDB string) and the value in that type's encoding.
//!
//! flin stores strings: [`FileReader::next_item`] hands out string keys with their expiry and
//! the aux fields, and reads past every other type (lists, sets, sorted sets, hashes in all
//! their encodings, streams with their consumer groups, module values written with the module
//! opcodes), naming each such key so the caller can count and log it. Only what cannot be
//! read past fails: a module value in the old format without opcodes, and the pre-release
//! encodings of Redis 7.4's hash field expiry.
//!
//! Nothing the file declares sizes an allocation by itself: a string's buffer grows as its
//! bytes arrive, up to the caller's limit, and skipped values are read in bounded chunks.

use std::io::{self, Read};

use super::{
    crc64, lzf, Error as FormatError, OP_AUX, OP_EOF, OP_EXPIRETIME, OP_EXPIRETIME_MS, OP_FREQ,
    OP_FUNCTION2, OP_FUNCTION_PRE_GA, OP_IDLE, OP_MODULE_AUX, OP_RESIZEDB, OP_SELECTDB,
    OP_SLOT_INFO, TYPE_STRING,
};

/// The newest RDB version read: Redis 7.4 and 8 write 12, Redis 7.0 writes 10.
pub const RDB_FILE_VERSION_MAX: u16 = 12;

const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
const TYPE_MODULE_PRE_GA: u8 = 6;
const TYPE_MODULE_2: u8 = 7;
const TYPE_HASH_ZIPMAP: u8 = 9;
const TYPE_LIST_ZIPLIST: u8 = 10;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_ZSET_ZIPLIST: u8 = 12;
const TYPE_HASH_ZIPLIST: u8 = 13;
const TYPE_LIST_QUICKLIST: u8 = 14;
const TYPE_STREAM_LISTPACKS: u8 = 15;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_STREAM_LISTPACKS_2: u8 = 19;
const TYPE_SET_LISTPACK: u8 = 20;
const TYPE_STREAM_LISTPACKS_3: u8 = 21;
const TYPE_HASH_METADATA: u8 = 24;
const TYPE_HASH_LISTPACK_EX: u8 = 25;

/// The module value opcodes (`RDB_MODULE_OPCODE_*`).
const MODULE_EOF: u64 = 0;
const MODULE_SINT: u64 = 1;
const MODULE_UINT: u64 = 2;
const MODULE_FLOAT: u64 = 3;
const MODULE_DOUBLE: u64 = 4;
const MODULE_STRING: u64 = 5;

/// Skipped bytes are read through a buffer of this size.
const SKIP_CHUNK_BYTES: usize = 64 * 1024;
/// A string's buffer grows by at most this much before its bytes have arrived.
const STRING_GROW_BYTES: usize = 1 << 20;
/// Aux field values and skipped keys' names are kept up to this length.
const AUX_LEN_MAX: u64 = 64 * 1024;

/// Why an RDB file could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileError {
    /// Reading the source failed (including its end before the file's end).
    Io(io::Error),
    /// Not an RDB file: the first 9 bytes are not `REDIS` and four digits.
    NotRdb,
    /// An RDB version newer than flin reads.
    Version(u16),
    /// Bytes that do not follow the format, at `offset` from the file's start.
    Format {
        /// Where the item that failed starts.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// The CRC-64 at the end does not match the bytes before it.
    Checksum {
        /// The file's.
        stored: u64,
        /// What its bytes give.
        computed: u64,
    },
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                write!(f, "the RDB data ends before its end marker")
            }
            FileError::Io(e) => write!(f, "reading the RDB data failed: {e}"),
            FileError::NotRdb => write!(f, "not an RDB file (no REDIS<version> header)"),
            FileError::Version(v) => write!(
                f,
                "RDB version {v} is newer than the newest flin reads ({RDB_FILE_VERSION_MAX})"
            ),
            FileError::Format { offset, what } => {
                write!(f, "damaged RDB data at byte {offset}: {what}")
            }
            FileError::Checksum { stored, computed } => write!(
                f,
                "RDB checksum mismatch: the file says {stored:#018x}, its bytes give {computed:#018x}"
            ),
        }
    }
}

impl std::error::Error for FileError {}

impl From<io::Error> for FileError {
    fn from(e: io::Error) -> FileError {
        FileError::Io(e)
    }
}

/// One item of an RDB file, as [`FileReader::next_item`] hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An aux field (`redis-ver`, `repl-id`, `repl-offset`, `aof-base`...).
    Aux {
        /// Its name.
        key: Vec<u8>,
        /// Its value (cut to 64 KiB).
        value: Vec<u8>,
    },
    /// A string key of database `db`, with its absolute expiry in Unix milliseconds.
    String {
        /// The database number (`SELECTDB`).
        db: u64,
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// When it expires, if it does.
        expire_at_ms: Option<i64>,
    },
    /// A key of a type flin does not store: read past.
    Skipped {
        /// The database number.
        db: u64,
        /// The key (cut to 64 KiB).
        key: Vec<u8>,
        /// The type's name, as TYPE answers it (`list`, `hash`, `stream`, `module`...).
        kind: &'static str,
    },
    /// How many keys database `db` holds (`RESIZEDB`, before its keys): a hint for sizing.
    Resize {
        /// The database number.
        db: u64,
        /// Its keys, as the writer counted them.
        keys: u64,
    },
    /// A function library (Redis 7 functions): read past.
    Function,
    /// Module aux data: read past.
    ModuleAux,
    /// The end marker; the checksum matched (or was off). Nothing follows.
    End,
}

/// Reads an RDB file from `src`, one item at a time, checking its CRC-64 at the end.
#[derive(Debug)]
pub struct FileReader<R> {
    src: R,
    version: u16,
    /// CRC-64 of every byte read so far.
    crc: u64,
    /// Bytes read so far.
    pos: u64,
    db: u64,
    /// The longest string value handed out.
    max_len: u64,
    done: bool,
    /// Where skipped bytes go: grows to the largest skip, at most 64 KiB.
    scratch: Vec<u8>,
}

impl<R: Read> FileReader<R> {
    /// Reads the header from `src`. String values longer than `max_len` fail the read (a
    /// primary's `proto-max-bulk-len`).
    ///
    /// # Errors
    /// The source fails or ends, the header is not `REDIS` and four digits, or the version is
    /// newer than [`RDB_FILE_VERSION_MAX`].
    pub fn new(src: R, max_len: u64) -> Result<FileReader<R>, FileError> {
        let mut r = FileReader {
            src,
            version: 0,
            crc: 0,
            pos: 0,
            db: 0,
            max_len,
            done: false,
            scratch: Vec::new(),
        };
        let mut header = [0u8; 9];
        r.read_exact(&mut header)?;
        if &header[..5] != b"REDIS" || !header[5..].iter().all(u8::is_ascii_digit) {
            return Err(FileError::NotRdb);
        }
        let version = header[5..]
            .iter()
            .fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
        if version > RDB_FILE_VERSION_MAX || version == 0 {
            return Err(FileError::Version(version));
        }
        r.version = version;
        Ok(r)
    }

    /// The file's RDB version.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next item. After [`Item::End`] the source is left just past the checksum.
    ///
    /// # Errors
    /// The source fails or ends early, the bytes do not follow the format, a string value is
    /// over the limit, or the checksum does not match. Calling again after an error or after
    /// the end answers an error.
    pub fn next_item(&mut self) -> Result<Item, FileError> {
        if self.done {
            return Err(self.format(self.pos, "read past the end of the RDB data"));
        }
        let mut expire_at_ms = None;
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                OP_EOF => {
                    self.done = true;
                    if self.version >= 5 {
                        let computed = self.crc;
                        let stored = u64::from_le_bytes(self.array::<8>()?);
                        if stored != 0 && stored != computed {
                            return Err(FileError::Checksum { stored, computed });
                        }
                    }
                    return Ok(Item::End);
                }
                OP_AUX => {
                    let key = self.string_capped(AUX_LEN_MAX)?;
                    let value = self.string_capped(AUX_LEN_MAX)?;
                    return Ok(Item::Aux { key, value });
                }
                OP_SELECTDB => self.db = self.plain_len()?,
                OP_RESIZEDB => {
                    let keys = self.plain_len()?;
                    self.plain_len()?;
                    return Ok(Item::Resize { db: self.db, keys });
                }
                OP_SLOT_INFO => {
                    for _ in 0..3 {
                        self.plain_len()?;
                    }
                }
                OP_EXPIRETIME_MS => {
                    expire_at_ms = Some(i64::from_le_bytes(self.array::<8>()?));
                }
                OP_EXPIRETIME => {
                    let secs = i32::from_le_bytes(self.array::<4>()?);
                    expire_at_ms = Some(i64::from(secs) * 1000);
                }
                OP_IDLE => {
                    self.plain_len()?;
                }
                OP_FREQ => {
                    self.u8()?;
                }
                OP_MODULE_AUX => {
                    self.plain_len()?; // module id
                    self.plain_len()?; // when opcode
                    self.plain_len()?; // when
                    self.skip_module_value(at)?;
                    return Ok(Item::ModuleAux);
                }
                OP_FUNCTION2 => {
                    self.skip_string()?;
                    return Ok(Item::Function);
                }
                OP_FUNCTION_PRE_GA => {
                    return Err(self.format(at, "a function in Redis 7.0's pre-release format"));
                }
                TYPE_STRING => {
                    let key = self.string(self.max_len)?;
                    let value = self.string(self.max_len)?;
                    return Ok(Item::String {
                        db: self.db,
                        key,
                        value,
                        expire_at_ms,
                    });
                }
                t => {
                    let key = self.string_capped(AUX_LEN_MAX)?;
                    let kind = self.skip_value(at, t)?;
                    return Ok(Item::Skipped {
                        db: self.db,
                        key,
                        kind,
                    });
                }
            }
        }
    }

    /// Reads past a value of type `t` (not a string), answering its type's name.
    fn skip_value(&mut self, at: u64, t: u8) -> Result<&'static str, FileError> {
        Ok(match t {
            TYPE_LIST | TYPE_SET => {
                let n = self.plain_len()?;
                self.skip_strings(n)?;
                if t == TYPE_LIST {
                    "list"
                } else {
                    "set"
                }
            }
            TYPE_ZSET => {
                for _ in 0..self.plain_len()? {
                    self.skip_string()?;
                    // A score as text: a length byte, or 253/254/255 for nan/+inf/-inf.
                    let len = self.u8()?;
                    if len < 253 {
                        self.skip_bytes(u64::from(len))?;
                    }
                }
                "zset"
            }
            TYPE_ZSET_2 => {
                for _ in 0..self.plain_len()? {
                    self.skip_string()?;
                    self.skip_bytes(8)?;
                }
                "zset"
            }
            TYPE_HASH => {
                let n = self.plain_len()?;
                self.skip_strings(n.saturating_mul(2))?;
                "hash"
            }
            TYPE_HASH_ZIPMAP | TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
                self.skip_string()?;
                "hash"
            }
            TYPE_LIST_ZIPLIST => {
                self.skip_string()?;
                "list"
            }
            TYPE_SET_INTSET | TYPE_SET_LISTPACK => {
                self.skip_string()?;
                "set"
            }
            TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
                self.skip_string()?;
                "zset"
            }
            TYPE_LIST_QUICKLIST => {
                let n = self.plain_len()?;
                self.skip_strings(n)?;
                "list"
            }
            TYPE_LIST_QUICKLIST_2 => {
                for _ in 0..self.plain_len()? {
                    self.plain_len()?; // container: plain or packed
                    self.skip_string()?;
                }
                "list"
            }
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
                self.skip_stream(t)?;
                "stream"
            }
            TYPE_MODULE_2 => {
                self.plain_len()?; // module id
                self.skip_module_value(at)?;
                "module"
            }
            TYPE_HASH_METADATA => {
                self.skip_bytes(8)?; // the smallest field expiry
                for _ in 0..self.plain_len()? {
                    self.plain_len()?; // the field's expiry
                    self.skip_string()?;
                    self.skip_string()?;
                }
                "hash"
            }
            TYPE_HASH_LISTPACK_EX => {
                self.skip_bytes(8)?;
                self.skip_string()?;
                "hash"
            }
            TYPE_MODULE_PRE_GA => {
                return Err(self.format(
                    at,
                    "a module value in the format without opcodes, which only its module can read",
                ))
            }
            other => return Err(self.format(at, &format!("unknown value type {other}"))),
        })
    }

    fn skip_stream(&mut self, t: u8) -> Result<(), FileError> {
        let nodes = self.plain_len()?;
        self.skip_strings(nodes.saturating_mul(2))?; // master ID and listpack of each node
        self.plain_len()?; // length
        self.plain_len()?; // last ID: ms
        self.plain_len()?; // and seq
        if t >= TYPE_STREAM_LISTPACKS_2 {
            for _ in 0..5 {
                self.plain_len()?; // first ID, max deleted ID, entries added
            }
        }
        for _ in 0..self.plain_len()? {
            self.skip_string()?; // group name
            self.plain_len()?; // last delivered ID: ms
            self.plain_len()?; // and seq
            if t >= TYPE_STREAM_LISTPACKS_2 {
                self.plain_len()?; // entries read
            }
            for _ in 0..self.plain_len()? {
                self.skip_bytes(16 + 8)?; // pending ID and delivery time
                self.plain_len()?; // delivery count
            }
            for _ in 0..self.plain_len()? {
                self.skip_string()?; // consumer name
                self.skip_bytes(8)?; // seen time
                if t >= TYPE_STREAM_LISTPACKS_3 {
                    self.skip_bytes(8)?; // active time
                }
                let pending = self.plain_len()?;
                self.skip_bytes(pending.saturating_mul(16))?;
            }
        }
        Ok(())
    }

    /// Reads past a module value written with opcodes, up to its EOF opcode.
    fn skip_module_value(&mut self, at: u64) -> Result<(), FileError> {
        loop {
            match self.plain_len()? {
                MODULE_EOF => return Ok(()),
                MODULE_SINT | MODULE_UINT => {
                    self.plain_len()?;
                }
                MODULE_FLOAT => self.skip_bytes(4)?,
                MODULE_DOUBLE => self.skip_bytes(8)?,
                MODULE_STRING => self.skip_string()?,
                other => {
                    return Err(self.format(at, &format!("unknown module value opcode {other}")))
                }
            }
        }
    }

    fn format(&self, offset: u64, what: &str) -> FileError {
        FileError::Format {
            offset,
            what: what.to_owned(),
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), FileError> {
        self.src.read_exact(buf)?;
        self.crc = crc64(self.crc, buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FileError> {
        let mut b = [0u8; N];
        self.read_exact(&mut b)?;
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, FileError> {
        Ok(self.array::<1>()?[0])
    }

    /// A length, or `Err(kind)` for a special string encoding.
    fn len(&mut self) -> Result<Result<u64, u8>, FileError> {
        let at = self.pos;
        let first = self.u8()?;
        Ok(match first >> 6 {
            3 => Err(first & 0x3f),
            0 => Ok(u64::from(first & 0x3f)),
            1 => Ok((u64::from(first & 0x3f) << 8) | u64::from(self.u8()?)),
            _ if first == 0x80 => Ok(u64::from(u32::from_be_bytes(self.array::<4>()?))),
            _ if first == 0x81 => Ok(u64::from_be_bytes(self.array::<8>()?)),
            _ => return Err(self.format(at, &FormatError::BadLength(first).to_string())),
        })
    }

    fn plain_len(&mut self) -> Result<u64, FileError> {
        let at = self.pos;
        self.len()?
            .map_err(|_| self.format(at, "a string encoding where a length belongs"))
    }

    /// Reads `n` bytes into a buffer that grows as they arrive.
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, FileError> {
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let chunk = left.min(STRING_GROW_BYTES as u64) as usize;
            let start = out.len();
            out.resize(start + chunk, 0);
            self.read_exact(&mut out[start..])?;
            left -= chunk as u64;
        }
        Ok(out)
    }

    fn skip_bytes(&mut self, n: u64) -> Result<(), FileError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut left = n;
        let mut result = Ok(());
        while left > 0 {
            let chunk = left.min(SKIP_CHUNK_BYTES as u64) as usize;
            if scratch.len() < chunk {
                scratch.resize(chunk, 0);
            }
            if let Err(e) = self.read_exact(&mut scratch[..chunk]) {
                result = Err(e);
                break;
            }
            left -= chunk as u64;
        }
        self.scratch = scratch;
        result
    }

    /// A string in any of its forms, at most `max_len` bytes once decoded.
    fn string(&mut self, max_len: u64) -> Result<Vec<u8>, FileError> {
        let at = self.pos;
        let len = self.len()?;
        self.string_after(at, len, max_len)
    }

    /// A string kept only up to `cap` bytes (names and aux values): a longer plain one is read
    /// past, an encoded one decoded (within the value limit) and cut.
    fn string_capped(&mut self, cap: u64) -> Result<Vec<u8>, FileError> {
        let at = self.pos;
        match self.len()? {
            Ok(n) if n > cap => {
                let kept = self.bytes(cap)?;
                self.skip_bytes(n - cap)?;
                Ok(kept)
            }
            len => {
                let mut s = self.string_after(at, len, self.max_len.max(cap))?;
                s.truncate(cap as usize);
                Ok(s)
            }
        }
    }

    /// The rest of a string whose length (or encoding) `len` was read at `at`.
    fn string_after(
        &mut self,
        at: u64,
        len: Result<u64, u8>,
        max_len: u64,
    ) -> Result<Vec<u8>, FileError> {
        let too_long = |len: u64| FormatError::TooLong { len, max: max_len }.to_string();
        match len {
            Ok(n) if n > max_len => Err(self.format(at, &too_long(n))),
            Ok(n) => self.bytes(n),
            Err(0) => Ok((self.u8()? as i8).to_string().into_bytes()),
            Err(1) => Ok(i16::from_le_bytes(self.array::<2>()?)
                .to_string()
                .into_bytes()),
            Err(2) => Ok(i32::from_le_bytes(self.array::<4>()?)
                .to_string()
                .into_bytes()),
            Err(3) => {
                let compressed = self.plain_len()?;
                let plain = self.plain_len()?;
                if plain > max_len {
                    return Err(self.format(at, &too_long(plain)));
                }
                // LZF never needs much more than the plain length (one control byte per 32
                // literals).
                if compressed > plain.saturating_add(plain / 16 + 64) {
                    return Err(self.format(at, &FormatError::BadLzf.to_string()));
                }
                let data = self.bytes(compressed)?;
                lzf::decompress(&data, plain as usize)
                    .ok_or_else(|| self.format(at, &FormatError::BadLzf.to_string()))
            }
            Err(e) => Err(self.format(at, &FormatError::BadEncoding(e).to_string())),
        }
    }

    /// Reads past one string in any form.
    fn skip_string(&mut self) -> Result<(), FileError> {
        let at = self.pos;
        match self.len()? {
            Ok(n) => self.skip_bytes(n),
            Err(0) => self.skip_bytes(1),
            Err(1) => self.skip_bytes(2),
            Err(2) => self.skip_bytes(4),
            Err(3) => {
                let compressed = self.plain_len()?;
                self.plain_len()?;
                self.skip_bytes(compressed)
            }
            Err(e) => Err(self.format(at, &FormatError::BadEncoding(e).to_string())),
        }
    }

    fn skip_strings(&mut self, n: u64) -> Result<(), FileError> {
        for _ in 0..n {
            self.skip_string()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rdb::write_len;

    /// Saved by redis-server 7.0.15 (see server/tests/fixtures/README.md): strings in every
    /// encoding, lists, sets, sorted sets and hashes small and large, a stream with a consumer
    /// group and a pending entry, a function library, keys in databases 0, 3 and 5.
    const REDIS_7_0: &[u8] = include_bytes!("../../tests/fixtures/redis-7.0-all-types.rdb");

    type Strings = BTreeMap<(u64, Vec<u8>), (Vec<u8>, Option<i64>)>;
    type Skipped = Vec<(u64, String, &'static str)>;

    fn read_all(bytes: &[u8]) -> Result<(Strings, Skipped, Vec<Item>), FileError> {
        let mut r = FileReader::new(bytes, 512 << 20)?;
        let (mut strings, mut skipped, mut other) = (BTreeMap::new(), Vec::new(), Vec::new());
        loop {
            match r.next_item()? {
                Item::String {
                    db,
                    key,
                    value,
                    expire_at_ms,
                } => {
                    strings.insert((db, key), (value, expire_at_ms));
                }
                Item::Skipped { db, key, kind } => {
                    skipped.push((db, String::from_utf8(key).unwrap(), kind));
                }
                Item::End => {
                    assert_eq!(
                        r.position(),
                        bytes.len() as u64,
                        "the checksum ends the file"
                    );
                    return Ok((strings, skipped, other));
                }
                item => other.push(item),
            }
        }
    }

    #[test]
    fn reads_what_redis_7_0_saves() {
        let (strings, mut skipped, other) = read_all(REDIS_7_0).unwrap();
        let get = |db: u64, k: &str| strings.get(&(db, k.as_bytes().to_vec())).cloned();
        assert_eq!(get(0, "plain"), Some((b"hello".to_vec(), None)));
        assert_eq!(get(0, "int8"), Some((b"-5".to_vec(), None)));
        assert_eq!(get(0, "int16"), Some((b"1234".to_vec(), None)));
        assert_eq!(get(0, "int32"), Some((b"70000".to_vec(), None)));
        assert_eq!(get(0, "bigint"), Some((b"12345678901234".to_vec(), None)));
        assert_eq!(get(0, "lzf"), Some((b"abcdefgh".repeat(100), None)));
        assert_eq!(get(0, "empty"), Some((Vec::new(), None)));
        assert_eq!(get(3, "db3key"), Some((b"db3value".to_vec(), None)));
        // SET ttl value PX 86400000000 and SET other v EX 100000, saved on 2026-12-06.
        let (v, at) = get(0, "ttl").unwrap();
        assert_eq!(v, b"value");
        let at = at.unwrap();
        assert!(
            (1_851_000_000_000_000 / 1000..1_900_000_000_000).contains(&at),
            "{at}"
        );
        let (_, at) = get(5, "other").unwrap();
        assert!(at.unwrap() > 1_765_000_000_000);
        assert_eq!(strings.len(), 11, "{:?}", strings.keys());

        skipped.sort();
        let kinds: Vec<(u64, &str, &str)> = skipped
            .iter()
            .map(|(db, k, t)| (*db, k.as_str(), *t))
            .collect();
        assert_eq!(
            kinds,
            [
                (0, "bigh", "hash"),
                (0, "biglist", "list"),
                (0, "bigset", "set"),
                (0, "bigz", "zset"),
                (0, "intset", "set"),
                (0, "smallh", "hash"),
                (0, "smalllist", "list"),
                (0, "smallz", "zset"),
                (0, "st", "stream"),
                (0, "strset", "set"),
                (3, "db3list", "list"),
            ]
        );
        assert!(other.contains(&Item::Function));
        // Each database's RESIZEDB, its key count first (a replica sizes its index by it).
        let resized: Vec<u64> = other
            .iter()
            .filter_map(|i| match i {
                Item::Resize { db, keys } => Some(*db * 1000 + keys),
                _ => None,
            })
            .collect();
        let per_db = |d: u64| {
            strings.keys().filter(|(db, _)| *db == d).count()
                + skipped.iter().filter(|(db, _, _)| *db == d).count()
        };
        assert_eq!(
            resized,
            [0, 3, 5].map(|d| d * 1000 + per_db(d) as u64),
            "{other:?}"
        );
        assert!(other.contains(&Item::Aux {
            key: b"redis-ver".to_vec(),
            value: b"7.0.15".to_vec()
        }));
    }

    #[test]
    fn damaged_files_fail_cleanly() {
        // Every cut ends early; never a panic. (Every cut in the header and the first items,
        // then a sample through the rest.)
        for cut in (0..512).chain((512..REDIS_7_0.len()).step_by(5)) {
            assert!(read_all(&REDIS_7_0[..cut]).is_err(), "cut at {cut}");
        }
        // Any flipped bit is caught: by the format, or by the checksum.
        for i in (0..REDIS_7_0.len()).step_by(11) {
            let mut bad = REDIS_7_0.to_vec();
            bad[i] ^= 0x10;
            assert!(read_all(&bad).is_err(), "byte {i}");
        }
        // A file saved with `rdbchecksum no` has a zero checksum: accepted.
        let mut unchecked = REDIS_7_0.to_vec();
        let n = unchecked.len();
        unchecked[n - 8..].fill(0);
        assert!(read_all(&unchecked).is_ok());
    }

    fn file(version: u16, body: &[u8]) -> Vec<u8> {
        let mut f = format!("REDIS{version:04}").into_bytes();
        f.extend_from_slice(body);
        f.push(OP_EOF);
        let crc = crc64(0, &f);
        f.extend_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn headers_and_versions() {
        assert!(matches!(
            FileReader::new(&b"REDIX0010"[..], 1),
            Err(FileError::NotRdb)
        ));
        assert!(matches!(
            FileReader::new(&b"REDIS0013"[..], 1),
            Err(FileError::Version(13))
        ));
        let f = file(12, &[]);
        let mut r = FileReader::new(&f[..], 1).unwrap();
        assert_eq!(r.version(), 12);
        assert_eq!(r.next_item().unwrap(), Item::End);
        assert!(r.next_item().is_err(), "nothing after the end");
    }

    #[test]
    fn reads_past_module_values_and_newer_hashes() {
        let mut body = vec![TYPE_MODULE_2];
        write_len(&mut body, 1);
        body.extend_from_slice(b"m");
        write_len(&mut body, 0x1234_5678); // module id
        for (op, payload) in [
            (MODULE_SINT, &[0x05][..]),
            (MODULE_FLOAT, &[0; 4]),
            (MODULE_DOUBLE, &[0; 8]),
            (MODULE_STRING, &[0x02, b'h', b'i']),
            (MODULE_EOF, &[]),
        ] {
            write_len(&mut body, op);
            body.extend_from_slice(payload);
        }
        // A Redis 7.4 hash with field expiry: the smallest expiry, then fields with theirs.
        body.push(TYPE_HASH_METADATA);
        body.extend_from_slice(b"\x01h");
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&[1, 0, 1, b'f', 1, b'v']);
        body.push(TYPE_HASH_LISTPACK_EX);
        body.extend_from_slice(b"\x02h2");
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&[3, 1, 2, 3]);
        body.extend_from_slice(&[TYPE_STRING, 1, b'k', 1, b'v']);
        let (strings, skipped, _) = read_all(&file(12, &body)).unwrap();
        assert_eq!(strings.len(), 1);
        let kinds: Vec<&str> = skipped.iter().map(|s| s.2).collect();
        assert_eq!(kinds, ["module", "hash", "hash"]);

        // The old module format cannot be read past: a clear error, not a guess.
        let err = read_all(&file(10, &[TYPE_MODULE_PRE_GA, 1, b'm', 0])).unwrap_err();
        assert!(err.to_string().contains("module"), "{err}");
    }

    #[test]
    fn declared_lengths_do_not_allocate() {
        // A 4 GiB string that is not there: an early end, after at most one chunk.
        let mut body = vec![TYPE_STRING, 1, b'k', 0x80];
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let mut f = b"REDIS0010".to_vec();
        f.extend_from_slice(&body);
        let err = read_all(&f).unwrap_err();
        assert!(
            matches!(err, FileError::Format { .. }),
            "over the limit: {err}"
        );
        let mut r = FileReader::new(&f[..], u64::MAX).unwrap();
        assert!(matches!(r.next_item(), Err(FileError::Io(_))));
        // LZF that claims far more compressed bytes than its plain length needs.
        let mut body = vec![TYPE_STRING, 1, b'k', 0xC3, 0x80];
        body.extend_from_slice(&1_000_000u32.to_be_bytes());
        body.push(10);
        let err = read_all(&file(10, &body)).unwrap_err();
        assert!(err.to_string().contains("LZF"), "{err}");
    }
}

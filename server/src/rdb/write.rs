//! Whole RDB files, written as a stream: what a primary sends a replica in a full sync, in
//! the RDB version every Redis from 5 to 7.4 reads (9), holding flin's string keys.
//!
//! Layout, as Redis writes it: `REDIS0009`, aux fields (the caller's: Redis writes `redis-ver`,
//! `redis-bits`, `ctime`, `used-mem`, `repl-stream-db`, `repl-id`, `repl-offset`, `aof-base`),
//! then per database `SELECTDB <n>` and `RESIZEDB <keys> <keys with expiry>`, its keys (an
//! `EXPIRETIME_MS` before each that expires), and `EOF` with the CRC-64 of everything before.

use std::io::{self, Write};

use super::{
    crc64, write_len, write_string, OP_AUX, OP_EOF, OP_EXPIRETIME_MS, OP_RESIZEDB, OP_SELECTDB,
    TYPE_STRING,
};

/// The RDB version written: the newest that Redis 5.0 to 7.4 all read.
pub const RDB_WRITE_VERSION: u16 = 9;

/// Bytes gathered before they are written to the sink.
const FLUSH_BYTES: usize = 64 * 1024;

/// Writes an RDB file to `sink`: the header and aux fields first, then databases and keys in
/// the order given, then [`FileWriter::finish`].
#[derive(Debug)]
pub struct FileWriter<W: Write> {
    sink: W,
    buf: Vec<u8>,
    crc: u64,
    written: u64,
    compress: bool,
}

impl<W: Write> FileWriter<W> {
    /// Writes the header and the aux fields, in order (Redis writes `redis-ver`, `redis-bits`,
    /// `ctime`, `used-mem`, then the replication ones and `aof-base`). `compress`
    /// LZF-compresses strings longer than 20 bytes where that saves space, as Redis's
    /// `rdbcompression yes`.
    ///
    /// # Errors
    /// The sink fails.
    pub fn new(sink: W, aux: &[(&str, &[u8])], compress: bool) -> io::Result<FileWriter<W>> {
        let mut w = FileWriter {
            sink,
            buf: Vec::with_capacity(FLUSH_BYTES),
            crc: 0,
            written: 0,
            compress,
        };
        w.buf
            .extend_from_slice(format!("REDIS{RDB_WRITE_VERSION:04}").as_bytes());
        for (k, v) in aux {
            w.buf.push(OP_AUX);
            write_string(&mut w.buf, k.as_bytes(), false);
            write_string(&mut w.buf, v, false);
        }
        w.flush_if_full()?;
        Ok(w)
    }

    /// Starts database `db`, which holds `keys` keys of which `expires` have an expiry (hints
    /// for the reader's table sizes).
    ///
    /// # Errors
    /// The sink fails.
    pub fn select_db(&mut self, db: u64, keys: u64, expires: u64) -> io::Result<()> {
        self.buf.push(OP_SELECTDB);
        write_len(&mut self.buf, db);
        self.buf.push(OP_RESIZEDB);
        write_len(&mut self.buf, keys);
        write_len(&mut self.buf, expires);
        self.flush_if_full()
    }

    /// One string key of the current database, expiring at `expire_at_ms` (Unix ms) if set.
    ///
    /// # Errors
    /// The sink fails.
    pub fn string(
        &mut self,
        key: &[u8],
        value: &[u8],
        expire_at_ms: Option<i64>,
    ) -> io::Result<()> {
        if let Some(at) = expire_at_ms {
            self.buf.push(OP_EXPIRETIME_MS);
            self.buf.extend_from_slice(&at.to_le_bytes());
        }
        self.buf.push(TYPE_STRING);
        write_string(&mut self.buf, key, self.compress);
        write_string(&mut self.buf, value, self.compress);
        self.flush_if_full()
    }

    /// Writes the end marker and the checksum, flushes, and gives back the sink.
    ///
    /// # Errors
    /// The sink fails.
    pub fn finish(mut self) -> io::Result<W> {
        self.buf.push(OP_EOF);
        self.flush()?;
        self.sink.write_all(&self.crc.to_le_bytes())?;
        self.written += 8;
        self.sink.flush()?;
        Ok(self.sink)
    }

    /// Bytes of the file produced so far (some may still wait in the buffer).
    pub fn written(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.crc = crc64(self.crc, &self.buf);
        self.sink.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::{FileReader, Item};

    #[test]
    fn what_is_written_reads_back() {
        let big = b"compressible ".repeat(1000);
        type Entry = (u64, Vec<u8>, Vec<u8>, Option<i64>);
        let entries: Vec<Entry> = vec![
            (0, b"k".to_vec(), b"v".to_vec(), None),
            (0, b"n".to_vec(), b"-42".to_vec(), Some(1_900_000_000_123)),
            (0, b"big".to_vec(), big.clone(), None),
            (0, Vec::new(), Vec::new(), None),
            (7, b"k".to_vec(), b"in db 7".to_vec(), Some(1)),
        ];
        let aux: [(&str, &[u8]); 6] = [
            ("redis-ver", b"7.0.0"),
            ("redis-bits", b"64"),
            ("ctime", b"1765000000"),
            ("used-mem", b"1048576"),
            ("repl-id", &[b'a'; 40]),
            ("repl-offset", b"0"),
        ];
        let mut w = FileWriter::new(Vec::new(), &aux, true).unwrap();
        for db in [0u64, 7] {
            let of_db: Vec<_> = entries.iter().filter(|e| e.0 == db).collect();
            let expiring = of_db.iter().filter(|e| e.3.is_some()).count() as u64;
            w.select_db(db, of_db.len() as u64, expiring).unwrap();
            for (_, k, v, at) in of_db {
                w.string(k, v, *at).unwrap();
            }
        }
        let written = w.written();
        let file = w.finish().unwrap();
        assert_eq!(
            file.len() as u64,
            written + 9,
            "the EOF byte and the checksum"
        );
        assert!(
            file.len() < 2000,
            "the long value was compressed: {}",
            file.len()
        );
        assert!(file.starts_with(b"REDIS0009"));

        let mut r = FileReader::new(&file[..], 1 << 20).unwrap();
        let mut got = Vec::new();
        let mut aux = Vec::new();
        loop {
            match r.next_item().unwrap() {
                Item::String {
                    db,
                    key,
                    value,
                    expire_at_ms,
                } => got.push((db, key, value, expire_at_ms)),
                Item::Aux { key, value } => aux.push((key, value)),
                Item::Resize { .. } => {}
                Item::End => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, entries);
        let names: Vec<&[u8]> = aux.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(
            names,
            [
                &b"redis-ver"[..],
                b"redis-bits",
                b"ctime",
                b"used-mem",
                b"repl-id",
                b"repl-offset"
            ]
        );
    }
}

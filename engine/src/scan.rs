//! Walking the records of a segment's bytes: where valid records run, and how the walk ended
//! (clean, a torn tail, or damage followed by more valid records). Bytes only: recovery, hint
//! writing, compaction and the fuzz targets all walk records through here.

use crate::format::{self, verify_record, HeaderError, RecordHeader, SEGMENT_HEADER_LEN};

/// How a scan of one segment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// All records valid up to `end`; anything after is zero (never written).
    Clean {
        /// Where the last valid record ends.
        end: u64,
    },
    /// Bad bytes from `at` to the end of the file, and no valid record after them.
    Torn {
        /// Where the bad bytes start.
        at: u64,
        /// What is wrong there.
        reason: &'static str,
    },
    /// Bad bytes from `at`, but a valid record starts at `next_valid`.
    Corrupt {
        /// Where the bad bytes start.
        at: u64,
        /// Where the next valid record starts.
        next_valid: u64,
        /// What is wrong there.
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
            Err(HeaderError::Invalid(reason)) => {
                // Verified bytes that flin never writes: damage, wherever it is.
                let next_valid = find_valid_record(bytes, off + 1).unwrap_or(len);
                return ScanEnd::Corrupt {
                    at: off,
                    next_valid,
                    reason,
                };
            }
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
    (from as usize..len.saturating_sub(format::RECORD_HEADER_LEN - 1))
        .find(|&p| valid_record(&bytes[p..]).is_some())
        .map(|p| p as u64)
}

/// The header of the record at the start of `rest`, when the whole record lies in `rest` and
/// its header and body both verify.
fn valid_record(rest: &[u8]) -> Option<RecordHeader> {
    RecordHeader::decode(rest)
        .ok()
        .filter(|h| h.record_len() <= rest.len() && verify_record(h, rest))
}

/// What [`for_each_valid_record`] calls with each record's offset, header and bytes.
pub(crate) type RecordFn<'a, E> = dyn FnMut(u64, &RecordHeader, &[u8]) -> Result<(), E> + 'a;

/// Calls `f` for every valid record of a sealed segment's bytes, stepping over damage (recovery's
/// repair rewrites segments without theirs, so only a segment damaged since open has any);
/// stops at the first error `f` returns.
pub(crate) fn for_each_valid_record<E>(bytes: &[u8], f: &mut RecordFn<'_, E>) -> Result<(), E> {
    let mut start = SEGMENT_HEADER_LEN as u64;
    loop {
        let mut failure = None;
        let end = scan_records(bytes, start, |off, h, rec| {
            if failure.is_none() {
                failure = f(off, h, rec).err();
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        match end {
            ScanEnd::Corrupt { next_valid, .. } => start = next_valid,
            ScanEnd::Clean { .. } | ScanEnd::Torn { .. } => return Ok(()),
        }
    }
}

/// Calls `f` for each valid record that starts at one of `offsets` (ascending) in a segment's
/// `bytes`; an offset where no valid record starts is skipped, as [`for_each_valid_record`]
/// steps over damage. Stops at the first error `f` returns.
pub(crate) fn for_each_record_at<E>(
    bytes: &[u8],
    offsets: &[u32],
    f: &mut RecordFn<'_, E>,
) -> Result<(), E> {
    for &off in offsets {
        let Some(rest) = bytes.get(off as usize..) else {
            continue;
        };
        if let Some(h) = valid_record(rest) {
            f(u64::from(off), &h, &rest[..h.record_len()])?;
        }
    }
    Ok(())
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
            ns: 0,
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

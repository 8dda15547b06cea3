//! Bits of a string, as Redis numbers them: bit 0 is the most significant bit of byte 0.
//! Counting (BITCOUNT), searching (BITPOS), combining (BITOP) and the integer fields of
//! BITFIELD with Redis's overflow rules. Pure functions on byte slices, no state.

/// The bit at `offset`, 0 past the end of `s`.
pub fn get_bit(s: &[u8], offset: u64) -> u8 {
    let byte = offset >> 3;
    match usize::try_from(byte).ok().and_then(|b| s.get(b)) {
        Some(&v) => (v >> (7 - (offset & 7))) & 1,
        None => 0,
    }
}

/// Sets the bit at `offset` (which must be inside `s`) to `on` (0 or 1).
pub fn set_bit(s: &mut [u8], offset: u64, on: u8) {
    debug_assert!(on <= 1);
    let byte = (offset >> 3) as usize;
    let shift = 7 - (offset & 7);
    s[byte] = (s[byte] & !(1 << shift)) | (on << shift);
}

/// How many bits of `s` are set.
pub fn popcount(s: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has the POPCNT instruction (checked just above), the one
            // feature `popcount_popcnt` is compiled for; it touches no memory but `s`.
            return unsafe { popcount_popcnt(s) };
        }
    }
    popcount_portable(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn popcount_popcnt(s: &[u8]) -> u64 {
    popcount_portable(s)
}

/// Four independent sums over 8-byte words, so the counts do not wait on each other.
#[inline(always)]
fn popcount_portable(s: &[u8]) -> u64 {
    let mut sums = [0u64; 4];
    let mut blocks = s.chunks_exact(32);
    for block in &mut blocks {
        for (sum, word) in sums.iter_mut().zip(block.chunks_exact(8)) {
            let w = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
            *sum += u64::from(w.count_ones());
        }
    }
    let tail: u64 = blocks
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    sums.iter().sum::<u64>() + tail
}

/// The position of the first bit equal to `bit` (0 or 1) in `s`, if any.
pub fn first_bit(s: &[u8], bit: u8) -> Option<u64> {
    let skip = if bit == 1 { 0x00 } else { 0xff };
    let mut words = s.chunks_exact(8);
    let mut base = 0u64;
    for w in &mut words {
        let word = u64::from_be_bytes(w.try_into().expect("8 bytes"));
        let word = if bit == 1 { word } else { !word };
        if word != 0 {
            return Some(base + u64::from(word.leading_zeros()));
        }
        base += 64;
    }
    for &b in words.remainder() {
        if b != skip {
            let b = if bit == 1 { b } else { !b };
            return Some(base + u64::from(b.leading_zeros()));
        }
        base += 8;
    }
    None
}

/// A bit range resolved the way BITCOUNT and BITPOS resolve theirs: start and end (both
/// inclusive) counted in bytes or in bits, negative from the end, clamped to the string.
/// `None` for an empty range.
pub fn resolve_range(start: i64, end: i64, len_bytes: usize, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits {
        (len_bytes as i64) << 3
    } else {
        len_bytes as i64
    };
    let mut start = if start < 0 { total + start } else { start };
    let mut end = if end < 0 { total + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(if in_bits {
        (start, end)
    } else {
        (start << 3, (end << 3) | 7)
    })
}

/// Set bits of `s` between bits `first` and `last` (inclusive, inside `s`).
pub fn count_range(s: &[u8], first: u64, last: u64) -> u64 {
    let (a, b) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut n = popcount(&s[a..=b]);
    // Take away the bits of the edge bytes outside the range.
    let head = s[a] & !(0xffu8 >> (first & 7));
    let tail = s[b] & ((1u16 << (7 - (last & 7))) - 1) as u8;
    n -= u64::from(head.count_ones()) + u64::from(tail.count_ones());
    n
}

/// The first bit equal to `bit` between bits `first` and `last` (inclusive, inside `s`).
pub fn find_in_range(s: &[u8], bit: u8, first: u64, last: u64) -> Option<u64> {
    let mut pos = first;
    // Bit by bit up to a byte boundary, then whole bytes, then bit by bit again.
    while pos <= last && pos & 7 != 0 {
        if get_bit(s, pos) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    if pos > last {
        return None;
    }
    let whole_end = (last + 1) >> 3; // bytes [pos/8, whole_end) are inside the range
    let from = (pos >> 3) as usize;
    if (whole_end as usize) > from {
        if let Some(p) = first_bit(&s[from..whole_end as usize], bit) {
            return Some(pos + p);
        }
        pos = whole_end << 3;
    }
    while pos <= last {
        if get_bit(s, pos) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// BITOP's operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP: combines `sources` (missing keys are empty strings) into `out`, as long as the
/// longest source; shorter sources count as zero-padded.
pub fn bitop(op: BitOp, sources: &[&[u8]], out: &mut Vec<u8>) {
    let maxlen = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    out.clear();
    out.reserve_exact(maxlen);
    let Some((first, rest)) = sources.split_first() else {
        return;
    };
    out.extend_from_slice(first);
    out.resize(maxlen, 0);
    match op {
        BitOp::Not => out.iter_mut().for_each(|b| *b = !*b),
        BitOp::And => {
            for s in rest {
                out.iter_mut().zip(s.iter()).for_each(|(o, b)| *o &= b);
                out[s.len()..].fill(0);
            }
        }
        BitOp::Or => {
            for s in rest {
                out.iter_mut().zip(s.iter()).for_each(|(o, b)| *o |= b);
            }
        }
        BitOp::Xor => {
            for s in rest {
                out.iter_mut().zip(s.iter()).for_each(|(o, b)| *o ^= b);
            }
        }
    }
}

/// A BITFIELD integer type: `i1`..`i64` or `u1`..`u63`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldType {
    pub signed: bool,
    pub bits: u32,
}

/// What BITFIELD does when a SET or INCRBY does not fit the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// The field of `ty` at bit `offset`, zero-padded past the end of `s`, as Redis replies it
/// (unsigned fields are at most 63 bits, so every value fits an i64).
pub fn get_field(s: &[u8], offset: u64, ty: FieldType) -> i64 {
    let mut v: u64 = 0;
    for j in 0..u64::from(ty.bits) {
        v = (v << 1) | u64::from(get_bit(s, offset + j));
    }
    if ty.signed && ty.bits < 64 && v & (1 << (ty.bits - 1)) != 0 {
        v |= u64::MAX << ty.bits;
    }
    v as i64
}

/// Writes the low `ty.bits` bits of `value` at bit `offset` (inside `s`).
pub fn set_field(s: &mut [u8], offset: u64, ty: FieldType, value: i64) {
    let value = value as u64;
    for j in 0..u64::from(ty.bits) {
        let on = (value >> (u64::from(ty.bits) - 1 - j)) & 1;
        set_bit(s, offset + j, on as u8);
    }
}

/// Redis's `check(Un)signedBitfieldOverflow`: `value + incr` for a field of `ty`. Returns
/// the value to store, or `None` when it overflows under [`Overflow::Fail`].
pub fn add_field(value: i64, incr: i64, ty: FieldType, ow: Overflow) -> Option<i64> {
    let bits = ty.bits;
    if ty.signed {
        let max: i64 = if bits == 64 {
            i64::MAX
        } else {
            (1i64 << (bits - 1)) - 1
        };
        let min = -max - 1;
        let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
        let minincr = min.wrapping_sub(value);
        let over = value > max
            || (bits != 64 && incr > maxincr)
            || (value >= 0 && incr > 0 && incr > maxincr);
        let under = !over
            && (value < min
                || (bits != 64 && incr < minincr)
                || (value < 0 && incr < 0 && incr < minincr));
        if !over && !under {
            return Some(value.wrapping_add(incr));
        }
        match ow {
            Overflow::Fail => None,
            Overflow::Sat => Some(if over { max } else { min }),
            Overflow::Wrap => {
                let mut c = (value as u64).wrapping_add(incr as u64);
                if bits < 64 {
                    let mask = u64::MAX << bits;
                    if c & (1 << (bits - 1)) != 0 {
                        c |= mask;
                    } else {
                        c &= !mask;
                    }
                }
                Some(c as i64)
            }
        }
    } else {
        debug_assert!(bits < 64);
        let value = value as u64;
        let max: u64 = (1u64 << bits) - 1;
        let maxincr = max.wrapping_sub(value) as i64;
        let minincr = value.wrapping_neg() as i64;
        let over = value > max || (incr > 0 && incr > maxincr);
        let under = !over && incr < 0 && incr < minincr;
        if !over && !under {
            return Some(value.wrapping_add(incr as u64) as i64);
        }
        match ow {
            Overflow::Fail => None,
            Overflow::Sat => Some(if over { max as i64 } else { 0 }),
            Overflow::Wrap => Some((value.wrapping_add(incr as u64) & !(u64::MAX << bits)) as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit by bit, the definition.
    fn count_slow(s: &[u8], first: u64, last: u64) -> u64 {
        (first..=last).map(|i| u64::from(get_bit(s, i))).sum()
    }

    fn find_slow(s: &[u8], bit: u8, first: u64, last: u64) -> Option<u64> {
        (first..=last).find(|&i| get_bit(s, i) == bit)
    }

    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn counts_and_finds_agree_with_the_bitwise_definition() {
        for len in [1usize, 2, 7, 8, 9, 31, 32, 33, 70] {
            for (seed, fill) in [(3u64, None), (5, Some(0u8)), (7, Some(0xff))] {
                let mut s = sample(len, seed);
                if let Some(f) = fill {
                    s.fill(f);
                    s[len / 2] ^= 0x10;
                }
                assert_eq!(popcount(&s), count_slow(&s, 0, len as u64 * 8 - 1));
                let bits = len as u64 * 8;
                for first in [0, 1, 7, 8, 13, bits / 2, bits - 1] {
                    for last in [first, first + 1, bits.saturating_sub(9), bits - 2, bits - 1] {
                        if first > last || last >= bits {
                            continue;
                        }
                        assert_eq!(count_range(&s, first, last), count_slow(&s, first, last));
                        for bit in [0, 1] {
                            assert_eq!(
                                find_in_range(&s, bit, first, last),
                                find_slow(&s, bit, first, last),
                                "len {len} bit {bit} {first}..={last}"
                            );
                        }
                    }
                }
                for bit in [0, 1] {
                    assert_eq!(first_bit(&s, bit), find_slow(&s, bit, 0, bits - 1));
                }
            }
        }
    }

    #[test]
    fn ranges_resolve_like_redis() {
        assert_eq!(resolve_range(0, -1, 4, false), Some((0, 31)));
        assert_eq!(resolve_range(1, 1, 4, false), Some((8, 15)));
        assert_eq!(resolve_range(-2, -1, 4, true), Some((30, 31)));
        assert_eq!(resolve_range(5, 100, 4, true), Some((5, 31)));
        assert_eq!(resolve_range(3, 2, 4, false), None);
        // Both clamp to the first byte, as in Redis.
        assert_eq!(resolve_range(-100, -50, 4, false), Some((0, 7)));
        assert_eq!(resolve_range(0, -1, 0, false), None);
    }

    #[test]
    fn bitop_pads_shorter_sources_with_zeros() {
        let mut out = Vec::new();
        bitop(BitOp::And, &[b"\xff\xff", b"\x0f"], &mut out);
        assert_eq!(out, b"\x0f\x00");
        bitop(BitOp::Or, &[b"\x01", b"\x10\x20"], &mut out);
        assert_eq!(out, b"\x11\x20");
        bitop(BitOp::Xor, &[b"\xff", b"\x0f", b""], &mut out);
        assert_eq!(out, b"\xf0");
        bitop(BitOp::Not, &[b"\x0f\x00"], &mut out);
        assert_eq!(out, b"\xf0\xff");
        bitop(BitOp::Or, &[b"", b""], &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn fields_round_trip_and_sign_extend() {
        let mut s = vec![0u8; 10];
        let i5 = FieldType {
            signed: true,
            bits: 5,
        };
        set_field(&mut s, 3, i5, -3);
        assert_eq!(get_field(&s, 3, i5), -3);
        let u5 = FieldType {
            signed: false,
            bits: 5,
        };
        assert_eq!(get_field(&s, 3, u5), 29);
        let i64t = FieldType {
            signed: true,
            bits: 64,
        };
        set_field(&mut s, 7, i64t, i64::MIN + 5);
        assert_eq!(get_field(&s, 7, i64t), i64::MIN + 5);
        assert_eq!(get_field(b"\x80", 0, i5), -16, "past the end reads zeros");
    }

    #[test]
    fn overflow_rules() {
        let u8t = FieldType {
            signed: false,
            bits: 8,
        };
        let i8t = FieldType {
            signed: true,
            bits: 8,
        };
        assert_eq!(add_field(250, 10, u8t, Overflow::Wrap), Some(4));
        assert_eq!(add_field(250, 10, u8t, Overflow::Sat), Some(255));
        assert_eq!(add_field(250, 10, u8t, Overflow::Fail), None);
        assert_eq!(add_field(5, -10, u8t, Overflow::Sat), Some(0));
        assert_eq!(add_field(5, -10, u8t, Overflow::Wrap), Some(251));
        assert_eq!(add_field(120, 10, i8t, Overflow::Wrap), Some(-126));
        assert_eq!(add_field(120, 10, i8t, Overflow::Sat), Some(127));
        assert_eq!(add_field(-120, -10, i8t, Overflow::Sat), Some(-128));
        assert_eq!(add_field(-120, -10, i8t, Overflow::Fail), None);
        assert_eq!(add_field(300, 0, u8t, Overflow::Wrap), Some(44));
        let i64t = FieldType {
            signed: true,
            bits: 64,
        };
        assert_eq!(add_field(i64::MAX, 1, i64t, Overflow::Wrap), Some(i64::MIN));
        assert_eq!(add_field(i64::MAX, 1, i64t, Overflow::Sat), Some(i64::MAX));
        assert_eq!(add_field(-1, i64::MIN, i64t, Overflow::Sat), Some(i64::MIN));
    }
}

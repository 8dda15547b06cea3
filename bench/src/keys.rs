//! Key naming and the deterministic value of every key.
//!
//! Keys are `key:` and 9 zero-padded decimal digits (`key:000000123`), so every request for a
//! run has the same size. A key's value depends only on (key index, run seed, value size): a
//! SplitMix64 stream seeded from the key and the seed fills the bytes from a 64-letter printable
//! alphabet. A GET reply can therefore be checked by regenerating the value, without storing
//! what was written, and a mismatch prints readably.

use crate::rng::{mix64, Rng};

/// Every key starts with this.
pub const KEY_PREFIX: &[u8] = b"key:";
/// Decimal digits after the prefix; fixes the keyspace limit.
pub const KEY_DIGITS: usize = 9;
/// Length of every key.
pub const KEY_LEN_BYTES: usize = KEY_PREFIX.len() + KEY_DIGITS;
/// Largest `--keyspace`: every index must fit in `KEY_DIGITS` digits.
pub const KEYSPACE_MAX: u64 = 1_000_000_000;

const _: () = assert!(KEYSPACE_MAX == 10u64.pow(KEY_DIGITS as u32));
const _: () = assert!(KEY_DIGITS % 2 == 1, "push_key writes pairs, then one digit");

/// Values are drawn from these 64 bytes: printable, so a bad reply reads in an error message.
const VALUE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `00`, `01`, .. `99`: two digits per division when writing a key.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Appends the key for `index` (`index < KEYSPACE_MAX`).
///
/// Every request encodes one, so the digits go two at a time and the key in one copy.
///
/// # Panics
/// If `index >= KEYSPACE_MAX` (callers draw indices below a validated keyspace).
#[inline]
pub fn push_key(out: &mut Vec<u8>, index: u64) {
    assert!(index < KEYSPACE_MAX, "key index {index} out of range");
    let mut key = [0u8; KEY_LEN_BYTES];
    key[..KEY_PREFIX.len()].copy_from_slice(KEY_PREFIX);
    // KEY_DIGITS is odd: four pairs from the right, then the leading digit.
    let mut rest = index;
    let mut end = KEY_LEN_BYTES;
    for _ in 0..KEY_DIGITS / 2 {
        let pair = (rest % 100) as usize * 2;
        key[end - 2..end].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        rest /= 100;
        end -= 2;
    }
    key[end - 1] = b'0' + rest as u8;
    out.extend_from_slice(&key);
}

/// The stream a key's value is drawn from.
#[inline]
fn value_rng(index: u64, seed: u64) -> Rng {
    Rng::new(mix64(seed ^ mix64(index)))
}

/// Calls `chunk` with the value of key `index` in pieces of at most 8 bytes, in order.
#[inline]
fn for_each_value_chunk(index: u64, seed: u64, len: usize, mut chunk: impl FnMut(&[u8]) -> bool) {
    let mut rng = value_rng(index, seed);
    let mut left = len;
    while left > 0 {
        let bits = rng.next_u64().to_le_bytes();
        let take = left.min(bits.len());
        let mut piece = [0u8; 8];
        for (out, bit) in piece.iter_mut().zip(bits).take(take) {
            *out = VALUE_ALPHABET[usize::from(bit & 63)];
        }
        if !chunk(&piece[..take]) {
            return;
        }
        left -= take;
    }
}

/// Appends the `len`-byte value of key `index` for the run seeded with `seed`.
pub fn push_value(out: &mut Vec<u8>, index: u64, seed: u64, len: usize) {
    out.reserve(len);
    for_each_value_chunk(index, seed, len, |piece| {
        out.extend_from_slice(piece);
        true
    });
}

/// Whether `got` is exactly the `len`-byte value of key `index` under `seed`; stops at the
/// first differing chunk.
pub fn value_matches(got: &[u8], index: u64, seed: u64, len: usize) -> bool {
    if got.len() != len {
        return false;
    }
    let mut offset = 0;
    let mut same = true;
    for_each_value_chunk(index, seed, len, |piece| {
        same = got[offset..offset + piece.len()] == *piece;
        offset += piece.len();
        same
    });
    same
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width() {
        let mut out = Vec::new();
        push_key(&mut out, 123);
        assert_eq!(out, b"key:000000123");
        out.clear();
        push_key(&mut out, KEYSPACE_MAX - 1);
        assert_eq!(out, b"key:999999999");
        for index in [0, 7, 10, 99, 100, 12_345, 100_000_000, 987_654_321] {
            out.clear();
            push_key(&mut out, index);
            assert_eq!(out, format!("key:{index:09}").as_bytes());
        }
        assert_eq!(out.len(), KEY_LEN_BYTES);
    }

    #[test]
    fn values_are_deterministic_and_checkable() {
        for len in [0usize, 1, 7, 8, 9, 16, 100, 4096] {
            let mut a = Vec::new();
            let mut b = Vec::new();
            push_value(&mut a, 5, 99, len);
            push_value(&mut b, 5, 99, len);
            assert_eq!(a, b);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|byte| VALUE_ALPHABET.contains(byte)));
            assert!(value_matches(&a, 5, 99, len));
        }
    }

    #[test]
    fn values_depend_on_key_and_seed() {
        let value = |index, seed| {
            let mut out = Vec::new();
            push_value(&mut out, index, seed, 32);
            out
        };
        assert_ne!(value(1, 1), value(2, 1));
        assert_ne!(value(1, 1), value(1, 2));
        assert!(!value_matches(&value(1, 1), 1, 2, 32));
    }

    #[test]
    fn value_mismatch_is_detected_anywhere() {
        let mut good = Vec::new();
        push_value(&mut good, 77, 3, 20);
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            assert!(!value_matches(&bad, 77, 3, 20), "flip at {at} not seen");
        }
        assert!(!value_matches(&good[..19], 77, 3, 20));
        assert!(!value_matches(&good, 77, 3, 21));
    }
}

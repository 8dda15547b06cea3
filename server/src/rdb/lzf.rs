//! LZF, the compression of RDB strings: `compress` is Redis's `lzf_compress` (liblzf 3.6 as
//! Redis builds it: HLOG 16, VERY_FAST, no ULTRA_FAST) step for step, so DUMP of a
//! compressible value gives Redis's bytes; `decompress` is `lzf_decompress` with its input
//! checks, returning `None` on any damage instead of reading or writing out of bounds.
//!
//! Redis leaves the hash table uninitialised (stack garbage that fails the bounds checks);
//! here an empty slot is simply no candidate, which is what those checks make of it.
//!
//! Format: `000LLLLL` then L+1 literal bytes; `LLLooooo oooooooo` a back reference of L+2
//! bytes at distance o+1; `111ooooo LLLLLLLL oooooooo` the same with length L+9.

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);
/// The most output one input byte can produce (a 3-byte back reference of 264 bytes).
pub const EXPANSION_MAX: usize = MAX_REF.div_ceil(3);

fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// The hash table, kept per thread from one call to the next: a slot holds the call that
/// wrote it (high 32 bits) and a position plus one, and a slot of an earlier call is empty.
/// Each call so sees a fresh table without zeroing 512 KiB first, which cost more than
/// compressing a short string (a full sync tries every value longer than 20 bytes).
struct Table {
    slots: Vec<u64>,
    call: u32,
}

impl Table {
    /// Starts a call: every slot empty.
    fn start(&mut self) {
        if self.slots.is_empty() {
            self.slots = vec![0; HSIZE];
        }
        self.call = self.call.wrapping_add(1);
        if self.call == 0 {
            self.slots.fill(0);
            self.call = 1;
        }
    }

    /// The position plus one in `slot`, 0 when empty.
    fn get(&self, slot: usize) -> usize {
        let v = self.slots[slot];
        if (v >> 32) as u32 == self.call {
            v as u32 as usize
        } else {
            0
        }
    }

    fn set(&mut self, slot: usize, ip: usize) {
        self.slots[slot] = (u64::from(self.call) << 32) | (ip as u64 + 1);
    }
}

thread_local! {
    static TABLE: std::cell::RefCell<Table> = const {
        std::cell::RefCell::new(Table { slots: Vec::new(), call: 0 })
    };
}

/// Compresses `input` into at most `out_len` bytes; `None` when it does not fit (Redis then
/// stores the string as it is). Inputs over 4 GiB are not compressed.
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len == 0 || out_len == 0 || u32::try_from(in_len).is_err() {
        return None;
    }
    TABLE.with(|t| {
        let mut htab = t.borrow_mut();
        htab.start();
        compress_with(&mut htab, input, out_len)
    })
}

fn compress_with(htab: &mut Table, input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    // Slack past `out_len` so the run header C writes one past the end stays in bounds; the
    // result is refused below if it used any of it.
    let mut out = vec![0u8; out_len + 4];
    let frst = |p: usize| (u32::from(input[p]) << 8) | u32::from(input[p + 1]);
    let next = |v: u32, p: usize| (v << 8) | u32::from(input[p + 2]);
    let (mut ip, mut op, mut lit) = (0usize, 1usize, 0usize);
    let mut hval = if in_len >= 2 { frst(0) } else { 0 };
    while ip + 2 < in_len {
        hval = next(hval, ip);
        let slot = idx(hval);
        let candidate = htab.get(slot);
        htab.set(slot, ip);
        let matched = candidate != 0 && {
            let r = candidate - 1;
            r < ip
                && ip - r - 1 < MAX_OFF
                && ip + 4 < in_len
                && r > 0
                && input[r..r + 3] == input[ip..ip + 3]
        };
        if !matched {
            if op >= out_len {
                return None;
            }
            push_literal(&mut out, &mut op, &mut lit, input[ip]);
            ip += 1;
            continue;
        }
        let r = candidate - 1;
        let off = ip - r - 1;
        let maxlen = (in_len - ip - 2).min(MAX_REF);
        out[op - lit - 1] = (lit as u8).wrapping_sub(1);
        op -= usize::from(lit == 0);
        if op + 3 + 1 >= out_len {
            return None;
        }
        let len = match_len(input, r, ip, maxlen) - 2;
        ip += 1;
        if len < 7 {
            out[op] = ((off >> 8) + (len << 5)) as u8;
            op += 1;
        } else {
            out[op] = ((off >> 8) + (7 << 5)) as u8;
            out[op + 1] = (len - 7) as u8;
            op += 2;
        }
        out[op] = off as u8;
        op += 2; // and start a new run
        lit = 0;
        ip += len + 1;
        if ip >= in_len - 2 {
            break;
        }
        ip -= 2;
        hval = frst(ip);
        for _ in 0..2 {
            hval = next(hval, ip);
            htab.set(idx(hval), ip);
            ip += 1;
        }
    }
    if op + 3 > out_len {
        return None;
    }
    for &b in &input[ip..] {
        push_literal(&mut out, &mut op, &mut lit, b);
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    if op > out_len {
        return None;
    }
    out.truncate(op);
    Some(out)
}

/// Adds a byte to the literal run whose header is at `op - lit - 1`; a full run gets its
/// header and a new one is started.
fn push_literal(out: &mut [u8], op: &mut usize, lit: &mut usize, b: u8) {
    *lit += 1;
    out[*op] = b;
    *op += 1;
    if *lit == MAX_LIT {
        out[*op - *lit - 1] = (*lit - 1) as u8;
        *lit = 0;
        *op += 1;
    }
}

/// How far the bytes at `r` and `ip` agree, as liblzf measures it: 16 unchecked steps first
/// when more than 16 are allowed, then one at a time up to `maxlen` (so the result may pass
/// `maxlen` by the unrolled steps, never the input).
fn match_len(input: &[u8], r: usize, ip: usize, maxlen: usize) -> usize {
    let mut len = 2;
    if maxlen > 16 {
        for _ in 0..16 {
            len += 1;
            if input[r + len] != input[ip + len] {
                return len;
            }
        }
    }
    loop {
        len += 1;
        if !(len < maxlen && input[r + len] == input[ip + len]) {
            return len;
        }
    }
}

/// Decompresses `input`, which must produce exactly `expected_len` bytes; `None` for damaged
/// input. The output grows with what the input really produces: a declared length never
/// sizes an allocation beyond [`EXPANSION_MAX`] times the input.
pub fn decompress(input: &[u8], expected_len: usize) -> Option<Vec<u8>> {
    let cap = expected_len.min(input.len().saturating_mul(EXPANSION_MAX));
    let mut out: Vec<u8> = Vec::with_capacity(cap);
    let mut ip = 0;
    loop {
        let ctrl = usize::from(*input.get(ip)?);
        ip += 1;
        if ctrl < 1 << 5 {
            let n = ctrl + 1;
            if out.len() + n > expected_len || ip + n > input.len() {
                return None;
            }
            out.extend_from_slice(&input[ip..ip + n]);
            ip += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip)?);
                ip += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + 1 + usize::from(*input.get(ip)?);
            ip += 1;
            if out.len() + len + 2 > expected_len || back > out.len() {
                return None;
            }
            // Byte by byte: the source may overlap what is being written (a run).
            let from = out.len() - back;
            for k in 0..len + 2 {
                out.push(out[from + k]);
            }
        }
        if ip >= input.len() {
            break;
        }
    }
    (out.len() == expected_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) -> Option<usize> {
        let c = compress(data, data.len().saturating_sub(4))?;
        assert_eq!(decompress(&c, data.len()).as_deref(), Some(data));
        Some(c.len())
    }

    #[test]
    fn compresses_and_restores() {
        assert!(round_trip(&[b'a'; 100]).unwrap() < 10);
        let text =
            b"the quick brown fox jumps over the lazy dog; the quick brown fox again".repeat(20);
        assert!(round_trip(&text).unwrap() < text.len() / 4);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..500)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert_eq!(round_trip(&noise), None, "incompressible data does not fit");
        for n in 21..300 {
            let v: Vec<u8> = (0..n).map(|i| b"abcab"[i % 5]).collect();
            round_trip(&v);
        }
    }

    /// Hand-made streams; Redis's own bytes are checked by bench/compat/dump.txt and
    /// .ci/checks/dump-interop.sh.
    #[test]
    fn decodes_literals_and_overlapping_references() {
        // "ab" then a reference of 6 bytes at distance 2: "abababab".
        assert_eq!(
            decompress(&[1, b'a', b'b', 4 << 5, 1], 8).unwrap(),
            b"abababab"
        );
        // Long reference: 7+2+3 = 12 bytes of 'x'.
        assert_eq!(
            decompress(&[0, b'x', 7 << 5, 3, 0], 13).unwrap(),
            vec![b'x'; 13]
        );
    }

    #[test]
    fn damage_is_refused() {
        assert_eq!(decompress(&[], 0), None);
        assert_eq!(decompress(&[5, b'a'], 6), None, "literal past the input");
        assert_eq!(
            decompress(&[0, b'a', 1 << 5, 5], 4),
            None,
            "reference before the start"
        );
        assert_eq!(decompress(&[1, b'a', b'b'], 1), None, "more than declared");
        assert_eq!(decompress(&[1, b'a', b'b'], 3), None, "less than declared");
        assert_eq!(
            decompress(&[0, b'a', 7 << 5], 20),
            None,
            "truncated reference"
        );
    }
}

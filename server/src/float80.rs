//! INCRBYFLOAT's arithmetic as Redis does it on x86-64: C `long double`, the x87 80-bit
//! extended format (64-bit significand, exponents down to 2^-16445 with subnormals), emulated
//! exactly so replies match Redis byte for byte (`0.1 + 0.2` is `0.3` there, not
//! `0.30000000000000004` as in `f64`).
//!
//! - [`parse`] is Redis's `string2ld`: glibc `strtold` (decimal, hexadecimal, `inf`,
//!   `infinity`; correctly rounded), refusing a leading blank, unparsed trailing bytes, NaN,
//!   and overflow or underflow to zero.
//! - [`add`] is `value += incr`, rounded to nearest, ties to even.
//! - [`format_human`] is Redis's `ld2string(LD_STR_HUMAN)`: `printf("%.17Lf")` (exact decimal
//!   expansion, rounded to nearest, ties to even), trailing zeros and a trailing `.` removed,
//!   `-0` written `0`.
//!
//! Exactness comes from a small unsigned big integer ([`Big`]); the numbers stay below about
//! 33,000 bits because inputs are capped at 5 KiB like Redis's.

use std::cmp::Ordering;

/// An x87 extended-precision value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F80 {
    /// `mant * 2^exp`; normal values have the top bit of `mant` set, subnormals have
    /// `exp == EXP_MIN`; zero has `mant == 0`.
    Finite {
        neg: bool,
        mant: u64,
        exp: i32,
    },
    Inf {
        neg: bool,
    },
    Nan,
}

/// Exponent of the least significant bit of the smallest values (2^-16445 is the smallest
/// subnormal).
const EXP_MIN: i64 = -16445;
/// Largest exponent of a normalized 64-bit significand (the largest finite value is
/// `(2^64 - 1) * 2^16320`).
const EXP_MAX: i64 = 16320;
/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer input is refused.
pub const INPUT_LEN_MAX: usize = 5 * 1024;
/// Decimal exponents are clamped to this before any arithmetic: far past where every input
/// of at most `INPUT_LEN_MAX` digits overflows or underflows.
const EXP10_CLAMP: i64 = 1_000_000;

impl F80 {
    pub const ZERO: F80 = F80::Finite {
        neg: false,
        mant: 0,
        exp: 0,
    };

    pub fn is_finite(self) -> bool {
        matches!(self, F80::Finite { .. })
    }
}

/// Redis's `string2ld`: `None` for "value is not a valid float".
pub fn parse(s: &[u8]) -> Option<F80> {
    if s.is_empty() || s.len() >= INPUT_LEN_MAX || is_c_space(s[0]) {
        return None;
    }
    let (neg, body) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(F80::Inf { neg });
    }
    let value = if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
        parse_hex(neg, &body[2..])?
    } else {
        parse_decimal(neg, body)?
    };
    // strtold's ERANGE: overflow to infinity, or a nonzero input rounded to zero. Redis
    // refuses both (subnormal results are accepted).
    match value {
        F80::Finite { .. } => Some(value),
        _ => None,
    }
}

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Digits, an optional fraction and an optional exponent (`e`, decimal) spanning all of
/// `s`. Returns `Inf` for overflow and `Nan` for a nonzero value that underflows to zero, so
/// the caller refuses both.
fn parse_decimal(neg: bool, s: &[u8]) -> Option<F80> {
    let (mantissa, exp_part) = split_exponent(s, b'e');
    let (digits, frac_len) = digits_of(mantissa, |b| b.is_ascii_digit())?;
    let exp10 = match exp_part {
        Some(e) => parse_exponent(e)?,
        None => 0,
    };
    // Significant digits only: leading zeros dropped, trailing zeros moved to the exponent.
    let first = digits.iter().position(|&d| d != b'0');
    let Some(first) = first else {
        return Some(F80::Finite {
            neg,
            mant: 0,
            exp: 0,
        });
    };
    let last = digits.iter().rposition(|&d| d != b'0').unwrap_or(first);
    let sig = &digits[first..=last];
    let exp10 = exp10 - frac_len as i64 + (digits.len() - 1 - last) as i64;
    let nd = sig.len() as i64;
    // The value is in [10^(nd + exp10 - 1), 10^(nd + exp10)).
    if nd + exp10 - 1 > 4933 {
        return Some(F80::Inf { neg });
    }
    if nd + exp10 < -4952 {
        return Some(F80::Nan);
    }
    let mut n = Big::default();
    for chunk in sig.chunks(9) {
        let mut v = 0u32;
        for &d in chunk {
            v = v * 10 + u32::from(d - b'0');
        }
        n.mul_small(10u32.pow(chunk.len() as u32));
        n.add_small(v);
    }
    let value = if exp10 >= 0 {
        n.mul_pow10(exp10 as u32);
        round(neg, &n, 0, false)
    } else {
        let mut den = Big::from_u64(1);
        den.mul_pow10((-exp10) as u32);
        // q = floor(n * 2^shift / den) with 66 or 67 significant bits, and whether inexact.
        let shift = den.bit_len() as i64 + 67 - n.bit_len() as i64;
        let (num, den) = if shift >= 0 {
            (n.shl(shift as usize), den)
        } else {
            (n, den.shl((-shift) as usize))
        };
        let (q, inexact) = divide_small_quotient(num, &den);
        round(neg, &Big::from_u128(q), -shift, inexact)
    };
    Some(underflow_as_nan(value))
}

/// `0x` already removed: hex digits, an optional fraction and an optional binary exponent
/// (`p`, decimal).
fn parse_hex(neg: bool, s: &[u8]) -> Option<F80> {
    let (mantissa, exp_part) = split_exponent(s, b'p');
    let (digits, frac_len) = digits_of(mantissa, |b| b.is_ascii_hexdigit())?;
    let exp2 = match exp_part {
        Some(e) => parse_exponent(e)?,
        None => 0,
    };
    let mut n = Big::default();
    for d in digits {
        n.mul_small(16);
        n.add_small(char::from(d).to_digit(16).unwrap_or(0));
    }
    if n.is_zero() {
        return Some(F80::Finite {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let exp = exp2 - 4 * frac_len as i64;
    let top = n.bit_len() as i64 + exp;
    if top > EXP_MAX + 66 {
        return Some(F80::Inf { neg });
    }
    if top < EXP_MIN - 2 {
        return Some(F80::Nan);
    }
    Some(underflow_as_nan(round(neg, &n, exp, false)))
}

/// A nonzero input that rounded to zero: strtold's ERANGE underflow, refused by Redis.
fn underflow_as_nan(v: F80) -> F80 {
    match v {
        F80::Finite { mant: 0, .. } => F80::Nan,
        v => v,
    }
}

/// Splits at the first exponent marker (`e`/`E` or `p`/`P`).
fn split_exponent(s: &[u8], marker: u8) -> (&[u8], Option<&[u8]>) {
    match s.iter().position(|&b| (b | 0x20) == marker) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// The digits of `int[.frac]` (at least one digit in all, nothing else) and how many came
/// after the point.
fn digits_of(s: &[u8], is_digit: impl Fn(u8) -> bool) -> Option<(Vec<u8>, usize)> {
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[][..]),
    };
    if int.len() + frac.len() == 0 || !int.iter().chain(frac).all(|&b| is_digit(b)) {
        return None;
    }
    let mut digits = Vec::with_capacity(int.len() + frac.len());
    digits.extend_from_slice(int);
    digits.extend_from_slice(frac);
    Some((digits, frac.len()))
}

/// An exponent: optional sign and at least one decimal digit, clamped to ±`EXP10_CLAMP`.
fn parse_exponent(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = (v * 10 + i64::from(d - b'0')).min(EXP10_CLAMP);
    }
    Some(if neg { -v } else { v })
}

/// `floor(num / den)` (known to be below 2^68) and whether a remainder was left.
fn divide_small_quotient(mut num: Big, den: &Big) -> (u128, bool) {
    let mut q: u128 = 0;
    for i in (0..68).rev() {
        let shifted = den.shl(i);
        if num.cmp_to(&shifted) != Ordering::Less {
            num.sub_assign(&shifted);
            q |= 1 << i;
        }
    }
    (q, !num.is_zero())
}

/// `m * 2^exp` (plus a little more when `sticky`) rounded to the nearest extended value,
/// ties to even; `Inf` past the largest.
fn round(neg: bool, m: &Big, exp: i64, sticky: bool) -> F80 {
    let bl = m.bit_len() as i64;
    if bl == 0 {
        return F80::Finite {
            neg,
            mant: 0,
            exp: 0,
        };
    }
    let mut shift = bl - 64;
    if exp + shift < EXP_MIN {
        shift = EXP_MIN - exp;
    }
    let mut e = exp + shift;
    let mant = if shift <= 0 {
        m.bits_from(0) << (-shift)
    } else {
        let s = shift as usize;
        let top = m.bits_from(s);
        let half = m.bit(s - 1);
        let rest = sticky || m.any_below(s - 1);
        if half && (rest || top & 1 == 1) {
            match top.checked_add(1) {
                Some(t) => t,
                None => {
                    e += 1;
                    1 << 63
                }
            }
        } else {
            top
        }
    };
    if mant == 0 {
        return F80::Finite {
            neg,
            mant: 0,
            exp: 0,
        };
    }
    // A significand with its top bit set at an exponent past EXP_MAX is too large.
    if e + 63 - mant.leading_zeros() as i64 > EXP_MAX + 63 {
        return F80::Inf { neg };
    }
    F80::Finite {
        neg,
        mant,
        exp: e as i32,
    }
}

/// `a + b` as x87 `fadd` in round-to-nearest.
pub fn add(a: F80, b: F80) -> F80 {
    match (a, b) {
        (F80::Nan, _) | (_, F80::Nan) => F80::Nan,
        (F80::Inf { neg: x }, F80::Inf { neg: y }) if x != y => F80::Nan,
        (F80::Inf { neg }, _) | (_, F80::Inf { neg }) => F80::Inf { neg },
        // The sign of a zero never shows: Redis prints -0 as 0.
        (F80::Finite { mant: 0, .. }, F80::Finite { mant: 0, .. }) => F80::ZERO,
        (F80::Finite { mant: 0, .. }, v) | (v, F80::Finite { mant: 0, .. }) => v,
        (
            F80::Finite {
                neg: na,
                mant: ma,
                exp: ea,
            },
            F80::Finite {
                neg: nb,
                mant: mb,
                exp: eb,
            },
        ) => {
            let e = ea.min(eb);
            let x = Big::from_u64(ma).shl((ea - e) as usize);
            let y = Big::from_u64(mb).shl((eb - e) as usize);
            let (neg, sum) = if na == nb {
                (na, x.add(&y))
            } else {
                match x.cmp_to(&y) {
                    Ordering::Equal => return F80::ZERO,
                    Ordering::Greater => {
                        let mut d = x;
                        d.sub_assign(&y);
                        (na, d)
                    }
                    Ordering::Less => {
                        let mut d = y;
                        d.sub_assign(&x);
                        (nb, d)
                    }
                }
            };
            round(neg, &sum, i64::from(e), false)
        }
    }
}

/// Redis's `ld2string(..., LD_STR_HUMAN)` of a finite value: `%.17Lf`, trailing zeros and
/// point removed, `-0` as `0`. Non-finite values (which INCRBYFLOAT never stores) give
/// `inf`, `-inf` or `nan`.
pub fn format_human(v: F80) -> String {
    let (neg, mant, exp) = match v {
        F80::Finite { neg, mant, exp } => (neg, mant, exp),
        F80::Inf { neg: false } => return "inf".into(),
        F80::Inf { neg: true } => return "-inf".into(),
        F80::Nan => return "nan".into(),
    };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if exp >= 0 {
        // An integer: the 17 zeros after the point are all removed.
        s.push_str(&Big::from_u64(mant).shl(exp as usize).to_decimal());
    } else {
        const SCALE: u128 = 100_000_000_000_000_000; // 10^17
        let k = (-exp) as u32;
        // mant * 10^17 < 2^121, so it fits, and from k = 122 on it rounds to 0.
        let scaled = u128::from(mant) * SCALE;
        let q = if k >= 122 {
            0
        } else {
            let q = scaled >> k;
            let rem = scaled & ((1u128 << k) - 1);
            let half = 1u128 << (k - 1);
            if rem > half || (rem == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        };
        s.push_str(&format!("{}.{:017}", q / SCALE, q % SCALE));
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// An unsigned big integer: little-endian 32-bit limbs, no high zero limbs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        Big::from_u128(u128::from(v))
    }

    fn from_u128(mut v: u128) -> Big {
        let mut limbs = Vec::new();
        while v > 0 {
            limbs.push(v as u32);
            v >>= 32;
        }
        Big(limbs)
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
        self.trim();
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            if carry == 0 {
                return;
            }
            let v = u64::from(*limb) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow10(&mut self, mut n: u32) {
        while n >= 9 {
            self.mul_small(1_000_000_000);
            n -= 9;
        }
        self.mul_small(10u32.pow(n));
    }

    fn bit_len(&self) -> usize {
        match self.0.last() {
            Some(&top) => self.0.len() * 32 - top.leading_zeros() as usize,
            None => 0,
        }
    }

    fn bit(&self, i: usize) -> bool {
        self.0.get(i / 32).is_some_and(|l| (l >> (i % 32)) & 1 == 1)
    }

    /// Whether any bit below `i` is set.
    fn any_below(&self, i: usize) -> bool {
        let full = (i / 32).min(self.0.len());
        if self.0[..full].iter().any(|&l| l != 0) {
            return true;
        }
        let part = i % 32;
        part > 0
            && self
                .0
                .get(i / 32)
                .is_some_and(|l| l & ((1 << part) - 1) != 0)
    }

    /// The 64 bits starting at bit `from`.
    fn bits_from(&self, from: usize) -> u64 {
        let mut v = 0u64;
        for j in 0..64 {
            if self.bit(from + j) {
                v |= 1 << j;
            }
        }
        v
    }

    fn shl(&self, bits: usize) -> Big {
        if self.is_zero() {
            return Big::default();
        }
        let (limbs, rem) = (bits / 32, bits % 32);
        let mut out = vec![0u32; limbs];
        out.reserve(self.0.len() + 1);
        if rem == 0 {
            out.extend_from_slice(&self.0);
        } else {
            let mut carry = 0u32;
            for &l in &self.0 {
                out.push((l << rem) | carry);
                carry = l >> (32 - rem);
            }
            out.push(carry);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn cmp_to(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    fn add(&self, other: &Big) -> Big {
        let (long, short) = if self.0.len() >= other.0.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut out = Vec::with_capacity(long.0.len() + 1);
        let mut carry = 0u64;
        for (i, &l) in long.0.iter().enumerate() {
            let v = u64::from(l) + u64::from(short.0.get(i).copied().unwrap_or(0)) + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        Big(out)
    }

    /// `self -= other`; `self >= other`.
    fn sub_assign(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let v = i64::from(self.0[i]) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            if v < 0 {
                self.0[i] = (v + (1 << 32)) as u32;
                borrow = 1;
            } else {
                self.0[i] = v as u32;
                borrow = 0;
            }
        }
        debug_assert_eq!(borrow, 0, "subtracted a larger number");
        self.trim();
    }

    fn divmod_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*limb);
            *limb = (v / u64::from(d)) as u32;
            rem = v % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut n = self.clone();
        let mut chunks = Vec::new();
        while !n.is_zero() {
            chunks.push(n.divmod_small(1_000_000_000));
        }
        let mut s = chunks.pop().map(|c| c.to_string()).unwrap_or_default();
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// INCRBYFLOAT as Redis: parse both, add, format.
    fn incr(value: &str, by: &str) -> Result<String, &'static str> {
        let v = parse(value.as_bytes()).ok_or("value is not a valid float")?;
        let b = parse(by.as_bytes()).ok_or("value is not a valid float")?;
        let sum = add(v, b);
        if !sum.is_finite() {
            return Err("increment would produce NaN or Infinity");
        }
        Ok(format_human(sum))
    }

    /// Replies of redis-server 7.0.15 on x86-64 (`SET k <value>`, `INCRBYFLOAT k <by>`).
    #[test]
    fn matches_redis_on_x86_64() {
        let cases: &[(&str, &str, &str)] = &[
            ("0", "1.5", "1.5"),
            ("10.5", "0.1", "10.6"),
            ("0.1", "0.2", "0.3"),
            ("1.5", "0.1", "1.6"),
            ("1.6", "-0.6", "1"),
            ("11", "1e2", "111"),
            ("111", "1E-2", "111.01"),
            ("111.01", "-1.01e2", "10.01"),
            ("10.01", "5.0e3", "5010.00999999999999979"),
            ("5013.01", "0.0000001", "5013.01000009999999962"),
            (
                "5013.01000009999999962",
                "123456789.123456789",
                "123461802.13345688900153618",
            ),
            ("10.5", "1e17", "100000000000000010.5"),
            ("100000000000000010.5", "1e20", "100100000000000000008"),
            ("0", "1e-20", "0"),
            ("3", "0x1.8p1", "6"),
            ("0x1p3", "1", "9"),
            ("-5", "5", "0"),
            ("0", "-0.0", "0"),
            ("0", ".5", "0.5"),
            ("0", "5.", "5"),
            ("0", "+1.5", "1.5"),
            ("0", "0x10", "16"),
            ("0", "1e-4950", "0"),
            ("0", "-1e-20", "0"),
        ];
        for (value, by, want) in cases {
            assert_eq!(incr(value, by).as_deref(), Ok(*want), "{value} + {by}");
        }
        let big = incr("0", "1.7976931348623157e308").unwrap();
        assert!(big.starts_with("17976931348623156999592104677410443404838644694432917"));
        assert_eq!(big.len(), 309);
        let huge = incr("0", "1e400").unwrap();
        assert!(huge.starts_with("10000000000000000000281880683947586514586453433629052"));
        assert_eq!(huge.len(), 401);
        assert!(incr("0", "1e4932").is_ok());
    }

    #[test]
    fn refuses_like_redis() {
        for bad in [
            "", " 1", "1 ", "\t1", "abc", "1.5abc", "nan", "NaN", "-nan", "nan(123)", "1e", "1e+",
            "0x", "0xg", ".", "-", "+", "1e4933", "-1e4933", "1e-4952", "1\0", "\0", "0x1p",
            "infinit", "1..2", "1e1.5",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse(&vec![b'1'; INPUT_LEN_MAX]), None);
        assert!(parse(&vec![b'1'; 5000]).is_none(), "overflows");
        assert!(parse(&vec![b'1'; 4000]).is_some(), "1.1e3999 is finite");
        assert!(parse(&[b"0.".as_slice(), &vec![b'0'; 4000], b"1"].concat()).is_some());
        for inf in ["inf", "-inf", "+INF", "Infinity", "-INFINITY"] {
            assert!(
                matches!(parse(inf.as_bytes()), Some(F80::Inf { .. })),
                "{inf}"
            );
        }
        assert_eq!(
            incr("0", "inf"),
            Err("increment would produce NaN or Infinity")
        );
        assert_eq!(
            incr("1.7976931348623157e4932", "1e4932"),
            Err("value is not a valid float")
        );
        assert_eq!(
            incr("1.18e4932", "1e4931"),
            Err("increment would produce NaN or Infinity")
        );
    }

    #[test]
    fn exact_ties_round_to_even() {
        // 2^-18 = 0.000003814697265625: 18 decimals, the last a 5.
        assert_eq!(incr("0", "0x1p-18").unwrap(), "0.00000381469726562");
        // 3 * 2^-18 = 0.000011444091796875
        assert_eq!(incr("0", "0x3p-18").unwrap(), "0.00001144409179688");
        // Parsing ties: 2^64 + 1 is halfway between two 64-bit significands.
        assert_eq!(
            incr("0", "18446744073709551617").unwrap(),
            "18446744073709551616"
        );
        assert_eq!(
            incr("0", "18446744073709551619").unwrap(),
            "18446744073709551620"
        );
    }

    #[test]
    fn subnormals_and_extremes() {
        let min = parse(b"0x1p-16445").unwrap();
        assert_eq!(
            min,
            F80::Finite {
                neg: false,
                mant: 1,
                exp: -16445
            }
        );
        assert_eq!(
            parse(b"0x1p-16446"),
            None,
            "halfway to the smallest: ties to 0"
        );
        assert!(
            parse(b"0x1.8p-16446").is_some(),
            "above halfway: the smallest"
        );
        assert_eq!(
            add(min, min),
            F80::Finite {
                neg: false,
                mant: 2,
                exp: -16445
            }
        );
        let max = parse(b"0xffffffffffffffffp16320").unwrap();
        assert!(max.is_finite());
        assert!(!add(max, parse(b"0x1p16320").unwrap()).is_finite());
        assert_eq!(parse(b"0x1p16384"), None);
    }

    #[test]
    fn big_integers() {
        let mut n = Big::from_u64(1);
        n.mul_pow10(30);
        assert_eq!(n.to_decimal(), format!("1{}", "0".repeat(30)));
        let s = n.shl(70);
        assert_eq!(s.bit_len(), n.bit_len() + 70);
        let mut d = s.add(&n);
        d.sub_assign(&s);
        assert_eq!(d, n);
        assert_eq!(Big::from_u64(u64::MAX).add(&Big::from_u64(1)).bit_len(), 65);
        let (q, inexact) = divide_small_quotient(Big::from_u64(100), &Big::from_u64(7));
        assert_eq!((q, inexact), (14, true));
    }
}

//! Reply encoders. Each appends one reply to `out`; none allocates beyond growing `out`.
//!
//! Most replies are the same bytes in RESP2 and RESP3. Those that differ take the client's
//! protocol version (`resp`, 2 or 3, from HELLO) and write RESP3's type when it is 3: the null
//! (`_`), maps (`%`), sets (`~`), doubles (`,`) and verbatim strings (`=`), as Redis 7.0's
//! `addReplyNull`, `addReplyMapLen`, `addReplySetLen`, `addReplyDouble` and
//! `addReplyVerbatim` do.

/// `+OK\r\n`
pub fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// `+<s>\r\n`. `s` must not hold CR or LF.
pub fn simple(out: &mut Vec<u8>, s: &[u8]) {
    debug_assert!(!s.contains(&b'\r') && !s.contains(&b'\n'));
    out.push(b'+');
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

/// `-<msg>\r\n`, where `msg` starts with the error code (`ERR ...`, `NOAUTH ...`). Like Redis,
/// CR and LF inside the message become spaces so the reply stays one line.
pub fn error(out: &mut Vec<u8>, msg: &[u8]) {
    out.push(b'-');
    out.extend(
        msg.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// `-ERR <msg>\r\n`, CR and LF in `msg` turned into spaces.
pub fn err(out: &mut Vec<u8>, msg: &str) {
    out.extend_from_slice(b"-ERR ");
    out.extend(
        msg.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// `:<n>\r\n`
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_i64(out, n);
    out.extend_from_slice(b"\r\n");
}

/// `$<len>\r\n<bytes>\r\n`
pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 16);
    out.push(b'$');
    push_u64(out, bytes.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// The null: `$-1\r\n` (the null bulk) in RESP2, `_\r\n` in RESP3.
#[inline]
pub fn null(out: &mut Vec<u8>, resp: u8) {
    if resp >= 3 {
        out.extend_from_slice(b"_\r\n");
    } else {
        out.extend_from_slice(b"$-1\r\n");
    }
}

/// `*<n>\r\n`: the header of an array of `n` replies that follow.
pub fn array_len(out: &mut Vec<u8>, n: usize) {
    aggregate_len(out, b'*', n);
}

/// `<tag><n>\r\n`: the header of an aggregate reply (array `*`, map `%`, set `~`, push `>`).
pub fn aggregate_len(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    push_u64(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// The header of a map of `n` key-value pairs that follow (keys and values alternating):
/// `%n` in RESP3, a flat array of `2n` replies in RESP2.
pub fn map_len(out: &mut Vec<u8>, resp: u8, n: usize) {
    if resp >= 3 {
        aggregate_len(out, b'%', n);
    } else {
        array_len(out, 2 * n);
    }
}

/// The header of a set of `n` replies that follow: `~n` in RESP3, an array in RESP2.
pub fn set_len(out: &mut Vec<u8>, resp: u8, n: usize) {
    if resp >= 3 {
        aggregate_len(out, b'~', n);
    } else {
        array_len(out, n);
    }
}

/// The null array: `*-1\r\n` in RESP2, `_\r\n` in RESP3.
pub fn null_array(out: &mut Vec<u8>, resp: u8) {
    if resp >= 3 {
        out.extend_from_slice(b"_\r\n");
    } else {
        out.extend_from_slice(b"*-1\r\n");
    }
}

/// A double as Redis's `addReplyDouble` writes it: `%.17g` (`inf`, `-inf`), as `,<d>` in
/// RESP3 and as a bulk in RESP2.
pub fn double(out: &mut Vec<u8>, resp: u8, d: f64) {
    let text = format_g17(d);
    if resp >= 3 {
        out.push(b',');
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, text.as_bytes());
    }
}

/// Free-form text (INFO, CLIENT LIST, the DOCTORs): a verbatim string `=<len>\r\ntxt:...` in
/// RESP3, a bulk in RESP2.
pub fn verbatim(out: &mut Vec<u8>, resp: u8, text: &[u8]) {
    if resp >= 3 {
        out.reserve(text.len() + 24);
        out.push(b'=');
        push_u64(out, text.len() as u64 + 4);
        out.extend_from_slice(b"\r\ntxt:");
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, text);
    }
}

/// C's `printf("%.17g", d)`: 17 significant digits, trailing zeros removed, exponent form
/// below 1e-4 and from 1e17; `inf`, `-inf` and `nan` as glibc spells them.
pub fn format_g17(d: f64) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // `{:.16e}` gives 17 significant digits, rounded as printf rounds (to nearest).
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if !(-4..17).contains(&exp) {
        let trimmed = digits.trim_end_matches('0');
        s.push_str(&trimmed[..1]);
        if trimmed.len() > 1 {
            s.push('.');
            s.push_str(&trimmed[1..]);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&format!("{:02}", exp.unsigned_abs()));
    } else if exp < 0 {
        s.push_str("0.");
        for _ in 0..(-exp - 1) {
            s.push('0');
        }
        s.push_str(digits.trim_end_matches('0'));
    } else {
        let point = exp as usize + 1;
        let (int, frac) = digits.split_at(point);
        s.push_str(int);
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            s.push('.');
            s.push_str(frac);
        }
    }
    s
}

/// A bulk holding the decimal form of `n`.
pub fn bulk_i64(out: &mut Vec<u8>, n: i64) {
    let mut tmp = [0u8; 20];
    let digits = format_u64(&mut tmp, n.unsigned_abs());
    let len = digits.len() + usize::from(n < 0);
    out.push(b'$');
    push_u64(out, len as u64);
    out.extend_from_slice(b"\r\n");
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
}

/// Appends the decimal form of `n`.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Appends the decimal form of `n`.
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    let mut tmp = [0u8; 20];
    out.extend_from_slice(format_u64(&mut tmp, n));
}

/// The decimal form of `n`, written at the end of `tmp`.
pub fn format_u64(tmp: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &tmp[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn encoders() {
        assert_eq!(enc(ok), b"+OK\r\n");
        assert_eq!(enc(|o| simple(o, b"PONG")), b"+PONG\r\n");
        assert_eq!(enc(|o| err(o, "syntax error")), b"-ERR syntax error\r\n");
        assert_eq!(enc(|o| error(o, b"NOAUTH a\r\nb")), b"-NOAUTH a  b\r\n");
        assert_eq!(enc(|o| integer(o, 0)), b":0\r\n");
        assert_eq!(enc(|o| integer(o, -42)), b":-42\r\n");
        assert_eq!(enc(|o| integer(o, i64::MIN)), b":-9223372036854775808\r\n");
        assert_eq!(enc(|o| integer(o, i64::MAX)), b":9223372036854775807\r\n");
        assert_eq!(enc(|o| bulk(o, b"a\r\nb")), b"$4\r\na\r\nb\r\n");
        assert_eq!(enc(|o| bulk(o, b"")), b"$0\r\n\r\n");
        assert_eq!(enc(|o| null(o, 2)), b"$-1\r\n");
        assert_eq!(enc(|o| null(o, 3)), b"_\r\n");
        assert_eq!(enc(|o| array_len(o, 3)), b"*3\r\n");
        assert_eq!(enc(|o| null_array(o, 2)), b"*-1\r\n");
        assert_eq!(enc(|o| null_array(o, 3)), b"_\r\n");
        assert_eq!(enc(|o| map_len(o, 2, 3)), b"*6\r\n");
        assert_eq!(enc(|o| map_len(o, 3, 3)), b"%3\r\n");
        assert_eq!(enc(|o| set_len(o, 2, 2)), b"*2\r\n");
        assert_eq!(enc(|o| set_len(o, 3, 2)), b"~2\r\n");
        assert_eq!(enc(|o| double(o, 2, 1.5)), b"$3\r\n1.5\r\n");
        assert_eq!(enc(|o| double(o, 3, 1.5)), b",1.5\r\n");
        assert_eq!(enc(|o| verbatim(o, 2, b"a\nb")), b"$3\r\na\nb\r\n");
        assert_eq!(enc(|o| verbatim(o, 3, b"a\nb")), b"=7\r\ntxt:a\nb\r\n");
        assert_eq!(enc(|o| bulk_i64(o, -120)), b"$4\r\n-120\r\n");
        assert_eq!(enc(|o| bulk_i64(o, 7)), b"$1\r\n7\r\n");
    }

    #[test]
    fn doubles_print_as_c_does_with_17_digits() {
        // Values Redis 7.0's MEMORY STATS printed (`%.17g` of a float widened to double).
        assert_eq!(format_g17(f64::from(97.829_124_f32)), "97.829124450683594");
        assert_eq!(format_g17(f64::from(1.126_321_4_f32)), "1.1263214349746704");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(100.0), "100");
        assert_eq!(format_g17(0.0), "0");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(1e16), "10000000000000000");
        assert_eq!(format_g17(0.0001), "0.0001");
        assert_eq!(format_g17(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_g17(-2.5), "-2.5");
        assert_eq!(format_g17(f64::INFINITY), "inf");
        assert_eq!(format_g17(f64::NEG_INFINITY), "-inf");
    }
}

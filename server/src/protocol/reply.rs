//! RESP2 reply encoders. Each appends one reply to `out`; none allocates beyond growing `out`.

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

/// `$-1\r\n`: the null bulk.
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// `*<n>\r\n`: the header of an array of `n` replies that follow.
pub fn array_len(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_u64(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// The header of a map of `n` key-value pairs that follow (keys and values alternating): a
/// flat array of `2n` replies in RESP2.
pub fn map_len(out: &mut Vec<u8>, n: usize) {
    array_len(out, 2 * n);
}

/// `*-1\r\n`: the null array.
pub fn null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
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

fn format_u64(tmp: &mut [u8; 20], mut n: u64) -> &[u8] {
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
        assert_eq!(enc(null), b"$-1\r\n");
        assert_eq!(enc(|o| array_len(o, 3)), b"*3\r\n");
        assert_eq!(enc(null_array), b"*-1\r\n");
        assert_eq!(enc(|o| bulk_i64(o, -120)), b"$4\r\n-120\r\n");
        assert_eq!(enc(|o| bulk_i64(o, 7)), b"$1\r\n7\r\n");
    }
}

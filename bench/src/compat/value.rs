//! RESP2 replies as bytes and as trees: [`reply_len`] frames one reply, [`Value`] parses one
//! for the comparisons that look inside it ([`sorted_reply`], [`head_reply`]).

use super::conn::escape;

/// Bytes of the first complete RESP2 reply in `buf`: `Ok(None)` while incomplete, `Err` when
/// the bytes are not RESP2. Iterative, so nesting depth is not limited.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    let mut pos = 0;
    // Elements still expected by each array being read.
    let mut pending: Vec<i64> = Vec::new();
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(cr) = buf[pos..].iter().position(|&b| b == b'\r') else {
            return Ok(None);
        };
        let line_end = pos + cr;
        match buf.get(line_end + 1) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(format!("CR without LF at byte {line_end}")),
        }
        let line = &buf[pos + 1..line_end];
        let number = || -> Result<i64, String> {
            std::str::from_utf8(line)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("bad length or integer {:?}", escape(line, 40)))
        };
        pos = line_end + 2;
        match kind {
            b'+' | b'-' => {}
            b':' => {
                number()?;
            }
            b'$' => {
                let n = number()?;
                if n >= 0 {
                    let end = pos + n as usize;
                    if buf.len() < end + 2 {
                        return Ok(None);
                    }
                    if &buf[end..end + 2] != b"\r\n" {
                        return Err(format!("bulk of {n} bytes not followed by CRLF"));
                    }
                    pos = end + 2;
                } else if n != -1 {
                    return Err(format!("bulk length {n}"));
                }
            }
            b'*' => {
                let n = number()?;
                if n > 0 {
                    pending.push(n);
                    continue;
                }
                if n < -1 {
                    return Err(format!("array length {n}"));
                }
            }
            other => return Err(format!("unknown reply type byte {:?}", char::from(other))),
        }
        // One element (or a whole reply) is complete: close every array it completes.
        loop {
            match pending.last_mut() {
                None => return Ok(Some(pos)),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    pending.pop();
                }
            }
        }
    }
}

/// A parsed RESP2 reply, for the comparisons that look inside one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    /// Parses the bytes of one complete reply (as [`Outcome::Reply`] holds).
    pub fn parse(bytes: &[u8]) -> Option<Value> {
        let (v, used) = Value::parse_at(bytes, 0)?;
        (used == bytes.len()).then_some(v)
    }

    fn parse_at(b: &[u8], at: usize) -> Option<(Value, usize)> {
        let kind = *b.get(at)?;
        let cr = at + memchr_cr(&b[at..])?;
        let line = &b[at + 1..cr];
        let after = cr + 2;
        let text = std::str::from_utf8(line).ok();
        match kind {
            b'+' => Some((Value::Simple(line.to_vec()), after)),
            b'-' => Some((Value::Error(line.to_vec()), after)),
            b':' => Some((Value::Integer(text?.parse().ok()?), after)),
            b'$' => {
                let n: i64 = text?.parse().ok()?;
                if n < 0 {
                    return Some((Value::Bulk(None), after));
                }
                let end = after + n as usize;
                Some((Value::Bulk(Some(b.get(after..end)?.to_vec())), end + 2))
            }
            b'*' => {
                let n: i64 = text?.parse().ok()?;
                if n < 0 {
                    return Some((Value::Array(None), after));
                }
                let mut items = Vec::new();
                let mut pos = after;
                for _ in 0..n {
                    let (v, next) = Value::parse_at(b, pos)?;
                    items.push(v);
                    pos = next;
                }
                Some((Value::Array(Some(items)), pos))
            }
            _ => None,
        }
    }

    /// The RESP2 bytes of this value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Simple(s) => {
                out.push(b'+');
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Value::Error(s) => {
                out.push(b'-');
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Value::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Value::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Value::Bulk(Some(s)) => {
                out.extend_from_slice(format!("${}\r\n", s.len()).as_bytes());
                out.extend_from_slice(s);
                out.extend_from_slice(b"\r\n");
            }
            Value::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Value::Array(Some(items)) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                for v in items {
                    v.encode(out);
                }
            }
        }
    }

    /// Sorts, recursively, every array whose elements are all bulk strings.
    pub fn sort_bulk_arrays(&mut self) {
        if let Value::Array(Some(items)) = self {
            for v in items.iter_mut() {
                v.sort_bulk_arrays();
            }
            if items.iter().all(|v| matches!(v, Value::Bulk(Some(_)))) {
                items.sort();
            }
        }
    }
}

fn memchr_cr(b: &[u8]) -> Option<usize> {
    let i = b.iter().position(|&c| c == b'\r')?;
    (b.get(i + 1) == Some(&b'\n')).then_some(i)
}

/// The bytes of `reply` with every all-bulk array sorted (unchanged if it does not parse).
pub fn sorted_reply(reply: &[u8]) -> Vec<u8> {
    match Value::parse(reply) {
        Some(mut v) => {
            v.sort_bulk_arrays();
            let mut out = Vec::with_capacity(reply.len());
            v.encode(&mut out);
            out
        }
        None => reply.to_vec(),
    }
}

/// The bytes of `reply` with each element of its top-level array cut to its first `n`
/// elements (unchanged if it does not parse or is not an array).
pub fn head_reply(reply: &[u8], n: usize) -> Vec<u8> {
    match Value::parse(reply) {
        Some(Value::Array(Some(mut items))) => {
            for item in &mut items {
                if let Value::Array(Some(parts)) = item {
                    parts.truncate(n);
                }
            }
            let mut out = Vec::with_capacity(reply.len());
            Value::Array(Some(items)).encode(&mut out);
            out
        }
        _ => reply.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_one_reply_at_any_depth() {
        let deep = [b"*1\r\n".repeat(40), b":1\r\n".to_vec()].concat();
        assert_eq!(reply_len(&deep), Ok(Some(deep.len())));
        let two = b"*2\r\n$3\r\na\r\n\r\n*0\r\n+OK\r\n";
        assert_eq!(reply_len(two), Ok(Some(two.len() - 5)));
        for cut in 0..two.len() - 5 {
            assert_eq!(reply_len(&two[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(reply_len(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(reply_len(b"*-1\r\n"), Ok(Some(5)));
        assert!(reply_len(b"?\r\n").is_err());
        assert!(reply_len(b"$3\r\nabcXY").is_err());
        assert!(reply_len(b":x\r\n").is_err());
    }

    #[test]
    fn values_round_trip() {
        let bytes = b"*5\r\n+OK\r\n-ERR x\r\n:-3\r\n*2\r\n$-1\r\n*-1\r\n$4\r\na\r\nb\r\n";
        let v = Value::parse(bytes).expect("parses");
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(Value::parse(b"+OK\r\n+OK\r\n"), None, "one reply only");
    }
}

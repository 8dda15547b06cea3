//! Replies parsed into [`Value`] trees, for the comparisons that look inside one
//! ([`sorted_reply`], [`head_reply`], integers within a tolerance). The bytes are read by
//! flin-bench's parser ([`parse_element`]); this file only assembles its elements into trees.

use crate::resp::{parse_element, Reply};

/// A parsed RESP2 reply, for the comparisons that look inside one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// `+...`
    Simple(Vec<u8>),
    /// `-...`
    Error(Vec<u8>),
    /// `:n`
    Integer(i64),
    /// `$n`, `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n`, `None` for `*-1`.
    Array(Option<Vec<Value>>),
}

impl Value {
    /// Parses the bytes of one complete reply (as [`super::Outcome::Reply`] holds); `None`
    /// unless `bytes` is exactly one valid reply.
    pub fn parse(bytes: &[u8]) -> Option<Value> {
        // Arrays being filled, innermost last: their items so far and how many they still
        // expect. A loop instead of recursion, so nesting depth costs no stack.
        let mut open: Vec<(Vec<Value>, usize)> = Vec::new();
        let mut at = 0;
        loop {
            let (element, next) = parse_element(bytes, at).ok()??;
            at = next;
            let mut value = match element {
                Reply::Array(len) if len > 0 => {
                    open.push((Vec::new(), len));
                    continue;
                }
                scalar => Value::from(scalar),
            };
            // Put the value in its array, and each array it completes in its parent.
            loop {
                let Some((items, left)) = open.last_mut() else {
                    return (at == bytes.len()).then_some(value);
                };
                items.push(value);
                *left -= 1;
                if *left > 0 {
                    break;
                }
                let (items, _) = open.pop()?;
                value = Value::Array(Some(items));
            }
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

impl From<Reply<'_>> for Value {
    /// A scalar as a value; an array header as an empty array (callers fill arrays).
    fn from(reply: Reply<'_>) -> Self {
        match reply {
            Reply::Simple(line) => Value::Simple(line.to_vec()),
            Reply::Error(line) => Value::Error(line.to_vec()),
            Reply::Integer(n) => Value::Integer(n),
            Reply::Bulk(bytes) => Value::Bulk(Some(bytes.to_vec())),
            Reply::NullBulk => Value::Bulk(None),
            Reply::Array(_) => Value::Array(Some(Vec::new())),
            Reply::NullArray => Value::Array(None),
        }
    }
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
    fn values_round_trip() {
        let bytes = b"*5\r\n+OK\r\n-ERR x\r\n:-3\r\n*2\r\n$-1\r\n*-1\r\n$4\r\na\r\nb\r\n";
        let v = Value::parse(bytes).expect("parses");
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(Value::parse(b"+OK\r\n+OK\r\n"), None, "one reply only");
        assert_eq!(Value::parse(b"*2\r\n:1\r\n"), None, "incomplete");
        let deep = [b"*1\r\n".repeat(40), b":1\r\n".to_vec()].concat();
        let mut out = Vec::new();
        Value::parse(&deep).expect("any depth").encode(&mut out);
        assert_eq!(out, deep);
    }
}

//! Replies parsed into [`Value`] trees, for the comparisons that look inside one
//! ([`sorted_reply`], [`head_reply`], integers within a tolerance). The bytes are read by
//! flin-bench's parser ([`parse_element`]); this file only assembles its elements into trees.

use crate::resp::{parse_element, Reply};

/// A parsed RESP2 or RESP3 reply, for the comparisons that look inside one.
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
    /// RESP3 `_`.
    Null,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,`: the double's text.
    Double(Vec<u8>),
    /// RESP3 `(`: the big number's text.
    BigNumber(Vec<u8>),
    /// RESP3 `!n`.
    BlobError(Vec<u8>),
    /// RESP3 `=n`, the `txt:` prefix included.
    Verbatim(Vec<u8>),
    /// RESP3 `%n`: keys and values alternating (2n items).
    Map(Vec<Value>),
    /// RESP3 `~n`.
    Set(Vec<Value>),
    /// RESP3 `>n`.
    Push(Vec<Value>),
    /// RESP3 `|n`: the 2n attribute items, then the reply they annotate (2n + 1 items).
    Attribute(Vec<Value>),
}

/// The kind of an aggregate being filled while parsing.
#[derive(Clone, Copy)]
enum Aggregate {
    Array,
    Map,
    Set,
    Push,
    Attribute,
}

impl Aggregate {
    fn build(self, items: Vec<Value>) -> Value {
        match self {
            Aggregate::Array => Value::Array(Some(items)),
            Aggregate::Map => Value::Map(items),
            Aggregate::Set => Value::Set(items),
            Aggregate::Push => Value::Push(items),
            Aggregate::Attribute => Value::Attribute(items),
        }
    }
}

impl Value {
    /// Parses the bytes of one complete reply (as [`super::Outcome::Reply`] holds); `None`
    /// unless `bytes` is exactly one valid reply.
    pub fn parse(bytes: &[u8]) -> Option<Value> {
        // Arrays being filled, innermost last: their items so far and how many they still
        // expect. A loop instead of recursion, so nesting depth costs no stack.
        let mut open: Vec<(Aggregate, Vec<Value>, u64)> = Vec::new();
        let mut at = 0;
        loop {
            let (element, next) = parse_element(bytes, at).ok()??;
            at = next;
            let kind = match element {
                Reply::Array(_) => Some(Aggregate::Array),
                Reply::Map(_) => Some(Aggregate::Map),
                Reply::Set(_) => Some(Aggregate::Set),
                Reply::Push(_) => Some(Aggregate::Push),
                Reply::Attribute(_) => Some(Aggregate::Attribute),
                _ => None,
            };
            let mut value = match kind {
                Some(kind) if element.elements_following() > 0 => {
                    open.push((kind, Vec::new(), element.elements_following()));
                    continue;
                }
                _ => Value::from(element),
            };
            // Put the value in its aggregate, and each aggregate it completes in its parent.
            loop {
                let Some((_, items, left)) = open.last_mut() else {
                    return (at == bytes.len()).then_some(value);
                };
                items.push(value);
                *left -= 1;
                if *left > 0 {
                    break;
                }
                let (kind, items, _) = open.pop()?;
                value = kind.build(items);
            }
        }
    }

    /// The RESP bytes of this value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let line = |out: &mut Vec<u8>, kind: u8, text: &[u8]| {
            out.push(kind);
            out.extend_from_slice(text);
            out.extend_from_slice(b"\r\n");
        };
        let blob = |out: &mut Vec<u8>, kind: u8, bytes: &[u8]| {
            out.extend_from_slice(format!("{}{}\r\n", char::from(kind), bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        };
        let aggregate = |out: &mut Vec<u8>, kind: u8, len: usize, items: &[Value]| {
            out.extend_from_slice(format!("{}{len}\r\n", char::from(kind)).as_bytes());
            for v in items {
                v.encode(out);
            }
        };
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
            Value::Array(Some(items)) => aggregate(out, b'*', items.len(), items),
            Value::Null => out.extend_from_slice(b"_\r\n"),
            Value::Boolean(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
            Value::Double(text) => line(out, b',', text),
            Value::BigNumber(text) => line(out, b'(', text),
            Value::BlobError(bytes) => blob(out, b'!', bytes),
            Value::Verbatim(bytes) => blob(out, b'=', bytes),
            Value::Map(items) => aggregate(out, b'%', items.len() / 2, items),
            Value::Set(items) => aggregate(out, b'~', items.len(), items),
            Value::Push(items) => aggregate(out, b'>', items.len(), items),
            Value::Attribute(items) => aggregate(out, b'|', items.len() / 2, items),
        }
    }

    /// Whether `other` has the same shape (see [`super::Mode::Shape`]): the same type at every
    /// depth, the same keys in maps and attributes, the same number of elements everywhere.
    pub fn same_shape(&self, other: &Value) -> bool {
        use Value as V;
        let items_alike = |a: &[Value], b: &[Value], keys: bool| {
            a.len() == b.len()
                && a.iter().zip(b).enumerate().all(|(i, (x, y))| {
                    if keys && i % 2 == 0 && !(matches!(self, V::Attribute(_)) && i == a.len() - 1)
                    {
                        x == y
                    } else {
                        x.same_shape(y)
                    }
                })
        };
        match (self, other) {
            (V::Array(Some(a)), V::Array(Some(b)))
            | (V::Set(a), V::Set(b))
            | (V::Push(a), V::Push(b)) => items_alike(a, b, false),
            (V::Map(a), V::Map(b)) | (V::Attribute(a), V::Attribute(b)) => items_alike(a, b, true),
            (V::Array(a), V::Array(b)) => a.is_none() && b.is_none(),
            (V::Bulk(a), V::Bulk(b)) => a.is_none() == b.is_none(),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }

    /// Sorts, recursively, every array or set whose elements are all bulk strings.
    pub fn sort_bulk_arrays(&mut self) {
        match self {
            Value::Array(Some(items)) | Value::Set(items) => {
                for v in items.iter_mut() {
                    v.sort_bulk_arrays();
                }
                if items.iter().all(|v| matches!(v, Value::Bulk(Some(_)))) {
                    items.sort();
                }
            }
            Value::Map(items) | Value::Push(items) | Value::Attribute(items) => {
                for v in items.iter_mut() {
                    v.sort_bulk_arrays();
                }
            }
            _ => {}
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
            Reply::Null => Value::Null,
            Reply::Boolean(b) => Value::Boolean(b),
            Reply::Double(text) => Value::Double(text.to_vec()),
            Reply::BigNumber(text) => Value::BigNumber(text.to_vec()),
            Reply::BlobError(bytes) => Value::BlobError(bytes.to_vec()),
            Reply::Verbatim(bytes) => Value::Verbatim(bytes.to_vec()),
            Reply::Map(_) => Value::Map(Vec::new()),
            Reply::Set(_) => Value::Set(Vec::new()),
            Reply::Push(_) => Value::Push(Vec::new()),
            Reply::Attribute(_) => Value::Attribute(Vec::new()),
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
        let resp3 = b"%2\r\n+a\r\n~2\r\n_\r\n#t\r\n$1\r\nb\r\n*3\r\n,1.5\r\n(12\r\n=5\r\ntxt:x\r\n";
        let v = Value::parse(resp3).expect("parses");
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, resp3);
        let framed = b">2\r\n|1\r\n+k\r\n:1\r\n!3\r\nERR\r\n%0\r\n";
        let v = Value::parse(framed).expect("parses");
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(out, framed);
        let hello = |version: &str, id: i64| {
            let v = format!(
                "%3\r\n$7\r\nversion\r\n${}\r\n{version}\r\n$2\r\nid\r\n:{id}\r\n$1\r\nm\r\n*0\r\n",
                version.len()
            );
            Value::parse(v.as_bytes()).expect("parses")
        };
        assert!(hello("7.0.15", 3).same_shape(&hello("7.0.0", 12)));
        let other_key = Value::parse(b"%1\r\n$1\r\nx\r\n:1\r\n").expect("parses");
        let same_key = Value::parse(b"%1\r\n$1\r\ny\r\n:1\r\n").expect("parses");
        assert!(!other_key.same_shape(&same_key), "map keys must match");
        let (a, b) = (
            Value::parse(b"*1\r\n:1\r\n"),
            Value::parse(b"*1\r\n$1\r\n1\r\n"),
        );
        assert!(
            !a.expect("parses").same_shape(&b.expect("parses")),
            "types must match"
        );
        let deep = [b"*1\r\n".repeat(40), b":1\r\n".to_vec()].concat();
        let mut out = Vec::new();
        Value::parse(&deep).expect("any depth").encode(&mut out);
        assert_eq!(out, deep);
    }
}

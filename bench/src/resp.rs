//! RESP on the client side, for flin-bench and flin-compat alike: encoding requests, and the
//! one reply parser, which allocates nothing. It reads RESP2 and RESP3 (`HELLO 3`): null,
//! boolean, double, big number, blob error, verbatim string, map, set, push and attribute
//! types (not the streamed `?` lengths, which Redis never sends).
//!
//! [`parse_element`] reads one element at an offset of a buffer: a whole scalar reply, or only
//! the header of an array (its elements follow it). [`parse_reply`] builds on it: it looks at
//! the unconsumed bytes of a connection's read buffer and returns either one complete reply
//! (borrowing from the buffer) and its length, `Ok(None)` when more bytes are needed, or an
//! error when the bytes cannot be RESP2. Arrays are validated element by element, counting the
//! elements still expected instead of recursing, so nesting depth costs neither stack nor
//! heap; only the array's length is returned: SET and GET never answer with one, and a reply
//! of the wrong type is all flin-bench must report. flin-compat, which looks inside replies,
//! builds its trees from [`parse_element`] (`compat/value.rs`).

use crate::keys::{push_key, push_value, KEY_LEN_BYTES};

/// Longest header, simple string, error or integer line accepted, CRLF excluded.
pub const LINE_LEN_MAX_BYTES: usize = 64 * 1024;
/// Largest bulk string accepted (Redis's default `proto-max-bulk-len`).
pub const BULK_LEN_MAX_BYTES: usize = 512 * 1024 * 1024;
/// Most elements accepted in one array.
pub const ARRAY_LEN_MAX: usize = 1024 * 1024;

/// One reply, borrowing its bytes from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `+OK` and friends.
    Simple(&'a [u8]),
    /// `-ERR ...`.
    Error(&'a [u8]),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nfoo`.
    Bulk(&'a [u8]),
    /// `$-1`: a GET of a missing key.
    NullBulk,
    /// `*n`: the element count. From [`parse_reply`], the elements were checked and skipped;
    /// from [`parse_element`], they follow.
    Array(usize),
    /// `*-1`.
    NullArray,
    /// RESP3 `_`: the null.
    Null,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,<double>`, as its text.
    Double(&'a [u8]),
    /// RESP3 `(<digits>`, as its text.
    BigNumber(&'a [u8]),
    /// RESP3 `!<len>`: an error as a blob.
    BlobError(&'a [u8]),
    /// RESP3 `=<len>`: a verbatim string, its `txt:` prefix included.
    Verbatim(&'a [u8]),
    /// RESP3 `%n`: a map of n pairs; its 2n elements follow.
    Map(usize),
    /// RESP3 `~n`: a set; its n elements follow.
    Set(usize),
    /// RESP3 `>n`: a push message (pub/sub); its n elements follow.
    Push(usize),
    /// RESP3 `|n`: attributes (n pairs) annotating the reply that follows them; the 2n
    /// elements and then that reply follow.
    Attribute(usize),
}

impl Reply<'_> {
    /// A short printable rendering for error messages: at most `REPLY_SHOWN_MAX_BYTES` bytes
    /// of payload, non-printable bytes escaped.
    pub fn describe(&self) -> String {
        let shown = |bytes| escape(bytes, REPLY_SHOWN_MAX_BYTES);
        match self {
            Self::Simple(line) => format!("+{}", shown(line)),
            Self::Error(line) => format!("-{}", shown(line)),
            Self::Integer(value) => format!(":{value}"),
            Self::Bulk(bytes) => format!("${} \"{}\"", bytes.len(), shown(bytes)),
            Self::NullBulk => "$-1 (nil)".to_string(),
            Self::Array(len) => format!("*{len} (array)"),
            Self::NullArray => "*-1 (nil array)".to_string(),
            Self::Null => "_ (null)".to_string(),
            Self::Boolean(b) => format!("#{}", if *b { 't' } else { 'f' }),
            Self::Double(text) => format!(",{}", shown(text)),
            Self::BigNumber(text) => format!("({}", shown(text)),
            Self::BlobError(bytes) => format!("!{} \"{}\"", bytes.len(), shown(bytes)),
            Self::Verbatim(bytes) => format!("={} \"{}\"", bytes.len(), shown(bytes)),
            Self::Map(len) => format!("%{len} (map)"),
            Self::Set(len) => format!("~{len} (set)"),
            Self::Push(len) => format!(">{len} (push)"),
            Self::Attribute(len) => format!("|{len} (attributes)"),
        }
    }

    /// Elements that follow this one before the reply it starts is complete. An attribute
    /// counts its pairs and the reply it annotates; inside an aggregate it takes the place of
    /// that reply, so the parent's count stays right.
    pub fn elements_following(&self) -> u64 {
        match self {
            Self::Array(len) | Self::Set(len) | Self::Push(len) => *len as u64,
            Self::Map(len) => 2 * *len as u64,
            Self::Attribute(len) => 2 * *len as u64 + 1,
            _ => 0,
        }
    }
}

/// Payload bytes shown by [`Reply::describe`].
pub const REPLY_SHOWN_MAX_BYTES: usize = 80;

/// `bytes` as text, escaped like Rust's byte strings, cut at `max_bytes`.
pub fn escape(bytes: &[u8], max_bytes: usize) -> String {
    let shown = &bytes[..bytes.len().min(max_bytes)];
    let mut text: String = shown.escape_ascii().to_string();
    if bytes.len() > shown.len() {
        text.push_str(&format!("...({} bytes in all)", bytes.len()));
    }
    text
}

/// Why bytes are not a RESP2 reply. Any of these means the connection's framing is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The first byte of a reply is not a RESP2 or RESP3 type.
    UnknownType(u8),
    /// A line is not terminated by CRLF (a lone CR, or bulk data not followed by CRLF).
    MissingCrlf,
    /// No CRLF within `LINE_LEN_MAX_BYTES`.
    LineTooLong,
    /// An integer or length that is not a decimal `i64`.
    BadInteger,
    /// A negative length other than -1.
    BadLength(i64),
    /// A RESP3 boolean other than `#t` or `#f`, or a null with a payload.
    BadScalar,
    /// A bulk longer than `BULK_LEN_MAX_BYTES`.
    BulkTooLong(i64),
    /// An array longer than `ARRAY_LEN_MAX`.
    ArrayTooLong(i64),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownType(byte) => {
                write!(f, "unknown reply type byte {:?}", char::from(*byte))
            }
            Self::MissingCrlf => write!(f, "line not terminated by CRLF"),
            Self::LineTooLong => write!(f, "no CRLF within {LINE_LEN_MAX_BYTES} bytes"),
            Self::BadInteger => write!(f, "invalid integer"),
            Self::BadLength(len) => write!(f, "invalid length {len}"),
            Self::BadScalar => write!(f, "invalid RESP3 boolean or null"),
            Self::BulkTooLong(len) => {
                write!(f, "bulk length {len} exceeds {BULK_LEN_MAX_BYTES} bytes")
            }
            Self::ArrayTooLong(len) => {
                write!(f, "array length {len} exceeds {ARRAY_LEN_MAX}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one reply from the start of `buf`.
///
/// Returns the reply and the bytes it used, `Ok(None)` if `buf` holds only part of a reply.
/// An array is returned as its length once every element, at any depth, is complete and valid.
///
/// # Errors
/// [`ParseError`] when `buf` does not start with a valid RESP2 reply.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ParseError> {
    let Some((reply, mut at)) = parse_element(buf, 0)? else {
        return Ok(None);
    };
    // Elements still expected: each array adds its length. At most one per 4 bytes of `buf`
    // adds at most `ARRAY_LEN_MAX`, so this cannot overflow.
    let mut left = reply.elements_following();
    while left > 0 {
        let Some((element, next)) = parse_element(buf, at)? else {
            return Ok(None);
        };
        left = left - 1 + element.elements_following();
        at = next;
    }
    Ok(Some((reply, at)))
}

/// Parses one element starting at `start`: a whole scalar (simple string, error, integer,
/// bulk, null), or only the header of an array, whose `n` elements follow it.
///
/// Returns the element and the offset after it (after the header, for an array), `Ok(None)`
/// if `buf` ends first.
///
/// # Errors
/// [`ParseError`] when the bytes at `start` are not a valid RESP2 element.
pub fn parse_element(buf: &[u8], start: usize) -> Result<Option<(Reply<'_>, usize)>, ParseError> {
    let Some(&kind) = buf.get(start) else {
        return Ok(None);
    };
    let Some((line, after_line)) = line_at(buf, start + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' => Ok(Some((Reply::Simple(line), after_line))),
        b'-' => Ok(Some((Reply::Error(line), after_line))),
        b':' => Ok(Some((Reply::Integer(parse_i64(line)?), after_line))),
        b'$' => parse_bulk(buf, parse_i64(line)?, after_line),
        b'*' => array_header(parse_i64(line)?, after_line).map(Some),
        b'_' if line.is_empty() => Ok(Some((Reply::Null, after_line))),
        b'#' => match line {
            b"t" => Ok(Some((Reply::Boolean(true), after_line))),
            b"f" => Ok(Some((Reply::Boolean(false), after_line))),
            _ => Err(ParseError::BadScalar),
        },
        b'_' => Err(ParseError::BadScalar),
        b',' => Ok(Some((Reply::Double(line), after_line))),
        b'(' => Ok(Some((Reply::BigNumber(line), after_line))),
        b'!' | b'=' => {
            let len = parse_i64(line)?;
            if len < 0 {
                return Err(ParseError::BadLength(len));
            }
            if len > BULK_LEN_MAX_BYTES as i64 {
                return Err(ParseError::BulkTooLong(len));
            }
            let blob = blob_at(buf, len as usize, after_line)?;
            Ok(blob.map(|(bytes, next)| {
                let reply = if kind == b'!' {
                    Reply::BlobError(bytes)
                } else {
                    Reply::Verbatim(bytes)
                };
                (reply, next)
            }))
        }
        b'%' | b'~' | b'>' | b'|' => {
            let len = parse_i64(line)?;
            if len < 0 {
                return Err(ParseError::BadLength(len));
            }
            if len > ARRAY_LEN_MAX as i64 {
                return Err(ParseError::ArrayTooLong(len));
            }
            let len = len as usize;
            let reply = match kind {
                b'%' => Reply::Map(len),
                b'~' => Reply::Set(len),
                b'>' => Reply::Push(len),
                _ => Reply::Attribute(len),
            };
            Ok(Some((reply, after_line)))
        }
        other => Err(ParseError::UnknownType(other)),
    }
}

fn parse_bulk(
    buf: &[u8],
    len: i64,
    data_start: usize,
) -> Result<Option<(Reply<'_>, usize)>, ParseError> {
    match len {
        -1 => return Ok(Some((Reply::NullBulk, data_start))),
        len if len < -1 => return Err(ParseError::BadLength(len)),
        len if len > BULK_LEN_MAX_BYTES as i64 => return Err(ParseError::BulkTooLong(len)),
        _ => {}
    }
    Ok(blob_at(buf, len as usize, data_start)?.map(|(bytes, next)| (Reply::Bulk(bytes), next)))
}

/// The `len` bytes at `data_start` and the offset after their CRLF; `Ok(None)` if `buf` ends
/// first.
fn blob_at(
    buf: &[u8],
    len: usize,
    data_start: usize,
) -> Result<Option<(&[u8], usize)>, ParseError> {
    let data_end = data_start + len;
    if buf.len() < data_end + 2 {
        return Ok(None);
    }
    if &buf[data_end..data_end + 2] != b"\r\n" {
        return Err(ParseError::MissingCrlf);
    }
    Ok(Some((&buf[data_start..data_end], data_end + 2)))
}

fn array_header<'a>(len: i64, after_header: usize) -> Result<(Reply<'a>, usize), ParseError> {
    match len {
        -1 => Ok((Reply::NullArray, after_header)),
        len if len < -1 => Err(ParseError::BadLength(len)),
        len if len > ARRAY_LEN_MAX as i64 => Err(ParseError::ArrayTooLong(len)),
        len => Ok((Reply::Array(len as usize), after_header)),
    }
}

/// Encodes `args` as a RESP multibulk request (the shape every command is sent in).
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The line starting at `start` (CRLF excluded) and the offset after its CRLF.
fn line_at(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, ParseError> {
    let rest = &buf[start.min(buf.len())..];
    let window = &rest[..rest.len().min(LINE_LEN_MAX_BYTES + 1)];
    match window.iter().position(|&byte| byte == b'\r') {
        Some(cr) => match rest.get(cr + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((&rest[..cr], start + cr + 2))),
            Some(_) => Err(ParseError::MissingCrlf),
        },
        None if window.len() > LINE_LEN_MAX_BYTES => Err(ParseError::LineTooLong),
        None => Ok(None),
    }
}

/// A decimal `i64` with an optional leading `-`.
fn parse_i64(line: &[u8]) -> Result<i64, ParseError> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, line),
    };
    if digits.is_empty() {
        return Err(ParseError::BadInteger);
    }
    let mut value: i64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(ParseError::BadInteger);
        }
        let digit = i64::from(byte - b'0');
        // Accumulate negatively so i64::MIN parses too.
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_sub(digit))
            .ok_or(ParseError::BadInteger)?;
    }
    if negative {
        Ok(value)
    } else {
        value.checked_neg().ok_or(ParseError::BadInteger)
    }
}

/// The replies of one [`Encoder::push_multi`] transaction, byte for byte: MULTI's `+OK`, two
/// `+QUEUED`, and EXEC's array of the two SETs' `+OK`.
pub const MULTI_REPLY: &[u8] = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n+OK\r\n";

/// Encodes SET and GET requests for one run; holds the parts that never change.
#[derive(Clone, Debug)]
pub struct Encoder {
    seed: u64,
    value_size_bytes: usize,
    /// `$<value size>\r\n`.
    value_header: Vec<u8>,
}

/// `*3 $3 SET $13` before the key of a SET.
const SET_PREFIX: &[u8] = b"*3\r\n$3\r\nSET\r\n$13\r\n";
/// `*2 $3 GET $13` before the key of a GET.
const GET_PREFIX: &[u8] = b"*2\r\n$3\r\nGET\r\n$13\r\n";
const _: () = assert!(
    KEY_LEN_BYTES == 13,
    "SET_PREFIX and GET_PREFIX spell the key length"
);

impl Encoder {
    /// An encoder for values of `value_size_bytes` derived from `seed`.
    pub fn new(seed: u64, value_size_bytes: usize) -> Self {
        Self {
            seed,
            value_size_bytes,
            value_header: format!("${value_size_bytes}\r\n").into_bytes(),
        }
    }

    /// Bytes of one encoded SET: sizes write buffers.
    pub fn set_len_bytes(&self) -> usize {
        SET_PREFIX.len() + KEY_LEN_BYTES + 2 + self.value_header.len() + self.value_size_bytes + 2
    }

    /// Appends `SET key:<index> <value of index>`.
    #[inline]
    pub fn push_set(&self, out: &mut Vec<u8>, index: u64) {
        out.extend_from_slice(SET_PREFIX);
        push_key(out, index);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.value_header);
        push_value(out, index, self.seed, self.value_size_bytes);
        out.extend_from_slice(b"\r\n");
    }

    /// Appends one transaction: `MULTI`, `SET key:<first> ..`, `SET key:<second> ..`,
    /// `EXEC`. Its replies are [`MULTI_REPLY`].
    #[inline]
    pub fn push_multi(&self, out: &mut Vec<u8>, first: u64, second: u64) {
        out.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n");
        self.push_set(out, first);
        self.push_set(out, second);
        out.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n");
    }

    /// Appends `GET key:<index>`.
    #[inline]
    pub fn push_get(&self, out: &mut Vec<u8>, index: u64) {
        out.extend_from_slice(GET_PREFIX);
        push_key(out, index);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(buf: &[u8]) -> (Reply<'_>, usize) {
        parse_reply(buf).expect("valid").expect("complete")
    }

    #[test]
    fn every_type_parses() {
        assert_eq!(parse_all(b"+OK\r\n"), (Reply::Simple(b"OK"), 5));
        assert_eq!(parse_all(b"-ERR bad\r\n"), (Reply::Error(b"ERR bad"), 10));
        assert_eq!(parse_all(b":-42\r\n"), (Reply::Integer(-42), 6));
        assert_eq!(parse_all(b":0\r\n"), (Reply::Integer(0), 4));
        assert_eq!(parse_all(b"$3\r\nfoo\r\n"), (Reply::Bulk(b"foo"), 9));
        assert_eq!(parse_all(b"$0\r\n\r\n"), (Reply::Bulk(b""), 6));
        assert_eq!(parse_all(b"$-1\r\n"), (Reply::NullBulk, 5));
        assert_eq!(parse_all(b"*-1\r\n"), (Reply::NullArray, 5));
        assert_eq!(parse_all(b"*0\r\n"), (Reply::Array(0), 4));
        let nested = b"*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n$2\r\nhi\r\n";
        assert_eq!(parse_all(nested), (Reply::Array(3), nested.len()));
        assert_eq!(
            parse_all(b":-9223372036854775808\r\n").0,
            Reply::Integer(i64::MIN)
        );
    }

    #[test]
    fn resp3_types_parse() {
        assert_eq!(parse_all(b"_\r\n"), (Reply::Null, 3));
        assert_eq!(parse_all(b"#t\r\n"), (Reply::Boolean(true), 4));
        assert_eq!(parse_all(b"#f\r\n"), (Reply::Boolean(false), 4));
        assert_eq!(parse_all(b",1.5\r\n"), (Reply::Double(b"1.5"), 6));
        assert_eq!(parse_all(b"(123\r\n"), (Reply::BigNumber(b"123"), 6));
        assert_eq!(parse_all(b"!3\r\nERR\r\n"), (Reply::BlobError(b"ERR"), 9));
        assert_eq!(
            parse_all(b"=7\r\ntxt:a\r\n\r\n"),
            (Reply::Verbatim(b"txt:a\r\n"), 13)
        );
        let map = b"%2\r\n+a\r\n:1\r\n+b\r\n~1\r\n_\r\n";
        assert_eq!(parse_all(map), (Reply::Map(2), map.len()));
        let push = b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n";
        assert_eq!(parse_all(push), (Reply::Push(3), push.len()));
        // Attributes, then the reply they annotate, at the top and inside an array.
        let attr = b"|1\r\n+k\r\n:1\r\n*2\r\n|1\r\n+x\r\n:2\r\n:3\r\n:4\r\n";
        assert_eq!(parse_all(attr), (Reply::Attribute(1), attr.len()));
        for cut in 0..attr.len() {
            assert_eq!(parse_reply(&attr[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse_reply(b"#x\r\n"), Err(ParseError::BadScalar));
        assert_eq!(parse_reply(b"_x\r\n"), Err(ParseError::BadScalar));
        assert_eq!(parse_reply(b"%-1\r\n"), Err(ParseError::BadLength(-1)));
        assert_eq!(parse_reply(b"=-1\r\n"), Err(ParseError::BadLength(-1)));
    }

    #[test]
    fn bulk_may_hold_crlf() {
        assert_eq!(
            parse_all(b"$4\r\n\r\n\r\n\r\n"),
            (Reply::Bulk(b"\r\n\r\n"), 10)
        );
    }

    #[test]
    fn stops_after_one_reply() {
        let two = b"+OK\r\n$1\r\nx\r\n";
        let (reply, used) = parse_all(two);
        assert_eq!((reply, used), (Reply::Simple(b"OK"), 5));
        assert_eq!(parse_all(&two[used..]), (Reply::Bulk(b"x"), 7));
    }

    #[test]
    fn every_prefix_of_a_reply_is_partial() {
        let replies: [&[u8]; 6] = [
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":123\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:7\r\n",
        ];
        for reply in replies {
            for cut in 0..reply.len() {
                assert_eq!(
                    parse_reply(&reply[..cut]),
                    Ok(None),
                    "{:?} cut at {cut}",
                    reply
                );
            }
            assert_eq!(parse_reply(reply).unwrap().unwrap().1, reply.len());
        }
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert_eq!(parse_reply(b"?x\r\n"), Err(ParseError::UnknownType(b'?')));
        assert_eq!(parse_reply(b"+O\rK\r\n"), Err(ParseError::MissingCrlf));
        assert_eq!(parse_reply(b":12a\r\n"), Err(ParseError::BadInteger));
        assert_eq!(parse_reply(b":\r\n"), Err(ParseError::BadInteger));
        assert_eq!(parse_reply(b":-\r\n"), Err(ParseError::BadInteger));
        assert_eq!(
            parse_reply(b":99999999999999999999\r\n"),
            Err(ParseError::BadInteger)
        );
        assert_eq!(parse_reply(b"$-2\r\n"), Err(ParseError::BadLength(-2)));
        assert_eq!(parse_reply(b"$3\r\nfooXY"), Err(ParseError::MissingCrlf));
        assert_eq!(
            parse_reply(b"$999999999999\r\n"),
            Err(ParseError::BulkTooLong(999_999_999_999))
        );
        assert_eq!(
            parse_reply(b"*99999999\r\n"),
            Err(ParseError::ArrayTooLong(99_999_999))
        );
        assert_eq!(
            parse_reply(b"*1\r\n?\r\n"),
            Err(ParseError::UnknownType(b'?'))
        );
    }

    #[test]
    fn frames_one_reply_at_any_depth() {
        let deep = [b"*1\r\n".repeat(40), b":1\r\n".to_vec()].concat();
        assert_eq!(parse_all(&deep), (Reply::Array(1), deep.len()));
        let two = b"*2\r\n$3\r\na\r\n\r\n*0\r\n+OK\r\n";
        assert_eq!(parse_all(two), (Reply::Array(2), two.len() - 5));
        for cut in 0..two.len() - 5 {
            assert_eq!(parse_reply(&two[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(
            parse_reply(b"*2\r\n:1\r\n?\r\n"),
            Err(ParseError::UnknownType(b'?'))
        );
    }

    #[test]
    fn an_element_is_a_scalar_or_an_array_header() {
        let nested = b"*2\r\n*1\r\n:7\r\n$-1\r\n";
        let element = |at| parse_element(nested, at).expect("valid").expect("complete");
        assert_eq!(element(0), (Reply::Array(2), 4));
        assert_eq!(element(4), (Reply::Array(1), 8));
        assert_eq!(element(8), (Reply::Integer(7), 12));
        assert_eq!(element(12), (Reply::NullBulk, 17));
        assert_eq!(parse_element(nested, 17), Ok(None));
    }

    #[test]
    fn commands_encode_as_multibulk() {
        assert_eq!(
            encode_command(&[&b"GET"[..], b"k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
        assert_eq!(encode_command(&[b"".to_vec()]), b"*1\r\n$0\r\n\r\n");
    }

    #[test]
    fn overlong_line_is_an_error_not_a_wait() {
        let mut long = vec![b'+'];
        long.extend(std::iter::repeat_n(b'a', LINE_LEN_MAX_BYTES + 1));
        assert_eq!(parse_reply(&long), Err(ParseError::LineTooLong));
        assert_eq!(parse_reply(&long[..LINE_LEN_MAX_BYTES]), Ok(None));
    }

    #[test]
    fn encoder_writes_valid_commands() {
        let encoder = Encoder::new(9, 5);
        let mut out = Vec::new();
        encoder.push_get(&mut out, 7);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$13\r\nkey:000000007\r\n");
        out.clear();
        encoder.push_set(&mut out, 7);
        assert_eq!(out.len(), encoder.set_len_bytes());
        let mut value = Vec::new();
        push_value(&mut value, 7, 9, 5);
        let mut expected = b"*3\r\n$3\r\nSET\r\n$13\r\nkey:000000007\r\n$5\r\n".to_vec();
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\n");
        assert_eq!(out, expected);
    }

    #[test]
    fn describe_is_short_and_printable() {
        let big = vec![0u8; 1000];
        let text = Reply::Bulk(&big).describe();
        assert!(text.len() < 400);
        assert!(text.contains("1000 bytes"));
        assert_eq!(Reply::Simple(b"OK").describe(), "+OK");
    }
}

//! Request framing: RESP2 multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline lines, with
//! Redis 7's rules and error strings.
//!
//! [`Parser::parse`] takes the unconsumed input, which always starts at a frame boundary, and
//! returns one [`Frame`], `Ok(None)` when the frame is not complete yet, or a
//! [`ProtocolError`] after which the connection must be closed. A multibulk frame that arrives
//! in pieces is resumed, not rescanned: the parser keeps the argument spans it has already
//! found (relative to the frame start, so the caller may move the frame to the front of its
//! buffer between calls). Arguments borrow the input; inline arguments with quotes or escapes
//! are built in the caller's arena. Nothing is ever sized from a length the client declared.

use bumpalo::collections::Vec as BumpVec;
use bumpalo::Bump;

use super::inline;

/// Longest inline line, and longest `*<n>` or `$<n>` header line (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_LEN_MAX: usize = 64 * 1024;
/// Default longest bulk argument (Redis's proto-max-bulk-len); `--proto-max-bulk-len` changes it.
pub const BULK_LEN_MAX_DEFAULT: usize = 512 * 1024 * 1024;
/// Most arguments in one multibulk request: Redis 7's limit (`INT_MAX`). Nothing is sized
/// from it: argument spans grow as arguments really arrive, within the query buffer limit.
pub const ARRAY_LEN_MAX: usize = i32::MAX as usize;
/// Before AUTH (when a password is set): most arguments in one request.
pub const UNAUTH_ARRAY_LEN_MAX: usize = 10;
/// Before AUTH (when a password is set): longest bulk argument.
pub const UNAUTH_BULK_LEN_MAX: usize = 16 * 1024;
/// The span list is preallocated up to this many arguments at most; beyond, it grows as
/// arguments really arrive.
const SPANS_PREALLOC_MAX: usize = 64;

/// What the parser enforces for the current client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk argument once authenticated (`--proto-max-bulk-len`).
    pub bulk_len_max: usize,
    /// False while a password is set and the client has not authenticated.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            bulk_len_max: BULK_LEN_MAX_DEFAULT,
            authenticated: true,
        }
    }
}

/// A framing error: reply with [`ProtocolError::message`], then close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A `*<n>` count that is no integer, or above [`ARRAY_LEN_MAX`].
    InvalidMultibulkLength,
    /// A `$<n>` length that is no integer, negative, or above the bulk limit.
    InvalidBulkLength,
    /// An inline line longer than [`INLINE_LEN_MAX`] without its line feed.
    TooBigInlineRequest,
    /// A `*<n>` header line longer than [`INLINE_LEN_MAX`].
    TooBigMbulkCountString,
    /// A `$<n>` header line longer than [`INLINE_LEN_MAX`].
    TooBigBulkCountString,
    /// An inline line whose quotes do not balance.
    UnbalancedQuotes,
    /// The byte found where a `$` should start a bulk argument.
    ExpectedDollar(u8),
    /// Before AUTH, a `*<n>` count above [`UNAUTH_ARRAY_LEN_MAX`].
    UnauthenticatedMultibulkLength,
    /// Before AUTH, a `$<n>` length above [`UNAUTH_BULK_LEN_MAX`].
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The error reply, byte-identical to Redis 7 (`-ERR Protocol error: ...\r\n`).
    pub fn write_reply(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"-ERR Protocol error: ");
        let text: &[u8] = match self {
            ProtocolError::InvalidMultibulkLength => b"invalid multibulk length",
            ProtocolError::InvalidBulkLength => b"invalid bulk length",
            ProtocolError::TooBigInlineRequest => b"too big inline request",
            ProtocolError::TooBigMbulkCountString => b"too big mbulk count string",
            ProtocolError::TooBigBulkCountString => b"too big bulk count string",
            ProtocolError::UnbalancedQuotes => b"unbalanced quotes in request",
            ProtocolError::UnauthenticatedMultibulkLength => b"unauthenticated multibulk length",
            ProtocolError::UnauthenticatedBulkLength => b"unauthenticated bulk length",
            ProtocolError::ExpectedDollar(got) => {
                out.extend_from_slice(b"expected '$', got '");
                // Redis replaces CR and LF in error replies by spaces.
                out.push(if matches!(got, b'\r' | b'\n') {
                    b' '
                } else {
                    *got
                });
                out.extend_from_slice(b"'\r\n");
                return;
            }
        };
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }

    /// The error text, as in the reply without its `-` and CRLF.
    pub fn message(&self) -> String {
        let mut v = Vec::new();
        self.write_reply(&mut v);
        String::from_utf8_lossy(&v[1..v.len() - 2]).into_owned()
    }
}

/// One complete request.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A command: `args[0]` is its name. Never empty.
    Command {
        /// The arguments, borrowed from the input or built in the arena.
        args: &'a [&'a [u8]],
        /// Bytes of input the request took.
        consumed: usize,
    },
    /// Bytes that make no command (an empty inline line, `*0`, `*-1`): skip them.
    Empty {
        /// Bytes of input to skip.
        consumed: usize,
    },
}

/// An incomplete multibulk frame being resumed.
#[derive(Debug, Clone, Copy)]
struct Multibulk {
    /// Bulk arguments still to come.
    remaining: usize,
    /// Offset, from the frame start, of the next `$` header (or of the pending bulk's data).
    pos: usize,
    /// The bulk whose header was read but whose data has not fully arrived: its length.
    bulk_len: Option<usize>,
}

/// Resumable request parser; one per connection.
#[derive(Debug, Default)]
pub struct Parser {
    multibulk: Option<Multibulk>,
    /// (start, len) of the arguments found so far, relative to the frame start.
    spans: Vec<(usize, usize)>,
    /// Inline: bytes already searched for a line feed without finding one.
    inline_scanned: usize,
}

/// Result of reading one `<prefix><integer>\r\n` header line.
enum Header {
    Incomplete,
    /// Parsed integer (None: not a valid integer) and the offset after the line.
    Line(Option<i64>, usize),
}

impl Parser {
    /// A parser at a frame boundary.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// True while a frame is partly parsed.
    pub fn in_frame(&self) -> bool {
        self.multibulk.is_some() || self.inline_scanned > 0
    }

    /// Bytes the current frame needs in all before parsing can progress, when known: lets the
    /// caller skip parsing until a large bulk has arrived. Comes from a declared length: use it
    /// to wait, never to allocate.
    pub fn frame_len_hint(&self) -> Option<usize> {
        let mb = self.multibulk?;
        mb.bulk_len.map(|len| mb.pos + len + 2)
    }

    /// Parses one frame from `input`, which starts at a frame boundary (or where the previous
    /// call left an incomplete frame, moved or not).
    ///
    /// # Errors
    /// A [`ProtocolError`]; the parser is reset and the connection should be closed.
    pub fn parse<'a>(
        &mut self,
        input: &'a [u8],
        arena: &'a Bump,
        limits: Limits,
    ) -> Result<Option<Frame<'a>>, ProtocolError> {
        if input.is_empty() {
            return Ok(None);
        }
        let res = if self.multibulk.is_some() || input[0] == b'*' {
            self.parse_multibulk(input, arena, limits)
        } else {
            self.parse_inline(input, arena)
        };
        if res.is_err() {
            self.reset();
        }
        res
    }

    /// Forgets any partly parsed frame: the next call starts at a frame boundary.
    pub fn reset(&mut self) {
        self.multibulk = None;
        self.spans.clear();
        self.inline_scanned = 0;
    }

    fn parse_inline<'a>(
        &mut self,
        input: &'a [u8],
        arena: &'a Bump,
    ) -> Result<Option<Frame<'a>>, ProtocolError> {
        let from = self.inline_scanned.min(input.len());
        let Some(lf) = memchr::memchr(b'\n', &input[from..]).map(|i| from + i) else {
            if input.len() > INLINE_LEN_MAX {
                return Err(ProtocolError::TooBigInlineRequest);
            }
            self.inline_scanned = input.len();
            return Ok(None);
        };
        self.inline_scanned = 0;
        if lf > INLINE_LEN_MAX {
            return Err(ProtocolError::TooBigInlineRequest);
        }
        let consumed = lf + 1;
        let line = match input[..lf].last() {
            Some(b'\r') => &input[..lf - 1],
            _ => &input[..lf],
        };
        let mut args = BumpVec::new_in(arena);
        inline::split(line, arena, &mut args).map_err(|_| ProtocolError::UnbalancedQuotes)?;
        if args.is_empty() {
            return Ok(Some(Frame::Empty { consumed }));
        }
        Ok(Some(Frame::Command {
            args: args.into_bump_slice(),
            consumed,
        }))
    }

    fn parse_multibulk<'a>(
        &mut self,
        input: &'a [u8],
        arena: &'a Bump,
        limits: Limits,
    ) -> Result<Option<Frame<'a>>, ProtocolError> {
        let mut mb = match self.multibulk {
            Some(mb) => mb,
            None => match header(input, 0, ProtocolError::TooBigMbulkCountString)? {
                Header::Incomplete => return Ok(None),
                Header::Line(n, after) => {
                    let n = match n {
                        Some(n) if n <= 0 => return Ok(Some(Frame::Empty { consumed: after })),
                        Some(n) if n as u64 <= ARRAY_LEN_MAX as u64 => n as usize,
                        _ => return Err(ProtocolError::InvalidMultibulkLength),
                    };
                    if n > UNAUTH_ARRAY_LEN_MAX && !limits.authenticated {
                        return Err(ProtocolError::UnauthenticatedMultibulkLength);
                    }
                    self.spans.clear();
                    self.spans.reserve(n.min(SPANS_PREALLOC_MAX));
                    Multibulk {
                        remaining: n,
                        pos: after,
                        bulk_len: None,
                    }
                }
            },
        };
        let status = self.bulks(input, &mut mb, limits);
        match status {
            Ok(true) => {}
            Ok(false) => {
                self.multibulk = Some(mb);
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        self.multibulk = None;
        let mut args = BumpVec::with_capacity_in(self.spans.len(), arena);
        args.extend(self.spans.iter().map(|&(s, l)| &input[s..s + l]));
        Ok(Some(Frame::Command {
            args: args.into_bump_slice(),
            consumed: mb.pos,
        }))
    }

    /// Reads bulk arguments until the frame is complete (true) or the input ends (false).
    fn bulks(
        &mut self,
        input: &[u8],
        mb: &mut Multibulk,
        limits: Limits,
    ) -> Result<bool, ProtocolError> {
        while mb.remaining > 0 {
            let len = match mb.bulk_len {
                Some(len) => len,
                None => {
                    if mb.pos >= input.len() {
                        return Ok(false);
                    }
                    let Header::Line(n, after) =
                        header(input, mb.pos, ProtocolError::TooBigBulkCountString)?
                    else {
                        return Ok(false);
                    };
                    if input[mb.pos] != b'$' {
                        return Err(ProtocolError::ExpectedDollar(input[mb.pos]));
                    }
                    let len = match n {
                        Some(n) if n >= 0 && n as u64 <= limits.bulk_len_max as u64 => n as usize,
                        _ => return Err(ProtocolError::InvalidBulkLength),
                    };
                    if len > UNAUTH_BULK_LEN_MAX && !limits.authenticated {
                        return Err(ProtocolError::UnauthenticatedBulkLength);
                    }
                    mb.pos = after;
                    mb.bulk_len = Some(len);
                    len
                }
            };
            // Like Redis, the two bytes after the data are skipped, not checked.
            if input.len() < mb.pos + len + 2 {
                return Ok(false);
            }
            self.spans.push((mb.pos, len));
            mb.pos += len + 2;
            mb.bulk_len = None;
            mb.remaining -= 1;
        }
        Ok(true)
    }
}

/// Reads the header line starting at `at` (a `*` or `$` and an integer). Like Redis, the line
/// ends at the first CR and the byte after it is taken to be LF.
fn header(input: &[u8], at: usize, too_big: ProtocolError) -> Result<Header, ProtocolError> {
    let digits_from = at + 1;
    // Fast path: digits then CR.
    let mut i = digits_from;
    while i < input.len() && input[i].is_ascii_digit() {
        i += 1;
    }
    let cr = if input[at] == b'\r' {
        Some(at)
    } else if i < input.len() && input[i] == b'\r' {
        Some(i)
    } else {
        memchr::memchr(b'\r', input.get(i..).unwrap_or(&[])).map(|k| i + k)
    };
    let Some(cr) = cr else {
        if input.len() - at > INLINE_LEN_MAX {
            return Err(too_big);
        }
        return Ok(Header::Incomplete);
    };
    if cr + 1 >= input.len() {
        return Ok(Header::Incomplete);
    }
    Ok(Header::Line(
        string_to_i64(&input[digits_from.min(cr)..cr]),
        cr + 2,
    ))
}

/// Redis's `string2ll`: optional `-`, no `+`, no leading zeros, no blanks, no overflow.
pub fn string_to_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    if digits.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses every frame of `input` at once.
    fn parse_all(
        input: &[u8],
        limits: Limits,
    ) -> (Vec<Vec<Vec<u8>>>, usize, Option<ProtocolError>) {
        let arena = Bump::new();
        let mut p = Parser::new();
        let mut pos = 0;
        let mut cmds = Vec::new();
        loop {
            match p.parse(&input[pos..], &arena, limits) {
                Ok(Some(Frame::Command { args, consumed })) => {
                    cmds.push(args.iter().map(|a| a.to_vec()).collect());
                    pos += consumed;
                }
                Ok(Some(Frame::Empty { consumed })) => pos += consumed,
                Ok(None) => return (cmds, pos, None),
                Err(e) => return (cmds, pos, Some(e)),
            }
        }
    }

    /// Feeds `input` in two pieces split at `split`, moving the unconsumed tail to the front of
    /// a fresh buffer between calls as the connection does.
    fn parse_split(
        input: &[u8],
        split: usize,
        limits: Limits,
    ) -> (Vec<Vec<Vec<u8>>>, usize, Option<ProtocolError>) {
        let mut p = Parser::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut cmds = Vec::new();
        let mut total = 0;
        for piece in [&input[..split], &input[split..]] {
            buf.extend_from_slice(piece);
            let arena = Bump::new();
            let mut pos = 0;
            loop {
                match p.parse(&buf[pos..], &arena, limits) {
                    Ok(Some(Frame::Command { args, consumed })) => {
                        cmds.push(args.iter().map(|a| a.to_vec()).collect());
                        pos += consumed;
                    }
                    Ok(Some(Frame::Empty { consumed })) => pos += consumed,
                    Ok(None) => break,
                    Err(e) => return (cmds, total + pos, Some(e)),
                }
            }
            total += pos;
            buf.drain(..pos);
        }
        (cmds, total, None)
    }

    fn args(list: &[&[u8]]) -> Vec<Vec<u8>> {
        list.iter().map(|a| a.to_vec()).collect()
    }

    const CASES: &[&[u8]] = &[
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\r\nb\0\r\n",
        b"PING\r\nSET k \"a b\"\r\n\r\nGET k\n",
        b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",
        b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n",
        b"*2\r\n$3\r\nGET\r\n$-1\r\n",
        b"*2\r\n$3\r\nGET\r\nx1\r\n",
        b"*abc\r\n",
        b"SET k \"abc\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n*1\r\n$4\r\nQUIT\r\n",
    ];

    #[test]
    fn every_split_point_matches_whole() {
        for &case in CASES {
            let whole = parse_all(case, Limits::default());
            for split in 0..=case.len() {
                assert_eq!(
                    parse_split(case, split, Limits::default()),
                    whole,
                    "case {:?} split at {split}",
                    String::from_utf8_lossy(case)
                );
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let input = b"*3\r\n$3\r\nSET\r\n$2\r\nkk\r\n$3\r\nv\r\n\r\nGET kk\r\n";
        let mut p = Parser::new();
        let mut buf = Vec::new();
        let mut cmds = Vec::new();
        for &b in input {
            buf.push(b);
            let arena = Bump::new();
            if let Some(Frame::Command { args, consumed }) =
                p.parse(&buf, &arena, Limits::default()).unwrap()
            {
                cmds.push(args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
                buf.drain(..consumed);
            }
        }
        assert_eq!(
            cmds,
            vec![args(&[b"SET", b"kk", b"v\r\n"]), args(&[b"GET", b"kk"])]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn multibulk_and_inline() {
        let (cmds, pos, err) = parse_all(CASES[0], Limits::default());
        assert_eq!(cmds, vec![args(&[b"GET", b"k"])]);
        assert_eq!((pos, err), (CASES[0].len(), None));
        let (cmds, _, err) = parse_all(CASES[1], Limits::default());
        assert_eq!(cmds, vec![args(&[b"SET", b"", b"a\r\nb\0"])]);
        assert_eq!(err, None);
        let (cmds, _, _) = parse_all(CASES[2], Limits::default());
        assert_eq!(
            cmds,
            vec![
                args(&[b"PING"]),
                args(&[b"SET", b"k", b"a b"]),
                args(&[b"GET", b"k"])
            ]
        );
        let (cmds, pos, _) = parse_all(CASES[3], Limits::default());
        assert_eq!((cmds, pos), (vec![args(&[b"PING"])], CASES[3].len()));
    }

    #[test]
    fn trailing_crlf_is_skipped_unchecked_like_redis() {
        let (cmds, _, err) = parse_all(CASES[4], Limits::default());
        assert_eq!(cmds, vec![args(&[b"PING"]), args(&[b"PING"])]);
        assert_eq!(err, None);
    }

    #[test]
    fn errors() {
        let e = |input: &[u8], limits| parse_all(input, limits).2;
        let d = Limits::default();
        assert_eq!(
            e(b"*2\r\n$3\r\nGET\r\n$-1\r\n", d),
            Some(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            e(b"*1\r\n$01\r\nx\r\n", d),
            Some(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            e(b"*1\r\n$ 1\r\nx\r\n", d),
            Some(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            e(b"*abc\r\n", d),
            Some(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            e(b"*2147483648\r\n", d),
            Some(ProtocolError::InvalidMultibulkLength)
        );
        // Redis 7 accepts up to INT_MAX arguments (Redis 6 stopped at 1024 * 1024).
        assert_eq!(e(b"*2147483647\r\n", d), None);
        assert_eq!(e(b"*1048577\r\n", d), None);
        assert_eq!(
            e(b"*99999999999999999999\r\n", d),
            Some(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            e(b"*1\r\nx1\r\n", d),
            Some(ProtocolError::ExpectedDollar(b'x'))
        );
        assert_eq!(
            e(b"*1\r\n\r\n", d),
            Some(ProtocolError::ExpectedDollar(b'\r'))
        );
        assert_eq!(
            e(b"SET k \"abc\r\n", d),
            Some(ProtocolError::UnbalancedQuotes)
        );
        let small = Limits {
            bulk_len_max: 10,
            authenticated: true,
        };
        assert_eq!(
            e(b"*1\r\n$11\r\n", small),
            Some(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(e(b"*1\r\n$10\r\n", small), None);
        let unauth = Limits {
            bulk_len_max: BULK_LEN_MAX_DEFAULT,
            authenticated: false,
        };
        assert_eq!(
            e(b"*11\r\n", unauth),
            Some(ProtocolError::UnauthenticatedMultibulkLength)
        );
        assert_eq!(e(b"*10\r\n", unauth), None);
        assert_eq!(
            e(b"*1\r\n$16385\r\n", unauth),
            Some(ProtocolError::UnauthenticatedBulkLength)
        );
        assert_eq!(e(b"*1\r\n$16384\r\n", unauth), None);
    }

    #[test]
    fn inline_and_header_length_limits() {
        let d = Limits::default();
        let mut long = vec![b'a'; INLINE_LEN_MAX];
        assert_eq!(
            parse_all(&long, d).2,
            None,
            "exactly the limit without LF: wait"
        );
        long.push(b'a');
        assert_eq!(
            parse_all(&long, d).2,
            Some(ProtocolError::TooBigInlineRequest)
        );
        let mut line = vec![b'a'; INLINE_LEN_MAX + 1];
        line.push(b'\n');
        assert_eq!(
            parse_all(&line, d).2,
            Some(ProtocolError::TooBigInlineRequest)
        );
        let mut star = b"*".to_vec();
        star.extend(std::iter::repeat_n(b'1', INLINE_LEN_MAX));
        assert_eq!(
            parse_all(&star, d).2,
            Some(ProtocolError::TooBigMbulkCountString)
        );
        let mut dollar = b"*1\r\n$".to_vec();
        dollar.extend(std::iter::repeat_n(b'1', INLINE_LEN_MAX));
        assert_eq!(
            parse_all(&dollar, d).2,
            Some(ProtocolError::TooBigBulkCountString)
        );
    }

    #[test]
    fn error_strings_match_redis() {
        let reply = |e: ProtocolError| {
            let mut v = Vec::new();
            e.write_reply(&mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(
            reply(ProtocolError::InvalidBulkLength),
            "-ERR Protocol error: invalid bulk length\r\n"
        );
        assert_eq!(
            reply(ProtocolError::InvalidMultibulkLength),
            "-ERR Protocol error: invalid multibulk length\r\n"
        );
        assert_eq!(
            reply(ProtocolError::TooBigInlineRequest),
            "-ERR Protocol error: too big inline request\r\n"
        );
        assert_eq!(
            reply(ProtocolError::UnbalancedQuotes),
            "-ERR Protocol error: unbalanced quotes in request\r\n"
        );
        assert_eq!(
            reply(ProtocolError::ExpectedDollar(b'x')),
            "-ERR Protocol error: expected '$', got 'x'\r\n"
        );
        assert_eq!(
            reply(ProtocolError::ExpectedDollar(b'\r')),
            "-ERR Protocol error: expected '$', got ' '\r\n"
        );
    }

    #[test]
    fn big_bulk_declared_length_does_not_allocate_and_hints() {
        let arena = Bump::new();
        let mut p = Parser::new();
        let input = b"*2\r\n$3\r\nGET\r\n$536870912\r\nab";
        assert!(p.parse(input, &arena, Limits::default()).unwrap().is_none());
        assert!(p.spans.capacity() <= SPANS_PREALLOC_MAX);
        assert_eq!(p.frame_len_hint(), Some(4 + 9 + 12 + 536870912 + 2));
        let input = b"*1048576\r\n";
        let mut p = Parser::new();
        assert!(p.parse(input, &arena, Limits::default()).unwrap().is_none());
        assert!(p.spans.capacity() <= SPANS_PREALLOC_MAX);
    }

    #[test]
    fn string_to_i64_is_strict() {
        assert_eq!(string_to_i64(b"0"), Some(0));
        assert_eq!(string_to_i64(b"-5"), Some(-5));
        assert_eq!(string_to_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(string_to_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"1a",
        ] {
            assert_eq!(
                string_to_i64(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! `flin-compat`: sends the same requests to flin and to redis-server and compares the replies
//! byte for byte.
//!
//! A case file (`bench/compat/*.txt`, format in `bench/compat/README.md`) is a list of
//! [`Step`]s: a command written like redis-cli input (sent as one RESP multibulk request), raw
//! bytes (`!raw "..."`, for inline and malformed input), or `!reconnect`. Each request gets
//! exactly one reply from each server, read with [`Conn::request`]: the bytes of one complete
//! RESP2 reply (framed by [`reply_len`], which unlike flin-bench's parser takes any nesting:
//! COMMAND DOCS nests deeper than 8), or what happened instead (the server closed the
//! connection, or nothing came within the timeout). [`Mode`] says how the two are
//! compared; the default is every byte.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How the two replies to one step are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every byte.
    Exact,
    /// Only the reply's type (its first byte): for replies whose content differs by design
    /// (INFO, HELLO, CLIENT ID, COMMAND COUNT).
    Type,
    /// Read the reply, compare nothing (RANDOMKEY over several keys).
    Skip,
    /// Every array made only of bulk strings is sorted first (KEYS; SCAN with a COUNT that
    /// covers the whole keyspace): order is unspecified, content is not.
    Sorted,
    /// The step is a SCAN: call it again with the returned cursor until the cursor is 0, and
    /// compare the sorted, deduplicated set of keys returned (as one array). Errors compare as
    /// they are.
    ScanAll,
    /// Integer replies may differ by at most this much (PTTL of a key set moments ago).
    Approx(i64),
    /// Each element of the reply array is cut to its first N elements (COMMAND INFO's name,
    /// arity, flags, key positions and ACL categories, without the tips, key specs and
    /// subcommands flin does not describe).
    Head(usize),
}

/// What one step sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    /// A command: sent as a RESP multibulk request.
    Command(Vec<Vec<u8>>),
    /// Bytes sent as they are; exactly one reply is expected.
    Raw(Vec<u8>),
    /// Close both connections and open new ones (fresh client state).
    Reconnect,
}

/// One line of a case file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based line number in the case file.
    pub line: usize,
    /// The line as written, for reports.
    pub text: String,
    pub send: Send,
    pub mode: Mode,
    /// After its reply, the server must close the connection (QUIT, protocol errors). Both
    /// connections are reopened afterwards.
    pub closes: bool,
}

/// Splits a line into arguments like redis-cli (Redis's `sdssplitargs`): blanks separate
/// arguments; `"..."` takes `\n \r \t \b \a \\ \" \xHH`; `'...'` takes `\'`; a closing quote
/// must be followed by a blank or the end of the line.
///
/// # Errors
/// A message naming the problem (unbalanced quotes, text glued to a closing quote).
pub fn split_args(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let b = line.as_bytes();
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < b.len() && b[p].is_ascii_whitespace() {
            p += 1;
        }
        if p == b.len() {
            return Ok(args);
        }
        let mut cur = Vec::new();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            let c = b.get(p).copied();
            if in_dq {
                match c {
                    None => return Err("unbalanced double quote".into()),
                    Some(b'\\') if p + 3 < b.len() && b[p + 1] == b'x' => {
                        let hex = std::str::from_utf8(&b[p + 2..p + 4]).ok();
                        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                            Some(v) => {
                                cur.push(v);
                                p += 3;
                            }
                            None => {
                                cur.push(b'x');
                                p += 1;
                            }
                        }
                    }
                    Some(b'\\') if p + 1 < b.len() => {
                        p += 1;
                        cur.push(match b[p] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if b.get(p + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return Err("closing quote must be followed by a blank".into());
                        }
                        p += 1;
                        break;
                    }
                    Some(other) => cur.push(other),
                }
            } else if in_sq {
                match c {
                    None => return Err("unbalanced single quote".into()),
                    Some(b'\\') if b.get(p + 1) == Some(&b'\'') => {
                        p += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if b.get(p + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                            return Err("closing quote must be followed by a blank".into());
                        }
                        p += 1;
                        break;
                    }
                    Some(other) => cur.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(other) => cur.push(other),
                }
            }
            p += 1;
        }
        args.push(cur);
    }
}

/// Parses a case file. Blank lines and lines starting with `#` are skipped; `?modifier`
/// words at the start of a line set its [`Mode`] and `closes`.
///
/// # Errors
/// `line N: problem` for the first line that cannot be understood.
pub fn parse_cases(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line_no = i + 1;
        let fail = |msg: String| format!("line {line_no}: {msg}: {raw_line}");
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut rest = trimmed;
        let mut mode = Mode::Exact;
        let mut closes = false;
        while let Some(after) = rest.strip_prefix('?') {
            let (word, tail) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
            mode = match word {
                "close" => {
                    closes = true;
                    mode
                }
                "type" => Mode::Type,
                "skip" => Mode::Skip,
                "sorted" => Mode::Sorted,
                "scan" => Mode::ScanAll,
                w if w.starts_with("approx=") => match w["approx=".len()..].parse() {
                    Ok(n) => Mode::Approx(n),
                    Err(_) => return Err(fail(format!("bad tolerance in ?{w}"))),
                },
                w if w.starts_with("head=") => match w["head=".len()..].parse() {
                    Ok(n) if n > 0 => Mode::Head(n),
                    _ => return Err(fail(format!("bad element count in ?{w}"))),
                },
                w => {
                    return Err(fail(format!(
                        "unknown modifier ?{w} (known: ?close ?type ?skip ?sorted ?scan \
                         ?approx=N ?head=N)"
                    )))
                }
            };
            rest = tail.trim_start();
        }
        let send = if let Some(arg) = rest.strip_prefix("!raw") {
            let parts = split_args(arg).map_err(&fail)?;
            match <[Vec<u8>; 1]>::try_from(parts) {
                Ok([bytes]) if !bytes.is_empty() => Send::Raw(bytes),
                _ => return Err(fail("!raw takes one quoted, non-empty argument".into())),
            }
        } else if rest == "!reconnect" {
            Send::Reconnect
        } else if rest.starts_with('!') {
            return Err(fail("unknown directive (known: !raw, !reconnect)".into()));
        } else {
            let args = split_args(rest).map_err(&fail)?;
            if args.is_empty() {
                return Err(fail("modifiers without a command".into()));
            }
            Send::Command(args)
        };
        if mode == Mode::ScanAll
            && !matches!(&send, Send::Command(a) if a.len() >= 2 && a[0].eq_ignore_ascii_case(b"scan"))
        {
            return Err(fail("?scan needs a SCAN command with a cursor".into()));
        }
        steps.push(Step {
            line: line_no,
            text: rest.to_string(),
            send,
            mode,
            closes,
        });
    }
    Ok(steps)
}

/// Encodes `args` as a RESP multibulk request.
pub fn encode_command(args: &[Vec<u8>]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The bytes of exactly one RESP2 reply.
    Reply(Vec<u8>),
    /// The server closed the connection before a complete reply (bytes received so far).
    Closed(Vec<u8>),
    /// No complete reply within the timeout (bytes received so far).
    Timeout(Vec<u8>),
    /// Bytes that are not RESP2, or a socket error.
    Broken(String),
}

impl Outcome {
    /// A printable form, payload escaped and cut at `shown_max` bytes.
    pub fn describe(&self, shown_max: usize) -> String {
        match self {
            Outcome::Reply(b) => escape(b, shown_max),
            Outcome::Closed(b) if b.is_empty() => "(connection closed, no reply)".into(),
            Outcome::Closed(b) => format!(
                "(connection closed after a partial reply: {})",
                escape(b, shown_max)
            ),
            Outcome::Timeout(b) if b.is_empty() => "(no reply within the timeout)".into(),
            Outcome::Timeout(b) => format!(
                "(timed out after a partial reply: {})",
                escape(b, shown_max)
            ),
            Outcome::Broken(msg) => format!("(broken: {msg})"),
        }
    }

    fn connection_lost(&self) -> bool {
        !matches!(self, Outcome::Reply(_))
    }
}

/// `bytes` escaped like a Rust byte string, cut at `max` bytes.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let shown = &bytes[..bytes.len().min(max)];
    let mut s: String = shown.escape_ascii().to_string();
    if bytes.len() > shown.len() {
        s.push_str(&format!("...({} bytes in all)", bytes.len()));
    }
    s
}

/// One connection to one server.
pub struct Conn {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    /// Bytes read past the last reply (only a server that sends too much leaves any).
    pending: Vec<u8>,
}

impl Conn {
    /// Connects to `addr`; reads wait at most `timeout`.
    ///
    /// # Errors
    /// The connect error.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let mut c = Conn {
            addr,
            timeout,
            stream: None,
            pending: Vec::new(),
        };
        c.reconnect()?;
        Ok(c)
    }

    /// Drops the connection and opens a new one.
    ///
    /// # Errors
    /// The connect error.
    pub fn reconnect(&mut self) -> io::Result<()> {
        self.stream = None;
        self.pending.clear();
        let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        s.set_nodelay(true)?;
        self.stream = Some(s);
        Ok(())
    }

    /// Sends `bytes` (if any) and reads one reply. After anything but a reply the connection
    /// is reopened, so the next request starts clean.
    pub fn request(&mut self, bytes: &[u8]) -> Outcome {
        let outcome = self.request_once(bytes);
        if outcome.connection_lost() {
            // A failed reconnect shows up as a broken outcome of the next request.
            let _ = self.reconnect();
        }
        outcome
    }

    fn request_once(&mut self, bytes: &[u8]) -> Outcome {
        let Some(stream) = self.stream.as_mut() else {
            return Outcome::Broken(format!("not connected to {}", self.addr));
        };
        if !bytes.is_empty() {
            if let Err(e) = stream.write_all(bytes) {
                return Outcome::Broken(format!("write to {}: {e}", self.addr));
            }
        }
        self.read_reply()
    }

    fn read_reply(&mut self) -> Outcome {
        loop {
            match reply_len(&self.pending) {
                Ok(Some(used)) => {
                    let rest = self.pending.split_off(used);
                    return Outcome::Reply(std::mem::replace(&mut self.pending, rest));
                }
                Ok(None) => {}
                Err(e) => {
                    return Outcome::Broken(format!(
                        "not RESP2 ({e}): {}",
                        escape(&self.pending, 200)
                    ))
                }
            }
            match self.read_some() {
                Ok(true) => {}
                Ok(false) => return Outcome::Closed(std::mem::take(&mut self.pending)),
                Err(e) if is_timeout(&e) => {
                    return Outcome::Timeout(std::mem::take(&mut self.pending))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Outcome::Closed(std::mem::take(&mut self.pending))
                }
                Err(e) => return Outcome::Broken(format!("read from {}: {e}", self.addr)),
            }
        }
    }

    /// Appends what the socket has to `pending`; false at end of stream.
    fn read_some(&mut self) -> io::Result<bool> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `bytes` followed by the command `<SYNC_MARKER>`, which no server has, and reads
    /// replies until the error naming it: everything before answers `bytes`, however many
    /// replies that is (zero, one, more). Unknown-command errors come before the
    /// authentication check, so this works on unauthenticated connections too. A server that
    /// closes the connection or goes quiet first ends the step with that.
    pub fn request_synced(&mut self, bytes: &[u8]) -> Answer {
        let marker = encode_command(&[SYNC_MARKER.to_vec()]);
        let is_marker = |r: &[u8]| {
            r.first() == Some(&b'-') && r.windows(SYNC_MARKER.len()).any(|w| w == SYNC_MARKER)
        };
        let mut replies = Vec::new();
        let request = [bytes, &marker].concat();
        let mut outcome = self.request(&request);
        loop {
            match outcome {
                Outcome::Reply(r) if is_marker(&r) => {
                    return Answer {
                        replies,
                        end: End::Synced,
                    }
                }
                Outcome::Reply(r) if replies.len() < REPLIES_PER_STEP_MAX => replies.push(r),
                Outcome::Reply(_) => {
                    let _ = self.reconnect();
                    return Answer {
                        replies,
                        end: End::Lost(Outcome::Broken(format!(
                            "more than {REPLIES_PER_STEP_MAX} replies to one step"
                        ))),
                    };
                }
                lost => {
                    return Answer {
                        replies,
                        end: End::Lost(lost),
                    }
                }
            }
            outcome = self.request(&[]);
        }
    }
}

/// The unknown command sent after each step; the error naming it ends the step's replies.
pub const SYNC_MARKER: &[u8] = b"flin-compat:end-of-step";
/// Replies to one step beyond which the server is taken to be broken.
pub const REPLIES_PER_STEP_MAX: usize = 64;

/// Everything a server answered to one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Complete replies, in order (normally exactly one).
    pub replies: Vec<Vec<u8>>,
    pub end: End,
}

/// How a step's answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The sync marker came back: the connection is still in step.
    Synced,
    /// The connection closed, timed out or broke first (the connection is then reopened).
    Lost(Outcome),
}

impl Answer {
    /// True when the server closed the connection right after its replies.
    pub fn closed(&self) -> bool {
        matches!(&self.end, End::Lost(Outcome::Closed(partial)) if partial.is_empty())
    }

    /// The replies escaped (cut at `shown_max` bytes each), then how the step ended when the
    /// connection did not stay in step.
    pub fn describe(&self, shown_max: usize) -> String {
        let mut parts: Vec<String> = self.replies.iter().map(|r| escape(r, shown_max)).collect();
        if parts.is_empty() {
            parts.push("(no reply)".into());
        }
        if self.replies.len() > 1 {
            parts.insert(0, format!("({} replies)", self.replies.len()));
        }
        if let End::Lost(o) = &self.end {
            parts.push(match o {
                Outcome::Closed(b) if b.is_empty() => "then closed the connection".into(),
                other => format!("then {}", other.describe(shown_max)),
            });
        }
        parts.join("  ")
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

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

/// SCAN calls at most per `?scan` step, so a cursor that never returns to 0 is reported.
pub const SCAN_CALLS_MAX: usize = 100_000;

/// Runs a full SCAN iteration of `args` (cursor at index 1 replaced each call) and returns
/// the sorted, deduplicated keys as one array reply; the first non-SCAN-shaped reply is
/// returned as it is.
pub fn scan_all(conn: &mut Conn, args: &[Vec<u8>]) -> Outcome {
    let mut args = args.to_vec();
    let mut keys = std::collections::BTreeSet::new();
    for _ in 0..SCAN_CALLS_MAX {
        let outcome = conn.request(&encode_command(&args));
        let Outcome::Reply(bytes) = &outcome else {
            return outcome;
        };
        let Some(Value::Array(Some(parts))) = Value::parse(bytes) else {
            return outcome;
        };
        let [Value::Bulk(Some(cursor)), Value::Array(Some(batch))] = parts.as_slice() else {
            return outcome;
        };
        for k in batch {
            match k {
                Value::Bulk(Some(k)) => keys.insert(k.clone()),
                _ => return outcome,
            };
        }
        if cursor.as_slice() == b"0" {
            let all = Value::Array(Some(
                keys.into_iter().map(|k| Value::Bulk(Some(k))).collect(),
            ));
            let mut out = Vec::new();
            all.encode(&mut out);
            return Outcome::Reply(out);
        }
        args[1] = cursor.clone();
    }
    Outcome::Broken(format!(
        "SCAN cursor not back to 0 after {SCAN_CALLS_MAX} calls"
    ))
}

/// Whether two single replies count as the same under `mode`.
pub fn same_reply(mode: Mode, r: &[u8], f: &[u8]) -> bool {
    match mode {
        Mode::Exact | Mode::ScanAll => r == f,
        Mode::Skip => true,
        Mode::Type => r.first() == f.first(),
        Mode::Sorted => sorted_reply(r) == sorted_reply(f),
        Mode::Head(n) => head_reply(r, n) == head_reply(f, n),
        Mode::Approx(tolerance) => match (Value::parse(r), Value::parse(f)) {
            (Some(Value::Integer(a)), Some(Value::Integer(b))) => {
                a.abs_diff(b) <= tolerance.unsigned_abs()
            }
            _ => r == f,
        },
    }
}

/// Whether two answers count as the same under `mode`: the mode applies when each server
/// gave one reply; otherwise (no reply, several) every reply must be identical. How the
/// step ended must match too.
pub fn same(mode: Mode, redis: &Answer, flin: &Answer) -> bool {
    if redis.end != flin.end {
        return false;
    }
    match (redis.replies.as_slice(), flin.replies.as_slice()) {
        ([r], [f]) => same_reply(mode, r, f),
        (r, f) => r == f,
    }
}

/// One step whose replies differ.
#[derive(Debug, Clone)]
pub struct Difference {
    pub line: usize,
    pub text: String,
    pub redis: String,
    pub flin: String,
}

/// The two connections a case file runs on.
pub struct Pair {
    pub redis: Conn,
    pub flin: Conn,
}

/// Payload bytes shown per reply in a difference.
pub const SHOWN_MAX_BYTES: usize = 600;

impl Pair {
    /// Runs `steps`; returns how many requests were compared and the differences.
    ///
    /// # Errors
    /// Reconnecting failed (a server is gone: nothing more can be compared).
    pub fn run(&mut self, steps: &[Step]) -> io::Result<(usize, Vec<Difference>)> {
        let mut compared = 0;
        let mut diffs = Vec::new();
        for step in steps {
            let (r, f) = match (&step.send, step.mode) {
                (Send::Reconnect, _) => {
                    self.redis.reconnect()?;
                    self.flin.reconnect()?;
                    continue;
                }
                (Send::Command(args), Mode::ScanAll) => (
                    scan_answer(&mut self.redis, args),
                    scan_answer(&mut self.flin, args),
                ),
                (Send::Command(args), _) => {
                    let bytes = encode_command(args);
                    (
                        self.redis.request_synced(&bytes),
                        self.flin.request_synced(&bytes),
                    )
                }
                (Send::Raw(bytes), _) => (
                    self.redis.request_synced(bytes),
                    self.flin.request_synced(bytes),
                ),
            };
            compared += 1;
            let mut differ = !same(step.mode, &r, &f);
            let (mut r_text, mut f_text) =
                (r.describe(SHOWN_MAX_BYTES), f.describe(SHOWN_MAX_BYTES));
            if let ([rb], [fb], Mode::Exact, true) = (
                r.replies.as_slice(),
                f.replies.as_slice(),
                step.mode,
                differ,
            ) {
                if let Some(at) = rb.iter().zip(fb.iter()).position(|(a, b)| a != b) {
                    r_text.push_str(&format!("  [first difference at byte {at}]"));
                }
            }
            if step.closes && !(r.closed() && f.closed()) {
                differ = true;
                let note = "  [the case expects the connection to close after one reply]";
                r_text.push_str(note);
                f_text.push_str(note);
            }
            if differ {
                diffs.push(Difference {
                    line: step.line,
                    text: step.text.clone(),
                    redis: r_text,
                    flin: f_text,
                });
            }
        }
        Ok((compared, diffs))
    }
}

/// A `?scan` step as an [`Answer`]: the synthesized reply of [`scan_all`].
fn scan_answer(conn: &mut Conn, args: &[Vec<u8>]) -> Answer {
    match scan_all(conn, args) {
        Outcome::Reply(r) => Answer {
            replies: vec![r],
            end: End::Synced,
        },
        lost => Answer {
            replies: Vec::new(),
            end: End::Lost(lost),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        split_args(line).expect("splits")
    }

    #[test]
    fn split_like_redis_cli() {
        assert_eq!(
            args("SET k v"),
            vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]
        );
        assert_eq!(
            args(r#"SET "" "a b""#)[1..],
            [b"".to_vec(), b"a b".to_vec()]
        );
        assert_eq!(args(r#"ECHO "\x00\xff\r\n\"""#)[1], b"\x00\xff\r\n\"");
        assert_eq!(args(r"ECHO 'it\'s \n'")[1], b"it's \\n");
        assert_eq!(args(r#"ECHO "\xZZ""#)[1], b"xZZ");
        assert_eq!(args("  GET   k  "), vec![b"GET".to_vec(), b"k".to_vec()]);
        assert!(split_args(r#"ECHO "abc"#).is_err());
        assert!(split_args("ECHO 'abc").is_err());
        assert!(split_args(r#"ECHO "a"b"#).is_err());
    }

    #[test]
    fn case_lines() {
        let steps = parse_cases(
            "# comment\n\nSET k v\n?sorted KEYS *\n?close QUIT\n!raw \"PING\\r\\n\"\n!reconnect\n?approx=50 PTTL k\n?scan SCAN 0 COUNT 2\n",
        )
        .expect("parses");
        assert_eq!(steps.len(), 7);
        assert_eq!(steps[0].line, 3);
        assert_eq!(steps[0].mode, Mode::Exact);
        assert_eq!(steps[1].mode, Mode::Sorted);
        assert!(steps[2].closes);
        assert_eq!(steps[3].send, Send::Raw(b"PING\r\n".to_vec()));
        assert_eq!(steps[4].send, Send::Reconnect);
        assert_eq!(steps[5].mode, Mode::Approx(50));
        assert_eq!(steps[6].mode, Mode::ScanAll);
        for bad in [
            "?bogus GET k",
            "!nope",
            "?type",
            "!raw a b",
            "?scan GET k",
            "GET \"k",
        ] {
            let err = parse_cases(bad).expect_err(bad);
            assert!(err.starts_with("line 1: "), "{err}");
        }
    }

    fn one(reply: &[u8]) -> Answer {
        Answer {
            replies: vec![reply.to_vec()],
            end: End::Synced,
        }
    }

    #[test]
    fn modes_compare_what_they_say() {
        let r = one;
        assert!(same(Mode::Exact, &r(b"+OK\r\n"), &r(b"+OK\r\n")));
        assert!(!same(Mode::Exact, &r(b"+OK\r\n"), &r(b"+Ok\r\n")));
        assert!(same(Mode::Type, &r(b":1\r\n"), &r(b":7\r\n")));
        assert!(!same(Mode::Type, &r(b":1\r\n"), &r(b"$1\r\n1\r\n")));
        assert!(same(Mode::Skip, &r(b":1\r\n"), &r(b"$1\r\n1\r\n")));
        let timed_out = Answer {
            replies: Vec::new(),
            end: End::Lost(Outcome::Timeout(Vec::new())),
        };
        assert!(!same(Mode::Skip, &r(b":1\r\n"), &timed_out));
        let ab = b"*2\r\n$1\r\na\r\n$1\r\nb\r\n";
        let ba = b"*2\r\n$1\r\nb\r\n$1\r\na\r\n";
        assert!(same(Mode::Sorted, &r(ab), &r(ba)));
        assert!(!same(Mode::Exact, &r(ab), &r(ba)));
        let scan_ab = b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n";
        let scan_ba = b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nb\r\n$1\r\na\r\n";
        assert!(same(Mode::Sorted, &r(scan_ab), &r(scan_ba)));
        let abc = b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
        assert!(!same(Mode::Sorted, &r(ab), &r(abc)));
        assert!(same(Mode::Approx(10), &r(b":100\r\n"), &r(b":95\r\n")));
        assert!(!same(Mode::Approx(10), &r(b":100\r\n"), &r(b":80\r\n")));
        assert!(!same(
            Mode::Approx(10),
            &r(b":100\r\n"),
            &r(b"$3\r\n100\r\n")
        ));
        let info_a = b"*1\r\n*3\r\n$3\r\nget\r\n:2\r\n*1\r\n+x\r\n";
        let info_b = b"*1\r\n*3\r\n$3\r\nget\r\n:2\r\n*0\r\n";
        let info_c = b"*1\r\n*3\r\n$3\r\nget\r\n:3\r\n*0\r\n";
        assert!(same(Mode::Head(2), &r(info_a), &r(info_b)));
        assert!(!same(Mode::Head(3), &r(info_a), &r(info_b)));
        assert!(!same(Mode::Head(2), &r(info_a), &r(info_c)));
        // Reply counts and endings are compared exactly whatever the mode.
        let two = Answer {
            replies: vec![b":1\r\n".to_vec(), b":1\r\n".to_vec()],
            end: End::Synced,
        };
        assert!(!same(Mode::Skip, &r(b":1\r\n"), &two));
        let mut closed = r(b"+OK\r\n");
        closed.end = End::Lost(Outcome::Closed(Vec::new()));
        assert!(closed.closed());
        assert!(!same(Mode::Exact, &r(b"+OK\r\n"), &closed));
        assert!(same(Mode::Exact, &closed, &closed.clone()));
    }

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

    /// A scripted server: answers each request with the next canned reply, split in two
    /// writes; when the script ends it closes (`synced`) or reads one more request and closes.
    /// A request is one read, or with `synced` everything up to the sync marker.
    fn fake_server(replies: Vec<&'static [u8]>, synced: bool) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut read_request = |s: &mut TcpStream, synced: bool| {
                let mut got = Vec::new();
                loop {
                    let n = s.read(&mut buf).unwrap_or(0);
                    got.extend_from_slice(&buf[..n]);
                    let done = !synced || got.windows(SYNC_MARKER.len()).any(|w| w == SYNC_MARKER);
                    if n == 0 || done {
                        return n > 0;
                    }
                }
            };
            for reply in replies {
                if !read_request(&mut s, synced) {
                    return;
                }
                let (a, b) = reply.split_at(reply.len() / 2);
                s.write_all(a).unwrap();
                s.flush().unwrap();
                s.write_all(b).unwrap();
            }
            if !synced {
                read_request(&mut s, false);
            }
        });
        addr
    }

    #[test]
    fn reads_exactly_one_reply_and_sees_close() {
        let addr = fake_server(vec![b"*2\r\n$1\r\na\r\n:1\r\n", b"+OK\r\n"], false);
        let mut c = Conn::connect(addr, Duration::from_secs(10)).unwrap();
        assert_eq!(
            c.request(b"PING\r\n"),
            Outcome::Reply(b"*2\r\n$1\r\na\r\n:1\r\n".to_vec())
        );
        assert_eq!(c.request(b"PING\r\n"), Outcome::Reply(b"+OK\r\n".to_vec()));
        assert_eq!(c.request(b"PING\r\n"), Outcome::Closed(Vec::new()));
    }

    #[test]
    fn synced_steps_count_every_reply() {
        let addr = fake_server(
            vec![
                b"+A\r\n-ERR unknown command 'flin-compat:end-of-step'\r\n",
                b"+B\r\n+C\r\n-ERR unknown command 'flin-compat:end-of-step'\r\n",
                b"-ERR unknown command 'flin-compat:end-of-step'\r\n",
                b"-ERR bye\r\n",
            ],
            true,
        );
        let mut c = Conn::connect(addr, Duration::from_secs(10)).unwrap();
        assert_eq!(c.request_synced(b"PING\r\n"), one(b"+A\r\n"));
        let two = c.request_synced(b"PING\r\n");
        assert_eq!(two.replies, [b"+B\r\n".to_vec(), b"+C\r\n".to_vec()]);
        assert_eq!(two.end, End::Synced);
        let none = c.request_synced(b"\r\n");
        assert_eq!((none.replies.len(), none.end), (0, End::Synced));
        let bye = c.request_synced(b"*x\r\n");
        assert_eq!(bye.replies, [b"-ERR bye\r\n".to_vec()]);
        assert!(bye.closed(), "{bye:?}");
    }

    #[test]
    fn missing_reply_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Conn::connect(addr, Duration::from_millis(100)).unwrap();
        let _held = listener.accept().unwrap();
        assert_eq!(c.request(b"PING\r\n"), Outcome::Timeout(Vec::new()));
    }
}

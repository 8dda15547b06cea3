//! The replica's side of Redis's replication protocol as bytes: the handshake's requests, the
//! primary's one-line answers, the full-sync payload's header, and how the payload ends. No
//! sockets here: the functions take any `BufRead` / `Read`, so tests feed them byte strings.

use std::io::{self, BufRead, Read};

/// Longest line the primary may answer with during the handshake.
pub const LINE_LEN_MAX: usize = 64 * 1024;
/// Length of the diskless payload's end mark (`$EOF:<mark>`).
pub const EOF_MARK_LEN: usize = 40;

/// A request as RESP: an array of bulk strings.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one line (up to `\n`, at most [`LINE_LEN_MAX`] bytes) without its `\r\n`.
///
/// # Errors
/// The source fails or ends, or the line is too long.
pub fn read_line(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(LINE_LEN_MAX as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "primary's line too long or cut",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// The primary's answer to PSYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Psync {
    /// `+FULLRESYNC <replid> <offset>`: a payload follows.
    Full { replid: String, offset: i64 },
    /// `+CONTINUE [<replid>]`: the stream goes on from our offset (under a new id, if given).
    Continue { replid: Option<String> },
    /// An error (`-NOMASTERLINK`, `-LOADING`, `-ERR ...`) or anything else: try again later.
    Refused(String),
}

/// Parses the primary's answer to PSYNC.
pub fn parse_psync(line: &[u8]) -> Psync {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split(' ');
    match words.next() {
        Some("+FULLRESYNC") => {
            let replid = words.next().filter(|id| valid_replid(id));
            let offset = words.next().and_then(|o| o.parse::<i64>().ok());
            match (replid, offset) {
                (Some(replid), Some(offset)) if offset >= 0 => Psync::Full {
                    replid: replid.to_string(),
                    offset,
                },
                _ => Psync::Refused(text.into_owned()),
            }
        }
        Some("+CONTINUE") => match words.next() {
            None | Some("") => Psync::Continue { replid: None },
            Some(id) if valid_replid(id) => Psync::Continue {
                replid: Some(id.to_string()),
            },
            Some(_) => Psync::Refused(text.into_owned()),
        },
        _ => Psync::Refused(text.into_owned()),
    }
}

/// A replication id: 40 hex digits.
fn valid_replid(id: &str) -> bool {
    id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How the full-sync payload is framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `$<len>`: that many bytes of RDB.
    Len(u64),
    /// `$EOF:<40 bytes>`: RDB, then the same 40 bytes (diskless sync).
    Eof([u8; EOF_MARK_LEN]),
}

/// Reads up to the payload's header, skipping the bare `\n` keepalives a primary sends while
/// it prepares the payload; `None` when a line is not a payload header.
///
/// # Errors
/// The source fails or ends.
pub fn read_payload_header(r: &mut impl BufRead) -> io::Result<Option<Payload>> {
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            continue;
        }
        return Ok(parse_payload_header(&line));
    }
}

/// Parses `$<len>` or `$EOF:<mark>`.
pub fn parse_payload_header(line: &[u8]) -> Option<Payload> {
    let rest = line.strip_prefix(b"$")?;
    if let Some(mark) = rest.strip_prefix(b"EOF:") {
        return mark.try_into().ok().map(Payload::Eof);
    }
    let len = crate::protocol::parse::string_to_i64(rest)?;
    u64::try_from(len).ok().map(Payload::Len)
}

/// Copies the payload's RDB from `r` into `out`, up to and without its end (the declared length
/// for `$<len>`; for `$EOF:`, the 40-byte mark, which is consumed and not copied), reading no
/// byte past it: the command stream follows in the same buffer. `progress` is called with the
/// bytes copied so far, now and then. Returns the RDB's length.
///
/// # Errors
/// The source fails or ends before the payload does, or `out` fails.
pub fn copy_payload(
    r: &mut impl BufRead,
    payload: &Payload,
    out: &mut impl io::Write,
    mut progress: impl FnMut(u64),
) -> io::Result<u64> {
    const PROGRESS_EVERY_BYTES: u64 = 1 << 20;
    let mut copied = 0u64;
    let mut next_report = PROGRESS_EVERY_BYTES;
    let ended = || {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the primary closed the link mid-payload",
        )
    };
    match payload {
        Payload::Len(len) => {
            while copied < *len {
                let chunk = r.fill_buf()?;
                if chunk.is_empty() {
                    return Err(ended());
                }
                let n = chunk.len().min((len - copied) as usize);
                out.write_all(&chunk[..n])?;
                r.consume(n);
                copied += n as u64;
                if copied >= next_report {
                    progress(copied);
                    next_report = copied + PROGRESS_EVERY_BYTES;
                }
            }
            Ok(copied)
        }
        Payload::Eof(mark) => {
            // The last bytes seen (fewer than the mark's length), copied out only once more
            // bytes show they do not start the mark.
            let mut held: Vec<u8> = Vec::with_capacity(EOF_MARK_LEN);
            loop {
                let chunk = r.fill_buf()?;
                if chunk.is_empty() {
                    return Err(ended());
                }
                let mut window = Vec::with_capacity(held.len() + chunk.len());
                window.extend_from_slice(&held);
                window.extend_from_slice(chunk);
                let chunk_len = chunk.len();
                if let Some(at) = window.windows(EOF_MARK_LEN).position(|w| w == mark) {
                    // The mark cannot lie within `held` alone (it is shorter).
                    r.consume(at + EOF_MARK_LEN - held.len());
                    out.write_all(&window[..at])?;
                    copied += at as u64;
                    progress(copied);
                    return Ok(copied);
                }
                r.consume(chunk_len);
                let flush = window.len() - window.len().min(EOF_MARK_LEN - 1);
                out.write_all(&window[..flush])?;
                copied += flush as u64;
                held.clear();
                held.extend_from_slice(&window[flush..]);
                if copied >= next_report {
                    progress(copied);
                    next_report = copied + PROGRESS_EVERY_BYTES;
                }
            }
        }
    }
}

/// True when the answer to the handshake's PING lets the handshake go on (Redis accepts an
/// authentication error here: AUTH comes next).
pub fn ping_ok(line: &[u8]) -> bool {
    line.starts_with(b"+")
        || line.starts_with(b"-NOAUTH")
        || line.starts_with(b"-NOPERM")
        || line.starts_with(b"-ERR operation not permitted")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per fill, to split the mark across reads.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.len().min(self.step).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_payload_is_copied_up_to_its_end_and_no_further() {
        let rdb: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mark = [b'm'; EOF_MARK_LEN];
        let after = b"*1\r\n$4\r\nPING\r\n";
        for step in [1, 7, 39, 40, 41, 4096, 100_000] {
            for (payload, wire) in [
                (Payload::Len(rdb.len() as u64), [&rdb[..], after].concat()),
                (Payload::Eof(mark), [&rdb[..], &mark, after].concat()),
            ] {
                let mut r = io::BufReader::with_capacity(64, Trickle { data: &wire, step });
                let mut out = Vec::new();
                let mut reported = 0;
                let n = copy_payload(&mut r, &payload, &mut out, |c| reported = c).unwrap();
                assert_eq!(n, rdb.len() as u64, "step {step}");
                assert_eq!(out, rdb, "step {step}");
                let mut rest = Vec::new();
                r.read_to_end(&mut rest).unwrap();
                assert_eq!(
                    rest, after,
                    "the stream after the payload is left, step {step}"
                );
                assert!(reported <= n);
            }
        }
        // Cut short: an error, not a partial success.
        let mut r = io::BufReader::new(&rdb[..100]);
        assert!(copy_payload(&mut r, &Payload::Eof(mark), &mut Vec::new(), |_| {}).is_err());
        let mut r = io::BufReader::new(&rdb[..100]);
        assert!(copy_payload(&mut r, &Payload::Len(200), &mut Vec::new(), |_| {}).is_err());
    }

    #[test]
    fn requests_are_resp_arrays() {
        assert_eq!(
            request(&[b"REPLCONF", b"ACK", b"12"]),
            b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n12\r\n"
        );
    }

    #[test]
    fn lines_lose_their_ending_and_are_bounded() {
        let mut r: &[u8] = b"+PONG\r\n\n+OK\n";
        assert_eq!(read_line(&mut r).unwrap(), b"+PONG");
        assert_eq!(read_line(&mut r).unwrap(), b"");
        assert_eq!(read_line(&mut r).unwrap(), b"+OK");
        assert!(read_line(&mut r).is_err(), "end of input");
        let long = vec![b'a'; LINE_LEN_MAX + 10];
        assert!(read_line(&mut long.as_slice()).is_err());
        assert!(read_line(&mut &b"+PONG"[..]).is_err(), "cut line");
    }

    #[test]
    fn psync_answers() {
        let id = "a".repeat(40);
        assert_eq!(
            parse_psync(format!("+FULLRESYNC {id} 1234").as_bytes()),
            Psync::Full {
                replid: id.clone(),
                offset: 1234
            }
        );
        assert_eq!(parse_psync(b"+CONTINUE"), Psync::Continue { replid: None });
        assert_eq!(
            parse_psync(format!("+CONTINUE {id}").as_bytes()),
            Psync::Continue {
                replid: Some(id.clone())
            }
        );
        for bad in [
            "+FULLRESYNC short 1",
            "+FULLRESYNC",
            &format!("+FULLRESYNC {id} -1"),
            &format!("+FULLRESYNC {id} x"),
            "+CONTINUE zz",
            "-NOMASTERLINK Can't SYNC while not connected with my master",
            "-LOADING Redis is loading the dataset in memory",
        ] {
            assert!(
                matches!(parse_psync(bad.as_bytes()), Psync::Refused(_)),
                "{bad}"
            );
        }
    }

    #[test]
    fn payload_headers_after_keepalives() {
        let mark = [b'x'; 40];
        let mut input = b"\n\n\n$EOF:".to_vec();
        input.extend_from_slice(&mark);
        input.extend_from_slice(b"\r\nREDIS");
        let mut r = input.as_slice();
        assert_eq!(
            read_payload_header(&mut r).unwrap(),
            Some(Payload::Eof(mark))
        );
        assert_eq!(r, b"REDIS", "stops after the header line");
        assert_eq!(
            read_payload_header(&mut &b"\n$175\r\n"[..]).unwrap(),
            Some(Payload::Len(175))
        );
        for bad in [&b"$-1"[..], b"$EOF:short", b"+OK", b"$", b"$12x"] {
            assert_eq!(parse_payload_header(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ping_answers() {
        assert!(ping_ok(b"+PONG"));
        assert!(ping_ok(b"-NOAUTH Authentication required."));
        assert!(!ping_ok(b"-ERR something"));
    }
}

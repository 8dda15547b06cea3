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

/// Checks what follows the RDB in the payload: nothing for `$<len>` (the RDB took exactly the
/// declared bytes: `rdb_len`), the 40-byte mark for `$EOF:`.
///
/// # Errors
/// The RDB's length or the end mark is not what the header said.
pub fn check_payload_end(payload: &Payload, rdb_len: u64, r: &mut impl Read) -> io::Result<()> {
    match payload {
        Payload::Len(len) if *len == rdb_len => Ok(()),
        Payload::Len(len) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("payload declared {len} bytes, the RDB took {rdb_len}"),
        )),
        Payload::Eof(mark) => {
            let mut end = [0u8; EOF_MARK_LEN];
            r.read_exact(&mut end)?;
            if &end == mark {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "diskless payload's end mark does not match",
                ))
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
    fn payload_ends_as_declared() {
        assert!(check_payload_end(&Payload::Len(10), 10, &mut &b""[..]).is_ok());
        assert!(check_payload_end(&Payload::Len(10), 9, &mut &b""[..]).is_err());
        let mark = [b'm'; 40];
        assert!(check_payload_end(&Payload::Eof(mark), 3, &mut &mark[..]).is_ok());
        let other = [b'n'; 40];
        assert!(check_payload_end(&Payload::Eof(mark), 3, &mut &other[..]).is_err());
        assert!(check_payload_end(&Payload::Eof(mark), 3, &mut &mark[..20]).is_err());
    }

    #[test]
    fn ping_answers() {
        assert!(ping_ok(b"+PONG"));
        assert!(ping_ok(b"-NOAUTH Authentication required."));
        assert!(!ping_ok(b"-ERR something"));
    }
}

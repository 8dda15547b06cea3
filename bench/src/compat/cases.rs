//! The case files of `bench/compat/`: each line a [`Step`] (what to send, how to compare the
//! replies, whether the server must close). The format is described in
//! `bench/compat/README.md`.

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
    /// The same shape: the same types at every depth, the same map keys (byte for byte), the
    /// same number of elements in each aggregate; scalar values may differ (HELLO in RESP3:
    /// the same fields, while `version` and `id` differ by design).
    Shape,
    /// Each element of the reply array is cut to its first N elements (COMMAND INFO's name,
    /// arity, flags, key positions and ACL categories, without the tips, key specs and
    /// subcommands flin does not describe).
    Head(usize),
    /// INFO keyspace: every byte of the bulk string, except that each `avg_ttl=` value need
    /// only be a number on both sides (an estimate by sampling, on Redis as on flin).
    Keyspace,
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
    /// What the step sends.
    pub send: Send,
    /// How the two servers' replies are compared.
    pub mode: Mode,
    /// After its reply, the server must close the connection (QUIT, protocol errors). Both
    /// connections are reopened afterwards.
    pub closes: bool,
    /// Which connection (to each server) the step goes to, from 0: `@N` at the start of the
    /// line names connection N (1 to [`CONNS_MAX`]); connection 1 by default.
    pub conn: usize,
}

/// How many connections (to each server) a case file may use: `@1` to `@4`.
pub const CONNS_MAX: usize = 4;

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
        let mut conn = 0;
        if let Some(after) = rest.strip_prefix('@') {
            let (word, tail) = after.split_once(char::is_whitespace).unwrap_or((after, ""));
            conn = match word.parse::<usize>() {
                Ok(n) if (1..=CONNS_MAX).contains(&n) => n - 1,
                _ => return Err(fail(format!("@{word}: connections are @1 to @{CONNS_MAX}"))),
            };
            rest = tail.trim_start();
        }
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
                "shape" => Mode::Shape,
                "skip" => Mode::Skip,
                "sorted" => Mode::Sorted,
                "scan" => Mode::ScanAll,
                "keyspace" => Mode::Keyspace,
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
                        "unknown modifier ?{w} (known: ?close ?type ?shape ?skip ?sorted \
                         ?scan ?keyspace ?approx=N ?head=N)"
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
            if conn != 0 {
                return Err(fail("!reconnect reopens every connection: no @N".into()));
            }
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
            text: match conn {
                0 => rest.to_string(),
                n => format!("@{} {rest}", n + 1),
            },
            send,
            mode,
            closes,
            conn,
        });
    }
    Ok(steps)
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
            "# comment\n\nSET k v\n?sorted KEYS *\n?close QUIT\n!raw \"PING\\r\\n\"\n!reconnect\n?approx=50 PTTL k\n?scan SCAN 0 COUNT 2\n?shape HELLO 3\n",
        )
        .expect("parses");
        assert_eq!(steps.len(), 8);
        assert_eq!(steps[7].mode, Mode::Shape);
        assert_eq!(steps[0].line, 3);
        assert_eq!(steps[0].mode, Mode::Exact);
        assert_eq!(steps[1].mode, Mode::Sorted);
        assert!(steps[2].closes);
        assert_eq!(steps[3].send, Send::Raw(b"PING\r\n".to_vec()));
        assert_eq!(steps[4].send, Send::Reconnect);
        assert_eq!(steps[5].mode, Mode::Approx(50));
        assert_eq!(steps[6].mode, Mode::ScanAll);
        assert!(steps.iter().all(|s| s.conn == 0));
        let steps =
            parse_cases("@2 GET k\n@4 ?type INFO\n@1 !raw \"PING\\r\\n\"\n").expect("parses");
        assert_eq!(steps.iter().map(|s| s.conn).collect::<Vec<_>>(), [1, 3, 0]);
        assert_eq!(steps[1].mode, Mode::Type);
        assert_eq!(steps[0].text, "@2 GET k");
        for bad in [
            "@0 GET k",
            "@5 GET k",
            "@x GET k",
            "@2 !reconnect",
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
}

//! Inline commands (`SET k "a b"\r\n` typed by hand): Redis's `sdssplitargs` rules.
//!
//! - Blanks (`isspace`) separate arguments; an unquoted argument ends at space, tab, CR, LF
//!   or NUL.
//! - `"..."` takes the escapes `\n \r \t \b \a \xHH` and `\<any>`; `'...'` takes only `\'`.
//! - A closing quote must be followed by a blank or the end of the line, and an unterminated
//!   quote is an error (Redis: "unbalanced quotes in request").
//! - The line is a C string to Redis: a NUL byte ends it.
//!
//! Arguments without escapes or quotes borrow the line; the others are built in the arena.

use bumpalo::collections::Vec as BumpVec;
use bumpalo::Bump;

/// The line's quotes do not balance (or a closing quote is glued to more text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnbalancedQuotes;

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits one inline line (without its line ending) into arguments, pushing them to `args`.
///
/// # Errors
/// [`UnbalancedQuotes`] as Redis's `sdssplitargs` returns NULL.
pub fn split<'a>(
    line: &'a [u8],
    arena: &'a Bump,
    args: &mut BumpVec<'a, &'a [u8]>,
) -> Result<(), UnbalancedQuotes> {
    // Redis sees a C string: everything from the first NUL on is invisible.
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p == line.len() {
            return Ok(());
        }
        p = token(line, p, arena, args)?;
    }
}

/// Reads one argument starting at `start`; returns the position after it.
fn token<'a>(
    line: &'a [u8],
    start: usize,
    arena: &'a Bump,
    args: &mut BumpVec<'a, &'a [u8]>,
) -> Result<usize, UnbalancedQuotes> {
    // Fast path: a plain word borrows the line.
    let mut p = start;
    while p < line.len() && !matches!(line[p], b' ' | b'\n' | b'\r' | b'\t' | b'"' | b'\'') {
        p += 1;
    }
    if p == line.len() || line[p] != b'"' && line[p] != b'\'' {
        args.push(&line[start..p]);
        return Ok(p);
    }
    // Quotes somewhere in the word: build it in the arena.
    let mut cur = BumpVec::new_in(arena);
    cur.extend_from_slice(&line[start..p]);
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut in_dq = false;
    let mut in_sq = false;
    loop {
        let c = at(p);
        if in_dq {
            if c == b'\\' && at(p + 1) == b'x' {
                if let (Some(h), Some(l)) = (hex_value(at(p + 2)), hex_value(at(p + 3))) {
                    cur.push(h * 16 + l);
                    p += 4;
                    continue;
                }
            }
            if c == b'\\' && at(p + 1) != 0 {
                cur.push(match at(p + 1) {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                p += 2;
                continue;
            }
            match c {
                b'"' => {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                }
                0 => return Err(UnbalancedQuotes),
                _ => cur.push(c),
            }
        } else if in_sq {
            if c == b'\\' && at(p + 1) == b'\'' {
                cur.push(b'\'');
                p += 2;
                continue;
            }
            match c {
                b'\'' => {
                    if at(p + 1) != 0 && !is_space(at(p + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                }
                0 => return Err(UnbalancedQuotes),
                _ => cur.push(c),
            }
        } else {
            match c {
                b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                b'"' => in_dq = true,
                b'\'' => in_sq = true,
                _ => cur.push(c),
            }
        }
        p += 1;
    }
    args.push(cur.into_bump_slice());
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_vec(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
        let arena = Bump::new();
        let mut args = BumpVec::new_in(&arena);
        split(line, &arena, &mut args)?;
        Ok(args.iter().map(|a| a.to_vec()).collect())
    }

    fn ok(line: &str, want: &[&[u8]]) {
        let got = split_vec(line.as_bytes()).expect(line);
        let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
        assert_eq!(got, want, "line {line:?}");
    }

    #[test]
    fn plain_words() {
        ok("SET k v", &[b"SET", b"k", b"v"]);
        ok("  PING  ", &[b"PING"]);
        ok("", &[]);
        ok(" \t ", &[]);
        ok("a\tb", &[b"a", b"b"]);
    }

    #[test]
    fn double_quotes_and_escapes() {
        ok(r#"SET k "a b""#, &[b"SET", b"k", b"a b"]);
        ok(
            r#"SET k "\x41\x4a\n\r\t\b\a\\\"q""#,
            &[b"SET", b"k", b"AJ\n\r\t\x08\x07\\\"q"],
        );
        ok(r#"x "\xZZ""#, &[b"x", b"xZZ"]);
        ok(r#"x """#, &[b"x", b""]);
        ok(r#"a"b c"d"#.trim_end_matches('d'), &[b"ab c"]);
    }

    #[test]
    fn single_quotes() {
        ok(r"x 'a b'", &[b"x", b"a b"]);
        ok(r"x 'it\'s'", &[b"x", b"it's"]);
        ok(r"x 'a\nb'", &[b"x", b"a\\nb"]);
        ok(r"x ''", &[b"x", b""]);
    }

    #[test]
    fn unbalanced() {
        for line in [
            r#"SET k "abc"#,
            r"SET k 'abc",
            r#"SET k "a"b"#,
            r"x 'a'b",
            r#"x "\"#,
        ] {
            assert_eq!(
                split_vec(line.as_bytes()),
                Err(UnbalancedQuotes),
                "{line:?}"
            );
        }
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(
            split_vec(b"GET a\0b c").unwrap(),
            vec![b"GET".to_vec(), b"a".to_vec()]
        );
        assert_eq!(split_vec(b"GET \"a\0\""), Err(UnbalancedQuotes));
    }
}

//! Guards against inline-command drift from Redis: quoting, escapes, blank lines, errors.

mod common;

use common::start;

#[test]
fn inline_commands_with_quoting() {
    let srv = start();
    let mut raw = srv.raw();
    raw.expect(b"PING\r\n", b"+PONG\r\n");
    raw.expect(b"ping\n", b"+PONG\r\n");
    raw.expect(b"\r\n\r\nPING\r\n", b"+PONG\r\n");
    raw.expect(b"SET k \"a b\\x41\\n\"\r\n", b"+OK\r\n");
    raw.expect(b"GET k\r\n", b"$5\r\na bA\n\r\n");
    raw.expect(b"SET 'x y' 'it\\'s'\r\n", b"+OK\r\n");
    raw.expect(b"GET \"x y\"\r\n", b"$4\r\nit's\r\n");
    raw.expect(b"  ECHO   spaced   \r\n", b"$6\r\nspaced\r\n");
    raw.expect(b"ECHO \"\"\r\n", b"$0\r\n\r\n");
    // Mixed with multibulk in one write.
    raw.expect(
        b"PING\r\n*1\r\n$4\r\nPING\r\nPING\r\n",
        b"+PONG\r\n+PONG\r\n+PONG\r\n",
    );
}

#[test]
fn unbalanced_quotes_close_the_connection() {
    let srv = start();
    let mut raw = srv.raw();
    raw.send(b"PING\r\nSET k \"abc\r\nPING\r\n");
    let got = raw.read_to_close();
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n"
    );
}

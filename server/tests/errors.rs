//! Guards against error replies drifting from Redis 7's bytes, and against closing (or not
//! closing) the connection where Redis does the opposite.

mod common;

use common::{cmd, start};

#[test]
fn command_errors_keep_the_connection_open() {
    let srv = start();
    let mut raw = srv.raw();
    let cases: &[(&[u8], &[u8])] = &[
        (b"FOO a b\r\n", b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n"),
        (b"foo\r\n", b"-ERR unknown command 'foo', with args beginning with: \r\n"),
        (b"GET\r\n", b"-ERR wrong number of arguments for 'get' command\r\n"),
        (b"get a b\r\n", b"-ERR wrong number of arguments for 'get' command\r\n"),
        (b"SET k v XX NX\r\n", b"-ERR syntax error\r\n"),
        (b"SET k v EX\r\n", b"-ERR syntax error\r\n"),
        (b"SET k v EX 10 PX 10\r\n", b"-ERR syntax error\r\n"),
        (b"SET k v KEEPTTL EX 10\r\n", b"-ERR syntax error\r\n"),
        (b"SET k v EX 0\r\n", b"-ERR invalid expire time in 'set' command\r\n"),
        (b"SET k v PX -5\r\n", b"-ERR invalid expire time in 'set' command\r\n"),
        (b"SET k v EX abc\r\n", b"-ERR value is not an integer or out of range\r\n"),
        (b"SET k v EX 9223372036854775807\r\n", b"-ERR invalid expire time in 'set' command\r\n"),
        (b"HELLO 4\r\n", b"-NOPROTO unsupported protocol version\r\n"),
        (b"HELLO x\r\n", b"-ERR Protocol version is not an integer or out of range\r\n"),
        (b"SELECT 16\r\n", b"-ERR DB index is out of range\r\n"),
        (b"SELECT x\r\n", b"-ERR value is not an integer or out of range\r\n"),
        (b"AUTH pw\r\n", b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"),
        (b"CLIENT SETNAME\r\n", b"-ERR wrong number of arguments for 'client|setname' command\r\n"),
        (b"CLIENT FOO\r\n", b"-ERR unknown subcommand 'FOO'. Try CLIENT HELP.\r\n"),
        (b"CLIENT SETNAME \"a b\"\r\n", b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"),
        (b"EXPIRE k 10 NX XX\r\n", b"-ERR NX and XX, GT or LT options at the same time are not compatible\r\n"),
        (b"EXPIRE k 10 FOO\r\n", b"-ERR Unsupported option FOO\r\n"),
        (b"MSET a 1 b\r\n", b"-ERR wrong number of arguments for 'mset' command\r\n"),
        (b"LPUSH l a\r\n", b"-ERR unknown command 'LPUSH', with args beginning with: 'l' 'a' \r\n"),
    ];
    for (req, reply) in cases {
        raw.expect(req, reply);
        raw.expect(b"PING\r\n", b"+PONG\r\n");
    }
    raw.expect(&cmd(&[b"SET", b"n", b"abc"]), b"+OK\r\n");
    raw.expect(
        b"INCR n\r\n",
        b"-ERR value is not an integer or out of range\r\n",
    );
}

/// Each framing error is answered, then the connection closes; replies before it still arrive.
#[test]
fn protocol_errors_reply_then_close() {
    let srv = start();
    let long_inline = vec![b'a'; 64 * 1024 + 1];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"*1\r\n$-1\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$536870913\r\n".to_vec(),
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n".to_vec(),
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*2147483648\r\n".to_vec(),
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nx3\r\n".to_vec(),
            "-ERR Protocol error: expected '$', got 'x'\r\n",
        ),
        (
            long_inline,
            "-ERR Protocol error: too big inline request\r\n",
        ),
        (
            b"SET k \"v\r\n".to_vec(),
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (bad, reply) in cases {
        let mut raw = srv.raw();
        let mut req = b"PING\r\n".to_vec();
        req.extend_from_slice(&bad);
        raw.send(&req);
        let got = raw.read_to_close();
        assert_eq!(String::from_utf8_lossy(&got), format!("+PONG\r\n{reply}"));
    }
    assert!(srv.handle().stats().protocol_errors >= 8);
    // The server is still fine for others.
    srv.raw().expect(b"PING\r\n", b"+PONG\r\n");
}

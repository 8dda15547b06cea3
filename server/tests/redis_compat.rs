//! Replies where flin once differed from redis-server 7.0, found by `flin-compat`
//! (`.ci/checks/redis-compat.sh`). Each expected reply is what Redis 7.0.15 sends, byte for
//! byte, so these hold without a redis-server at hand.

mod common;

use common::{cmd, start};

/// Sends each request (a multibulk of its words) and expects Redis's reply.
fn check(cases: &[(&[&[u8]], &[u8])]) {
    let srv = start();
    let mut raw = srv.raw();
    for (args, reply) in cases {
        raw.expect(&cmd(args), reply);
    }
}

#[test]
fn set_and_getex_take_a_repeated_expiry_option() {
    check(&[
        (
            &[b"SET", b"k", b"v", b"EX", b"100", b"EX", b"200"],
            b"+OK\r\n",
        ),
        (&[b"TTL", b"k"], b":200\r\n"),
        (
            &[b"SET", b"k", b"v", b"EX", b"0", b"EX", b"100"],
            b"+OK\r\n",
        ),
        (
            &[b"SET", b"k", b"v", b"EX", b"100", b"EX", b"0"],
            b"-ERR invalid expire time in 'set' command\r\n",
        ),
        (
            &[
                b"SET",
                b"k",
                b"v",
                b"PXAT",
                b"4102444800000",
                b"PXAT",
                b"4102444800001",
            ],
            b"+OK\r\n",
        ),
        (&[b"PEXPIRETIME", b"k"], b":4102444800001\r\n"),
        // Two different kinds stay a syntax error.
        (
            &[b"SET", b"k", b"v", b"EX", b"100", b"PX", b"100"],
            b"-ERR syntax error\r\n",
        ),
        (&[b"SET", b"k", b"v", b"KEEPTTL", b"KEEPTTL"], b"+OK\r\n"),
        (
            &[b"GETEX", b"k", b"EX", b"100", b"EX", b"300"],
            b"$1\r\nv\r\n",
        ),
        (&[b"TTL", b"k"], b":300\r\n"),
        (&[b"GETEX", b"k", b"PERSIST", b"PERSIST"], b"$1\r\nv\r\n"),
        (
            &[b"GETEX", b"k", b"PERSIST", b"EX", b"1"],
            b"-ERR syntax error\r\n",
        ),
    ]);
}

#[test]
fn getex_of_a_missing_key_is_nil_before_the_expiry_is_checked() {
    check(&[
        (&[b"GETEX", b"missing", b"EX", b"0"], b"$-1\r\n"),
        (&[b"GETEX", b"missing", b"EX", b"abc"], b"$-1\r\n"),
        (&[b"GETEX", b"missing", b"PX", b"-1"], b"$-1\r\n"),
        (&[b"SET", b"k", b"v"], b"+OK\r\n"),
        (
            &[b"GETEX", b"k", b"EX", b"0"],
            b"-ERR invalid expire time in 'getex' command\r\n",
        ),
        (
            &[b"GETEX", b"k", b"EX", b"abc"],
            b"-ERR value is not an integer or out of range\r\n",
        ),
        (&[b"GETEX", b"missing", b"FOO"], b"-ERR syntax error\r\n"),
    ]);
}

#[test]
fn option_words_end_at_a_nul_like_c_strings() {
    check(&[
        (&[b"SET", b"k", b"v"], b"+OK\r\n"),
        (&[b"SET", b"k", b"v", b"nx\0junk"], b"$-1\r\n"),
        (&[b"SET", b"k", b"v", b"EX\0", b"100"], b"+OK\r\n"),
        (&[b"EXPIRE", b"k", b"100", b"nx\0"], b":0\r\n"),
        (&[b"GETEX", b"k", b"persist\0x"], b"$1\r\nv\r\n"),
        (&[b"TTL", b"k"], b":-1\r\n"),
        // Subcommand names are matched whole, as Redis looks them up in a table.
        (
            &[b"CLIENT", b"id\0"],
            b"-ERR unknown subcommand 'id'. Try CLIENT HELP.\r\n",
        ),
    ]);
}

#[test]
fn incrbyfloat_uses_long_double_arithmetic() {
    check(&[
        (&[b"INCRBYFLOAT", b"f", b"0.1"], b"$3\r\n0.1\r\n"),
        (&[b"INCRBYFLOAT", b"f", b"0.2"], b"$3\r\n0.3\r\n"),
        (&[b"SET", b"f", b"10.01"], b"+OK\r\n"),
        (
            &[b"INCRBYFLOAT", b"f", b"5.0e3"],
            b"$22\r\n5010.00999999999999979\r\n",
        ),
        (&[b"INCRBYFLOAT", b"g", b"10.50"], b"$4\r\n10.5\r\n"),
        (
            &[b"INCRBYFLOAT", b"g", b"1e17"],
            b"$20\r\n100000000000000010.5\r\n",
        ),
        (&[b"INCRBYFLOAT", b"h", b"1e-20"], b"$1\r\n0\r\n"),
        (&[b"INCRBYFLOAT", b"x", b"0x10"], b"$2\r\n16\r\n"),
        (&[b"SET", b"y", b"0x1p3"], b"+OK\r\n"),
        (&[b"INCRBYFLOAT", b"y", b"1"], b"$1\r\n9\r\n"),
        (
            &[b"INCRBYFLOAT", b"y", b"1e4933"],
            b"-ERR value is not a valid float\r\n",
        ),
        (
            &[b"INCRBYFLOAT", b"y", b"nan"],
            b"-ERR value is not a valid float\r\n",
        ),
        (
            &[b"INCRBYFLOAT", b"y", b"inf"],
            b"-ERR increment would produce NaN or Infinity\r\n",
        ),
    ]);
}

/// 1e400 is finite in a long double: Redis prints all 401 digits of its binary value.
#[test]
fn incrbyfloat_goes_past_f64() {
    let srv = start();
    let mut raw = srv.raw();
    raw.send(&cmd(&[b"INCRBYFLOAT", b"z", b"1e400"]));
    let digits = String::from_utf8(raw.read_n(6 + 401 + 2)).unwrap();
    assert!(
        digits.starts_with("$401\r\n10000000000000000000281880683947586514586453433629052"),
        "{digits}"
    );
    raw.expect(&cmd(&[b"INCRBYFLOAT", b"z", b"-1e400"]), b"$1\r\n0\r\n");
}

#[test]
fn substr_is_getrange() {
    check(&[
        (&[b"SET", b"s", b"Hello World"], b"+OK\r\n"),
        (&[b"SUBSTR", b"s", b"-5", b"-1"], b"$5\r\nWorld\r\n"),
        (&[b"substr", b"missing", b"0", b"1"], b"$0\r\n\r\n"),
        (
            &[b"SUBSTR", b"s", b"0"],
            b"-ERR wrong number of arguments for 'substr' command\r\n",
        ),
    ]);
}

#[test]
fn scan_cursors_parse_like_strtoul() {
    check(&[
        (&[b"SET", b"k", b"v"], b"+OK\r\n"),
        (&[b"SCAN", b""], b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n"),
        (&[b"SCAN", b"+0"], b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n"),
        (
            &[b"SCAN", b"0\0junk"],
            b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n",
        ),
        (&[b"SCAN", b" 0"], b"-ERR invalid cursor\r\n"),
        (&[b"SCAN", b"+"], b"-ERR invalid cursor\r\n"),
        (
            &[b"SCAN", b"18446744073709551616"],
            b"-ERR invalid cursor\r\n",
        ),
    ]);
}

#[test]
fn expiretime_rounds_without_overflow() {
    check(&[
        (&[b"SET", b"k", b"v"], b"+OK\r\n"),
        (&[b"PEXPIREAT", b"k", b"9223372036854775807"], b":1\r\n"),
        (&[b"EXPIRETIME", b"k"], b":9223372036854776\r\n"),
        (&[b"PEXPIRETIME", b"k"], b":9223372036854775807\r\n"),
    ]);
}

#[test]
fn server_and_connection_errors_match() {
    let range = b"-ERR value is out of range, value must between -2147483648 and 2147483647\r\n";
    check(&[
        (&[b"SELECT", b"2147483648"], range),
        (&[b"SELECT", b"-2147483649"], range),
        (&[b"SELECT", b"16"], b"-ERR DB index is out of range\r\n"),
        (
            &[b"CONFIG", b"SET", b"a", b"b", b"c"],
            b"-ERR syntax error\r\n",
        ),
        (
            &[b"CONFIG", b"RESETSTAT", b"x"],
            b"-ERR wrong number of arguments for 'config|resetstat' command\r\n",
        ),
        (
            &[b"CONFIG", b"HELP", b"x"],
            b"-ERR wrong number of arguments for 'config|help' command\r\n",
        ),
        (
            &[b"COMMAND", b"HELP", b"x"],
            b"-ERR wrong number of arguments for 'command|help' command\r\n",
        ),
        (
            &[b"CLIENT", b"HELP", b"x"],
            b"-ERR wrong number of arguments for 'client|help' command\r\n",
        ),
        (&[b"COMMAND", b"LIST", b"x"], b"-ERR syntax error\r\n"),
        (
            &[b"COMMAND", b"LIST", b"FILTERBY", b"MODULE", b"m"],
            b"*0\r\n",
        ),
        (
            &[b"COMMAND", b"LIST", b"FILTERBY", b"PATTERN", b"getr*"],
            b"*1\r\n$8\r\ngetrange\r\n",
        ),
        (&[b"COMMAND", b"INFO", b"nosuchcommand"], b"*1\r\n$-1\r\n"),
        // CONFIG GET answers an exact name as the client spelled it, once.
        (
            &[b"CONFIG", b"GET", b"MaxMemory", b"maxmemory"],
            b"*2\r\n$9\r\nMaxMemory\r\n$1\r\n0\r\n",
        ),
        (
            &[b"CONFIG", b"GET", b"maxmemory-p*"],
            b"*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n",
        ),
    ]);
}

#[test]
fn command_info_lists_redis_acl_categories() {
    let srv = start();
    let mut raw = srv.raw();
    raw.send(&cmd(&[b"COMMAND", b"INFO", b"get"]));
    let head = b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n";
    assert_eq!(
        String::from_utf8_lossy(&raw.read_n(head.len())),
        String::from_utf8_lossy(head)
    );
}

/// Redis 7 takes up to INT_MAX arguments in one request (Redis 6 stopped at 1024 * 1024).
#[test]
fn more_than_a_million_arguments_are_accepted() {
    let srv = start();
    let mut raw = srv.raw();
    let n = 1024 * 1024 + 1;
    let mut req = format!("*{}\r\n$6\r\nEXISTS\r\n", n + 1).into_bytes();
    for _ in 0..n {
        req.extend_from_slice(b"$1\r\nk\r\n");
    }
    raw.expect(&cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    raw.expect(&req, format!(":{n}\r\n").as_bytes());
}

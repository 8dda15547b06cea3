//! Hostile clients against the real binary: huge, negative and non-numeric declared lengths, a
//! request that never ends, disconnects in the middle of a command or of a reply, garbage after
//! a valid command. Each gets Redis's answer, the connection closes where Redis closes it, the
//! server's memory stays bounded, and a well-behaved client is served throughout.

mod common;

use common::binary::start;
use common::{cmd, Raw};

fn ping(s: &mut Raw) {
    s.expect(b"PING\r\n", b"+PONG\r\n");
}

fn anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn hostile_clients_get_redis_answers_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = start(dir.path(), &[]);
    let mut good = Raw::connect(&srv.addr);
    ping(&mut good);

    // Framing errors: the reply Redis gives, then the connection closes.
    for (input, reply) in [
        (
            &b"*1\r\n$536870913\r\n"[..],
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2147483648\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nGET\r\n",
            "-ERR Protocol error: expected '$', got 'G'\r\n",
        ),
    ] {
        let mut s = Raw::connect(&srv.addr);
        s.send(input);
        assert_eq!(
            String::from_utf8_lossy(&s.read_to_close()),
            reply,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        ping(&mut good);
    }

    // Garbage after a valid command: the command is answered, then the error, then close.
    let mut s = Raw::connect(&srv.addr);
    s.send(b"PING\r\n*x\r\n");
    assert_eq!(
        String::from_utf8_lossy(&s.read_to_close()),
        "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"
    );

    // A request that never ends: a 500 MB bulk declared, 1 MiB sent, then nothing. Memory must
    // follow the bytes that arrived, not the declared length.
    let before = anon_kib(srv.child.id());
    let mut never = Raw::connect(&srv.addr);
    never.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n");
    never.send(&vec![b'x'; 1 << 20]);
    ping(&mut good);
    let after = anon_kib(srv.child.id());
    assert!(
        after < before + 64 * 1024,
        "anonymous memory grew from {before} KiB to {after} KiB for 1 MiB received"
    );

    // Disconnects in the middle of a command and in the middle of a large reply.
    let mut s = Raw::connect(&srv.addr);
    s.send(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$10");
    drop(s);
    let mut s = Raw::connect(&srv.addr);
    s.expect(&cmd(&[b"SET", b"big", &vec![b'b'; 8 << 20]]), b"+OK\r\n");
    for _ in 0..20 {
        s.send(&cmd(&[b"GET", b"big"]));
    }
    assert!(s.read_n(100).starts_with(b"$8388608\r\nbbb"));
    drop(s);
    drop(never);

    // Through all of it, the well-behaved client is served and the data is intact.
    ping(&mut good);
    good.expect(&cmd(&[b"STRLEN", b"big"]), b":8388608\r\n");
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
}

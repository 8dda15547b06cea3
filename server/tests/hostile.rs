//! Hostile clients against the real binary: huge, negative and non-numeric declared lengths, a
//! request that never ends, disconnects in the middle of a command or of a reply, garbage after
//! a valid command. Each gets Redis's answer, the connection closes where Redis closes it, the
//! server's memory stays bounded, and a well-behaved client is served throughout.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::binary::{resp, start};

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Everything the server sends until it closes the connection.
fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("waiting for close: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn ping(s: &mut TcpStream) {
    s.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
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
    let mut good = connect(&srv.addr);
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
        let mut s = connect(&srv.addr);
        s.write_all(input).unwrap();
        assert_eq!(
            read_to_close(&mut s),
            reply,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        ping(&mut good);
    }

    // Garbage after a valid command: the command is answered, then the error, then close.
    let mut s = connect(&srv.addr);
    s.write_all(b"PING\r\n*x\r\n").unwrap();
    assert_eq!(
        read_to_close(&mut s),
        "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n"
    );

    // A request that never ends: a 500 MB bulk declared, 1 MiB sent, then nothing. Memory must
    // follow the bytes that arrived, not the declared length.
    let before = anon_kib(srv.child.id());
    let mut never = connect(&srv.addr);
    never
        .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n")
        .unwrap();
    never.write_all(&vec![b'x'; 1 << 20]).unwrap();
    ping(&mut good);
    let after = anon_kib(srv.child.id());
    assert!(
        after < before + 64 * 1024,
        "anonymous memory grew from {before} KiB to {after} KiB for 1 MiB received"
    );

    // Disconnects in the middle of a command and in the middle of a large reply.
    let mut s = connect(&srv.addr);
    s.write_all(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$10").unwrap();
    drop(s);
    let mut s = connect(&srv.addr);
    s.write_all(&resp(&[b"SET", b"big", &vec![b'b'; 8 << 20]]))
        .unwrap();
    let mut ok = [0u8; 5];
    s.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    for _ in 0..20 {
        s.write_all(&resp(&[b"GET", b"big"])).unwrap();
    }
    let mut first = [0u8; 100];
    s.read_exact(&mut first).unwrap();
    drop(s);
    drop(never);

    // Through all of it, the well-behaved client is served and the data is intact.
    ping(&mut good);
    good.write_all(&resp(&[b"STRLEN", b"big"])).unwrap();
    let mut len = [0u8; 10];
    good.read_exact(&mut len).unwrap();
    assert_eq!(&len, b":8388608\r\n");
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
}

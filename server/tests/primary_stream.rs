//! The replication stream as bytes: a fake replica (a raw socket) does Redis 7's handshake with
//! a flin primary and checks `+FULLRESYNC`, the RDB payload's framing, and the commands writes
//! become (rewritten as Redis 7.0 rewrites them: absolute expiry, INCRBYFLOAT as SET KEEPTTL,
//! GETDEL as DEL, nothing for a write that changed nothing, MULTI/EXEC, SELECT, PUBLISH as it
//! is), including the
//! DEL of a key the engine's own sweep expired (a key from disk, in no worker's queue).

mod common;

use std::time::{Duration, Instant};

use common::{cmd, config, read_command, Raw};
use flin_server::Server;

/// The next command that is not a keepalive (PING, REPLCONF GETACK).
fn next(raw: &mut Raw) -> Vec<String> {
    loop {
        let c = read_command(raw);
        if c[0] != "PING" && c[0] != "REPLCONF" {
            return c;
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `at` is an absolute time about `secs` from now.
fn about_in(at: &str, secs: i64) {
    let at: i64 = at.parse().unwrap();
    let want = now_ms() + secs * 1000;
    assert!(
        (want - at).abs() < 5000,
        "{at} is not about {secs} s from now"
    );
}

#[test]
fn a_replica_gets_the_effects_of_writes() {
    let dir = tempfile::tempdir().unwrap();
    let handle = Server::start(config(dir.path())).unwrap();
    let mut c = Raw::connect(handle.local_addr());
    c.expect(&cmd(&[b"SET", b"swept", b"x", b"PX", b"3000"]), b"+OK\r\n");
    drop(c);
    handle.shutdown().unwrap();
    // From disk, the key is in no worker's expiry queue: the engine's sweep removes it.
    let handle = Server::start(config(dir.path())).unwrap();
    let addr = handle.local_addr();

    let mut r = Raw::connect(addr);
    r.expect(&cmd(&[b"REPLCONF", b"listening-port", b"7777"]), b"+OK\r\n");
    r.expect(
        &cmd(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]),
        b"+OK\r\n",
    );
    r.send(&cmd(&[b"PSYNC", b"?", b"-1"]));
    let line = r.read_line().unwrap();
    let line = String::from_utf8(line).unwrap();
    let words: Vec<&str> = line.trim_end().split(' ').collect();
    assert_eq!(words[0], "+FULLRESYNC", "{line}");
    assert_eq!(words[1].len(), 40);
    assert_eq!(words[2], "0", "no write since the start");
    let mut header = r.read_line().unwrap();
    while header == b"\n" {
        header = r.read_line().unwrap();
    }
    assert_eq!(header[0], b'$', "{header:?}");
    let len: usize = std::str::from_utf8(&header[1..header.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    let rdb = r.read_n(len);
    assert!(rdb.starts_with(b"REDIS0009"));

    // The swept key's DEL comes by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    assert_eq!(next(&mut r), ["SELECT", "0"]);
    assert_eq!(next(&mut r), ["DEL", "swept"]);
    assert!(Instant::now() < deadline);

    let mut c = Raw::connect(addr);
    let writes: &[&[&[u8]]] = &[
        &[b"SET", b"a", b"1", b"EX", b"100"],
        &[b"SETNX", b"a", b"2"],
        &[b"SET", b"b", b"2", b"GET"],
        &[b"SET", b"c", b"3", b"PX", b"200000", b"GET"],
        &[b"SETEX", b"d", b"300", b"4"],
        &[b"EXPIRE", b"b", b"400"],
        &[b"PEXPIREAT", b"c", b"99999999999999", b"GT"],
        &[b"INCRBYFLOAT", b"f", b"1.5"],
        &[b"GETDEL", b"a"],
        &[b"GETEX", b"d", b"PERSIST"],
        &[b"DEL", b"nothing"],
        &[b"EXPIRE", b"b", b"-1"],
        &[b"MULTI"],
        &[b"SET", b"x", b"1"],
        &[b"INCR", b"x"],
        &[b"EXEC"],
        &[b"SELECT", b"2"],
        &[b"SET", b"z", b"1"],
        &[b"PUBLISH", b"news", b"hello"],
        &[b"SPUBLISH", b"shard", b"hi"],
        &[b"MULTI"],
        &[b"SET", b"y", b"1"],
        &[b"PUBLISH", b"news", b"in a transaction"],
        &[b"EXEC"],
    ];
    let mut exec_replies = Vec::new();
    for w in writes {
        let reply = c.request(w).expect("a reply");
        if w[0] == b"EXEC" {
            assert_eq!(reply, "*2\r\n");
            exec_replies.push(c.read_line().unwrap());
            exec_replies.push(c.read_line().unwrap());
        }
    }
    assert_eq!(
        exec_replies,
        [&b"+OK\r\n"[..], b":2\r\n", b"+OK\r\n", b":0\r\n"]
    );
    let set_a = next(&mut r);
    assert_eq!(&set_a[..4], ["SET", "a", "1", "PXAT"]);
    about_in(&set_a[4], 100);
    assert_eq!(next(&mut r), ["SET", "b", "2"], "GET dropped");
    let set_c = next(&mut r);
    assert_eq!(&set_c[..4], ["SET", "c", "3", "PXAT"], "{set_c:?}");
    about_in(&set_c[4], 200);
    let set_d = next(&mut r);
    assert_eq!(&set_d[..4], ["SET", "d", "4", "PXAT"]);
    about_in(&set_d[4], 300);
    let expire_b = next(&mut r);
    assert_eq!(&expire_b[..2], ["PEXPIREAT", "b"]);
    about_in(&expire_b[2], 400);
    assert_eq!(next(&mut r), ["PEXPIREAT", "c", "99999999999999", "GT"]);
    assert_eq!(next(&mut r), ["SET", "f", "1.5", "KEEPTTL"]);
    assert_eq!(next(&mut r), ["DEL", "a"]);
    assert_eq!(next(&mut r), ["PERSIST", "d"]);
    assert_eq!(next(&mut r), ["DEL", "b"], "an expiry in the past deletes");
    assert_eq!(next(&mut r), ["MULTI"]);
    assert_eq!(next(&mut r), ["SET", "x", "1"]);
    assert_eq!(next(&mut r), ["INCR", "x"]);
    assert_eq!(next(&mut r), ["EXEC"]);
    assert_eq!(next(&mut r), ["SELECT", "2"]);
    assert_eq!(next(&mut r), ["SET", "z", "1"]);
    assert_eq!(next(&mut r), ["PUBLISH", "news", "hello"], "of no database");
    assert_eq!(next(&mut r), ["SPUBLISH", "shard", "hi"]);
    assert_eq!(next(&mut r), ["MULTI"]);
    assert_eq!(next(&mut r), ["SET", "y", "1"]);
    assert_eq!(next(&mut r), ["PUBLISH", "news", "in a transaction"]);
    assert_eq!(next(&mut r), ["EXEC"]);

    // ACKs reach INFO and WAIT.
    let offset: i64 = {
        let info = c.request(&[b"INFO", b"replication"]).unwrap();
        common::info_field(&info, "master_repl_offset")
            .parse()
            .unwrap()
    };
    r.send(&cmd(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()]));
    c.expect(&cmd(&[b"WAIT", b"1", b"10000"]), b":1\r\n");
    let info = c.request(&[b"INFO", b"replication"]).unwrap();
    let slave0 = common::info_field(&info, "slave0");
    assert_eq!(
        slave0,
        format!("ip=127.0.0.1,port=7777,state=online,offset={offset},lag=0")
    );
    handle.shutdown().unwrap();
}

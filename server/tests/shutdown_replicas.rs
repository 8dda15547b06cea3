//! A primary stopped while a replica lags waits for it, as Redis 7's `shutdown-timeout` does:
//! SHUTDOWN (and SIGTERM, through `ShutdownTrigger`) pause writes, ask the replicas for their
//! offset with `REPLCONF GETACK *`, and stop once every online replica acknowledged the stream,
//! or when `shutdown-timeout` runs out; SHUTDOWN NOW (or FORCE) and a second signal stop at
//! once, SHUTDOWN ABORT ends the wait and writes go on. The replica here is a raw socket that
//! acknowledges only when the test says so.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{cmd, info_field, read_command, start, wait_for, Raw, TestServer};
use flin_server::ServerHandle;

const DEADLINE: Duration = Duration::from_secs(30);
/// An offset past anything a test writes.
const EVERYTHING: i64 = 1 << 40;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A fake replica: handshake, full sync (payload read and dropped), its first ACK; returns
/// once the primary lists it online.
fn attach(srv: &TestServer) -> Raw {
    let mut r = Raw::connect(srv.addr);
    r.expect(&cmd(&[b"REPLCONF", b"listening-port", b"7777"]), b"+OK\r\n");
    r.expect(
        &cmd(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]),
        b"+OK\r\n",
    );
    r.send(&cmd(&[b"PSYNC", b"?", b"-1"]));
    let line = String::from_utf8(r.read_line().unwrap()).unwrap();
    assert!(line.starts_with("+FULLRESYNC "), "{line}");
    let offset = line.trim_end().rsplit(' ').next().unwrap().to_owned();
    let mut header = r.read_line().unwrap();
    while header == b"\n" {
        header = r.read_line().unwrap();
    }
    let len: usize = std::str::from_utf8(&header[1..header.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    r.read_n(len);
    ack(&mut r, offset.parse().unwrap());
    let mut c = srv.client();
    wait_for("the fake replica online", DEADLINE, || {
        let i: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
        i.contains("state=online")
    });
    r
}

fn ack(r: &mut Raw, offset: i64) {
    r.send(&cmd(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()]));
}

fn master_offset(srv: &TestServer) -> i64 {
    let mut c = srv.client();
    let i: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
    info_field(&i, "master_repl_offset").parse().unwrap()
}

/// The next command of the stream that is not a PING.
fn next(r: &mut Raw) -> Vec<String> {
    loop {
        let c = read_command(r);
        if c[0] != "PING" {
            return c;
        }
    }
}

/// Waits (on another thread) for the server to stop; `stopped` then says within `DEADLINE`.
fn stops(handle: ServerHandle) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        handle.wait().expect("clean stop");
        let _ = tx.send(());
    });
    rx
}

fn stopped(rx: &mpsc::Receiver<()>) {
    rx.recv_timeout(DEADLINE)
        .expect("the server stopped within the deadline");
}

/// A write the fake replica has not acknowledged: SET lagged 1.
fn lagging_write(srv: &TestServer, r: &mut Raw) {
    let mut c = srv.raw();
    c.expect(&cmd(&[b"SET", b"lagged", b"1"]), b"+OK\r\n");
    assert_eq!(next(r), ["SELECT", "0"]);
    assert_eq!(next(r), ["SET", "lagged", "1"]);
}

#[test]
fn shutdown_waits_for_a_lagging_replica_to_acknowledge() {
    let mut srv = start();
    let mut r = attach(&srv);
    lagging_write(&srv, &mut r);
    let mut admin = srv.raw();
    admin.send(&cmd(&[b"SHUTDOWN"]));
    // The primary asks instead of closing the link.
    assert_eq!(next(&mut r), ["REPLCONF", "GETACK", "*"]);
    // Meanwhile it still serves reads, and holds writes.
    let mut reader = srv.raw();
    reader.expect(&cmd(&[b"GET", b"lagged"]), b"$1\r\n1\r\n");
    let mut writer = srv.raw();
    writer.send(&cmd(&[b"SET", b"late", b"2"]));
    let rx = stops(srv.handle.take().unwrap());
    ack(&mut r, EVERYTHING);
    stopped(&rx);
    // The held write never ran: it is not in the stream, and it got no reply.
    assert!(!contains(&r.read_to_close(), b"late"));
    assert_eq!(writer.read_to_close(), b"");
}

#[test]
fn shutdown_now_and_force_do_not_wait() {
    for flag in [&b"NOW"[..], b"FORCE"] {
        let mut srv = start();
        let mut r = attach(&srv);
        lagging_write(&srv, &mut r);
        let mut admin = srv.raw();
        admin.send(&cmd(&[b"SHUTDOWN", flag]));
        let rx = stops(srv.handle.take().unwrap());
        stopped(&rx);
        // No GETACK: the link was closed.
        assert!(!contains(&r.read_to_close(), b"GETACK"));
    }
}

#[test]
fn shutdown_stops_after_shutdown_timeout_without_an_ack() {
    let mut srv = start();
    let mut c = srv.client();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("shutdown-timeout")
        .arg(1)
        .query(&mut c)
        .unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("shutdown-timeout")
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ["shutdown-timeout", "1"]);
    let mut r = attach(&srv);
    lagging_write(&srv, &mut r);
    let mut admin = srv.raw();
    admin.send(&cmd(&[b"SHUTDOWN"]));
    assert_eq!(next(&mut r), ["REPLCONF", "GETACK", "*"]);
    let rx = stops(srv.handle.take().unwrap());
    // Never acknowledged: the server stops when the timeout runs out.
    stopped(&rx);
}

#[test]
fn shutdown_abort_ends_the_wait_and_writes_go_on() {
    let srv = start();
    let mut r = attach(&srv);
    let mut admin = srv.raw();
    admin.expect(
        &cmd(&[b"SHUTDOWN", b"ABORT"]),
        b"-ERR No shutdown in progress.\r\n",
    );
    admin.expect(
        &cmd(&[b"SHUTDOWN", b"ABORT", b"NOW"]),
        b"-ERR syntax error\r\n",
    );
    admin.expect(
        &cmd(&[b"SHUTDOWN", b"SAVE", b"NOSAVE"]),
        b"-ERR syntax error\r\n",
    );
    lagging_write(&srv, &mut r);
    let mut stopper = srv.raw();
    stopper.send(&cmd(&[b"SHUTDOWN"]));
    assert_eq!(next(&mut r), ["REPLCONF", "GETACK", "*"]);
    admin.expect(&cmd(&[b"SHUTDOWN", b"ABORT"]), b"+OK\r\n");
    // Writes were held, and run again; the server goes on.
    let mut c = srv.raw();
    c.expect(&cmd(&[b"SET", b"after", b"3"]), b"+OK\r\n");
    assert_eq!(next(&mut r), ["SET", "after", "3"]);
    admin.expect(
        &cmd(&[b"SHUTDOWN", b"ABORT"]),
        b"-ERR No shutdown in progress.\r\n",
    );
    admin.expect(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn a_signal_waits_and_a_second_one_stops_at_once() {
    let mut srv = start();
    let mut r = attach(&srv);
    lagging_write(&srv, &mut r);
    let trigger = srv.handle().shutdown_trigger();
    trigger.trigger();
    assert_eq!(next(&mut r), ["REPLCONF", "GETACK", "*"]);
    let rx = stops(srv.handle.take().unwrap());
    trigger.trigger();
    stopped(&rx);
}

#[test]
fn with_every_replica_caught_up_shutdown_stops_at_once() {
    let mut srv = start();
    let mut r = attach(&srv);
    lagging_write(&srv, &mut r);
    assert!(master_offset(&srv) < EVERYTHING);
    ack(&mut r, EVERYTHING);
    let mut c = srv.client();
    wait_for("the ACK recorded", DEADLINE, || {
        let i: String = redis::cmd("INFO").arg("replication").query(&mut c).unwrap();
        i.contains(&format!("offset={EVERYTHING},"))
    });
    let mut admin = srv.raw();
    admin.send(&cmd(&[b"SHUTDOWN"]));
    let rx = stops(srv.handle.take().unwrap());
    stopped(&rx);
    // Closed without a GETACK.
    assert!(!contains(&r.read_to_close(), b"GETACK"));
}

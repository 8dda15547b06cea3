//! Guards against behaviour that differs between the io_uring and epoll drivers: pipelining,
//! backpressure wake-ups, idle close, shutdown through shutdown(2) on the socket, and how a
//! read sees the end of a client's input (the epoll driver's patched short-read readiness,
//! vendor/README.md), and the epoll driver's polling before it sleeps (`--idle-spin-us`).

mod common;

use common::{cmd, start_with};
use flin_server::{Driver, DriverChoice};

fn exercise(choice: DriverChoice, want: Driver, idle_spin_us: u16) {
    let mut srv = start_with(|c| {
        c.driver = choice;
        c.idle_spin_us = Some(idle_spin_us);
        c.timeout = 1;
        c.client_output_limit = 64 * 1024;
    });
    assert_eq!(srv.handle().driver(), want);
    let mut raw = srv.raw();
    let value = vec![b'z'; 10_000];
    raw.expect(&cmd(&[b"SET", b"k", &value]), b"+OK\r\n");
    // 300 GETs of 10 KB: 3 MB of replies through a 64 KiB output limit.
    let get = cmd(&[b"GET", b"k"]);
    raw.send(&get.repeat(300));
    let mut one = b"$10000\r\n".to_vec();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\n");
    let got = raw.read_n(one.len() * 300);
    assert!(got == one.repeat(300));
    // Unpipelined round trips: each request is read by one short read.
    for i in 0..200u32 {
        let v = i.to_string();
        raw.expect(&cmd(&[b"SET", b"n", v.as_bytes()]), b"+OK\r\n");
        raw.expect(
            &cmd(&[b"STRLEN", b"n"]),
            format!(":{}\r\n", v.len()).as_bytes(),
        );
    }
    // A request and the end of the client's input in one go: answered, then closed (the end
    // must still wake the read after the short read that took the request).
    let mut last = srv.raw();
    last.send(&cmd(&[b"GET", b"n"]));
    last.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(last.read_to_close(), b"$3\r\n199\r\n");
    // Idle close.
    assert_eq!(raw.read_to_close(), b"");
    // Shutdown closes clients blocked in a read.
    let mut waiting = srv.raw();
    waiting.expect(b"PING\r\n", b"+PONG\r\n");
    srv.stop();
    assert_eq!(waiting.read_to_close(), b"");
}

#[test]
fn epoll_driver() {
    exercise(DriverChoice::Epoll, Driver::Epoll, 5);
}

#[test]
fn epoll_driver_that_sleeps_at_once() {
    exercise(DriverChoice::Epoll, Driver::Epoll, 0);
}

/// A millisecond of polling finds each next request of the round trips before it sleeps, so
/// events found while spinning are what drive this run; the idle close still comes on time.
#[test]
fn epoll_driver_that_spins_long() {
    exercise(DriverChoice::Epoll, Driver::Epoll, 1000);
}

#[test]
fn io_uring_driver() {
    if !monoio::utils::detect_uring() {
        eprintln!("io_uring is not available here; skipped");
        return;
    }
    exercise(DriverChoice::IoUring, Driver::IoUring, 5);
}

//! Guards against the server failing under many simultaneous connections: 1,000 busy, then
//! 5,000 with requests in flight at once beside 10,000 idle ones.

mod common;

use common::binary::start as start_binary;
use common::{start, wait_for, Raw};
use std::time::Duration;

#[test]
fn a_thousand_concurrent_connections() {
    let srv = start();
    let mut conns: Vec<_> = (0..1000).map(|_| srv.raw()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(format!("SET conn:{i} {i}\r\n").as_bytes());
    }
    for c in conns.iter_mut() {
        assert_eq!(c.read_n(5), b"+OK\r\n");
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let v = i.to_string();
        c.expect(
            format!("GET conn:{i}\r\n").as_bytes(),
            format!("${}\r\n{v}\r\n", v.len()).as_bytes(),
        );
    }
    assert_eq!(srv.handle().stats().active_connections, 1000);
    drop(conns);
    wait_for("all connections to close", Duration::from_secs(20), || {
        srv.handle().stats().active_connections == 0
    });
}

/// Lets this process use every descriptor its hard limit allows (no privilege needed).
fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// The server is the real binary, so each process holds one end of every connection.
#[test]
fn five_thousand_busy_beside_ten_thousand_idle() {
    let limit = raise_open_file_limit();
    assert!(
        limit >= 15_500,
        "this test needs 15,500 descriptors, the hard limit is {limit}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut srv = start_binary(dir.path(), &["--maxclients", "16000"]);
    let addr: std::net::SocketAddr = srv.addr.parse().unwrap();
    let idle: Vec<_> = (0..10_000).map(|_| Raw::connect(addr)).collect();
    let mut busy: Vec<_> = (0..5_000).map(|_| Raw::connect(addr)).collect();
    // Every busy connection has a request in flight before any reply is read.
    for (i, c) in busy.iter_mut().enumerate() {
        c.send(format!("SET busy:{i} {i}\r\n").as_bytes());
    }
    for c in busy.iter_mut() {
        assert_eq!(c.read_n(5), b"+OK\r\n");
    }
    for (i, c) in busy.iter_mut().enumerate().step_by(97) {
        let v = i.to_string();
        c.expect(
            format!("GET busy:{i}\r\n").as_bytes(),
            format!("${}\r\n{v}\r\n", v.len()).as_bytes(),
        );
    }
    let mut probe = Raw::connect(addr);
    probe.send(b"INFO clients\r\n");
    let head = String::from_utf8(probe.read_n(5)).unwrap();
    assert!(head.starts_with('$'), "{head}");
    let mut info = Vec::new();
    while !String::from_utf8_lossy(&info).contains("connected_clients:") {
        info.extend(probe.read_n(1));
    }
    while !info.ends_with(b"\r\n") {
        info.extend(probe.read_n(1));
    }
    assert!(
        String::from_utf8_lossy(&info).contains("connected_clients:15001"),
        "{}",
        String::from_utf8_lossy(&info)
    );
    drop(busy);
    drop(idle);
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
}

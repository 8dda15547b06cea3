//! Guards against idle clients being kept forever when --timeout is set, and against busy
//! clients being cut.

mod common;

use common::start_with;
use std::time::{Duration, Instant};

#[test]
fn idle_clients_are_closed() {
    let srv = start_with(|c| c.timeout = 1);
    let mut idle = srv.raw();
    idle.expect(b"PING\r\n", b"+PONG\r\n");
    let mut busy = srv.raw();
    let started = Instant::now();
    // The busy client talks every 200 ms for 2.5 s while the idle one says nothing.
    while started.elapsed() < Duration::from_millis(2500) {
        busy.expect(b"PING\r\n", b"+PONG\r\n");
        std::thread::park_timeout(Duration::from_millis(200));
    }
    // The idle client has been closed by now (read returns end of stream at once).
    idle.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(idle.read_to_close(), b"");
    assert!(started.elapsed() < Duration::from_secs(8));
    busy.expect(b"PING\r\n", b"+PONG\r\n");
    assert_eq!(srv.handle().stats().idle_closed, 1);
}
